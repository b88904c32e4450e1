import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

describe('runOnnxInWorker: Cancel during an ONNX Runtime run', () => {
  it('rejects with the abort and the process lives on (terminating the worker mid-run used to abort the process, exit 134)', () => {
    const ortRun = path.join(__dirname, '../../src/runtime/ortRun.js');
    const model = path.join(__dirname, '../../../test/fixtures/tiny-transformer/tiny-transformer.onnx');
    // A child process: a native abort would take the test runner down with it. 400 feeds keep ORT busy well past the abort.
    const script = `
      const { runOnnxInWorker } = require(${JSON.stringify(ortRun)});
      const feeds = Array.from({ length: 400 }, (_, i) => ({ input_ids: { data: BigInt64Array.from({ length: 16 }, (_, j) => BigInt((i * 7 + j) % 256)), dims: [1, 16], type: 'int64' } }));
      const ac = new AbortController();
      let started = false;
      const p = runOnnxInWorker([{ model: ${JSON.stringify(model)}, feeds, outputs: undefined }], ac.signal);
      setTimeout(() => { started = true; ac.abort(); }, 300);
      p.then(() => { console.log(started ? 'finished-after-abort' : 'finished-before-abort'); }, (e) => console.log('rejected:' + e.name));
    `;
    for (let i = 0; i < 3; i++) {
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 0, `child exited with ${r.status} (signal ${r.signal}): ${r.stderr}`);
      assert.match(r.stdout, /rejected:AbortError|finished-before-abort/);
    }
  });
});

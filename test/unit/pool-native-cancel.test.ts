/**
 * Cancelling a job while its worker is inside ONNX Runtime must not take the
 * process down: terminating a worker mid-call aborts it (napi error →
 * std::terminate), which in VS Code is the extension host. The scenario runs
 * in a child process so that an abort shows as its exit status.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { sampleModels } from './cli-spawn';

const script = `
const { WorkerPool, CancelledError } = require(${JSON.stringify(path.join(__dirname, '../../src/jobs/pool.js'))});
const { openModel } = require(${JSON.stringify(path.join(__dirname, '../../src/formats/index.js'))});
const { modelCalib } = require(${JSON.stringify(path.join(__dirname, '../../src/pipelines/evaluate.js'))});
(async () => {
  const model = openModel(process.argv[1]);
  const feeds = modelCalib(model, undefined, { samples: 8 }).samples;
  model.close();
  const pool = new WorkerPool({ size: 1 });
  const job = { kind: 'runtimeActivations', model: process.argv[1], feeds };
  const out = [];
  // Cancel at several points of the run: session creation, a run, between runs.
  for (const ms of [150, 400, 800, 1300, 2000]) {
    const ctl = new AbortController();
    const t0 = Date.now();
    const p = pool.run(job, { signal: ctl.signal });
    setTimeout(() => ctl.abort(), ms);
    let how;
    try { await p; how = 'done'; } catch (e) { how = e instanceof CancelledError ? 'cancelled' : 'error: ' + e.message; }
    out.push({ ms, how, settledMs: Date.now() - t0 - ms });
  }
  // The pool still works afterwards.
  const r = await pool.run(job);
  out.push({ after: Object.keys(r.states ?? r).length > 0 });
  await pool.close();
  console.log(JSON.stringify(out));
})().catch((e) => { console.error(e); process.exitCode = 1; });
`;

describe('worker pool: cancelling a job inside an ONNX Runtime call', function () {
  this.timeout(180_000);
  it('the process survives every cancel point, each job settles promptly, and the pool runs the next job', () => {
    const r = spawnSync(process.execPath, ['-e', script, sampleModels.ocrRec], { encoding: 'utf8' });
    assert.equal(r.signal, null, `the process died of ${r.signal}: ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as ({ ms: number; how: string; settledMs: number } | { after: boolean })[];
    const cancels = out.slice(0, -1) as { ms: number; how: string; settledMs: number }[];
    for (const c of cancels) {
      assert.ok(c.how === 'cancelled' || c.how === 'done', JSON.stringify(c));
      if (c.how === 'cancelled') assert.ok(c.settledMs < 1000, `settled ${c.settledMs} ms after the cancel`);
    }
    assert.ok(cancels.some((c) => c.how === 'cancelled'), JSON.stringify(cancels));
    assert.deepEqual(out[out.length - 1], { after: true });
  });
});

/**
 * The pool's worker processes: every job that loads ONNX Runtime runs in a
 * child process, so a native abort there ends only that process. The
 * scenarios run in a child of the test runner, so that an abort reaching the
 * pool's own process shows as that child's exit status instead of ending mocha.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { sampleModels } from './cli-spawn';

const out = (m: string) => JSON.stringify(path.join(__dirname, '../../src', m));
const prelude = `
const { WorkerPool, CancelledError } = require(${out('jobs/pool.js')});
const { openModel } = require(${out('formats/index.js')});
const { modelCalib, runtimeWeights } = require(${out('pipelines/evaluate.js')});
const { collectActivations } = require(${out('runtime/activations.js')});
const model = process.argv[1];
function calib(samples, shape) {
  const m = openModel(model);
  try { return modelCalib(m, undefined, { samples, shapes: { x: shape } }).samples; } finally { m.close(); }
}
`;

function scenario(body: string): unknown {
  const r = spawnSync(process.execPath, ['-e', `${prelude}(async () => {\n${body}\n})().catch((e) => { console.error(e); process.exitCode = 1; });`, sampleModels.ocrRec], { encoding: 'utf8', timeout: 170_000 });
  assert.equal(r.signal, null, `the pool's process died of ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  const last = r.stdout.trim().split('\n').pop()!;
  assert.ok(last, `the scenario printed nothing: ${r.stderr}`);
  return JSON.parse(last);
}

describe('worker pool: ONNX Runtime jobs in worker processes', function () {
  this.timeout(180_000);

  it('a job that aborts inside the runtime fails naming the model and SIGABRT; the process lives on and the next ORT job gives the in-process result', () => {
    const r = scenario(`
      const feeds = calib(2, [1, 3, 48, 96]);
      const pool = new WorkerPool({ size: 1, allowTestJobs: true });
      // The next job is handed to the same worker process ahead of time: it must survive the abort and run in the replacement.
      const aborted = pool.run({ kind: 'test-abort', model });
      const next = pool.run({ kind: 'runtimeActivations', model, feeds });
      let err;
      try { await aborted; err = 'resolved'; } catch (e) { err = { name: e.name, message: e.message }; }
      const states = await next;
      const direct = (await collectActivations(model, feeds)).states();
      // Pure-JS jobs still run in threads beside it.
      const hang = await pool.run({ kind: 'test-hang', ms: 1, cooperative: true });
      const started = pool.workersStarted;
      await pool.close();
      console.log(JSON.stringify({ err, same: JSON.stringify(states) === JSON.stringify(direct), tensors: states.length, sliced: hang.sliced, started }));
    `) as { err: { name: string; message: string } | string; same: boolean; tensors: number; sliced: number; started: number };
    assert.notEqual(r.err, 'resolved');
    const err = r.err as { name: string; message: string };
    assert.equal(err.name, 'WorkerCrashedError');
    assert.match(err.message, /^ONNX Runtime aborted while running .*ch_PP-OCRv4_rec_infer\.onnx \(SIGABRT\); the worker was restarted/);
    assert.ok(r.tensors > 10, `${r.tensors} activations`);
    assert.ok(r.same, 'the activations measured in the replacement worker process equal those measured in-process');
    assert.ok(r.sliced >= 1);
    // Two worker processes (the aborted one, its replacement) and one thread.
    assert.equal(r.started, 3);
  });

  it('an ORT job cancelled mid-run stops cooperatively within its grace, or is killed at once, and the next job gives the in-process result', () => {
    const r = scenario(`
      const feeds = calib(4, [1, 3, 48, 320]);
      const pool = new WorkerPool({ size: 1 });
      const m = openModel(model);
      const weights = runtimeWeights(m);
      m.close();
      // Every weight of rec under two configs: far longer than the 1.5 s before the cancel.
      const job = { kind: 'runtimeSensitivity', model, weights, configs: ['int8-channel', 'int4-g128'], feeds };
      const runs = [];
      // A cooperative stop (the flag is read between runs) and a kill (a grace shorter than one run).
      for (const grace of [2000, 1]) {
        const ac = new AbortController();
        const t0 = Date.now();
        let progressed = 0;
        const p = pool.run(job, { signal: ac.signal, cancelGraceMs: grace, onProgress: (d) => { progressed = d; } });
        setTimeout(() => ac.abort(), 1500);
        let how;
        try { await p; how = 'done'; } catch (e) { how = e instanceof CancelledError ? 'cancelled' : 'error: ' + e.message; }
        runs.push({ grace, how, settledMs: Date.now() - t0 - 1500, progressed, total: weights.length * 2, started: pool.workersStarted });
      }
      const small = { ...job, weights: weights.slice(-2) };
      const after = await pool.run(small);
      const { measureWeights } = require(${out('runtime/sensitivity.js')});
      const direct = await measureWeights(model, small.weights, small.configs, feeds);
      await pool.close();
      console.log(JSON.stringify({ runs, same: JSON.stringify(after.weights) === JSON.stringify(direct.weights), afterWeights: after.weights.length }));
    `) as { runs: { grace: number; how: string; settledMs: number; progressed: number; total: number; started: number }[]; same: boolean; afterWeights: number };
    for (const c of r.runs) {
      assert.equal(c.how, 'cancelled', JSON.stringify(r.runs));
      assert.ok(c.progressed < c.total, `the job ran to its end: ${JSON.stringify(c)}`);
    }
    // With a 2 s grace the worker process stops by itself (it reads the flag between runs) and is kept;
    // with 1 ms it is killed mid-run, the job settles at once and a replacement starts.
    assert.equal(r.runs[0].started, 1, JSON.stringify(r.runs));
    assert.ok(r.runs[1].settledMs < 1000, `settled ${r.runs[1].settledMs} ms after the cancel`);
    assert.equal(r.runs[1].started, 2, JSON.stringify(r.runs));
    assert.equal(r.afterWeights, 2);
    assert.ok(r.same, 'the job after the cancels measures what the in-process run measures');
  });

  it('a verification run whose ONNX Runtime process aborts rejects naming the model and SIGABRT; the caller lives on', () => {
    const r = scenario(`
      const fs = require('fs');
      const { runOnnxInWorker } = require(${out('runtime/ortRun.js')});
      const tiny = ${JSON.stringify(path.join(__dirname, '../../../test/fixtures/tiny-transformer/tiny-transformer.onnx'))};
      const feeds = Array.from({ length: 4000 }, (_, i) => ({ input_ids: { data: BigInt64Array.from({ length: 16 }, (_, j) => BigInt((i * 7 + j) % 256)), dims: [1, 16], type: 'int64' } }));
      const p = runOnnxInWorker([{ model: tiny, feeds }]);
      // The abort ONNX Runtime would raise, sent to its process from outside while it runs (4000 feeds take seconds, the kill comes at 0.5 s).
      const kids = () => fs.readdirSync('/proc/self/task').flatMap((t) => fs.readFileSync('/proc/self/task/' + t + '/children', 'utf8').split(' ').filter(Boolean));
      setTimeout(() => { for (const k of kids()) process.kill(Number(k), 'SIGABRT'); }, 500);
      let err;
      try { await p; err = 'resolved'; } catch (e) { err = e.message; }
      const again = await runOnnxInWorker([{ model: tiny, feeds: feeds.slice(0, 2) }]);
      console.log(JSON.stringify({ err, again: again[0].length }));
    `) as { err: string; again: number };
    assert.match(r.err, /^ONNX Runtime aborted while running .*tiny-transformer\.onnx \(SIGABRT\)/);
    assert.equal(r.again, 2);
  });
});

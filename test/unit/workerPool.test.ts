import * as assert from 'node:assert/strict';
import { CancelledError, JobFailedError, WorkerCrashedError, WorkerPool } from '../../src/jobs/pool';
import { analyseArray } from '../../src/analysis/weightStats';

function data(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) { s = (s * 1103515245 + 12345) % 2147483648; a[i] = (s / 2147483648 - 0.5) * (i % 13 === 0 ? 40 : 1); }
  return a;
}

describe('worker pool', function () {
  this.timeout(20000);
  let pool: WorkerPool;
  beforeEach(() => { pool = new WorkerPool({ size: 2, allowTestJobs: true, maxOldGenerationSizeMb: 64 }); });
  afterEach(async () => { await pool.close(); });

  it('runs an in-memory analysis with zero-copy transfer and per-tensor progress', async () => {
    const x = data(100_000, 7);
    const expected = analyseArray(x.slice(), {}, [1000, 100], 0);
    const progress: number[] = [];
    const r = await pool.run({ kind: 'analyse', source: { kind: 'array', data: x, shape: [1000, 100], outputChannelAxis: 0 }, options: {} },
      { transfer: [x.buffer as ArrayBuffer], onProgress: (d, t) => progress.push(d / t) });
    assert.equal(x.byteLength, 0, 'the buffer moved to the worker');
    assert.deepEqual(r, expected);
    assert.ok(progress.length > 0 && progress[progress.length - 1] === 1, `progress ${progress}`);
  });

  it('cooperative cancellation stops in-flight work (a 10 s job) and keeps the worker', async () => {
    await pool.run({ kind: 'test-hang', ms: 1, cooperative: true });
    const started = pool.workersStarted;
    const ac = new AbortController();
    const p = pool.run({ kind: 'test-hang', ms: 10_000, cooperative: true }, { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    ac.abort();
    await assert.rejects(p, CancelledError);
    // Timing is not a test's business: what is asserted is that the 10 s job did not run to its end.
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
    const r = await pool.run({ kind: 'test-hang', ms: 5, cooperative: true });
    assert.ok(r.sliced >= 1);
    assert.equal(pool.workersStarted, started, 'no worker was replaced');
  });

  it('a worker that ignores cancellation is terminated and replaced after the grace period', async () => {
    await Promise.all([pool.run({ kind: 'test-hang', ms: 1, cooperative: false }), pool.run({ kind: 'test-hang', ms: 1, cooperative: false })]);
    const started = pool.workersStarted;
    const ac = new AbortController();
    const p = pool.run({ kind: 'test-hang', ms: 10_000, cooperative: false }, { signal: ac.signal });
    await new Promise((r) => setTimeout(r, 50));
    const t0 = Date.now();
    ac.abort();
    await assert.rejects(p, CancelledError);
    const dt = Date.now() - t0;
    // Not before the grace period (cooperative workers get their chance), and not the job's 10 s.
    assert.ok(dt >= 90 && dt < 5000, `took ${dt} ms`);
    const x = data(1000, 3);
    assert.deepEqual(await pool.run({ kind: 'analyse', source: { kind: 'array', data: x.slice() }, options: {} }), analyseArray(x));
    await Promise.all([pool.run({ kind: 'test-hang', ms: 20, cooperative: false }), pool.run({ kind: 'test-hang', ms: 20, cooperative: false })]);
    assert.equal(pool.workersStarted, started + 1, 'exactly one replacement');
  });

  for (const how of ['throw', 'exit', 'oom'] as const) {
    it(`a crashing job (${how}) fails with a clear error and the pool runs the next job`, async () => {
      const err = await pool.run({ kind: 'test-crash', how }).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof WorkerCrashedError, String(err));
      const msg = (err as Error).message;
      assert.match(msg, /test-crash job failed: /);
      if (how === 'throw') assert.match(msg, /deliberate crash/);
      if (how === 'exit') assert.match(msg, /exited with code 3/);
      if (how === 'oom') assert.match(msg, /memory/i);
      const x = data(5000, 11);
      assert.deepEqual(await pool.run({ kind: 'analyse', source: { kind: 'array', data: x.slice() }, options: {} }), analyseArray(x));
    });
  }

  it('a job handed to a worker ahead of time survives that worker crashing on the job before it', async () => {
    const one = new WorkerPool({ size: 1, allowTestJobs: true, maxOldGenerationSizeMb: 64 });
    try {
      const x = data(5000, 5);
      const crash = one.run({ kind: 'test-crash', how: 'exit' });
      const next = one.run({ kind: 'analyse', source: { kind: 'array', data: x.slice() }, options: {} });
      await assert.rejects(crash, WorkerCrashedError);
      assert.deepEqual(await next, analyseArray(x));
      assert.equal(one.workersStarted, 2);
    } finally { await one.close(); }
  });

  it('a job that moves its buffer is not handed ahead to a busy worker, so a crash before it cannot lose its data', async () => {
    const one = new WorkerPool({ size: 1, allowTestJobs: true, maxOldGenerationSizeMb: 64 });
    try {
      const x = data(5000, 9);
      const expected = analyseArray(x.slice());
      const crash = one.run({ kind: 'test-crash', how: 'exit' });
      const next = one.run({ kind: 'analyse', source: { kind: 'array', data: x }, options: {} }, { transfer: [x.buffer as ArrayBuffer] });
      await assert.rejects(crash, WorkerCrashedError);
      assert.deepEqual(await next, expected);
      assert.equal(x.byteLength, 0, 'the buffer moved (to the replacement worker)');
    } finally { await one.close(); }
  });

  it('a job cancelled while it waits behind another in its worker settles at once and never runs', async () => {
    const one = new WorkerPool({ size: 1, allowTestJobs: true });
    try {
      await one.run({ kind: 'test-hang', ms: 1, cooperative: true });
      const ac = new AbortController();
      const t0 = Date.now();
      const running = one.run({ kind: 'test-hang', ms: 300, cooperative: true });
      // Non-cooperative: had it started, the job after it would wait its full 10 s.
      const waiting = one.run({ kind: 'test-hang', ms: 10_000, cooperative: false }, { signal: ac.signal });
      ac.abort();
      await assert.rejects(waiting, CancelledError);
      assert.ok((await running).sliced >= 1);
      assert.ok((await one.run({ kind: 'test-hang', ms: 1, cooperative: true })).sliced >= 1);
      assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
      assert.equal(one.workersStarted, 1, 'no worker was replaced');
    } finally { await one.close(); }
  });

  it('a job error (bad input) fails that job only, naming the problem', async () => {
    await assert.rejects(pool.run({ kind: 'analyse', source: { kind: 'file', path: '/nonexistent/model.safetensors', tensor: 'w' }, options: {} }),
      (e: unknown) => e instanceof JobFailedError && /model\.safetensors/.test(e.message));
    const r = await pool.run({ kind: 'test-hang', ms: 1, cooperative: true });
    assert.ok(r.sliced >= 1);
  });

  it('test jobs are refused unless enabled', async () => {
    const prod = new WorkerPool({ size: 1 });
    try {
      await assert.rejects(prod.run({ kind: 'test-crash', how: 'exit' }), /test jobs are disabled/);
    } finally { await prod.close(); }
  });

  it('queued jobs cancelled before they start never run; pool size defaults to at least 1', async () => {
    const ac = new AbortController();
    const busy = [pool.run({ kind: 'test-hang', ms: 100, cooperative: true }), pool.run({ kind: 'test-hang', ms: 100, cooperative: true })];
    const queued = pool.run({ kind: 'test-hang', ms: 10_000, cooperative: false }, { signal: ac.signal });
    ac.abort();
    await assert.rejects(queued, CancelledError);
    await Promise.all(busy);
    assert.ok(new WorkerPool().size >= 1);
  });
});

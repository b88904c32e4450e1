import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { CancelledError, WorkerPool } from '../../src/jobs/pool';
import { GptqOptions, gptq, gptqHessian } from '../../src/quant/algorithms/gptq';
import { gptqParallel } from '../../src/pipelines/gptqParallel';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
}
const normal = (r: () => number) => Math.sqrt(-2 * Math.log(r())) * Math.cos(2 * Math.PI * r());

/** Activations driven by a few shared factors, so H has strong off-diagonal structure. */
function activations(r: () => number, tokens: number, cols: number): Float32Array {
  const latent = 6;
  const mix = Array.from({ length: latent * cols }, () => normal(r));
  const x = new Float32Array(tokens * cols);
  for (let t = 0; t < tokens; t++) {
    const z = Array.from({ length: latent }, () => normal(r));
    for (let j = 0; j < cols; j++) {
      let v = 0.05 * normal(r);
      for (let k = 0; k < latent; k++) v += z[k] * mix[k * cols + j];
      x[t * cols + j] = v;
    }
  }
  return x;
}

/**
 * Textbook GPTQ (no lazy batches, one row scale, natural order) in float64,
 * with the inverse Hessian formed by Gauss-Jordan and then factored: a
 * different route from the library's (which never forms H⁻¹).
 */
function referenceGptq(w: Float32Array, rows: number, cols: number, h: Float64Array, bits: number, percDamp: number): Uint8Array {
  const n = cols;
  const a = Array.from({ length: n }, (_, i) => Array.from({ length: 2 * n }, (_, j) => (j < n ? h[i * n + j] : j - n === i ? 1 : 0)));
  let mean = 0;
  for (let i = 0; i < n; i++) mean += h[i * n + i];
  for (let i = 0; i < n; i++) a[i][i] += (percDamp * mean) / n;
  for (let c = 0; c < n; c++) {
    const p = a[c][c];
    for (let j = 0; j < 2 * n; j++) a[c][j] /= p;
    for (let i = 0; i < n; i++) {
      if (i === c) continue;
      const f = a[i][c];
      for (let j = 0; j < 2 * n; j++) a[i][j] -= f * a[c][j];
    }
  }
  const inv = a.map((row) => row.slice(n));
  // Lower Cholesky of H⁻¹ = L Lᵀ, so U = Lᵀ satisfies Uᵀ U = H⁻¹.
  const l = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = inv[i][j];
      for (let k = 0; k < j; k++) s -= l[i][k] * l[j][k];
      l[i][j] = i === j ? Math.sqrt(s) : s / l[j][j];
    }
  }
  const zero = 1 << (bits - 1), qmax = (1 << bits) - 1;
  const codes = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = Array.from(w.subarray(r * cols, (r + 1) * cols));
    const scale = Math.fround(Math.max(...row.map(Math.abs)) / (zero - 1));
    for (let i = 0; i < n; i++) {
      const v = row[i] / scale;
      let q = Math.round(v);
      if (q - v === 0.5 && q % 2 !== 0) q -= 1;
      const u = Math.min(qmax, Math.max(0, q + zero));
      codes[r * cols + i] = u;
      const err = (row[i] - Math.fround(scale * (u - zero))) / l[i][i];
      for (let k = i + 1; k < n; k++) row[k] -= err * l[k][i];
    }
  }
  return codes;
}

describe('GPTQ over the worker pool', function () {
  this.timeout(20000);
  let pool: WorkerPool;
  before(() => {
    // The tsc-compiled worker next to the compiled pool (what the CLI and tests run).
    pool = new WorkerPool({ size: 2, workerScript: path.join(__dirname, '../../src/jobs/worker.js') });
  });
  after(async () => { await pool.close(); });

  // Odd row counts and a column count that leaves odd-width lazy updates exercise every remainder path,
  // and the chunk boundary falls inside a 4-row register block.
  const rows = 37, cols = 99, tokens = 200;
  const configs: GptqOptions[] = [
    { bits: 4, symmetric: true, blockSize: 32 },
    { bits: 3, symmetric: false, groupSize: 33, actOrder: true, blockSize: 32 },
    { bits: 4, symmetric: false, groupSize: 33, actOrder: true, staticGroups: true, blockSize: 16 },
  ];
  for (const cfg of configs) {
    it(`equals single-thread gptq bit for bit: ${JSON.stringify(cfg)}`, async () => {
      const r = rng(77);
      const x = activations(r, tokens, cols);
      const w = Float32Array.from({ length: rows * cols }, () => normal(r) * 0.1);
      const h = gptqHessian(x, tokens, cols);
      const one = gptq(w, rows, cols, h, cfg);
      const seen: number[] = [];
      const par = await gptqParallel(w, rows, cols, h, cfg, { pool, onProgress: (d, t) => seen.push(d / t) });
      assert.deepEqual(par.codes, one.codes);
      assert.deepEqual(par.scales, one.scales);
      assert.deepEqual(par.zeroPoints, one.zeroPoints);
      assert.deepEqual(par.dequantized, one.dequantized);
      assert.deepEqual(par.groupIndex, one.groupIndex);
      assert.deepEqual(par.permutation, one.permutation);
      assert.deepEqual(par.rowLoss, one.rowLoss);
      assert.equal(par.loss, one.loss);
      assert.equal(w.length, rows * cols, 'the caller keeps its weights (chunks are copies)');
      assert.ok(seen.length > 0 && Math.max(...seen) === 1, `progress ${seen}`);
    });
  }

  it('keeps float64 weights exact on the way to the workers', async () => {
    const r = rng(5);
    const x = activations(r, tokens, cols);
    const w = Float64Array.from({ length: rows * cols }, () => normal(r) * 0.1);
    const h = gptqHessian(x, tokens, cols);
    const cfg = { bits: 4, symmetric: false, groupSize: 33 };
    const one = gptq(w, rows, cols, h, cfg);
    const par = await gptqParallel(w, rows, cols, h, cfg, { pool });
    assert.deepEqual(par.codes, one.codes);
    assert.deepEqual(par.dequantized, one.dequantized);
    assert.equal(par.loss, one.loss);
  });

  it('the blocked kernels agree with textbook GPTQ computed through an explicit inverse', async () => {
    const r = rng(123);
    const x = activations(r, tokens, cols);
    const w = Float32Array.from({ length: rows * cols }, () => normal(r) * 0.1);
    const h = gptqHessian(x, tokens, cols);
    const ref = referenceGptq(w, rows, cols, h, 4, 0.01);
    const par = await gptqParallel(w, rows, cols, h, { bits: 4, symmetric: true, blockSize: 32 }, { pool });
    // Both are float64 with different summation orders; a code may flip only where a value sits on a rounding boundary.
    let differ = 0;
    for (let i = 0; i < ref.length; i++) if (ref[i] !== par.codes[i]) differ++;
    assert.ok(differ <= ref.length * 0.002, `${differ} of ${ref.length} codes differ from the reference`);
  });

  it('cancellation mid-run stops the workers and leaves the pool usable', async () => {
    // Each worker has 8 blocks of 64 columns, so 7 are still to go when the first progress arrives.
    const n = 512, rowsBig = 256;
    const r = rng(9);
    const h = gptqHessian(activations(r, 64, n), 64, n);
    const w = Float32Array.from({ length: rowsBig * n }, () => normal(r) * 0.1);
    const ac = new AbortController();
    let progressed = false;
    const p = gptqParallel(w, rowsBig, n, h, { bits: 4, symmetric: true, blockSize: 64 }, {
      pool, signal: ac.signal, onProgress: () => { progressed = true; ac.abort(); },
    });
    await assert.rejects(p, CancelledError);
    assert.ok(progressed, 'cancelled after the rows had started');
    const x = activations(r, 64, 16);
    const small = Float32Array.from({ length: 3 * 16 }, () => normal(r));
    const hs = gptqHessian(x, 64, 16);
    const par = await gptqParallel(small, 3, 16, hs, { bits: 4, symmetric: true }, { pool });
    assert.deepEqual(par.codes, gptq(small, 3, 16, hs, { bits: 4, symmetric: true }).codes);
  });

  it('refuses bad input before starting workers and honours an aborted signal', async () => {
    const h = new Float64Array(16 * 16);
    for (let j = 0; j < 16; j++) h[j * 16 + j] = 1;
    await assert.rejects(gptqParallel(new Float32Array(10), 4, 16, h, { bits: 4, symmetric: true }, { pool }), /weights hold 10 < 4×16/);
    await assert.rejects(gptqParallel(new Float32Array(64), 4, 16, h, { bits: 4, symmetric: true, groupSize: 5 }, { pool }), /does not divide/);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(gptqParallel(new Float32Array(64), 4, 16, h, { bits: 4, symmetric: true }, { pool, signal: ac.signal }), CancelledError);
  });
});

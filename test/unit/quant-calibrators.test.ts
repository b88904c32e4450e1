import * as assert from 'node:assert/strict';
import {
  HistogramCollector, MinMaxCalibrator, PercentileCalibrator, MseCalibrator, EntropyCalibrator, AbsMeanCalibrator,
  rangeTarget, quantize, QuantSpec, calibrator,
} from '../../src/quant';
import { randomTensor, rng } from './quant-testUtil';

const int8: QuantSpec = { format: 'int', bits: 8, granularity: { kind: 'tensor' } };
const int4asym: QuantSpec = { format: 'uint', bits: 4, symmetric: false, granularity: { kind: 'tensor' } };

function sortedF64(x: ArrayLike<number>): Float64Array {
  return Float64Array.from(x).sort();
}
/** numpy.percentile (linear) written independently: rank p/100·(n−1) between neighbours. */
function npPercentile(sorted: Float64Array, p: number): number {
  const h = (sorted.length - 1) * (p / 100);
  const lo = Math.floor(h);
  const hi = Math.ceil(h);
  return sorted[lo] * (hi - h || (lo === hi ? 1 : 0)) + (lo === hi ? 0 : sorted[hi] * (h - lo));
}

describe('quant calibrators', () => {
  it('min-max on values and on a histogram merged from batches', () => {
    const x = randomTensor(5000, 1, 2);
    const r = new MinMaxCalibrator().fromValues(x, x.length);
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of x) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    assert.deepEqual(r, { lo, hi });
    const h = new HistogramCollector();
    for (let i = 0; i < 5; i++) h.add(x.subarray(i * 1000, (i + 1) * 1000));
    assert.deepEqual(new MinMaxCalibrator().fromHistogram(h), { lo, hi });
    assert.equal(h.count, 5000);
  });

  it('histogram: doubling the range merges bins exactly; total count and bin membership preserved', () => {
    const h = new HistogramCollector(64);
    const a = Float32Array.from([0.1, -0.2, 0.3, 0.05]);
    h.add(a); // range: the power of two above 0.3, 0.5
    assert.equal(h.range, 0.5);
    const b = Float32Array.from([1.0, -1.1]); // forces growth to 2
    h.add(b);
    assert.equal(h.range, 2);
    const w = h.range / 64;
    const expect = new Float64Array(128);
    for (const v of [...a, ...b]) expect[Math.min(127, Math.floor(v / w) + 64)]++;
    assert.deepEqual(Array.from(h.counts), Array.from(expect));
    // Merging collectors gives the same histogram as adding all batches to one.
    const h1 = new HistogramCollector(64).add(a);
    const h2 = new HistogramCollector(64).add(b);
    h1.merge(h2);
    assert.equal(h1.range, h.range);
    assert.deepEqual(Array.from(h1.counts), Array.from(h.counts));
    assert.throws(() => h.add([NaN]), /non-finite activation NaN at index 0/);
  });

  it('percentile on values equals the float64 numpy-style reference (symmetric |x| and two-sided)', () => {
    for (const p of [99, 99.9, 99.99]) {
      const x = randomTensor(3001, 7, 1.5);
      const c = new PercentileCalibrator(p);
      const sym = c.fromValues(x, x.length, rangeTarget(int8));
      const t = npPercentile(sortedF64(Array.from(x, Math.abs)), p);
      assert.ok(Math.abs(sym.hi - t) < 1e-12 && sym.lo === -sym.hi, `p=${p}: ${sym.hi} vs ${t}`);
      const two = c.fromValues(x, x.length, rangeTarget(int4asym));
      const s = sortedF64(x);
      assert.ok(Math.abs(two.lo - npPercentile(s, 100 - p)) < 1e-12);
      assert.ok(Math.abs(two.hi - npPercentile(s, p)) < 1e-12);
    }
    assert.throws(() => new PercentileCalibrator(0), /percentile must be in/);
  });

  it('percentile on a histogram is within one bin width of the exact percentile', () => {
    const x = randomTensor(200000, 8, 1);
    const h = new HistogramCollector(2048);
    for (let i = 0; i < 4; i++) h.add(x.subarray(i * 50000, (i + 1) * 50000));
    for (const p of [99.9, 99.99]) {
      const c = new PercentileCalibrator(p);
      const exact = npPercentile(sortedF64(Array.from(x, Math.abs)), p);
      const est = c.fromHistogram(h, rangeTarget(int8)).hi;
      assert.ok(Math.abs(est - exact) <= h.binWidth, `p=${p}: ${est} vs ${exact} (bin ${h.binWidth})`);
    }
  });

  it('MSE clipping picks the grid ratio with least squared error (float64 brute force), and never loses to min-max', () => {
    const r = rng(3);
    for (let trial = 0; trial < 20; trial++) {
      const n = 128;
      const x = randomTensor(n, 50 + trial, 1);
      x[Math.floor(r() * n)] = 8 * (r() < 0.5 ? -1 : 1); // an outlier that makes clipping worth it
      const spec: QuantSpec = { format: 'int', bits: 4, granularity: { kind: 'tensor' } };
      const c = new MseCalibrator(20, 0.3);
      const got = c.fromValues(x, n, rangeTarget(spec));
      // Reference: quantize the whole tensor with each candidate range through the public API and measure in float64.
      let bestE = Infinity;
      let bestR = 0;
      let lo = Infinity;
      let hi = -Infinity;
      for (const v of x) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
      for (let k = 0; k < 20; k++) {
        const ratio = 1 - (k * 0.7) / 19;
        const q = quantize(x, [n], { ...spec, calibrator: { name: 'fixed', fromValues: () => ({ lo: lo * ratio, hi: hi * ratio }), fromHistogram: () => ({ lo: 0, hi: 0 }) } });
        let e = 0;
        for (let i = 0; i < n; i++) e += (q.dequantized[i] - x[i]) ** 2;
        if (e < bestE) {
          bestE = e;
          bestR = ratio;
        }
      }
      assert.ok(Math.abs(got.hi - hi * bestR) < 1e-12 && Math.abs(got.lo - lo * bestR) < 1e-12, `trial ${trial}`);
      const mse = quantize(x, [n], { ...spec, calibrator: 'mse' });
      const mm = quantize(x, [n], spec);
      const err = (d: Float32Array) => d.reduce((s, v, i) => s + (v - x[i]) ** 2, 0);
      assert.ok(err(mse.dequantized) <= err(mm.dequantized));
    }
  });

  it('MSE clipping per group: each group gets its own ratio', () => {
    const x = randomTensor(4 * 64, 9);
    x[10] = 12; // outlier only in the first group
    const q = quantize(x, [4, 64], { format: 'int', bits: 4, granularity: { kind: 'group', axis: 1, size: 64 }, calibrator: 'mse' });
    const mm = quantize(x, [4, 64], { format: 'int', bits: 4, granularity: { kind: 'group', axis: 1, size: 64 } });
    assert.ok(q.scales[0] < mm.scales[0] * 0.9, 'the outlier group is clipped');
  });

  it('entropy (KL) threshold equals a straightforward float64 re-implementation over the folded histogram', () => {
    const x = randomTensor(50000, 13, 1);
    for (let i = 0; i < 20; i++) x[i] = 20 + i; // sparse far outliers
    const h = new HistogramCollector(2048).add(x);
    const got = new EntropyCalibrator().fromHistogram(h, rangeTarget(int8));
    // Reference written from the TensorRT description with plain arrays.
    const abs = h.absCounts();
    const nq = 128;
    let best = Infinity;
    let bestI = -1;
    for (let i = nq; i <= 2048; i++) {
      const P = Array.from(abs.slice(0, i));
      P[i - 1] += abs.slice(i).reduce((a, b) => a + b, 0);
      const Q = new Array<number>(i).fill(0);
      for (let c = 0; c < nq; c++) {
        const s = Math.floor((c * i) / nq);
        const e = Math.floor(((c + 1) * i) / nq);
        const chunk = Array.from(abs.slice(s, e));
        const nz = chunk.filter((v) => v > 0).length;
        const mass = chunk.reduce((a, b) => a + b, 0);
        for (let j = s; j < e; j++) Q[j] = abs[j] > 0 ? mass / nz : 0;
      }
      const ps = P.reduce((a, b) => a + b, 0);
      const qs = Q.reduce((a, b) => a + b, 0);
      let kl = 0;
      for (let j = 0; j < i; j++) {
        if (P[j] === 0) continue;
        const p = P[j] / ps;
        const q = Math.max(Q[j] / qs, 1e-12);
        kl += p * Math.log(p / q);
      }
      if (kl < best) {
        best = kl;
        bestI = i;
      }
    }
    assert.ok(Math.abs(got.hi - bestI * h.binWidth) < 1e-9, `${got.hi} vs ${bestI * h.binWidth}`);
    assert.ok(got.hi < 10, `entropy clips the outliers (threshold ${got.hi})`);
    assert.ok(got.hi > 2.5, `but keeps the Gaussian bulk (threshold ${got.hi})`);
  });

  it('absmean and the calibrator registry', () => {
    const x = randomTensor(1000, 17);
    const m = x.reduce((s, v) => s + Math.abs(v), 0) / 1000;
    const r = new AbsMeanCalibrator().fromValues(x, 1000);
    assert.ok(Math.abs(r.hi - m) < 1e-9 && r.lo === -r.hi);
    assert.equal(calibrator('percentile', { percentile: 99.9 }).name, 'percentile(99.9)');
    assert.throws(() => calibrator('nope' as never), /unknown calibrator 'nope'/);
  });
});

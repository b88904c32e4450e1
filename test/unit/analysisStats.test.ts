import * as assert from 'node:assert/strict';
import { PERCENTILES, analyseArray, analyseSource, arraySource, channelLayout, finalize, finalizeCodes, mergeCodes, raw16Source, runCodes, mergePass1, mergePass2, pass2Params, resolveOptions, runPass1, runPass2, TensorStats } from '../../src/analysis/weightStats';
import { WasmKernel } from '../../src/kernels/statsKernel';
import { StatsKernelRef } from '../../src/kernels/statsKernelRef';
import { rng } from '../random';

function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}
function make(n: number, f: (i: number, r: () => number) => number, seed = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = f(i, r);
  return a;
}

/** Independent float64 reference: two-pass moments, sorting for percentiles and top-k. */
function reference(x: Float32Array, eps = 1e-6, sigma = 6) {
  const fin: number[] = [];
  let nan = 0, inf = 0, zeros = 0, near = 0;
  for (const v of x) {
    if (Number.isNaN(v)) { nan++; continue; }
    if (!Number.isFinite(v)) { inf++; continue; }
    fin.push(v);
    if (v === 0) zeros++;
    if (Math.abs(v) < Math.fround(eps)) near++;
  }
  const n = fin.length;
  let s = 0;
  for (const v of fin) s += v;
  const mean = s / n;
  let m2 = 0, m3 = 0, m4 = 0, a3 = 0;
  for (const v of fin) { const d = v - mean; m2 += d * d; m3 += d * d * d; m4 += d * d * d * d; a3 += Math.abs(d) ** 3; }
  const std = Math.sqrt(m2 / n);
  const sorted = Float64Array.from(fin).sort();
  const pct = PERCENTILES.map((q) => sorted[Math.min(n, Math.max(1, Math.ceil((q / 100) * n))) - 1]);
  let outliers = 0;
  for (const v of fin) if (Math.abs(v - mean) > sigma * std) outliers++;
  const idx: number[] = [];
  x.forEach((v, i) => { if (Number.isFinite(v)) idx.push(i); });
  idx.sort((a, b) => Math.abs(x[b]) - Math.abs(x[a]) || a - b);
  return {
    n, nan, inf, zeros, near, mean, std, min: sorted[0], max: sorted[n - 1],
    /** E|x - mean|^3 / std^3, which scales the skewness error bound. */
    abs3: m2 > 0 ? (a3 / n) / Math.pow(m2 / n, 1.5) : 0,
    skew: m2 > 0 ? Math.sqrt(n) * m3 / Math.pow(m2, 1.5) : 0,
    kurt: m2 > 0 ? n * m4 / (m2 * m2) - 3 : 0,
    pct, outliers, top: idx.slice(0, 16).map((i) => ({ index: i, value: x[i] })),
  };
}

function close(a: number, b: number, rel: number, abs = 0, what = ''): void {
  assert.ok(Math.abs(a - b) <= rel * Math.abs(b) + abs, `${what}: ${a} vs ${b}`);
}

/**
 * The moments' error bound (docs/statistics-engine.md): powers summed in float32
 * within 64-element blocks put the mean within 4e-6·σ, σ within 4e-6
 * relative, the skewness within 2e-5·(E|x−μ|³/σ³ + 1) and the kurtosis within
 * 4e-5·(kurtosis + 4) of the exact values; `k` widens it for comparing two
 * computations that each carry it.
 */
function closeMoments(s: Pick<TensorStats, 'mean' | 'std' | 'skewness' | 'kurtosis'>, r: { mean: number; std: number; skew: number; kurt: number; abs3: number }, label: string, k = 1): void {
  close(s.mean, r.mean, 0, k * 4e-6 * r.std + 1e-300, `${label} mean`);
  close(s.std, r.std, k * 4e-6, 1e-300, `${label} std`);
  close(s.skewness, r.skew, 0, k * 2e-5 * (r.abs3 + 1), `${label} skew`);
  close(s.kurtosis, r.kurt, 0, k * 4e-5 * (r.kurt + 4), `${label} kurt`);
}

/** Per-channel float64 reference: mean, population std and the first finite value (the kernel's shift). */
function channelReference(x: Float32Array, shape: number[], axis: number) {
  const C = shape[axis], stride = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const vals: number[][] = Array.from({ length: C }, () => []);
  for (let i = 0; i < x.length; i++) if (Number.isFinite(x[i])) vals[Math.floor(i / stride) % C].push(x[i]);
  return vals.map((v) => {
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    return { mean, sd: Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length), first: v[0] };
  });
}

/**
 * Per-channel sums run in float32 blocks around the channel's first value
 * (README): the mean is within 4e-6·(σ + |first − mean|) and σ within
 * 4e-6·σ·(1 + (first − mean)²/σ²) of the exact values (`k` widens it).
 */
function closeChannels(ch: { mean: ArrayLike<number>; std: ArrayLike<number> }, ref: ReturnType<typeof channelReference>, label: string, k = 1): void {
  ref.forEach((r, c) => {
    const far = Math.abs(r.first - r.mean);
    close(ch.mean[c], r.mean, 0, k * 4e-6 * (r.sd + far) + 1e-300, `${label} mean ch${c}`);
    close(ch.std[c], r.sd, 0, k * 4e-6 * (r.sd + (far * far) / Math.max(r.sd, 1e-300)) + 1e-300, `${label} std ch${c}`);
  });
}

function checkAgainstReference(x: Float32Array, s: TensorStats, label: string): void {
  const r = reference(x);
  assert.equal(s.count, r.n, `${label} count`);
  assert.equal(s.nan, r.nan, `${label} nan`);
  assert.equal(s.inf, r.inf, `${label} inf`);
  assert.equal(s.zeros, r.zeros, `${label} zeros`);
  assert.equal(s.nearZeros, r.near, `${label} near`);
  assert.ok(s.min === r.min, `${label} min`); // === : the sign of a zero extreme is not specified
  assert.ok(s.max === r.max, `${label} max`);
  assert.equal(s.absMax, Math.max(-r.min, r.max));
  closeMoments(s, r, label);
  assert.equal(s.outliers.count, r.outliers, `${label} outliers`);
  assert.deepEqual(s.outliers.top, r.top, `${label} top-k`);
  assert.equal(s.histogram.counts.reduce((a, b) => a + b, 0), r.n, `${label} histogram total`);
  s.percentiles.forEach((p, i) => {
    assert.ok(Math.abs(p.value - r.pct[i]) <= p.errorBound, `${label} p${p.q}: ${p.value} vs exact ${r.pct[i]} (bound ${p.errorBound})`);
  });
}

const N = 50_000;
const cases: Record<string, () => Float32Array> = {
  normal: () => make(N, (_, r) => normal(r)),
  offsetNarrow: () => make(N, (_, r) => 1000 + 1e-3 * normal(r), 2),
  heavyTail: () => make(N, (_, r) => normal(r) / Math.max(1e-3, Math.abs(normal(r))) ** 1.5, 3),
  constant: () => new Float32Array(N).fill(0.75),
  allZero: () => new Float32Array(N),
  nanInf: () => make(N, (i, r) => (i % 97 === 0 ? NaN : i % 101 === 0 ? (i % 2 ? Infinity : -Infinity) : normal(r)), 4),
  giantOutlier: () => { const a = make(N, (_, r) => normal(r) * 0.02, 5); a[31337] = 1e30; return a; },
  sparse: () => make(N, (_, r) => (r() < 0.7 ? 0 : r() < 0.1 ? 1e-8 : normal(r)), 6),
  // Powers of d are summed in float32: these would overflow (d^4 > 3.4e38) or underflow without the kernel's power-of-two scale.
  huge: () => make(N, (_, r) => 3e18 * normal(r), 9),
  tiny: () => make(N, (_, r) => 1e-30 * normal(r), 10),
  hugeOutlierLate: () => { const a = make(N, (_, r) => normal(r) * 1e-3, 11); a[N - 7] = -2e37; return a; },
};

describe('analysis: statistics against a float64 reference', () => {
  for (const [name, gen] of Object.entries(cases)) {
    it(name, () => {
      const x = gen();
      checkAgainstReference(x, analyseArray(x), name);
    });
  }

  it('refined percentiles are exact; unrefined ones are within half a key bucket', () => {
    for (const name of ['normal', 'heavyTail', 'sparse', 'offsetNarrow']) {
      const x = cases[name]().subarray(0, 20_000);
      const r = reference(x);
      const s = analyseArray(x, { chunkElements: 4099 });
      s.percentiles.forEach((p, i) => { assert.equal(p.errorBound, 0); assert.ok(p.value === r.pct[i], `${name} p${p.q}: ${p.value} vs ${r.pct[i]}`); });
      const coarse = analyseArray(x, { refinePercentiles: false });
      // A key bucket spans 2^16 float32 values: at most 2^-7 of the magnitude, so half of it is ≤ 2^-8·|x| (+ subnormal slack).
      coarse.percentiles.forEach((p, i) => assert.ok(p.errorBound <= 2 ** -8 * Math.abs(r.pct[i]) * (1 + 2 ** -7) + 2 ** -134, `${name} p${p.q} bound ${p.errorBound}`));
      checkAgainstReference(x, coarse, `${name} unrefined`);
    }
  });

  it('histograms agree with an independent binning up to edge rounding', () => {
    const x = cases.heavyTail();
    const s = analyseArray(x);
    const lin = new Array(2048).fill(0);
    const logc = new Map<number, number>();
    let ambiguous = 0;
    const w = (s.max - s.min) / 2048;
    for (const v of x) {
      const t = (v - s.min) / w;
      lin[Math.min(2047, Math.floor(t))]++;
      if (Math.abs(t - Math.round(t)) * w < 4 * 2 ** -23 * Math.max(Math.abs(s.min), Math.abs(s.max))) ambiguous++;
      const a = Math.abs(v);
      if (a >= 2 ** -126) { let e = Math.floor(Math.log2(a)); while (2 ** e > a) e--; while (2 ** (e + 1) <= a) e++; logc.set(e, (logc.get(e) ?? 0) + 1); }
    }
    let l1 = 0;
    lin.forEach((c, i) => { l1 += Math.abs(c - s.histogram.counts[i]); });
    assert.ok(l1 <= 2 * ambiguous, `L1 ${l1} ambiguous ${ambiguous}`);
    s.logHistogram.counts.forEach((c, i) => assert.equal(c, logc.get(s.logHistogram.lowExp + i) ?? 0, `log bin ${s.logHistogram.lowExp + i}`));
    assert.equal([...logc.values()].reduce((a, b) => a + b, 0), s.logHistogram.counts.reduce((a, b) => a + b, 0));
  });

  it('per-output-channel stats for axis 0, a middle axis and the last axis', () => {
    const shape = [6, 5, 7, 3];
    const n = shape.reduce((a, b) => a * b, 1);
    const x = make(n, (i, r) => normal(r) * (1 + (i % 3)) + (i % 11 === 0 ? 30 : 0), 7);
    for (const axis of [0, 1, 3]) {
      const s = analyseArray(x, { chunkElements: 37, channelOutlierFactor: 2 }, shape, axis);
      const ch = s.channels!;
      assert.equal(ch.axis, axis);
      assert.equal(ch.channels, shape[axis]);
      const stride = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
      const vals: number[][] = Array.from({ length: shape[axis] }, () => []);
      for (let i = 0; i < n; i++) vals[Math.floor(i / stride) % shape[axis]].push(x[i]);
      const absmax: number[] = [];
      vals.forEach((v, c) => {
        const mean = v.reduce((a, b) => a + b, 0) / v.length;
        const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
        assert.ok(ch.min[c] === Math.min(...v));
        assert.ok(ch.max[c] === Math.max(...v));
        closeChannels({ mean: [ch.mean[c]], std: [ch.std[c]] }, [{ mean, sd, first: v[0] }], `axis ${axis} ch${c}`);
        absmax.push(Math.max(...v.map(Math.abs)));
      });
      const sorted = [...absmax].sort((a, b) => a - b);
      const m = sorted.length >> 1;
      const med = sorted.length % 2 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
      assert.equal(ch.medianAbsMax, med);
      assert.deepEqual(ch.outlierChannels, absmax.flatMap((a, c) => (a > 2 * med ? [c] : [])));
      const ranges = vals.map((v) => Math.max(...v) - Math.min(...v)).sort((a, b) => a - b);
      assert.equal(ch.rangeSpread.max, ranges[ranges.length - 1]);
      assert.equal(ch.rangeSpread.min, ranges[0]);
    }
  });

  it('median channel abs-max and median range equal a sort, for odd and even channel counts with ties', () => {
    const sortedMedian = (v: number[]) => {
      const s = [...v].sort((a, b) => a - b);
      const m = s.length >> 1;
      return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
    };
    for (const C of [1, 2, 3, 1000, 1001, 4096]) {
      const r = rng(C);
      // Few distinct magnitudes, so many channels tie; 4 values per channel.
      const x = make(C * 4, () => (r() < 0.5 ? -1 : 1) * (1 + Math.floor(r() * 7)) * 0.25, C);
      const s = analyseArray(x, {}, [C, 4], 0).channels!;
      const absmax: number[] = [], ranges: number[] = [];
      for (let c = 0; c < C; c++) {
        const v = Array.from(x.subarray(c * 4, c * 4 + 4));
        absmax.push(Math.max(...v.map(Math.abs)));
        ranges.push(Math.max(...v) - Math.min(...v));
      }
      assert.equal(s.medianAbsMax, sortedMedian(absmax), `C=${C}`);
      assert.equal(s.rangeSpread.median, sortedMedian(ranges), `C=${C}`);
    }
  });

  it('a crafted channel outlier is flagged', () => {
    const shape = [16, 64];
    const x = make(16 * 64, (_, r) => normal(r) * 0.1, 8);
    x[5 * 64 + 17] = 9;
    const s = analyseArray(x, {}, shape, 0);
    assert.deepEqual(s.channels!.outlierChannels, [5]);
    assert.equal(channelLayout([3], 0), undefined);
  });
});

describe('analysis: streaming and range merging', () => {
  it('odd chunk sizes give the same statistics as one chunk', () => {
    for (const name of ['normal', 'nanInf', 'giantOutlier', 'offsetNarrow']) {
      const x = cases[name]();
      const whole = analyseArray(x, { chunkElements: x.length }, [500, 100], 0);
      for (const chunk of [1, 333, 1000, 4097]) {
        const xs = chunk === 1 ? x.subarray(0, 3001) : x;
        const a = analyseArray(xs, { chunkElements: chunk }, chunk === 1 ? undefined : [500, 100], 0);
        const b = chunk === 1 ? analyseArray(xs, { chunkElements: xs.length }) : whole;
        for (const k of ['count', 'nan', 'inf', 'zeros', 'nearZeros', 'min', 'max'] as const) assert.equal(a[k], b[k], `${name}/${chunk} ${k}`);
        closeMoments(a, reference(xs), `${name}/${chunk}`);
        closeMoments(b, reference(xs), `${name}/${chunk} whole`);
        assert.deepEqual(a.histogram, b.histogram);
        assert.deepEqual(a.outliers, b.outliers);
        assert.deepEqual(a.percentiles, b.percentiles);
        if (chunk !== 1) assert.deepEqual(a.channels!.min, b.channels!.min);
      }
    }
  });

  it('a kernel reused after an abandoned (cancelled) pass gives the same statistics', () => {
    const x = cases.heavyTail();
    const codes = new Uint16Array(x.length);
    for (let i = 0; i < codes.length; i++) codes[i] = (i * 7919) & 0xffff;
    const k = new WasmKernel(1000);
    const fresh = (src: () => ReturnType<typeof arraySource>) => analyseSource(src(), { chunkElements: 1000 }, undefined, new WasmKernel(1000));
    for (const [label, src] of [['f32', () => arraySource(x)], ['f16', () => raw16Source(codes, 'f16')]] as const) {
      // 50 chunks per pass: stop inside pass 1 (or the one code-counting pass), then inside pass 2.
      for (const stopAt of label === 'f32' ? [25, 75] : [25]) {
        let calls = 0;
        assert.throws(() => analyseSource(src(), { chunkElements: 1000 }, undefined, k, () => { if (++calls === stopAt) throw new Error('stop'); }), /stop/);
        assert.deepEqual(analyseSource(src(), { chunkElements: 1000 }, undefined, k), fresh(src), `${label} after stopping at chunk ${stopAt}`);
      }
    }
  });

  it('three ranges merged equal the whole tensor', () => {
    const x = cases.heavyTail();
    const o = resolveOptions({ chunkElements: 1024 });
    const layout = channelLayout([250, 200], 1)!;
    const src = arraySource(x);
    const k = new WasmKernel(1024);
    const cuts: [number, number][] = [[0, 12345], [12345, 30001], [30001, x.length]];
    const p1 = cuts.map((r) => runPass1(src, k, r, o, layout)).reduce((a, b) => mergePass1(a, b, o.topK));
    const params = pass2Params(p1, o);
    const p2 = cuts.map((r) => runPass2(src, k, r, params, o)).reduce(mergePass2);
    const merged = finalize(p1, p2, params, o, layout);
    const whole = analyseArray(x, { chunkElements: 1024 }, [250, 200], 1);
    checkAgainstReference(x, merged, 'merged');
    assert.deepEqual(merged.histogram, whole.histogram);
    assert.deepEqual(merged.percentiles, whole.percentiles);
    closeMoments(merged, { ...whole, skew: whole.skewness, kurt: whole.kurtosis, abs3: reference(x).abs3 }, 'merged vs whole', 2);
    const ref = channelReference(x, [250, 200], 1);
    closeChannels(merged.channels!, ref, 'merged');
    closeChannels(whole.channels!, ref, 'whole');
  });
});

describe('analysis: WASM kernels equal the TypeScript twin', () => {
  it('bit-identical full statistics on every crafted tensor and odd chunk sizes', () => {
    for (const [name, gen] of Object.entries(cases)) {
      const x = gen().subarray(0, 20_003);
      for (const chunk of [7, 4099]) {
        const w = analyseArray(x, { chunkElements: chunk }, [20_003], undefined, new WasmKernel(chunk));
        const t = analyseArray(x, { chunkElements: chunk }, [20_003], undefined, new StatsKernelRef(chunk));
        assert.deepEqual(w, t, `${name}/${chunk}`);
      }
      // Last axis (channelsLast: four channels per vector once every channel has its shift, float32
      // partial sums flushed every 16·C elements and per chunk); axis 0: runs of 200 split by the chunks
      // at odd offsets (lane path).
      for (const [shape, axis] of [[[100, 200], 1], [[2000, 10], 1], [[100, 200], 0]] as const) {
        const w = analyseArray(x.subarray(0, 20_000), { chunkElements: 999 }, shape, axis, new WasmKernel(999));
        const t = analyseArray(x.subarray(0, 20_000), { chunkElements: 999 }, shape, axis, new StatsKernelRef(999));
        assert.deepEqual(w, t, `${name} channels [${shape}] axis ${axis}`);
      }
    }
  });

  it('f16 and bf16 decoding: all 65536 codes, against the IEEE formula', () => {
    const n = 65536;
    const w = new WasmKernel(n), t = new StatsKernelRef(n);
    for (const dt of ['f16', 'bf16'] as const) {
      for (const k of [w, t]) {
        const raw = new Uint16Array(k.raw().buffer, k.raw().byteOffset, n);
        for (let i = 0; i < n; i++) raw[i] = i;
        k.decode(dt, n - 3); // odd count exercises the scalar tail
      }
      const a = w.f32(), b = t.f32();
      for (let h = 0; h < n - 3; h++) {
        const sign = h & 0x8000 ? -1 : 1;
        let ref: number;
        if (dt === 'bf16') {
          const e = (h >> 7) & 0xff, m = h & 0x7f;
          ref = e === 255 ? (m ? NaN : sign * Infinity) : e === 0 ? sign * m * 2 ** -133 : sign * (1 + m / 128) * 2 ** (e - 127);
        } else {
          const e = (h >> 10) & 0x1f, m = h & 0x3ff;
          ref = e === 31 ? (m ? NaN : sign * Infinity) : e === 0 ? sign * m * 2 ** -24 : sign * (1 + m / 1024) * 2 ** (e - 15);
        }
        assert.ok(Object.is(a[h], ref) || (Number.isNaN(ref) && Number.isNaN(a[h])), `${dt} wasm 0x${h.toString(16)}: ${a[h]} vs ${ref}`);
        assert.ok(Object.is(b[h], ref) || (Number.isNaN(ref) && Number.isNaN(b[h])), `${dt} ts 0x${h.toString(16)}: ${b[h]} vs ${ref}`);
      }
    }
  });
});

describe('analysis: float16/bfloat16 exact path (code counting)', () => {
  function halfCodes(n: number, seed: number, special: boolean): Uint16Array {
    const r = rng(seed);
    const a = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      // Weight-like halves: exponents around 2^-6..2^-2, both signs, some exact zeros and one large value.
      a[i] = ((r() < 0.5 ? 0x8000 : 0) | ((9 + Math.floor(r() * 5)) << 10) | Math.floor(r() * 1024));
      if (r() < 0.01) a[i] = r() < 0.5 ? 0 : 0x8000;
    }
    a[4321 % n] = 0x5a00; // 192
    if (special) { a[10] = 0x7e00; a[11] = 0x7c00; a[12] = 0xfc00; a[13] = 0x0001; }
    return a;
  }
  const decode = (codes: Uint16Array, dt: 'f16' | 'bf16') => {
    const k = new StatsKernelRef(codes.length);
    new Uint16Array(k.raw().buffer, 0, codes.length).set(codes);
    k.decode(dt, codes.length);
    return k.f32().slice(0, codes.length);
  };

  for (const dt of ['f16', 'bf16'] as const) {
    for (const special of [false, true]) {
      it(`${dt}${special ? ' with NaN/Inf/subnormal' : ''}: one pass equals the float32 path and exact percentiles`, () => {
        const codes = halfCodes(30_011, 21, special);
        const x = decode(codes, dt);
        const shape = [30_011];
        const exact = analyseSource(raw16Source(codes, dt), { chunkElements: 4099 }, undefined, new WasmKernel(4099));
        checkAgainstReference(x, exact, `${dt} exact`);
        const r = reference(x);
        exact.percentiles.forEach((p, i) => { assert.equal(p.errorBound, 0); assert.ok(p.value === r.pct[i], `p${p.q} ${p.value} vs ${r.pct[i]}`); });
        const f = analyseArray(x, {}, shape);
        for (const key of ['count', 'nan', 'inf', 'zeros', 'nearZeros', 'min', 'max'] as const) assert.equal(exact[key], f[key], key);
        assert.deepEqual(exact.histogram, f.histogram);
        assert.deepEqual(exact.logHistogram, f.logHistogram);
        assert.deepEqual(exact.outliers.top, f.outliers.top);
        assert.equal(exact.outliers.count, f.outliers.count);
        const t = analyseSource(raw16Source(codes, dt), { chunkElements: 4099 }, undefined, new StatsKernelRef(4099));
        assert.deepEqual(t, exact, 'TS twin equals WASM');
      });
    }
  }

  it('per-channel stats from codes (decoded in the kernel) equal the TS twin and the float32 path exactly', () => {
    for (const dt of ['f16', 'bf16'] as const) {
      for (const special of [false, true]) {
        const codes = halfCodes(150 * 201, 9, special);
        const x = decode(codes, dt);
        // axis 0: runs of 201 cut by 777-element chunks at odd offsets (lane path); axis 1: runs of one.
        for (const axis of [0, 1]) {
          const layout = channelLayout([150, 201], axis)!;
          const w = analyseSource(raw16Source(codes, dt), { chunkElements: 777 }, layout, new WasmKernel(777));
          const t = analyseSource(raw16Source(codes, dt), { chunkElements: 777 }, layout, new StatsKernelRef(777));
          assert.deepEqual(w.channels, t.channels, `${dt}/${special}/axis ${axis}: TS twin`);
          const f = analyseArray(x, { chunkElements: 777 }, [150, 201], axis, new WasmKernel(777));
          assert.deepEqual(w.channels, f.channels, `${dt}/${special}/axis ${axis}: float32 path`);
        }
      }
    }
  });

  it('every finite float16 code decodes exactly in the per-channel kernel (subnormals, ±0, the largest)', () => {
    // One channel per finite code, eight copies each: the eight-codes-per-load path sees every code,
    // and each channel's min and max must be that code's value, computed here from the bit fields.
    const finite: number[] = [];
    for (let c = 0; c < 0x10000; c++) if ((c & 0x7c00) !== 0x7c00) finite.push(c);
    const codes = new Uint16Array(finite.length * 8);
    finite.forEach((c, i) => codes.fill(c, i * 8, i * 8 + 8));
    const layout = channelLayout([finite.length, 8], 0)!;
    const o = resolveOptions({ chunkElements: 8192 });
    const w = runCodes(raw16Source(codes, 'f16'), new WasmKernel(8192), [0, codes.length], o, layout);
    const t = runCodes(raw16Source(codes, 'f16'), new StatsKernelRef(8192), [0, codes.length], o, layout);
    assert.deepEqual(w.channels, t.channels, 'TS twin');
    finite.forEach((c, i) => {
      const e = (c >> 10) & 0x1f, m = c & 0x3ff;
      const v = (c & 0x8000 ? -1 : 1) * (e === 0 ? m * 2 ** -24 : 2 ** (e - 15) * (1 + m / 1024));
      assert.ok(w.channels!.min[i] === v && w.channels!.max[i] === v && w.channels!.m2[i] === 0, `code 0x${c.toString(16)}: min ${w.channels!.min[i]}, max ${w.channels!.max[i]}, expected ${v}`);
    });
  });

  it('code-table queries (counts per magnitude range, largest magnitude) match a direct count, also after the counters are flushed', () => {
    const r = rng(21);
    const codes = new Uint16Array(30_000);
    for (let i = 0; i < codes.length; i++) codes[i] = r() < 0.001 ? 0x7c00 | Math.floor(r() * 1024) | (r() < 0.5 ? 0x8000 : 0) : Math.floor(r() * 0x7400) | (r() < 0.5 ? 0x8000 : 0);
    const direct = (upTo: number, from: number, to: number) => { let c = 0; for (let i = 0; i < upTo; i++) { const m = codes[i] & 0x7fff; if (m >= from && m < to) c++; } return c; };
    const directTop = (upTo: number, below: number) => { let t = -1; for (let i = 0; i < upTo; i++) { const m = codes[i] & 0x7fff; if (m < below && m > t) t = m; } return t; };
    for (const k of [new WasmKernel(10_000), new StatsKernelRef(10_000)]) {
      k.codesReset();
      for (let part = 0; part < 3; part++) {
        new Uint16Array(k.raw().buffer, k.raw().byteOffset, 10_000).set(codes.subarray(part * 10_000, (part + 1) * 10_000));
        k.count16(10_000);
        const upTo = (part + 1) * 10_000;
        for (const [from, to] of [[0, 0x8000], [0x7c00, 0x8000], [0x7000, 0x7c00], [5, 6], [0x1234, 0x4321], [0x7bfd, 0x7c00]]) {
          assert.equal(k.codeCount(from, to), direct(upTo, from, to), `${k.kind} part ${part} [${from}, ${to})`);
        }
        for (const below of [0x7c00, 0x8000, 0x1000, 1]) assert.equal(k.topCode(below), directTop(upTo, below), `${k.kind} part ${part} topCode(${below})`);
        // The WASM counters move into float64 totals long before they could overflow; the queries must include them.
        if (k instanceof WasmKernel && part === 1) (k as unknown as { flushCodes(): void }).flushCodes();
      }
      assert.throws(() => k.codeCount(5, 4), /bad magnitude range/);
    }
  });

  it('top-k of float16 codes equals the float32 path when every magnitude is tiny (thresholds start low) or ties abound', () => {
    const r = rng(33);
    for (const [label, n, gen] of [
      // Each tiny magnitude once: the largest code alone cannot fill the heap, the thresholds must go down to 0.
      ['tiny ramp', 64, (i: number) => i | (i % 3 ? 0 : 0x8000)],
      ['tiny random', 5000, () => Math.floor(r() * 0x30) | (r() < 0.5 ? 0x8000 : 0)],
      ['ties', 5000, () => (r() < 0.5 ? 0x3c00 : 0xbc00)],
      ['few large', 5000, () => (r() < 0.0005 ? 0x5000 : Math.floor(r() * 0x20))],
    ] as const) {
      const codes = Uint16Array.from({ length: n }, (_, i) => gen(i));
      for (const chunk of [16, 777, 5000]) {
        const exact = analyseSource(raw16Source(codes, 'f16'), { chunkElements: chunk, topK: 16 }, undefined, new WasmKernel(chunk));
        const f = analyseArray(decode(codes, 'f16'), { chunkElements: chunk, topK: 16 });
        assert.deepEqual(exact.outliers.top, f.outliers.top, `${label}, chunks of ${chunk}`);
        assert.equal(exact.outliers.top.length, 16);
      }
    }
  });

  it('ranges merged equal the whole; per-channel stats match the float32 path', () => {
    const codes = halfCodes(200 * 150, 5, true);
    const layout = channelLayout([200, 150], 0)!;
    const o = resolveOptions({ chunkElements: 777 });
    const k = new WasmKernel(777);
    const src = raw16Source(codes, 'f16');
    const merged = finalizeCodes([[0, 9999], [9999, 20000], [20000, 30000]].map((r) => runCodes(src, k, r as [number, number], o, layout)).reduce((a, b) => mergeCodes(a, b, o.topK)), 'f16', o, layout);
    const whole = analyseSource(src, { chunkElements: 777 }, layout);
    assert.deepEqual(merged.histogram, whole.histogram);
    assert.deepEqual(merged.percentiles, whole.percentiles);
    assert.deepEqual(merged.outliers, whole.outliers);
    assert.equal(merged.mean, whole.mean);
    const f = analyseArray(decode(codes, 'f16'), {}, [200, 150], 0);
    assert.deepEqual(merged.channels!.max, f.channels!.max);
    const ref = channelReference(decode(codes, 'f16'), [200, 150], 0);
    closeChannels(merged.channels!, ref, 'merged');
    closeChannels(f.channels!, ref, 'float32 path');
  });
});

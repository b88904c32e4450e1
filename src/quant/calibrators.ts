/**
 * Range calibrators: choose the [lo, hi] a scale group is quantized over.
 * One interface for weights (the group's values directly) and activations
 * (a histogram accumulated over calibration batches), as in ONNX Runtime's
 * calibrate.py. The quantizer turns the range into scale and zero point; a
 * calibrator only needs to know whether that mapping is symmetric, the bit
 * width, and (for the MSE search) how to measure the error of a range.
 */
import { histKernel } from '../kernels/histKernel';
import type { Impl } from '../kernels/runtime';

export interface Range {
  lo: number;
  hi: number;
}

/** What the quantizer tells a calibrator about itself. */
export interface RangeTarget {
  symmetric: boolean;
  /** Bits of the element format (sets the number of levels the entropy method merges into). */
  bits: number;
  /** Sum of squared round-trip errors of x[0..n) quantized with the range [lo, hi]. */
  sse(x: Float32Array, n: number, lo: number, hi: number): number;
  /** Round trip of one value with the range [lo, hi] (for histogram-based searches). */
  roundTrip(lo: number, hi: number): (v: number) => number;
}

export interface RangeCalibrator {
  readonly name: string;
  /** Range of n values (a weight group). x[0..n) are finite. */
  fromValues(x: Float32Array, n: number, target: RangeTarget): Range;
  /** Range from an activation histogram. */
  fromHistogram(h: HistogramCollector, target: RangeTarget): Range;
}

/** Smallest power of two strictly greater than a (a > 0). */
function pow2Above(a: number): number {
  let r = 2 ** Math.floor(Math.log2(a));
  while (r <= a) r *= 2;
  while (r / 2 > a) r /= 2;
  return r;
}

function minMaxOf(x: Float32Array, n: number): Range {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = x[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return n > 0 ? { lo, hi } : { lo: 0, hi: 0 };
}

// ---------------------------------------------------------------- histogram

/** Per-channel max |x| kept beside a histogram: `inner` consecutive elements per channel, channels cycling. */
export interface ChannelMaxima {
  inner: number;
  max: Float32Array;
}

/**
 * Histogram of activations merged over batches. It keeps 2·bins bins over
 * [-R, R] with R a power of two strictly above every |x| seen; when a batch
 * reaches R the range doubles and neighbouring bins are summed pairwise.
 * Because R only ever changes by factors of two, x/w scales exactly and
 * merging is exact: the histogram does not depend on how the data was split
 * into batches or collectors (at the price of up to 2x coarser bins than an
 * amax-fitted range). Folding gives `bins` bins of |x| over [0, R] for the
 * entropy method.
 */
export class HistogramCollector {
  readonly bins: number;
  /** Signed counts, 2·bins bins over [-range, range]. */
  counts: Float64Array;
  range = 0;
  min = Infinity;
  max = -Infinity;
  count = 0;

  constructor(bins = 2048) {
    if (!Number.isInteger(bins) || bins < 2 || bins % 2 !== 0) throw new RangeError(`histogram bins must be an even integer >= 2, got ${bins}`);
    this.bins = bins;
    this.counts = new Float64Array(2 * bins);
  }

  /** Add a batch; non-finite values are an error (they make every range meaningless). */
  add(x: ArrayLike<number>): this {
    let amax = 0;
    let mn = this.min;
    let mx = this.max;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      if (!Number.isFinite(v)) throw new RangeError(`histogram: non-finite activation ${v} at index ${i}`);
      if (v < mn) mn = v;
      if (v > mx) mx = v;
      const a = v < 0 ? -v : v;
      if (a > amax) amax = a;
    }
    // Only a fully valid batch changes the collector.
    this.min = mn;
    this.max = mx;
    if (this.needsGrowth(amax)) this.fit(amax);
    const B = this.bins;
    const w = this.range / B;
    const c = this.counts;
    for (let i = 0; i < x.length; i++) {
      const v = x[i];
      let b = w > 0 ? Math.floor(v / w) + B : B;
      if (b < 0) b = 0;
      else if (b >= 2 * B) b = 2 * B - 1;
      c[b] += 1;
    }
    this.count += x.length;
    return this;
  }

  /**
   * Add a float32 batch through the histogram kernel (WASM SIMD, or its
   * TypeScript twin with impl 'ref'), leaving NaN and ±Inf out: the result is
   * add() of the finite values (a zero min or max may read +0 where add()
   * kept -0), and with `channels` it also raises channels.max[c] to the
   * largest |x| of channel c (element i in channel floor(i / inner) mod
   * channels.max.length; NaN never raises it, ±Inf does). Chunks are binned
   * at the range they need, which grows before the next: exact, since the
   * histogram does not depend on how the data is split. Returns how many
   * values were left out.
   */
  addFloat32(x: Float32Array, opts: { impl?: Impl; channels?: ChannelMaxima } = {}): number {
    const k = histKernel(opts.impl ?? 'auto');
    const ch = opts.channels && opts.channels.max.length > 0 ? opts.channels : undefined;
    const C = ch ? ch.max.length : 0;
    const inner = ch ? ch.inner : 1;
    if (ch && !(Number.isInteger(inner) && inner >= 1)) throw new RangeError(`histogram: channel run length must be a positive integer, got ${inner}`);
    const B = this.bins;
    k.begin(B, ch ? ch.max : null);
    const buf = k.f32();
    const cap = k.capacity;
    let c = 0, pos = 0, bad = 0, pending = false;
    for (let off = 0; off < x.length; off += cap) {
      const n = Math.min(cap, x.length - off);
      buf.set(x.subarray(off, off + n), 0);
      const s = k.scan(n, C, inner, c, pos);
      if (C) {
        const t = pos + n;
        c = (c + Math.floor(t / inner)) % C;
        pos = t % inner;
      }
      bad += s.nonFinite;
      const finite = n - s.nonFinite;
      if (finite === 0) continue;
      if (s.min < this.min) this.min = s.min;
      if (s.max > this.max) this.max = s.max;
      const amax = Math.max(-s.min, s.max);
      if (this.needsGrowth(amax)) {
        // Counters pending at the old range go in before the bins merge.
        if (pending) k.flush(this.counts);
        pending = false;
        this.fit(amax);
      }
      if (this.range === 0) this.counts[B] += finite; // all zeros so far: the bin right of zero at any range
      else {
        k.bin(n, this.range / B, s.nonFinite === 0);
        pending = true;
      }
      this.count += finite;
    }
    if (pending) k.flush(this.counts);
    if (ch) k.end(ch.max);
    return bad;
  }

  private needsGrowth(amax: number): boolean {
    return amax > 0 && (this.range === 0 || amax >= this.range);
  }

  /** Range to the smallest power of two above amax (first data), or doubled until it is. */
  private fit(amax: number): void {
    if (this.range === 0) this.range = pow2Above(amax);
    while (amax >= this.range) this.grow();
  }

  /** Merge another collector (same bin count) into this one; exact, since both ranges are powers of two. */
  merge(o: HistogramCollector): this {
    if (o.bins !== this.bins) throw new RangeError(`histogram merge: bin counts differ (${this.bins} vs ${o.bins})`);
    if (o.count === 0) return this;
    const other = o.clone();
    if (other.range > 0) {
      if (this.range === 0) {
        // Everything seen so far is exactly zero: it stays in the bin just right of zero at any range.
        const zeros = this.counts[this.bins];
        this.counts = other.counts.slice();
        this.range = other.range;
        this.counts[this.bins] += zeros;
      } else {
        while (this.range < other.range) this.grow();
        while (other.range < this.range) other.grow();
        for (let b = 0; b < this.counts.length; b++) this.counts[b] += other.counts[b];
      }
    } else {
      this.counts[this.bins] += other.counts[other.bins];
    }
    this.min = Math.min(this.min, o.min);
    this.max = Math.max(this.max, o.max);
    this.count += o.count;
    return this;
  }

  clone(): HistogramCollector {
    const h = new HistogramCollector(this.bins);
    h.counts = this.counts.slice();
    h.range = this.range;
    h.min = this.min;
    h.max = this.max;
    h.count = this.count;
    return h;
  }

  /** Double the range, summing bin pairs outward from zero on each side. */
  private grow(): void {
    const B = this.bins;
    const old = this.counts;
    const c = new Float64Array(2 * B);
    for (let j = 0; j < B / 2; j++) {
      c[B + j] = old[B + 2 * j] + old[B + 2 * j + 1];
      c[B - 1 - j] = old[B - 1 - 2 * j] + old[B - 2 - 2 * j];
    }
    this.counts = c;
    this.range *= 2;
  }

  /** Counts of |x| in `bins` bins over [0, range]. */
  absCounts(): Float64Array {
    const B = this.bins;
    const out = new Float64Array(B);
    for (let j = 0; j < B; j++) out[j] = this.counts[B + j] + this.counts[B - 1 - j];
    return out;
  }

  get binWidth(): number {
    return this.range / this.bins;
  }
}

// ---------------------------------------------------------------- min-max

export class MinMaxCalibrator implements RangeCalibrator {
  readonly name = 'minmax';
  fromValues(x: Float32Array, n: number): Range {
    return minMaxOf(x, n);
  }
  fromHistogram(h: HistogramCollector): Range {
    return h.count > 0 ? { lo: h.min, hi: h.max } : { lo: 0, hi: 0 };
  }
}

/** ±mean|x|: the scale BitNet b1.58 uses for ternary weights (and XNOR-Net for binary). */
export class AbsMeanCalibrator implements RangeCalibrator {
  readonly name = 'absmean';
  fromValues(x: Float32Array, n: number): Range {
    let s = 0;
    for (let i = 0; i < n; i++) s += Math.abs(x[i]);
    const m = n > 0 ? s / n : 0;
    return { lo: -m, hi: m };
  }
  fromHistogram(h: HistogramCollector): Range {
    const a = h.absCounts();
    const w = h.binWidth;
    let s = 0;
    for (let j = 0; j < a.length; j++) s += a[j] * (j + 0.5) * w;
    const m = h.count > 0 ? s / h.count : 0;
    return { lo: -m, hi: m };
  }
}

// ---------------------------------------------------------------- percentile

/** numpy-style percentile (linear interpolation between order statistics) of sorted data. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return 0;
  const pos = (p / 100) * (n - 1);
  const i = Math.floor(pos);
  const f = pos - i;
  return i + 1 < n ? sorted[i] + f * (sorted[i + 1] - sorted[i]) : sorted[n - 1];
}

/**
 * Clips to a percentile of the data: of |x| for symmetric targets (range
 * ±t), otherwise the (100-p) and p percentiles of x. On histograms the
 * percentile is interpolated linearly inside its bin.
 */
export class PercentileCalibrator implements RangeCalibrator {
  readonly name: string;
  constructor(readonly percentile = 99.99) {
    if (!(percentile > 0 && percentile <= 100)) throw new RangeError(`percentile must be in (0, 100], got ${percentile}`);
    this.name = `percentile(${percentile})`;
  }
  fromValues(x: Float32Array, n: number, target: RangeTarget): Range {
    const v = new Float64Array(n);
    if (target.symmetric) {
      for (let i = 0; i < n; i++) v[i] = Math.abs(x[i]);
      v.sort();
      const t = percentileSorted(v, this.percentile);
      return { lo: -t, hi: t };
    }
    for (let i = 0; i < n; i++) v[i] = x[i];
    v.sort();
    return { lo: percentileSorted(v, 100 - this.percentile), hi: percentileSorted(v, this.percentile) };
  }
  fromHistogram(h: HistogramCollector, target: RangeTarget): Range {
    if (h.count === 0) return { lo: 0, hi: 0 };
    const w = h.binWidth;
    if (target.symmetric) {
      const t = quantileOfCounts(h.absCounts(), 0, w, this.percentile / 100);
      return { lo: -t, hi: t };
    }
    const lo = quantileOfCounts(h.counts, -h.range, w, 1 - this.percentile / 100);
    const hi = quantileOfCounts(h.counts, -h.range, w, this.percentile / 100);
    return { lo: Math.max(lo, h.min), hi: Math.min(hi, h.max) };
  }
}

/** Value below which fraction q of the mass lies, bins starting at `start` with width w, uniform within a bin. */
export function quantileOfCounts(c: Float64Array, start: number, w: number, q: number): number {
  let total = 0;
  for (let i = 0; i < c.length; i++) total += c[i];
  const target = q * total;
  let cum = 0;
  for (let i = 0; i < c.length; i++) {
    if (c[i] > 0 && cum + c[i] >= target) return start + (i + (target - cum) / c[i]) * w;
    cum += c[i];
  }
  return start + c.length * w;
}

// ---------------------------------------------------------------- MSE-optimal clipping

/**
 * Searches clip ratios r in a grid from 1 down to `minRatio` (evenly spaced,
 * `steps` points, r = 1 first) and keeps the range (r·lo, r·hi) with the least
 * squared round-trip error; ties keep the wider range. Per group when the
 * quantizer calls it per group.
 */
export class MseCalibrator implements RangeCalibrator {
  readonly name: string;
  constructor(readonly steps = 20, readonly minRatio = 0.5) {
    if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`MSE calibrator: steps must be a positive integer, got ${steps}`);
    if (!(minRatio > 0 && minRatio <= 1)) throw new RangeError(`MSE calibrator: minRatio must be in (0, 1], got ${minRatio}`);
    this.name = `mse(${steps},${minRatio})`;
  }
  ratio(k: number): number {
    return this.steps === 1 ? 1 : 1 - (k * (1 - this.minRatio)) / (this.steps - 1);
  }
  fromValues(x: Float32Array, n: number, target: RangeTarget): Range {
    const base = minMaxOf(x, n);
    let best = Infinity;
    let out = base;
    for (let k = 0; k < this.steps; k++) {
      const r = this.ratio(k);
      const lo = base.lo * r;
      const hi = base.hi * r;
      const e = target.sse(x, n, lo, hi);
      if (e < best) {
        best = e;
        out = { lo, hi };
      }
    }
    return out;
  }
  fromHistogram(h: HistogramCollector, target: RangeTarget): Range {
    if (h.count === 0) return { lo: 0, hi: 0 };
    const w = h.binWidth;
    const B = h.bins;
    let best = Infinity;
    let out: Range = { lo: h.min, hi: h.max };
    for (let k = 0; k < this.steps; k++) {
      const r = this.ratio(k);
      const lo = h.min * r;
      const hi = h.max * r;
      const f = target.roundTrip(lo, hi);
      let e = 0;
      for (let b = 0; b < 2 * B; b++) {
        const c = h.counts[b];
        if (c === 0) continue;
        const v = (b - B + 0.5) * w;
        const d = f(v) - v;
        e += c * d * d;
      }
      if (e < best) {
        best = e;
        out = { lo, hi };
      }
    }
    return out;
  }
}

// ---------------------------------------------------------------- entropy (KL)

/**
 * KL divergence between a clipped reference P (the first i bins of the |x|
 * histogram, with the mass beyond folded into bin i-1) and its quantized
 * version Q (the first i bins merged into `levels` chunks, each chunk's mass
 * spread evenly over its non-empty bins). Zero Q bins under P mass get `eps`
 * (TensorRT-style smoothing) so such clips score badly instead of +Inf.
 */
export function klForClip(abs: Float64Array, i: number, levels: number, eps = 1e-12): number {
  let tail = 0;
  for (let j = i; j < abs.length; j++) tail += abs[j];
  let pSum = tail;
  let qSum = 0;
  for (let j = 0; j < i; j++) {
    pSum += abs[j];
    qSum += abs[j];
  }
  if (pSum === 0 || qSum === 0) return Infinity;
  let kl = 0;
  for (let c = 0; c < levels; c++) {
    const s = Math.floor((c * i) / levels);
    const e = Math.floor(((c + 1) * i) / levels);
    let mass = 0;
    let nonzero = 0;
    for (let j = s; j < e; j++) {
      mass += abs[j];
      if (abs[j] !== 0) nonzero++;
    }
    for (let j = s; j < e; j++) {
      const p = (j === i - 1 ? abs[j] + tail : abs[j]) / pSum;
      if (p === 0) continue;
      let q = abs[j] !== 0 ? mass / nonzero / qSum : 0;
      if (q < eps) q = eps;
      kl += p * Math.log(p / q);
    }
  }
  return kl;
}

/**
 * TensorRT-style entropy calibration: over a histogram of |x| (2048 bins by
 * default), try every clip i from `levels` to the full range and keep the one
 * whose quantized distribution is closest in KL divergence; the threshold is
 * the upper edge of bin i-1. `levels` = 2^(bits-1) for a symmetric grid
 * (128 for int8), 2^bits otherwise. Ties keep the smaller clip, as the first
 * minimum found. On raw values the histogram is built first.
 */
export class EntropyCalibrator implements RangeCalibrator {
  readonly name = 'entropy';
  constructor(readonly bins = 2048) {}
  fromValues(x: Float32Array, n: number, target: RangeTarget): Range {
    const h = new HistogramCollector(this.bins);
    h.add(x.subarray(0, n));
    return this.fromHistogram(h, target);
  }
  fromHistogram(h: HistogramCollector, target: RangeTarget): Range {
    if (h.count === 0 || h.range === 0) return { lo: 0, hi: 0 };
    const abs = h.absCounts();
    const levels = Math.min(abs.length, target.symmetric ? 2 ** (target.bits - 1) : 2 ** target.bits);
    let best = Infinity;
    let bestI = abs.length;
    for (let i = levels; i <= abs.length; i++) {
      const kl = klForClip(abs, i, levels);
      if (kl < best) {
        best = kl;
        bestI = i;
      }
    }
    const t = bestI * h.binWidth;
    return { lo: Math.max(-t, h.min), hi: Math.min(t, h.max) };
  }
}

export type CalibratorName = 'minmax' | 'absmean' | 'percentile' | 'mse' | 'entropy';

/** Calibrator by name, with ORT-like defaults. */
export function calibrator(name: CalibratorName, opts: { percentile?: number; steps?: number; minRatio?: number; bins?: number } = {}): RangeCalibrator {
  switch (name) {
    case 'minmax': return new MinMaxCalibrator();
    case 'absmean': return new AbsMeanCalibrator();
    case 'percentile': return new PercentileCalibrator(opts.percentile ?? 99.99);
    case 'mse': return new MseCalibrator(opts.steps ?? 20, opts.minRatio ?? 0.5);
    case 'entropy': return new EntropyCalibrator(opts.bins ?? 2048);
    default: throw new RangeError(`unknown calibrator '${String(name)}'; known: minmax, absmean, percentile, mse, entropy`);
  }
}

/**
 * Streaming per-tensor statistics. A tensor is read in bounded chunks, in up
 * to three passes: (1) counts, range, moments, top-k and per-channel stats;
 * (2) the 2048-bin histogram over [min, max], the log2-magnitude histogram
 * and the |x - mean| > k·σ outlier count (both need pass 1's results);
 * (3) optionally, a second-level histogram inside the bins that hold the
 * requested percentiles, which tightens their error bound 2048-fold.
 * Each pass works on a range of elements and yields a partial that merges
 * exactly with the partials of other ranges (Chan/Pébay moment merging in
 * float64), so a large tensor can be split across workers.
 */
import { ChunkMoments, HIST_BINS, LOG_BINS, RefineSlot, StatsKernel, WasmKernel, f32Down, f32Up } from './kernels';
import { TsKernel } from './kernelsTs';

export const PERCENTILES = [0.01, 0.1, 1, 50, 99, 99.9, 99.99] as const;

export interface StatsOptions {
  /** |x| < eps counts as near-zero (exact zeros included). Default 1e-6. */
  nearZeroEps?: number;
  /** Outliers are finite x with |x - mean| > outlierSigma·σ. Default 6. */
  outlierSigma?: number;
  /** How many largest-|x| values to keep with their flat positions. Default 16. */
  topK?: number;
  /** A channel is an outlier channel when its abs-max exceeds this × the median channel abs-max. Default 4. */
  channelOutlierFactor?: number;
  /** Run the third pass that refines percentiles. Default true. */
  refinePercentiles?: boolean;
  /** Elements per chunk read. Default 32768 (128 KiB of float32). */
  chunkElements?: number;
  /**
   * float16/bfloat16 tensors read as raw codes: one pass counting each of the
   * 65536 codes, from which every statistic follows exactly (percentiles
   * included, error bound 0). Default true; false uses the float32 passes.
   */
  exact16?: boolean;
}

export interface ResolvedStatsOptions {
  nearZeroEps: number; outlierSigma: number; topK: number; channelOutlierFactor: number;
  refinePercentiles: boolean; chunkElements: number; exact16: boolean;
}

export function resolveOptions(o: StatsOptions = {}): ResolvedStatsOptions {
  const r = {
    nearZeroEps: o.nearZeroEps ?? 1e-6,
    outlierSigma: o.outlierSigma ?? 6,
    topK: o.topK ?? 16,
    channelOutlierFactor: o.channelOutlierFactor ?? 4,
    refinePercentiles: o.refinePercentiles ?? true,
    chunkElements: o.chunkElements ?? 32768,
    exact16: o.exact16 ?? true,
  };
  if (!(r.chunkElements >= 1 && Number.isInteger(r.chunkElements))) throw new Error(`chunkElements must be a positive integer, got ${r.chunkElements}`);
  if (!(r.topK >= 0 && Number.isInteger(r.topK))) throw new Error(`topK must be a non-negative integer, got ${r.topK}`);
  return r;
}

/** Where the output channels sit in the flat (row-major) element order. */
export interface ChannelLayout {
  axis: number;
  /** Number of channels (shape[axis]). */
  channels: number;
  /** Elements in one contiguous run of a channel (product of shape after axis). */
  inner: number;
}

export function channelLayout(shape: readonly number[], axis: number | undefined): ChannelLayout | undefined {
  if (axis === undefined || shape.length < 2) return undefined;
  const a = axis < 0 ? axis + shape.length : axis;
  if (a < 0 || a >= shape.length || shape[a] < 1) return undefined;
  let inner = 1;
  for (let i = a + 1; i < shape.length; i++) inner *= shape[i];
  if (inner < 1) return undefined;
  return { axis: a, channels: shape[a], inner };
}

/** Supplies a tensor's elements as float32, chunk by chunk, into a kernel's input buffer. */
export interface ChunkSource {
  readonly numel: number;
  /** Writes elements [start, start + count) to kernel.f32()[0..count); count ≤ kernel.capacity. */
  fill(k: StatsKernel, start: number, count: number): void;
}

/** A 16-bit float source that can also deliver its raw codes. */
export interface Raw16Source extends ChunkSource {
  readonly dtype16: 'f16' | 'bf16';
  /** Writes the raw codes of elements [start, start + count) to kernel.raw(). */
  fillRaw(k: StatsKernel, start: number, count: number): void;
}

export function isRaw16(src: ChunkSource): src is Raw16Source {
  return (src as Raw16Source).dtype16 !== undefined;
}

/** In-memory float16/bfloat16 codes. */
export function raw16Source(codes: Uint16Array, dtype: 'f16' | 'bf16'): Raw16Source {
  const fillRaw = (k: StatsKernel, start: number, count: number) => {
    const raw = k.raw();
    new Uint16Array(raw.buffer, raw.byteOffset, count).set(codes.subarray(start, start + count));
  };
  return {
    numel: codes.length, dtype16: dtype, fillRaw,
    fill(k, start, count) { fillRaw(k, start, count); k.decode(dtype, count); },
  };
}

export function arraySource(data: Float32Array): ChunkSource {
  return {
    numel: data.length,
    fill(k, start, count) { k.f32().set(data.subarray(start, start + count)); },
  };
}

export function makeKernel(kind: 'wasm' | 'ts', capacity: number): StatsKernel {
  return kind === 'ts' ? new TsKernel(capacity) : new WasmKernel(capacity);
}

/** Called between chunks; throw to abandon the pass (cancellation). */
export type ChunkHook = (elementsDone: number) => void;

// --- moments ---------------------------------------------------------------

export interface Moments { n: number; mean: number; m2: number; m3: number; m4: number }

export function chunkToMoments(c: ChunkMoments): Moments {
  const n = c.count;
  if (n === 0) return { n: 0, mean: 0, m2: 0, m3: 0, m4: 0 };
  // Moments about the chunk's shift converted to moments about its mean.
  const d = c.s1 / n;
  return {
    n,
    mean: c.shift + d,
    m2: c.s2 - n * d * d,
    m3: c.s3 - 3 * d * c.s2 + 2 * n * d * d * d,
    m4: c.s4 - 4 * d * c.s3 + 6 * d * d * c.s2 - 3 * n * d * d * d * d,
  };
}

/** Pébay's pairwise update of central moments up to order 4. */
export function mergeMoments(a: Moments, b: Moments): Moments {
  if (a.n === 0) return { ...b };
  if (b.n === 0) return { ...a };
  const na = a.n, nb = b.n, n = na + nb;
  const d = b.mean - a.mean;
  const dn = d / n;
  const m2 = a.m2 + b.m2 + d * dn * na * nb;
  const m3 = a.m3 + b.m3 + d * dn * dn * na * nb * (na - nb) + 3 * dn * (na * b.m2 - nb * a.m2);
  const m4 = a.m4 + b.m4 + d * dn * dn * dn * na * nb * (na * na - na * nb + nb * nb)
    + 6 * dn * dn * (na * na * b.m2 + nb * nb * a.m2) + 4 * dn * (na * b.m3 - nb * a.m3);
  return { n, mean: a.mean + dn * nb, m2, m3, m4 };
}

/**
 * The kernel sums powers of d = x - shift in one pass. The shift is the running
 * mean (or the chunk's first finite value); if the chunk's mean turns out to be
 * more than ~100σ away from it, the f64 sums would lose digits to cancellation,
 * so the chunk is summed again around its own mean.
 */
function chunkMoments(k: StatsKernel, n: number, eps: number, sofar: Moments): ChunkMoments {
  let shift = 0;
  if (sofar.n > 0) shift = sofar.mean;
  else {
    const x = k.f32();
    for (let i = 0; i < n; i++) if (Math.abs(x[i]) < Infinity) { shift = x[i]; break; }
  }
  const c = k.moments(n, eps, shift);
  if (c.count === 0) return c;
  const d = c.s1 / c.count;
  if (c.count * d * d > (1 - 1e-4) * c.s2) {
    const again = Math.fround(c.shift + d);
    if (again !== c.shift && Number.isFinite(again)) return k.moments(n, eps, again);
  }
  return c;
}

// --- top-k -------------------------------------------------------------------

export interface TopEntry { index: number; value: number }

/** Order used for top-k: larger |x| first, then lower index. */
function before(a: TopEntry, b: TopEntry): boolean {
  const x = Math.abs(a.value), y = Math.abs(b.value);
  return x > y || (x === y && a.index < b.index);
}

/** Min-heap (root = the entry that ranks last) of at most k entries. */
class TopHeap {
  readonly h: TopEntry[] = [];
  constructor(readonly k: number) {}
  get full(): boolean { return this.h.length >= this.k; }
  get floor(): number { return this.h.length ? Math.abs(this.h[0].value) : -1; }
  offer(e: TopEntry): void {
    const h = this.h;
    if (h.length < this.k) {
      h.push(e);
      let i = h.length - 1;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!before(h[p], h[i])) break;
        [h[p], h[i]] = [h[i], h[p]];
        i = p;
      }
      return;
    }
    if (!before(e, h[0])) return;
    h[0] = e;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1, r = l + 1;
      let m = i;
      if (l < h.length && before(h[m], h[l])) m = l;
      if (r < h.length && before(h[m], h[r])) m = r;
      if (m === i) break;
      [h[m], h[i]] = [h[i], h[m]];
      i = m;
    }
  }
  sorted(): TopEntry[] { return [...this.h].sort((a, b) => (before(a, b) ? -1 : 1)); }
}

export function mergeTop(a: TopEntry[], b: TopEntry[], k: number): TopEntry[] {
  return [...a, ...b].sort((x, y) => (before(x, y) ? -1 : 1)).slice(0, k);
}

// --- pass 1 ------------------------------------------------------------------

export interface ChannelPartial {
  count: Float64Array; mean: Float64Array; m2: Float64Array; min: Float64Array; max: Float64Array;
}

export interface Pass1 {
  numel: number;
  nan: number; inf: number; zeros: number; nearZeros: number;
  min: number; max: number;
  moments: Moments;
  top: TopEntry[];
  channels?: ChannelPartial;
}

function forChunks(src: ChunkSource, k: StatsKernel, start: number, end: number, chunk: number, hook: ChunkHook | undefined, body: (n: number, pos: number) => void): void {
  const step = Math.min(chunk, k.capacity);
  for (let pos = start; pos < end; pos += step) {
    const n = Math.min(step, end - pos);
    src.fill(k, pos, n);
    body(n, pos);
    hook?.(pos + n - start);
  }
}

export function runPass1(src: ChunkSource, k: StatsKernel, range: [number, number], o: ResolvedStatsOptions, layout?: ChannelLayout, hook?: ChunkHook): Pass1 {
  const [start, end] = range;
  let mom: Moments = { n: 0, mean: 0, m2: 0, m3: 0, m4: 0 };
  let nan = 0, zeros = 0, nearZeros = 0, min = Infinity, max = -Infinity;
  const heap = new TopHeap(o.topK);
  if (layout) k.channelsSetup(layout.channels);
  forChunks(src, k, start, end, o.chunkElements, hook, (n, pos) => {
    const c = chunkMoments(k, n, o.nearZeroEps, mom);
    nan += c.nan; zeros += c.zeros; nearZeros += c.nearZeros;
    min = Math.min(min, c.min); max = Math.max(max, c.max);
    mom = mergeMoments(mom, chunkToMoments(c));
    // Only chunks that can change the top-k are scanned, which after the first few is almost none.
    if (o.topK > 0 && c.count > 0 && (!heap.full || Math.max(-c.min, c.max) > heap.floor)) {
      const x = k.f32();
      for (let i = 0; i < n; i++) {
        const v = x[i];
        if (Math.abs(v) < Infinity && (!heap.full || Math.abs(v) > heap.floor)) heap.offer({ index: pos + i, value: v });
      }
    }
    if (layout) {
      const run = Math.floor(pos / layout.inner);
      k.channels(n, run % layout.channels, pos - run * layout.inner, layout.inner);
    }
  });
  const channels = layout ? channelPartial(k, layout) : undefined;
  const numel = end - start;
  return { numel, nan, inf: numel - mom.n - nan, zeros, nearZeros, min, max, moments: mom, top: heap.sorted(), channels };
}

function channelPartial(k: StatsKernel, layout: ChannelLayout): ChannelPartial {
  const r = k.channelsRead();
  const C = layout.channels;
  const channels = { count: r.count, mean: new Float64Array(C), m2: new Float64Array(C), min: r.min, max: r.max };
  for (let c = 0; c < C; c++) {
    const n = r.count[c];
    if (n === 0) continue;
    r.min[c] += 0; // -0 -> +0: which zero a compare-and-select keeps depends on order
    r.max[c] += 0;
    channels.mean[c] = r.shift[c] + r.s1[c] / n;
    channels.m2[c] = Math.max(0, r.s2[c] - (r.s1[c] * r.s1[c]) / n);
  }
  return channels;
}

function mergeChannels(A: ChannelPartial | undefined, B: ChannelPartial | undefined): ChannelPartial | undefined {
  if (!A || !B) return undefined;
  const C = A.count.length;
  const channels = { count: new Float64Array(C), mean: new Float64Array(C), m2: new Float64Array(C), min: new Float64Array(C), max: new Float64Array(C) };
  for (let c = 0; c < C; c++) {
    const m = mergeMoments({ n: A.count[c], mean: A.mean[c], m2: A.m2[c], m3: 0, m4: 0 }, { n: B.count[c], mean: B.mean[c], m2: B.m2[c], m3: 0, m4: 0 });
    channels.count[c] = m.n; channels.mean[c] = m.mean; channels.m2[c] = m.m2;
    channels.min[c] = Math.min(A.min[c], B.min[c]); channels.max[c] = Math.max(A.max[c], B.max[c]);
  }
  return channels;
}

export function mergePass1(a: Pass1, b: Pass1, topK: number): Pass1 {
  const channels = mergeChannels(a.channels, b.channels);
  return {
    numel: a.numel + b.numel, nan: a.nan + b.nan, inf: a.inf + b.inf, zeros: a.zeros + b.zeros, nearZeros: a.nearZeros + b.nearZeros,
    min: Math.min(a.min, b.min), max: Math.max(a.max, b.max), moments: mergeMoments(a.moments, b.moments),
    top: mergeTop(a.top, b.top, topK), channels,
  };
}

// --- pass 2 ------------------------------------------------------------------

export interface Pass2Params {
  /** float32 origin and scale of the linear histogram: bin = trunc((x - min) * scale), clamped. */
  min: number; scale: number;
  /** float32 outlier thresholds: finite x > hi or x < lo. */
  lo: number; hi: number;
}

const F32_MAX = 3.4028234663852886e38;

export function pass2Params(p1: Pass1, o: ResolvedStatsOptions): Pass2Params {
  const n = p1.moments.n;
  const min = n > 0 ? p1.min : 0;
  const max = n > 0 ? p1.max : 0;
  const range = max - min;
  const scale = range > 0 ? Math.fround(Math.min(HIST_BINS / range, F32_MAX)) : 0;
  const sd = n > 0 ? Math.sqrt(Math.max(0, p1.moments.m2) / n) : 0;
  const mean = p1.moments.mean;
  return { min, scale, lo: f32Up(mean - o.outlierSigma * sd), hi: f32Down(mean + o.outlierSigma * sd) };
}

export interface Pass2 { lin: Float64Array; log: Float64Array; outliers: number }

export function runPass2(src: ChunkSource, k: StatsKernel, range: [number, number], p: Pass2Params, o: ResolvedStatsOptions, hook?: ChunkHook): Pass2 {
  k.histReset();
  let outliers = 0;
  forChunks(src, k, range[0], range[1], o.chunkElements, hook, (n) => { outliers += k.hist(n, p.min, p.scale, p.lo, p.hi); });
  const h = k.histRead();
  return { lin: h.lin, log: h.log, outliers };
}

export function mergePass2(a: Pass2, b: Pass2): Pass2 {
  const lin = a.lin.slice(), log = a.log.slice();
  for (let i = 0; i < lin.length; i++) lin[i] += b.lin[i];
  for (let i = 0; i < log.length; i++) log[i] += b.log[i];
  return { lin, log, outliers: a.outliers + b.outliers };
}

// --- percentiles and pass 3 --------------------------------------------------

interface Target { q: number; rank: number; bin: number; rankInBin: number }

export interface RefinePlan {
  min: number; scale: number;
  slots: RefineSlot[];
  targets: Target[];
}

function percentileTargets(count: number, lin: Float64Array): Target[] {
  const out: Target[] = [];
  for (const q of PERCENTILES) {
    // Nearest-rank definition: the value of 1-based rank ceil(q/100 · n) among the sorted finite values.
    const rank = Math.min(count, Math.max(1, Math.ceil((q / 100) * count)));
    let cum = 0, b = 0;
    while (b < HIST_BINS - 1 && cum + lin[b] < rank) cum += lin[b++];
    out.push({ q, rank, bin: b, rankInBin: rank - cum });
  }
  return out;
}

/** The plan of pass 3, or undefined when it is not needed (empty, constant or refinement disabled). */
export function planRefine(p1: Pass1, p2: Pass2, params: Pass2Params, o: ResolvedStatsOptions): RefinePlan | undefined {
  if (!o.refinePercentiles || p1.moments.n === 0 || !(p1.max > p1.min) || !(params.scale > 0)) return undefined;
  const targets = percentileTargets(p1.moments.n, p2.lin);
  const subScale = Math.fround(HIST_BINS * params.scale);
  if (!Number.isFinite(subScale)) return undefined;
  const slots: RefineSlot[] = [];
  for (const t of targets) {
    if (slots.some((s) => s.bin === t.bin)) continue;
    slots.push({ bin: t.bin, lo: f32Down(params.min + t.bin / params.scale), scale: subScale });
  }
  return { min: params.min, scale: params.scale, slots, targets };
}

export function runPass3(src: ChunkSource, k: StatsKernel, range: [number, number], plan: RefinePlan, o: ResolvedStatsOptions, hook?: ChunkHook): Float64Array[] {
  k.refineSetup(plan.min, plan.scale, plan.slots);
  forChunks(src, k, range[0], range[1], o.chunkElements, hook, (n) => k.refine(n));
  return k.refineRead();
}

export function mergePass3(a: Float64Array[], b: Float64Array[]): Float64Array[] {
  return a.map((x, i) => { const r = x.slice(); for (let j = 0; j < r.length; j++) r[j] += b[i][j]; return r; });
}

function ulp32(a: number): number {
  if (!(a > 0)) return 1.401298464324817e-45;
  return Math.max(2 ** (Math.floor(Math.log2(a)) - 23), 1.401298464324817e-45);
}

// --- final result ------------------------------------------------------------

export interface PercentileValue {
  /** Percentile in percent (0.01 … 99.99). */
  q: number;
  value: number;
  /** |value − exact nearest-rank percentile| ≤ errorBound. */
  errorBound: number;
}

export interface ChannelStats {
  axis: number;
  channels: number;
  min: number[]; max: number[]; absMax: number[]; mean: number[]; std: number[];
  medianAbsMax: number;
  outlierFactor: number;
  /** Channels whose abs-max exceeds outlierFactor × medianAbsMax. */
  outlierChannels: number[];
  /** Spread of per-channel ranges (max − min). */
  rangeSpread: { min: number; median: number; max: number; maxOverMedian: number; cv: number };
}

export interface TensorStats {
  numel: number;
  /** Finite elements (NaN and ±Inf are excluded from every other statistic). */
  count: number;
  nan: number; inf: number;
  zeros: number;
  /** |x| < nearZeroEps, exact zeros included. */
  nearZeros: number;
  nearZeroEps: number;
  sparsity: number;
  min: number; max: number; absMax: number;
  mean: number;
  /** Population standard deviation. */
  std: number;
  skewness: number;
  /** Excess kurtosis (0 for a normal distribution). Skewness and kurtosis are 0 when std is 0. */
  kurtosis: number;
  histogram: { min: number; max: number; counts: number[] };
  /** counts[i] = finite x with 2^(lowExp+i) ≤ |x| < 2^(lowExp+i+1); zeros and subnormals are counted apart. */
  logHistogram: { lowExp: number; counts: number[]; zeroOrSubnormal: number };
  percentiles: PercentileValue[];
  outliers: { sigma: number; count: number; share: number; top: TopEntry[] };
  channels?: ChannelStats;
}

function median(a: number[]): number {
  if (a.length === 0) return NaN;
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function finalize(p1: Pass1, p2: Pass2, params: Pass2Params, plan: RefinePlan | undefined, p3: Float64Array[] | undefined, o: ResolvedStatsOptions, layout?: ChannelLayout): TensorStats {
  const m = p1.moments;
  const n = m.n;
  const std = n > 0 ? Math.sqrt(Math.max(0, m.m2) / n) : 0;
  const degenerate = !(m.m2 > 0);
  const min = n > 0 ? p1.min : NaN, max = n > 0 ? p1.max : NaN;
  const absMax = n > 0 ? Math.max(Math.abs(min), Math.abs(max)) : NaN;

  const percentiles: PercentileValue[] = [];
  if (n > 0) {
    const targets = plan?.targets ?? percentileTargets(n, p2.lin);
    const slack = 2 * ulp32(absMax);
    for (const t of targets) {
      if (!(max > min) || !(params.scale > 0)) { percentiles.push({ q: t.q, value: min, errorBound: max - min }); continue; }
      const slot = plan ? plan.slots.findIndex((s) => s.bin === t.bin) : -1;
      if (plan && p3 && slot >= 0) {
        const sub = p3[slot];
        const s = plan.slots[slot];
        let cum = 0, j = 0;
        while (j < HIST_BINS - 1 && cum + sub[j] < t.rankInBin) cum += sub[j++];
        const v = s.lo + (j + 0.5) / s.scale;
        // Half a sub-bin for the midpoint, plus up to 1.5 sub-bins of float32 rounding in both binning levels.
        percentiles.push({ q: t.q, value: Math.min(max, Math.max(min, v)), errorBound: 2 / s.scale + slack });
      } else {
        const v = params.min + (t.bin + 0.5) / params.scale;
        percentiles.push({ q: t.q, value: Math.min(max, Math.max(min, v)), errorBound: 1 / params.scale + slack });
      }
    }
  }

  let lowExp = 0, counts: number[] = [];
  {
    let lo = 1, hi = LOG_BINS - 2;
    while (lo <= hi && p2.log[lo] === 0) lo++;
    while (hi >= lo && p2.log[hi] === 0) hi--;
    if (lo <= hi) { lowExp = lo - 127; counts = Array.from(p2.log.subarray(lo, hi + 1)); }
  }

  let channels: ChannelStats | undefined;
  if (p1.channels) {
    const c = p1.channels, C = c.count.length;
    const cmin: number[] = [], cmax: number[] = [], cabs: number[] = [], cmean: number[] = [], cstd: number[] = [], ranges: number[] = [];
    for (let i = 0; i < C; i++) {
      const has = c.count[i] > 0;
      cmin.push(has ? c.min[i] : NaN); cmax.push(has ? c.max[i] : NaN);
      cabs.push(has ? Math.max(Math.abs(c.min[i]), Math.abs(c.max[i])) : NaN);
      cmean.push(has ? c.mean[i] : NaN); cstd.push(has ? Math.sqrt(c.m2[i] / c.count[i]) : NaN);
      if (has) ranges.push(c.max[i] - c.min[i]);
    }
    const med = median(cabs.filter((v) => !Number.isNaN(v)));
    const outlierChannels: number[] = [];
    for (let i = 0; i < C; i++) if (cabs[i] > o.channelOutlierFactor * med) outlierChannels.push(i);
    const rmed = median(ranges);
    const rmean = ranges.reduce((a, b) => a + b, 0) / Math.max(1, ranges.length);
    const rsd = Math.sqrt(ranges.reduce((a, b) => a + (b - rmean) * (b - rmean), 0) / Math.max(1, ranges.length));
    channels = {
      axis: layout?.axis ?? 0, channels: C, min: cmin, max: cmax, absMax: cabs, mean: cmean, std: cstd,
      medianAbsMax: med, outlierFactor: o.channelOutlierFactor, outlierChannels,
      rangeSpread: {
        min: ranges.length ? Math.min(...ranges) : NaN, median: rmed, max: ranges.length ? Math.max(...ranges) : NaN,
        maxOverMedian: rmed > 0 ? Math.max(...ranges) / rmed : NaN, cv: rmean > 0 ? rsd / rmean : 0,
      },
    };
  }

  return {
    numel: p1.numel, count: n, nan: p1.nan, inf: p1.inf, zeros: p1.zeros, nearZeros: p1.nearZeros, nearZeroEps: o.nearZeroEps,
    sparsity: p1.numel > 0 ? p1.zeros / p1.numel : 0,
    min, max, absMax, mean: n > 0 ? m.mean : NaN, std,
    skewness: degenerate ? 0 : (Math.sqrt(n) * m.m3) / Math.pow(m.m2, 1.5),
    kurtosis: degenerate ? 0 : (n * m.m4) / (m.m2 * m.m2) - 3,
    histogram: { min: params.min, max: n > 0 ? max : 0, counts: Array.from(p2.lin) },
    logHistogram: { lowExp, counts, zeroOrSubnormal: p2.log[0] },
    percentiles,
    outliers: { sigma: o.outlierSigma, count: p2.outliers, share: n > 0 ? p2.outliers / n : 0, top: p1.top },
    // Absent rather than undefined, so results survive a JSON round trip unchanged.
    ...(channels ? { channels } : {}),
  };
}

/** All passes over one source in this thread. */
export function analyseSource(src: ChunkSource, opts: StatsOptions = {}, layout?: ChannelLayout, kernel?: StatsKernel, hook?: ChunkHook): TensorStats {
  const o = resolveOptions(opts);
  const k = kernel ?? makeKernel('wasm', o.chunkElements);
  const range: [number, number] = [0, src.numel];
  if (o.exact16 && isRaw16(src)) return finalizeCodes(runCodes(src, k, range, o, layout, hook), src.dtype16, o, layout);
  const p1 = runPass1(src, k, range, o, layout, hook);
  const params = pass2Params(p1, o);
  const p2 = runPass2(src, k, range, params, o, hook);
  const plan = planRefine(p1, p2, params, o);
  const p3 = plan ? runPass3(src, k, range, plan, o, hook) : undefined;
  return finalize(p1, p2, params, plan, p3, o, layout);
}

export function analyseArray(data: Float32Array, opts: StatsOptions = {}, shape?: readonly number[], outputChannelAxis?: number, kernel?: StatsKernel): TensorStats {
  return analyseSource(arraySource(data), opts, shape ? channelLayout(shape, outputChannelAxis) : undefined, kernel);
}

// --- float16 / bfloat16: one pass over the codes ----------------------------

/** Magnitude codes above these are NaN (equal is ±Inf). */
const NAN_ABOVE = { f16: 0x7c00, bf16: 0x7f80 } as const;

const decodeTables: Partial<Record<'f16' | 'bf16', Float32Array>> = {};
/** float32 value of every 16-bit code, decoded by the same kernel code as the data. */
export function decodeTable(dt: 'f16' | 'bf16'): Float32Array {
  let t = decodeTables[dt];
  if (!t) {
    const k = new TsKernel(65536);
    const raw = k.raw();
    const codes = new Uint16Array(raw.buffer, raw.byteOffset, 65536);
    for (let i = 0; i < 65536; i++) codes[i] = i;
    k.decode(dt, 65536);
    t = decodeTables[dt] = k.f32().slice();
  }
  return t;
}

export interface CodesPartial {
  numel: number;
  /** Occurrences of each 16-bit code. */
  counts: Float64Array;
  top: TopEntry[];
  channels?: ChannelPartial;
}

export function runCodes(src: Raw16Source, k: StatsKernel, range: [number, number], o: ResolvedStatsOptions, layout?: ChannelLayout, hook?: ChunkHook): CodesPartial {
  const [start, end] = range;
  const dt = src.dtype16;
  const table = decodeTable(dt);
  const heap = new TopHeap(o.topK);
  k.codesReset();
  if (layout) k.channelsSetup(layout.channels);
  const step = Math.min(o.chunkElements, k.capacity);
  for (let pos = start; pos < end; pos += step) {
    const n = Math.min(step, end - pos);
    src.fillRaw(k, pos, n);
    const mc = k.count16(n, NAN_ABOVE[dt]);
    let decoded = false;
    // Values are only materialised for chunks that can change the top-k, and for per-channel stats.
    if (o.topK > 0 && mc >= 0 && (!heap.full || Math.abs(table[mc]) > heap.floor)) {
      k.decode(dt, n);
      decoded = true;
      const x = k.f32();
      for (let i = 0; i < n; i++) {
        const v = x[i];
        if (Math.abs(v) < Infinity && (!heap.full || Math.abs(v) > heap.floor)) heap.offer({ index: pos + i, value: v });
      }
    }
    if (layout) {
      if (!decoded) k.decode(dt, n);
      const run = Math.floor(pos / layout.inner);
      k.channels(n, run % layout.channels, pos - run * layout.inner, layout.inner);
    }
    hook?.(pos + n - start);
  }
  return { numel: end - start, counts: k.codesRead(), top: heap.sorted(), channels: layout ? channelPartial(k, layout) : undefined };
}

export function mergeCodes(a: CodesPartial, b: CodesPartial, topK: number): CodesPartial {
  const counts = a.counts.slice();
  for (let i = 0; i < counts.length; i++) counts[i] += b.counts[i];
  return { numel: a.numel + b.numel, counts, top: mergeTop(a.top, b.top, topK), channels: mergeChannels(a.channels, b.channels) };
}

const fbits = new Float32Array(1);
const ubits = new Uint32Array(fbits.buffer);

/** Every statistic from the code counts: moments in two exact f64 passes over the distinct values, exact percentiles. */
export function finalizeCodes(p: CodesPartial, dt: 'f16' | 'bf16', o: ResolvedStatsOptions, layout?: ChannelLayout): TensorStats {
  const table = decodeTable(dt);
  const vals: number[] = [], cnts: number[] = [];
  let nan = 0, inf = 0, zeros = 0, nearZeros = 0, n = 0, sum = 0, min = Infinity, max = -Infinity;
  const eps = Math.fround(o.nearZeroEps);
  const log = new Float64Array(LOG_BINS);
  for (let c = 0; c < 65536; c++) {
    const cnt = p.counts[c];
    if (cnt === 0) continue;
    const v = table[c];
    fbits[0] = v;
    log[(ubits[0] >>> 23) & 0xff] += cnt;
    if (Number.isNaN(v)) { nan += cnt; continue; }
    if (!Number.isFinite(v)) { inf += cnt; continue; }
    vals.push(v); cnts.push(cnt);
    n += cnt; sum += cnt * v;
    if (v === 0) zeros += cnt;
    if (Math.abs(v) < eps) nearZeros += cnt;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = n > 0 ? sum / n : 0;
  let m2 = 0, m3 = 0, m4 = 0;
  for (let i = 0; i < vals.length; i++) {
    const d = vals[i] - mean, d2 = d * d;
    m2 += cnts[i] * d2; m3 += cnts[i] * d2 * d; m4 += cnts[i] * d2 * d2;
  }
  const p1: Pass1 = {
    numel: p.numel, nan, inf, zeros, nearZeros, min: min + 0, max: max + 0,
    moments: { n, mean, m2, m3, m4 }, top: p.top, channels: p.channels,
  };
  const params = pass2Params(p1, o);
  const lin = new Float64Array(HIST_BINS);
  const mn = Math.fround(params.min), sc = Math.fround(params.scale);
  let outliers = 0;
  for (let i = 0; i < vals.length; i++) {
    const v = vals[i];
    const t = Math.trunc(Math.fround(Math.fround(v - mn) * sc));
    lin[t < 0 ? 0 : t > HIST_BINS - 1 ? HIST_BINS - 1 : t] += cnts[i];
    if (v > params.hi || v < params.lo) outliers += cnts[i];
  }
  const stats = finalize(p1, { lin, log, outliers }, params, undefined, undefined, o, layout);
  // Exact nearest-rank percentiles from the sorted distinct values.
  if (n > 0) {
    const order = vals.map((_, i) => i).sort((a, b) => vals[a] - vals[b]);
    stats.percentiles = PERCENTILES.map((q) => {
      const rank = Math.min(n, Math.max(1, Math.ceil((q / 100) * n)));
      let cum = 0, j = 0;
      while (cum + cnts[order[j]] < rank) cum += cnts[order[j++]];
      return { q, value: vals[order[j]] + 0, errorBound: 0 };
    });
  }
  return stats;
}

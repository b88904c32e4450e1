/**
 * Streaming per-tensor statistics. A tensor is read in bounded chunks, in two
 * passes: (1) counts, range, moments, top-k, per-channel stats and a count
 * of the finite elements per top-16-bit key (sign, exponent, 7 mantissa
 * bits), which gives the log2-magnitude histogram and, for each requested
 * percentile, the key bucket holding its rank; (2) the 2048-bin histogram
 * over [min, max] and the |x - mean| > k·σ outlier count (both need pass 1's
 * results), and the low 16 bits of every element in those few buckets, which
 * makes the percentiles exact.
 * Each pass works on a range of elements and yields a partial that merges
 * exactly with the partials of other ranges (Chan/Pébay moment merging in
 * float64), so a large tensor can be split across workers.
 */
import { ChunkMoments, Counts, HIST_BINS, LOG_BINS, StatsKernel, WasmKernel, addCounts, f32Down, f32Up } from '../kernels/statsKernel';
import { StatsKernelRef } from '../kernels/statsKernelRef';
import type { Impl } from '../kernels/runtime';

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
  /**
   * Exact percentiles: pass 2 also counts the low 16 bits of the elements in
   * the key buckets holding the requested ranks (no extra pass). Default true;
   * false reports the middle of the bucket with its half-width as error bound.
   */
  refinePercentiles?: boolean;
  /** Elements per chunk read. Default 262144 (1 MiB of float32; readSync of cached files into WASM memory costs about the same per byte from 128 KiB to 4 MiB here). */
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
    chunkElements: o.chunkElements ?? 262144,
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

/**
 * The statistics kernel of an implementation ('auto' is the WebAssembly one:
 * it covers every pass; where no WebAssembly memory can be had, e.g. under
 * an address-space limit, its TypeScript twin: slower, the same numbers).
 */
export function makeKernel(impl: Impl, capacity: number): StatsKernel {
  if (impl === 'ref') return new StatsKernelRef(capacity);
  if (impl === 'wasm') return new WasmKernel(capacity);
  try {
    return new WasmKernel(capacity);
  } catch {
    return new StatsKernelRef(capacity);
  }
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

/** The exponent k that brings 2^k·m near 2^16, clamped so 2^k is a normal float32. */
function scaleExpFor(m: number): number {
  if (!(m > 0) || !Number.isFinite(m)) return 0;
  return Math.max(-126, Math.min(127, 16 - Math.ceil(Math.log2(m))));
}

/**
 * The kernel sums powers of d = (x - shift)·2^k in one pass, in float32
 * within 64-element blocks. The shift is the running mean, or for a range's
 * first chunk the mean of its first 256 finite values; k brings the largest
 * |d| seen so far near 2^16, so d^4 neither overflows nor underflows float32.
 * A chunk is summed again (its keys were counted by the first call) when its
 * own range makes that scale unsafe (a new extreme value), or when its mean
 * is more than its standard deviation away from the shift: the sums would
 * then lose digits to cancellation. After that var(chunk) ≤ mean(d²) ≤
 * 2·var(chunk), which the error bound in README.md relies on.
 */
function chunkMoments(k: StatsKernel, n: number, eps: number, sofar: Moments, lo: number, hi: number): ChunkMoments {
  let shift = 0;
  if (sofar.n > 0) shift = sofar.mean;
  else {
    const x = k.f32();
    let m = 0, sum = 0;
    lo = Infinity; hi = -Infinity;
    for (let i = 0; i < n && m < 256; i++) {
      const v = x[i];
      if (Math.abs(v) < Infinity) { sum += v; m++; lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    if (m > 0) shift = sum / m;
  }
  shift = Math.fround(shift);
  const span = (a: number, b: number, s: number) => Math.max(Math.abs(a - s), Math.abs(b - s));
  let c = k.moments(n, eps, shift, scaleExpFor(span(lo, hi, shift)), true);
  for (let tries = 0; tries < 2 && c.count > 0; tries++) {
    const reach = span(c.min, c.max, c.shift) * 2 ** c.scaleExp;
    const mean = c.s1 / c.count;
    const cancels = Number.isFinite(mean) && 2 * c.count * mean * mean > c.s2;
    const unsafe = reach > 0 && !(reach >= 2 ** -10 && reach <= 2 ** 29);
    if (!cancels && !unsafe) break;
    const s2 = cancels ? Math.fround(c.shift + mean) : c.shift;
    if (!Number.isFinite(s2)) break;
    const e2 = scaleExpFor(span(c.min, c.max, s2));
    if (s2 === c.shift && e2 === c.scaleExp) break;
    c = k.moments(n, eps, s2, e2, false);
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
  /** Finite elements per top-16-bit key. */
  keys: Counts;
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
  if (layout) k.channelsSetup(layout.channels, layout.inner);
  k.keysReset();
  forChunks(src, k, start, end, o.chunkElements, hook, (n, pos) => {
    const c = chunkMoments(k, n, o.nearZeroEps, mom, min, max);
    nan += c.nan; zeros += c.zeros; nearZeros += c.nearZeros;
    min = Math.min(min, c.min); max = Math.max(max, c.max);
    mom = mergeMoments(mom, chunkToMoments(c));
    // Only chunks that can change the top-k are scanned, which after the first few is almost none.
    if (o.topK > 0 && c.count > 0 && (!heap.full || Math.max(-c.min, c.max) > heap.floor)) offerTop(k, n, pos, heap, Math.max(-c.min, c.max));
    if (layout) {
      const run = Math.floor(pos / layout.inner);
      k.channels(n, run % layout.channels, pos - run * layout.inner, layout.inner, c.count === n);
    }
  });
  const channels = layout ? channelPartial(k, layout) : undefined;
  const numel = end - start;
  return { numel, nan, inf: numel - mom.n - nan, zeros, nearZeros, min, max, moments: mom, top: heap.sorted(), keys: k.keysRead(), channels };
}

/**
 * The kernel's pre-selection of top-k candidates: the heap's floor when it is full; while it is
 * not, thresholds falling from the chunk's largest magnitude until enough elements pass (each
 * try is one vector scan), so a tensor's first chunk is not offered element by element.
 */
function topCandidates(heap: TopHeap, scan: (threshold: number) => Int32Array, floorThreshold: number, thresholds: Iterable<number>): Int32Array {
  if (heap.full) return scan(floorThreshold);
  const need = heap.k - heap.h.length;
  let idx: Int32Array | undefined;
  for (const t of thresholds) {
    idx = scan(t);
    if (idx.length >= need) return idx;
  }
  return idx!;
}

/** Offers the chunk's finite x with |x| above the candidate threshold to the heap. */
function offerTop(k: StatsKernel, n: number, pos: number, heap: TopHeap, absMax: number): void {
  // |x| > absMax/2, /8, /32, … /2^15, then every finite x (above -1): at least `need` candidates, so the top k are among them.
  const steps = function* () { for (let d = 2; d <= 65536; d *= 4) yield absMax / d; yield -1; };
  const idx = topCandidates(heap, (t) => k.above(n, t), heap.floor, steps());
  const x = k.f32();
  for (let j = 0; j < idx.length; j++) {
    const i = idx[j], v = x[i];
    if (!heap.full || Math.abs(v) > heap.floor) heap.offer({ index: pos + i, value: v });
  }
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

function addArrays(a: Float64Array, b: Float64Array): Float64Array {
  const r = a.slice();
  for (let i = 0; i < r.length; i++) r[i] += b[i];
  return r;
}

export function mergePass1(a: Pass1, b: Pass1, topK: number): Pass1 {
  const channels = mergeChannels(a.channels, b.channels);
  return {
    numel: a.numel + b.numel, nan: a.nan + b.nan, inf: a.inf + b.inf, zeros: a.zeros + b.zeros, nearZeros: a.nearZeros + b.nearZeros,
    min: Math.min(a.min, b.min), max: Math.max(a.max, b.max), moments: mergeMoments(a.moments, b.moments),
    top: mergeTop(a.top, b.top, topK), keys: addCounts(a.keys, b.keys), channels,
  };
}

// --- pass 2 ------------------------------------------------------------------

export interface Pass2Params {
  /** float32 origin and scale of the linear histogram: bin = trunc((x - min) * scale), clamped. */
  min: number; scale: number;
  /** float32 outlier thresholds: finite x > hi or x < lo. */
  lo: number; hi: number;
  /** Top-16-bit keys whose elements pass 2 counts by their low 16 bits (the buckets holding the percentiles). */
  refineKeys: number[];
  /** Pass 1 saw no NaN or ±Inf: pass 2 may use the kernel that skips masking them. */
  allFinite?: boolean;
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
  const refineKeys: number[] = [];
  if (o.refinePercentiles && n > 0) for (const t of keyTargets(n, p1.keys)) if (!refineKeys.includes(t.key)) refineKeys.push(t.key);
  return { min, scale, lo: f32Up(mean - o.outlierSigma * sd), hi: f32Down(mean + o.outlierSigma * sd), refineKeys, allFinite: p1.nan + p1.inf === 0 };
}

export interface Pass2 {
  lin: Float64Array; outliers: number;
  /** Per refined key (same order as Pass2Params.refineKeys): elements per low-16-bit pattern. */
  sub: Counts[];
}

export function runPass2(src: ChunkSource, k: StatsKernel, range: [number, number], p: Pass2Params, o: ResolvedStatsOptions, hook?: ChunkHook): Pass2 {
  k.histReset(p.refineKeys);
  let outliers = 0;
  forChunks(src, k, range[0], range[1], o.chunkElements, hook, (n) => { outliers += k.hist(n, p.min, p.scale, p.lo, p.hi, p.allFinite === true); });
  const h = k.histRead();
  return { lin: h.lin, outliers, sub: h.sub };
}

export function mergePass2(a: Pass2, b: Pass2): Pass2 {
  return { lin: addArrays(a.lin, b.lin), outliers: a.outliers + b.outliers, sub: a.sub.map((x, i) => addCounts(x, b.sub[i])) };
}

// --- percentiles from the key buckets -----------------------------------------

interface KeyTarget { q: number; rank: number; key: number; rankInKey: number }

/**
 * For each of PERCENTILES (nearest rank: the value of 1-based rank ceil(q/100 · count) among the
 * sorted finite values), the entry of at[0..m) holding that rank and the rank within the entry.
 * `at` holds 16-bit sign-magnitude codes or top-16-bit float32 keys in ascending order, with
 * cnt[i] values at at[i]: the values ascend along the negative entries (sign bit 0x8000 set, at
 * the end) from the last one down, then along the others upwards, a walk with no sort.
 */
function percentileEntries(count: number, at: ArrayLike<number>, cnt: ArrayLike<number>, m = at.length): { q: number; rank: number; entry: number; rankIn: number }[] {
  for (let i = 1; i < m; i++) if (!(at[i - 1] < at[i])) throw new Error('counts are not in ascending code order');
  let neg = m; // first negative entry
  while (neg > 0 && at[neg - 1] >= 0x8000) neg--;
  const nth = (t: number) => (t < m - neg ? m - 1 - t : t - (m - neg));
  const out = [];
  let j = 0, cum = 0;
  for (const q of PERCENTILES) {
    const rank = Math.min(count, Math.max(1, Math.ceil((q / 100) * count)));
    while (j < m - 1 && cum + cnt[nth(j)] < rank) cum += cnt[nth(j++)];
    out.push({ q, rank, entry: nth(j), rankIn: rank - cum });
  }
  return out;
}

/** The key bucket of each percentile's rank (keys.at is ascending: every producer of Counts keeps it so). */
function keyTargets(count: number, keys: Counts): KeyTarget[] {
  return percentileEntries(count, keys.at, keys.n).map((e) => ({ q: e.q, rank: e.rank, key: keys.at[e.entry], rankInKey: e.rankIn }));
}

const fbits = new Float32Array(1);
const ubits = new Uint32Array(fbits.buffer);
function f32OfBits(b: number): number { ubits[0] = b >>> 0; return fbits[0]; }

/** Value of the r-th smallest (1-based) element of a key bucket, from its low-16-bit counts. */
function valueInKey(key: number, sub: Counts, r: number): number {
  const neg = key >= 0x8000;
  const m = sub.at.length;
  let cum = 0;
  for (let t = 0; t < m; t++) {
    const j = neg ? m - 1 - t : t; // larger low bits are more negative
    cum += sub.n[j];
    if (cum >= r) return f32OfBits((key << 16) | sub.at[j]) + 0;
  }
  throw new Error(`the tensor's data changed between the two passes (bucket 0x${key.toString(16)} holds fewer than ${r} elements in pass 2 than in pass 1)`);
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
  /** One value per channel (NaN for a channel with no finite element). Typed arrays: a worker hands them over without copying, where number arrays cost about 60 ns per value to copy out of a worker and as much again to read in. */
  min: Float64Array; max: Float64Array; absMax: Float64Array; mean: Float64Array; std: Float64Array;
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

/** The k-th smallest (0-based) of a[0..n), by quickselect in place (a is reordered); values are finite. */
function select(a: Float64Array, k: number): number {
  let lo = 0, hi = a.length - 1;
  while (lo < hi) {
    // Median of three as pivot, then a Hoare partition.
    const mid = (lo + hi) >> 1;
    const x = a[lo], y = a[mid], z = a[hi];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : (x < z ? x : y < z ? z : y);
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) { const t = a[i]; a[i] = a[j]; a[j] = t; i++; j--; }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k];
  }
  return a[k];
}

/** Median of finite values, by selection: a sort of thousands of channels costs more than the rest of finalisation. */
function median(a: ArrayLike<number>): number {
  if (a.length === 0) return NaN;
  const s = Float64Array.from(a);
  const m = s.length >> 1;
  const upper = select(s, m);
  if (s.length % 2) return upper;
  // The lower middle is the largest value left of position m after selection.
  let lower = -Infinity;
  for (let i = 0; i < m; i++) if (s[i] > lower) lower = s[i];
  return (lower + upper) / 2;
}

/** `exactPercentiles`: percentiles already known exactly (the 16-bit code path), instead of the key buckets'. */
export function finalize(p1: Pass1, p2: Pass2, params: Pass2Params, o: ResolvedStatsOptions, layout?: ChannelLayout, exactPercentiles?: PercentileValue[]): TensorStats {
  const m = p1.moments;
  const n = m.n;
  const std = n > 0 ? Math.sqrt(Math.max(0, m.m2) / n) : 0;
  const degenerate = !(m.m2 > 0);
  const min = n > 0 ? p1.min : NaN, max = n > 0 ? p1.max : NaN;
  const absMax = n > 0 ? Math.max(Math.abs(min), Math.abs(max)) : NaN;

  const percentiles: PercentileValue[] = exactPercentiles ?? [];
  if (n > 0 && !exactPercentiles) {
    for (const t of keyTargets(n, p1.keys)) {
      const slot = params.refineKeys.indexOf(t.key);
      if (slot >= 0 && p2.sub[slot]) { percentiles.push({ q: t.q, value: valueInKey(t.key, p2.sub[slot], t.rankInKey), errorBound: 0 }); continue; }
      // Unrefined: the middle of the bucket's value range (clipped to [min, max]); a and b are float32, so both lines are exact in float64.
      const x = f32OfBits(t.key << 16), y = f32OfBits((t.key << 16) | 0xffff);
      const a = Math.max(min, Math.min(x, y)), b = Math.min(max, Math.max(x, y));
      percentiles.push({ q: t.q, value: (a + b) / 2, errorBound: (b - a) / 2 });
    }
  }

  // The log2 histogram is the key counts summed per exponent field.
  const log = new Float64Array(LOG_BINS);
  for (let j = 0; j < p1.keys.at.length; j++) log[(p1.keys.at[j] >>> 7) & 0xff] += p1.keys.n[j];
  let lowExp = 0, counts: number[] = [];
  {
    let lo = 1, hi = LOG_BINS - 2;
    while (lo <= hi && log[lo] === 0) lo++;
    while (hi >= lo && log[hi] === 0) hi--;
    if (lo <= hi) { lowExp = lo - 127; counts = Array.from(log.subarray(lo, hi + 1)); }
  }

  let channels: ChannelStats | undefined;
  if (p1.channels) {
    const c = p1.channels, C = c.count.length;
    const cmin = new Float64Array(C), cmax = new Float64Array(C), cabs = new Float64Array(C), cmean = new Float64Array(C), cstd = new Float64Array(C);
    const ranges = new Float64Array(C), present = new Float64Array(C);
    let nr = 0, rsum = 0, rmin = Infinity, rmax = -Infinity;
    for (let i = 0; i < C; i++) {
      if (c.count[i] > 0) {
        cmin[i] = c.min[i]; cmax[i] = c.max[i];
        cabs[i] = Math.max(Math.abs(c.min[i]), Math.abs(c.max[i]));
        cmean[i] = c.mean[i]; cstd[i] = Math.sqrt(c.m2[i] / c.count[i]);
        const r = c.max[i] - c.min[i];
        present[nr] = cabs[i]; ranges[nr++] = r;
        rsum += r; rmin = Math.min(rmin, r); rmax = Math.max(rmax, r);
      } else { cmin[i] = NaN; cmax[i] = NaN; cabs[i] = NaN; cmean[i] = NaN; cstd[i] = NaN; }
    }
    const med = median(present.subarray(0, nr));
    const outlierChannels: number[] = [];
    for (let i = 0; i < C; i++) if (cabs[i] > o.channelOutlierFactor * med) outlierChannels.push(i);
    const rmed = median(ranges.subarray(0, nr));
    const rmean = rsum / Math.max(1, nr);
    let rss = 0;
    for (let i = 0; i < nr; i++) rss += (ranges[i] - rmean) * (ranges[i] - rmean);
    const rsd = Math.sqrt(rss / Math.max(1, nr));
    channels = {
      axis: layout?.axis ?? 0, channels: C, min: cmin, max: cmax, absMax: cabs, mean: cmean, std: cstd,
      medianAbsMax: med, outlierFactor: o.channelOutlierFactor, outlierChannels,
      rangeSpread: {
        min: nr ? rmin : NaN, median: rmed, max: nr ? rmax : NaN,
        maxOverMedian: rmed > 0 ? rmax / rmed : NaN, cv: rmean > 0 ? rsd / rmean : 0,
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
    logHistogram: { lowExp, counts, zeroOrSubnormal: log[0] },
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
  return finalize(p1, p2, params, o, layout);
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
    const k = new StatsKernelRef(65536);
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
  /** Occurrences of each 16-bit code (sparse). */
  counts: Counts;
  top: TopEntry[];
  channels?: ChannelPartial;
}

export function runCodes(src: Raw16Source, k: StatsKernel, range: [number, number], o: ResolvedStatsOptions, layout?: ChannelLayout, hook?: ChunkHook): CodesPartial {
  const [start, end] = range;
  const dt = src.dtype16;
  const table = decodeTable(dt);
  const heap = new TopHeap(o.topK);
  k.codesReset();
  if (layout) k.channelsSetup(layout.channels, layout.inner);
  const step = Math.min(o.chunkElements, k.capacity);
  const inf = NAN_ABOVE[dt];
  let nonFinite = 0, aboveFrom = -1, aboveCount = 0;
  for (let pos = start; pos < end; pos += step) {
    const n = Math.min(step, end - pos);
    src.fillRaw(k, pos, n);
    // What a chunk brings is read off the code table as differences: elements above the heap's
    // floor (16-bit floats are sign-magnitude, so a larger magnitude code is a larger |x|), and
    // NaN/±Inf (magnitude codes from ±Inf's up). Only a chunk with candidates is scanned.
    // (The count above the floor after a chunk is the next chunk's count before it while the floor stays.)
    const from = o.topK > 0 && heap.full ? magnitudeCodeOf(table, heap.floor, inf) + 1 : inf;
    const before = from >= inf ? 0 : from === aboveFrom ? aboveCount : k.codeCount(from, inf);
    k.count16(n);
    const nf = k.codeCount(inf, 0x8000);
    const finite = nf === nonFinite;
    nonFinite = nf;
    aboveFrom = from;
    aboveCount = from < inf ? k.codeCount(from, inf) : 0;
    let steps: number[] | undefined;
    if (aboveCount > before) steps = [];
    else if (o.topK > 0 && !heap.full) {
      // Magnitude codes from the largest seen so far down by 1/16, 1/4, 1 and 4 octaves (of 1024 codes), then all.
      const mc = k.topCode(inf);
      if (mc >= 0) {
        steps = [];
        for (const c of [mc, mc - 64, mc - 256, mc - 1024, mc - 4096]) if (c > 0) steps.push(c);
        steps.push(0); // every finite code: the last try always yields all candidates
      }
    }
    if (steps) {
      const idx = topCandidates(heap, (f) => k.above16(n, f, inf), from, steps);
      const raw = k.raw();
      const codes = new Uint16Array(raw.buffer, raw.byteOffset, n);
      for (let j = 0; j < idx.length; j++) {
        const i = idx[j], v = table[codes[i]];
        if (!heap.full || Math.abs(v) > heap.floor) heap.offer({ index: pos + i, value: v });
      }
    }
    if (layout) {
      const run = Math.floor(pos / layout.inner);
      k.channelsRaw(dt, n, run % layout.channels, pos - run * layout.inner, layout.inner, finite);
    }
    hook?.(pos + n - start);
  }
  return { numel: end - start, counts: k.codesRead(), top: heap.sorted(), channels: layout ? channelPartial(k, layout) : undefined };
}

/** The largest magnitude code (below infCode) whose value is ≤ a (a ≥ 0): table is increasing on 0..infCode. */
function magnitudeCodeOf(table: Float32Array, a: number, infCode: number): number {
  let lo = 0, hi = infCode - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (table[mid] <= a) lo = mid; else hi = mid - 1;
  }
  return lo;
}

export function mergeCodes(a: CodesPartial, b: CodesPartial, topK: number): CodesPartial {
  return { numel: a.numel + b.numel, counts: addCounts(a.counts, b.counts), top: mergeTop(a.top, b.top, topK), channels: mergeChannels(a.channels, b.channels) };
}

/** Every statistic from the code counts: moments in two exact f64 passes over the distinct values, exact percentiles. */
export function finalizeCodes(p: CodesPartial, dt: 'f16' | 'bf16', o: ResolvedStatsOptions, layout?: ChannelLayout): TensorStats {
  const table = decodeTable(dt);
  const distinct = p.counts.at.length;
  const vals = new Float64Array(distinct), cnts = new Float64Array(distinct), codes = new Int32Array(distinct);
  let nan = 0, inf = 0, zeros = 0, nearZeros = 0, n = 0, sum = 0, min = Infinity, max = -Infinity;
  const eps = Math.fround(o.nearZeroEps);
  // Only the distinct codes present are visited, in code order; their float32 keys then come
  // out non-decreasing (positive codes first, each half ordered by magnitude), so equal keys are adjacent.
  const keyAt = new Int32Array(distinct), keyN = new Float64Array(distinct);
  let keys = 0, m = 0;
  for (let e = 0; e < distinct; e++) {
    const c = p.counts.at[e], cnt = p.counts.n[e];
    const v = table[c];
    if (v !== v) { nan += cnt; continue; }
    if (v === Infinity || v === -Infinity) { inf += cnt; continue; }
    fbits[0] = v;
    const key = ubits[0] >>> 16;
    if (keys > 0 && keyAt[keys - 1] === key) keyN[keys - 1] += cnt;
    else { keyAt[keys] = key; keyN[keys++] = cnt; }
    vals[m] = v; cnts[m] = cnt; codes[m++] = c;
    n += cnt; sum += cnt * v;
    if (v === 0) zeros += cnt;
    if (Math.abs(v) < eps) nearZeros += cnt;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = n > 0 ? sum / n : 0;
  let m2 = 0, m3 = 0, m4 = 0;
  for (let i = 0; i < m; i++) {
    const d = vals[i] - mean, d2 = d * d;
    m2 += cnts[i] * d2; m3 += cnts[i] * d2 * d; m4 += cnts[i] * d2 * d2;
  }
  const p1: Pass1 = {
    numel: p.numel, nan, inf, zeros, nearZeros, min: min + 0, max: max + 0,
    moments: { n, mean, m2, m3, m4 }, top: p.top, keys: { at: keyAt.slice(0, keys), n: keyN.slice(0, keys) }, channels: p.channels,
  };
  // Percentiles are computed exactly below, so no key is refined.
  const params = pass2Params(p1, { ...o, refinePercentiles: false });
  const lin = new Float64Array(HIST_BINS);
  const mn = Math.fround(params.min), sc = Math.fround(params.scale);
  let outliers = 0;
  for (let i = 0; i < m; i++) {
    const v = vals[i];
    const t = Math.trunc(Math.fround(Math.fround(v - mn) * sc));
    lin[t < 0 ? 0 : t > HIST_BINS - 1 ? HIST_BINS - 1 : t] += cnts[i];
    if (v > params.hi || v < params.lo) outliers += cnts[i];
  }
  // Exact nearest-rank percentiles: the distinct codes present, walked in value order.
  const percentiles: PercentileValue[] = [];
  if (n > 0) for (const e of percentileEntries(n, codes, cnts, m)) percentiles.push({ q: e.q, value: vals[e.entry] + 0, errorBound: 0 });
  const stats = finalize(p1, { lin, outliers, sub: [] }, params, o, layout, percentiles);
  return stats;
}

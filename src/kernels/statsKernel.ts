/**
 * The chunk kernels of the statistics pass behind one interface, with two
 * implementations: WASM SIMD (wasm/stats.ts, the fast path) and a plain
 * TypeScript twin (kernelsTs.ts) that tests hold bit-identical to it.
 * A kernel owns its buffers: callers fill `f32()` (or `raw()` + `decode`)
 * with up to `capacity` elements, then run the passes over that chunk.
 */
import { STATS_WASM_BASE64 } from './statsKernel.generated';
import { compileBase64, growTo, instantiate, type WasmMemory } from './runtime';

export const HIST_BINS = 2048;
export const LOG_BINS = 256;
export const MAX_REFINE_SLOTS = 8;
/** Buckets keyed by the top 16 bits of a float32 (sign, exponent, 7 mantissa bits). */
export const KEYS = 65536;

/** Sparse counters: the non-zero entries of a table, indices ascending. */
export interface Counts { at: Int32Array; n: Float64Array }

/** The non-zero entries of a dense table. */
export function sparseCounts(d: ArrayLike<number>): Counts {
  let m = 0;
  for (let i = 0; i < d.length; i++) if (d[i] !== 0) m++;
  const at = new Int32Array(m), n = new Float64Array(m);
  for (let i = 0, j = 0; i < d.length; i++) if (d[i] !== 0) { at[j] = i; n[j++] = d[i]; }
  return { at, n };
}

/** Sum of two sparse tables. */
export function addCounts(a: Counts, b: Counts): Counts {
  const at: number[] = [], n: number[] = [];
  let i = 0, j = 0;
  while (i < a.at.length || j < b.at.length) {
    if (j >= b.at.length || (i < a.at.length && a.at[i] < b.at[j])) { at.push(a.at[i]); n.push(a.n[i++]); }
    else if (i >= a.at.length || b.at[j] < a.at[i]) { at.push(b.at[j]); n.push(b.n[j++]); }
    else { at.push(a.at[i]); n.push(a.n[i++] + b.n[j++]); }
  }
  return { at: Int32Array.from(at), n: Float64Array.from(n) };
}

/** Per-chunk raw moments: see `moments` in wasm/stats.ts. */
export interface ChunkMoments {
  count: number; nan: number; zeros: number; nearZeros: number;
  min: number; max: number; shift: number;
  /** d was scaled by 2^scaleExp inside the kernel. */
  scaleExp: number;
  /** Sums of (x - shift)^k for k = 1..4: float32 within 64-element blocks, float64 across them (see wasm/stats.ts). */
  s1: number; s2: number; s3: number; s4: number;
}

/** Per-channel running state: count, min, max, shift, sum(x - shift), sum((x - shift)^2). */
export interface ChannelRaw {
  count: Float64Array; min: Float64Array; max: Float64Array;
  shift: Float64Array; s1: Float64Array; s2: Float64Array;
}

export interface StatsKernel {
  readonly kind: 'wasm' | 'ts';
  /** Elements per chunk the buffers hold. */
  readonly capacity: number;
  /** Float32 input of the next chunk (length capacity). Re-fetch after channelsSetup. */
  f32(): Float32Array;
  /** Raw 16-bit input (capacity * 2 bytes) for `decode`. Re-fetch after channelsSetup. */
  raw(): Uint8Array;
  decode(dtype: 'f16' | 'bf16', n: number): void;
  /**
   * One pass over the chunk; `shift` (rounded to float32) should be near the chunk's mean and
   * 2^scaleExp·max|x - shift| near 2^16, see stats.ts. With `countKeys`, finite x are also counted
   * per top-16-bit key (keysRead).
   */
  moments(n: number, eps: number, shift: number, scaleExp: number, countKeys: boolean): ChunkMoments;
  keysReset(): void;
  /** Finite elements per top-16-bit key since keysReset. */
  keysRead(): Counts;
  /** Zeroes the linear histogram and sets the (≤ MAX_REFINE_SLOTS, finite) keys whose elements are counted by their low 16 bits. */
  histReset(refineKeys: readonly number[]): void;
  /**
   * Adds the chunk to the linear histogram and the refined keys; returns how many finite x are > hi or < lo.
   * `allFinite` promises the chunk holds no NaN/±Inf (a faster kernel; the result is the same).
   */
  hist(n: number, min: number, scale: number, lo: number, hi: number, allFinite?: boolean): number;
  /** Linear histogram, and per refined key the counts of each low-16-bit pattern. Ends the accumulation: histReset before more hist. */
  histRead(): { lin: Float64Array; sub: Counts[] };
  /** Positions of the finite x in the chunk with |x| > thr (a view, valid until the next call). */
  above(n: number, thr: number): Int32Array;
  /** Positions in raw() of the 16-bit codes with from ≤ (code & 0x7fff) < infCode (a view, valid until the next call). */
  above16(n: number, from: number, infCode: number): Int32Array;
  /** Zeroes the per-channel state; `inner` 1 (channel axis last) selects the kernel made for it. */
  channelsSetup(channels: number, inner?: number): void;
  /** Adds the f32() chunk to the per-channel state; `allFinite` promises no NaN/±Inf in it (a faster kernel, same result). */
  channels(n: number, c0: number, off0: number, inner: number, allFinite?: boolean): void;
  /** channels() on the raw 16-bit codes in raw(), decoded on the fly (f32() may be overwritten). */
  channelsRaw(dtype: 'f16' | 'bf16', n: number, c0: number, off0: number, inner: number, allFinite?: boolean): void;
  channelsRead(): ChannelRaw;
  /** Plain float32 sum of the input (bandwidth probe). */
  sum(n: number): number;
  /** Zero the 16-bit code counters. */
  codesReset(): void;
  /** Counts the codes of raw()[0..2n). */
  count16(n: number): void;
  /** Codes counted since codesReset whose magnitude (code & 0x7fff) is in [from, to), both signs. */
  codeCount(from: number, to: number): number;
  /** The largest magnitude below `below` counted since codesReset (either sign), or -1. */
  topCode(below: number): number;
  /** Occurrences of each 16-bit code since codesReset (sparse). */
  codesRead(): Counts;
}

/** The kernels' per-chunk output with the power-of-two scale of d divided out (exact in float64). */
export function chunkResult(count: number, nan: number, zeros: number, nearZeros: number, min: number, max: number, shift: number,
  scaleExp: number, a1: number, a2: number, a3: number, a4: number): ChunkMoments {
  const u = 2 ** -scaleExp;
  return {
    count, nan, zeros, nearZeros, min: min + 0, max: max + 0, shift, scaleExp,
    s1: a1 * u, s2: a2 * u * u, s3: a3 * (u * u * u), s4: a4 * ((u * u) * (u * u)),
  };
}

/** NaN elements among the first n (only called for chunks holding a non-finite value). */
export function countNaN(x: Float32Array, n: number): number {
  let m = 0;
  for (let i = 0; i < n; i++) if (x[i] !== x[i]) m++;
  return m;
}

/** Zeroes the counters of the keys with an all-ones exponent (NaN, ±Inf): the kernels count every element, finite or not. */
export function dropNonFiniteKeys(c: { fill(v: number, a: number, b: number): unknown }): void {
  c.fill(0, 0x7f80, 0x8000);
  c.fill(0, 0xff80, 0x10000);
}

/** f32 rounding toward -Inf / +Inf of a double, so `x > down(t)` equals `x > t` for every float32 x. */
export function f32Down(t: number): number {
  const f = Math.fround(t);
  if (f <= t) return f;
  return nextF32(f, -1);
}
export function f32Up(t: number): number {
  const f = Math.fround(t);
  if (f >= t) return f;
  return nextF32(f, 1);
}
const nf = new Float32Array(1);
const nu = new Int32Array(nf.buffer);
function nextF32(f: number, dir: 1 | -1): number {
  if (!Number.isFinite(f)) return f;
  if (f === 0) return dir > 0 ? 1.401298464324817e-45 : -1.401298464324817e-45;
  nf[0] = f;
  nu[0] += (f > 0) === (dir > 0) ? 1 : -1;
  return nf[0];
}

// --- WASM implementation ---------------------------------------------------

interface StatsExports {
  memory: WasmMemory;
  heapBase(): number;
  moments(p: number, n: number, eps: number, shift: number, scale: number, out: number, keys: number): void;
  momentsFast(p: number, n: number, eps: number, shift: number, scale: number, out: number, keys: number): void;
  hist(p: number, n: number, min: number, scale: number, lo: number, hi: number, h: number, kp: number, sub: number): number;
  histFast(p: number, n: number, min: number, scale: number, lo: number, hi: number, h: number, kp: number, sub: number): number;
  above(p: number, n: number, thr: number, idx: number): number;
  compactU32(src: number, n: number, idx: number, cnt: number): number;
  above16(src: number, n: number, from: number, infCode: number, idx: number): number;
  channels(p: number, n: number, c0: number, off0: number, inner: number, C: number, ch: number): void;
  channelsFast(p: number, n: number, c0: number, off0: number, inner: number, C: number, ch: number): void;
  channelsF16(p: number, n: number, c0: number, off0: number, inner: number, C: number, ch: number, masked: boolean): void;
  channelsBF16(p: number, n: number, c0: number, off0: number, inner: number, C: number, ch: number, masked: boolean): void;
  channelsLast(p: number, n: number, c0: number, C: number, st: number, masked: boolean): void;
  f16ToF32(src: number, dst: number, n: number): void;
  bf16ToF32(src: number, dst: number, n: number): void;
  sumF32(p: number, n: number): number;
  count16(src: number, n: number, h: number): void;
  sumCodes(h: number, from: number, to: number): number;
  topCode(h: number, below: number): number;
}

let wasmModule: object | undefined;
function statsModule(): object {
  if (!wasmModule) wasmModule = compileBase64(STATS_WASM_BASE64);
  return wasmModule;
}

const HIST_COPY = 2049;
const align = (n: number) => (n + 63) & ~63;

export class WasmKernel implements StatsKernel {
  readonly kind = 'wasm' as const;
  private readonly x: StatsExports;
  private readonly OUT: number; private readonly HIST: number;
  private readonly KP: number; private readonly SUB: number; private readonly KEYS: number; private readonly SCRATCH: number;
  private readonly RAW: number; private readonly F32: number; private readonly IDX: number; private readonly CIDX: number; private readonly CCNT: number;
  private readonly CH: number;
  private readonly CODES: number;
  private keyAcc = new Float64Array(KEYS);
  private keysSince = 0;
  /** float64 totals of the refinement counters, only used once a range's counts could overflow u32. */
  private subAcc: Float64Array[] | undefined;
  private subDirty = false;
  private nSub = 0;
  /** float64 totals of the code counters, only used once a range's counts could overflow u32. */
  private codeAcc: Float64Array | undefined;
  private codesSince = 0;
  private C = 0;
  private linAcc = new Float64Array(HIST_BINS + 1);
  private sinceFlush = 0;

  constructor(readonly capacity = 65536) {
    this.x = instantiate<StatsExports>(statsModule(), 'stats');
    let p = align(Math.max(this.x.heapBase(), 1024));
    this.OUT = p; p = align(p + 256);
    this.HIST = p; p = align(p + 4 * HIST_COPY * 4);
    this.KP = p; p = align(p + MAX_REFINE_SLOTS * 4);
    this.SUB = p; p = align(p + MAX_REFINE_SLOTS * KEYS * 4);
    this.KEYS = p; p = align(p + (KEYS + 1) * 4);
    this.SCRATCH = p; p = align(p + (KEYS + 1) * 4);
    this.RAW = p; p = align(p + capacity * 2 + 16);
    this.F32 = p; p = align(p + capacity * 4 + 16);
    this.IDX = p; p = align(p + capacity * 4 + 16);
    this.CIDX = p; p = align(p + KEYS * 4);
    this.CCNT = p; p = align(p + KEYS * 8);
    this.CODES = p; p = align(p + 65536 * 4);
    this.CH = p;
    this.ensure(p);
    new Int32Array(this.buf, this.KP, MAX_REFINE_SLOTS).fill(-1);
  }

  private ensure(bytes: number): void {
    growTo(this.x.memory, bytes);
  }
  private get buf(): ArrayBuffer { return this.x.memory.buffer; }

  f32(): Float32Array { return new Float32Array(this.buf, this.F32, this.capacity); }
  raw(): Uint8Array { return new Uint8Array(this.buf, this.RAW, this.capacity * 2); }
  decode(dtype: 'f16' | 'bf16', n: number): void {
    if (dtype === 'f16') this.x.f16ToF32(this.RAW, this.F32, n);
    else this.x.bf16ToF32(this.RAW, this.F32, n);
  }

  moments(n: number, eps: number, shift: number, scaleExp: number, countKeys: boolean): ChunkMoments {
    if (countKeys) {
      // Each u32 key counter sees at most keysSince + n increments; flush long before 2^32.
      if (this.keysSince + n > 2 ** 31) this.flushKeys();
      this.keysSince += n;
      this.keysDirty = true;
    }
    this.x.momentsFast(this.F32, n, eps, shift, 2 ** scaleExp, this.OUT, countKeys ? this.KEYS : this.SCRATCH);
    const o = new Float64Array(this.buf, this.OUT, 16);
    // A NaN or ±Inf shows in the fast kernel's extremes or sums: redo the chunk with masking (keys are already counted).
    let fin = Number.isFinite(o[4]) && Number.isFinite(o[5]);
    for (let j = 8; j < 16 && fin; j++) fin = Number.isFinite(o[j]);
    if (!fin) this.x.moments(this.F32, n, eps, shift, 2 ** scaleExp, this.OUT, this.SCRATCH);
    const count = o[0];
    return chunkResult(count, count < n ? countNaN(this.f32(), n) : 0, o[2], o[3], o[4], o[5], Math.fround(shift), scaleExp,
      o[8] + o[9], o[10] + o[11], o[12] + o[13], o[14] + o[15]);
  }
  keysReset(): void {
    // keysRead leaves the table zeroed; only an unread (e.g. cancelled) accumulation needs clearing.
    if (this.keysDirty) new Uint32Array(this.buf, this.KEYS, KEYS + 1).fill(0);
    this.keysDirty = false;
    this.keysFlushed = false;
    this.keysSince = 0;
  }
  private keysFlushed = false;
  private keysDirty = true;
  private codesDirty = true;
  private flushKeys(): void {
    const c = new Uint32Array(this.buf, this.KEYS, KEYS + 1);
    dropNonFiniteKeys(c);
    if (!this.keysFlushed) this.keyAcc.fill(0);
    for (let i = 0; i < KEYS; i++) this.keyAcc[i] += c[i];
    c.fill(0);
    this.keysFlushed = true;
    this.keysSince = 0;
  }
  keysRead(): Counts {
    dropNonFiniteKeys(new Uint32Array(this.buf, this.KEYS, KEYS + 1));
    this.keysDirty = false;
    if (!this.keysFlushed) return this.compact(this.KEYS);
    this.flushKeys();
    return sparseCounts(this.keyAcc);
  }

  histReset(refineKeys: readonly number[]): void {
    if (refineKeys.length > MAX_REFINE_SLOTS) throw new Error(`at most ${MAX_REFINE_SLOTS} refined keys`);
    new Uint32Array(this.buf, this.HIST, 4 * HIST_COPY).fill(0);
    const kp = new Int32Array(this.buf, this.KP, MAX_REFINE_SLOTS);
    kp.fill(-1);
    refineKeys.forEach((key, i) => { kp[i] = key; });
    // histRead leaves the refinement counters zeroed; only an unread accumulation needs clearing.
    if (this.subDirty) new Uint32Array(this.buf, this.SUB, MAX_REFINE_SLOTS * KEYS).fill(0);
    this.subDirty = refineKeys.length > 0;
    this.nSub = refineKeys.length;
    this.subAcc = undefined;
    this.linAcc.fill(0); this.sinceFlush = 0;
  }
  hist(n: number, min: number, scale: number, lo: number, hi: number, allFinite = false): number {
    // Each u32 counter sees at most sinceFlush + n increments; flush long before 2^32.
    if (this.sinceFlush + n > 2 ** 31) this.flushHist();
    this.sinceFlush += n;
    return (allFinite ? this.x.histFast : this.x.hist)(this.F32, n, min, scale, lo, hi, this.HIST, this.KP, this.SUB);
  }
  private flushHist(): void {
    const h = new Uint32Array(this.buf, this.HIST, 4 * HIST_COPY);
    for (let c = 0; c < 4; c++) for (let b = 0; b <= HIST_BINS; b++) this.linAcc[b] += h[c * HIST_COPY + b];
    h.fill(0);
    if (this.nSub > 0) {
      const sub = new Uint32Array(this.buf, this.SUB, this.nSub * KEYS);
      const acc = this.subAcc ??= Array.from({ length: this.nSub }, () => new Float64Array(KEYS));
      for (let s = 0; s < this.nSub; s++) for (let i = 0; i < KEYS; i++) acc[s][i] += sub[s * KEYS + i];
      sub.fill(0);
    }
    this.sinceFlush = 0;
  }
  histRead(): { lin: Float64Array; sub: Counts[] } {
    const h = new Uint32Array(this.buf, this.HIST, 4 * HIST_COPY);
    for (let c = 0; c < 4; c++) for (let b = 0; b <= HIST_BINS; b++) this.linAcc[b] += h[c * HIST_COPY + b];
    h.fill(0);
    const sub: Counts[] = [];
    for (let s = 0; s < this.nSub; s++) {
      const r = this.compact(this.SUB + s * KEYS * 4);
      sub.push(this.subAcc ? addCounts(r, sparseCounts(this.subAcc[s])) : r);
    }
    this.subDirty = false; // compact zeroed what it read
    this.subAcc = undefined;
    this.sinceFlush = 0;
    return { lin: this.linAcc.slice(0, HIST_BINS), sub };
  }

  /** The non-zero entries of KEYS u32 counters at p (found in WASM: a JS loop over 65536 entries per tensor costs more than small tensors do). */
  private compact(p: number): Counts {
    const m = this.x.compactU32(p, KEYS, this.CIDX, this.CCNT);
    return { at: new Int32Array(this.buf, this.CIDX, m).slice(), n: new Float64Array(this.buf, this.CCNT, m).slice() };
  }

  above16(n: number, from: number, infCode: number): Int32Array {
    const m = this.x.above16(this.RAW, n, from, infCode, this.IDX);
    return new Int32Array(this.buf, this.IDX, m);
  }

  above(n: number, thr: number): Int32Array {
    const m = this.x.above(this.F32, n, thr, this.IDX);
    return new Int32Array(this.buf, this.IDX, m);
  }

  /** Channel state: six f64 arrays; with the channel axis last, three f64 and five f32 arrays and a counter (wasm/stats.ts channelsLast). */
  private chBytes(C: number): number { return this.lastAxis ? 44 * C + 8 : 48 * C; }
  private lastAxis = false;
  channelsSetup(channels: number, inner = 2): void {
    this.C = channels;
    this.lastAxis = inner === 1;
    this.ensure(this.CH + this.chBytes(channels));
    const C = channels;
    if (this.lastAxis) {
      new Float64Array(this.buf, this.CH, 3 * C).fill(0);
      const f = new Float32Array(this.buf, this.CH + 24 * C, 5 * C + 1);
      f.fill(0);
      f.fill(Infinity, 0, C);
      f.fill(-Infinity, C, 2 * C);
      return;
    }
    const a = new Float64Array(this.buf, this.CH, 6 * C);
    a.fill(0);
    a.fill(Infinity, C, 2 * C);
    a.fill(-Infinity, 2 * C, 3 * C);
  }
  channels(n: number, c0: number, off0: number, inner: number, allFinite = false): void {
    if (this.lastAxis) this.x.channelsLast(this.F32, n, c0, this.C, this.CH, !allFinite);
    else (allFinite ? this.x.channelsFast : this.x.channels)(this.F32, n, c0, off0, inner, this.C, this.CH);
  }
  channelsRaw(dtype: 'f16' | 'bf16', n: number, c0: number, off0: number, inner: number, allFinite = false): void {
    if (this.lastAxis) { this.decode(dtype, n); this.channels(n, c0, off0, inner, allFinite); return; }
    (dtype === 'f16' ? this.x.channelsF16 : this.x.channelsBF16)(this.RAW, n, c0, off0, inner, this.C, this.CH, !allFinite);
  }
  channelsRead(): ChannelRaw {
    const C = this.C;
    if (this.lastAxis) {
      const a = new Float64Array(this.buf, this.CH, 3 * C);
      const f = new Float32Array(this.buf, this.CH + 24 * C, 3 * C);
      return {
        count: a.slice(0, C), s1: a.slice(C, 2 * C), s2: a.slice(2 * C, 3 * C),
        min: Float64Array.from(f.subarray(0, C)), max: Float64Array.from(f.subarray(C, 2 * C)), shift: Float64Array.from(f.subarray(2 * C, 3 * C)),
      };
    }
    const a = new Float64Array(this.buf, this.CH, 6 * C);
    return {
      count: a.slice(0, C), min: a.slice(C, 2 * C), max: a.slice(2 * C, 3 * C),
      shift: a.slice(3 * C, 4 * C), s1: a.slice(4 * C, 5 * C), s2: a.slice(5 * C, 6 * C),
    };
  }

  sum(n: number): number { return this.x.sumF32(this.F32, n); }

  codesReset(): void {
    if (this.codesDirty) new Uint32Array(this.buf, this.CODES, 65536).fill(0);
    this.codesDirty = false;
    this.codeAcc = undefined;
    this.codesSince = 0;
  }
  count16(n: number): void {
    if (this.codesSince + n > 2 ** 31) this.flushCodes();
    this.codesSince += n;
    this.codesDirty = true;
    this.x.count16(this.RAW, n, this.CODES);
  }
  codeCount(from: number, to: number): number {
    if (!(from >= 0 && from <= to && to <= 0x8000)) throw new Error(`codeCount: bad magnitude range [${from}, ${to})`);
    let s = this.x.sumCodes(this.CODES, from, to);
    const acc = this.codeAcc;
    if (acc) for (let m = from; m < to; m++) s += acc[m] + acc[0x8000 | m];
    return s;
  }
  topCode(below: number): number {
    let m = this.x.topCode(this.CODES, below);
    const acc = this.codeAcc;
    if (acc) for (let c = below - 1; c > m; c--) if (acc[c] + acc[0x8000 | c] > 0) { m = c; break; }
    return m;
  }
  private flushCodes(): void {
    const c = new Uint32Array(this.buf, this.CODES, 65536);
    const acc = this.codeAcc ??= new Float64Array(65536);
    for (let i = 0; i < 65536; i++) acc[i] += c[i];
    c.fill(0);
    this.codesSince = 0;
  }
  codesRead(): Counts {
    this.codesDirty = false;
    if (this.codeAcc) { this.flushCodes(); return sparseCounts(this.codeAcc); }
    return this.compact(this.CODES);
  }

  /**
   * Bench only: a float32 region of `n` elements inside this instance's memory,
   * and the kernels applied to it chunk by chunk in place (no copy), to measure
   * kernel speed against plain read bandwidth. These are the kernels finite
   * data takes (momentsFast, histFast).
   */
  benchRegion(n: number): {
    view: Float32Array;
    sum(): number;
    moments(chunk: number, eps: number): number;
    above(chunk: number, thr: number): number;
    hist(chunk: number, min: number, scale: number, lo: number, hi: number): number;
  } {
    const p = align(this.CH + this.chBytes(this.C));
    this.ensure(p + n * 4);
    const x = this.x;
    return {
      view: new Float32Array(this.buf, p, n),
      sum: () => x.sumF32(p, n),
      moments: (chunk, eps) => {
        let c = 0;
        for (let i = 0; i < n; i += chunk) { x.momentsFast(p + i * 4, Math.min(chunk, n - i), eps, 0, 1, this.OUT, this.SCRATCH); c += new Float64Array(this.buf, this.OUT, 1)[0]; }
        return c;
      },
      above: (chunk, thr) => {
        let m = 0;
        for (let i = 0; i < n; i += chunk) m += x.above(p + i * 4, Math.min(chunk, n - i), thr, this.IDX);
        return m;
      },
      hist: (chunk, min, scale, lo, hi) => {
        let o = 0;
        for (let i = 0; i < n; i += chunk) o += x.histFast(p + i * 4, Math.min(chunk, n - i), min, scale, lo, hi, this.HIST, this.KP, this.SUB);
        return o;
      },
    };
  }
}

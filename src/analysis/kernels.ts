/**
 * The chunk kernels of the statistics pass behind one interface, with two
 * implementations: WASM SIMD (wasm/stats.ts, the fast path) and a plain
 * TypeScript twin (kernelsTs.ts) that tests hold bit-identical to it.
 * A kernel owns its buffers: callers fill `f32()` (or `raw()` + `decode`)
 * with up to `capacity` elements, then run the passes over that chunk.
 */
import { STATS_WASM_BASE64 } from './statsWasm.generated';

export const HIST_BINS = 2048;
export const LOG_BINS = 256;
export const MAX_REFINE_SLOTS = 8;

/** Per-chunk raw moments: see `moments` in wasm/stats.ts. */
export interface ChunkMoments {
  count: number; nan: number; zeros: number; nearZeros: number;
  min: number; max: number; shift: number;
  /** Sums of (x - shift)^k for k = 1..4, lanes combined as (s0 + s1) + (s2 + s3). */
  s1: number; s2: number; s3: number; s4: number;
}

export interface RefineSlot { bin: number; lo: number; scale: number }

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
  /** One pass over the chunk; `shift` (rounded to float32) should be near the chunk's mean, see stats.ts. */
  moments(n: number, eps: number, shift: number): ChunkMoments;
  histReset(): void;
  /** Adds the chunk to the linear and log histograms; returns how many finite x are > hi or < lo. */
  hist(n: number, min: number, scale: number, lo: number, hi: number): number;
  histRead(): { lin: Float64Array; log: Float64Array };
  refineSetup(min: number, scale: number, slots: RefineSlot[]): void;
  refine(n: number): void;
  refineRead(): Float64Array[];
  channelsSetup(channels: number): void;
  channels(n: number, c0: number, off0: number, inner: number): void;
  channelsRead(): ChannelRaw;
  /** Plain float32 sum of the input (bandwidth probe). */
  sum(n: number): number;
  /** Zero the 16-bit code counters. */
  codesReset(): void;
  /** Count the codes of raw()[0..2n); returns the largest non-NaN magnitude code (code & 0x7fff ≤ nanAbove), -1 if none. */
  count16(n: number, nanAbove: number): number;
  /** Counts per code, 65536 entries. */
  codesRead(): Float64Array;
}

export function lanes4(a: number, b: number, c: number, d: number): number {
  return (a + b) + (c + d);
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

// lib.dom is not in this project's libs; declare the part of WebAssembly used here.
interface WasmMemory { readonly buffer: ArrayBuffer; grow(pages: number): number }
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

interface StatsExports {
  memory: WasmMemory;
  heapBase(): number;
  moments(p: number, n: number, eps: number, shift: number, out: number): void;
  hist(p: number, n: number, min: number, scale: number, lo: number, hi: number, h: number, lg: number): number;
  refine(p: number, n: number, min: number, scale: number, tab: number, lo: number, sc: number, sub: number, bins: number): void;
  channels(p: number, n: number, c0: number, off0: number, inner: number, C: number, ch: number): void;
  f16ToF32(src: number, dst: number, n: number): void;
  bf16ToF32(src: number, dst: number, n: number): void;
  sumF32(p: number, n: number): number;
  count16(src: number, n: number, h: number, nanAbove: number): number;
}

let wasmModule: object | undefined;
function statsModule(): object {
  if (!wasmModule) wasmModule = new WA.Module(Buffer.from(STATS_WASM_BASE64, 'base64'));
  return wasmModule;
}

const HIST_COPY = 2049;
const align = (n: number) => (n + 63) & ~63;

export class WasmKernel implements StatsKernel {
  readonly kind = 'wasm' as const;
  private readonly x: StatsExports;
  private readonly OUT: number; private readonly HIST: number; private readonly LOG: number;
  private readonly TAB: number; private readonly RLO: number; private readonly RSC: number; private readonly RBINS: number;
  private readonly SUB: number; private readonly RAW: number; private readonly F32: number;
  private readonly CH: number;
  private readonly CODES: number;
  private codeAcc = new Float64Array(65536);
  private codesSince = 0;
  private C = 0;
  private linAcc = new Float64Array(HIST_BINS + 1);
  private logAcc = new Float64Array(LOG_BINS);
  private sinceFlush = 0;
  private slots = 0;

  constructor(readonly capacity = 65536) {
    const inst = new WA.Instance(statsModule(), {});
    this.x = inst.exports as unknown as StatsExports;
    let p = align(Math.max(this.x.heapBase(), 1024));
    this.OUT = p; p = align(p + 256);
    this.HIST = p; p = align(p + 4 * HIST_COPY * 4);
    this.LOG = p; p = align(p + 4 * LOG_BINS * 4);
    this.TAB = p; p = align(p + HIST_BINS);
    this.RLO = p; p = align(p + MAX_REFINE_SLOTS * 4);
    this.RSC = p; p = align(p + MAX_REFINE_SLOTS * 4);
    this.RBINS = p; p = align(p + MAX_REFINE_SLOTS * 4);
    this.SUB = p; p = align(p + MAX_REFINE_SLOTS * HIST_BINS * 4);
    this.RAW = p; p = align(p + capacity * 2 + 16);
    this.F32 = p; p = align(p + capacity * 4 + 16);
    this.CODES = p; p = align(p + 2 * 65536 * 4);
    this.CH = p;
    this.ensure(p);
  }

  private ensure(bytes: number): void {
    const have = this.x.memory.buffer.byteLength;
    if (bytes > have) this.x.memory.grow(Math.ceil((bytes - have) / 65536));
  }
  private get buf(): ArrayBuffer { return this.x.memory.buffer; }

  f32(): Float32Array { return new Float32Array(this.buf, this.F32, this.capacity); }
  raw(): Uint8Array { return new Uint8Array(this.buf, this.RAW, this.capacity * 2); }
  decode(dtype: 'f16' | 'bf16', n: number): void {
    if (dtype === 'f16') this.x.f16ToF32(this.RAW, this.F32, n);
    else this.x.bf16ToF32(this.RAW, this.F32, n);
  }

  moments(n: number, eps: number, shift: number): ChunkMoments {
    this.x.moments(this.F32, n, eps, shift, this.OUT);
    const o = new Float64Array(this.buf, this.OUT, 24);
    return {
      count: o[0], nan: o[1], zeros: o[2], nearZeros: o[3], min: o[4] + 0, max: o[5] + 0, shift: Math.fround(shift),
      s1: lanes4(o[8], o[9], o[10], o[11]), s2: lanes4(o[12], o[13], o[14], o[15]),
      s3: lanes4(o[16], o[17], o[18], o[19]), s4: lanes4(o[20], o[21], o[22], o[23]),
    };
  }

  histReset(): void {
    new Uint32Array(this.buf, this.HIST, 4 * HIST_COPY).fill(0);
    new Uint32Array(this.buf, this.LOG, 4 * LOG_BINS).fill(0);
    this.linAcc.fill(0); this.logAcc.fill(0); this.sinceFlush = 0;
  }
  hist(n: number, min: number, scale: number, lo: number, hi: number): number {
    // Each u32 copy sees at most sinceFlush/4 + n increments; flush long before 2^32.
    if (this.sinceFlush + n > 2 ** 31) this.flushHist();
    this.sinceFlush += n;
    return this.x.hist(this.F32, n, min, scale, lo, hi, this.HIST, this.LOG);
  }
  private flushHist(): void {
    const h = new Uint32Array(this.buf, this.HIST, 4 * HIST_COPY);
    for (let c = 0; c < 4; c++) for (let b = 0; b <= HIST_BINS; b++) this.linAcc[b] += h[c * HIST_COPY + b];
    const l = new Uint32Array(this.buf, this.LOG, 4 * LOG_BINS);
    for (let c = 0; c < 4; c++) for (let b = 0; b < LOG_BINS; b++) this.logAcc[b] += l[c * LOG_BINS + b];
    h.fill(0); l.fill(0); this.sinceFlush = 0;
  }
  histRead(): { lin: Float64Array; log: Float64Array } {
    this.flushHist();
    return { lin: this.linAcc.slice(0, HIST_BINS), log: this.logAcc.slice() };
  }

  refineSetup(min: number, scale: number, slots: RefineSlot[]): void {
    if (slots.length > MAX_REFINE_SLOTS) throw new Error(`at most ${MAX_REFINE_SLOTS} refine slots`);
    const tab = new Uint8Array(this.buf, this.TAB, HIST_BINS);
    tab.fill(0);
    const lo = new Float32Array(this.buf, this.RLO, MAX_REFINE_SLOTS);
    const sc = new Float32Array(this.buf, this.RSC, MAX_REFINE_SLOTS);
    const bins = new Int32Array(this.buf, this.RBINS, MAX_REFINE_SLOTS);
    bins.fill(-1);
    slots.forEach((s, i) => { tab[s.bin] = i + 1; lo[i] = s.lo; sc[i] = s.scale; bins[i] = s.bin; });
    new Uint32Array(this.buf, this.SUB, MAX_REFINE_SLOTS * HIST_BINS).fill(0);
    this.slots = slots.length;
    this.refMin = min; this.refScale = scale;
  }
  private refMin = 0; private refScale = 0;
  refine(n: number): void {
    this.x.refine(this.F32, n, this.refMin, this.refScale, this.TAB, this.RLO, this.RSC, this.SUB, this.RBINS);
  }
  refineRead(): Float64Array[] {
    const sub = new Uint32Array(this.buf, this.SUB, MAX_REFINE_SLOTS * HIST_BINS);
    const r: Float64Array[] = [];
    for (let s = 0; s < this.slots; s++) r.push(Float64Array.from(sub.subarray(s * HIST_BINS, (s + 1) * HIST_BINS)));
    return r;
  }

  channelsSetup(channels: number): void {
    this.C = channels;
    this.ensure(this.CH + 6 * 8 * channels);
    const a = new Float64Array(this.buf, this.CH, 6 * channels);
    a.fill(0);
    a.fill(Infinity, channels, 2 * channels);
    a.fill(-Infinity, 2 * channels, 3 * channels);
  }
  channels(n: number, c0: number, off0: number, inner: number): void {
    this.x.channels(this.F32, n, c0, off0, inner, this.C, this.CH);
  }
  channelsRead(): ChannelRaw {
    const C = this.C;
    const a = new Float64Array(this.buf, this.CH, 6 * C);
    return {
      count: a.slice(0, C), min: a.slice(C, 2 * C), max: a.slice(2 * C, 3 * C),
      shift: a.slice(3 * C, 4 * C), s1: a.slice(4 * C, 5 * C), s2: a.slice(5 * C, 6 * C),
    };
  }

  sum(n: number): number { return this.x.sumF32(this.F32, n); }

  codesReset(): void {
    new Uint32Array(this.buf, this.CODES, 2 * 65536).fill(0);
    this.codeAcc.fill(0);
    this.codesSince = 0;
  }
  count16(n: number, nanAbove: number): number {
    if (this.codesSince + n > 2 ** 31) this.flushCodes();
    this.codesSince += n;
    return this.x.count16(this.RAW, n, this.CODES, nanAbove);
  }
  private flushCodes(): void {
    const c = new Uint32Array(this.buf, this.CODES, 2 * 65536);
    for (let i = 0; i < 65536; i++) this.codeAcc[i] += c[i] + c[65536 + i];
    c.fill(0);
    this.codesSince = 0;
  }
  codesRead(): Float64Array {
    this.flushCodes();
    return this.codeAcc.slice();
  }

  /**
   * Bench only: a float32 region of `n` elements inside this instance's memory,
   * and the kernels applied to it chunk by chunk in place (no copy), to measure
   * kernel speed against plain read bandwidth.
   */
  benchRegion(n: number): {
    view: Float32Array;
    sum(): number;
    moments(chunk: number, eps: number): number;
    hist(chunk: number, min: number, scale: number, lo: number, hi: number): number;
  } {
    const p = align(this.CH + 6 * 8 * this.C);
    this.ensure(p + n * 4);
    const x = this.x;
    return {
      view: new Float32Array(this.buf, p, n),
      sum: () => x.sumF32(p, n),
      moments: (chunk, eps) => {
        let c = 0;
        for (let i = 0; i < n; i += chunk) { x.moments(p + i * 4, Math.min(chunk, n - i), eps, 0, this.OUT); c += new Float64Array(this.buf, this.OUT, 1)[0]; }
        return c;
      },
      hist: (chunk, min, scale, lo, hi) => {
        let o = 0;
        for (let i = 0; i < n; i += chunk) o += x.hist(p + i * 4, Math.min(chunk, n - i), min, scale, lo, hi, this.HIST, this.LOG);
        return o;
      },
    };
  }
}

/**
 * The activation-histogram kernel's interface and its plain TypeScript twin
 * (histKernel.as is the WebAssembly SIMD one). Both take the same chunk
 * passes with the same float64 bin arithmetic, so their results are
 * identical; tests hold them equal, and this twin is the fallback where
 * WebAssembly SIMD is unavailable.
 */

/** What a scan of one chunk found. */
export interface ScanStats {
  /** NaN and ±Inf values (left out of min, max and the histogram). */
  nonFinite: number;
  /** Extremes of the finite values (+Inf / -Inf when there are none); a zero extreme is +0. */
  min: number;
  max: number;
}

export interface HistKernel {
  readonly kind: 'wasm' | 'ts';
  /** Elements one chunk holds. */
  readonly capacity: number;
  /**
   * Starts a batch: 2·bins counters, zeroed, and the per-channel maxima
   * copied in from `channelMax` (null: none are kept). Re-fetch f32() after.
   */
  begin(bins: number, channelMax: Float32Array | null): void;
  /** The next chunk's input (length capacity). */
  f32(): Float32Array;
  /**
   * Scans f32()[0..n): non-finite count, finite extremes, and the per-channel
   * max |x| (NaN never raises it, ±Inf does). Element i is in channel
   * (c0 + floor((pos0 + i) / inner)) mod channels: the chunk starts pos0
   * elements into a run of `inner` elements of channel c0.
   */
  scan(n: number, channels: number, inner: number, c0: number, pos0: number): ScanStats;
  /**
   * Counts the finite x of f32()[0..n) into bin floor(x / w) + bins, clamped
   * to [0, 2·bins); `finiteOnly` promises there is no NaN/±Inf (faster, same result).
   */
  bin(n: number, w: number, finiteOnly: boolean): void;
  /** Adds the counters into `counts` (length 2·bins) and zeroes them. */
  flush(counts: Float64Array): void;
  /** Copies the per-channel maxima out (the array given to begin). */
  end(channelMax: Float32Array): void;
}

/** Index of the low 32 bits of a float64 in a Uint32Array view (0 on little-endian hosts). */
const LOW = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;
const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

/** Whether w is a normal power of two (then x·(1/w) is exactly x / w in float64). */
export function isPow2(w: number): boolean {
  f64[0] = w;
  const hi = u32[1 - LOW];
  const exp = (hi >>> 20) & 0x7ff;
  return w > 0 && u32[LOW] === 0 && (hi & 0xfffff) === 0 && exp !== 0 && exp !== 0x7ff;
}

/** Canonical zero: the sign of a zero extreme depends on the order the kernels meet values in. */
export function plusZero(v: number): number {
  return v === 0 ? 0 : v;
}

export class HistKernelRef implements HistKernel {
  readonly kind = 'ts' as const;
  private readonly in32: Float32Array;
  private tables = new Float64Array(0);
  private bins = 0;
  private cm = new Float32Array(0);
  private channels = 0;

  constructor(readonly capacity = 65536) {
    this.in32 = new Float32Array(capacity);
  }

  begin(bins: number, channelMax: Float32Array | null): void {
    if (this.tables.length !== 2 * bins) this.tables = new Float64Array(2 * bins);
    else this.tables.fill(0);
    this.bins = bins;
    this.channels = channelMax ? channelMax.length : 0;
    this.cm = channelMax ? Float32Array.from(channelMax) : new Float32Array(0);
  }

  f32(): Float32Array { return this.in32; }

  scan(n: number, channels: number, inner: number, c0: number, pos0: number): ScanStats {
    const x = this.in32;
    const cm = this.cm;
    const keep = channels > 0 && channels === this.channels;
    let mn = Infinity, mx = -Infinity, bad = 0;
    let c = c0, pos = pos0;
    for (let i = 0; i < n; i++) {
      const v = x[i];
      const a = v < 0 ? -v : v;
      if (a < Infinity) {
        if (v < mn) mn = v;
        if (v > mx) mx = v;
      } else bad++;
      if (keep) {
        if (a > cm[c]) cm[c] = a;
        if (++pos === inner) {
          pos = 0;
          if (++c === channels) c = 0;
        }
      }
    }
    return { nonFinite: bad, min: plusZero(mn), max: plusZero(mx) };
  }

  bin(n: number, w: number, _finiteOnly: boolean): void {
    const x = this.in32;
    const B = this.bins;
    const top = 2 * B - 1;
    const t = this.tables;
    const inv = 1 / w;
    const pow2 = isPow2(w);
    for (let i = 0; i < n; i++) {
      const v = x[i];
      if (!(Math.abs(v) < Infinity)) continue;
      let b = Math.floor(pow2 ? v * inv : v / w) + B;
      if (b < 0) b = 0;
      else if (b > top) b = top;
      t[b] += 1;
    }
  }

  flush(counts: Float64Array): void {
    const t = this.tables;
    for (let b = 0; b < t.length; b++) counts[b] += t[b];
    t.fill(0);
  }

  end(channelMax: Float32Array): void {
    if (this.channels) channelMax.set(this.cm);
  }
}

/**
 * Plain TypeScript twin of the WASM kernels (wasm/stats.ts). It follows the
 * same float32 rounding steps and the same f64 lane order, so its results are
 * bit-identical to the WASM ones; tests rely on that, and it is the fallback
 * where WebAssembly SIMD is unavailable.
 */
import { ChannelRaw, ChunkMoments, Counts, HIST_BINS, KEYS, MAX_REFINE_SLOTS, StatsKernel, chunkResult, dropNonFiniteKeys, sparseCounts } from './statsKernel';

const fr = Math.fround;
const pmin = (a: number, b: number) => (b < a ? b : a);
const pmax = (a: number, b: number) => (a < b ? b : a);
const TWO112 = fr(5.192296858534828e33);

function bin(x: number, min: number, scale: number): number {
  const t = Math.trunc(fr(fr(x - min) * scale));
  return t < 0 ? 0 : t > HIST_BINS - 1 ? HIST_BINS - 1 : t;
}

export class StatsKernelRef implements StatsKernel {
  readonly kind = 'ts' as const;
  private readonly in32: Float32Array;
  private readonly bits: Uint32Array;
  private readonly rawBuf: Uint8Array;
  private lin = new Float64Array(HIST_BINS + 1);
  private keys = new Float64Array(KEYS);
  private refineKeys: number[] = [];
  private sub: Float64Array[] = [];
  private idx: Int32Array;
  private ch: ChannelRaw | undefined;
  private C = 0;

  constructor(readonly capacity = 65536) {
    this.in32 = new Float32Array(capacity);
    this.bits = new Uint32Array(this.in32.buffer);
    this.rawBuf = new Uint8Array(capacity * 2);
    this.idx = new Int32Array(capacity);
  }

  f32(): Float32Array { return this.in32; }
  raw(): Uint8Array { return this.rawBuf; }

  decode(dtype: 'f16' | 'bf16', n: number): void {
    const h16 = new Uint16Array(this.rawBuf.buffer, this.rawBuf.byteOffset, n);
    const out = this.bits;
    const tmpF = new Float32Array(1);
    const tmpU = new Uint32Array(tmpF.buffer);
    for (let i = 0; i < n; i++) {
      const h = h16[i];
      if (dtype === 'bf16') { out[i] = h << 16; continue; }
      const em = h & 0x7fff;
      tmpU[0] = em << 13;
      tmpF[0] = tmpF[0] * TWO112;
      let b = tmpU[0];
      if (em >= 0x7c00) b |= 0x7f800000;
      out[i] = (b | ((h & 0x8000) << 16)) >>> 0;
    }
  }

  moments(n: number, eps: number, shiftIn: number, scaleExp: number, countKeys: boolean): ChunkMoments {
    const sc = fr(2 ** scaleExp);
    const x = this.in32, bits = this.bits;
    const e = fr(eps);
    const shift = fr(shiftIn);
    let count = 0, nan = 0, zeros = 0, nearZeros = 0, min = Infinity, max = -Infinity;
    // f32 lane sums within 64-element blocks, two f64 lanes across blocks: lane j of a block goes to A[j & 1].
    const A1 = [0, 0], A2 = [0, 0], A3 = [0, 0], A4 = [0, 0];
    const s1 = [0, 0, 0, 0], s2 = [0, 0, 0, 0], s3 = [0, 0, 0, 0], s4 = [0, 0, 0, 0];
    const n4 = n & ~3;
    const flush = () => {
      for (let j = 0; j < 2; j++) {
        A1[j] += s1[j] + s1[j + 2]; A2[j] += s2[j] + s2[j + 2];
        A3[j] += s3[j] + s3[j + 2]; A4[j] += s4[j] + s4[j + 2];
      }
      s1.fill(0); s2.fill(0); s3.fill(0); s4.fill(0);
    };
    for (let i = 0; i < n; i++) {
      const v = x[i];
      if (countKeys) this.keys[bits[i] >>> 16]++;
      let d = 0;
      if (v !== v) nan++;
      else if (Math.abs(v) < Infinity) {
        count++;
        if (v === 0) zeros++;
        if (Math.abs(v) < e) nearZeros++;
        // Compare-and-select like the WASM pmin/pmax; zero signs are canonicalised below.
        if (v < min) min = v;
        if (v > max) max = v;
        d = fr(fr(v - shift) * sc);
      }
      const j = i & 3;
      const d2 = fr(d * d);
      s1[j] = fr(s1[j] + d); s2[j] = fr(s2[j] + d2);
      s3[j] = fr(s3[j] + fr(d2 * d)); s4[j] = fr(s4[j] + fr(d2 * d2));
      // A block ends every 64 elements and at the end; the last partial group of four joins the block before it.
      if (i + 1 === n || (((i + 1) & 63) === 0 && i + 1 < n4)) flush();
    }
    if (countKeys) dropNonFiniteKeys(this.keys);
    return chunkResult(count, nan, zeros, nearZeros, min, max, shift, scaleExp, A1[0] + A1[1], A2[0] + A2[1], A3[0] + A3[1], A4[0] + A4[1]);
  }

  keysReset(): void { this.keys.fill(0); }
  keysRead(): Counts { return sparseCounts(this.keys); }

  histReset(refineKeys: readonly number[]): void {
    if (refineKeys.length > MAX_REFINE_SLOTS) throw new Error(`at most ${MAX_REFINE_SLOTS} refined keys`);
    this.lin.fill(0);
    this.refineKeys = [...refineKeys];
    this.sub = refineKeys.map(() => new Float64Array(KEYS));
  }
  hist(n: number, min: number, scale: number, lo: number, hi: number): number {
    const x = this.in32, bits = this.bits;
    const mn = fr(min), sc = fr(scale), l = fr(lo), h = fr(hi);
    const rk = this.refineKeys;
    let out = 0;
    for (let i = 0; i < n; i++) {
      const v = x[i];
      if (!(Math.abs(v) < Infinity)) { this.lin[HIST_BINS]++; continue; }
      this.lin[bin(v, mn, sc)]++;
      if (v > h || v < l) out++;
      const s = rk.indexOf(bits[i] >>> 16);
      if (s >= 0) this.sub[s][bits[i] & 0xffff]++;
    }
    return out;
  }
  histRead(): { lin: Float64Array; sub: Counts[] } {
    const sub = this.sub.map(sparseCounts);
    this.sub = []; this.refineKeys = [];
    return { lin: this.lin.slice(0, HIST_BINS), sub };
  }

  above16(n: number, from: number, infCode: number): Int32Array {
    const h16 = new Uint16Array(this.rawBuf.buffer, this.rawBuf.byteOffset, n);
    let m = 0;
    for (let i = 0; i < n; i++) {
      const c = h16[i] & 0x7fff;
      if (c >= from && c < infCode) this.idx[m++] = i;
    }
    return this.idx.subarray(0, m);
  }

  above(n: number, thr: number): Int32Array {
    const x = this.in32, t = fr(thr);
    let m = 0;
    for (let i = 0; i < n; i++) {
      const a = Math.abs(x[i]);
      if (a > t && a < Infinity) this.idx[m++] = i;
    }
    return this.idx.subarray(0, m);
  }

  private last: { l1: Float64Array; l2: Float64Array; started: number } | undefined;
  channelsSetup(channels: number, inner = 2): void {
    this.C = channels;
    this.last = inner === 1 ? { l1: new Float64Array(channels), l2: new Float64Array(channels), started: 0 } : undefined;
    this.ch = {
      count: new Float64Array(channels), min: new Float64Array(channels).fill(Infinity),
      max: new Float64Array(channels).fill(-Infinity), shift: new Float64Array(channels),
      s1: new Float64Array(channels), s2: new Float64Array(channels),
    };
  }
  channels(n: number, c0: number, off0: number, inner: number, _allFinite?: boolean): void {
    const ch = this.ch;
    if (!ch) throw new Error('channelsSetup first');
    if (this.last) { this.channelsLast(n, c0, ch, this.last); return; }
    const x = this.in32;
    const l1 = [0, 0, 0, 0], l2 = [0, 0, 0, 0], lmn = [0, 0, 0, 0], lmx = [0, 0, 0, 0];
    let c = c0, off = off0, i = 0;
    while (i < n) {
      const end = i + Math.min(inner - off, n - i);
      let cnt = ch.count[c], mn = ch.min[c], mx = ch.max[c], sh = ch.shift[c], s1 = ch.s1[c], s2 = ch.s2[c];
      let k = i;
      if (cnt === 0) {
        while (k < end) {
          const v = x[k++];
          if (Math.abs(v) < Infinity) { sh = v; cnt = 1; mn = v; mx = v; break; }
        }
      }
      // Groups of four in f32 lanes, summed in float32 over 64-element blocks and float64 across
      // them, as the WASM kernel; non-finite lanes count as the shift.
      const vend = k + ((end - k) & ~3);
      if (k < vend) {
        const shf = fr(sh);
        for (let j = 0; j < 4; j++) { lmn[j] = mn; lmx[j] = mx; }
        const A1 = [0, 0], A2 = [0, 0];
        const kv = k;
        for (; k < vend; k++) {
          let v = x[k];
          if (Math.abs(v) < Infinity) cnt++; else v = shf;
          const j = (k - kv) & 3;
          if (v < lmn[j]) lmn[j] = v;
          if (lmx[j] < v) lmx[j] = v;
          const d = fr(v - shf);
          l1[j] = fr(l1[j] + d); l2[j] = fr(l2[j] + fr(d * d));
          if (((k + 1 - kv) & 63) === 0 || k + 1 === vend) {
            A1[0] += l1[0] + l1[2]; A1[1] += l1[1] + l1[3];
            A2[0] += l2[0] + l2[2]; A2[1] += l2[1] + l2[3];
            l1.fill(0); l2.fill(0);
          }
        }
        mn = pmin(pmin(lmn[0], lmn[1]), pmin(lmn[2], lmn[3]));
        mx = pmax(pmax(lmx[0], lmx[1]), pmax(lmx[2], lmx[3]));
        s1 += A1[0] + A1[1];
        s2 += A2[0] + A2[1];
      }
      for (; k < end; k++) {
        const v = x[k];
        if (!(Math.abs(v) < Infinity)) continue;
        if (cnt === 0) sh = v;
        cnt += 1;
        if (v < mn) mn = v;
        if (v > mx) mx = v;
        const d = v - sh;
        s1 += d;
        s2 += d * d;
      }
      ch.count[c] = cnt; ch.min[c] = mn; ch.max[c] = mx; ch.shift[c] = sh; ch.s1[c] = s1; ch.s2[c] = s2;
      i = end; off = 0; c++;
      if (c === this.C) c = 0;
    }
  }
  /** The channel axis is last: the WASM channelsLast steps, element by element (float32 partial sums flushed every 16·C elements and at the end). */
  private channelsLast(n: number, c0: number, ch: ChannelRaw, st: { l1: Float64Array; l2: Float64Array; started: number }): void {
    const x = this.in32, C = this.C;
    const flush = () => { for (let c = 0; c < C; c++) { ch.s1[c] += st.l1[c]; ch.s2[c] += st.l2[c]; st.l1[c] = 0; st.l2[c] = 0; } };
    let i = 0, c = c0, since = 0;
    while (i < n) {
      const segEnd = i + Math.min(C - c, n - i);
      for (let k = i, cc = c; k < segEnd; k++, cc++) {
        const v = x[k];
        if (!(Math.abs(v) < Infinity)) continue;
        if (ch.count[cc] === 0) { ch.shift[cc] = v; ch.min[cc] = v; ch.max[cc] = v; ch.count[cc] = 1; st.started++; continue; }
        ch.count[cc]++;
        if (v < ch.min[cc]) ch.min[cc] = v;
        if (ch.max[cc] < v) ch.max[cc] = v;
        const d = fr(v - ch.shift[cc]);
        st.l1[cc] = fr(st.l1[cc] + d);
        st.l2[cc] = fr(st.l2[cc] + fr(d * d));
      }
      since += segEnd - i;
      if (since >= 16 * C) { flush(); since = 0; }
      i = segEnd; c = 0;
    }
    flush();
  }
  channelsRaw(dtype: 'f16' | 'bf16', n: number, c0: number, off0: number, inner: number, _allFinite?: boolean): void {
    this.decode(dtype, n);
    this.channels(n, c0, off0, inner);
  }
  channelsRead(): ChannelRaw {
    const ch = this.ch;
    if (!ch) throw new Error('channelsSetup first');
    return { count: ch.count.slice(), min: ch.min.slice(), max: ch.max.slice(), shift: ch.shift.slice(), s1: ch.s1.slice(), s2: ch.s2.slice() };
  }

  private codes = new Float64Array(65536);
  codesReset(): void { this.codes.fill(0); }
  count16(n: number): void {
    const h16 = new Uint16Array(this.rawBuf.buffer, this.rawBuf.byteOffset, n);
    for (let i = 0; i < n; i++) this.codes[h16[i]]++;
  }
  codeCount(from: number, to: number): number {
    if (!(from >= 0 && from <= to && to <= 0x8000)) throw new Error(`codeCount: bad magnitude range [${from}, ${to})`);
    let s = 0;
    for (let m = from; m < to; m++) s += this.codes[m] + this.codes[0x8000 | m];
    return s;
  }
  topCode(below: number): number {
    for (let m = below - 1; m >= 0; m--) if (this.codes[m] + this.codes[0x8000 | m] > 0) return m;
    return -1;
  }
  codesRead(): Counts { return sparseCounts(this.codes); }

  sum(n: number): number {
    let s = 0;
    for (let i = 0; i < n; i++) s = fr(s + this.in32[i]);
    return s;
  }
}

/**
 * GGUF block encoders, equal byte for byte to ggml's reference quantizers
 * (`quantize_row_*_ref`, and the importance-weighted `quantize_row_*_impl`
 * that `ggml_quantize_chunk` runs when given an imatrix).
 *
 * Why the code looks the way it does: ggml computes in float32 on a build
 * without fused multiply-add, so every float operation here is wrapped in
 * Math.fround in the same order as ggml evaluates it. A float32 +, -, *, / or
 * sqrt done in double and rounded once to float32 gives the float32 result
 * exactly, so the bytes agree. The K-quant searches compare nearly equal
 * candidates; a single unrounded intermediate changes which candidate wins.
 *
 * test/fixtures/ggml holds bytes produced by the real ggml library for these
 * encoders to be held against (see gen_reference.py there).
 */
import type { Impl } from '../../kernels/runtime';
import { f32ToF16, f16Lookup } from '../../formats/dtypes';
import { GgmlTypeInfo, GgmlTypeName, QK_K, ggmlTypeById, ggmlTypeByName } from '../../formats/gguf/ggmlTypes';
import { GGML_WASM_IMPORTANCE_TYPES, GGML_WASM_TYPES, quantizeGgmlWasm } from '../../kernels/ggmlKernels';

const fr = Math.fround;
const F16 = f16Lookup();
const GROUP_MAX_EPS = fr(1e-15);
const FLT_MAX = 3.4028234663852886e38;
const TENTH = fr(0.1);

/** Types this module can encode. */
export const QUANTIZABLE: ReadonlySet<GgmlTypeName> = new Set<GgmlTypeName>([
  'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_K',
]);

/** Types whose ggml quantizer takes importance weights (an imatrix); the rest ignore them, as ggml does. */
export const IMPORTANCE_AWARE: ReadonlySet<GgmlTypeName> = new Set<GgmlTypeName>([
  'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K',
]);

export interface GgmlQuantizeOptions {
  /**
   * Per-column importance (ggml's `quant_weights`, the diagonal of an imatrix),
   * one value per element of a row. Rows are `importance.length` long unless
   * `rowLength` says otherwise.
   */
  importance?: Float32Array;
  rowLength?: number;
  /**
   * Which encoder runs: 'auto' (default) takes the WebAssembly SIMD kernels
   * (wasm/ggmlWasm.ts) where one exists for the type (with importance
   * weights: where the kernel has that path too), else this file's
   * TypeScript reference; 'ref' forces the reference; 'wasm' demands the
   * kernel and throws where there is none. All give the same bytes
   * (test/unit/quant-ggml-wasm.test.ts).
   */
  impl?: Impl;
}

function resolve(type: GgmlTypeName | number | string): GgmlTypeInfo {
  const info = typeof type === 'number' ? ggmlTypeById(type) : ggmlTypeByName(type);
  if (!info) throw new RangeError(`quantizeGgml: unknown GGUF type ${String(type)}`);
  if (!QUANTIZABLE.has(info.name)) {
    throw new RangeError(`quantizeGgml: no encoder for GGUF type ${info.name} (encodable: ${[...QUANTIZABLE].join(', ')})`);
  }
  return info;
}

export function canQuantizeGgml(type: GgmlTypeName | number | string): boolean {
  const info = typeof type === 'number' ? ggmlTypeById(type) : ggmlTypeByName(type);
  return !!info && QUANTIZABLE.has(info.name);
}

/** Bytes that `nElements` values occupy in `type`. */
export function ggmlQuantizedSize(type: GgmlTypeName | number | string, nElements: number): number {
  const info = resolve(type);
  return (nElements / info.blockSize) * info.typeSize;
}

/** Encode `nElements` float32 values (a whole number of blocks) into a new buffer. */
export function quantizeGgml(
  type: GgmlTypeName | number | string, src: Float32Array, nElements: number, opts: GgmlQuantizeOptions = {},
): Uint8Array {
  const info = resolve(type);
  const dst = new Uint8Array((Math.floor(nElements / info.blockSize)) * info.typeSize);
  quantizeGgmlInto(info.name, src, 0, dst, 0, nElements, opts);
  return dst;
}

/**
 * Encode `src[srcOffset .. srcOffset+nElements)` into `dst` at `dstOffset`.
 * Returns the number of bytes written. Lets a worker fill a slice of a shared
 * output buffer without allocating.
 */
export function quantizeGgmlInto(
  type: GgmlTypeName | number | string, src: Float32Array, srcOffset: number,
  dst: Uint8Array, dstOffset: number, nElements: number, opts: GgmlQuantizeOptions = {},
): number {
  const info = resolve(type);
  if (!Number.isInteger(nElements) || nElements < 0 || nElements % info.blockSize !== 0) {
    throw new RangeError(`quantizeGgml: ${nElements} elements is not a whole number of ${info.name} blocks (${info.blockSize})`);
  }
  if (srcOffset + nElements > src.length) throw new RangeError(`quantizeGgml: source holds ${src.length - srcOffset} < ${nElements} values`);
  const nb = nElements / info.blockSize;
  const bytes = nb * info.typeSize;
  if (dstOffset + bytes > dst.length) throw new RangeError(`quantizeGgml: ${info.name} needs ${bytes} bytes, destination has ${dst.length - dstOffset}`);

  const impl = opts.impl ?? 'auto';
  const qw = IMPORTANCE_AWARE.has(info.name) ? opts.importance : undefined;
  let row = 0;
  if (qw) {
    for (let i = 0; i < qw.length; i++) {
      if (!(qw[i] >= 0) || qw[i] === Infinity) throw new RangeError(`quantizeGgml: importance[${i}] is ${qw[i]}; importance weights must be finite and >= 0`);
    }
    row = opts.rowLength ?? qw.length;
    if (row <= 0 || row % info.blockSize !== 0) throw new RangeError(`quantizeGgml: row length ${row} is not a whole number of ${info.name} blocks`);
    if (qw.length < row) throw new RangeError(`quantizeGgml: importance has ${qw.length} values, rows have ${row}`);
    if (nElements % row !== 0) throw new RangeError(`quantizeGgml: ${nElements} elements is not a whole number of rows of ${row}`);
  }
  if (impl !== 'ref') {
    // The kernel checks finiteness chunk by chunk; a bad value leaves earlier chunks written.
    const bad = quantizeGgmlWasm(info.name, src, srcOffset, dst, dstOffset, nElements, qw, row);
    if (bad >= 0) throw new RangeError(`quantizeGgml: element ${bad} is ${src[srcOffset + bad]}; ${info.name} blocks need finite values`);
    if (bad === -1) return bytes;
    if (impl === 'wasm') {
      throw new RangeError(`quantizeGgml: no WebAssembly kernel for ${info.name}${qw ? ' with importance weights' : ''}` +
        ` (kernels: ${[...GGML_WASM_TYPES].join(', ')}; with importance: ${[...GGML_WASM_IMPORTANCE_TYPES].join(', ')};` +
        ` WebAssembly SIMD required)`);
    }
  }

  // ggml would silently write garbage blocks for NaN/Inf; say where the bad value is instead.
  for (let i = srcOffset, end = srcOffset + nElements; i < end; i++) {
    const v = src[i];
    if (v - v !== 0) throw new RangeError(`quantizeGgml: element ${i - srcOffset} is ${v}; ${info.name} blocks need finite values`);
  }
  if (!qw) {
    encodeBlocks(info.name, src, srcOffset, dst, dstOffset, nb, undefined);
    return bytes;
  }
  const rowBytes = (row / info.blockSize) * info.typeSize;
  for (let r = 0; r < nElements / row; r++) {
    encodeBlocks(info.name, src, srcOffset + r * row, dst, dstOffset + r * rowBytes, row / info.blockSize, qw, row);
  }
  return bytes;
}

function encodeBlocks(
  name: GgmlTypeName, x: Float32Array, xo: number, y: Uint8Array, yo: number, nb: number,
  qw: Float32Array | undefined, rowLength = 0,
): void {
  switch (name) {
    case 'Q8_0': return q8_0(x, xo, y, yo, nb);
    case 'Q4_0': return qw ? q4_0w(x, xo, y, yo, rowLength, qw) : q4_0(x, xo, y, yo, nb);
    case 'Q4_1': return qw ? qx_1w(x, xo, y, yo, rowLength, qw, 15) : q4_1(x, xo, y, yo, nb);
    case 'Q5_0': return qw ? q5_0w(x, xo, y, yo, rowLength, qw) : q5_0(x, xo, y, yo, nb);
    case 'Q5_1': return qw ? qx_1w(x, xo, y, yo, rowLength, qw, 31) : q5_1(x, xo, y, yo, nb);
    case 'Q2_K': return qw ? q2_kw(x, xo, y, yo, nb, qw) : q2_k(x, xo, y, yo, nb);
    case 'Q3_K': return q3_k(x, xo, y, yo, nb, qw);
    case 'Q4_K': return q45_k(x, xo, y, yo, nb, qw, 15);
    case 'Q5_K': return q45_k(x, xo, y, yo, nb, qw, 31);
    case 'Q6_K': return q6_k(x, xo, y, yo, nb, qw);
    case 'Q8_K': return q8_k(x, xo, y, yo, nb);
    default: throw new RangeError(`quantizeGgml: no encoder for ${name}`);
  }
}

// ---------------------------------------------------------------------------
// Scalar helpers

const ROUND_MAGIC = 6755399441055744; // 1.5 * 2^52: adding it rounds a double to an integer, ties to even
const i32Scratch = new Int32Array(1);
const f32View = new Float32Array(i32Scratch.buffer);

/**
 * ggml's nearest_int: adds 1.5*2^23 in float32 and reads the mantissa, which
 * is round-half-to-even for |v| < 2^22. Outside that range (only reachable
 * with degenerate scales) the bit trick's own wrap-around is reproduced.
 */
function nearestInt(v: number): number {
  if (v <= 4194303 && v >= -4194303) return (v + ROUND_MAGIC) - ROUND_MAGIC;
  f32View[0] = v + 12582912;
  return (i32Scratch[0] & 0x007fffff) - 0x00400000;
}

function putF16(y: Uint8Array, o: number, v: number): number {
  const h = f32ToF16(v);
  y[o] = h & 0xff;
  y[o + 1] = h >>> 8;
  return h;
}

/**
 * ggml's `(int8_t)(v)` for the legacy 32-element encoders, as an x86-64 build
 * computes it (cvttss2si, then the low byte). C leaves the cast undefined when
 * v is ±Inf, NaN or outside int32, which happens when a block's scale d is so
 * small (float32 subnormals, e.g. PP-OCRv4 rec's conv2d_117.w_0) that 1/d
 * overflows: x * (1/d) is then ±Inf, or NaN for x = 0. x86 turns all of those
 * into 0x80000000, whose low byte is 0, so such blocks come out all zero codes.
 * We match the x86 bytes because that is the build people run llama.cpp on; an
 * ARM build (fcvtzs saturates) would give 15 / 31 for +Inf instead.
 */
function castInt8X86(v: number): number {
  if (!(v > -2147483649 && v < 2147483648)) return 0;
  return (Math.trunc(v) << 24) >> 24;
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

// ---------------------------------------------------------------------------
// 32-element blocks

// block_q8_0 { half d; int8 qs[32]; }
function q8_0(x: Float32Array, xo: number, y: Uint8Array, yo: number, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const b = xo + i * 32, o = yo + i * 34;
    let amax = 0;
    for (let j = 0; j < 32; j++) {
      const a = Math.abs(x[b + j]);
      if (a > amax) amax = a;
    }
    const d = fr(amax / 127);
    const id = d ? fr(1 / d) : 0;
    putF16(y, o, d);
    for (let j = 0; j < 32; j++) {
      // roundf (half away from zero); v ± 0.5 is exact in double for |v| ≤ 128, and the
      // Uint8Array store wraps negative codes to their two's-complement byte.
      const v = fr(x[b + j] * id);
      y[o + 2 + j] = Math.trunc(v < 0 ? v - 0.5 : v + 0.5);
    }
  }
}

// block_q4_0 { half d; uint8 qs[16]; } elements j and j+16 share byte j (low, high nibble).
function q4_0(x: Float32Array, xo: number, y: Uint8Array, yo: number, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const b = xo + i * 32, o = yo + i * 18;
    let amax = 0, max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[b + j];
      if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
    }
    const d = fr(max / -8);
    const id = d ? fr(1 / d) : 0;
    putF16(y, o, d);
    for (let j = 0; j < 16; j++) {
      // ggml: MIN(15, (int8_t)(x*id + 8.5f)) into a uint8_t (see castInt8X86 for 1/d = Inf).
      const a = Math.min(15, castInt8X86(fr(fr(x[b + j] * id) + 8.5))) & 0xff;
      const c = Math.min(15, castInt8X86(fr(fr(x[b + j + 16] * id) + 8.5))) & 0xff;
      y[o + 2 + j] = a | (c << 4);
    }
  }
}

// block_q4_1 { half d; half m; uint8 qs[16]; }
function q4_1(x: Float32Array, xo: number, y: Uint8Array, yo: number, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const b = xo + i * 32, o = yo + i * 20;
    let min = FLT_MAX, max = -FLT_MAX;
    for (let j = 0; j < 32; j++) {
      const v = x[b + j];
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const d = fr(fr(max - min) / 15);
    const id = d ? fr(1 / d) : 0;
    putF16(y, o, d);
    putF16(y, o + 2, min);
    for (let j = 0; j < 16; j++) {
      const a = Math.min(15, castInt8X86(fr(fr(fr(x[b + j] - min) * id) + 0.5))) & 0xff;
      const c = Math.min(15, castInt8X86(fr(fr(fr(x[b + j + 16] - min) * id) + 0.5))) & 0xff;
      y[o + 4 + j] = a | (c << 4);
    }
  }
}

/** Writes the 4-byte qh (fifth bits, element j → bit j) and 16 nibble bytes of a q5 block. */
function packQ5(y: Uint8Array, qhAt: number, qsAt: number, L: ArrayLike<number>): void {
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const a = L[j], c = L[j + 16];
    y[qsAt + j] = (a & 0x0f) | ((c & 0x0f) << 4);
    qh |= ((a & 0x10) >>> 4) << j;
    qh |= ((c & 0x10) >>> 4) << (j + 16);
  }
  y[qhAt] = qh & 0xff; y[qhAt + 1] = (qh >>> 8) & 0xff; y[qhAt + 2] = (qh >>> 16) & 0xff; y[qhAt + 3] = qh >>> 24;
}

const L32 = new Int32Array(32);

// block_q5_0 { half d; uint8 qh[4]; uint8 qs[16]; }
function q5_0(x: Float32Array, xo: number, y: Uint8Array, yo: number, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const b = xo + i * 32, o = yo + i * 22;
    let amax = 0, max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[b + j];
      if (amax < Math.abs(v)) { amax = Math.abs(v); max = v; }
    }
    const d = fr(max / -16);
    const id = d ? fr(1 / d) : 0;
    putF16(y, o, d);
    for (let j = 0; j < 32; j++) L32[j] = Math.min(31, castInt8X86(fr(fr(x[b + j] * id) + 16.5))) & 0xff;
    packQ5(y, o + 2, o + 6, L32);
  }
}

// block_q5_1 { half d; half m; uint8 qh[4]; uint8 qs[16]; }
function q5_1(x: Float32Array, xo: number, y: Uint8Array, yo: number, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const b = xo + i * 32, o = yo + i * 24;
    let min = FLT_MAX, max = -FLT_MAX;
    for (let j = 0; j < 32; j++) {
      const v = x[b + j];
      if (v < min) min = v;
      if (v > max) max = v;
    }
    const d = fr(fr(max - min) / 31);
    const id = d ? fr(1 / d) : 0;
    putF16(y, o, d);
    putF16(y, o + 2, min);
    // No clamp here in ggml: the top value lands on 31 exactly. For 1/d = Inf this gives
    // the x86 bytes too (ToInt32 of ±Inf and NaN is 0, as castInt8X86).
    for (let j = 0; j < 32; j++) L32[j] = castInt8X86(fr(fr(fr(x[b + j] - min) * id) + 0.5)) & 0xff;
    packQ5(y, o + 4, o + 8, L32);
  }
}

/** sigma² of a whole row, which ggml's importance path folds into every weight of the row. */
function rowSigma2(x: Float32Array, xo: number, n: number): number {
  let s = 0;
  for (let j = 0; j < n; j++) s = fr(s + fr(x[xo + j] * x[xo + j]));
  return fr(s / n);
}

const W32 = new Float32Array(32);
const U32a = new Uint8Array(32);
const U32b = new Uint8Array(32);
const I8_32 = new Int8Array(32);

function importanceWeights(x: Float32Array, xb: number, qw: Float32Array, qo: number, n: number, sigma2: number, w: Float32Array): void {
  for (let j = 0; j < n; j++) w[j] = fr(qw[qo + j] * fr(Math.sqrt(fr(sigma2 + fr(x[xb + j] * x[xb + j])))));
}

function q4_0w(x: Float32Array, xo: number, y: Uint8Array, yo: number, n: number, qw: Float32Array): void {
  const sigma2 = rowSigma2(x, xo, n);
  for (let ib = 0; ib < n / 32; ib++) {
    importanceWeights(x, xo + 32 * ib, qw, 32 * ib, 32, sigma2, W32);
    const d = makeQxQuants(32, 8, x, xo + 32 * ib, I8_32, 0, W32, 0);
    const o = yo + ib * 18;
    putF16(y, o, d);
    for (let j = 0; j < 16; j++) y[o + 2 + j] = (I8_32[j] | (I8_32[j + 16] << 4)) & 0xff;
  }
}

function q5_0w(x: Float32Array, xo: number, y: Uint8Array, yo: number, n: number, qw: Float32Array): void {
  const sigma2 = rowSigma2(x, xo, n);
  for (let ib = 0; ib < n / 32; ib++) {
    importanceWeights(x, xo + 32 * ib, qw, 32 * ib, 32, sigma2, W32);
    const d = makeQxQuants(32, 16, x, xo + 32 * ib, I8_32, 0, W32, 0);
    const o = yo + ib * 22;
    putF16(y, o, d);
    packQ5(y, o + 2, o + 6, I8_32);
  }
}

/** Q4_1 / Q5_1 with importance: scale and min from the weighted min-max search. */
function qx_1w(x: Float32Array, xo: number, y: Uint8Array, yo: number, n: number, qw: Float32Array, nmax: number): void {
  const sigma2 = rowSigma2(x, xo, n);
  const size = nmax === 15 ? 20 : 24;
  for (let ib = 0; ib < n / 32; ib++) {
    importanceWeights(x, xo + 32 * ib, qw, 32 * ib, 32, sigma2, W32);
    const d = makeQkx3Quants(32, nmax, x, xo + 32 * ib, W32, U32a, 0, U32b, fr(-0.9), fr(0.05), 36);
    const o = yo + ib * size;
    putF16(y, o, d);
    putF16(y, o + 2, -qkMin);
    if (nmax === 15) for (let j = 0; j < 16; j++) y[o + 4 + j] = U32a[j] | (U32a[j + 16] << 4);
    else packQ5(y, o + 4, o + 8, U32a);
  }
}

// ---------------------------------------------------------------------------
// K-quant scale searches (ggml's make_*_quants), float32 step by step

/**
 * The group's value of largest magnitude, signed (the first of equals), as
 * ggml's symmetric searches start from; 0, with the codes zeroed, for a group
 * that is all but zero.
 */
function signedGroupMax(n: number, x: ArrayLike<number>, xo: number, L: Int8Array, lo: number): number {
  let max = 0, amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[xo + i]);
    if (ax > amax) { amax = ax; max = x[xo + i]; }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, lo, lo + n);
    return 0;
  }
  return max;
}

/**
 * Symmetric search around nmax/max with weights (ggml make_qx_quants, rmse_type 1):
 * weights are `qw` when given, else x². Writes L[i] in [0, 2·nmax) and returns the scale.
 */
function makeQxQuants(
  n: number, nmax: number, x: ArrayLike<number>, xo: number, L: Int8Array, lo: number,
  qw: Float32Array | undefined, qo: number,
): number {
  const max = signedGroupMax(n, x, xo, L, lo);
  if (max === 0) return 0;
  let iscale = fr(-nmax / max);
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i];
    const l = clamp(nearestInt(fr(iscale * xi)), -nmax, nmax - 1);
    L[lo + i] = l + nmax;
    const w = qw ? qw[qo + i] : fr(xi * xi);
    sumlx = fr(sumlx + fr(fr(w * xi) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  let scale = suml2 !== 0 ? fr(sumlx / suml2) : 0; // C's `suml2 ?`: a NaN sum (Inf·0 weights) divides
  let best = fr(scale * sumlx);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(TENTH * is)) / max);
    sumlx = 0; suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i];
      const l = clamp(nearestInt(fr(iscale * xi)), -nmax, nmax - 1);
      const w = qw ? qw[qo + i] : fr(xi * xi);
      sumlx = fr(sumlx + fr(fr(w * xi) * l));
      suml2 = fr(suml2 + fr(fr(w * l) * l));
    }
    if (suml2 > 0 && fr(sumlx * sumlx) > fr(best * suml2)) {
      for (let i = 0; i < n; i++) L[lo + i] = nmax + clamp(nearestInt(fr(iscale * x[xo + i])), -nmax, nmax - 1);
      scale = fr(sumlx / suml2);
      best = fr(scale * sumlx);
    }
  }
  return scale;
}

/** ggml make_q3_quants with do_rmse: coordinate descent on the x³-weighted fit. */
function makeQ3Quants(n: number, nmax: number, x: Float32Array, xo: number, L: Int8Array, lo: number): number {
  const max = signedGroupMax(n, x, xo, L, lo);
  if (max === 0) return 0;
  const iscale = fr(-nmax / max);
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[xo + i];
    const l = clamp(nearestInt(fr(iscale * xi)), -nmax, nmax - 1);
    L[lo + i] = l;
    const w = fr(xi * xi);
    sumlx = fr(sumlx + fr(fr(w * xi) * l));
    suml2 = fr(suml2 + fr(fr(w * l) * l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[xo + i];
      const w = fr(xi * xi);
      const li = L[lo + i];
      let slx = fr(sumlx - fr(fr(w * xi) * li));
      if (slx > 0) {
        let sl2 = fr(suml2 - fr(fr(w * li) * li));
        const nl = clamp(nearestInt(fr(fr(xi * sl2) / slx)), -nmax, nmax - 1);
        if (nl !== li) {
          slx = fr(slx + fr(fr(w * xi) * nl));
          sl2 = fr(sl2 + fr(fr(w * nl) * nl));
          if (sl2 > 0 && fr(fr(slx * slx) * suml2) > fr(fr(sumlx * sumlx) * sl2)) {
            L[lo + i] = nl; sumlx = slx; suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (!changed) break;
  }
  for (let i = 0; i < n; i++) L[lo + i] += nmax;
  return suml2 > 0 ? fr(sumlx / suml2) : 0;
}

const XM = new Float64Array(32);

/** The min (as a positive offset) found by the last makeQkx2Quants / makeQkx3Quants call. */
let qkMin = 0;

/**
 * Asymmetric scale+min search (ggml make_qkx2_quants; `x3` selects make_qkx3_quants,
 * which guards the search against a min at or above max and ignores nothing else).
 * Returns the scale; the min is left in qkMin.
 */
function makeQkxQuants(
  n: number, nmax: number, x: Float32Array, xo: number, w: Float32Array,
  L: Uint8Array, lo: number, Laux: Uint8Array, rmin: number, rdelta: number, nstep: number, useMad: boolean, x3: boolean,
): number {
  let min = x[xo], max = x[xo];
  let sumW = w[0];
  let sumX = fr(sumW * x[xo]);
  for (let i = 1; i < n; i++) {
    const xi = x[xo + i];
    if (xi < min) min = xi;
    if (xi > max) max = xi;
    sumW = fr(sumW + w[i]);
    sumX = fr(sumX + fr(w[i] * xi));
  }
  if (min > 0) min = 0;
  if (x3 ? max <= min : max === min) {
    for (let i = 0; i < n; i++) L[lo + i] = 0;
    qkMin = -min;
    return 0;
  }
  // x − min only changes when a better min is found, so it is cached between candidates.
  for (let i = 0; i < n; i++) XM[i] = fr(x[xo + i] - min);
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestErr = 0;
  for (let i = 0; i < n; i++) {
    const l = clamp(nearestInt(fr(iscale * XM[i])), 0, nmax);
    L[lo + i] = l;
    let diff = fr(fr(fr(scale * l) + min) - x[xo + i]);
    diff = useMad ? Math.abs(diff) : fr(diff * diff);
    bestErr = fr(bestErr + fr(w[i] * diff));
  }
  if (nstep < 1) { qkMin = -min; return scale; }
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let sumL = 0, sumL2 = 0, sumXL = 0;
    for (let i = 0; i < n; i++) {
      const v = fr(iscale * XM[i]);
      let l: number;
      if (x3) l = v > 0 ? nearestInt(v < nmax ? v : nmax) : 0;
      else l = clamp(nearestInt(v), 0, nmax);
      Laux[i] = l;
      const wi = w[i];
      const wl = fr(wi * l);
      sumL = fr(sumL + wl);
      sumL2 = fr(sumL2 + fr(wl * l));
      sumXL = fr(sumXL + fr(wl * x[xo + i]));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXL / sumL2);
      }
      // Every term is ≥ 0 (weights are validated non-negative) and float addition is
      // monotone, so once the partial sum reaches bestErr this candidate cannot win:
      // stopping early skips work without changing which candidate ggml would pick.
      let err = 0;
      for (let i = 0; i < n && err < bestErr; i++) {
        let diff = fr(fr(fr(thisScale * Laux[i]) + thisMin) - x[xo + i]);
        diff = useMad ? Math.abs(diff) : fr(diff * diff);
        err = fr(err + fr(w[i] * diff));
      }
      if (err < bestErr) {
        for (let i = 0; i < n; i++) L[lo + i] = Laux[i];
        bestErr = err;
        scale = thisScale;
        min = thisMin;
        for (let i = 0; i < n; i++) XM[i] = fr(x[xo + i] - min);
      }
    }
  }
  qkMin = -min;
  return scale;
}

function makeQkx3Quants(
  n: number, nmax: number, x: Float32Array, xo: number, w: Float32Array, L: Uint8Array, lo: number,
  Laux: Uint8Array, rmin: number, rdelta: number, nstep: number,
): number {
  return makeQkxQuants(n, nmax, x, xo, w, L, lo, Laux, rmin, rdelta, nstep, false, true);
}

/** ggml make_qp_quants: unsigned code for a set of non-negative (sub-block scale) values, weighted. */
function makeQpQuants(n: number, nmax: number, x: Float32Array, L: Uint8Array, qw: Float32Array): number {
  let max = 0;
  for (let i = 0; i < n; i++) max = max > x[i] ? max : x[i];
  if (max < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) L[i] = 0;
    return 0;
  }
  let iscale = fr(nmax / max);
  for (let i = 0; i < n; i++) L[i] = nearestInt(fr(iscale * x[i]));
  const scale = fr(1 / iscale);
  let bestMse = 0;
  for (let i = 0; i < n; i++) {
    const diff = fr(x[i] - fr(scale * L[i]));
    bestMse = fr(bestMse + fr(fr(qw[i] * diff) * diff));
  }
  for (let is = -4; is <= 4; is++) {
    if (is === 0) continue;
    const iscaleIs = fr(fr(fr(TENTH * is) + nmax) / max);
    const scaleIs = fr(1 / iscaleIs);
    let mse = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.min(nmax, nearestInt(fr(iscaleIs * x[i])));
      const diff = fr(x[i] - fr(scaleIs * l));
      mse = fr(mse + fr(fr(qw[i] * diff) * diff));
    }
    if (mse < bestMse) { bestMse = mse; iscale = iscaleIs; }
  }
  let sumlx = 0, suml2 = 0;
  for (let i = 0; i < n; i++) {
    const l = Math.min(nmax, nearestInt(fr(iscale * x[i])));
    L[i] = l;
    const w = qw[i];
    sumlx = fr(sumlx + fr(fr(w * x[i]) * L[i]));
    suml2 = fr(suml2 + fr(fr(w * L[i]) * L[i]));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const w = qw[i];
      const li = L[i];
      let slx = fr(sumlx - fr(fr(w * x[i]) * li));
      let sl2 = fr(suml2 - fr(fr(w * li) * li));
      if (slx > 0 && sl2 > 0) {
        const nl = Math.min(nmax, nearestInt(fr(fr(x[i] * sl2) / slx)));
        if (nl !== li) {
          slx = fr(slx + fr(fr(w * x[i]) * nl));
          sl2 = fr(sl2 + fr(fr(w * nl) * nl));
          if (fr(fr(slx * slx) * suml2) > fr(fr(sumlx * sumlx) * sl2)) {
            L[i] = nl; sumlx = slx; suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0 ? fr(sumlx / suml2) : 0;
}

// ---------------------------------------------------------------------------
// Super-blocks of 256

const LU = new Uint8Array(QK_K);
const LI = new Int8Array(QK_K);
const LAUX = new Uint8Array(32);
const WK = new Float32Array(32);
const SCALES = new Float32Array(16);
const MINS = new Float32Array(16);
const SW = new Float32Array(16);
const LS = new Uint8Array(16);
const LM = new Uint8Array(16);
const LS8 = new Int8Array(16);

/** Four 2-bit codes per byte: byte l of each 32-byte run holds elements l, l+32, l+64, l+96 of a 128 run. */
function pack2bit(y: Uint8Array, o: number, L: ArrayLike<number>): void {
  for (let j = 0; j < QK_K; j += 128) {
    for (let l = 0; l < 32; l++) {
      y[o + j / 4 + l] = L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6);
    }
  }
}

// block_q2_K { uint8 scales[16]; uint8 qs[64]; half d; half dmin; }: 4-bit scale | 4-bit min per 16.
function q2_k(x: Float32Array, xo: number, y: Uint8Array, yo: number, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const b = xo + i * QK_K, o = yo + i * 84;
    let maxScale = 0, maxMin = 0;
    for (let j = 0; j < 16; j++) {
      for (let l = 0; l < 16; l++) WK[l] = Math.abs(x[b + 16 * j + l]);
      SCALES[j] = makeQkxQuants(16, 3, x, b + 16 * j, WK, LU, 16 * j, LAUX, fr(-0.5), TENTH, 15, true, false);
      MINS[j] = qkMin;
      if (SCALES[j] > maxScale) maxScale = SCALES[j];
      if (MINS[j] > maxMin) maxMin = MINS[j];
    }
    let dh: number, mh: number;
    if (maxScale > 0) {
      const iscale = fr(15 / maxScale);
      for (let j = 0; j < 16; j++) y[o + j] = nearestInt(fr(iscale * SCALES[j])) & 0xff;
      dh = putF16(y, o + 80, fr(maxScale / 15));
    } else {
      for (let j = 0; j < 16; j++) y[o + j] = 0;
      dh = putF16(y, o + 80, 0);
    }
    if (maxMin > 0) {
      const iscale = fr(15 / maxMin);
      for (let j = 0; j < 16; j++) y[o + j] = (y[o + j] | (nearestInt(fr(iscale * MINS[j])) << 4)) & 0xff;
      mh = putF16(y, o + 82, fr(maxMin / 15));
    } else {
      mh = putF16(y, o + 82, 0);
    }
    requantQ2(x, b, y, o, F16[dh], F16[mh]);
    pack2bit(y, o + 16, LU);
  }
}

function requantQ2(x: Float32Array, b: number, y: Uint8Array, o: number, dAll: number, mAll: number): void {
  for (let j = 0; j < 16; j++) {
    const d = fr(dAll * (y[o + j] & 0xf));
    // ggml's `if (!d)` is `d == 0` in C; a NaN d (Inf scale times code 0) is not skipped there, so not here either.
    if (d === 0) continue;
    const dm = fr(mAll * (y[o + j] >> 4));
    for (let ii = 0; ii < 16; ii++) LU[16 * j + ii] = clamp(nearestInt(fr(fr(x[b + 16 * j + ii] + dm) / d)), 0, 3);
  }
}

function q2_kw(x: Float32Array, xo: number, y: Uint8Array, yo: number, nb: number, qw: Float32Array): void {
  for (let i = 0; i < nb; i++) {
    const b = xo + i * QK_K, o = yo + i * 84;
    let sumx2 = 0;
    for (let j = 0; j < QK_K; j++) sumx2 = fr(sumx2 + fr(x[b + j] * x[b + j]));
    const sigma2 = fr(sumx2 / QK_K);
    for (let j = 0; j < 16; j++) {
      importanceWeights(x, b + 16 * j, qw, QK_K * i + 16 * j, 16, sigma2, WK);
      let s = 0;
      for (let l = 0; l < 16; l++) s = fr(s + WK[l]);
      SW[j] = s;
      SCALES[j] = makeQkx3Quants(16, 3, x, b + 16 * j, WK, LU, 16 * j, LAUX, fr(-0.9), fr(0.05), 36);
      MINS[j] = qkMin;
    }
    const dm = makeQpQuants(16, 15, SCALES, LS, SW);
    const mm = makeQpQuants(16, 15, MINS, LM, SW);
    const dh = putF16(y, o + 80, dm);
    const mh = putF16(y, o + 82, mm);
    for (let j = 0; j < 16; j++) y[o + j] = (LS[j] | (LM[j] << 4)) & 0xff;
    requantQ2(x, b, y, o, F16[dh], F16[mh]);
    pack2bit(y, o + 16, LU);
  }
}

/** Q3_K scales: 16 six-bit values, low nibbles in bytes 0..7, top two bits in bytes 8..11. */
function packQ3Scale(y: Uint8Array, so: number, j: number, l: number): void {
  if (j < 8) y[so + j] = l & 0xf;
  else y[so + j - 8] |= (l & 0xf) << 4;
  y[so + 8 + (j % 4)] |= (l >> 4) << (2 * (j >> 2));
}

function q3Scale(y: Uint8Array, so: number, j: number): number {
  const lo = j < 8 ? y[so + j] & 0xf : y[so + j - 8] >> 4;
  return (lo | (((y[so + 8 + (j % 4)] >> (2 * (j >> 2))) & 3) << 4)) - 32;
}

// block_q3_K { uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; half d; }
function q3_k(x: Float32Array, xo: number, y: Uint8Array, yo: number, nb: number, qw: Float32Array | undefined): void {
  for (let i = 0; i < nb; i++) {
    const b = xo + i * QK_K, o = yo + i * 110, so = o + 96;
    for (let k = 0; k < 12; k++) y[so + k] = 0;
    let dh: number;
    if (!qw) {
      let maxScale = 0, amax = 0;
      for (let j = 0; j < 16; j++) {
        SCALES[j] = makeQ3Quants(16, 4, x, b + 16 * j, LI, 16 * j);
        const s = Math.abs(SCALES[j]);
        if (s > amax) { amax = s; maxScale = SCALES[j]; }
      }
      if (maxScale) {
        const iscale = fr(-32 / maxScale);
        for (let j = 0; j < 16; j++) {
          const l8 = (nearestInt(fr(iscale * SCALES[j])) << 24) >> 24; // ggml stores it in an int8 first
          packQ3Scale(y, so, j, clamp(l8, -32, 31) + 32);
        }
        dh = putF16(y, o + 108, fr(1 / iscale));
      } else {
        dh = putF16(y, o + 108, 0);
      }
    } else {
      let sumx2 = 0;
      for (let j = 0; j < QK_K; j++) sumx2 = fr(sumx2 + fr(x[b + j] * x[b + j]));
      const sigma2 = fr(fr(2 * sumx2) / QK_K);
      for (let j = 0; j < 16; j++) {
        importanceWeights(x, b + 16 * j, qw, QK_K * i + 16 * j, 16, sigma2, WK);
        let s = 0;
        for (let l = 0; l < 16; l++) s = fr(s + WK[l]);
        SW[j] = s;
        SCALES[j] = makeQxQuants(16, 4, x, b + 16 * j, LI, 16 * j, WK, 0);
      }
      const dBlock = makeQxQuants(16, 32, SCALES, 0, LS8, 0, SW, 0);
      for (let j = 0; j < 16; j++) packQ3Scale(y, so, j, LS8[j]);
      dh = putF16(y, o + 108, dBlock);
    }
    const dAll = F16[dh];
    for (let j = 0; j < 16; j++) {
      const d = fr(dAll * q3Scale(y, so, j));
      if (d === 0) continue; // C's `!d`: NaN is not skipped
      for (let ii = 0; ii < 16; ii++) LI[16 * j + ii] = clamp(nearestInt(fr(x[b + 16 * j + ii] / d)), -4, 3) + 4;
    }
    for (let k = 0; k < 32; k++) y[o + k] = 0;
    // High bits: element j goes to byte j % 32, bit j / 32.
    for (let j = 0; j < QK_K; j++) {
      if (LI[j] > 3) {
        y[o + (j & 31)] |= 1 << (j >> 5);
        LI[j] -= 4;
      }
    }
    pack2bit(y, o + 32, LI);
  }
}

// block_q4_K { half d; half dmin; uint8 scales[12]; uint8 qs[128]; }
// block_q5_K { half d; half dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]; }
// Eight sub-blocks of 32 with a 6-bit scale and 6-bit min each.
function q45_k(x: Float32Array, xo: number, y: Uint8Array, yo: number, nb: number, qw: Float32Array | undefined, nmax: number): void {
  const size = nmax === 15 ? 144 : 176;
  for (let i = 0; i < nb; i++) {
    const b = xo + i * QK_K, o = yo + i * size, so = o + 4;
    for (let k = 0; k < 12; k++) y[so + k] = 0;
    if (!qw) {
      let maxScale = 0, maxMin = 0;
      for (let j = 0; j < 8; j++) {
        let sumx2 = 0;
        for (let l = 0; l < 32; l++) sumx2 = fr(sumx2 + fr(x[b + 32 * j + l] * x[b + 32 * j + l]));
        const avx = fr(Math.sqrt(fr(sumx2 / 32)));
        for (let l = 0; l < 32; l++) WK[l] = fr(avx + Math.abs(x[b + 32 * j + l]));
        SCALES[j] = nmax === 15
          ? makeQkxQuants(32, 15, x, b + 32 * j, WK, LU, 32 * j, LAUX, -1, TENTH, 20, false, false)
          : makeQkxQuants(32, 31, x, b + 32 * j, WK, LU, 32 * j, LAUX, fr(-0.5), TENTH, 15, false, false);
        MINS[j] = qkMin;
        if (SCALES[j] > maxScale) maxScale = SCALES[j];
        if (MINS[j] > maxMin) maxMin = MINS[j];
      }
      const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
      const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
      for (let j = 0; j < 8; j++) {
        LS[j] = Math.min(63, nearestInt(fr(invScale * SCALES[j])) & 0xff);
        LM[j] = Math.min(63, nearestInt(fr(invMin * MINS[j])) & 0xff);
      }
      putF16(y, o, fr(maxScale / 63));
      putF16(y, o + 2, fr(maxMin / 63));
    } else {
      let sumx2 = 0;
      for (let l = 0; l < QK_K; l++) sumx2 = fr(sumx2 + fr(x[b + l] * x[b + l]));
      const sigma2 = fr(fr(2 * sumx2) / QK_K);
      for (let j = 0; j < 8; j++) {
        importanceWeights(x, b + 32 * j, qw, QK_K * i + 32 * j, 32, sigma2, WK);
        let s = 0;
        for (let l = 0; l < 32; l++) s = fr(s + WK[l]);
        SW[j] = s;
        SCALES[j] = makeQkx3Quants(32, nmax, x, b + 32 * j, WK, LU, 32 * j, LAUX, fr(-0.9), fr(0.05), 36);
        MINS[j] = qkMin;
      }
      const dBlock = makeQpQuants(8, 63, SCALES, LS, SW);
      const mBlock = makeQpQuants(8, 63, MINS, LM, SW);
      for (let j = 0; j < 8; j++) { LS[j] = Math.min(63, LS[j]); LM[j] = Math.min(63, LM[j]); }
      putF16(y, o, dBlock);
      putF16(y, o + 2, mBlock);
    }
    for (let j = 0; j < 8; j++) {
      const ls = LS[j], lm = LM[j];
      if (j < 4) {
        y[so + j] = ls;
        y[so + j + 4] = lm;
      } else {
        y[so + j + 4] = (ls & 0xf) | ((lm & 0xf) << 4);
        y[so + j - 4] |= (ls >> 4) << 6;
        y[so + j] |= (lm >> 4) << 6;
      }
    }
    const dAll = F16[y[o] | (y[o + 1] << 8)];
    const mAll = F16[y[o + 2] | (y[o + 3] << 8)];
    for (let j = 0; j < 8; j++) {
      let sc: number, m: number;
      if (j < 4) { sc = y[so + j] & 63; m = y[so + j + 4] & 63; }
      else {
        sc = (y[so + j + 4] & 0xf) | ((y[so + j - 4] >> 6) << 4);
        m = (y[so + j + 4] >> 4) | ((y[so + j] >> 6) << 4);
      }
      const d = fr(dAll * sc);
      if (d === 0) continue; // C's `!d`: NaN is not skipped
      const dm = fr(mAll * m);
      for (let ii = 0; ii < 32; ii++) LU[32 * j + ii] = clamp(nearestInt(fr(fr(x[b + 32 * j + ii] + dm) / d)), 0, nmax);
    }
    if (nmax === 15) {
      const q = o + 16;
      for (let j = 0; j < QK_K; j += 64) {
        for (let l = 0; l < 32; l++) y[q + j / 2 + l] = LU[j + l] | (LU[j + l + 32] << 4);
      }
    } else {
      const qh = o + 16, ql = o + 48;
      for (let k = 0; k < 32; k++) y[qh + k] = 0;
      let m1 = 1, m2 = 2;
      for (let n = 0; n < QK_K; n += 64) {
        for (let j = 0; j < 32; j++) {
          let l1 = LU[n + j];
          if (l1 > 15) { l1 -= 16; y[qh + j] |= m1; }
          let l2 = LU[n + j + 32];
          if (l2 > 15) { l2 -= 16; y[qh + j] |= m2; }
          y[ql + n / 2 + j] = l1 | (l2 << 4);
        }
        m1 <<= 2; m2 <<= 2;
      }
    }
  }
}

// block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d; }
function q6_k(x: Float32Array, xo: number, y: Uint8Array, yo: number, nb: number, qw: Float32Array | undefined): void {
  for (let i = 0; i < nb; i++) {
    const b = xo + i * QK_K, o = yo + i * 210;
    let maxScale = 0, maxAbs = 0;
    for (let ib = 0; ib < 16; ib++) {
      const s = makeQxQuants(16, 32, x, b + 16 * ib, LI, 16 * ib, qw, QK_K * i + 16 * ib);
      SCALES[ib] = s;
      if (Math.abs(s) > maxAbs) { maxAbs = Math.abs(s); maxScale = s; }
    }
    if (maxAbs < GROUP_MAX_EPS) {
      y.fill(0, o, o + 210);
      continue;
    }
    const iscale = fr(-128 / maxScale);
    const dh = putF16(y, o + 208, fr(1 / iscale));
    for (let ib = 0; ib < 16; ib++) LS8[ib] = Math.min(127, nearestInt(fr(iscale * SCALES[ib])));
    for (let ib = 0; ib < 16; ib++) y[o + 192 + ib] = LS8[ib] & 0xff;
    const dAll = F16[dh];
    for (let j = 0; j < 16; j++) {
      const d = fr(dAll * LS8[j]);
      if (d === 0) continue; // C's `!d`: NaN is not skipped
      for (let ii = 0; ii < 16; ii++) LI[16 * j + ii] = clamp(nearestInt(fr(x[b + 16 * j + ii] / d)), -32, 31) + 32;
    }
    for (let j = 0; j < QK_K; j += 128) {
      const ql = o + j / 2, qh = o + 128 + j / 4;
      for (let l = 0; l < 32; l++) {
        const a = LI[j + l], c = LI[j + l + 32], e = LI[j + l + 64], g = LI[j + l + 96];
        y[ql + l] = (a & 0xf) | ((e & 0xf) << 4);
        y[ql + l + 32] = (c & 0xf) | ((g & 0xf) << 4);
        y[qh + l] = (a >> 4) | ((c >> 4) << 2) | ((e >> 4) << 4) | ((g >> 4) << 6);
      }
    }
  }
}

// block_q8_K { float d; int8 qs[256]; int16 bsums[16]; }: the activation-side format of the k-quant dot products.
function q8_k(x: Float32Array, xo: number, y: Uint8Array, yo: number, nb: number): void {
  const dv = new DataView(y.buffer, y.byteOffset, y.byteLength);
  for (let i = 0; i < nb; i++) {
    const b = xo + i * QK_K, o = yo + i * 292;
    let max = 0, amax = 0;
    for (let j = 0; j < QK_K; j++) {
      const ax = Math.abs(x[b + j]);
      if (ax > amax) { amax = ax; max = x[b + j]; }
    }
    if (!amax) {
      y.fill(0, o, o + 292);
      continue;
    }
    const iscale = fr(-127 / max);
    for (let j = 0; j < QK_K; j++) LI[j] = Math.min(127, nearestInt(fr(iscale * x[b + j])));
    for (let j = 0; j < QK_K; j++) y[o + 4 + j] = LI[j] & 0xff;
    for (let j = 0; j < 16; j++) {
      let s = 0;
      for (let ii = 0; ii < 16; ii++) s += LI[16 * j + ii];
      dv.setInt16(o + 260 + 2 * j, s, true);
    }
    dv.setFloat32(o, fr(1 / iscale), true);
  }
}

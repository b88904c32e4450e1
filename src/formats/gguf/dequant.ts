/**
 * Reference dequantizers for ggml block types, equal bit for bit to ggml's
 * `dequantize_row_*` in ggml-quants.c. ggml computes in float32, so every
 * float operation here is rounded with Math.fround in the same order as the C
 * expression (products of a small integer and an fp16-derived scale are exact
 * in float32; the sums and scale products are where rounding happens). This
 * matches a build without fused multiply-add contraction, as ggml's generic
 * reference path is compiled on x86-64.
 */
import { FormatError } from '../types';
import { f16Lookup, bf16ToF32 } from '../dtypes';
import { GgmlTypeInfo, GgmlTypeName, QK_K, ggmlTypeById, ggmlTypeByName } from './ggmlTypes';

const fr = Math.fround;

export const DEQUANTIZABLE: ReadonlySet<GgmlTypeName> = new Set<GgmlTypeName>([
  'F32', 'F16', 'BF16', 'F64', 'I8', 'I16', 'I32', 'I64',
  'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_K',
]);

export function resolveGgmlType(type: GgmlTypeName | number | string): GgmlTypeInfo {
  const info = typeof type === 'number' ? ggmlTypeById(type) : ggmlTypeByName(type);
  if (!info) throw new FormatError('ggml', 'tensor type', `unknown GGUF type ${String(type)}`);
  return info;
}

export function canDequantizeGgml(type: GgmlTypeName | number | string): boolean {
  const info = typeof type === 'number' ? ggmlTypeById(type) : ggmlTypeByName(type);
  return !!info && DEQUANTIZABLE.has(info.name);
}

/**
 * Dequantize `nElements` values (a whole number of blocks) from `src` into `dst`.
 * Throws FormatError "unsupported GGUF type X" for types without a dequantizer.
 */
export function dequantizeGgml(type: GgmlTypeName | number, src: Uint8Array, dst: Float32Array, nElements: number): void {
  const info = resolveGgmlType(type);
  if (!DEQUANTIZABLE.has(info.name)) throw new FormatError('ggml', `type ${info.name}`, `unsupported GGUF type ${info.name}`);
  if (nElements % info.blockSize !== 0) {
    throw new RangeError(`dequantizeGgml: ${nElements} elements is not a whole number of ${info.name} blocks (${info.blockSize})`);
  }
  const nb = nElements / info.blockSize;
  if (src.byteLength < nb * info.typeSize) throw new RangeError(`dequantizeGgml: ${info.name} needs ${nb * info.typeSize} bytes, got ${src.byteLength}`);
  if (dst.length < nElements) throw new RangeError(`dequantizeGgml: destination holds ${dst.length} < ${nElements}`);
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const h = f16Lookup();
  switch (info.name) {
    case 'F32': for (let i = 0; i < nElements; i++) dst[i] = dv.getFloat32(i * 4, true); return;
    case 'F64': for (let i = 0; i < nElements; i++) dst[i] = dv.getFloat64(i * 8, true); return;
    case 'F16': for (let i = 0; i < nElements; i++) dst[i] = h[dv.getUint16(i * 2, true)]; return;
    case 'BF16': for (let i = 0; i < nElements; i++) dst[i] = bf16ToF32(dv.getUint16(i * 2, true)); return;
    case 'I8': for (let i = 0; i < nElements; i++) dst[i] = dv.getInt8(i); return;
    case 'I16': for (let i = 0; i < nElements; i++) dst[i] = dv.getInt16(i * 2, true); return;
    case 'I32': for (let i = 0; i < nElements; i++) dst[i] = dv.getInt32(i * 4, true); return;
    case 'I64': for (let i = 0; i < nElements; i++) dst[i] = Number(dv.getBigInt64(i * 8, true)); return;
    case 'Q4_0': return q4_0(src, dv, h, dst, nb);
    case 'Q4_1': return q4_1(src, dv, h, dst, nb);
    case 'Q5_0': return q5_0(src, dv, h, dst, nb);
    case 'Q5_1': return q5_1(src, dv, h, dst, nb);
    case 'Q8_0': return q8_0(src, dv, h, dst, nb);
    case 'Q2_K': return q2_k(src, dv, h, dst, nb);
    case 'Q3_K': return q3_k(src, dv, h, dst, nb);
    case 'Q4_K': return q4_k(src, dv, h, dst, nb);
    case 'Q5_K': return q5_k(src, dv, h, dst, nb);
    case 'Q6_K': return q6_k(src, dv, h, dst, nb);
    case 'Q8_K': return q8_k(src, dv, dst, nb);
    default: throw new FormatError('ggml', `type ${info.name}`, `unsupported GGUF type ${info.name}`);
  }
}

// block_q4_0 { half d; uint8 qs[16]; }: low nibbles are elements 0..15, high nibbles 16..31.
function q4_0(s: Uint8Array, dv: DataView, h: Float32Array, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const b = i * 18, o = i * 32;
    const d = h[dv.getUint16(b, true)];
    for (let j = 0; j < 16; j++) {
      const q = s[b + 2 + j];
      y[o + j] = fr(((q & 0xf) - 8) * d);
      y[o + j + 16] = fr(((q >> 4) - 8) * d);
    }
  }
}

// block_q4_1 { half d; half m; uint8 qs[16]; }: y = q*d + m.
function q4_1(s: Uint8Array, dv: DataView, h: Float32Array, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const b = i * 20, o = i * 32;
    const d = h[dv.getUint16(b, true)], m = h[dv.getUint16(b + 2, true)];
    for (let j = 0; j < 16; j++) {
      const q = s[b + 4 + j];
      y[o + j] = fr(fr((q & 0xf) * d) + m);
      y[o + j + 16] = fr(fr((q >> 4) * d) + m);
    }
  }
}

// block_q5_0 { half d; uint8 qh[4]; uint8 qs[16]; }: qh bit j is the 5th bit of element j.
function q5_0(s: Uint8Array, dv: DataView, h: Float32Array, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const b = i * 22, o = i * 32;
    const d = h[dv.getUint16(b, true)];
    const qh = dv.getUint32(b + 2, true);
    for (let j = 0; j < 16; j++) {
      const q = s[b + 6 + j];
      const x0 = ((q & 0xf) | (((qh >>> j) << 4) & 0x10)) - 16;
      const x1 = ((q >> 4) | ((qh >>> (j + 12)) & 0x10)) - 16;
      y[o + j] = fr(x0 * d);
      y[o + j + 16] = fr(x1 * d);
    }
  }
}

// block_q5_1 { half d; half m; uint8 qh[4]; uint8 qs[16]; }
function q5_1(s: Uint8Array, dv: DataView, h: Float32Array, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const b = i * 24, o = i * 32;
    const d = h[dv.getUint16(b, true)], m = h[dv.getUint16(b + 2, true)];
    const qh = dv.getUint32(b + 4, true);
    for (let j = 0; j < 16; j++) {
      const q = s[b + 8 + j];
      const x0 = (q & 0xf) | (((qh >>> j) << 4) & 0x10);
      const x1 = (q >> 4) | ((qh >>> (j + 12)) & 0x10);
      y[o + j] = fr(fr(x0 * d) + m);
      y[o + j + 16] = fr(fr(x1 * d) + m);
    }
  }
}

// block_q8_0 { half d; int8 qs[32]; }
function q8_0(s: Uint8Array, dv: DataView, h: Float32Array, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const b = i * 34, o = i * 32;
    const d = h[dv.getUint16(b, true)];
    for (let j = 0; j < 32; j++) y[o + j] = fr(((s[b + 2 + j] << 24) >> 24) * d);
  }
}

// block_q2_K { uint8 scales[16]; uint8 qs[64]; half d; half dmin; }
// Each scales byte: low nibble scales a 16-element group, high nibble its min.
function q2_k(s: Uint8Array, dv: DataView, h: Float32Array, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const b = i * 84;
    let o = i * QK_K;
    const d = h[dv.getUint16(b + 80, true)], min = h[dv.getUint16(b + 82, true)];
    let is = 0;
    for (let n = 0; n < QK_K; n += 128) {
      const q = b + 16 + n / 4;
      for (let shift = 0; shift < 8; shift += 2) {
        for (let half = 0; half < 2; half++) {
          const sc = s[b + is++];
          const dl = fr(d * (sc & 0xf)), ml = fr(min * (sc >> 4));
          for (let l = 0; l < 16; l++) y[o++] = fr(fr(dl * ((s[q + half * 16 + l] >> shift) & 3)) - ml);
        }
      }
    }
  }
}

// block_q3_K { uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; half d; }
// 16 six-bit signed scales (offset 32) are packed into 12 bytes: low 4 bits
// from bytes 0..7 (nibbles), high 2 bits from bytes 8..11.
function q3_k(s: Uint8Array, dv: DataView, h: Float32Array, y: Float32Array, nb: number): void {
  const scales = new Int8Array(16);
  for (let i = 0; i < nb; i++) {
    const b = i * 110;
    let o = i * QK_K;
    const dAll = h[dv.getUint16(b + 108, true)];
    const sb = b + 96;
    for (let k = 0; k < 16; k++) {
      const low = k < 8 ? s[sb + k] & 0xf : s[sb + k - 8] >> 4;
      const high = (s[sb + 8 + (k & 3)] >> (2 * (k >> 2))) & 3;
      scales[k] = (low | (high << 4)) - 32;
    }
    let is = 0;
    let m = 1;
    for (let n = 0; n < QK_K; n += 128) {
      const q = b + 32 + n / 4;
      for (let shift = 0; shift < 8; shift += 2) {
        for (let half = 0; half < 2; half++) {
          const dl = fr(dAll * scales[is++]);
          for (let l = 0; l < 16; l++) {
            const idx = half * 16 + l;
            const v = ((s[q + idx] >> shift) & 3) - (s[b + idx] & m ? 0 : 4);
            y[o++] = fr(dl * v);
          }
        }
        m <<= 1;
      }
    }
  }
}

/** Unpack the eight 6-bit scales and mins of Q4_K/Q5_K (12 bytes at `q`) into sc[0..7], mn[0..7]. */
function scaleMinK4(s: Uint8Array, q: number, sc: Uint8Array, mn: Uint8Array): void {
  for (let j = 0; j < 4; j++) {
    sc[j] = s[q + j] & 63;
    mn[j] = s[q + j + 4] & 63;
    sc[j + 4] = (s[q + j + 8] & 0xf) | ((s[q + j] >> 6) << 4);
    mn[j + 4] = (s[q + j + 8] >> 4) | ((s[q + j + 4] >> 6) << 4);
  }
}

// block_q4_K { half d; half dmin; uint8 scales[12]; uint8 qs[128]; }
function q4_k(s: Uint8Array, dv: DataView, h: Float32Array, y: Float32Array, nb: number): void {
  const sc = new Uint8Array(8), mn = new Uint8Array(8);
  for (let i = 0; i < nb; i++) {
    const b = i * 144;
    let o = i * QK_K;
    const d = h[dv.getUint16(b, true)], min = h[dv.getUint16(b + 2, true)];
    scaleMinK4(s, b + 4, sc, mn);
    let q = b + 16;
    for (let is = 0; is < 8; is += 2) {
      const d1 = fr(d * sc[is]), m1 = fr(min * mn[is]), d2 = fr(d * sc[is + 1]), m2 = fr(min * mn[is + 1]);
      for (let l = 0; l < 32; l++) y[o++] = fr(fr(d1 * (s[q + l] & 0xf)) - m1);
      for (let l = 0; l < 32; l++) y[o++] = fr(fr(d2 * (s[q + l] >> 4)) - m2);
      q += 32;
    }
  }
}

// block_q5_K { half d; half dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]; }
function q5_k(s: Uint8Array, dv: DataView, h: Float32Array, y: Float32Array, nb: number): void {
  const sc = new Uint8Array(8), mn = new Uint8Array(8);
  for (let i = 0; i < nb; i++) {
    const b = i * 176;
    let o = i * QK_K;
    const d = h[dv.getUint16(b, true)], min = h[dv.getUint16(b + 2, true)];
    scaleMinK4(s, b + 4, sc, mn);
    const qh = b + 16;
    let ql = b + 48;
    let u1 = 1, u2 = 2;
    for (let is = 0; is < 8; is += 2) {
      const d1 = fr(d * sc[is]), m1 = fr(min * mn[is]), d2 = fr(d * sc[is + 1]), m2 = fr(min * mn[is + 1]);
      for (let l = 0; l < 32; l++) y[o++] = fr(fr(d1 * ((s[ql + l] & 0xf) + (s[qh + l] & u1 ? 16 : 0))) - m1);
      for (let l = 0; l < 32; l++) y[o++] = fr(fr(d2 * ((s[ql + l] >> 4) + (s[qh + l] & u2 ? 16 : 0))) - m2);
      ql += 32;
      u1 <<= 2;
      u2 <<= 2;
    }
  }
}

// block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d; }: y = d * scale * q.
function q6_k(s: Uint8Array, dv: DataView, h: Float32Array, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const b = i * 210;
    const d = h[dv.getUint16(b + 208, true)];
    for (let n = 0; n < 2; n++) {
      const ql = b + n * 64, qh = b + 128 + n * 32, sc = b + 192 + n * 8, o = i * QK_K + n * 128;
      for (let l = 0; l < 32; l++) {
        const is = l >> 4;
        const hb = s[qh + l];
        const q1 = ((s[ql + l] & 0xf) | ((hb & 3) << 4)) - 32;
        const q2 = ((s[ql + l + 32] & 0xf) | (((hb >> 2) & 3) << 4)) - 32;
        const q3 = ((s[ql + l] >> 4) | (((hb >> 4) & 3) << 4)) - 32;
        const q4 = ((s[ql + l + 32] >> 4) | (((hb >> 6) & 3) << 4)) - 32;
        y[o + l] = fr(fr(d * ((s[sc + is] << 24) >> 24)) * q1);
        y[o + l + 32] = fr(fr(d * ((s[sc + is + 2] << 24) >> 24)) * q2);
        y[o + l + 64] = fr(fr(d * ((s[sc + is + 4] << 24) >> 24)) * q3);
        y[o + l + 96] = fr(fr(d * ((s[sc + is + 6] << 24) >> 24)) * q4);
      }
    }
  }
}

// block_q8_K { float d; int8 qs[256]; int16 bsums[16]; }: bsums are for dot products only.
function q8_k(s: Uint8Array, dv: DataView, y: Float32Array, nb: number): void {
  for (let i = 0; i < nb; i++) {
    const b = i * 292, o = i * QK_K;
    const d = dv.getFloat32(b, true);
    for (let j = 0; j < QK_K; j++) y[o + j] = fr(((s[b + 4 + j] << 24) >> 24) * d);
  }
}

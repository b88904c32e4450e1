/**
 * Element types shared by every format: sizes, per-format names, and exact
 * decoders to float32. Decoders are table- or bit-based so that every code
 * maps to the one float the format's spec defines (no arithmetic rounding).
 */
import { DType, ScalarDType } from './types';

export interface ScalarDTypeInfo {
  /** Bits per element (4 for i4/u4, which pack two per byte). 0 for variable-size (string). */
  bits: number;
  /** Whether readFloat32 can decode this type. */
  numeric: boolean;
}

export const SCALAR_DTYPES: Record<ScalarDType, ScalarDTypeInfo> = {
  f64: { bits: 64, numeric: true },
  f32: { bits: 32, numeric: true },
  f16: { bits: 16, numeric: true },
  bf16: { bits: 16, numeric: true },
  f8_e4m3fn: { bits: 8, numeric: true },
  f8_e4m3fnuz: { bits: 8, numeric: true },
  f8_e5m2: { bits: 8, numeric: true },
  f8_e5m2fnuz: { bits: 8, numeric: true },
  i64: { bits: 64, numeric: true },
  i32: { bits: 32, numeric: true },
  i16: { bits: 16, numeric: true },
  i8: { bits: 8, numeric: true },
  u64: { bits: 64, numeric: true },
  u32: { bits: 32, numeric: true },
  u16: { bits: 16, numeric: true },
  u8: { bits: 8, numeric: true },
  i4: { bits: 4, numeric: true },
  u4: { bits: 4, numeric: true },
  bool: { bits: 8, numeric: true },
  string: { bits: 0, numeric: false },
  c64: { bits: 64, numeric: false },
  c128: { bits: 128, numeric: false },
};

export function isScalarDType(d: DType): d is ScalarDType {
  return Object.prototype.hasOwnProperty.call(SCALAR_DTYPES, d);
}

/** Bytes needed for `numel` elements of a scalar dtype; sub-byte types round up to whole bytes. */
export function scalarByteLength(d: ScalarDType, numel: number): number {
  const bits = SCALAR_DTYPES[d].bits;
  return bits === 4 ? Math.ceil(numel / 2) : (numel * bits) / 8;
}

/** safetensors dtype names (spec) → ours. */
export const SAFETENSORS_DTYPES: Record<string, ScalarDType> = {
  F64: 'f64', F32: 'f32', F16: 'f16', BF16: 'bf16',
  I64: 'i64', I32: 'i32', I16: 'i16', I8: 'i8',
  U64: 'u64', U32: 'u32', U16: 'u16', U8: 'u8',
  BOOL: 'bool', F8_E4M3: 'f8_e4m3fn', F8_E5M2: 'f8_e5m2',
};

/** ONNX TensorProto.DataType codes → ours (codes without a mapping are reported as unsupported). */
export const ONNX_DTYPES: Record<number, ScalarDType> = {
  1: 'f32', 2: 'u8', 3: 'i8', 4: 'u16', 5: 'i16', 6: 'i32', 7: 'i64', 8: 'string', 9: 'bool',
  10: 'f16', 11: 'f64', 12: 'u32', 13: 'u64', 14: 'c64', 15: 'c128', 16: 'bf16',
  17: 'f8_e4m3fn', 18: 'f8_e4m3fnuz', 19: 'f8_e5m2', 20: 'f8_e5m2fnuz', 21: 'u4', 22: 'i4',
};
export const ONNX_DTYPE_NAMES: Record<number, string> = {
  0: 'UNDEFINED', 1: 'FLOAT', 2: 'UINT8', 3: 'INT8', 4: 'UINT16', 5: 'INT16', 6: 'INT32', 7: 'INT64',
  8: 'STRING', 9: 'BOOL', 10: 'FLOAT16', 11: 'DOUBLE', 12: 'UINT32', 13: 'UINT64', 14: 'COMPLEX64',
  15: 'COMPLEX128', 16: 'BFLOAT16', 17: 'FLOAT8E4M3FN', 18: 'FLOAT8E4M3FNUZ', 19: 'FLOAT8E5M2',
  20: 'FLOAT8E5M2FNUZ', 21: 'UINT4', 22: 'INT4', 23: 'FLOAT4E2M1', 24: 'FLOAT8E8M0', 25: 'UINT2', 26: 'INT2',
};

// ---------------------------------------------------------------------------
// Scalar conversions

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Float value of one IEEE binary16 code (exact). */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const man = h & 0x3ff;
  if (exp === 0) return sign * man * 2 ** -24;
  if (exp === 31) return man ? NaN : sign * Infinity;
  return sign * (1024 + man) * 2 ** (exp - 25);
}

/** Float value of one bfloat16 code: the top half of a float32. */
export function bf16ToF32(h: number): number {
  u32Scratch[0] = (h & 0xffff) << 16;
  return f32Scratch[0];
}

/** float32 → binary16 code, rounding to nearest even; overflow gives ±Inf, NaN stays NaN. */
export function f32ToF16(x: number): number {
  u32Scratch[0] = 0;
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let man = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the full significand down and round once.
    if (e < -10) return sign;
    man |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = man & ((1 << shift) - 1);
    let q = man >>> shift;
    if (rest > half || (rest === half && (q & 1))) q++;
    return sign | q;
  }
  const rest = man & 0x1fff;
  let q = (e << 10) | (man >>> 13);
  if (rest > 0x1000 || (rest === 0x1000 && (q & 1))) q++; // carry into the exponent is correct, up to Inf
  return sign | q;
}

/** float32 → bfloat16 code, rounding to nearest even; NaN stays a quiet NaN. */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  const lsb = (bits >>> 16) & 1;
  return ((bits + 0x7fff + lsb) >>> 16) & 0xffff;
}

type F8Kind = 'ieee' | 'fn' | 'fnuz';
function f8Table(ebits: number, mbits: number, bias: number, kind: F8Kind): Float32Array {
  const t = new Float32Array(256);
  const emax = (1 << ebits) - 1;
  const mmax = (1 << mbits) - 1;
  for (let c = 0; c < 256; c++) {
    const s = c & 0x80 ? -1 : 1;
    const e = (c >> mbits) & emax;
    const m = c & mmax;
    let v: number;
    if (kind === 'fnuz' && c === 0x80) v = NaN; // the one NaN; no negative zero
    else if (kind === 'fn' && e === emax && m === mmax) v = NaN; // S.1111.111; no infinities
    else if (kind === 'ieee' && e === emax) v = m ? NaN : s * Infinity;
    else if (e === 0) v = s * m * 2 ** (1 - bias - mbits);
    else v = s * (2 ** mbits + m) * 2 ** (e - bias - mbits);
    t[c] = v;
  }
  return t;
}
export const F8_E4M3FN = f8Table(4, 3, 7, 'fn');
export const F8_E4M3FNUZ = f8Table(4, 3, 8, 'fnuz');
export const F8_E5M2 = f8Table(5, 2, 15, 'ieee');
export const F8_E5M2FNUZ = f8Table(5, 2, 16, 'fnuz');

let f16Table: Float32Array | undefined;
/** All 65536 binary16 values as float32 (built once, 256 KiB). */
export function f16Lookup(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f16ToF32(h);
  }
  return f16Table;
}

// ---------------------------------------------------------------------------
// Bulk decode

/**
 * Decode `count` elements of a scalar dtype from `src` into `dst[dstOffset..]`.
 * `src` starts at the first element's byte; for i4/u4 `nibble` (0 or 1) says
 * whether the first element is the low or high nibble of src[0] (low first).
 */
export function decodeToFloat32(
  dtype: ScalarDType, src: Uint8Array, count: number, dst: Float32Array, dstOffset = 0, nibble = 0,
): void {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const need = dtype === 'i4' || dtype === 'u4' ? Math.ceil((count + nibble) / 2) : scalarByteLength(dtype, count);
  if (src.byteLength < need) throw new RangeError(`decodeToFloat32: ${count} ${dtype} need ${need} bytes, got ${src.byteLength}`);
  let o = dstOffset;
  switch (dtype) {
    case 'f32': for (let i = 0; i < count; i++) dst[o++] = dv.getFloat32(i * 4, true); break;
    case 'f64': for (let i = 0; i < count; i++) dst[o++] = dv.getFloat64(i * 8, true); break;
    case 'f16': { const t = f16Lookup(); for (let i = 0; i < count; i++) dst[o++] = t[dv.getUint16(i * 2, true)]; break; }
    case 'bf16': for (let i = 0; i < count; i++) { u32Scratch[0] = dv.getUint16(i * 2, true) << 16; dst[o++] = f32Scratch[0]; } break;
    case 'f8_e4m3fn': for (let i = 0; i < count; i++) dst[o++] = F8_E4M3FN[src[i]]; break;
    case 'f8_e4m3fnuz': for (let i = 0; i < count; i++) dst[o++] = F8_E4M3FNUZ[src[i]]; break;
    case 'f8_e5m2': for (let i = 0; i < count; i++) dst[o++] = F8_E5M2[src[i]]; break;
    case 'f8_e5m2fnuz': for (let i = 0; i < count; i++) dst[o++] = F8_E5M2FNUZ[src[i]]; break;
    case 'i64': for (let i = 0; i < count; i++) dst[o++] = Number(dv.getBigInt64(i * 8, true)); break;
    case 'u64': for (let i = 0; i < count; i++) dst[o++] = Number(dv.getBigUint64(i * 8, true)); break;
    case 'i32': for (let i = 0; i < count; i++) dst[o++] = dv.getInt32(i * 4, true); break;
    case 'u32': for (let i = 0; i < count; i++) dst[o++] = dv.getUint32(i * 4, true); break;
    case 'i16': for (let i = 0; i < count; i++) dst[o++] = dv.getInt16(i * 2, true); break;
    case 'u16': for (let i = 0; i < count; i++) dst[o++] = dv.getUint16(i * 2, true); break;
    case 'i8': for (let i = 0; i < count; i++) dst[o++] = (src[i] << 24) >> 24; break;
    case 'u8': for (let i = 0; i < count; i++) dst[o++] = src[i]; break;
    case 'bool': for (let i = 0; i < count; i++) dst[o++] = src[i] ? 1 : 0; break;
    case 'u4':
    case 'i4': {
      const signed = dtype === 'i4';
      for (let i = 0; i < count; i++) {
        const k = i + nibble;
        const q = (src[k >> 1] >> ((k & 1) * 4)) & 0xf;
        dst[o++] = signed ? (q << 28) >> 28 : q;
      }
      break;
    }
    default:
      throw new RangeError(`decodeToFloat32: ${dtype} has no float value`);
  }
}

/**
 * Number formats the engine quantizes to: integer grids (intN / uintN,
 * symmetric or asymmetric), the NF4 code book, the FP8 and FP4 minifloats and
 * the E8M0 shared exponent of the OCP MX formats.
 *
 * Rounding follows ONNX QuantizeLinear: the quotient x / scale is formed in
 * float32 (as ONNX Runtime does) and rounded half to even, then saturated.
 * Everything here is scalar and allocation-free so the kernels in rtn.ts can
 * call it per element.
 */

/** Formats a tensor can be quantized to. */
export type QuantFormat =
  | 'int'      // signed two's-complement intN, N = 2..8
  | 'uint'     // unsigned intN, N = 2..8
  | 'nf4'      // QLoRA NormalFloat4 code book, scale = absmax of the group
  | 'fp8_e4m3' // OCP / ONNX float8e4m3fn (no infinities, one NaN pattern per sign)
  | 'fp8_e5m2' // OCP / ONNX float8e5m2 (IEEE-like)
  | 'fp4_e2m1' // OCP FP4 element; with a power-of-two group scale this is MXFP4
  | 'binary'   // sign(x) * scale, codes ±1
  | 'ternary'; // {-1, 0, +1} * scale

/** Bits per element each non-integer format occupies. */
export const FORMAT_BITS: Record<Exclude<QuantFormat, 'int' | 'uint'>, number> = {
  nf4: 4, fp8_e4m3: 8, fp8_e5m2: 8, fp4_e2m1: 4, binary: 1, ternary: 2,
};

// ---------------------------------------------------------------- rounding

/** 1.5 * 2^52: adding and subtracting it rounds a double to an integer, half to even, for |v| < 2^51. */
const RNE_MAGIC = 6755399441055744;

/**
 * Round half to even (IEEE roundTiesToEven), as `nearbyint` in the default
 * rounding mode. Exact for every double; the magic-number path covers the
 * range any quantizer can produce before clamping.
 */
export function roundHalfEven(v: number): number {
  if (v > -2251799813685248 && v < 2251799813685248) return (v + RNE_MAGIC) - RNE_MAGIC;
  return v; // already an integer (or NaN / ±Inf)
}

// ---------------------------------------------------------------- integer grids

export interface IntGrid {
  bits: number;
  signed: boolean;
  qmin: number;
  qmax: number;
}

/**
 * The integer range of a format. `restricted` drops the most negative code
 * (relative to the midpoint zero point for unsigned grids) so a symmetric grid
 * is symmetric around zero: ±127 for int8, as ORT's symmetric int8 weights,
 * and 1..15 around zero point 8 for uint4.
 */
export function intGrid(bits: number, signed: boolean, restricted = false): IntGrid {
  if (!Number.isInteger(bits) || bits < 2 || bits > 8) {
    throw new RangeError(`integer quantization supports 2..8 bits, got ${bits}`);
  }
  if (signed) {
    const half = 1 << (bits - 1);
    return { bits, signed, qmin: restricted ? -(half - 1) : -half, qmax: half - 1 };
  }
  return { bits, signed, qmin: restricted ? 1 : 0, qmax: (1 << bits) - 1 };
}

/** ONNX QuantizeLinear for one element: saturate(round_half_even(fp32(x / scale)) + zeroPoint). */
export function quantizeLinearScalar(x: number, scale: number, zeroPoint: number, qmin: number, qmax: number): number {
  const q = roundHalfEven(Math.fround(x / scale)) + zeroPoint;
  return q < qmin ? qmin : q > qmax ? qmax : q;
}

/** ONNX DequantizeLinear for one element, float32 result. */
export function dequantizeLinearScalar(q: number, scale: number, zeroPoint: number): number {
  return Math.fround((q - zeroPoint) * scale);
}

/**
 * Smallest power of two >= s. Rounding the scale up (not to nearest) keeps
 * the calibrated range inside the grid, so power-of-two scales never add
 * clipping, only step size.
 */
export function pow2Ceil(s: number): number {
  if (!(s > 0) || !Number.isFinite(s)) return s;
  let e = Math.ceil(Math.log2(s));
  // log2 is not exact near powers of two; fix the exponent up by one step either way.
  if (2 ** (e - 1) >= s) e -= 1;
  if (2 ** e < s) e += 1;
  return 2 ** e;
}

// ---------------------------------------------------------------- NF4

/**
 * The 16 NF4 levels from QLoRA (Dettmers et al. 2023), as bitsandbytes
 * stores them: quantiles of N(0,1) normalised to [-1, 1] with an exact zero.
 */
export const NF4_LEVELS: Float32Array = Float32Array.from([
  -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
  -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
  0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
]);

/**
 * Decision thresholds between neighbouring NF4 levels, in float32 like the
 * literals of bitsandbytes' dQuantizeNF4: a value strictly above threshold i
 * takes level i+1, a value on it keeps level i.
 */
export const NF4_THRESHOLDS: Float32Array = (() => {
  const t = new Float32Array(15);
  for (let i = 0; i < 15; i++) t[i] = Math.fround((NF4_LEVELS[i] + NF4_LEVELS[i + 1]) / 2);
  return t;
})();

/** NF4 code (0..15) of a value already divided by the group's absmax; saturates outside [-1, 1]. */
export function encodeNf4(normalized: number): number {
  // Binary search over the 15 thresholds: count of thresholds strictly below the value.
  let lo = 0;
  let hi = 15;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (normalized > NF4_THRESHOLDS[mid]) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// ---------------------------------------------------------------- minifloats (FP8, FP4)

export interface MinifloatSpec {
  name: 'fp8_e4m3' | 'fp8_e5m2' | 'fp4_e2m1';
  expBits: number;
  manBits: number;
  bias: number;
  /** Largest finite magnitude. */
  max: number;
  /** Code (sign bit clear) of the largest finite magnitude. */
  maxCode: number;
  /** Code (sign bit clear) used for NaN, or -1 when the format has no NaN. */
  nanCode: number;
  /** Whether the all-ones exponent encodes ±Inf (E5M2 only). */
  hasInf: boolean;
}

/**
 * E4M3FN: bias 7, the all-ones exponent is a normal binade except S.1111.111 (NaN);
 * E5M2: bias 15, IEEE-like; E2M1: bias 1, every pattern is finite.
 */
export const MINIFLOATS: Record<MinifloatSpec['name'], MinifloatSpec> = {
  fp8_e4m3: { name: 'fp8_e4m3', expBits: 4, manBits: 3, bias: 7, max: 448, maxCode: 0x7e, nanCode: 0x7f, hasInf: false },
  fp8_e5m2: { name: 'fp8_e5m2', expBits: 5, manBits: 2, bias: 15, max: 57344, maxCode: 0x7b, nanCode: 0x7f, hasInf: true },
  fp4_e2m1: { name: 'fp4_e2m1', expBits: 2, manBits: 1, bias: 1, max: 6, maxCode: 0x7, nanCode: -1, hasInf: false },
};

/** Value of a minifloat bit pattern, decoded from the fields (independent of the encoder's table). */
export function decodeMinifloat(code: number, f: MinifloatSpec): number {
  const width = 1 + f.expBits + f.manBits;
  const signBit = 1 << (width - 1);
  const sign = code & signBit ? -1 : 1;
  const mag = code & (signBit - 1);
  const e = mag >> f.manBits;
  const m = mag & ((1 << f.manBits) - 1);
  const eAllOnes = (1 << f.expBits) - 1;
  if (f.name === 'fp8_e5m2' && e === eAllOnes) return m === 0 ? sign * Infinity : NaN;
  if (f.name === 'fp8_e4m3' && mag === 0x7f) return NaN;
  if (e === 0) return sign * m * 2 ** (1 - f.bias - f.manBits);
  return sign * (1 + m / (1 << f.manBits)) * 2 ** (e - f.bias);
}

/** Non-negative finite values by code 0..maxCode, ascending (codes are monotone in magnitude). */
function positiveTable(f: MinifloatSpec): Float64Array {
  const t = new Float64Array(f.maxCode + 1);
  for (let c = 0; c <= f.maxCode; c++) t[c] = decodeMinifloat(c, f);
  return t;
}
const POS_TABLES: Record<MinifloatSpec['name'], Float64Array> = {
  fp8_e4m3: positiveTable(MINIFLOATS.fp8_e4m3),
  fp8_e5m2: positiveTable(MINIFLOATS.fp8_e5m2),
  fp4_e2m1: positiveTable(MINIFLOATS.fp4_e2m1),
};

/** Decode tables for every bit pattern (256 for FP8, 16 for FP4). */
export const MINIFLOAT_DECODE: Record<MinifloatSpec['name'], Float32Array> = {
  fp8_e4m3: Float32Array.from({ length: 256 }, (_, c) => decodeMinifloat(c, MINIFLOATS.fp8_e4m3)),
  fp8_e5m2: Float32Array.from({ length: 256 }, (_, c) => decodeMinifloat(c, MINIFLOATS.fp8_e5m2)),
  fp4_e2m1: Float32Array.from({ length: 16 }, (_, c) => decodeMinifloat(c, MINIFLOATS.fp4_e2m1)),
};

/**
 * Encode a number to a minifloat with round-to-nearest-even and saturation
 * (ONNX Cast / QuantizeLinear with saturate=1): |x| beyond the largest finite
 * value, including ±Inf, becomes ±max; NaN becomes the NaN pattern (FP4,
 * which has none, maps NaN to +0, which callers reject before getting here).
 * Values that round to zero keep their sign (-0 is a distinct code).
 */
export function encodeMinifloat(x: number, f: MinifloatSpec): number {
  const width = 1 + f.expBits + f.manBits;
  if (x !== x) return f.nanCode >= 0 ? f.nanCode : 0;
  const neg = x < 0 || (x === 0 && 1 / x < 0);
  const a = neg ? -x : x;
  const t = POS_TABLES[f.name];
  let k: number;
  if (a >= t[f.maxCode]) {
    k = f.maxCode;
  } else {
    // Largest code whose value is <= a.
    let lo = 0;
    let hi = f.maxCode;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (t[mid] <= a) lo = mid;
      else hi = mid;
    }
    const midpoint = (t[lo] + t[lo + 1]) / 2; // exact: neighbours differ by one ulp of a short significand
    if (a > midpoint) k = lo + 1;
    else if (a < midpoint) k = lo;
    else k = lo & 1 ? lo + 1 : lo; // tie: the even significand, which is the even code
  }
  return neg ? k | (1 << (width - 1)) : k;
}

// ---------------------------------------------------------------- E8M0 shared scales

/** Largest exponent of the element format, used by the OCP MX scale rule. */
export function minifloatEmax(f: MinifloatSpec): number {
  return Math.floor(Math.log2(f.max));
}

/**
 * OCP MX v1.0 shared scale: X = 2^(floor(log2(amax)) - emax_elem), clamped
 * to the E8M0 range 2^-127..2^127. A zero block gets X = 2^-127 (its codes are
 * all zero anyway). Values above 6·X after scaling saturate, as the spec says.
 */
export function mxSharedScale(amax: number, f: MinifloatSpec): number {
  if (!(amax > 0)) return 2 ** -127;
  let e = Math.floor(Math.log2(amax));
  if (2 ** e > amax) e -= 1;
  else if (2 ** (e + 1) <= amax) e += 1;
  e -= minifloatEmax(f);
  if (e < -127) e = -127;
  if (e > 127) e = 127;
  return 2 ** e;
}

/** E8M0 byte of a power-of-two scale (bias 127; 0xFF is NaN). */
export function encodeE8M0(scale: number): number {
  const e = Math.log2(scale);
  if (!Number.isInteger(e) || e < -127 || e > 127) throw new RangeError(`E8M0 needs a power of two in 2^-127..2^127, got ${scale}`);
  return e + 127;
}

export function decodeE8M0(byte: number): number {
  return byte === 0xff ? NaN : 2 ** (byte - 127);
}

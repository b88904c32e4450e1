/**
 * Round-to-nearest quantization of a float32 tensor to any format at any
 * granularity: the reference every other algorithm is compared with, and the
 * predictor of what ONNX Runtime's QuantizeLinear / DequantizeLinear compute
 * (same float32 quotient, same half-to-even rounding, same saturation).
 */
import {
  QuantFormat, intGrid, roundHalfEven, pow2Ceil, NF4_LEVELS, encodeNf4, MINIFLOATS, MINIFLOAT_DECODE,
  MinifloatSpec, encodeMinifloat, mxSharedScale,
} from './numberFormats';
import { Granularity, groupLayout, newRun, gather, scatter, GroupLayout } from './granularity';
import { quantSymIntWasm, quantIntZpWasm, WASM_MAX_GROUP } from '../kernels/rtnKernels';
import type { Impl } from '../kernels/runtime';
import { RangeCalibrator, RangeTarget, CalibratorName, calibrator as calibratorByName, MinMaxCalibrator, MseCalibrator } from './calibrators';

export interface QuantSpec {
  format: QuantFormat;
  /** Element width for 'int' / 'uint' (2..8); ignored by the other formats. */
  bits?: number;
  /**
   * Integer formats: symmetric grids have a fixed zero point (0 for int,
   * 2^(bits-1) for uint); asymmetric ones an integer zero point per group.
   * Default true. The other formats are always symmetric.
   */
  symmetric?: boolean;
  /**
   * Symmetric integer grids: 'restricted' (default) uses ±(2^(bits-1)-1)
   * around the zero point, as ORT's symmetric int8 weights (±127);
   * 'full' uses the whole code range with scale 2·amax/(qmax-qmin).
   */
  range?: 'restricted' | 'full';
  /**
   * 'pow2': integer formats round the scale up to a power of two (no extra
   * clipping); fp4/fp8 use the OCP MX rule 2^(floor(log2 amax) - emax), i.e.
   * an E8M0 shared scale (fp4_e2m1 + group 32 + pow2 = MXFP4).
   */
  scale?: 'float' | 'pow2';
  granularity: Granularity;
  /** Default 'minmax' ('absmean' for binary / ternary). */
  calibrator?: CalibratorName | RangeCalibrator;
}

export interface QuantResult {
  shape: number[];
  spec: QuantSpec;
  /**
   * One code per element, in input order: Int8Array for int / binary /
   * ternary; Uint8Array for uint, NF4 indices (0..15), FP8 bit patterns and
   * FP4 nibbles (sign in bit 3).
   */
  codes: Int8Array | Uint8Array;
  /** One float32 scale per group, laid out as `scaleShape`. */
  scales: Float32Array;
  scaleShape: number[];
  /** Integer formats: one zero point per group (0 / 2^(bits-1) when symmetric); null otherwise. */
  zeroPoints: Int32Array | null;
  /** Dequantized values, float32, input order. */
  dequantized: Float32Array;
}

/** Per-format kernel: derive scale/zero point from a range, encode a group, and decode. */
interface Codec {
  readonly signedCodes: boolean;
  readonly bits: number;
  readonly symmetric: boolean;
  /** Writes scale and zero point for a calibrated range into p. */
  params(lo: number, hi: number, p: { scale: number; zp: number }): void;
  /** Encode x[xo..xo+n) into codes[o..o+n) and deq[o..o+n). */
  encode(x: Float32Array, xo: number, n: number, scale: number, zp: number, codes: Int8Array | Uint8Array, deq: Float32Array, o: number): void;
  /** Sum of squared round-trip errors of x[xo..xo+n), nothing written (the MSE search's inner loop). */
  sse(x: Float32Array, xo: number, n: number, scale: number, zp: number): number;
  decode(code: number, scale: number, zp: number): number;
}

const RNE = 6755399441055744; // see roundHalfEven

// The integer hot loops are top-level functions with one array type each, so
// V8 keeps them monomorphic (a shared closure over Int8Array | Uint8Array is
// several times slower).
function encodeIntSigned(x: Float32Array, xo: number, n: number, s: number, zp: number, qmin: number, qmax: number, codes: Int8Array, deq: Float32Array, o: number): void {
  for (let i = 0; i < n; i++) {
    let q = ((Math.fround(x[xo + i] / s) + RNE) - RNE) + zp;
    q = q < qmin ? qmin : q > qmax ? qmax : q;
    codes[o + i] = q;
    deq[o + i] = Math.fround((q - zp) * s);
  }
}
function encodeIntUnsigned(x: Float32Array, xo: number, n: number, s: number, zp: number, qmin: number, qmax: number, codes: Uint8Array, deq: Float32Array, o: number): void {
  for (let i = 0; i < n; i++) {
    let q = ((Math.fround(x[xo + i] / s) + RNE) - RNE) + zp;
    q = q < qmin ? qmin : q > qmax ? qmax : q;
    codes[o + i] = q;
    deq[o + i] = Math.fround((q - zp) * s);
  }
}
/**
 * Squared error summed over four interleaved lanes (element i into lane
 * i % 4, total (l0 + l1) + (l2 + l3)): the order the SIMD kernel can use, so
 * the MSE search picks the same clip in both (float sums depend on order).
 */
function sseInt(x: Float32Array, xo: number, n: number, s: number, zp: number, qmin: number, qmax: number): number {
  let l0 = 0;
  let l1 = 0;
  let l2 = 0;
  let l3 = 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    l0 += sqErr(x[xo + i], s, zp, qmin, qmax);
    l1 += sqErr(x[xo + i + 1], s, zp, qmin, qmax);
    l2 += sqErr(x[xo + i + 2], s, zp, qmin, qmax);
    l3 += sqErr(x[xo + i + 3], s, zp, qmin, qmax);
  }
  if (i < n) l0 += sqErr(x[xo + i++], s, zp, qmin, qmax);
  if (i < n) l1 += sqErr(x[xo + i++], s, zp, qmin, qmax);
  if (i < n) l2 += sqErr(x[xo + i++], s, zp, qmin, qmax);
  return (l0 + l1) + (l2 + l3);
}
function sqErr(v: number, s: number, zp: number, qmin: number, qmax: number): number {
  let q = ((Math.fround(v / s) + RNE) - RNE) + zp;
  q = q < qmin ? qmin : q > qmax ? qmax : q;
  const r = Math.fround((q - zp) * s) - v;
  return r * r;
}

function intCodec(spec: QuantSpec): Codec {
  const signed = spec.format === 'int';
  const bits = spec.bits ?? 8;
  const symmetric = spec.symmetric ?? true;
  const restricted = symmetric && (spec.range ?? 'restricted') === 'restricted';
  const grid = intGrid(bits, signed, restricted);
  const { qmin, qmax } = grid;
  const mid = signed ? 0 : 1 << (bits - 1);
  const pow2 = spec.scale === 'pow2';
  return {
    signedCodes: signed, bits, symmetric,
    params(lo, hi, p) {
      // The range always contains zero, so zero is exactly representable (ORT does the same).
      if (lo > 0) lo = 0;
      if (hi < 0) hi = 0;
      let scale: number;
      let zp: number;
      if (symmetric) {
        const a = Math.max(-lo, hi);
        scale = restricted ? a / (qmax - mid) : (2 * a) / (qmax - qmin);
        zp = mid;
      } else {
        // In float32 like ORT's DynamicQuantizeLinear: the span is rounded before the division.
        scale = Math.fround(hi - lo) / (qmax - qmin);
        zp = 0;
      }
      scale = Math.fround(scale);
      if (!(scale >= 1.1754943508222875e-38)) {
        // An all-zero group (or a denormal range): ORT uses scale 1 and keeps zero exact.
        scale = 1;
        if (!symmetric) zp = qmin > 0 ? qmin : qmax < 0 ? qmax : 0;
      } else {
        if (pow2) scale = pow2Ceil(scale);
        if (!symmetric) {
          zp = roundHalfEven(Math.fround(qmin - Math.fround(lo / scale)));
          if (zp < qmin) zp = qmin;
          else if (zp > qmax) zp = qmax;
        }
      }
      p.scale = scale;
      p.zp = zp;
    },
    encode(x, xo, n, s, zp, codes, deq, o) {
      if (signed) encodeIntSigned(x, xo, n, s, zp, qmin, qmax, codes as Int8Array, deq, o);
      else encodeIntUnsigned(x, xo, n, s, zp, qmin, qmax, codes as Uint8Array, deq, o);
    },
    sse(x, xo, n, s, zp) {
      return sseInt(x, xo, n, s, zp, qmin, qmax);
    },
    decode(q, s, zp) {
      return Math.fround((q - zp) * s);
    },
  };
}

function nf4Codec(): Codec {
  return {
    signedCodes: false, bits: 4, symmetric: true,
    params(lo, hi, p) {
      const a = Math.fround(Math.max(-lo, hi, 0));
      p.scale = a > 0 ? a : 1;
      p.zp = 0;
    },
    encode(x, xo, n, s, _zp, codes, deq, o) {
      // bitsandbytes normalises by multiplying with the reciprocal of absmax; do the same so codes match.
      const inv = Math.fround(1 / s);
      for (let i = 0; i < n; i++) {
        const c = encodeNf4(Math.fround(x[xo + i] * inv));
        codes[o + i] = c;
        deq[o + i] = Math.fround(NF4_LEVELS[c] * s);
      }
    },
    sse(x, xo, n, s) {
      const inv = Math.fround(1 / s);
      let e = 0;
      for (let i = 0; i < n; i++) {
        const v = x[xo + i];
        const r = Math.fround(NF4_LEVELS[encodeNf4(Math.fround(v * inv))] * s) - v;
        e += r * r;
      }
      return e;
    },
    decode(c, s) {
      return Math.fround(NF4_LEVELS[c] * s);
    },
  };
}

function minifloatCodec(f: MinifloatSpec, pow2: boolean): Codec {
  const table = MINIFLOAT_DECODE[f.name];
  return {
    signedCodes: false, bits: 1 + f.expBits + f.manBits, symmetric: true,
    params(lo, hi, p) {
      const a = Math.max(-lo, hi, 0);
      let s = pow2 ? mxSharedScale(a, f) : Math.fround(a / f.max);
      if (!(s > 0)) s = 1;
      p.scale = s;
      p.zp = 0;
    },
    encode(x, xo, n, s, _zp, codes, deq, o) {
      for (let i = 0; i < n; i++) {
        const c = encodeMinifloat(Math.fround(x[xo + i] / s), f);
        codes[o + i] = c;
        deq[o + i] = Math.fround(table[c] * s);
      }
    },
    sse(x, xo, n, s) {
      let e = 0;
      for (let i = 0; i < n; i++) {
        const v = x[xo + i];
        const r = Math.fround(table[encodeMinifloat(Math.fround(v / s), f)] * s) - v;
        e += r * r;
      }
      return e;
    },
    decode(c, s) {
      return Math.fround(table[c] * s);
    },
  };
}

function binaryCodec(ternary: boolean): Codec {
  const code = ternary
    ? (v: number, s: number) => {
      const q = (Math.fround(v / s) + RNE) - RNE;
      return q < -1 ? -1 : q > 1 ? 1 : q;
    }
    : (v: number) => (v < 0 ? -1 : 1);
  return {
    signedCodes: true, bits: ternary ? 2 : 1, symmetric: true,
    params(lo, hi, p) {
      const a = Math.fround(Math.max(-lo, hi, 0));
      p.scale = a > 0 ? a : 1;
      p.zp = 0;
    },
    encode(x, xo, n, s, _zp, codes, deq, o) {
      for (let i = 0; i < n; i++) {
        const q = code(x[xo + i], s);
        codes[o + i] = q;
        deq[o + i] = Math.fround(q * s);
      }
    },
    sse(x, xo, n, s) {
      let e = 0;
      for (let i = 0; i < n; i++) {
        const v = x[xo + i];
        const r = Math.fround(code(v, s) * s) - v;
        e += r * r;
      }
      return e;
    },
    decode(q, s) {
      return Math.fround(q * s);
    },
  };
}

function codecFor(spec: QuantSpec): Codec {
  const pow2 = spec.scale === 'pow2';
  if (spec.format !== 'int' && spec.format !== 'uint' && spec.symmetric === false) {
    throw new RangeError(`format ${spec.format} is symmetric only (no zero point); drop symmetric: false`);
  }
  switch (spec.format) {
    case 'int':
    case 'uint': return intCodec(spec);
    case 'nf4': return nf4Codec();
    case 'fp8_e4m3':
    case 'fp8_e5m2':
    case 'fp4_e2m1': return minifloatCodec(MINIFLOATS[spec.format], pow2);
    case 'binary': return binaryCodec(false);
    case 'ternary': return binaryCodec(true);
    default: throw new RangeError(`unknown quantization format '${String(spec.format)}'`);
  }
}

function resolveCalibrator(spec: QuantSpec): RangeCalibrator {
  const c = spec.calibrator ?? (spec.format === 'binary' || spec.format === 'ternary' ? 'absmean' : 'minmax');
  return typeof c === 'string' ? calibratorByName(c) : c;
}

/** The target a calibrator optimises for this spec (also usable with a HistogramCollector). */
export function rangeTarget(spec: QuantSpec): RangeTarget {
  return targetOf(codecFor(spec));
}

function targetOf(codec: Codec): RangeTarget {
  const p = { scale: 1, zp: 0 };
  const one = new Float32Array(1);
  const deq = new Float32Array(1);
  const code = codec.signedCodes ? new Int8Array(1) : new Uint8Array(1);
  return {
    symmetric: codec.symmetric,
    bits: codec.bits,
    sse(x, n, lo, hi) {
      codec.params(lo, hi, p);
      return codec.sse(x, 0, n, p.scale, p.zp);
    },
    roundTrip(lo, hi) {
      const q = { scale: 1, zp: 0 };
      codec.params(lo, hi, q);
      return (v: number) => {
        one[0] = v;
        codec.encode(one, 0, 1, q.scale, q.zp, code, deq, 0);
        return deq[0];
      };
    },
  };
}

/** Scale and zero point a spec derives from an explicit range (e.g. from activation calibration). */
export function paramsFromRange(spec: QuantSpec, lo: number, hi: number): { scale: number; zeroPoint: number } {
  const p = { scale: 1, zp: 0 };
  codecFor(spec).params(lo, hi, p);
  return { scale: p.scale, zeroPoint: p.zp };
}

function noKernel(where: string, spec: QuantSpec): never {
  throw new RangeError(`${where}: impl 'wasm' asked for, but no WebAssembly kernel covers ${spec.format}${spec.bits ? spec.bits : ''} with this granularity and calibrator (int / uint with float scales, min-max or MSE clipping, contiguous equal groups)`);
}

function checkFinite(x: Float32Array, where: string): void {
  let acc = 0;
  for (let i = 0; i < x.length; i++) acc += x[i] * 0; // NaN iff some element is NaN or ±Inf
  if (acc !== 0) {
    for (let i = 0; i < x.length; i++) {
      if (!Number.isFinite(x[i])) throw new RangeError(`${where}: element ${i} is ${x[i]}; quantization needs finite values`);
    }
  }
}

export interface QuantizeOptions {
  /**
   * 'auto' (default) uses the WebAssembly SIMD kernels where they apply
   * (int / uint, min-max, or MSE clipping for symmetric int; float scales;
   * groups that are contiguous runs of equal length), bit-identical to the
   * reference; 'ref' forces the TypeScript path; 'wasm' demands the kernel.
   */
  impl?: Impl;
}

/** Length of each group when every group is one contiguous run of equal size, else 0. */
function contiguousGroupSize(shape: readonly number[], g: Granularity, numel: number): number {
  const rank = shape.length;
  if (numel === 0) return 0;
  if (g.kind === 'tensor') return numel;
  if (g.kind === 'token') return rank > 0 ? shape[rank - 1] : 0;
  const axis = g.axis < 0 ? g.axis + rank : g.axis;
  if (g.kind === 'channel') return shape.slice(0, axis).every((d) => d === 1) ? numel / shape[axis] : 0;
  return axis === rank - 1 && shape[axis] % g.size === 0 ? g.size : 0;
}

/** Kernel parameters of the fast path, or null when it does not apply to this spec and shape. */
interface FastPlan {
  gsize: number;
  signed: boolean;
  symmetric: boolean;
  qmin: number;
  qmax: number;
  mid: number;
  num: number;
  den: number;
  mse: { steps: number; minRatio: number } | null;
}

function fastPlan(layout: GroupLayout, spec: QuantSpec, cal: RangeCalibrator): FastPlan | null {
  if ((spec.format !== 'int' && spec.format !== 'uint') || spec.scale === 'pow2') return null;
  const mse = cal instanceof MseCalibrator;
  if (!(cal instanceof MinMaxCalibrator) && !mse) return null;
  const gsize = contiguousGroupSize(layout.shape, spec.granularity, layout.numel);
  // A group must fit one kernel call; WebAssembly memory never shrinks, so a huge
  // per-tensor group would pin ~9 bytes per element for the life of the process.
  if (gsize === 0 || gsize > WASM_MAX_GROUP) return null;
  const signed = spec.format === 'int';
  const symmetric = spec.symmetric ?? true;
  if (mse && !(signed && symmetric)) return null; // the MSE kernel covers zero-point-free grids only
  const bits = spec.bits ?? 8;
  const restricted = symmetric && (spec.range ?? 'restricted') === 'restricted';
  const { qmin, qmax } = intGrid(bits, signed, restricted);
  const mid = signed ? 0 : 1 << (bits - 1);
  return {
    gsize, signed, symmetric, qmin, qmax, mid,
    num: restricted ? 1 : 2,
    den: restricted ? qmax - mid : qmax - qmin,
    mse: mse ? { steps: (cal as MseCalibrator).steps, minRatio: (cal as MseCalibrator).minRatio } : null,
  };
}

/**
 * Run the fast path into the given arrays (sized by the caller). Returns
 * false when WebAssembly is unavailable; throws on non-finite input.
 * `zps` null is allowed for signed symmetric grids (their zero point is 0).
 */
function runFast(
  x: Float32Array, plan: FastPlan, codes: Int8Array | Uint8Array | null, deq: Float32Array | null, scales: Float32Array, zps: Int32Array | null,
  packed: Uint8Array | null = null,
): boolean {
  let status: number;
  if (plan.signed && plan.symmetric) {
    status = quantSymIntWasm(x, plan.gsize, plan.num, plan.den, plan.qmin, plan.qmax, codes as Int8Array | null, deq, scales, plan.mse, packed);
    if (zps && status === -1) zps.fill(0);
  } else {
    const z = zps ?? new Int32Array(scales.length);
    status = quantIntZpWasm(x, plan.gsize, plan.num, plan.den, plan.qmin, plan.qmax, !plan.symmetric, plan.mid, codes, deq, scales, z, packed, !plan.signed);
  }
  if (status === -2) return false;
  if (status >= 0) checkFinite(x, 'quantize'); // throws with the element's index
  return true;
}

function quantizeFast(x: Float32Array, layout: GroupLayout, spec: QuantSpec, cal: RangeCalibrator, withDeq = true): QuantResult | null {
  const plan = fastPlan(layout, spec, cal);
  if (!plan) return null;
  const codes = plan.signed ? new Int8Array(layout.numel) : new Uint8Array(layout.numel);
  const deq = new Float32Array(withDeq ? layout.numel : 0);
  const scales = new Float32Array(layout.groups);
  const zps = new Int32Array(layout.groups);
  if (!runFast(x, plan, codes, withDeq ? deq : null, scales, zps)) return null;
  return { shape: layout.shape.slice(), spec, codes, scales, scaleShape: layout.scaleShape, zeroPoints: zps, dequantized: deq };
}

/**
 * Quantize a float32 tensor. Each scale group is calibrated, then encoded;
 * codes, scales, zero points and the dequantized tensor come back together.
 */
export function quantize(x: Float32Array, shape: readonly number[], spec: QuantSpec, opts: QuantizeOptions = {}): QuantResult {
  const layout = groupLayout(shape, spec.granularity);
  if (layout.numel !== x.length) {
    throw new RangeError(`quantize: shape [${shape.join(', ')}] has ${layout.numel} elements but the data has ${x.length}`);
  }
  const codec = codecFor(spec);
  const cal = resolveCalibrator(spec);
  if ((opts.impl ?? 'auto') !== 'ref') {
    const fast = quantizeFast(x, layout, spec, cal);
    if (fast) return fast;
  }
  checkFinite(x, 'quantize');
  if (opts.impl === 'wasm') noKernel('quantize', spec);
  const target = targetOf(codec);
  return runGroups(x, layout, spec, codec, cal instanceof MinMaxCalibrator ? null : (vals, n) => cal.fromValues(vals, n, target));
}

/**
 * Codes, scales and zero points only: what a converter stores. Same codes as
 * `quantize`; skips materialising the dequantized tensor where the fast path
 * allows (a 4096x4096 float32 result is 64 MB of fresh memory to fault in).
 */
export function quantizeCodes(x: Float32Array, shape: readonly number[], spec: QuantSpec, opts: QuantizeOptions = {}): Omit<QuantResult, 'dequantized'> {
  if ((opts.impl ?? 'auto') !== 'ref') {
    const layout = groupLayout(shape, spec.granularity);
    if (layout.numel !== x.length) {
      throw new RangeError(`quantize: shape [${shape.join(', ')}] has ${layout.numel} elements but the data has ${x.length}`);
    }
    const fast = quantizeFast(x, layout, spec, resolveCalibrator(spec), false);
    if (fast) {
      const { dequantized: _unused, ...rest } = fast;
      return rest;
    }
    checkFinite(x, 'quantizeCodes');
    if (opts.impl === 'wasm') noKernel('quantizeCodes', spec);
  }
  const { dequantized: _unused, ...rest } = quantize(x, shape, spec, { impl: 'ref' });
  return rest;
}

/** Sizes of what `quantizeCodesInto` writes for this shape and spec, to allocate reusable outputs. */
export interface QuantOutputSizes {
  numel: number;
  /** Number of scale groups (length of scales and zero points). */
  groups: number;
  scaleShape: number[];
  /** True: codes are an Int8Array (int, binary, ternary); false: a Uint8Array. */
  signedCodes: boolean;
  /** True for int / uint, the formats with zero points. */
  hasZeroPoints: boolean;
}

export function quantOutputSizes(shape: readonly number[], spec: QuantSpec): QuantOutputSizes {
  const layout = groupLayout(shape, spec.granularity);
  return {
    numel: layout.numel, groups: layout.groups, scaleShape: layout.scaleShape,
    signedCodes: codecFor(spec).signedCodes, hasZeroPoints: spec.format === 'int' || spec.format === 'uint',
  };
}

function checkScalesOut(where: string, layout: GroupLayout, scales: Float32Array, zps: Int32Array | null): void {
  if (!(scales instanceof Float32Array) || scales.length !== layout.groups) {
    const got = scales as unknown as { constructor?: { name?: string }; length?: number } | undefined;
    throw new RangeError(`${where}: out.scales must be a Float32Array of ${layout.groups} elements (scale shape [${layout.scaleShape.join(', ')}]), got ${got?.constructor?.name} of ${got?.length}`);
  }
  if (zps !== null && (!(zps instanceof Int32Array) || zps.length !== layout.groups)) {
    const got = zps as unknown as { constructor?: { name?: string }; length?: number };
    throw new RangeError(`${where}: out.zeroPoints must be an Int32Array of ${layout.groups} elements, got ${got.constructor?.name} of ${got.length}`);
  }
}

/** Caller-owned outputs for `quantizeCodesInto`, sized as `quantOutputSizes` says. */
export interface QuantCodesOut {
  /** One code per element (Int8Array for int / binary / ternary, else Uint8Array). */
  codes: Int8Array | Uint8Array;
  /** One float32 scale per group, laid out as the scale shape. */
  scales: Float32Array;
  /** Integer formats: one zero point per group, written when given. */
  zeroPoints?: Int32Array | null;
}

/**
 * `quantizeCodes` into arrays the caller owns and may reuse across tensors:
 * the same codes, scales and zero points, without allocating outputs (a
 * converter quantizing layer after layer otherwise page-faults fresh
 * tens of MB per tensor). Returns which kernel ran; specs the WebAssembly
 * path does not cover fall back to the reference and copy into `out`.
 * Non-finite input throws (naming the element) and leaves `out` partly written.
 */
export function quantizeCodesInto(
  x: Float32Array, shape: readonly number[], spec: QuantSpec, out: QuantCodesOut, opts: QuantizeOptions = {},
): { impl: 'wasm' | 'ref' } {
  const layout = groupLayout(shape, spec.granularity);
  if (layout.numel !== x.length) {
    throw new RangeError(`quantizeCodesInto: shape [${shape.join(', ')}] has ${layout.numel} elements but the data has ${x.length}`);
  }
  const codec = codecFor(spec);
  const wantCodes = codec.signedCodes ? 'an Int8Array' : 'a Uint8Array';
  if (!(codec.signedCodes ? out.codes instanceof Int8Array : out.codes instanceof Uint8Array) || out.codes.length !== layout.numel) {
    throw new RangeError(`quantizeCodesInto: out.codes must be ${wantCodes} of ${layout.numel} elements for ${spec.format}, got ${out.codes?.constructor?.name} of ${out.codes?.length}`);
  }
  const zps = out.zeroPoints ?? null;
  checkScalesOut('quantizeCodesInto', layout, out.scales, zps);
  if ((opts.impl ?? 'auto') !== 'ref') {
    const plan = fastPlan(layout, spec, resolveCalibrator(spec));
    if (plan && runFast(x, plan, out.codes, null, out.scales, zps)) return { impl: 'wasm' };
    checkFinite(x, 'quantizeCodesInto');
    if (opts.impl === 'wasm') noKernel('quantizeCodesInto', spec);
  }
  const r = quantize(x, shape, spec, { impl: 'ref' });
  (out.codes as Uint8Array).set(r.codes as Uint8Array);
  out.scales.set(r.scales);
  if (zps) {
    if (r.zeroPoints) zps.set(r.zeroPoints);
    else zps.fill(0);
  }
  return { impl: 'ref' };
}

/** Caller-owned outputs for `quantizePacked4Into`. */
export interface QuantPacked4Out {
  /** ceil(numel / 2) bytes: codes two per byte in element order, low nibble first (ONNX int4 / uint4). */
  packed: Uint8Array;
  scales: Float32Array;
  zeroPoints?: Int32Array | null;
}

/**
 * 4-bit integer RTN (spec: int or uint, bits 4) straight to the ONNX packed
 * layout, into caller-owned arrays: the same bytes as packing the codes of
 * `quantizeCodes`, without the one-byte-per-code intermediate. The
 * WebAssembly path packs inside the module when groups have an even length;
 * otherwise codes are computed into a scratch array and packed here.
 */
export function quantizePacked4Into(
  x: Float32Array, shape: readonly number[], spec: QuantSpec, out: QuantPacked4Out, opts: QuantizeOptions = {},
): { impl: 'wasm' | 'ref' } {
  if ((spec.format !== 'int' && spec.format !== 'uint') || (spec.bits ?? 8) !== 4) {
    throw new RangeError(`quantizePacked4Into: needs a 4-bit int or uint spec, got ${spec.format} with ${spec.bits ?? 8} bits`);
  }
  const layout = groupLayout(shape, spec.granularity);
  if (layout.numel !== x.length) {
    throw new RangeError(`quantizePacked4Into: shape [${shape.join(', ')}] has ${layout.numel} elements but the data has ${x.length}`);
  }
  const bytes = (layout.numel + 1) >> 1;
  if (!(out.packed instanceof Uint8Array) || out.packed.length !== bytes) {
    throw new RangeError(`quantizePacked4Into: out.packed must be a Uint8Array of ${bytes} bytes for ${layout.numel} 4-bit codes, got ${out.packed?.constructor?.name} of ${out.packed?.length}`);
  }
  checkScalesOut('quantizePacked4Into', layout, out.scales, out.zeroPoints ?? null);
  if ((opts.impl ?? 'auto') !== 'ref') {
    const plan = fastPlan(layout, spec, resolveCalibrator(spec));
    if (plan && plan.gsize % 2 === 0 && runFast(x, plan, null, null, out.scales, out.zeroPoints ?? null, out.packed)) return { impl: 'wasm' };
    checkFinite(x, 'quantizePacked4Into');
    if (opts.impl === 'wasm') noKernel('quantizePacked4Into', spec);
  }
  const codes = spec.format === 'int' ? new Int8Array(layout.numel) : new Uint8Array(layout.numel);
  const r = quantizeCodesInto(x, shape, spec, { codes, scales: out.scales, zeroPoints: out.zeroPoints }, opts);
  const p = out.packed;
  const pairs = layout.numel >> 1;
  for (let j = 0; j < pairs; j++) p[j] = (codes[2 * j] & 15) | ((codes[2 * j + 1] & 15) << 4);
  if (layout.numel & 1) p[pairs] = codes[layout.numel - 1] & 15;
  return r;
}

/**
 * Quantize with ranges already known per group (e.g. activations calibrated
 * on a histogram): `ranges[g]` is [lo, hi] for group g in scale order.
 */
export function quantizeWithRanges(x: Float32Array, shape: readonly number[], spec: QuantSpec, ranges: ArrayLike<{ lo: number; hi: number }>): QuantResult {
  const layout = groupLayout(shape, spec.granularity);
  if (layout.numel !== x.length) throw new RangeError(`quantize: shape [${shape.join(', ')}] has ${layout.numel} elements but the data has ${x.length}`);
  if (ranges.length !== layout.groups) throw new RangeError(`quantize: ${ranges.length} ranges given for ${layout.groups} groups`);
  checkFinite(x, 'quantize');
  let g = 0;
  return runGroups(x, layout, spec, codecFor(spec), () => ranges[g++]);
}

/** Min-max of x[off..off+n) (0, 0 when empty); a separate small function so V8 optimises it on its own. */
function minMaxInto(x: Float32Array, off: number, n: number, out: { lo: number; hi: number }): void {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = off, e = off + n; i < e; i++) {
    const v = x[i];
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  if (n === 0) lo = hi = 0;
  out.lo = lo;
  out.hi = hi;
}

/**
 * Calibrate and encode group by group. Contiguous groups (rows, blocks along
 * the last axis) are read and written in place; strided ones go through a
 * scratch buffer. `rangeOf` null means min-max, computed inline without
 * materialising the group.
 */
function runGroups(
  x: Float32Array, layout: GroupLayout, spec: QuantSpec, codec: Codec,
  rangeOf: ((vals: Float32Array, n: number) => { lo: number; hi: number }) | null,
): QuantResult {
  const numel = layout.numel;
  const codes = codec.signedCodes ? new Int8Array(numel) : new Uint8Array(numel);
  const deq = new Float32Array(numel);
  const scales = new Float32Array(layout.groups);
  const isInt = spec.format === 'int' || spec.format === 'uint';
  const zps = isInt ? new Int32Array(layout.groups) : null;
  const run = newRun();
  const scratch = new Float32Array(layout.maxGroupSize);
  const scratchCodes = codec.signedCodes ? new Int8Array(layout.maxGroupSize) : new Uint8Array(layout.maxGroupSize);
  const scratchDeq = new Float32Array(layout.maxGroupSize);
  const p = { scale: 1, zp: 0 };
  const mm = { lo: 0, hi: 0 };
  for (let g = 0; g < layout.groups; g++) {
    layout.run(g, run);
    const contiguous = run.countA === 1 && (run.strideB === 1 || run.countB <= 1);
    let src: Float32Array;
    let off: number;
    let n: number;
    if (contiguous) {
      src = x;
      off = run.base;
      n = run.countB;
    } else {
      n = gather(x, run, scratch);
      src = scratch;
      off = 0;
    }
    let lo: number;
    let hi: number;
    if (rangeOf === null) {
      minMaxInto(src, off, n, mm);
      lo = mm.lo;
      hi = mm.hi;
    } else {
      const r = rangeOf(off === 0 && src.length === n ? src : src.subarray(off, off + n), n);
      lo = r.lo;
      hi = r.hi;
    }
    codec.params(lo, hi, p);
    scales[g] = p.scale;
    if (zps) zps[g] = p.zp;
    if (contiguous) {
      codec.encode(src, off, n, p.scale, p.zp, codes, deq, off);
    } else {
      codec.encode(src, 0, n, p.scale, p.zp, scratchCodes, scratchDeq, 0);
      scatter(scratchCodes, run, codes);
      scatter(scratchDeq, run, deq);
    }
  }
  return { shape: layout.shape.slice(), spec, codes, scales, scaleShape: layout.scaleShape, zeroPoints: zps, dequantized: deq };
}

/** Quantize and return only the dequantized tensor (fake quantization). */
export function fakeQuantize(x: Float32Array, shape: readonly number[], spec: QuantSpec, opts: QuantizeOptions = {}): Float32Array {
  return quantize(x, shape, spec, opts).dequantized;
}

/** Rebuild float32 values from codes, scales and zero points (independent of the encoder's own output). */
export function dequantize(r: Pick<QuantResult, 'shape' | 'spec' | 'codes' | 'scales' | 'zeroPoints'>): Float32Array {
  const layout = groupLayout(r.shape, r.spec.granularity);
  const codec = codecFor(r.spec);
  const out = new Float32Array(layout.numel);
  const run = newRun();
  for (let g = 0; g < layout.groups; g++) {
    layout.run(g, run);
    const s = r.scales[g];
    const zp = r.zeroPoints ? r.zeroPoints[g] : 0;
    for (let a = 0; a < run.countA; a++) {
      for (let b = 0, j = run.base + a * run.strideA; b < run.countB; b++, j += run.strideB) out[j] = codec.decode(r.codes[j], s, zp);
    }
  }
  return out;
}

/** MXFP4 as the OCP MX spec defines it: FP4 E2M1 elements, one E8M0 scale per 32 along `axis`. */
export function mxfp4Spec(axis = -1): QuantSpec {
  return { format: 'fp4_e2m1', scale: 'pow2', granularity: { kind: 'group', axis, size: 32 } };
}

/**
 * Round-to-nearest errors without the quantized tensor: for a spec and both
 * weight calibrators (min-max and MSE clipping), the summed squared error
 * Σ(x − x̂)² over the whole tensor, from the sensitivity kernel
 * (src/kernels/sensKernel.ts) that measures each scale group without writing
 * codes. Equal, to float rounding of the final sums, to quantize() followed
 * by a squared-error sum over `dequantized`; specs the kernel does not cover
 * return null (the caller quantizes instead).
 */
import { ClipSearch, SensFormat, SensLines, sensGroupErrors } from '../kernels/sensKernel';
import type { Impl } from '../kernels/runtime';
import { MseCalibrator } from './calibrators';
import { Granularity, groupLayout } from './granularity';
import { NF4_LEVELS, NF4_THRESHOLDS, intGrid } from './numberFormats';
import type { QuantSpec } from './rtn';

/** Σ(x − x̂)² with the min-max range and with the MSE calibrator's clip. */
export interface RtnErrorSums {
  minmax: number;
  mse: number;
}

/** The kernel's view of a spec's number format, or null when it has none (pow2 scales, FP4, FP8 E5M2, binary, ternary). */
export function sensFormatOf(spec: Omit<QuantSpec, 'calibrator'>): SensFormat | null {
  if (spec.scale === 'pow2') return null;
  if (spec.format === 'int' || spec.format === 'uint') {
    const signed = spec.format === 'int';
    const bits = spec.bits ?? 8;
    const symmetric = spec.symmetric ?? true;
    const restricted = symmetric && (spec.range ?? 'restricted') === 'restricted';
    const { qmin, qmax } = intGrid(bits, signed, restricted);
    const mid = signed ? 0 : 1 << (bits - 1);
    return { kind: 'int', qmin, qmax, asym: !symmetric, mid, num: restricted ? 1 : 2, den: restricted ? qmax - mid : qmax - qmin };
  }
  if (spec.format === 'nf4') return { kind: 'nf4', levels: NF4_LEVELS, thresholds: NF4_THRESHOLDS };
  if (spec.format === 'fp8_e4m3') return { kind: 'fp8_e4m3' };
  return null;
}

/**
 * The tensor as lines of scale groups, each group's elements in the order
 * quantize() visits them: the data itself when groups are runs of a row
 * (blocks along the last axis, per-channel rows), else a gathered copy.
 */
export function groupLines(x: Float32Array, shape: readonly number[], g: Granularity): SensLines {
  const layout = groupLayout(shape, g);
  const numel = layout.numel;
  if (numel !== x.length) throw new RangeError(`groupLines: shape [${shape.join(', ')}] has ${numel} elements but the data has ${x.length}`);
  const rank = shape.length;
  if (g.kind === 'tensor' || g.kind === 'token' || numel === 0) {
    if (g.kind === 'token' && rank > 0) return { data: x, rows: numel / Math.max(shape[rank - 1], 1), rowLen: shape[rank - 1], groupSize: Math.max(shape[rank - 1], 1) };
    return { data: x, rows: numel ? 1 : 0, rowLen: numel, groupSize: Math.max(numel, 1) };
  }
  const axis = g.axis < 0 ? g.axis + rank : g.axis;
  const L = shape[axis];
  const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  if (g.kind === 'channel') {
    // One line per channel: its elements outer-major, as the group's run visits them.
    if (outer === 1) return { data: x, rows: L, rowLen: inner, groupSize: inner };
    const d = new Float32Array(numel);
    let o = 0;
    for (let c = 0; c < L; c++) {
      for (let a = 0; a < outer; a++) {
        const base = (a * L + c) * inner;
        d.set(x.subarray(base, base + inner), o);
        o += inner;
      }
    }
    return { data: d, rows: L, rowLen: outer * inner, groupSize: outer * inner };
  }
  // Blocks along `axis`: one line per (outer, inner) position, its elements along the axis.
  if (inner === 1) return { data: x, rows: outer, rowLen: L, groupSize: g.size };
  const d = new Float32Array(numel);
  let o = 0;
  for (let a = 0; a < outer; a++) {
    for (let i = 0; i < inner; i++) {
      for (let k = 0, j = a * L * inner + i; k < L; k++, j += inner) d[o++] = x[j];
    }
  }
  return { data: d, rows: outer * inner, rowLen: L, groupSize: g.size };
}

/**
 * Σ(x − x̂)² of `x` quantized with `spec`, min-max and MSE-clipped (the
 * engine's `calibrator('mse')` grid), or null when the kernel does not cover
 * the spec. `lines` may pass groupLines(x, shape, spec.granularity) already made. A non-finite
 * element is a RangeError naming it.
 */
export function rtnErrorSums(
  x: Float32Array, shape: readonly number[], spec: Omit<QuantSpec, 'calibrator'>,
  opts: { impl?: Impl; clip?: MseCalibrator; lines?: SensLines } = {},
): RtnErrorSums | null {
  const fmt = sensFormatOf(spec);
  if (!fmt) return null;
  let acc = 0;
  for (let i = 0; i < x.length; i++) acc += x[i] * 0; // NaN iff some element is NaN or ±Inf
  if (acc !== 0) {
    for (let i = 0; i < x.length; i++) {
      if (!Number.isFinite(x[i])) throw new RangeError(`rtnErrorSums: element ${i} is ${x[i]}; quantization needs finite values`);
    }
  }
  const cal = opts.clip ?? new MseCalibrator();
  const clip: ClipSearch = { steps: cal.steps, minRatio: cal.minRatio };
  const lines = opts.lines ?? groupLines(x, shape, spec.granularity);
  const e = sensGroupErrors(lines, fmt, clip, opts.impl ?? 'auto');
  let minmax = 0, mse = 0;
  for (let k = 0; k < e.length; k += 2) {
    minmax += e[k];
    mse += e[k + 1];
  }
  return { minmax, mse };
}

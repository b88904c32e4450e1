/**
 * The integer weight grid the algorithms in this folder quantize onto:
 * intN (N = 2..8) per output row or per group of input columns, symmetric or
 * asymmetric. Codes are stored unsigned with a zero point (symmetric uses the
 * fixed zero point 2^(N-1)), which is how ONNX MatMulNBits and GPTQ checkpoints
 * store them, so one dequantization formula serves both: w = scale·(u − zero).
 *
 * Rounding is half to even with saturation, as ONNX QuantizeLinear does.
 */
import type { Granularity } from '../granularity';
import { roundHalfEven } from '../numberFormats';
import { QuantSpec, paramsFromRange, quantize } from '../rtn';

export interface IntGridConfig {
  /** Bit width, 2..8. */
  bits: number;
  /**
   * Symmetric: scale = max|w| / (2^(N-1) − 1), zero point 2^(N-1), codes span
   * [−2^(N-1), 2^(N-1) − 1] around it. Asymmetric: scale = (max − min)/(2^N − 1)
   * over a range that always contains 0, integer zero point.
   */
  symmetric: boolean;
  /** Columns per group along the input (reduction) axis; 0 or omitted = one group per row. */
  groupSize?: number;
}

export function checkGridConfig(c: IntGridConfig, cols: number, who: string): void {
  if (!Number.isInteger(c.bits) || c.bits < 2 || c.bits > 8) throw new RangeError(`${who}: bits must be an integer in 2..8, got ${c.bits}`);
  const g = c.groupSize ?? 0;
  if (!Number.isInteger(g) || g < 0) throw new RangeError(`${who}: groupSize must be a non-negative integer, got ${g}`);
  if (g > 0 && cols % g !== 0) throw new RangeError(`${who}: groupSize ${g} does not divide the ${cols} input columns`);
}

export function maxCode(bits: number): number {
  return (1 << bits) - 1;
}

/**
 * Scale and zero point for the values v[o + k·stride], k < n: the range
 * rule of rtn.ts (a range that contains 0, float32 scale, ORT's rounding),
 * so GPTQ and AWQ quantize onto exactly the grid round-to-nearest uses.
 */
export function gridParams(
  c: IntGridConfig, v: ArrayLike<number>, o: number, n: number, stride: number, out: { scale: number; zero: number },
): void {
  let lo = 0, hi = 0;
  for (let k = 0; k < n; k++) {
    const x = v[o + k * stride];
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  const p = paramsFromRange(gridSpec(c), lo, hi);
  out.scale = p.scale;
  out.zero = p.zeroPoint;
}

/** Unsigned code of one value (float32 quotient, half to even, saturated: as rtn.ts and ONNX QuantizeLinear). */
export function encode(x: number, scale: number, zero: number, qmax: number): number {
  const q = roundHalfEven(Math.fround(x / scale)) + zero;
  return q < 0 ? 0 : q > qmax ? qmax : q;
}

/** The grid as an rtn.ts spec: unsigned codes, fixed zero point 2^(N-1) when symmetric. */
function gridSpec(c: IntGridConfig, granularity: Granularity = { kind: 'tensor' }): QuantSpec {
  return { format: 'uint', bits: c.bits, symmetric: c.symmetric, granularity };
}

export interface GridQuantized {
  rows: number;
  cols: number;
  /** Unsigned codes, rows×cols row-major, original column order. */
  codes: Uint8Array;
  /** rows×nGroups. */
  scales: Float32Array;
  zeroPoints: Uint8Array;
  /** Group of each input column (identity blocks unless GPTQ act-order reordered them). */
  groupIndex: Int32Array;
  nGroups: number;
  /** scale·(code − zero) for every weight, rows×cols. */
  dequantized: Float32Array;
}

/** Round-to-nearest onto the grid (rtn.ts itself, laid out as the algorithms here return results): the baseline they are measured against. */
export function rtnQuantize(w: ArrayLike<number>, rows: number, cols: number, c: IntGridConfig): GridQuantized {
  checkGridConfig(c, cols, 'rtnQuantize');
  if (w.length < rows * cols) throw new RangeError(`rtnQuantize: weights hold ${w.length} < ${rows}×${cols} values`);
  const g = c.groupSize || cols;
  const nGroups = cols / g;
  const x = w instanceof Float32Array && w.length === rows * cols ? w : Float32Array.from({ length: rows * cols }, (_, i) => w[i]);
  const q = quantize(x, [rows, cols], gridSpec(c, { kind: 'group', axis: 1, size: g }));
  const groupIndex = new Int32Array(cols);
  for (let j = 0; j < cols; j++) groupIndex[j] = Math.floor(j / g);
  return {
    rows, cols, codes: q.codes as Uint8Array, scales: q.scales, zeroPoints: Uint8Array.from(q.zeroPoints!), groupIndex, nGroups, dequantized: q.dequantized,
  };
}

/**
 * The integer weight grid the algorithms in this folder quantize onto:
 * intN (N = 2..8) per output row or per group of input columns, symmetric or
 * asymmetric. Codes are stored unsigned with a zero point (symmetric uses the
 * fixed zero point 2^(N-1)), which is how ONNX MatMulNBits and GPTQ checkpoints
 * store them, so one dequantization formula serves both: w = scale·(u − zero).
 *
 * Rounding is half to even with saturation, as ONNX QuantizeLinear does.
 */

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

/** Round half to even (what ONNX Runtime and torch.round do). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && (r & 1) !== 0 ? r - 1 : r;
}

export function maxCode(bits: number): number {
  return (1 << bits) - 1;
}

/** Scale and zero point for the values v[o + k·stride], k < n. */
export function gridParams(
  c: IntGridConfig, v: ArrayLike<number>, o: number, n: number, stride: number, out: { scale: number; zero: number },
): void {
  const qmax = maxCode(c.bits);
  if (c.symmetric) {
    let amax = 0;
    for (let k = 0; k < n; k++) {
      const a = Math.abs(v[o + k * stride]);
      if (a > amax) amax = a;
    }
    out.zero = 1 << (c.bits - 1);
    out.scale = amax > 0 ? Math.fround(amax / (out.zero - 1)) : 1; // stored as float32, so quantize with that
    return;
  }
  let lo = 0, hi = 0;
  for (let k = 0; k < n; k++) {
    const x = v[o + k * stride];
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  if (hi === lo) { out.scale = 1; out.zero = 0; return; }
  out.scale = Math.fround((hi - lo) / qmax);
  out.zero = Math.min(qmax, Math.max(0, roundHalfEven(-lo / out.scale)));
}

/** Unsigned code of one value. */
export function encode(x: number, scale: number, zero: number, qmax: number): number {
  const q = roundHalfEven(x / scale) + zero;
  return q < 0 ? 0 : q > qmax ? qmax : q;
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

/** Round-to-nearest onto the grid: the baseline every other algorithm here is measured against. */
export function rtnQuantize(w: ArrayLike<number>, rows: number, cols: number, c: IntGridConfig): GridQuantized {
  checkGridConfig(c, cols, 'rtnQuantize');
  if (w.length < rows * cols) throw new RangeError(`rtnQuantize: weights hold ${w.length} < ${rows}×${cols} values`);
  const g = c.groupSize || cols;
  const nGroups = cols / g;
  const qmax = maxCode(c.bits);
  const codes = new Uint8Array(rows * cols);
  const scales = new Float32Array(rows * nGroups);
  const zeroPoints = new Uint8Array(rows * nGroups);
  const dq = new Float32Array(rows * cols);
  const p = { scale: 1, zero: 0 };
  for (let r = 0; r < rows; r++) {
    for (let gi = 0; gi < nGroups; gi++) {
      const o = r * cols + gi * g;
      gridParams(c, w, o, g, 1, p);
      scales[r * nGroups + gi] = p.scale;
      zeroPoints[r * nGroups + gi] = p.zero;
      for (let k = 0; k < g; k++) {
        const u = encode(w[o + k], p.scale, p.zero, qmax);
        codes[o + k] = u;
        dq[o + k] = p.scale * (u - p.zero);
      }
    }
  }
  const groupIndex = new Int32Array(cols);
  for (let j = 0; j < cols; j++) groupIndex[j] = Math.floor(j / g);
  return { rows, cols, codes, scales, zeroPoints, groupIndex, nGroups, dequantized: dq };
}

/**
 * Outlier-aware mixed decomposition (LLM.int8(), Dettmers et al., 2022).
 * A few input channels carry activations orders of magnitude larger than the
 * rest; one int8 scale per token cannot serve both. Those channels' weight
 * columns (and activations) stay in 16-bit, everything else goes int8:
 *   Y = X_o W_oᵀ (fp16)  +  dequant(Q(X_r) Q(W_r)ᵀ) (int8, per-token × per-row scales).
 */
import { f32ToF16, f16Lookup } from '../../formats/dtypes';
import { roundHalfEven } from '../numberFormats';

export interface OutlierOptions {
  /** Channels whose activation magnitude is at least this stay 16-bit (LLM.int8 uses 6.0). */
  threshold?: number;
  /** Alternatively keep exactly the k largest channels. Takes precedence over threshold. */
  topK?: number;
}

export interface OutlierDecomposition {
  rows: number;
  cols: number;
  /** Input channels kept in 16-bit, ascending. */
  outlierColumns: Int32Array;
  /** rows × outlierColumns.length fp16-rounded weights (as float32 values). */
  fp16Weights: Float32Array;
  /** rows×cols int8 codes; outlier columns hold 0. */
  int8Codes: Int8Array;
  /** Per-row symmetric scale of the int8 part (absmax / 127 over non-outlier columns). */
  rowScales: Float32Array;
  /** The effective weights: fp16 on outlier columns, scale·code elsewhere (rows×cols). */
  dequantized: Float32Array;
}

/** Which channels are outliers given per-channel activation magnitudes (e.g. max |x|). */
export function selectOutlierChannels(magnitude: ArrayLike<number>, opts: OutlierOptions): Int32Array {
  const n = magnitude.length;
  if (opts.topK !== undefined) {
    const k = Math.max(0, Math.min(n, Math.floor(opts.topK)));
    const idx = Array.from({ length: n }, (_, j) => j).sort((a, b) => magnitude[b] - magnitude[a] || a - b);
    return Int32Array.from(idx.slice(0, k)).sort();
  }
  const t = opts.threshold ?? 6;
  const out: number[] = [];
  for (let j = 0; j < n; j++) if (magnitude[j] >= t) out.push(j);
  return Int32Array.from(out);
}

export function outlierDecompose(
  weights: ArrayLike<number>, rows: number, cols: number, activationMagnitude: ArrayLike<number>, opts: OutlierOptions = {},
): OutlierDecomposition {
  if (weights.length < rows * cols) throw new RangeError(`outlierDecompose: weights hold ${weights.length} < ${rows}×${cols} values`);
  if (activationMagnitude.length !== cols) {
    throw new RangeError(`outlierDecompose: ${activationMagnitude.length} activation magnitudes for ${cols} input channels`);
  }
  const outlierColumns = selectOutlierChannels(activationMagnitude, opts);
  const isOutlier = new Uint8Array(cols);
  for (const j of outlierColumns) isOutlier[j] = 1;
  const h = f16Lookup();
  const k = outlierColumns.length;
  const fp16Weights = new Float32Array(rows * k);
  const int8Codes = new Int8Array(rows * cols);
  const rowScales = new Float32Array(rows);
  const dequantized = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let amax = 0;
    for (let j = 0; j < cols; j++) if (!isOutlier[j]) amax = Math.max(amax, Math.abs(weights[o + j]));
    const s = amax > 0 ? Math.fround(amax / 127) : 1;
    rowScales[r] = s;
    for (let j = 0; j < cols; j++) {
      if (isOutlier[j]) continue;
      const q = Math.max(-127, Math.min(127, roundHalfEven(weights[o + j] / s)));
      int8Codes[o + j] = q;
      dequantized[o + j] = s * q;
    }
    for (let m = 0; m < k; m++) {
      const v = h[f32ToF16(weights[o + outlierColumns[m]])];
      fp16Weights[r * k + m] = v;
      dequantized[o + outlierColumns[m]] = v;
    }
  }
  return { rows, cols, outlierColumns, fp16Weights, int8Codes, rowScales, dequantized };
}

/**
 * Symmetric int8 fake-quantization of activations, per token (one scale per
 * row of X) or per tensor, skipping `keep` channels (left unchanged) when given.
 */
export function fakeQuantizeActivationsInt8(
  x: ArrayLike<number>, tokens: number, cols: number, granularity: 'token' | 'tensor', keep?: ArrayLike<number>,
): Float32Array {
  const skip = new Uint8Array(cols);
  if (keep) for (let m = 0; m < keep.length; m++) skip[keep[m]] = 1;
  const out = new Float32Array(tokens * cols);
  let tensorMax = 0;
  if (granularity === 'tensor') {
    for (let t = 0; t < tokens; t++) for (let j = 0; j < cols; j++) if (!skip[j]) tensorMax = Math.max(tensorMax, Math.abs(x[t * cols + j]));
  }
  for (let t = 0; t < tokens; t++) {
    const o = t * cols;
    let amax = tensorMax;
    if (granularity === 'token') {
      amax = 0;
      for (let j = 0; j < cols; j++) if (!skip[j]) amax = Math.max(amax, Math.abs(x[o + j]));
    }
    const s = amax > 0 ? Math.fround(amax / 127) : 1;
    for (let j = 0; j < cols; j++) {
      out[o + j] = skip[j] ? x[o + j] : s * Math.max(-127, Math.min(127, roundHalfEven(x[o + j] / s)));
    }
  }
  return out;
}

/**
 * The layer output the decomposition computes: outlier channels in fp16
 * (activations rounded to fp16 too), the rest as int8 activations (per token)
 * times int8 weights (per row). Returns tokens×rows.
 */
export function decomposedMatmul(d: OutlierDecomposition, x: ArrayLike<number>, tokens: number): Float64Array {
  const { rows, cols, outlierColumns } = d;
  const h = f16Lookup();
  const xq = fakeQuantizeActivationsInt8(x, tokens, cols, 'token', outlierColumns);
  for (let t = 0; t < tokens; t++) for (const j of outlierColumns) xq[t * cols + j] = h[f32ToF16(x[t * cols + j])];
  const y = new Float64Array(tokens * rows);
  for (let t = 0; t < tokens; t++) {
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let j = 0; j < cols; j++) s += xq[t * cols + j] * d.dequantized[r * cols + j];
      y[t * rows + r] = s;
    }
  }
  return y;
}

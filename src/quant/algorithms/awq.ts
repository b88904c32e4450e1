/**
 * AWQ (Lin et al., 2023): activation-aware weight quantization. Input
 * channels that see large activations matter more, so scale their weight
 * columns up by s_j before rounding (they get relatively finer steps) and
 * divide the activations by s_j, which the float model absorbs exactly:
 *   X Wᵀ = (X diag(s)⁻¹) (W diag(s))ᵀ.
 * s = s_x^α with s_x the mean |activation| per input channel; α is searched
 * on a grid per layer to minimise ‖X Wᵀ − X (Q(W diag s) diag s⁻¹)ᵀ‖.
 */
import { IntGridConfig, checkGridConfig, rtnQuantize } from './intGrid';
import { gram, outputErrorFromGram } from './linalg';

export interface AwqOptions extends IntGridConfig {
  /** Grid points for α in [0, 1): α = i / gridSize (default 20, as in the paper). */
  gridSize?: number;
  /** Per-input-channel activation magnitudes; default: mean |x| over the calibration batch. */
  activationMagnitude?: ArrayLike<number>;
}

export interface AwqResult {
  /** Chosen exponent. */
  alpha: number;
  /** Per-input-channel factors s (cols): multiply weight column j by s_j. */
  scales: Float32Array;
  /** W·diag(s), rows×cols: what gets quantized and stored. */
  scaledWeights: Float32Array;
  /** 1/s per input channel: fold into the previous op (or multiply the activations) so the float model is unchanged. */
  inputScale: Float32Array;
  /** Q(W·diag s)·diag(s)⁻¹ in the original weight space, rows×cols: the effective quantized weights. */
  dequantized: Float32Array;
  /** ‖ΔW Xᵀ‖² for each α tried (index i ↔ α = i/gridSize); entry 0 is plain round-to-nearest. */
  errors: Float64Array;
  /** Output error at the chosen α and with round-to-nearest (α = 0). */
  error: number;
  rtnError: number;
}

/** Mean |x| per column of a tokens×cols activation matrix. */
export function meanAbsPerChannel(x: ArrayLike<number>, tokens: number, cols: number): Float32Array {
  const m = new Float64Array(cols);
  for (let t = 0; t < tokens; t++) for (let j = 0; j < cols; j++) m[j] += Math.abs(x[t * cols + j]);
  return Float32Array.from(m, (v) => v / Math.max(1, tokens));
}

export function awq(
  weights: ArrayLike<number>, rows: number, cols: number,
  calibration: ArrayLike<number>, tokens: number, opts: AwqOptions,
): AwqResult {
  checkGridConfig(opts, cols, 'awq');
  if (weights.length < rows * cols) throw new RangeError(`awq: weights hold ${weights.length} < ${rows}×${cols} values`);
  if (calibration.length < tokens * cols) throw new RangeError(`awq: calibration batch holds ${calibration.length} < ${tokens}×${cols} values`);
  const n = opts.gridSize ?? 20;
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`awq: gridSize must be a positive integer, got ${n}`);
  const sx = opts.activationMagnitude ?? meanAbsPerChannel(calibration, tokens, cols);
  if (sx.length !== cols) throw new RangeError(`awq: activationMagnitude has ${sx.length} entries, layer has ${cols} input channels`);

  // Every candidate is scored on the same Gram matrix: cols² per row instead of tokens·cols.
  const g = gram(calibration, tokens, cols);
  const errors = new Float64Array(n);
  const s = new Float64Array(cols);
  const ws = new Float32Array(rows * cols);
  const dw = new Float64Array(rows * cols);
  let best = Infinity, bestAlpha = 0;
  for (let i = 0; i < n; i++) {
    const alpha = i / n;
    awqScales(sx, alpha, s);
    const eff = effectiveWeights(weights, rows, cols, s, opts, ws);
    for (let k = 0; k < rows * cols; k++) dw[k] = weights[k] - eff[k];
    const e = outputErrorFromGram(dw, rows, cols, g);
    errors[i] = e;
    if (e < best) { best = e; bestAlpha = alpha; }
  }
  awqScales(sx, bestAlpha, s);
  const scaledWeights = new Float32Array(rows * cols);
  const dequantized = effectiveWeights(weights, rows, cols, s, opts, scaledWeights);
  return {
    alpha: bestAlpha,
    scales: Float32Array.from(s),
    scaledWeights,
    inputScale: Float32Array.from(s, (v) => 1 / v),
    dequantized,
    errors,
    error: best,
    rtnError: errors[0],
  };
}

/** s = s_x^α, normalised so max·min = 1 (keeps the scaled weights' magnitude near the original). */
export function awqScales(sx: ArrayLike<number>, alpha: number, out: Float64Array): Float64Array {
  let lo = Infinity, hi = 0;
  for (let j = 0; j < out.length; j++) {
    // A channel that never fired gets the smallest positive magnitude rather than 0^α.
    const v = Math.pow(Math.max(sx[j], 1e-4), alpha);
    out[j] = v;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const norm = Math.sqrt(lo * hi);
  for (let j = 0; j < out.length; j++) out[j] /= norm;
  return out;
}

/** Writes W·diag(s) into `scaled` and returns Q(W·diag s)·diag(s)⁻¹. */
function effectiveWeights(
  w: ArrayLike<number>, rows: number, cols: number, s: Float64Array, c: IntGridConfig, scaled: Float32Array,
): Float32Array {
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) scaled[r * cols + j] = w[r * cols + j] * s[j];
  const q = rtnQuantize(scaled, rows, cols, c).dequantized;
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) q[r * cols + j] /= s[j];
  return q;
}

/**
 * SmoothQuant (Xiao et al., 2022): for W8A8, activation outlier channels make
 * per-tensor activation scales coarse while weights are easy to quantize.
 * Divide activation channel j by s_j and multiply weight column j by s_j —
 * the float product is unchanged — with
 *   s_j = max|X_j|^α / max|W_:,j|^(1−α)
 * so difficulty migrates from activations to weights by strength α.
 */

export interface SmoothQuantResult {
  /** s per input channel (cols). */
  factors: Float32Array;
  /** 1/s per input channel: fold into the preceding op (LayerNorm γ/β, previous linear's rows). */
  activationScale: Float32Array;
  /** Each weight matrix with column j multiplied by s_j (same order as given). */
  smoothedWeights: Float32Array[];
}

export interface SmoothQuantOptions {
  /** Migration strength α in [0, 1] (default 0.5). */
  alpha?: number;
  /** Lower bound for s and for the magnitudes, to keep dead channels finite (default 1e-5). */
  minScale?: number;
}

/**
 * Per-channel max |x| of tokens×cols activations (what a calibration pass records).
 */
export function maxAbsPerChannel(x: ArrayLike<number>, tokens: number, cols: number): Float32Array {
  const m = new Float32Array(cols);
  for (let t = 0; t < tokens; t++) {
    for (let j = 0; j < cols; j++) {
      const a = Math.abs(x[t * cols + j]);
      if (a > m[j]) m[j] = a;
    }
  }
  return m;
}

/**
 * Smoothing factors for one or more linear layers that read the same
 * activations (e.g. q/k/v): weight magnitude is the max over all of them,
 * since one activation scale has to serve every consumer.
 */
export function smoothQuant(
  activationMax: ArrayLike<number>, layers: { weights: ArrayLike<number>; rows: number }[], opts: SmoothQuantOptions = {},
): SmoothQuantResult {
  const alpha = opts.alpha ?? 0.5;
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`smoothQuant: alpha must be in [0, 1], got ${alpha}`);
  const eps = opts.minScale ?? 1e-5;
  const cols = activationMax.length;
  if (layers.length === 0) throw new RangeError('smoothQuant: no weight matrices given');
  const wmax = new Float64Array(cols);
  for (const { weights, rows } of layers) {
    if (weights.length !== rows * cols) {
      throw new RangeError(`smoothQuant: a weight matrix has ${weights.length} values, expected ${rows}×${cols} (rows × input channels)`);
    }
    for (let r = 0; r < rows; r++) {
      for (let j = 0; j < cols; j++) {
        const a = Math.abs(weights[r * cols + j]);
        if (a > wmax[j]) wmax[j] = a;
      }
    }
  }
  const factors = new Float32Array(cols);
  for (let j = 0; j < cols; j++) {
    const s = Math.pow(Math.max(activationMax[j], eps), alpha) / Math.pow(Math.max(wmax[j], eps), 1 - alpha);
    factors[j] = Math.max(s, eps);
  }
  const smoothedWeights = layers.map(({ weights, rows }) => {
    const out = new Float32Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) out[r * cols + j] = weights[r * cols + j] * factors[j];
    return out;
  });
  return { factors, activationScale: Float32Array.from(factors, (v) => 1 / v), smoothedWeights };
}

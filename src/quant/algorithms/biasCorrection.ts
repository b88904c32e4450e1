/**
 * Bias correction (Nagel et al., 2019, "Data-Free Quantization"): rounding
 * errors in a channel's weights do not average out when the inputs have a
 * non-zero mean (post-ReLU activations always do), so the quantized layer's
 * output is shifted by E[(W − Ŵ) x] = (W − Ŵ) E[x]. Adding that shift to the
 * bias removes the systematic part of the error.
 *
 * Works for linear layers (W rows×cols) and convolutions: pass the weight as
 * outChannels × (inChannels·kernelElements) with the kernel positions of one
 * input channel contiguous (the usual OIHW layout flattened), and per input
 * channel means; every kernel position of a channel sees the same mean, away
 * from padded borders.
 */

export interface BiasCorrectionResult {
  /** Corrected bias, one per output channel. */
  bias: Float32Array;
  /** The correction added: (W − Ŵ) E[x]. */
  delta: Float32Array;
}

export function biasCorrection(
  weights: ArrayLike<number>, quantized: ArrayLike<number>, rows: number, cols: number,
  inputMean: ArrayLike<number>, bias?: ArrayLike<number>, kernelElements = 1,
): BiasCorrectionResult {
  if (!Number.isInteger(kernelElements) || kernelElements < 1) throw new RangeError(`biasCorrection: kernelElements must be a positive integer, got ${kernelElements}`);
  if (inputMean.length * kernelElements !== cols) {
    throw new RangeError(`biasCorrection: ${inputMean.length} input means × ${kernelElements} kernel elements ≠ ${cols} weight columns`);
  }
  if (weights.length < rows * cols || quantized.length < rows * cols) throw new RangeError(`biasCorrection: weights must hold ${rows}×${cols} values`);
  if (bias && bias.length !== rows) throw new RangeError(`biasCorrection: bias has ${bias.length} entries for ${rows} output channels`);
  const delta = new Float32Array(rows);
  const out = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) s += (weights[r * cols + j] - quantized[r * cols + j]) * inputMean[Math.floor(j / kernelElements)];
    delta[r] = s;
    out[r] = (bias ? bias[r] : 0) + s;
  }
  return { bias: out, delta };
}

/** Per-channel mean of activations laid out tokens × channels (NHWC-flattened or a linear layer's input). */
export function channelMeans(x: ArrayLike<number>, tokens: number, channels: number): Float32Array {
  const m = new Float64Array(channels);
  for (let t = 0; t < tokens; t++) for (let c = 0; c < channels; c++) m[c] += x[t * channels + c];
  return Float32Array.from(m, (v) => v / Math.max(1, tokens));
}

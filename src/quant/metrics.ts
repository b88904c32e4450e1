/**
 * Error metrics between a reference tensor and its quantized approximation.
 * All sums are accumulated in float64: a 16M-element float32 sum loses
 * several digits otherwise.
 */

function sameLength(a: ArrayLike<number>, b: ArrayLike<number>, what: string): void {
  if (a.length !== b.length) throw new RangeError(`${what}: lengths differ (${a.length} vs ${b.length})`);
}

export function mse(ref: ArrayLike<number>, approx: ArrayLike<number>): number {
  sameLength(ref, approx, 'mse');
  let s = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = ref[i] - approx[i];
    s += d * d;
  }
  return ref.length ? s / ref.length : 0;
}

/** Signal-to-quantization-noise ratio in dB: 10·log10(Σx² / Σ(x−x̂)²); +Inf when exact. */
export function sqnrDb(ref: ArrayLike<number>, approx: ArrayLike<number>): number {
  sameLength(ref, approx, 'sqnr');
  let sig = 0;
  let noise = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = ref[i] - approx[i];
    sig += ref[i] * ref[i];
    noise += d * d;
  }
  if (noise === 0) return Infinity;
  return 10 * Math.log10(sig / noise);
}

/** Cosine similarity; 1 for two all-zero vectors (identical), 0 when only one is zero. */
export function cosineSimilarity(a: ArrayLike<number>, b: ArrayLike<number>): number {
  sameLength(a, b, 'cosine');
  let ab = 0;
  let aa = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    ab += a[i] * b[i];
    aa += a[i] * a[i];
    bb += b[i] * b[i];
  }
  if (aa === 0 && bb === 0) return 1;
  if (aa === 0 || bb === 0) return 0;
  return ab / Math.sqrt(aa * bb);
}

export function maxAbsError(ref: ArrayLike<number>, approx: ArrayLike<number>): number {
  sameLength(ref, approx, 'max abs error');
  let m = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = Math.abs(ref[i] - approx[i]);
    if (d > m) m = d;
  }
  return m;
}

/** ‖W − Ŵ‖_F / ‖W‖_F (0 when both are zero). */
export function relativeFrobeniusError(ref: ArrayLike<number>, approx: ArrayLike<number>): number {
  sameLength(ref, approx, 'relative Frobenius error');
  let num = 0;
  let den = 0;
  for (let i = 0; i < ref.length; i++) {
    const d = ref[i] - approx[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  if (den === 0) return num === 0 ? 0 : Infinity;
  return Math.sqrt(num / den);
}

export interface LayerShape {
  /** Output features. */
  out: number;
  /** Input features (the reduction axis). */
  in: number;
  /** 'out_in' (PyTorch Linear / safetensors) or 'in_out' (ONNX MatMul B, [K, N]). Default 'out_in'. */
  layout?: 'out_in' | 'in_out';
}

/**
 * Relative layer-output error ‖WX − ŴX‖_F / ‖WX‖_F for calibration
 * activations X given as rows [tokens, in] (each row one token's input).
 * Computes Y = X·Wᵀ and (W−Ŵ) products in float64.
 */
export function layerOutputError(w: ArrayLike<number>, wq: ArrayLike<number>, shape: LayerShape, x: ArrayLike<number>, tokens: number): number {
  const { out, in: K } = shape;
  const inOut = shape.layout === 'in_out';
  if (w.length !== out * K || wq.length !== out * K) throw new RangeError(`layer output error: weights must have ${out}*${K} elements`);
  if (x.length !== tokens * K) throw new RangeError(`layer output error: activations must be [${tokens}, ${K}] (${tokens * K} elements), got ${x.length}`);
  // Rows of W and of D = W − Ŵ in float64, [out, in].
  const W = new Float64Array(out * K);
  const D = new Float64Array(out * K);
  for (let o = 0; o < out; o++) {
    for (let k = 0; k < K; k++) {
      const idx = inOut ? k * out + o : o * K + k;
      W[o * K + k] = w[idx];
      D[o * K + k] = w[idx] - wq[idx];
    }
  }
  const xr = new Float64Array(K);
  let num = 0;
  let den = 0;
  for (let t = 0; t < tokens; t++) {
    for (let k = 0; k < K; k++) xr[k] = x[t * K + k];
    for (let o = 0; o < out; o++) {
      let y = 0;
      let e = 0;
      const base = o * K;
      for (let k = 0; k < K; k++) {
        y += W[base + k] * xr[k];
        e += D[base + k] * xr[k];
      }
      num += e * e;
      den += y * y;
    }
  }
  if (den === 0) return num === 0 ? 0 : Infinity;
  return Math.sqrt(num / den);
}

/**
 * The same ratio from the Gram matrix H = XᵀX ([in, in], symmetric) instead
 * of the activations: ‖DX‖² = Σ_rows d·H·dᵀ. Cheaper when tokens ≫ in, and
 * what GPTQ-style code already has.
 */
export function layerOutputErrorFromGram(w: ArrayLike<number>, wq: ArrayLike<number>, shape: LayerShape, gram: ArrayLike<number>): number {
  const { out, in: K } = shape;
  const inOut = shape.layout === 'in_out';
  if (gram.length !== K * K) throw new RangeError(`layer output error: Gram matrix must be [${K}, ${K}]`);
  if (w.length !== out * K || wq.length !== out * K) throw new RangeError(`layer output error: weights must have ${out}*${K} elements`);
  const wr = new Float64Array(K);
  const dr = new Float64Array(K);
  let num = 0;
  let den = 0;
  for (let o = 0; o < out; o++) {
    for (let k = 0; k < K; k++) {
      const idx = inOut ? k * out + o : o * K + k;
      wr[k] = w[idx];
      dr[k] = w[idx] - wq[idx];
    }
    for (let i = 0; i < K; i++) {
      let hw = 0;
      let hd = 0;
      const row = i * K;
      for (let j = 0; j < K; j++) {
        hw += gram[row + j] * wr[j];
        hd += gram[row + j] * dr[j];
      }
      den += wr[i] * hw;
      num += dr[i] * hd;
    }
  }
  if (den <= 0) return num <= 0 ? 0 : Infinity;
  return Math.sqrt(Math.max(num, 0) / den);
}

/** All weight-space metrics at once (one pass each; cheap next to quantization). */
export function weightErrorReport(ref: ArrayLike<number>, approx: ArrayLike<number>): {
  mse: number; sqnrDb: number; cosine: number; maxAbs: number; relFrobenius: number;
} {
  // One pass for all five (the same float64 sums, in the same order, as the functions above).
  sameLength(ref, approx, 'weight error report');
  let sig = 0, noise = 0, ab = 0, bb = 0, m = 0;
  for (let i = 0; i < ref.length; i++) {
    const x = ref[i], y = approx[i];
    const d = x - y;
    sig += x * x;
    noise += d * d;
    ab += x * y;
    bb += y * y;
    const e = Math.abs(d);
    if (e > m) m = e;
  }
  return {
    mse: ref.length ? noise / ref.length : 0,
    sqnrDb: noise === 0 ? Infinity : 10 * Math.log10(sig / noise),
    cosine: sig === 0 && bb === 0 ? 1 : sig === 0 || bb === 0 ? 0 : ab / Math.sqrt(sig * bb),
    maxAbs: m,
    relFrobenius: sig === 0 ? (noise === 0 ? 0 : Infinity) : Math.sqrt(noise / sig),
  };
}

/**
 * Dense symmetric / triangular linear algebra for the weight-quantization
 * algorithms, in float64 on row-major n×n arrays. Only what GPTQ, AWQ and
 * friends need; sizes are layer widths (up to a few thousand).
 */

/** Thrown when a matrix that must be positive definite is not (after damping). */
export class NotPositiveDefiniteError extends Error {
  constructor(readonly column: number, readonly pivot: number) {
    super(`matrix is not positive definite: pivot ${pivot} at column ${column}; raise the damping`);
    this.name = 'NotPositiveDefiniteError';
  }
}

/**
 * In-place lower Cholesky factor: A = L Lᵀ, L written to the lower triangle,
 * upper triangle zeroed. Row-oriented so the inner dot product runs over
 * contiguous memory.
 */
export function choleskyLower(a: Float64Array, n: number): Float64Array {
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    for (let j = 0; j <= i; j++) {
      const rj = j * n;
      // Four partial sums: a single running sum is bound by floating-point add latency.
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      let k = 0;
      for (; k + 3 < j; k += 4) {
        s0 += a[ri + k] * a[rj + k];
        s1 += a[ri + k + 1] * a[rj + k + 1];
        s2 += a[ri + k + 2] * a[rj + k + 2];
        s3 += a[ri + k + 3] * a[rj + k + 3];
      }
      for (; k < j; k++) s0 += a[ri + k] * a[rj + k];
      const s = a[ri + j] - ((s0 + s1) + (s2 + s3));
      if (i === j) {
        if (!(s > 0)) throw new NotPositiveDefiniteError(i, s);
        a[ri + i] = Math.sqrt(s);
      } else {
        a[ri + j] = s / a[rj + j];
      }
    }
    for (let j = i + 1; j < n; j++) a[ri + j] = 0;
  }
  return a;
}

/** Inverse of a lower-triangular matrix (returns a new lower-triangular array). */
export function invertLower(l: Float64Array, n: number): Float64Array {
  const y = invertLowerTransposed(l, n);
  const inv = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) inv[i * n + j] = y[j * n + i];
  return inv;
}

/**
 * (L⁻¹)ᵀ, upper triangular. Built transposed because then
 * X[i,j] = −(Σ_{j≤k<i} L[i,k]·X[k,j]) / L[i,i] reads row i of L and row j of Xᵀ,
 * both contiguous, so each entry is one cache-friendly dot product.
 */
export function invertLowerTransposed(l: Float64Array, n: number): Float64Array {
  const y = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const ri = i * n;
    const dii = l[ri + i];
    y[i * n + i] = 1 / dii;
    for (let j = 0; j < i; j++) {
      const rj = j * n;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      let k = j;
      for (; k + 3 < i; k += 4) {
        s0 += l[ri + k] * y[rj + k];
        s1 += l[ri + k + 1] * y[rj + k + 1];
        s2 += l[ri + k + 2] * y[rj + k + 2];
        s3 += l[ri + k + 3] * y[rj + k + 3];
      }
      for (; k < i; k++) s0 += l[ri + k] * y[rj + k];
      y[rj + i] = -((s0 + s1) + (s2 + s3)) / dii;
    }
  }
  return y;
}

/**
 * The upper-triangular U with Uᵀ U = A⁻¹ (what GPTQ calls the Cholesky
 * factor of the inverse Hessian), without forming A⁻¹.
 *
 * Why this route: factor the index-reversed matrix, J A J = L Lᵀ, so that
 * A = R Rᵀ with R = J L J upper triangular. Then A⁻¹ = R⁻ᵀ R⁻¹, i.e. U = R⁻¹.
 * That is one Cholesky and one triangular inverse (2n³/3 flops) instead of
 * Cholesky, inverse, product and a second Cholesky.
 */
export function upperCholeskyOfInverse(a: Float64Array, n: number): Float64Array {
  const rev = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    const src = (n - 1 - i) * n;
    for (let j = 0; j < n; j++) rev[i * n + j] = a[src + (n - 1 - j)];
  }
  choleskyLower(rev, n);
  const y = invertLowerTransposed(rev, n); // y = (L⁻¹)ᵀ
  // U = R⁻¹ = J L⁻¹ J, i.e. U[i,j] = L⁻¹[n−1−i, n−1−j] = y[n−1−j, n−1−i].
  const u = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) u[i * n + j] = y[(n - 1 - j) * n + (n - 1 - i)];
  }
  return u;
}

/** Gram matrix XᵀX of a tokens×cols row-major activation matrix, in float64. */
export function gram(x: ArrayLike<number>, tokens: number, cols: number): Float64Array {
  // Transposed copy, so every entry is a contiguous dot product over tokens and the
  // (possibly 128 MiB) result is written once rather than updated per token. Four
  // rows i are done together so each streamed row j serves four dot products.
  const xt = new Float64Array(cols * tokens);
  for (let t = 0; t < tokens; t++) for (let j = 0; j < cols; j++) xt[j * tokens + t] = x[t * cols + j];
  const g = new Float64Array(cols * cols);
  const put = (i: number, j: number, v: number) => { g[i * cols + j] = v; g[j * cols + i] = v; };
  let i = 0;
  for (; i + 3 < cols; i += 4) {
    const o0 = i * tokens, o1 = o0 + tokens, o2 = o1 + tokens, o3 = o2 + tokens;
    for (let j = i; j < cols; j++) {
      const oj = j * tokens;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let t = 0; t < tokens; t++) {
        const v = xt[oj + t];
        s0 += xt[o0 + t] * v;
        s1 += xt[o1 + t] * v;
        s2 += xt[o2 + t] * v;
        s3 += xt[o3 + t] * v;
      }
      put(i, j, s0);
      if (j >= i + 1) put(i + 1, j, s1);
      if (j >= i + 2) put(i + 2, j, s2);
      if (j >= i + 3) put(i + 3, j, s3);
    }
  }
  for (; i < cols; i++) {
    const oi = i * tokens;
    for (let j = i; j < cols; j++) {
      const oj = j * tokens;
      let s = 0;
      for (let t = 0; t < tokens; t++) s += xt[oi + t] * xt[oj + t];
      put(i, j, s);
    }
  }
  return g;
}

/** Y = X Wᵀ for X tokens×cols and W rows×cols (a linear layer's output), float64. */
export function matmulXWt(x: ArrayLike<number>, tokens: number, w: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const y = new Float64Array(tokens * rows);
  for (let t = 0; t < tokens; t++) {
    const xo = t * cols;
    for (let r = 0; r < rows; r++) {
      const wo = r * cols;
      let s = 0;
      for (let j = 0; j < cols; j++) s += x[xo + j] * w[wo + j];
      y[t * rows + r] = s;
    }
  }
  return y;
}

/**
 * ‖ΔW Xᵀ‖²_F for ΔW rows×cols, from the Gram matrix G = XᵀX: Σ_r Δw_r G Δw_rᵀ.
 * Cheaper than forming the outputs when there are more tokens than columns.
 */
export function outputErrorFromGram(dw: ArrayLike<number>, rows: number, cols: number, g: Float64Array): number {
  let total = 0;
  const v = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let j = 0; j < cols; j++) v[j] = dw[o + j];
    let s = 0;
    for (let i = 0; i < cols; i++) {
      const vi = v[i];
      if (vi === 0) continue;
      const gi = i * cols;
      let t = 0;
      for (let j = 0; j < cols; j++) t += g[gi + j] * v[j];
      s += vi * t;
    }
    total += s;
  }
  return total;
}

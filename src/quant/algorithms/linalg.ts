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
 * upper triangle zeroed. Row-oriented so the inner dot products run over
 * contiguous memory.
 *
 * Speed: JavaScript gets no SIMD here, so the limit is loads per multiply-add.
 * Four rows are finished together against two earlier rows at a time (a 4×2
 * register block: 6 loads feed 8 multiply-adds instead of 2 loads per one),
 * which is what makes a 4096-wide factorisation take seconds, not minutes.
 * Every entry is still one sequential sum over k, so blocked and unblocked
 * rows round identically.
 */
export function choleskyLower(a: Float64Array, n: number): Float64Array {
  let i0 = 0;
  for (; i0 + 3 < n; i0 += 4) {
    const r0 = i0 * n, r1 = r0 + n, r2 = r1 + n, r3 = r2 + n;
    // i0 is a multiple of 4, so the columns before it pair up exactly.
    for (let j = 0; j < i0; j += 2) {
      const rj = j * n, rk = rj + n;
      let s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
      for (let k = 0; k < j; k++) {
        const y0 = a[rj + k], y1 = a[rk + k];
        const x0 = a[r0 + k], x1 = a[r1 + k], x2 = a[r2 + k], x3 = a[r3 + k];
        s00 += x0 * y0; s01 += x0 * y1;
        s10 += x1 * y0; s11 += x1 * y1;
        s20 += x2 * y0; s21 += x2 * y1;
        s30 += x3 * y0; s31 += x3 * y1;
      }
      // Column j+1 also needs the k = j term, which uses the entry just finished in column j.
      const d0 = a[rj + j], d1 = a[rk + j + 1], c = a[rk + j];
      let v = (a[r0 + j] - s00) / d0; a[r0 + j] = v; a[r0 + j + 1] = (a[r0 + j + 1] - (s01 + v * c)) / d1;
      v = (a[r1 + j] - s10) / d0; a[r1 + j] = v; a[r1 + j + 1] = (a[r1 + j + 1] - (s11 + v * c)) / d1;
      v = (a[r2 + j] - s20) / d0; a[r2 + j] = v; a[r2 + j + 1] = (a[r2 + j + 1] - (s21 + v * c)) / d1;
      v = (a[r3 + j] - s30) / d0; a[r3 + j] = v; a[r3 + j + 1] = (a[r3 + j + 1] - (s31 + v * c)) / d1;
    }
    for (let i = i0; i < i0 + 4; i++) choleskyRowTail(a, n, i, i0);
  }
  for (; i0 < n; i0++) choleskyRowTail(a, n, i0, 0);
  return a;
}

/** Entries j = from..i of row i (earlier entries of the row already final), then zero the rest of the row. */
function choleskyRowTail(a: Float64Array, n: number, i: number, from: number): void {
  const ri = i * n;
  for (let j = from; j <= i; j++) {
    const rj = j * n;
    let s = 0;
    for (let k = 0; k < j; k++) s += a[ri + k] * a[rj + k];
    const v = a[ri + j] - s;
    if (i === j) {
      if (!(v > 0)) throw new NotPositiveDefiniteError(i, v);
      a[ri + i] = Math.sqrt(v);
    } else {
      a[ri + j] = v / a[rj + j];
    }
  }
  for (let j = i + 1; j < n; j++) a[ri + j] = 0;
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
 * both contiguous, so each entry is one cache-friendly dot product. Entries
 * of one row i are independent, so two rows i, i+1 are done against four
 * rows j at a time (same 4×2 register blocking as choleskyLower; the sums
 * start at the block's first j, where the other rows of Xᵀ hold exact zeros).
 */
export function invertLowerTransposed(l: Float64Array, n: number): Float64Array {
  const y = new Float64Array(n * n);
  let i = 0;
  for (; i + 1 < n; i += 2) {
    const ri = i * n, rn = ri + n;
    const di = l[ri + i], dn = l[rn + i + 1], c = l[rn + i];
    y[ri + i] = 1 / di;
    y[rn + i + 1] = 1 / dn;
    let j = 0;
    for (; j + 3 < i; j += 4) {
      const y0 = j * n, y1 = y0 + n, y2 = y1 + n, y3 = y2 + n;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      for (let k = j; k < i; k++) {
        const a = l[ri + k], b = l[rn + k];
        const t0 = y[y0 + k], t1 = y[y1 + k], t2 = y[y2 + k], t3 = y[y3 + k];
        s00 += a * t0; s01 += a * t1; s02 += a * t2; s03 += a * t3;
        s10 += b * t0; s11 += b * t1; s12 += b * t2; s13 += b * t3;
      }
      // Row i+1 also needs the k = i term, i.e. the entry of row i just computed.
      let v = -s00 / di; y[y0 + i] = v; y[y0 + i + 1] = -(s10 + c * v) / dn;
      v = -s01 / di; y[y1 + i] = v; y[y1 + i + 1] = -(s11 + c * v) / dn;
      v = -s02 / di; y[y2 + i] = v; y[y2 + i + 1] = -(s12 + c * v) / dn;
      v = -s03 / di; y[y3 + i] = v; y[y3 + i + 1] = -(s13 + c * v) / dn;
    }
    for (; j < i; j++) {
      const rj = j * n;
      let s0 = 0, s1 = 0;
      for (let k = j; k < i; k++) { const t = y[rj + k]; s0 += l[ri + k] * t; s1 += l[rn + k] * t; }
      const v = -s0 / di;
      y[rj + i] = v;
      y[rj + i + 1] = -(s1 + c * v) / dn;
    }
    y[ri + i + 1] = -(c * y[ri + i]) / dn;
  }
  if (i < n) {
    const ri = i * n, di = l[ri + i];
    y[ri + i] = 1 / di;
    for (let j = 0; j < i; j++) {
      const rj = j * n;
      let s = 0;
      for (let k = j; k < i; k++) s += l[ri + k] * y[rj + k];
      y[rj + i] = -s / di;
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
  // A transpose: done in 32×32 tiles, since a plain loop reads with an n-element
  // stride and at n = 4096 (128 MiB) misses the cache on every element.
  const u = new Float64Array(n * n);
  const T = 32;
  for (let i0 = 0; i0 < n; i0 += T) {
    const iEnd = Math.min(i0 + T, n);
    for (let j0 = i0; j0 < n; j0 += T) {
      const jEnd = Math.min(j0 + T, n);
      for (let j = j0; j < jEnd; j++) {
        const src = (n - 1 - j) * n + (n - 1);
        for (let i = i0; i < iEnd && i <= j; i++) u[i * n + j] = y[src - i];
      }
    }
  }
  return u;
}

/** Gram matrix XᵀX of a tokens×cols row-major activation matrix, in float64. */
export function gram(x: ArrayLike<number>, tokens: number, cols: number): Float64Array {
  // Transposed copy, so every entry is a contiguous dot product over tokens and the
  // (possibly 128 MiB) result is written once rather than updated per token; built
  // in tiles of 32 tokens so the strided reads of x stay in cache.
  const xt = new Float64Array(cols * tokens);
  for (let t0 = 0; t0 < tokens; t0 += 32) {
    const tEnd = Math.min(t0 + 32, tokens);
    for (let j = 0; j < cols; j++) for (let t = t0; t < tEnd; t++) xt[j * tokens + t] = x[t * cols + j];
  }
  const g = new Float64Array(cols * cols);
  const put = (i: number, j: number, v: number) => { g[i * cols + j] = v; g[j * cols + i] = v; };
  // 4 rows i against 2 rows j at a time: 6 loads per 8 multiply-adds. Each entry
  // is one sequential sum over tokens, whichever path computes it.
  let i = 0;
  for (; i + 3 < cols; i += 4) {
    const o0 = i * tokens, o1 = o0 + tokens, o2 = o1 + tokens, o3 = o2 + tokens;
    let j = i;
    for (; j + 1 < cols; j += 2) {
      const oa = j * tokens, ob = oa + tokens;
      let s0a = 0, s0b = 0, s1a = 0, s1b = 0, s2a = 0, s2b = 0, s3a = 0, s3b = 0;
      for (let t = 0; t < tokens; t++) {
        const a = xt[oa + t], b = xt[ob + t];
        const x0 = xt[o0 + t], x1 = xt[o1 + t], x2 = xt[o2 + t], x3 = xt[o3 + t];
        s0a += x0 * a; s0b += x0 * b;
        s1a += x1 * a; s1b += x1 * b;
        s2a += x2 * a; s2b += x2 * b;
        s3a += x3 * a; s3b += x3 * b;
      }
      // Entries left of the diagonal were computed only to keep the block regular; the upper triangle is put once.
      put(i, j, s0a); put(i, j + 1, s0b);
      if (j >= i + 1) put(i + 1, j, s1a);
      if (j + 1 >= i + 1) put(i + 1, j + 1, s1b);
      if (j >= i + 2) put(i + 2, j, s2a);
      if (j + 1 >= i + 2) put(i + 2, j + 1, s2b);
      if (j >= i + 3) put(i + 3, j, s3a);
      if (j + 1 >= i + 3) put(i + 3, j + 1, s3b);
    }
    for (; j < cols; j++) {
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

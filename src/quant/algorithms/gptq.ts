/**
 * GPTQ (Frantar et al., 2022): quantize a linear layer's weights one input
 * column at a time and push each column's rounding error onto the columns not
 * yet quantized, weighted by the inverse Hessian of the layer-output error.
 * With H = XᵀX from calibration activations, this minimises ‖WXᵀ − ŴXᵀ‖
 * greedily, which round-to-nearest does not look at.
 *
 * Layout: W is rows×cols row-major (rows = output features, cols = input
 * features, the reduction axis), H is cols×cols.
 */
import { IntGridConfig, GridQuantized, checkGridConfig, encode, gridParams, maxCode } from './intGrid';
import { NotPositiveDefiniteError, gram, upperCholeskyOfInverse } from './linalg';

export interface GptqOptions extends IntGridConfig {
  /** Damping added to H's diagonal as a fraction of its mean diagonal (default 0.01). */
  percDamp?: number;
  /** Columns per lazy batch update (default 128). */
  blockSize?: number;
  /** Quantize columns in order of decreasing H diagonal, undoing the order at the end. */
  actOrder?: boolean;
  /**
   * With groups: compute every group's scale up front from the original
   * weights in natural column order, so with act-order groups stay contiguous
   * column ranges (what fast kernels expect). Without it, a group's scale is
   * taken from the error-corrected weights when its first column comes up,
   * and with act-order groups follow the quantization order.
   */
  staticGroups?: boolean;
}

export interface GptqResult extends GridQuantized {
  /** Quantization order (position → original column) when actOrder was used. */
  permutation?: Int32Array;
  /** Σ (w − q)² / (2·[H⁻¹]_jj²): GPTQ's own estimate of the added output error, in units of H. */
  loss: number;
  /** The same per output row; loss is their sum in row order. */
  rowLoss: Float64Array;
  /** Columns whose H diagonal was zero (never active); their weights are quantized as 0. */
  deadColumns: number;
  /** Damping actually added to the diagonal. */
  damp: number;
}

/** H = XᵀX for GPTQ from tokens×cols calibration activations (the scale of H does not change the result). */
export function gptqHessian(x: ArrayLike<number>, tokens: number, cols: number): Float64Array {
  if (x.length < tokens * cols) throw new RangeError(`gptqHessian: activations hold ${x.length} < ${tokens}×${cols} values`);
  return gram(x, tokens, cols);
}

/**
 * Everything GPTQ derives from the Hessian alone: the quantization order and
 * the upper Cholesky factor of the damped inverse Hessian. Rows of W are
 * independent given this, so a worker pool can compute it once and hand row
 * ranges to gptqRows.
 */
export interface GptqPlan {
  cols: number;
  /** Row-major cols×cols, in quantization order. */
  hinvChol: Float64Array;
  permutation?: Int32Array;
  /** Columns with a zero H diagonal; their weights are treated as 0. */
  dead: Uint8Array;
  deadColumns: number;
  damp: number;
}

export function gptqPlan(hessian: ArrayLike<number>, cols: number, opts: Pick<GptqOptions, 'percDamp' | 'actOrder'> = {}): GptqPlan {
  if (hessian.length < cols * cols) throw new RangeError(`gptq: Hessian holds ${hessian.length} < ${cols}×${cols} values`);
  const percDamp = opts.percDamp ?? 0.01;
  if (!(percDamp >= 0)) throw new RangeError(`gptq: percDamp must be >= 0, got ${percDamp}`);
  const H = new Float64Array(cols * cols);
  for (let i = 0; i < cols * cols; i++) H[i] = hessian[i];
  const dead = new Uint8Array(cols);
  let deadColumns = 0;
  for (let j = 0; j < cols; j++) {
    if (H[j * cols + j] === 0) {
      dead[j] = 1;
      deadColumns++;
      H[j * cols + j] = 1;
    }
  }
  let perm: Int32Array | undefined;
  if (opts.actOrder) {
    perm = Int32Array.from({ length: cols }, (_, j) => j);
    const diag = Float64Array.from({ length: cols }, (_, j) => H[j * cols + j]);
    // Stable descending order, so ties keep natural order and results are reproducible.
    perm.sort((a, b) => diag[b] - diag[a] || a - b);
    const Hp = new Float64Array(cols * cols);
    for (let i = 0; i < cols; i++) {
      const src = perm[i] * cols;
      for (let j = 0; j < cols; j++) Hp[i * cols + j] = H[src + perm[j]];
    }
    H.set(Hp);
  }
  let meanDiag = 0;
  for (let j = 0; j < cols; j++) meanDiag += H[j * cols + j];
  meanDiag /= cols;
  const damp = percDamp * meanDiag;
  for (let j = 0; j < cols; j++) H[j * cols + j] += damp;
  try {
    return { cols, hinvChol: upperCholeskyOfInverse(H, cols), permutation: perm, dead, deadColumns, damp };
  } catch (e) {
    if (e instanceof NotPositiveDefiniteError) {
      throw new RangeError(`gptq: Hessian is not positive definite even with damping ${percDamp} (column ${e.column}); raise percDamp`);
    }
    throw e;
  }
}

export function gptq(
  weights: ArrayLike<number>, rows: number, cols: number, hessian: ArrayLike<number>, opts: GptqOptions,
): GptqResult {
  checkGridConfig(opts, cols, 'gptq');
  if (weights.length < rows * cols) throw new RangeError(`gptq: weights hold ${weights.length} < ${rows}×${cols} values`);
  if (hessian.length < cols * cols) throw new RangeError(`gptq: Hessian holds ${hessian.length} < ${cols}×${cols} values`);
  return gptqRows(gptqPlan(hessian, cols, opts), weights, rows, opts);
}

/**
 * GPTQ on `rows` rows of W (rows×plan.cols, row-major) with a shared plan.
 * `weights` may be a row range of a larger matrix; the result covers those rows.
 */
export function gptqRows(
  plan: GptqPlan, weights: ArrayLike<number>, rows: number, opts: GptqOptions,
  onProgress?: (columnsDone: number, cols: number) => void,
): GptqResult {
  const cols = plan.cols;
  checkGridConfig(opts, cols, 'gptq');
  if (weights.length < rows * cols) throw new RangeError(`gptq: weights hold ${weights.length} < ${rows}×${cols} values`);
  const bs = Math.max(1, Math.floor(opts.blockSize ?? 128));
  const gs = opts.groupSize || 0;
  const qmax = maxCode(opts.bits);
  const perm = plan.permutation;
  const U = plan.hinvChol;

  // Working copy in float64: the error feedback accumulates over thousands of columns.
  const W = new Float64Array(rows * cols);
  for (let i = 0; i < rows * cols; i++) W[i] = weights[i];
  for (let j = 0; j < cols; j++) {
    if (plan.dead[j]) for (let r = 0; r < rows; r++) W[r * cols + j] = 0;
  }

  const nGroups = gs ? cols / gs : 1;
  const scales = new Float32Array(rows * nGroups);
  const zeros = new Uint8Array(rows * nGroups);
  const p = { scale: 1, zero: 0 };

  // Scales fixed before any error feedback: per-row (no groups) or static groups.
  const staticParams = !gs || !!opts.staticGroups;
  if (staticParams) {
    const g = gs || cols;
    for (let r = 0; r < rows; r++) {
      for (let gi = 0; gi < nGroups; gi++) {
        gridParams(opts, W, r * cols + gi * g, g, 1, p);
        scales[r * nGroups + gi] = p.scale;
        zeros[r * nGroups + gi] = p.zero;
      }
    }
  }
  if (perm) permuteColumns(W, rows, cols, perm);

  // groupOf[position] for the quantization order.
  const groupOf = new Int32Array(cols);
  for (let pos = 0; pos < cols; pos++) {
    const col = perm ? perm[pos] : pos;
    groupOf[pos] = !gs ? 0 : staticParams ? Math.floor(col / gs) : Math.floor(pos / gs);
  }

  const codesP = new Uint8Array(rows * cols); // in quantization order
  const W1 = new Float64Array(rows * bs);
  const E1 = new Float64Array(rows * bs);
  const Ut = new Float64Array(Math.max(0, cols - bs) * bs);
  // Per row, so a result split over workers sums to the same bits as one run.
  const rowLoss = new Float64Array(rows);
  const mixed = gs && !staticParams ? new Float64Array(gs) : undefined;
  for (let i1 = 0; i1 < cols; i1 += bs) {
    const i2 = Math.min(i1 + bs, cols);
    const count = i2 - i1;
    for (let r = 0; r < rows; r++) {
      for (let k = 0; k < count; k++) W1[r * bs + k] = W[r * cols + i1 + k];
    }
    for (let i = 0; i < count; i++) {
      const pos = i1 + i;
      const gi = groupOf[pos];
      if (gs && !staticParams && pos % gs === 0) {
        // Group scale from the current (already error-corrected) weights of this group.
        for (let r = 0; r < rows; r++) {
          groupParamsFromMixed(opts, W1, W, r, bs, cols, i1, i2, pos, Math.min(pos + gs, cols), mixed!, p);
          scales[r * nGroups + gi] = p.scale;
          zeros[r * nGroups + gi] = p.zero;
        }
      }
      const d = U[pos * cols + pos];
      const urow = pos * cols;
      for (let r = 0; r < rows; r++) {
        const s = scales[r * nGroups + gi], z = zeros[r * nGroups + gi];
        const w = W1[r * bs + i];
        const u = encode(w, s, z, qmax);
        codesP[r * cols + pos] = u;
        const q = Math.fround(s * (u - z));
        const err = (w - q) / d;
        rowLoss[r] += (w - q) * (w - q) / (d * d) / 2;
        E1[r * bs + i] = err;
        const wo = r * bs;
        for (let k = i + 1; k < count; k++) W1[wo + k] -= err * U[urow + i1 + k];
      }
    }
    if (i2 < cols) lazyBlockUpdate(W, rows, cols, E1, bs, count, U, i1, i2, Ut);
    onProgress?.(i2, cols);
  }

  // Back to the original column order.
  const codes = new Uint8Array(rows * cols);
  const groupIndex = new Int32Array(cols);
  for (let pos = 0; pos < cols; pos++) {
    const col = perm ? perm[pos] : pos;
    groupIndex[col] = groupOf[pos];
    for (let r = 0; r < rows; r++) codes[r * cols + col] = codesP[r * cols + pos];
  }
  const dequantized = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const gi = groupIndex[j];
      dequantized[r * cols + j] = scales[r * nGroups + gi] * (codes[r * cols + j] - zeros[r * nGroups + gi]);
    }
  }
  return {
    rows, cols, codes, scales, zeroPoints: zeros, groupIndex, nGroups, dequantized,
    permutation: perm, loss: sumInOrder(rowLoss), rowLoss, deadColumns: plan.deadColumns, damp: plan.damp,
  };
}

function permuteColumns(W: Float64Array, rows: number, cols: number, perm: Int32Array): void {
  const tmp = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    for (let j = 0; j < cols; j++) tmp[j] = W[o + perm[j]];
    W.set(tmp, o);
  }
}

/** Grid parameters over positions [from, to) of row r, reading the in-block copy where it is current. */
function groupParamsFromMixed(
  c: IntGridConfig, W1: Float64Array, W: Float64Array, r: number, bs: number, cols: number,
  i1: number, i2: number, from: number, to: number, tmp: Float64Array, out: { scale: number; zero: number },
): void {
  const n = to - from;
  if (to <= i2) { gridParams(c, W1, r * bs + (from - i1), n, 1, out); return; }
  for (let k = 0; k < n; k++) {
    const pos = from + k;
    tmp[k] = pos < i2 ? W1[r * bs + pos - i1] : W[r * cols + pos];
  }
  gridParams(c, tmp, 0, n, 1, out);
}

/** Left-to-right sum, so the total of concatenated row ranges does not depend on how rows were split. */
export function sumInOrder(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i];
  return s;
}

/**
 * Lazy batch update W[:, i2:] −= E1 · U[i1:i2, i2:]: the whole block's error at
 * once, the O(rows·cols²) bulk of GPTQ. With the U block transposed into Ut,
 * every later weight is a dot product over the block's `count` columns,
 * written once. Four rows against two weights at a time (6 loads per 8
 * multiply-adds) because the JIT does not vectorise and loads are the limit.
 * Each dot product is one sequential sum over k whichever path computes it, so
 * the result of a row does not depend on which other rows share the call;
 * that is what lets a worker pool split rows and still match bit for bit.
 */
function lazyBlockUpdate(
  W: Float64Array, rows: number, cols: number, E1: Float64Array, bs: number, count: number,
  U: Float64Array, i1: number, i2: number, Ut: Float64Array,
): void {
  const rest = cols - i2;
  // Transposed in tiles of 16 later columns: reading U down a column would miss the cache per element.
  for (let j0 = 0; j0 < rest; j0 += 16) {
    const jEnd = Math.min(j0 + 16, rest);
    for (let k = 0; k < count; k++) {
      const src = (i1 + k) * cols + i2;
      for (let j = j0; j < jEnd; j++) Ut[j * bs + k] = U[src + j];
    }
  }
  // Later columns in tiles of 64, so a tile of Ut (64 KiB at bs = 128) stays in L2
  // across all rows instead of the whole of Ut (up to 4 MiB) being re-read per 4 rows.
  for (let jt = 0; jt < rest; jt += 64) {
    const jEnd = Math.min(jt + 64, rest);
    let r = 0;
    for (; r + 3 < rows; r += 4) {
      const e0 = r * bs, e1 = e0 + bs, e2 = e1 + bs, e3 = e2 + bs;
      const w0 = r * cols + i2, w1 = w0 + cols, w2 = w1 + cols, w3 = w2 + cols;
      let j = jt;
      for (; j + 1 < jEnd; j += 2) {
        const ua = j * bs, ub = ua + bs;
        let s0a = 0, s0b = 0, s1a = 0, s1b = 0, s2a = 0, s2b = 0, s3a = 0, s3b = 0;
        for (let k = 0; k < count; k++) {
          const a = Ut[ua + k], b = Ut[ub + k];
          const x0 = E1[e0 + k], x1 = E1[e1 + k], x2 = E1[e2 + k], x3 = E1[e3 + k];
          s0a += x0 * a; s0b += x0 * b;
          s1a += x1 * a; s1b += x1 * b;
          s2a += x2 * a; s2b += x2 * b;
          s3a += x3 * a; s3b += x3 * b;
        }
        W[w0 + j] -= s0a; W[w0 + j + 1] -= s0b;
        W[w1 + j] -= s1a; W[w1 + j + 1] -= s1b;
        W[w2 + j] -= s2a; W[w2 + j + 1] -= s2b;
        W[w3 + j] -= s3a; W[w3 + j + 1] -= s3b;
      }
      for (; j < jEnd; j++) {
        const ua = j * bs;
        let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (let k = 0; k < count; k++) {
          const a = Ut[ua + k];
          s0 += E1[e0 + k] * a; s1 += E1[e1 + k] * a; s2 += E1[e2 + k] * a; s3 += E1[e3 + k] * a;
        }
        W[w0 + j] -= s0; W[w1 + j] -= s1; W[w2 + j] -= s2; W[w3 + j] -= s3;
      }
    }
    for (; r < rows; r++) {
      const e0 = r * bs, w0 = r * cols + i2;
      for (let j = jt; j < jEnd; j++) {
        const ua = j * bs;
        let s = 0;
        for (let k = 0; k < count; k++) s += E1[e0 + k] * Ut[ua + k];
        W[w0 + j] -= s;
      }
    }
  }
}

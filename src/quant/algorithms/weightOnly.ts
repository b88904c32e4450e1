/**
 * One MatMul/Gemm weight quantized by GPTQ or AWQ onto the integer grid, the
 * way the onnx-int4 conversion writes it (MatMulNBits, and for AWQ a Mul of
 * the activations by 1/s) and the way experiments feed it to the whole-model
 * evaluation: both call these functions, so an experiment's GPTQ weights are
 * the conversion's, value for value.
 *
 * Layout: a MatMul weight B is stored [K, N] (K the reduction axis), a Gemm
 * weight with transB=1 [N, K]. The algorithms see it as N×Kp rows (Kp = K
 * padded to whole groups with zeros).
 */
import { gptqHessian, gptqPlan, gptqRows } from './gptq';
import { awq } from './awq';
import { GridQuantized, IntGridConfig, checkGridConfig, rtnQuantize } from './intGrid';

export type CalibratedAlgo = 'gptq' | 'awq';

/** The inputs a weight's consumers saw on the calibration data, tokens×K. */
export interface RecordedInput { x: Float32Array; tokens: number }

export interface CalibratedOptions {
  /** GPTQ: quantize columns by decreasing activation energy. */
  actOrder?: boolean;
  /** GPTQ: group scales from the original weights in natural order (default true, as the conversion writes them: no g_idx). */
  staticGroups?: boolean;
  /** GPTQ: columns done (of K); polled between blocks, so it may throw to cancel. */
  onProgress?(done: number, total: number): void;
}

export interface CalibratedWeight {
  q: GridQuantized;
  /** AWQ: 1/s per input channel, multiplied into the activations before the MatMul. */
  inputScale?: Float32Array;
  /** What was applied, as the conversion's report names it ("gptq", "gptq act-order", "awq alpha 0.35"). */
  used: string;
}

/** The weight as the grid's rows×cols = N×Kp (Kp = K padded to whole blocks with zeros). */
export function weightNK(wf: Float32Array, K: number, N: number, Kp: number, transposed: boolean): Float32Array {
  const out = new Float32Array(N * Kp);
  if (transposed) {
    for (let n = 0; n < N; n++) out.set(wf.subarray(n * K, n * K + K), n * Kp);
    return out;
  }
  const T = 32;
  for (let k0 = 0; k0 < K; k0 += T) {
    const k1 = Math.min(k0 + T, K);
    for (let n0 = 0; n0 < N; n0 += T) {
      const n1 = Math.min(n0 + T, N);
      for (let k = k0; k < k1; k++) for (let n = n0; n < n1; n++) out[n * Kp + k] = wf[k * N + n];
    }
  }
  return out;
}

/** Why GPTQ / AWQ cannot take this weight (the conversion then rounds it to nearest), or undefined when they can. */
export function calibratedSkipReason(input: RecordedInput | undefined, K: number, blockSize: number): string | undefined {
  if (!input) return 'no calibration activations reach this node (inside a subgraph)';
  if (K % blockSize !== 0) return `K=${K} is not a multiple of the block size`;
  return undefined;
}

/** GPTQ or AWQ of one weight given as N×K rows (`wt`, K a whole number of groups), on the grid `cfg`. */
export function quantizeCalibrated(wt: Float32Array, N: number, K: number, algo: CalibratedAlgo, input: RecordedInput, cfg: IntGridConfig, opts: CalibratedOptions = {}): CalibratedWeight {
  if (algo === 'gptq') {
    checkGridConfig(cfg, K, 'gptq');
    const staticGroups = opts.staticGroups ?? true;
    const o = { ...cfg, actOrder: opts.actOrder, staticGroups };
    // gptq() is gptqRows over gptqPlan; called apart so progress (and a cancel) can come back per block of columns.
    const q = gptqRows(gptqPlan(gptqHessian(input.x, input.tokens, K), K, o), wt, N, o, opts.onProgress);
    return { q, used: opts.actOrder ? `gptq act-order${staticGroups ? '' : ' g_idx'}` : 'gptq' };
  }
  const r = awq(wt, N, K, input.x, input.tokens, cfg);
  return { q: rtnQuantize(r.scaledWeights, N, K, cfg), inputScale: r.inputScale, used: `awq alpha ${r.alpha}` };
}

/** The grid's dequantized weight as [K, N] (padding dropped): what MatMulNBits decodes. */
export function dequantizedKN(q: GridQuantized, K: number, N: number, Kp: number): Float32Array {
  const pred = new Float32Array(K * N);
  for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) pred[k * N + n] = q.dequantized[n * Kp + k];
  return pred;
}

/** The weight the quantized model multiplies by, [K, N]: the decoded weight, times 1/s per input channel for AWQ (float32 products). */
export function effectiveKN(pred: Float32Array, N: number, inputScale: Float32Array | undefined): Float32Array {
  return inputScale ? pred.map((v, i) => v * inputScale[Math.floor(i / N)]) : pred;
}

/**
 * A stored weight (its own layout) under GPTQ or AWQ: the effective weight in
 * that same layout, ready to replace the float one in a session.
 */
export function calibratedWeight(
  wf: Float32Array, shape: { K: number; N: number; transposed: boolean }, algo: CalibratedAlgo, input: RecordedInput, cfg: IntGridConfig, opts: CalibratedOptions = {},
): { weight: Float32Array; used: string } {
  const { K, N, transposed } = shape;
  const r = quantizeCalibrated(weightNK(wf, K, N, K, transposed), N, K, algo, input, cfg, opts);
  const eff = effectiveKN(dequantizedKN(r.q, K, N, K), N, r.inputScale);
  return { weight: transposed ? transpose(eff, K, N) : eff, used: r.used };
}

/** A rows×cols row-major matrix as cols×rows. */
export function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = a[r * cols + c];
  return out;
}

/**
 * GPTQ over a worker pool. Everything that depends on the Hessian alone (the
 * damped inverse's Cholesky factor, the act-order permutation) is computed
 * once here; rows of W are then independent, so each worker quantizes a
 * contiguous row range. The factor (cols² float64, 128 MiB at 4096) goes to
 * the workers through one SharedArrayBuffer instead of a copy per worker.
 *
 * The result equals gptq() bit for bit: a row's arithmetic does not depend on
 * which rows share its call (see lazyBlockUpdate), weights keep their float
 * type on the way to the worker, and the loss is summed per row in row order.
 */
import { CancelledError, WorkerPool } from '../jobs/pool';
import { GptqOptions, GptqPlan, GptqResult, gptqPlan, sumInOrder } from '../quant/algorithms/gptq';
import { checkGridConfig } from '../quant/algorithms/intGrid';

export interface GptqParallelRun {
  pool: WorkerPool;
  signal?: AbortSignal;
  /** Weights quantized so far over all workers (done, total = rows·cols). */
  onProgress?(done: number, total: number): void;
  /** Called when the plan (the serial part, on this thread) is ready and the rows go to the workers. */
  onPlanned?(): void;
}

export async function gptqParallel(
  weights: ArrayLike<number>, rows: number, cols: number, hessian: ArrayLike<number>, opts: GptqOptions, run: GptqParallelRun,
): Promise<GptqResult> {
  checkGridConfig(opts, cols, 'gptq');
  if (!(Number.isSafeInteger(rows) && rows >= 1 && Number.isSafeInteger(cols) && cols >= 1)) {
    throw new RangeError(`gptq: rows and cols must be positive integers, got ${rows}×${cols}`);
  }
  if (weights.length < rows * cols) throw new RangeError(`gptq: weights hold ${weights.length} < ${rows}×${cols} values`);
  if (hessian.length < cols * cols) throw new RangeError(`gptq: Hessian holds ${hessian.length} < ${cols}×${cols} values`);
  if (run.signal?.aborted) throw new CancelledError('gptq');

  const plan = sharedPlan(gptqPlan(hessian, cols, opts));
  run.onPlanned?.();
  const parts = Math.max(1, Math.min(run.pool.size, rows));
  const bounds = Array.from({ length: parts + 1 }, (_, p) => Math.floor((p * rows) / parts));

  // One failed part cancels the others rather than leaving them running.
  const inner = new AbortController();
  const onOuterAbort = () => inner.abort();
  run.signal?.addEventListener('abort', onOuterAbort, { once: true });
  const done = new Array<number>(parts).fill(0);
  const total = rows * cols;
  try {
    const results = await Promise.all(bounds.slice(0, parts).map((a, p) => {
      const b = bounds[p + 1];
      const w = rowSlice(weights, a * cols, b * cols);
      return run.pool.run(
        { kind: 'gptqRows', plan, weights: w, rows: b - a, options: opts },
        {
          signal: inner.signal,
          transfer: [w.buffer as ArrayBuffer],
          onProgress: run.onProgress && ((d) => {
            done[p] = d;
            run.onProgress!(done.reduce((s, x) => s + x, 0), total);
          }),
        },
      ).catch((e: unknown) => { inner.abort(); throw e; });
    }));
    return merge(results, rows, cols);
  } finally {
    run.signal?.removeEventListener('abort', onOuterAbort);
  }
}

/** The plan with its big factor moved into shared memory (structured clone then shares, not copies, it). */
function sharedPlan(plan: GptqPlan): GptqPlan {
  const buf = new SharedArrayBuffer(plan.hinvChol.byteLength);
  const hinvChol = new Float64Array(buf);
  hinvChol.set(plan.hinvChol);
  return { ...plan, hinvChol: hinvChol as unknown as Float64Array };
}

/** A copy of weights[from, to) in its own buffer (to transfer), keeping float64 input exact. */
function rowSlice(weights: ArrayLike<number>, from: number, to: number): Float32Array | Float64Array {
  if (weights instanceof Float32Array) return weights.slice(from, to);
  const out = new Float64Array(to - from);
  for (let i = from; i < to; i++) out[i - from] = weights[i];
  return out;
}

function merge(parts: GptqResult[], rows: number, cols: number): GptqResult {
  const first = parts[0];
  const nGroups = first.nGroups;
  const codes = new Uint8Array(rows * cols);
  const dequantized = new Float32Array(rows * cols);
  const scales = new Float32Array(rows * nGroups);
  const zeroPoints = new Uint8Array(rows * nGroups);
  const rowLoss = new Float64Array(rows);
  let r = 0;
  for (const p of parts) {
    codes.set(p.codes, r * cols);
    dequantized.set(p.dequantized, r * cols);
    scales.set(p.scales, r * nGroups);
    zeroPoints.set(p.zeroPoints, r * nGroups);
    rowLoss.set(p.rowLoss, r);
    r += p.rows;
  }
  if (r !== rows) throw new Error(`gptq: workers returned ${r} rows, expected ${rows}`);
  return {
    rows, cols, codes, scales, zeroPoints, groupIndex: first.groupIndex, nGroups, dequantized,
    permutation: first.permutation, loss: sumInOrder(rowLoss), rowLoss, deadColumns: first.deadColumns, damp: first.damp,
  };
}

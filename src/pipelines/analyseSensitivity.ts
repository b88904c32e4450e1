/**
 * Weight-space sensitivity of every weight matrix of a model, one job per
 * tensor through the pool (each worker reads its tensor, or a sample of it).
 */
import type { ModelFile, TensorInfo } from '../formats/types';
import type { SensitivityOptions, TensorSensitivity } from '../analysis/sensitivity';
import { isAnalysable } from '../analysis/tensorSource';
import { assertSourceUnchanged } from '../formats/lazyModelFile';
import { JobFailedError, type WorkerPool } from '../jobs/pool';
import { eachTensorJob } from './tensorJobs';
import { ENGINE_VERSION } from './analyseModel';

export interface ModelSensitivity {
  engineVersion: number;
  file: string;
  options: SensitivityOptions;
  tensors: { name: string; dtype: string; shape: number[]; sensitivity: TensorSensitivity }[];
  skipped: { name: string; dtype: string; reason: string }[];
  failed: { name: string; error: string }[];
  seconds: number;
}

/**
 * Weight-space sensitivity of every weight matrix (rank ≥ 2 float tensors by
 * default; 1-D norms and biases are rarely quantized) through the pool.
 */
export async function analyseSensitivity(model: ModelFile, opts: {
  pool: WorkerPool; options?: SensitivityOptions; signal?: AbortSignal;
  filter?(t: TensorInfo): boolean;
  onTensor?(name: string, s: TensorSensitivity, done: number, total: number): void;
}): Promise<ModelSensitivity> {
  const t0 = Date.now();
  const todo: TensorInfo[] = [];
  const skipped: ModelSensitivity['skipped'] = [];
  for (const t of model.tensors) {
    const wanted = opts.filter ? opts.filter(t) : t.shape.length >= 2;
    if (!wanted) continue;
    if (isAnalysable(t)) todo.push(t); else skipped.push({ name: t.name, dtype: t.dtype, reason: 'not a floating-point tensor' });
  }
  const results = new Map<string, TensorSensitivity>();
  const failed: ModelSensitivity['failed'] = [];
  let done = 0;
  await eachTensorJob(`sensitivity of ${model.path}`, todo, opts.signal,
    (t, signal) => opts.pool.run({ kind: 'sensitivity', source: { kind: 'file', path: model.path, tensor: t.name }, options: opts.options ?? {} }, { signal }),
    (t, s) => {
      results.set(t.name, s);
      opts.onTensor?.(t.name, s, ++done, todo.length);
    },
    (t, error, cause) => {
      // Masks and tables holding ±Inf are not weights: listed as skipped, not as failures (a NaN still fails).
      const name = cause instanceof JobFailedError ? cause.remoteName : cause instanceof Error ? cause.name : '';
      if (name === 'NonFiniteTensorError') skipped.push({ name: t.name, dtype: t.dtype, reason: `holds ±Inf (${error}): not a weight a quantizer converts` });
      else failed.push({ name: t.name, error });
      done++;
    });
  assertSourceUnchanged(model);
  return {
    engineVersion: ENGINE_VERSION, file: model.path, options: opts.options ?? {},
    tensors: todo.filter((t) => results.has(t.name)).map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], sensitivity: results.get(t.name)! })),
    skipped, failed, seconds: (Date.now() - t0) / 1000,
  };
}

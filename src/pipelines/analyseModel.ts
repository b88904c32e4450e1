/**
 * Statistics for every weight tensor of a model, computed in a worker pool.
 * Each worker opens the model by path and streams its tensor in bounded
 * chunks, so memory stays near workers × chunk whatever the model's size.
 * Tensors above `splitElements` are cut into ranges analysed in parallel and
 * merged exactly (pass partials are mergeable, see stats.ts).
 */
import type { ModelFile, TensorInfo } from '../formats/types';
import type { WorkerPool } from '../jobs/pool';
import { eachTensorJob } from './tensorJobs';
import { CodesPartial, Pass1, Pass2, StatsOptions, TensorStats, channelLayout, finalize, finalizeCodes, mergeCodes, mergePass1, mergePass2, pass2Params, resolveOptions } from '../analysis/weightStats';
import { isAnalysable } from '../analysis/tensorSource';
import { assertSourceUnchanged } from '../formats/lazyModelFile';
import type { FileTensorRef, Range } from '../jobs/protocol';

/** Bump when any statistic's definition or computation changes: cached results are then recomputed. */
export const ENGINE_VERSION = 4;

export interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  layer: { opType?: string; role?: string; block?: number; layerName?: string; outputChannelAxis?: number };
  stats: TensorStats;
}

export interface ModelStats {
  engineVersion: number;
  file: string;
  format: string;
  options: StatsOptions;
  /** In the model's tensor order. */
  tensors: TensorEntry[];
  skipped: { name: string; dtype: string; reason: string }[];
  /** Tensors whose analysis failed (unreadable data, a crashed worker); the others are still reported. */
  failed: { name: string; error: string }[];
  seconds: number;
}

export interface AnalyseProgress {
  tensorsDone: number;
  tensorsTotal: number;
  /** Elements × passes processed so far, and in total (an estimate: passes may be skipped). */
  workDone: number;
  workTotal: number;
}

export interface AnalyseModelOptions {
  pool: WorkerPool;
  stats?: StatsOptions;
  signal?: AbortSignal;
  /** Called as each tensor finishes (completion order). */
  onTensor?(entry: TensorEntry, done: number, total: number): void;
  onProgress?(p: AnalyseProgress): void;
  /**
   * Tensors with more elements than this are split across workers. Default: the larger of 8M and
   * an eighth of a worker's share of the model, so a model with many tensors keeps each tensor in
   * one worker (no merging on this thread) and one with a few giant tensors still splits them.
   */
  splitElements?: number;
  /** Restrict to some tensors (default: every float-like tensor). */
  filter?(t: TensorInfo): boolean;
}

function entryOf(t: TensorInfo, stats: TensorStats): TensorEntry {
  const l = t.layer;
  const layer: TensorEntry['layer'] = {};
  // Only defined keys, so an entry survives a JSON round trip unchanged (results cache).
  if (l.opType !== undefined) layer.opType = l.opType;
  if (l.role !== undefined) layer.role = l.role;
  if (l.block !== undefined) layer.block = l.block;
  if (l.layerName !== undefined) layer.layerName = l.layerName;
  if (l.outputChannelAxis !== undefined) layer.outputChannelAxis = l.outputChannelAxis;
  return { name: t.name, dtype: t.dtype, shape: [...t.shape], layer, stats };
}

export async function analyseModel(model: ModelFile, opts: AnalyseModelOptions): Promise<ModelStats> {
  const t0 = Date.now();
  const o = resolveOptions(opts.stats);
  const pool = opts.pool;
  const todo: TensorInfo[] = [];
  const skipped: ModelStats['skipped'] = [];
  for (const t of model.tensors) {
    if (opts.filter && !opts.filter(t)) continue;
    if (isAnalysable(t)) todo.push(t);
    else skipped.push({ name: t.name, dtype: t.dtype, reason: t.numel < 1 ? 'empty' : 'not a floating-point tensor' });
  }
  const totalElements = todo.reduce((s, t) => s + t.numel, 0);
  const split = opts.splitElements ?? Math.max(8 * 1024 * 1024, Math.ceil(totalElements / (pool.size * 8)));
  const passes = 2;
  const workTotal = todo.reduce((a, t) => a + passes * t.numel, 0);
  let workDone = 0, tensorsDone = 0;
  const partial = new Map<object, number>();
  const progress = () => {
    let inFlight = 0;
    for (const v of partial.values()) inFlight += v;
    opts.onProgress?.({ tensorsDone, tensorsTotal: todo.length, workDone: workDone + inFlight, workTotal });
  };
  /** Progress of one job, as a share of `work` units of the total. */
  const track = (work: number) => {
    const key = {};
    return {
      onProgress: (done: number, total: number) => { partial.set(key, total > 0 ? (done / total) * work : 0); progress(); },
      finish: (work: number) => { partial.delete(key); workDone += work; },
    };
  };

  const one = async (t: TensorInfo, signal: AbortSignal): Promise<TensorStats> => {
    const source: FileTensorRef = { kind: 'file', path: model.path, tensor: t.name };
    if (t.numel <= split || pool.size < 2) {
      const tr = track(passes * t.numel);
      const r = await pool.run({ kind: 'analyse', source, options: o }, { signal, onProgress: tr.onProgress });
      tr.finish(passes * t.numel);
      return r;
    }
    const parts = Math.min(pool.size * 2, Math.ceil(t.numel / split) * pool.size);
    const ranges: Range[] = [];
    for (let i = 0; i < parts; i++) ranges.push([Math.floor((t.numel * i) / parts), Math.floor((t.numel * (i + 1)) / parts)]);
    const each = async <R>(mk: (r: Range) => Parameters<WorkerPool['run']>[0]): Promise<R[]> =>
      Promise.all(ranges.map(async (r) => {
        const tr = track(r[1] - r[0]);
        const v = await pool.run(mk(r), { signal, onProgress: tr.onProgress });
        tr.finish(r[1] - r[0]);
        return v as R;
      }));
    const layout = channelLayout(t.shape, t.layer.outputChannelAxis);
    if (o.exact16 && (t.dtype === 'f16' || t.dtype === 'bf16') && t.location.kind === 'disk') {
      const parts = await each<CodesPartial>((range) => ({ kind: 'codes16', source, range, options: o }));
      workDone += (passes - 1) * t.numel; // one pass instead of `passes`
      return finalizeCodes(parts.reduce((a, b) => mergeCodes(a, b, o.topK)), t.dtype, o, layout);
    }
    const p1 = (await each<Pass1>((range) => ({ kind: 'pass1', source, range, options: o }))).reduce((a, b) => mergePass1(a, b, o.topK));
    const params = pass2Params(p1, o);
    const p2 = (await each<Pass2>((range) => ({ kind: 'pass2', source, range, options: o, params }))).reduce(mergePass2);
    return finalize(p1, p2, params, o, layout);
  };

  const results = new Map<string, TensorEntry>();
  const failed: ModelStats['failed'] = [];
  // Largest first: the pool then ends on small tensors, not with one worker alone on a big one.
  const order = [...todo].sort((a, b) => b.numel - a.numel);
  await eachTensorJob(`statistics of ${model.path}`, order, opts.signal, one, (t, stats) => {
    const e = entryOf(t, stats);
    results.set(t.name, e);
    tensorsDone++;
    progress();
    opts.onTensor?.(e, tensorsDone, todo.length);
  }, (t, error) => {
    failed.push({ name: t.name, error });
    tensorsDone++;
    progress();
  });
  // Workers read the files by path: one that changed meanwhile would give statistics of two versions.
  assertSourceUnchanged(model);
  return {
    engineVersion: ENGINE_VERSION, file: model.path, format: model.format, options: o,
    tensors: todo.filter((t) => results.has(t.name)).map((t) => results.get(t.name)!), skipped, failed, seconds: (Date.now() - t0) / 1000,
  };
}

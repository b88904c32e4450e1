/**
 * Compare two model files: every weight of A paired with its counterpart in
 * B (by name, then through the naming map), both decoded to float32 in a
 * pool worker, with A as the reference: SQNR, cosine, max |Δ|, MSE, the type
 * change and a shared-range histogram. When both are ONNX graphs with the
 * same inputs, both also run in ONNX Runtime on the data (or on
 * deterministic synthetic inputs, labelled so) and every output is compared.
 */
import type { ModelFile } from '../formats/types';
import type { CompareRow, CompareSide } from '../shared/protocol/compare';
import { LogicalWeight, logicalWeights, pairWeights, ropeReorder } from '../analysis/compareWeights';
import { assertSourceUnchanged } from '../formats/lazyModelFile';
import { f16ToF32 } from '../formats/dtypes';
import type { WorkerPool } from '../jobs/pool';
import type { CalibOptions, CalibSet, FeedTensor } from '../runtime/calibData';
import { compareOutputs, outputKinds, OutputMetrics } from '../runtime/outputMetrics';
import { Feeds, OrtOutput, runOnnxInWorker } from '../runtime/ortRun';
import type { PModel } from '../runtime/graph';
import { modelCalib } from './evaluate';
import { siblingJobs } from './tensorJobs';
import { CancelledError } from '../jobs/cancel';

/** One side and one weight pair of a comparison: the shapes the Compare view receives (src/shared/protocol/compare.ts), declared once there. */
export type ModelSide = CompareSide;
export type TensorComparison = CompareRow;

export interface OutputSection {
  data: 'real' | 'synthetic';
  dataSource: string;
  samples: number;
  outputs: OutputMetrics[];
  seconds: number;
}

export interface ModelComparison {
  a: ModelSide;
  b: ModelSide;
  tensors: TensorComparison[];
  onlyA: { name: string; type: string }[];
  onlyB: { name: string; type: string }[];
  /** The outputs of both models on the same data, when both run in ONNX Runtime. */
  outputs?: OutputSection;
  /** Why there is no output comparison. */
  outputsSkipped?: string;
  seconds: number;
}

export interface CompareOptions {
  pool: WorkerPool;
  signal?: AbortSignal;
  /** Calibration data for the output comparison (a file or folder); synthetic without it. */
  data?: string;
  calibOptions?: CalibOptions;
  /** The data already loaded (overrides `data`). */
  calib?: CalibSet;
  /** Run both models and compare outputs when both are ONNX (default true). */
  outputs?: boolean;
  bins?: number;
  onProgress?(done: number, total: number, what: string): void;
}

/** Worst first: lowest SQNR, pairs that failed at the top, identical pairs last. */
export function worstFirst(a: TensorComparison, b: TensorComparison): number {
  const k = (t: TensorComparison) => (t.error ? -Infinity : t.sqnrDb ?? Infinity);
  const ka = k(a), kb = k(b);
  if (ka !== kb) return ka < kb ? -1 : 1;
  return a.name.localeCompare(b.name);
}

function side(m: ModelFile, weights: number): ModelSide {
  return { file: m.path, format: m.format, sizeOnDisk: m.sizeOnDisk, weights };
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export async function compareModels(a: ModelFile, b: ModelFile, opts: CompareOptions): Promise<ModelComparison> {
  const t0 = Date.now();
  const la = logicalWeights(a), lb = logicalWeights(b);
  const { pairs, onlyA, onlyB } = pairWeights(la, lb);
  const runOutputs = opts.outputs !== false && a.format === 'onnx' && b.format === 'onnx';
  const total = pairs.length + (runOutputs ? 1 : 0);
  let done = 0;
  const row = (x: LogicalWeight, y: LogicalWeight, matchedBy: 'name' | 'naming-map'): TensorComparison => ({
    name: x.name, ...(x.name !== y.name ? { nameB: y.name } : {}), matchedBy, typeA: x.type, typeB: y.type,
    shapeA: x.shape, shapeB: y.shape, numel: x.numel, bytesA: x.bytes, bytesB: y.bytes,
  });
  const tensors = await siblingJobs(`compare ${a.path} with ${b.path}`, opts.signal, pairs.map((p) => async (signal: AbortSignal) => {
    const r = row(p.a, p.b, p.matchedBy);
    const transposed = !sameShape(p.a.shape, p.b.shape) && p.a.shape.length === 2 && p.b.shape.length === 2 && p.a.shape[0] === p.b.shape[1] && p.a.shape[1] === p.b.shape[0];
    const rope = transposed ? undefined : ropeReorder(a, b, p);
    if (!sameShape(p.a.shape, p.b.shape) && !transposed) {
      r.error = `shapes differ: [${p.a.shape.join(', ')}] vs [${p.b.shape.join(', ')}]`;
    } else {
      try {
        const d = await opts.pool.run({
          kind: 'compareWeights', a: { path: a.path, source: p.a.source }, b: { path: b.path, source: p.b.source },
          transpose: transposed ? [p.b.shape[0], p.b.shape[1]] : undefined, rope, bins: opts.bins,
        }, { signal });
        Object.assign(r, { sqnrDb: d.sqnrDb, cosine: d.cosine, maxAbs: d.maxAbs, mse: d.mse, histogram: d.histogram }, transposed ? { transposed } : {}, rope ? { ropeReordered: true } : {});
      } catch (e) {
        if (signal.aborted) throw e;
        r.error = e instanceof Error ? e.message : String(e);
      }
    }
    opts.onProgress?.(++done, total, r.name);
    return r;
  }));
  // A cancel that came after the last job finished still cancels: the caller asked to stop.
  if (opts.signal?.aborted) throw new CancelledError(`compare ${a.path} with ${b.path}`);
  tensors.sort(worstFirst);
  const result: ModelComparison = {
    a: side(a, la.length), b: side(b, lb.length), tensors,
    onlyA: onlyA.map((w) => ({ name: w.name, type: w.type })), onlyB: onlyB.map((w) => ({ name: w.name, type: w.type })), seconds: 0,
  };
  if (runOutputs) {
    const why = inputMismatch(a, b);
    if (why) result.outputsSkipped = why;
    else {
      opts.onProgress?.(done, total, 'running both models');
      try {
        result.outputs = await compareRuns(a, b, opts);
      } catch (e) {
        if (opts.signal?.aborted) throw e;
        result.outputsSkipped = `ONNX Runtime could not run them: ${e instanceof Error ? e.message : String(e)}`;
      }
      opts.onProgress?.(++done, total, 'outputs');
    }
  } else {
    result.outputsSkipped = a.format !== 'onnx' || b.format !== 'onnx' ? 'outputs are compared when both models are ONNX graphs' : 'not requested';
  }
  assertSourceUnchanged(a);
  assertSourceUnchanged(b);
  result.seconds = (Date.now() - t0) / 1000;
  return result;
}

function inputMismatch(a: ModelFile, b: ModelFile): string | undefined {
  const ia = a.graph?.inputs ?? [], ib = b.graph?.inputs ?? [];
  const names = (xs: typeof ia) => xs.map((x) => x.name).sort().join(', ');
  if (names(ia) !== names(ib)) return `the models take different inputs (${names(ia)} vs ${names(ib)})`;
  return undefined;
}

/** Graph outputs and their producers: enough for outputKinds (probabilities, logits, values). */
function outputsModel(m: ModelFile): PModel {
  const g = m.graph!;
  return { graph: { node: g.nodes.filter((n) => n.graph === 'main').map((n) => ({ op_type: n.opType, output: n.outputs })), output: g.outputs.map((o) => ({ name: o.name })) } };
}

function asF32(o: OrtOutput): FeedTensor | undefined {
  if (o.type === 'float32') return { dtype: 'float32', dims: o.dims, data: o.data as Float32Array };
  if (o.type === 'float16') return { dtype: 'float32', dims: o.dims, data: Float32Array.from(o.data as Uint16Array, (h) => f16ToF32(h)) };
  if (o.type === 'float64') return { dtype: 'float32', dims: o.dims, data: Float32Array.from(o.data as Float64Array) };
  return undefined; // integer outputs (ids, shapes) are not compared
}

async function compareRuns(a: ModelFile, b: ModelFile, opts: CompareOptions): Promise<OutputSection> {
  const t0 = Date.now();
  const set = opts.calib ?? modelCalib(a, opts.data, opts.calibOptions ?? { samples: 4 });
  const feeds: Feeds[] = set.samples.map((s) => Object.fromEntries(Object.entries(s).map(([k, v]) => [k, { data: v.data as Feeds[string]['data'], dims: v.dims, type: v.dtype }])));
  const [ra, rb] = await runOnnxInWorker([{ model: a.path, feeds }, { model: b.path, feeds }], opts.signal);
  const pick = (r: OrtOutput[]) => Object.fromEntries(r.map((o) => [o.name, asF32(o)]).filter((e): e is [string, FeedTensor] => !!e[1]));
  const refs = ra.map(pick), gots = rb.map(pick);
  for (const r of refs) for (const k of Object.keys(r)) if (!gots[0]?.[k]) delete r[k];
  return {
    data: set.synthetic ? 'synthetic' : 'real', dataSource: set.source, samples: set.samples.length,
    outputs: compareOutputs(refs, gots, outputKinds(outputsModel(a))), seconds: (Date.now() - t0) / 1000,
  };
}

/**
 * Running models through the pool: output-space sensitivity (every weight ×
 * every config, split over the workers), whole-model experiments (size,
 * output metrics and time per config), the additivity check, and activation
 * statistics. The CLI and the host both call these; each takes an
 * AbortSignal and reports progress. Results say whether they were measured
 * or predicted and whether the data was real or synthetic.
 */
import { writeFileAtomicSync } from '../formats/atomicWrite';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelFile, TensorInfo } from '../formats/types';
import { configBytes, configById } from '../quant/configs';
import type { CalibratorName } from '../quant/calibrators';
import type { RangeTarget } from '../quant/calibrators';
import { CalibOptions, CalibSet, InputSpec, loadCalibData, Sample } from '../runtime/calibData';
import { ActivationCollector, activationRanges, ActivationState } from '../runtime/activations';
import type { OutputMetrics } from '../runtime/outputMetrics';
import type { ChunkResult, SensWeight, VariantResult, WeightEffect } from '../runtime/sensitivity';
import { type ProviderChoice, batchSamples, resolveProvider } from '../runtime/session';
import { CancelledError } from '../jobs/cancel';
import type { WorkerPool } from '../jobs/pool';
import { fileIdentity } from './statsCache';
import { siblingJobs } from './tensorJobs';

/** The configs the output-space sensitivity measures by default (the four). */
export const DEFAULT_RUNTIME_CONFIGS = ['int8-channel', 'int4-g128', 'int3-g128', 'nf4-g64'];

export function modelInputs(model: ModelFile): InputSpec[] {
  if (model.format !== 'onnx' || !model.graph) throw new Error(`${model.path}: only ONNX models can be run (this is ${model.format})`);
  return model.graph.inputs.map((i) => ({ name: i.name, dtype: i.dtype, shape: i.shape }));
}

/** Ops whose weight operand a quantizer stores quantized (masks, position tables and shape constants are not weights). */
const WEIGHT_CONSUMERS = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm', 'Gather', 'LSTM', 'GRU', 'RNN']);

/** Weights the runtime measures: float32 tensors of rank ≥ 2 that a Conv / MatMul / Gemm / Gather / RNN consumes. */
export function runtimeWeights(model: ModelFile, filter?: (t: TensorInfo) => boolean): SensWeight[] {
  return model.tensors
    .filter((t) => t.dtype === 'f32' && t.source !== 'tensor' && (filter ? filter(t) : t.shape.length >= 2 && WEIGHT_CONSUMERS.has(t.layer.opType ?? '')))
    .map((t) => ({ name: t.name, graph: t.graph ?? 'main', shape: [...t.shape], outputChannelAxis: t.layer.outputChannelAxis }));
}

/**
 * Calibration data for a model: the file or folder given, else synthetic.
 * Integer inputs read by a Gather on a weight (token ids) are drawn below
 * that table's first dimension.
 */
export function modelCalib(model: ModelFile, calib: string | undefined, opts: CalibOptions = {}): CalibSet {
  const inputs = modelInputs(model);
  const intHigh: Record<string, number> = { ...opts.intHigh };
  for (const n of model.graph!.nodes) {
    if (n.opType !== 'Gather' || n.inputs.length < 2) continue;
    const table = model.tensors.find((t) => t.name === n.inputs[0] && t.graph === n.graph);
    const input = inputs.find((i) => i.name === n.inputs[1]);
    if (table && input && intHigh[input.name] === undefined) intHigh[input.name] = table.shape[0];
  }
  return loadCalibData(calib, inputs, { ...opts, intHigh });
}

/** Inputs whose leading axis is symbolic: samples of those models can be stacked into batches. */
function batchableInputs(model: ModelFile): Set<string> {
  return new Set(modelInputs(model).filter((i) => i.shape && i.shape.length && typeof i.shape[0] !== 'number').map((i) => i.name));
}

export interface RunSettings {
  pool: WorkerPool;
  /** Samples per session run (default 4: large batches thrash the cache). */
  batch?: number;
  /** Weight-range calibrator of the quantized weights (default minmax). */
  calibrator?: CalibratorName;
  /** EXACT session settings (bit-identical to the original model, slower). */
  exact?: boolean;
  /** onnxruntime-node execution provider (default cpu); one that cannot run here falls back to CPU, said so in the result. */
  provider?: string;
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
  /** Results cache directory (none when absent). */
  cacheDir?: string;
}

interface DataLabel {
  /** The execution provider the measurements ran on, and why it is not the one asked for. */
  provider: string;
  providerNote?: string;
  /** Labels every result: 'synthetic' data says nothing about the real inputs' behaviour. */
  data: 'real' | 'synthetic';
  dataSource: string;
  dataHash: string;
  samples: number;
}

function label(set: CalibSet, ep: ProviderChoice): DataLabel {
  return { provider: ep.provider, ...(ep.note ? { providerNote: ep.note } : {}), data: set.synthetic ? 'synthetic' : 'real', dataSource: set.source, dataHash: set.hash, samples: set.samples.length };
}

/** Results cache key: the model's file identity, the data's hash, what was run and its settings. */
export function cacheKey(model: ModelFile, set: CalibSet, what: string, settings: unknown): string {
  const h = crypto.createHash('sha256');
  h.update(JSON.stringify({ what, files: fileIdentity(model.files), data: set.hash, settings, v: 1 }));
  return h.digest('hex');
}

export function cacheRead<T>(dir: string | undefined, key: string): T | undefined {
  if (!dir) return undefined;
  try { return JSON.parse(fs.readFileSync(path.join(dir, `runtime-${key}.json`), 'utf8')) as T; } catch { return undefined; }
}

export function cacheWrite(dir: string | undefined, key: string, value: unknown): void {
  if (!dir) return;
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `runtime-${key}.json`);
  writeFileAtomicSync(file, JSON.stringify(value, (_, v: unknown) => (v === Infinity ? 'Infinity' : v)), { overwrite: true });
}

export function reviveInfinity<T>(v: T): T {
  return JSON.parse(JSON.stringify(v), (_, x: unknown) => (x === 'Infinity' ? Infinity : x)) as T;
}

/** Sibling jobs; a cancel that came after the last job finished still cancels: the caller asked to stop. */
async function allJobs<R>(what: string, outer: AbortSignal | undefined, jobs: ((signal: AbortSignal) => Promise<R>)[]): Promise<R[]> {
  const r = await siblingJobs(what, outer, jobs);
  if (outer?.aborted) throw new CancelledError(what);
  return r;
}

export interface ConfigOutputEffect {
  config: string;
  /** KL (classifier outputs) or noise-to-signal ratio of the first output. Measured. */
  effect: number;
  outputs: OutputMetrics[];
}

export interface RuntimeSensitivity extends DataLabel {
  file: string;
  kind: 'measured';
  configs: string[];
  calibrator: CalibratorName;
  weights: { name: string; graph: string; shape: number[]; suffixNodes: number; configs: ConfigOutputEffect[] }[];
  totalNodes: number;
  /** Sum of single-weight effects (predicted) next to the whole-model effect (measured), per uniform config. */
  additivity: { config: string; predicted: number; measured: number; ratio: number }[];
  seconds: number;
  cached?: boolean;
}

type SensitivityOptions = Omit<RunSettings, 'pool'> & {
  configs?: string[]; weights?: SensWeight[]; additivity?: string[]; chunks?: number;
  /** See MeasureOptions.reference (default 'capture'). */
  reference?: 'suffix' | 'capture';
};

/** The settings of a sensitivity run and its cache key (file identity, data hash, settings). */
async function sensitivityRequest(model: ModelFile, set: CalibSet, opts: SensitivityOptions) {
  const ep = await resolveProvider(opts.provider);
  const configs = opts.configs ?? DEFAULT_RUNTIME_CONFIGS;
  for (const c of configs) configById(c);
  const weights = opts.weights ?? runtimeWeights(model);
  const additivity = opts.additivity ?? configs;
  const calibrator = opts.calibrator ?? 'minmax';
  const batch = opts.batch ?? 4;
  const settings = { configs, weights: weights.map((w) => `${w.graph}|${w.name}`), additivity, calibrator, batch, exact: !!opts.exact, reference: opts.reference ?? 'capture', provider: ep.provider };
  return { ep, configs, weights, additivity, calibrator, batch, key: cacheKey(model, set, 'sensitivity', settings) };
}

/** The cached result of `runtimeSensitivity` with these settings, without running anything (undefined when none). */
export async function cachedRuntimeSensitivity(model: ModelFile, set: CalibSet, opts: SensitivityOptions): Promise<RuntimeSensitivity | undefined> {
  const hit = cacheRead<RuntimeSensitivity>(opts.cacheDir, (await sensitivityRequest(model, set, opts)).key);
  return hit ? { ...reviveInfinity(hit), cached: true } : undefined;
}

/** Samples a plan's output-space measurement runs on (synthetic: generated; data files: the first ones). */
export const PLAN_EFFECT_SAMPLES = 8;

/**
 * The output-space measurement a conversion plan uses: the weights it converts
 * (`planned`, by name) under its configs, each weight alone, no whole-model
 * run. The Sensitivity panel and the Quantize wizard both measure with these
 * settings, so a model + data measured by one is a cache hit for the other.
 */
export function planEffectSettings(model: ModelFile, planned: ReadonlySet<string>, configs: string[]): { configs: string[]; additivity: string[]; weights: SensWeight[] } {
  return { configs, additivity: [], weights: runtimeWeights(model, (t) => planned.has(t.name)) };
}

/**
 * Output-space sensitivity of every weight (or `weights`) under each config,
 * split over the pool's workers in chunks; then, for `additivity` configs,
 * the whole model quantized uniformly.
 */
export async function runtimeSensitivity(model: ModelFile, set: CalibSet, opts: RunSettings & SensitivityOptions): Promise<RuntimeSensitivity> {
  const t0 = Date.now();
  const { ep, configs, weights, additivity, calibrator, batch, key } = await sensitivityRequest(model, set, opts);
  const hit = cacheRead<RuntimeSensitivity>(opts.cacheDir, key);
  if (hit) return { ...reviveInfinity(hit), cached: true };

  const { feeds } = batchSamples(set.samples, batchableInputs(model), batch);
  const nChunks = Math.max(1, Math.min(weights.length, opts.chunks ?? opts.pool.size * 2));
  const chunks: SensWeight[][] = Array.from({ length: nChunks }, () => []);
  weights.forEach((w, i) => chunks[i % nChunks].push(w));
  const total = weights.length * configs.length + additivity.length;
  const progress = new Array<number>(nChunks + 1).fill(0);
  const report = () => opts.onProgress?.(progress.reduce((a, b) => a + b, 0), total);
  const jobs = chunks.map((chunk, ci) => (signal: AbortSignal) => opts.pool.run(
    { kind: 'runtimeSensitivity', model: model.path, weights: chunk, configs, feeds, calibrator, exact: opts.exact, provider: ep.provider, reference: opts.reference },
    { signal, onProgress: (d) => { progress[ci] = d; report(); } },
  ));
  const variantJobs = additivity.map((c, i) => (signal: AbortSignal) => opts.pool.run(
    { kind: 'runtimeVariants', model: model.path, weights, variants: [{ id: c, configs: weights.map(() => c) }], feeds, calibrator, exact: opts.exact, provider: ep.provider },
    { signal, onProgress: () => { progress[nChunks] = i + 1; report(); } },
  ));
  type Part = { chunk: ChunkResult } | { variants: VariantResult[] };
  const results = await allJobs<Part>(`output-space sensitivity of ${model.path}`, opts.signal, [
    ...jobs.map((j) => async (s: AbortSignal) => ({ chunk: await j(s) })),
    ...variantJobs.map((j) => async (s: AbortSignal) => ({ variants: await j(s) })),
  ]);
  const byKey = new Map<string, WeightEffect>();
  let totalNodes = 0;
  const measuredWhole = new Map<string, number>();
  for (const r of results) {
    if ('chunk' in r) { totalNodes = r.chunk.totalNodes; for (const w of r.chunk.weights) byKey.set(`${w.graph}|${w.name}`, w); } else for (const v of r.variants) measuredWhole.set(v.id, v.effect);
  }
  const out: RuntimeSensitivity = {
    ...label(set, ep), file: model.path, kind: 'measured', configs, calibrator, totalNodes,
    weights: weights.map((w) => {
      const e = byKey.get(`${w.graph}|${w.name}`)!;
      return { name: w.name, graph: w.graph, shape: w.shape, suffixNodes: e.suffixNodes, configs: e.configs };
    }),
    additivity: additivity.map((c) => {
      const j = configs.indexOf(c);
      const predicted = j < 0 ? NaN : [...byKey.values()].reduce((s, w) => s + w.configs[j].effect, 0);
      const measured = measuredWhole.get(c) ?? NaN;
      return { config: c, predicted, measured, ratio: measured / predicted };
    }),
    seconds: (Date.now() - t0) / 1000,
  };
  cacheWrite(opts.cacheDir, key, out);
  return out;
}

export interface ExperimentConfigResult {
  config: string;
  /** Bytes of the model with every measured weight stored under this config (the rest as on disk). */
  bytes: number;
  floatBytes: number;
  outputs: OutputMetrics[];
  /** Measured on the whole model (every weight quantized at once). */
  effect: number;
  seconds: number;
}

export interface Experiment extends DataLabel {
  file: string;
  kind: 'measured';
  calibrator: CalibratorName;
  results: ExperimentConfigResult[];
  seconds: number;
}

/** Evaluate K whole-model configs (uniform: every weight under one config), split over the workers. */
export async function runExperiment(model: ModelFile, set: CalibSet, opts: RunSettings & { configs: string[]; weights?: SensWeight[] }): Promise<Experiment> {
  const t0 = Date.now();
  const ep = await resolveProvider(opts.provider);
  for (const c of opts.configs) configById(c);
  const weights = opts.weights ?? runtimeWeights(model);
  const calibrator = opts.calibrator ?? 'minmax';
  const { feeds } = batchSamples(set.samples, batchableInputs(model), opts.batch ?? 4);
  const floatBytes = model.tensors.reduce((s, t) => s + t.byteLength, 0);
  const weightBytes = new Map(model.tensors.map((t) => [`${t.graph ?? 'main'}|${t.name}`, t]));
  let done = 0;
  const res = await allJobs(`experiment on ${model.path}`, opts.signal, opts.configs.map((c) => (signal: AbortSignal) => opts.pool.run(
    { kind: 'runtimeVariants', model: model.path, weights, variants: [{ id: c, configs: weights.map(() => c) }], feeds, calibrator, exact: opts.exact, provider: ep.provider },
    { signal },
  ).then((r) => { opts.onProgress?.(++done, opts.configs.length); return r[0]; })));
  const results = res.map((r) => {
    const cfg = configById(r.id);
    let bytes = floatBytes;
    for (const w of weights) {
      const t = weightBytes.get(`${w.graph}|${w.name}`);
      if (t) bytes += configBytes(cfg, t.shape, t.layer.outputChannelAxis, t.dtype) - t.byteLength;
    }
    return { config: r.id, bytes, floatBytes, outputs: r.outputs, effect: r.effect, seconds: r.seconds };
  });
  return { ...label(set, ep), file: model.path, kind: 'measured', calibrator, results, seconds: (Date.now() - t0) / 1000 };
}

export interface ModelActivations extends DataLabel {
  file: string;
  states: ActivationState[];
  seconds: number;
}

/** Activation histograms of every activation (or `names`), batches split over the workers and merged exactly. */
export async function modelActivations(model: ModelFile, set: CalibSet, opts: RunSettings & { names?: string[]; bins?: number }): Promise<ModelActivations> {
  const t0 = Date.now();
  const ep = await resolveProvider(opts.provider);
  // Batch 1 by default: every activation is an output, so a batch's outputs are all allocated at once (200 MB per PP-OCR rec sample).
  const { feeds } = batchSamples(set.samples, batchableInputs(model), opts.batch ?? 1);
  const parts = Math.max(1, Math.min(feeds.length, opts.pool.size));
  const split: Sample[][] = Array.from({ length: parts }, () => []);
  feeds.forEach((f, i) => split[i % parts].push(f));
  const done = new Array<number>(parts).fill(0);
  const states = await allJobs(`activations of ${model.path}`, opts.signal, split.map((fs_, i) => (signal: AbortSignal) =>
    opts.pool.run({ kind: 'runtimeActivations', model: model.path, feeds: fs_, names: opts.names, bins: opts.bins, exact: opts.exact, provider: ep.provider }, {
      signal, onProgress: (d) => { done[i] = d; opts.onProgress?.(done.reduce((a, b) => a + b, 0), feeds.length); },
    })));
  const col = new ActivationCollector(opts.bins ?? 2048);
  for (const s of states) col.merge(s);
  return { ...label(set, ep), file: model.path, states: col.states(), seconds: (Date.now() - t0) / 1000 };
}

export { activationRanges };
export type { RangeTarget };

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
import { feedsOfSamples } from '../runtime/ortRun';
import type { IntGridConfig } from '../quant/algorithms/intGrid';
import { calibratedSkipReason, type RecordedInput } from '../quant/algorithms/weightOnly';
import { recordMatMulInputs, type RecordedWeight } from './convertOnnx';
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
  /** `what`: the step just done (experiments name it). */
  onProgress?(done: number, total: number, what?: string): void;
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

/** How a run's weights are rounded: to nearest (the config's own numerics), or by GPTQ / AWQ on the calibration data. */
export type ExperimentAlgorithm = 'rtn' | 'gptq' | 'awq';
export const EXPERIMENT_ALGORITHMS: readonly ExperimentAlgorithm[] = ['rtn', 'gptq', 'awq'];

/** One whole-model run of an experiment: every measured weight under `config`, rounded by `algorithm`. */
export interface ExperimentRun { config: string; algorithm: ExperimentAlgorithm }

export interface ExperimentConfigResult {
  config: string;
  algorithm: ExperimentAlgorithm;
  /** The data the outputs were measured on (and, for GPTQ / AWQ, the data they were fitted to). */
  data: 'real' | 'synthetic';
  /** Bytes of the model with every measured weight stored under this config (the rest as on disk; AWQ adds its float32 1/s per input channel). */
  bytes: number;
  floatBytes: number;
  outputs: OutputMetrics[];
  /** Measured on the whole model (every weight quantized at once). */
  effect: number;
  /** Quantizing and running this variant; GPTQ / AWQ add the wall time of fitting its weights in the pool (the shared recording of the inputs is in the experiment's total). */
  seconds: number;
  /**
   * GPTQ / AWQ: the weights they quantized (as `quantscope quantize --target
   * onnx-int4 --algo` would, `used` naming it as its report does) and the
   * weights rounded to nearest under the config instead, with the reason.
   */
  calibrated?: { weights: { name: string; used: string }[]; roundedToNearest: { name: string; reason: string }[] };
}

export interface Experiment extends DataLabel {
  file: string;
  kind: 'measured';
  calibrator: CalibratorName;
  results: ExperimentConfigResult[];
  seconds: number;
}

/** The integer grid GPTQ and AWQ quantize onto for a catalogue config, or why they cannot. */
export function calibratedGrid(configId: string, algorithm: Exclude<ExperimentAlgorithm, 'rtn'>): IntGridConfig {
  const c = configById(configId);
  if (c.format !== 'int') throw new RangeError(`${algorithm.toUpperCase()} quantizes onto an integer grid; ${c.id} is ${c.format.toUpperCase()} (choose an int config, or RTN)`);
  if (c.granularity === 'tensor') throw new RangeError(`${algorithm.toUpperCase()} takes per-channel or grouped configs; ${c.id} has one scale per tensor`);
  return { bits: c.bits, symmetric: c.symmetric, groupSize: c.granularity === 'group' ? c.groupSize ?? 128 : 0 };
}

/** Why a run cannot be measured with this data and calibrator (undefined when it can). */
export function experimentRunRefusal(run: ExperimentRun, data: 'real' | 'synthetic', calibrator: CalibratorName): string | undefined {
  if (run.algorithm === 'rtn') return undefined;
  const name = run.algorithm.toUpperCase();
  if (data === 'synthetic') return `${name} needs real calibration data: it fits the weights to the inputs each layer sees, and synthetic inputs would fit them to noise (quantize --algo ${run.algorithm} refuses it without --calib too); give data (--calib)`;
  if (calibrator !== 'minmax') return `${name} sets each group's scale from its min/max, as the conversion writes it; the ${calibrator} calibrator applies to RTN runs only`;
  return undefined;
}

/** The MatMul/Gemm weights the onnx-int4 conversion quantizes and the inputs they saw on the data, keyed `graph|name`; the other weights with why not. */
export interface CalibratedInputs { recorded: Map<string, RecordedWeight>; notTaken: Map<string, string> }

/** Record, on real data only, what GPTQ and AWQ need: the conversion's own recording (convertOnnx.recordMatMulInputs), one feed per sample. */
export async function recordCalibratedInputs(model: ModelFile, set: CalibSet, signal?: AbortSignal): Promise<CalibratedInputs> {
  if (set.synthetic) throw new RangeError(`${model.path}: GPTQ and AWQ need real calibration data, got ${set.source}`);
  let r: Awaited<ReturnType<typeof recordMatMulInputs>>;
  try {
    r = await recordMatMulInputs(model.path, feedsOfSamples(set.samples), signal);
  } catch (e) {
    if (signal?.aborted) throw new CancelledError(`recording the MatMul inputs of ${model.path}`);
    throw e;
  }
  if (signal?.aborted) throw new CancelledError(`recording the MatMul inputs of ${model.path}`);
  return {
    recorded: new Map(r.weights.map((w) => [`${w.graph}|${w.name}`, w])),
    notTaken: new Map(r.skipped.map((w) => [`${w.graph}|${w.name}`, w.reason])),
  };
}

/**
 * A GPTQ / AWQ run's weights, in the order of `weights`: each one the
 * conversion would quantize computed in the pool (the `calibratedWeight`
 * job: quant/algorithms/weightOnly, the conversion's functions), null for
 * the others, which round to nearest under the config (listed with the
 * reason). `onWeight` is called once per weight, computed or not.
 */
export async function calibratedRunWeights(
  model: ModelFile, inputs: CalibratedInputs, weights: readonly SensWeight[], run: { config: string; algorithm: Exclude<ExperimentAlgorithm, 'rtn'> }, pool: WorkerPool, signal?: AbortSignal, onWeight?: (name: string) => void,
): Promise<{ given: (Float32Array | null)[]; calibrated: NonNullable<ExperimentConfigResult['calibrated']>; extraBytes: number }> {
  const algo = run.algorithm;
  const grid = calibratedGrid(run.config, algo);
  const plans = weights.map((w): { rec: RecordedWeight; input: RecordedInput } | { reason: string } => {
    const key = `${w.graph}|${w.name}`;
    const rec = inputs.recorded.get(key);
    if (!rec) return { reason: inputs.notTaken.get(key) ?? 'not a weight the onnx-int4 conversion quantizes' };
    const reason = calibratedSkipReason(rec.input, rec.K, grid.groupSize || rec.K);
    return reason ? { reason } : { rec, input: rec.input! };
  });
  plans.forEach((p, j) => { if ('reason' in p) onWeight?.(weights[j].name); });
  const got = await Promise.all(plans.map((p, j) => ('reason' in p ? Promise.resolve(null) : pool.run(
    { kind: 'calibratedWeight', source: { kind: 'file', path: model.path, tensor: weights[j].name }, K: p.rec.K, N: p.rec.N, transposed: p.rec.transposed, algo, grid, input: p.input },
    { signal },
  ).then((r) => { onWeight?.(weights[j].name); return r; }))));
  const calibrated: NonNullable<ExperimentConfigResult['calibrated']> = { weights: [], roundedToNearest: [] };
  let extraBytes = 0;
  plans.forEach((p, j) => {
    if ('reason' in p) calibrated.roundedToNearest.push({ name: weights[j].name, reason: p.reason });
    else {
      calibrated.weights.push({ name: weights[j].name, used: got[j]!.used });
      // AWQ's 1/s per input channel, stored float32 beside the weight.
      if (algo === 'awq') extraBytes += p.rec.K * 4;
    }
  });
  return { given: got.map((g) => g?.weight ?? null), calibrated, extraBytes };
}

/**
 * Evaluate whole-model runs, each a (config, algorithm): every measured
 * weight under the config, split over the workers. RTN runs quantize in the
 * worker with the config's numerics. GPTQ and AWQ runs need real data: the
 * inputs of each MatMul/Gemm are recorded once on the calibration samples
 * (the conversion's own recording, convertOnnx.recordMatMulInputs), each
 * weight the conversion would quantize is computed in the pool with the
 * conversion's functions (quant/algorithms/weightOnly), and those tensors are
 * fed to the same one-session evaluation; the other weights round to nearest
 * under the config, listed with the reason. `configs` alone means RTN runs.
 */
export async function runExperiment(model: ModelFile, set: CalibSet, opts: RunSettings & { configs?: string[]; runs?: ExperimentRun[]; weights?: SensWeight[] }): Promise<Experiment> {
  const t0 = Date.now();
  const runs = opts.runs ?? (opts.configs ?? []).map((config) => ({ config, algorithm: 'rtn' as const }));
  if (!runs.length) throw new RangeError('an experiment needs at least one config');
  const calibrator = opts.calibrator ?? 'minmax';
  const data = set.synthetic ? 'synthetic' : 'real';
  for (const r of runs) {
    configById(r.config);
    if (!EXPERIMENT_ALGORITHMS.includes(r.algorithm)) throw new RangeError(`unknown algorithm '${String(r.algorithm)}'; known: ${EXPERIMENT_ALGORITHMS.join(', ')}`);
    const refusal = experimentRunRefusal(r, data, calibrator);
    if (refusal) throw new RangeError(`${model.path}: ${r.config} with ${refusal}`);
    if (r.algorithm !== 'rtn') calibratedGrid(r.config, r.algorithm);
  }
  const ep = await resolveProvider(opts.provider);
  const weights = opts.weights ?? runtimeWeights(model);
  const { feeds } = batchSamples(set.samples, batchableInputs(model), opts.batch ?? 4);
  const floatBytes = model.tensors.reduce((s, t) => s + t.byteLength, 0);
  const weightBytes = new Map(model.tensors.map((t) => [`${t.graph ?? 'main'}|${t.name}`, t]));

  // GPTQ / AWQ: the inputs of every MatMul/Gemm weight, recorded once for all runs.
  const calibratedRuns = runs.filter((r) => r.algorithm !== 'rtn');
  const total = runs.length + (calibratedRuns.length ? 1 + calibratedRuns.length * weights.length : 0);
  let done = 0;
  const tick = (what: string) => opts.onProgress?.(++done, total, what);
  let inputs: CalibratedInputs | undefined;
  if (calibratedRuns.length) {
    opts.onProgress?.(0, total, `recording the inputs of each MatMul/Gemm on ${set.samples.length} samples`);
    inputs = await recordCalibratedInputs(model, set, opts.signal);
    tick('inputs recorded');
  }

  type Measured = { run: ExperimentRun; variant: VariantResult; calibrated?: ExperimentConfigResult['calibrated']; extraBytes: number };
  const jobs = runs.map((run, i) => async (signal: AbortSignal): Promise<Measured> => {
    let given: (Float32Array | null)[] | undefined;
    let calibrated: ExperimentConfigResult['calibrated'];
    let extraBytes = 0;
    let fitSeconds = 0;
    if (run.algorithm !== 'rtn') {
      const algo = run.algorithm;
      const tf = Date.now();
      const c = await calibratedRunWeights(model, inputs!, weights, { config: run.config, algorithm: algo }, opts.pool, signal, (name) => tick(`${run.config} ${algo}: ${name}`));
      ({ given, calibrated, extraBytes } = c);
      fitSeconds = (Date.now() - tf) / 1000;
    }
    const transfer = given ? given.filter((g): g is Float32Array => !!g).map((g) => g.buffer as ArrayBuffer) : undefined;
    const [variant] = await opts.pool.run(
      { kind: 'runtimeVariants', model: model.path, weights, variants: [{ id: String(i), configs: weights.map(() => run.config), ...(given ? { weights: given } : {}) }], feeds, calibrator, exact: opts.exact, provider: ep.provider },
      { signal, ...(transfer?.length ? { transfer } : {}) },
    );
    tick(`${run.config} ${run.algorithm}: measured`);
    return { run, variant: { ...variant, seconds: variant.seconds + fitSeconds }, calibrated, extraBytes };
  });
  const res = await allJobs(`experiment on ${model.path}`, opts.signal, jobs);
  const results = res.map(({ run, variant: r, calibrated, extraBytes }) => {
    const cfg = configById(run.config);
    let bytes = floatBytes + extraBytes;
    for (const w of weights) {
      const t = weightBytes.get(`${w.graph}|${w.name}`);
      if (t) bytes += configBytes(cfg, t.shape, t.layer.outputChannelAxis, t.dtype) - t.byteLength;
    }
    return { config: run.config, algorithm: run.algorithm, data, bytes, floatBytes, outputs: r.outputs, effect: r.effect, seconds: r.seconds, ...(calibrated ? { calibrated } : {}) } satisfies ExperimentConfigResult;
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

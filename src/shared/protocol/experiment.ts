/**
 * Messages between the extension host and the Experiment view: the grid of
 * choices (catalogue configs × weight-range calibrator × algorithm: RTN, and
 * GPTQ / AWQ when real data is chosen), the run's progress, and its results:
 * per config, calibrator and algorithm the model's size and how far its
 * outputs moved (measured by running it), plus the weight-space error per layer.
 */
import { isPlainObject, parseLog, parsePngMessage, type LogMessage } from './common';

export interface ExperimentConfigOption {
  id: string; label: string; format: string; granularity: string; bits: number;
  /** The algorithms that apply to this config (GPTQ / AWQ: integer grids per channel or group), as the engine decides. */
  algorithms: ExperimentAlgorithmId[];
}

export type ExperimentAlgorithmId = 'rtn' | 'gptq' | 'awq';
export const EXPERIMENT_ALGORITHM_IDS: readonly ExperimentAlgorithmId[] = ['rtn', 'gptq', 'awq'];

export interface ExperimentAlgorithmOption {
  id: ExperimentAlgorithmId;
  label: string;
  /** Fits the weights to the data: offered only when real data is chosen. */
  needsData: boolean;
  /** The weight-range calibrators it runs with (absent: every one). */
  calibrators?: string[];
}

/** Whether an algorithm applies to a config under a calibrator (the host fills both lists from the engine's rules). */
export function algorithmApplies(algorithm: ExperimentAlgorithmOption, config: Pick<ExperimentConfigOption, 'algorithms'>, calibrator: string): boolean {
  return config.algorithms.includes(algorithm.id) && (!algorithm.calibrators || algorithm.calibrators.includes(calibrator));
}

/** The whole-model runs of a selection: every config × calibrator × algorithm that applies, in that order. */
export function experimentRuns<C extends Pick<ExperimentConfigOption, 'algorithms'>>(configs: readonly C[], calibrators: readonly string[], algorithms: readonly ExperimentAlgorithmOption[]): { config: C; calibrator: string; algorithm: ExperimentAlgorithmOption }[] {
  const out: { config: C; calibrator: string; algorithm: ExperimentAlgorithmOption }[] = [];
  for (const calibrator of calibrators) for (const config of configs) for (const algorithm of algorithms) if (algorithmApplies(algorithm, config, calibrator)) out.push({ config, calibrator, algorithm });
  return out;
}

export function algorithmLabel(a: string): string {
  return a === 'rtn' ? 'RTN' : a.toUpperCase();
}

export interface ExperimentRow {
  config: string;
  calibrator: string;
  algorithm: ExperimentAlgorithmId;
  /** GPTQ / AWQ: how many weights they quantized, and those rounded to nearest under the config instead (with why). */
  calibrated?: { weights: number; roundedToNearest: { name: string; reason: string }[] };
  bytes: number;
  floatBytes: number;
  /** KL for classifier outputs, else Σ(Δ²)/Σ(ref²), of the whole model (measured). */
  effect: number;
  outputs: { output: string; kl?: number; sqnrDb: number; cosine: number; maxAbs: number }[];
  seconds: number;
}

export interface ExperimentResult {
  data: 'real' | 'synthetic';
  dataSource: string;
  samples: number;
  rows: ExperimentRow[];
  /** Weight-space SQNR (dB) per layer and config, the layers in model order. */
  layers: string[];
  layerSqnr: Record<string, number[]>;
  seconds: number;
  /** Reopened from the results cache (same file, data and settings). */
  cached: boolean;
  /** Combinations of the selection that were not run, and why (GPTQ / AWQ on a non-integer config or with a calibrator other than minmax). */
  notRun?: string[];
  /** Activation clip ranges per calibrator (uint8 per-tensor, asymmetric): the widest activations, by min-max range. */
  activations?: { target: string; samples: number; names: string[]; ranges: Record<string, [number, number][]> };
}

export interface ExperimentState {
  file: string;
  fileName: string;
  phase: 'setup' | 'running' | 'done' | 'error' | 'cancelled';
  configs: ExperimentConfigOption[];
  calibrators: string[];
  algorithms: ExperimentAlgorithmOption[];
  selection: { configs: string[]; calibrators: string[]; algorithms: ExperimentAlgorithmId[]; activations?: boolean };
  data?: string;
  /** Why the model cannot run here (not ONNX, untrusted workspace): the view explains instead of offering Run. */
  unavailable?: string;
  progress?: { done: number; total: number; what: string };
  result?: ExperimentResult;
  error?: string;
}

export type ToExperiment = { type: 'experimentState'; state: ExperimentState };

export type FromExperiment =
  | { type: 'ready' }
  | LogMessage
  | { type: 'run'; configs: string[]; calibrators: string[]; algorithms: ExperimentAlgorithmId[]; activations?: boolean }
  | { type: 'cancel' }
  | { type: 'chooseData' }
  | { type: 'clearData' }
  | { type: 'exportCsv' }
  | { type: 'exportMarkdown' }
  | { type: 'exportPng'; chart: string; dataUrl: string };

const ID = /^[a-z0-9][a-z0-9-]{0,31}$/;

function ids(v: unknown, max: number): v is string[] {
  return Array.isArray(v) && v.length > 0 && v.length <= max && v.every((x) => typeof x === 'string' && ID.test(x)) && new Set(v).size === v.length;
}

/** Validate a message from the Experiment view; undefined for anything malformed. Ids are checked against the catalogue by the host. */
export function parseFromExperiment(raw: unknown): FromExperiment | undefined {
  if (!isPlainObject(raw)) return undefined;
  switch (raw.type) {
    case 'ready': case 'cancel': case 'chooseData': case 'clearData': case 'exportCsv': case 'exportMarkdown':
      return Object.keys(raw).length === 1 ? { type: raw.type } : undefined;
    case 'log':
      return parseLog(raw);
    case 'run': {
      if (!ids(raw.configs, 64) || !ids(raw.calibrators, 8) || !ids(raw.algorithms, 3)) return undefined;
      const algorithms = raw.algorithms;
      if (!algorithms.every((a): a is ExperimentAlgorithmId => (EXPERIMENT_ALGORITHM_IDS as readonly string[]).includes(a))) return undefined;
      if (Object.keys(raw).some((k) => !['type', 'configs', 'calibrators', 'algorithms', 'activations'].includes(k))) return undefined;
      if (raw.activations === undefined) return { type: 'run', configs: raw.configs, calibrators: raw.calibrators, algorithms };
      return typeof raw.activations === 'boolean' ? { type: 'run', configs: raw.configs, calibrators: raw.calibrators, algorithms, activations: raw.activations } : undefined;
    }
    case 'exportPng':
      return parsePngMessage(raw);
    default:
      return undefined;
  }
}

/** The Pareto frontier of (bytes, effect): rows no other row beats on both, smallest first. */
export function paretoFrontier<T extends { bytes: number; effect: number }>(rows: readonly T[]): T[] {
  const sorted = [...rows].filter((r) => Number.isFinite(r.effect)).sort((a, b) => a.bytes - b.bytes || a.effect - b.effect);
  const out: T[] = [];
  for (const r of sorted) if (!out.length || r.effect < out[out.length - 1].effect) out.push(r);
  return out;
}

/** One line per GPTQ / AWQ run: which weights it quantized and which it rounded to nearest, and why. */
export function calibratedNotes(r: ExperimentResult): string[] {
  return r.rows.filter((x) => x.calibrated).map((x) => {
    const c = x.calibrated!;
    const why = [...new Set(c.roundedToNearest.map((w) => w.reason))];
    return `${x.config} ${algorithmLabel(x.algorithm)}: ${c.weights} of ${c.weights + c.roundedToNearest.length} weights by ${algorithmLabel(x.algorithm)}${c.roundedToNearest.length ? `; rounded to nearest: ${c.roundedToNearest.map((w) => w.name).join(', ')} (${why.join('; ')})` : ''}`;
  });
}

function cell(v: unknown): string {
  const s = v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function experimentCsv(r: ExperimentResult): string {
  const head = ['config', 'calibrator', 'algorithm', 'bytes', 'float_bytes', 'effect', 'output', 'kl', 'sqnr_db', 'cosine', 'max_abs', 'seconds', 'data'];
  const lines = [head.join(',')];
  for (const x of r.rows) for (const o of x.outputs) lines.push([x.config, x.calibrator, x.algorithm, x.bytes, x.floatBytes, x.effect, o.output, o.kl, o.sqnrDb, o.cosine, o.maxAbs, x.seconds.toFixed(2), r.data].map(cell).join(','));
  return lines.join('\n') + '\n';
}

export function experimentMarkdown(fileName: string, r: ExperimentResult): string {
  const front = new Set(paretoFrontier(r.rows));
  const md = [
    `# Quantization experiment: ${fileName}`, '',
    `Measured by running the model on ${r.samples} ${r.data === 'synthetic' ? '**synthetic** (not real data)' : 'real'} samples (${r.dataSource}); every weight matrix quantized at once under each config, rounded by each run's algorithm (RTN: to nearest; GPTQ / AWQ: fitted to this data, as Quantize Model… writes them for onnx-int4).`, '',
    '| config | calibrator | algorithm | size MB | % of float | effect | first output SQNR dB | cosine | Pareto |', '|---|---|---|---:|---:|---:|---:|---:|:---:|',
    ...r.rows.map((x) => `| ${x.config} | ${x.calibrator} | ${algorithmLabel(x.algorithm)} | ${(x.bytes / 1e6).toFixed(3)} | ${((100 * x.bytes) / x.floatBytes).toFixed(1)} | ${x.effect.toPrecision(3)} | ${x.outputs[0]?.sqnrDb.toFixed(1) ?? '-'} | ${x.outputs[0]?.cosine.toFixed(5) ?? '-'} | ${front.has(x) ? '★' : ''} |`),
    '', 'effect: mean KL divergence of the outputs for classifier outputs, else the noise-to-signal power ratio Σ(Δ²)/Σ(ref²).', '',
    ...calibratedNotes(r).map((n) => `- ${n}`),
    ...(r.notRun ?? []).map((n) => `- not run: ${n}`),
    ...(r.notRun?.length || calibratedNotes(r).length ? [''] : []),
  ];
  return md.join('\n');
}

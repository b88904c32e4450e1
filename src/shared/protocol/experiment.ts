/**
 * Messages between the extension host and the Experiment view: the grid of
 * choices (catalogue configs × weight-range calibrator; RTN, the algorithm the
 * whole-model evaluation runs), the run's progress, and its results: per
 * config and calibrator the model's size and how far its outputs moved
 * (measured by running it), plus the weight-space error per layer.
 */
import { isPlainObject, parseLog, parsePngMessage, type LogMessage } from './common';

export interface ExperimentConfigOption { id: string; label: string; format: string; granularity: string; bits: number }

export interface ExperimentRow {
  config: string;
  calibrator: string;
  algorithm: 'rtn';
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
  /** Activation clip ranges per calibrator (uint8 per-tensor, asymmetric): the widest activations, by min-max range. */
  activations?: { target: string; samples: number; names: string[]; ranges: Record<string, [number, number][]> };
}

export interface ExperimentState {
  file: string;
  fileName: string;
  phase: 'setup' | 'running' | 'done' | 'error' | 'cancelled';
  configs: ExperimentConfigOption[];
  calibrators: string[];
  /** Why GPTQ / AWQ are not in the grid. */
  algorithmsNote: string;
  selection: { configs: string[]; calibrators: string[]; activations?: boolean };
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
  | { type: 'run'; configs: string[]; calibrators: string[]; activations?: boolean }
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
    case 'run':
      if (!ids(raw.configs, 64) || !ids(raw.calibrators, 8)) return undefined;
      if (raw.activations === undefined) return { type: 'run', configs: raw.configs, calibrators: raw.calibrators };
      return typeof raw.activations === 'boolean' ? { type: 'run', configs: raw.configs, calibrators: raw.calibrators, activations: raw.activations } : undefined;
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
    `Measured by running the model on ${r.samples} ${r.data === 'synthetic' ? '**synthetic** (not real data)' : 'real'} samples (${r.dataSource}); every weight matrix quantized at once under each config (RTN).`, '',
    '| config | calibrator | size MB | % of float | effect | first output SQNR dB | cosine | Pareto |', '|---|---|---:|---:|---:|---:|---:|:---:|',
    ...r.rows.map((x) => `| ${x.config} | ${x.calibrator} | ${(x.bytes / 1e6).toFixed(3)} | ${((100 * x.bytes) / x.floatBytes).toFixed(1)} | ${x.effect.toPrecision(3)} | ${x.outputs[0]?.sqnrDb.toFixed(1) ?? '-'} | ${x.outputs[0]?.cosine.toFixed(5) ?? '-'} | ${front.has(x) ? '★' : ''} |`),
    '', 'effect: mean KL divergence of the outputs for classifier outputs, else the noise-to-signal power ratio Σ(Δ²)/Σ(ref²).', '',
  ];
  return md.join('\n');
}

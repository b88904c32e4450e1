/**
 * Messages between the extension host and the Quantize wizard: the host
 * owns the state (target, data, the plan problem and its frontier, the edits,
 * the run and its result) and sends it whole; the webview sends the user's
 * choices, each validated here before the host acts on it.
 */
import { isPlainObject, name, parseLog, type LogMessage } from './common';

export type WizardAlgo = 'rtn' | 'gptq' | 'awq';
export type ExportFormat = 'plan' | 'ort' | 'llamacpp';

export interface WizardOption { label: string; bytes: number; error: number; sqnrDb?: number }
export interface WizardLayer { name: string; params: number; op?: string; block?: number; role?: string; options: WizardOption[] }

export interface WizardResult {
  output: string;
  outputName: string;
  fileBytesBefore: number;
  fileBytesAfter: number;
  tensorsQuantized: number;
  tensorsKept: number;
  planFile?: string;
  /** Per weight: SQNR the plan predicted (sensitivity table, before writing) and SQNR of the codes read back from the written file. */
  perLayer: { name: string; choice: string; plannedDb?: number; writtenDb: number }[];
  runtime?: { runtime: string; data: 'calibration' | 'synthetic'; inputs: string[]; outputs: { name: string; cosine?: number; sqnrDb?: number; maxAbs?: number; top1Agreement?: number; meanKl?: number }[] };
  runtimeSkipped?: string;
  /** The plan's predicted total error in its metric, and (output-space) the same effect measured on the written model. */
  predicted?: { metric: 'weight' | 'output'; label: string; error: number; output?: string; measured?: number; measuredWhat?: string };
  seconds: number;
}

/**
 * The output-space measurement for the wizard's model, target and data:
 * why it cannot run, not measured yet, running, failed, or done (`cached`:
 * found in the measurement cache, nothing was run).
 */
export type WizardOutputEffect =
  | { state: 'unavailable'; why: string }
  | { state: 'none' }
  | { state: 'running'; done: number; total: number }
  | { state: 'error'; error: string }
  | { state: 'done'; data: 'real' | 'synthetic'; dataSource: string; samples: number; cached: boolean; output: string; outputKind: string };

/** The label of the plan's error metric, shown on the chart, the table and the result page. */
export function metricLabel(m: { kind: 'weight' | 'output'; data?: 'real' | 'synthetic'; samples?: number }): string {
  return m.kind === 'output' ? `output-space (measured on ${m.samples} ${m.data} samples)` : 'weight-space';
}

export interface WizardState {
  file: string;
  fileName: string;
  format: 'onnx' | 'safetensors' | 'gguf' | '';
  phase: 'loading' | 'error' | 'plan' | 'running' | 'done';
  /** The blocking problem (phase error) or the last failed action (shown as a banner). */
  error?: string;
  notice?: string;
  targets: { id: string; label: string; loadedBy: string }[];
  /** Why a format has no target today (safetensors). */
  noTargets?: string;
  target?: string;
  presets: string[];
  preset?: string;
  data: { path?: string; kind: 'real' | 'synthetic'; label: string };
  /** What the plan's predicted errors are: output-space effects when measured for every option, else weight-space; `note` says why not output-space. */
  metric: { kind: 'weight' | 'output'; label: string; note?: string };
  /** The user's choice when both are available (output-space by default). */
  preferOutput: boolean;
  outputEffect: WizardOutputEffect;
  /** Sensitivity being measured for the plan. */
  analysing?: { done: number; total: number };
  /** Weights the target converts, with their options (options[0] = keep). */
  layers: WizardLayer[];
  /** True when the target has per-weight configs to plan over (onnx-int4, onnx-qdq). */
  plannable: boolean;
  edits: { pinned: string[]; forced: Record<string, string>; tied: string[][] };
  frontier?: { points: { bytes: number; error: number }[]; choices: number[]; uniform: { config: string; bytes: number; error: number }[]; method: 'dp' | 'hull'; exact: boolean; ms: number };
  /** Index of the chosen frontier point (−1: a preloaded plan, not a frontier point). */
  selected: number;
  /** The chosen option per layer (index into layers[i].options). */
  assignment: number[];
  /** One setting for every weight, no plan (bits, group size, symmetric). */
  uniformMode: boolean;
  algorithm: { algo: WizardAlgo; bits: 2 | 4 | 8; groupSize: number; symmetric: boolean };
  output?: string;
  progress?: { phase: string; done: number; total: number; tensor?: string };
  result?: WizardResult;
}

/** Extension → wizard. */
export type ToWizard = { type: 'state'; state: WizardState } | { type: 'progress'; progress: NonNullable<WizardState['progress']> };

/** Wizard → extension. */
export type FromWizard =
  | { type: 'ready' }
  | LogMessage
  | { type: 'setTarget'; target: string }
  | { type: 'setPreset'; preset: string }
  | { type: 'pickData' }
  | { type: 'loadPlan' }
  | { type: 'clearData' }
  | { type: 'select'; point: number }
  | { type: 'pin'; name: string; pinned: boolean }
  | { type: 'force'; name: string; config: string | null }
  | { type: 'tie'; names: string[] }
  | { type: 'untie'; name: string }
  | { type: 'tieQkv' }
  | { type: 'setUniform'; uniform: boolean }
  | { type: 'setAlgorithm'; algo: WizardAlgo; bits: 2 | 4 | 8; groupSize: number; symmetric: boolean }
  | { type: 'measureOutput' }
  | { type: 'cancelMeasure' }
  | { type: 'setMetric'; metric: 'weight' | 'output' }
  | { type: 'quantize' }
  | { type: 'cancel' }
  | { type: 'back' }
  | { type: 'openOutput' }
  | { type: 'compare' }
  | { type: 'exportPlan'; format: ExportFormat };

const ALGOS = new Set(['rtn', 'gptq', 'awq']);
const EXPORTS = new Set(['plan', 'ort', 'llamacpp']);
const GROUP_SIZES = new Set([16, 32, 64, 128, 256]);
const SIMPLE = new Set(['ready', 'pickData', 'loadPlan', 'clearData', 'tieQkv', 'measureOutput', 'cancelMeasure', 'quantize', 'cancel', 'back', 'openOutput', 'compare']);

function index(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < 1_000_000;
}

/** Validate a message from the wizard; undefined for anything malformed. */
export function parseFromWizard(raw: unknown): FromWizard | undefined {
  if (!isPlainObject(raw) || typeof raw.type !== 'string') return undefined;
  const t = raw.type;
  if (SIMPLE.has(t)) return { type: t } as FromWizard;
  switch (t) {
    case 'log':
      return parseLog(raw);
    case 'setTarget':
      return name(raw.target, 64) ? { type: t, target: raw.target } : undefined;
    case 'setPreset':
      return name(raw.preset, 16) && /^[A-Z0-9_]+$/.test(raw.preset) ? { type: t, preset: raw.preset } : undefined;
    case 'select':
      return index(raw.point) ? { type: t, point: raw.point } : undefined;
    case 'pin':
      return name(raw.name) && typeof raw.pinned === 'boolean' ? { type: t, name: raw.name, pinned: raw.pinned } : undefined;
    case 'force':
      return name(raw.name) && (raw.config === null || name(raw.config, 64)) ? { type: t, name: raw.name, config: raw.config as string | null } : undefined;
    case 'tie': {
      const n = raw.names;
      if (!Array.isArray(n) || n.length < 2 || n.length > 64 || !n.every((x) => name(x)) || new Set(n).size !== n.length) return undefined;
      return { type: t, names: n as string[] };
    }
    case 'untie':
      return name(raw.name) ? { type: t, name: raw.name } : undefined;
    case 'setMetric':
      return raw.metric === 'weight' || raw.metric === 'output' ? { type: t, metric: raw.metric } : undefined;
    case 'setUniform':
      return typeof raw.uniform === 'boolean' ? { type: t, uniform: raw.uniform } : undefined;
    case 'setAlgorithm': {
      const { algo, bits, groupSize, symmetric } = raw;
      if (typeof algo !== 'string' || !ALGOS.has(algo)) return undefined;
      if (bits !== 2 && bits !== 4 && bits !== 8) return undefined;
      if (typeof groupSize !== 'number' || !GROUP_SIZES.has(groupSize) || typeof symmetric !== 'boolean') return undefined;
      return { type: t, algo: algo as WizardAlgo, bits, groupSize, symmetric };
    }
    case 'exportPlan':
      return typeof raw.format === 'string' && EXPORTS.has(raw.format) ? { type: t, format: raw.format as ExportFormat } : undefined;
    default:
      return undefined;
  }
}

/** The frontier point a budget picks: the largest one whose bytes fit (−1 when none does). Points are sorted by bytes. */
export function pointAtBudget(points: readonly { bytes: number }[], budgetBytes: number): number {
  let lo = 0;
  let hi = points.length - 1;
  let best = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (points[mid].bytes <= budgetBytes) {
      best = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return best;
}

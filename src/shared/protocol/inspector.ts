/**
 * Messages between the extension host and the model-inspector webview.
 * Shared by both sides (no `vscode` import, no DOM import). Everything that
 * arrives from the webview is untrusted and goes through `parseFromInspector`.
 */
import { isPlainObject, name, parseLog, parsePngExport, shortString, type LogMessage } from './common';

const COMMANDS = new Set(['quantize', 'exportReport']);
const GROUPS = new Set<string>(['none', 'block', 'op']);

export interface ModelOverview {
  fileName: string;
  path: string;
  format: string;
  formatVersion: string;
  sizeOnDisk: number;
  tensorCount: number;
  parameterCount: number;
  bytesByDtype: Record<string, number>;
  metadataKeys: number;
  /** Weight tensors (floating point, rank ≥ 2) that a weight-only quantizer would convert. */
  quantizableTensors: number;
  /** Model size if those tensors were stored as INT8 per-channel / INT4 group-128 (codes + scales + zero points); the rest kept as is. */
  sizeAtInt8: number;
  sizeAtInt4g128: number;
  /** A quantized checkpoint's scheme (GPTQ 4-bit g128, AWQ, compressed-tensors, bitsandbytes nf4), its weights shown dequantized. */
  quantization?: string;
}

export interface TensorRow {
  name: string;
  dtype: string;
  shape: number[];
  params: number;
  bytes: number;
  layer: string;
  opType: string;
  block?: number;
  /** Statistics will be computed for it (a floating-point tensor with elements). */
  analysable: boolean;
  /** A weight-only quantizer would convert it (a float tensor of rank ≥ 2). */
  quantizable: boolean;
}

/** The per-tensor figures the table shows, streamed as each tensor finishes. */
export interface StatsSummary {
  name: string;
  min: number; max: number; mean: number; std: number;
  kurtosis: number;
  /** Share of elements beyond the outlier threshold (|x − mean| > kσ). */
  outlierShare: number;
  nan: number; inf: number;
}

/** A quantization config as the views know it (from the catalogue, src/quant/configs.ts, sent by the host). */
export interface ConfigInfo {
  id: string;
  label: string;
  format: string;
  /** Code width in bits. */
  bits: number;
  granularity: 'channel' | 'group' | 'tensor';
  groupSize?: number;
  symmetric: boolean;
  /** The config behind the fixed INT8 / INT4 columns. */
  reference?: 'int8' | 'int4';
}

/** One config's measured weight error on a tensor; `bits` and `reference` come from the catalogue. */
export interface ConfigResult { config: string; bits: number; reference?: 'int8' | 'int4'; sqnrDb: number; relError: number; bytes: number; bitsPerWeight: number; calibrator: string }

export interface SensSummary { name: string; configs: ConfigResult[] }

/** Best per-layer formats under a default average-bits budget (exact knapsack search over the sensitivity table). */
export interface MixedSummary {
  averageBits: number;
  budgetBytes: number;
  /** Bytes of the quantizable weights under the assignment. */
  weightBytes: number;
  /** Whole model: the assignment plus everything kept as is. */
  modelBytes: number;
  /** Total squared weight error of the assignment, and of uniform INT4 g128. */
  error: number;
  int4g128Error: number;
  int4g128Bytes: number;
  /** How many layers take each format. */
  counts: Record<string, number>;
  /** The search was exact (sizes on the budget grid), else within its stated bound. */
  exact: boolean;
}

/** Everything the tensor detail needs, sent when a tensor is selected. */
export interface TensorDetail {
  name: string;
  shape: number[];
  histogram: { min: number; max: number; counts: number[] };
  percentiles: { q: number; value: number }[];
  /** Largest |x| with their positions as index tuples. */
  top: { value: number; index: number[] }[];
  outlierSigma: number;
  channels?: { axis: number; min: number[]; max: number[]; outlierChannels: number[] };
  configs?: ConfigResult[];
}

/** One activation in the Activations view (measured by running the model; see pipelines/activationReport.ts). */
export interface ActivationRow {
  name: string;
  dims: number[];
  /** Finite values seen, and NaN / ±Inf kept out of the histogram (masks). */
  count: number;
  nonFinite: number;
  min: number;
  max: number;
  /** q in percent (0.1, 1, 99, 99.9). */
  percentiles: { q: number; value: number }[];
  /** Each activation calibrator's clip range (min-max, percentile, MSE, entropy) for the view's target. */
  clips: Record<string, { lo: number; hi: number }>;
  /** Exact counts over [lo, hi] (whole bins of the collector's histogram). */
  histogram: { lo: number; hi: number; counts: number[] };
  channelAxis: number;
  /** Per-channel max |x| against the median channel; ratio null when the median channel is all zero. */
  outliers: { channels: number; median: number; ratio: number | null; flagged: number; top: { channel: number; max: number; ratio: number | null }[] };
}

export interface ActivationsResult {
  /** 'synthetic': generated from the declared input shapes; every view labels it SYNTHETIC. */
  data: 'real' | 'synthetic';
  dataSource: string;
  samples: number;
  provider: string;
  providerNote?: string;
  /** The quantization the calibrators chose clip ranges for, e.g. "uint8 per-tensor, asymmetric". */
  target: string;
  calibrators: string[];
  /** The percentile calibrator's percentile. */
  percentile: number;
  rows: ActivationRow[];
  /** Activations captured that held no finite value. */
  empty: number;
  seconds: number;
  cached?: boolean;
}

/** The Activations view's state, sent whole on every change. */
export interface ActivationsState {
  /** Why the model cannot be run here (not ONNX, untrusted workspace); the view shows it instead of Run. */
  unavailable?: string;
  phase: 'idle' | 'running' | 'done' | 'cancelled' | 'error';
  /** The data file or folder chosen; none means synthetic inputs. */
  data?: string;
  samples: number;
  progress?: { done: number; total: number };
  result?: ActivationsResult;
  error?: string;
}

/** Which sensitivity the table's effect column and the overview show: measured on the model's outputs when a run exists. */
export interface OutputEffects {
  config: string;
  data: 'real' | 'synthetic';
  dataSource: string;
  samples: number;
  /** What the effect is (KL of the outputs for classifiers, noise-to-signal otherwise). */
  metric: string;
  effects: Record<string, number>;
}

export interface AnalysisProgress { tensorsDone: number; tensorsTotal: number; fraction: number; phase: 'statistics' | 'sensitivity' }

/** Extension → inspector. */
export type ToInspector =
  | { type: 'loading'; fileName: string }
  | { type: 'overview'; overview: ModelOverview; tensors: TensorRow[]; configs: ConfigInfo[] }
  | { type: 'stats'; items: StatsSummary[] }
  | { type: 'sensitivity'; items: SensSummary[] }
  | { type: 'mixed'; mixed: MixedSummary }
  | { type: 'reveal'; name: string }
  | { type: 'progress'; progress: AnalysisProgress }
  | { type: 'analysisDone'; state: 'complete' | 'cancelled' | 'failed'; message?: string; failed: number; firstFailure?: string }
  | { type: 'detail'; detail: TensorDetail }
  | { type: 'exported'; what: 'csv' | 'png'; path: string }
  | { type: 'activations'; state: ActivationsState }
  | { type: 'outputEffects'; output: OutputEffects | null }
  | { type: 'error'; message: string };

export type SortKey =
  | 'name' | 'layer' | 'opType' | 'dtype' | 'shape' | 'params'
  | 'min' | 'max' | 'mean' | 'std' | 'kurtosis' | 'outlierShare' | 'sqnr8' | 'sqnr4' | 'sqnrSel' | 'risk' | 'effect';
export const SORT_KEYS: readonly SortKey[] = ['name', 'layer', 'opType', 'dtype', 'shape', 'params', 'min', 'max', 'mean', 'std', 'kurtosis', 'outlierShare', 'sqnr8', 'sqnr4', 'sqnrSel', 'risk', 'effect'];
export type GroupBy = 'none' | 'block' | 'op';

/** What the table shows: the host rebuilds the same view for the CSV export. */
export interface TableView {
  sort: SortKey;
  descending: boolean;
  filter: string;
  group: GroupBy;
  /** Config id of the "chosen configuration" column, the risk marker and the histogram grid. */
  config: string;
}

/** Inspector → extension. */
export type FromInspector =
  | { type: 'ready' }
  | LogMessage
  | { type: 'command'; command: 'quantize' | 'exportReport' }
  | { type: 'cancelAnalysis' }
  | { type: 'restartAnalysis' }
  | { type: 'selectTensor'; name: string }
  | { type: 'exportCsv'; view: TableView }
  | { type: 'exportPng'; chart: string; dataUrl: string }
  | { type: 'activationsRun'; samples: number }
  | { type: 'activationsCancel' }
  | { type: 'activationsChooseData' }
  | { type: 'activationsSynthetic' };

const SORTS = new Set<string>(SORT_KEYS);

export function parseTableView(v: unknown): TableView | undefined {
  if (!isPlainObject(v)) return undefined;
  if (!shortString(v.sort, 32) || !SORTS.has(v.sort)) return undefined;
  if (typeof v.descending !== 'boolean') return undefined;
  if (!shortString(v.filter, 1000)) return undefined;
  if (!shortString(v.group, 16) || !GROUPS.has(v.group)) return undefined;
  if (!shortString(v.config, 64) || !/^[a-z0-9-]+$/.test(v.config)) return undefined;
  return { sort: v.sort as SortKey, descending: v.descending, filter: v.filter, group: v.group as GroupBy, config: v.config };
}

/** Validate a message from the inspector; returns undefined for anything malformed. */
export function parseFromInspector(raw: unknown): FromInspector | undefined {
  if (!isPlainObject(raw)) return undefined;
  const m = raw;
  switch (m.type) {
    case 'ready':
      return { type: 'ready' };
    case 'cancelAnalysis':
      return { type: 'cancelAnalysis' };
    case 'restartAnalysis':
      return { type: 'restartAnalysis' };
    case 'log':
      return parseLog(m);
    case 'command':
      if (typeof m.command === 'string' && COMMANDS.has(m.command)) {
        return { type: 'command', command: m.command as 'quantize' | 'exportReport' };
      }
      return undefined;
    case 'selectTensor':
      // Tensor names are looked up in the model's index, never used as paths.
      return name(m.name) ? { type: 'selectTensor', name: m.name } : undefined;
    case 'exportCsv': {
      const view = parseTableView(m.view);
      return view ? { type: 'exportCsv', view } : undefined;
    }
    case 'exportPng': {
      const png = parsePngExport(m);
      return png ? { type: 'exportPng', ...png } : undefined;
    }
    case 'activationsRun':
      return typeof m.samples === 'number' && Number.isInteger(m.samples) && m.samples >= 1 && m.samples <= 1024 ? { type: 'activationsRun', samples: m.samples } : undefined;
    case 'activationsCancel':
    case 'activationsChooseData':
    case 'activationsSynthetic':
      return { type: m.type };
    default:
      return undefined;
  }
}

/**
 * Messages between the extension host and the model-inspector webview.
 * Shared by both sides (no `vscode` import, no DOM import). Everything that
 * arrives from a webview is untrusted and goes through `parseFromWebview`.
 */

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

/** What the Sensitivity panel shows: the active inspector's weights, most sensitive first. */
export interface SensitivityPanelData {
  file: string;
  fileName: string;
  /** The config the ranking is by (the INT4 reference). */
  config: string;
  measured: number;
  quantizable: number;
  rows: { name: string; layer: string; opType: string; params: number; sqnrDb: number; sqnrInt8?: number; risk?: 'low' | 'medium' | 'high' }[];
}

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

export interface AnalysisProgress { tensorsDone: number; tensorsTotal: number; fraction: number; phase: 'statistics' | 'sensitivity' }

/** Extension → webview. */
export type ToWebview =
  | { type: 'loading'; fileName: string }
  | { type: 'overview'; overview: ModelOverview; tensors: TensorRow[]; configs: ConfigInfo[] }
  | { type: 'stats'; items: StatsSummary[] }
  | { type: 'sensitivity'; items: SensSummary[] }
  | { type: 'mixed'; mixed: MixedSummary }
  | { type: 'sensitivityPanel'; data: SensitivityPanelData | null }
  | { type: 'reveal'; name: string }
  | { type: 'progress'; progress: AnalysisProgress }
  | { type: 'analysisDone'; state: 'complete' | 'cancelled' | 'failed'; message?: string; failed: number; firstFailure?: string }
  | { type: 'detail'; detail: TensorDetail }
  | { type: 'exported'; what: 'csv' | 'png'; path: string }
  | { type: 'error'; message: string };

export type SortKey =
  | 'name' | 'layer' | 'opType' | 'dtype' | 'shape' | 'params'
  | 'min' | 'max' | 'mean' | 'std' | 'kurtosis' | 'outlierShare' | 'sqnr8' | 'sqnr4' | 'sqnrSel' | 'risk';
export const SORT_KEYS: readonly SortKey[] = ['name', 'layer', 'opType', 'dtype', 'shape', 'params', 'min', 'max', 'mean', 'std', 'kurtosis', 'outlierShare', 'sqnr8', 'sqnr4', 'sqnrSel', 'risk'];
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

/** Webview → extension. */
export type FromWebview =
  | { type: 'ready' }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string }
  | { type: 'command'; command: 'quantize' | 'exportReport' }
  | { type: 'cancelAnalysis' }
  | { type: 'restartAnalysis' }
  | { type: 'selectTensor'; name: string }
  | { type: 'revealTensor'; file: string; name: string }
  | { type: 'exportCsv'; view: TableView }
  | { type: 'exportPng'; chart: string; dataUrl: string };

const COMMANDS = new Set(['quantize', 'exportReport']);
const LEVELS = new Set(['info', 'warn', 'error']);
const GROUPS = new Set<string>(['none', 'block', 'op']);
const SORTS = new Set<string>(SORT_KEYS);
const PNG_PREFIX = 'data:image/png;base64,';
/** A 4k chart at 4 bytes a pixel, base64: far above any real chart, low enough to refuse a flood. */
export const MAX_PNG_DATA_URL = 48 * 1024 * 1024;

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function shortString(v: unknown, max: number): v is string {
  return typeof v === 'string' && v.length <= max;
}

export function parseTableView(v: unknown): TableView | undefined {
  if (!isPlainObject(v)) return undefined;
  if (!shortString(v.sort, 32) || !SORTS.has(v.sort)) return undefined;
  if (typeof v.descending !== 'boolean') return undefined;
  if (!shortString(v.filter, 1000)) return undefined;
  if (!shortString(v.group, 16) || !GROUPS.has(v.group)) return undefined;
  if (!shortString(v.config, 64) || !/^[a-z0-9-]+$/.test(v.config)) return undefined;
  return { sort: v.sort as SortKey, descending: v.descending, filter: v.filter, group: v.group as GroupBy, config: v.config };
}

/** Validate a message from a webview; returns undefined for anything malformed. */
export function parseFromWebview(raw: unknown): FromWebview | undefined {
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
      if (typeof m.level === 'string' && LEVELS.has(m.level) && shortString(m.message, 10_000)) {
        return { type: 'log', level: m.level as 'info' | 'warn' | 'error', message: m.message };
      }
      return undefined;
    case 'command':
      if (typeof m.command === 'string' && COMMANDS.has(m.command)) {
        return { type: 'command', command: m.command as 'quantize' | 'exportReport' };
      }
      return undefined;
    case 'selectTensor':
      // Tensor names are looked up in the model's index, never used as paths.
      if (shortString(m.name, 4096) && m.name.length > 0) return { type: 'selectTensor', name: m.name };
      return undefined;
    case 'revealTensor':
      // The file is only matched against open inspectors, never opened from here.
      if (shortString(m.file, 4096) && m.file.length > 0 && shortString(m.name, 4096) && m.name.length > 0) return { type: 'revealTensor', file: m.file, name: m.name };
      return undefined;
    case 'exportCsv': {
      const view = parseTableView(m.view);
      return view ? { type: 'exportCsv', view } : undefined;
    }
    case 'exportPng':
      if (!shortString(m.chart, 40) || !/^[a-z0-9-]+$/.test(m.chart)) return undefined;
      if (!shortString(m.dataUrl, MAX_PNG_DATA_URL) || !m.dataUrl.startsWith(PNG_PREFIX)) return undefined;
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(m.dataUrl.slice(PNG_PREFIX.length))) return undefined;
      return { type: 'exportPng', chart: m.chart, dataUrl: m.dataUrl };
    default:
      return undefined;
  }
}

/** The PNG bytes of a validated exportPng message; throws if they are not a PNG. */
export function pngBytes(dataUrl: string): Uint8Array {
  const b64 = dataUrl.slice(PNG_PREFIX.length);
  const bin = typeof atob === 'function' ? atob(b64) : '';
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (out.length < 8 || sig.some((b, i) => out[i] !== b)) throw new Error('exported chart is not a PNG image');
  return out;
}

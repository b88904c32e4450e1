/**
 * Messages between the extension host and the Compare view: the state of
 * one comparison of two model files (running with progress, done with the
 * per-weight table and the output section, failed, cancelled), and what the
 * view may ask for. The side and row shapes are declared here once;
 * pipelines/compare.ts uses them for its results.
 */
import { isPlainObject, parseLog, parsePngMessage, type LogMessage } from './common';

export interface CompareSide { file: string; format: string; sizeOnDisk: number; weights: number }

export interface CompareRow {
  name: string;
  /** B's name when it differs (matched through the naming map). */
  nameB?: string;
  matchedBy: 'name' | 'naming-map';
  typeA: string;
  typeB: string;
  shapeA: number[];
  shapeB: number[];
  numel: number;
  bytesA: number;
  bytesB: number;
  sqnrDb?: number;
  cosine?: number;
  maxAbs?: number;
  mse?: number;
  /** B is stored transposed relative to A (2-D). */
  transposed?: boolean;
  /** A LLaMA attn_q / attn_k from GGUF: its rows were put back in Hugging Face order first (llama.cpp's conversion interleaves the rotary halves). */
  ropeReordered?: boolean;
  histogram?: { min: number; max: number; a: number[]; b: number[] };
  /** Why the pair could not be compared (the metrics are then absent). */
  error?: string;
}

export type OutputKind = 'probs' | 'logits' | 'values';

/** How one graph output moved (runtime/outputMetrics.ts computes it). */
export interface CompareOutputMetric {
  output: string;
  kind: OutputKind;
  sqnrDb: number;
  cosine: number;
  maxAbs: number;
  /** Mean KL over rows of the last axis (probs / logits only). */
  kl?: number;
  /** KL for classifier outputs, else Σ(Δ²)/Σ(ref²). */
  effect: number;
  /** Elements compared. */
  elements: number;
}

export interface CompareData {
  a: CompareSide;
  b: CompareSide;
  tensors: CompareRow[];
  onlyA: { name: string; type: string }[];
  onlyB: { name: string; type: string }[];
  outputs?: { data: 'real' | 'synthetic'; dataSource: string; samples: number; outputs: CompareOutputMetric[]; seconds: number };
  outputsSkipped?: string;
  seconds: number;
}

export type ComparePhase = 'running' | 'done' | 'error' | 'cancelled';

export interface CompareState {
  phase: ComparePhase;
  /** Display names of A and B (base names). */
  nameA: string;
  nameB: string;
  /** The data file used for the outputs, if the user chose one. */
  data?: string;
  progress?: { done: number; total: number; what: string };
  result?: CompareData;
  error?: string;
}

/** Extension → Compare view. */
/** `persist`: what the view keeps (setState) so the panel can be reopened after a window reload. */
export type ToCompare = { type: 'compareState'; state: CompareState; persist: { fileA: string; fileB: string; data?: string } };

/** Compare view → extension. */
export type FromCompare =
  | { type: 'ready' }
  | LogMessage
  | { type: 'cancel' }
  | { type: 'rerun' }
  | { type: 'swap' }
  | { type: 'chooseData' }
  | { type: 'exportCsv' }
  | { type: 'exportPng'; chart: string; dataUrl: string };

/** Validate a message from the Compare view; undefined for anything malformed. */
export function parseFromCompare(raw: unknown): FromCompare | undefined {
  if (!isPlainObject(raw)) return undefined;
  switch (raw.type) {
    case 'ready': case 'cancel': case 'rerun': case 'swap': case 'chooseData': case 'exportCsv':
      return Object.keys(raw).length === 1 ? { type: raw.type } : undefined;
    case 'log':
      return parseLog(raw);
    case 'exportPng':
      return parsePngMessage(raw);
    default:
      return undefined;
  }
}

function csvCell(v: unknown): string {
  const s = v === undefined ? '' : typeof v === 'number' && !Number.isFinite(v) ? (Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf') : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The per-weight table as CSV (one row per pair, worst first, as shown). */
export function compareCsv(d: CompareData): string {
  const head = ['tensor', 'tensor_b', 'matched_by', 'type_a', 'type_b', 'shape_a', 'shape_b', 'numel', 'bytes_a', 'bytes_b', 'sqnr_db', 'cosine', 'max_abs', 'mse', 'error'];
  const rows = d.tensors.map((t) => [t.name, t.nameB ?? t.name, t.matchedBy, t.typeA, t.typeB, t.shapeA.join('x'), t.shapeB.join('x'), t.numel, t.bytesA, t.bytesB, t.sqnrDb, t.cosine, t.maxAbs, t.mse, t.error]);
  return [head, ...rows].map((r) => r.map(csvCell).join(',')).join('\n') + '\n';
}

/**
 * Webview messages travel as JSON, which has no ±Infinity or NaN (SQNR of
 * identical tensors is +∞): the host sends them as strings, the view revives them.
 */
export function toWire<T>(v: T): T {
  return JSON.parse(JSON.stringify(v, (_k, x: unknown) => (typeof x === 'number' && !Number.isFinite(x) ? String(x) : x))) as T;
}

export function fromWire<T>(v: T): T {
  return JSON.parse(JSON.stringify(v), (_k, x: unknown) => (x === 'Infinity' ? Infinity : x === '-Infinity' ? -Infinity : x === 'NaN' ? NaN : x)) as T;
}

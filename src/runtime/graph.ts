/**
 * In-memory rewriting of an ONNX ModelProto for evaluation, through the
 * reader's protobufjs schema (formats/onnx/schema.ts):
 * - `liftWeights`: weight initializers and Constant-node weights (also inside
 *   If/Loop/Scan subgraphs) become main-graph inputs, so one session serves
 *   every quantized variant: the caller feeds the quantized tensor where the
 *   float one was, or the original bytes (`weightData`) for the reference;
 * - `addOutputs`: intermediate tensors become graph outputs, to capture activations;
 * - `cutSuffix`: keep only the nodes downstream of some names (a changed
 *   weight), their other inputs becoming graph inputs, so a variant
 *   recomputes only what it changes.
 * Weights are addressed as the reader names them: tensor name + graph path
 * ("main", "main/If_0/then_branch").
 */
import * as protobuf from 'protobufjs';
import { onnxRoot } from '../formats/onnx/reader';
import { FormatError } from '../formats/types';
import type { FeedDType, FeedTensor } from './calibData';

// Decoded message shapes (what the rewriting touches).
export interface PTensor {
  dims?: unknown[]; data_type?: number; name?: string; raw_data?: Uint8Array; float_data?: number[]; data_location?: number;
  external_data?: unknown[];
}
export interface PAttr { name?: string; type?: number; t?: PTensor; g?: PGraph; graphs?: PGraph[] }
export interface PNode { input?: string[]; output?: string[]; name?: string; op_type?: string; domain?: string; attribute?: PAttr[] }
export interface PValueInfo { name?: string; type?: { tensor_type?: { elem_type?: number; shape?: { dim?: { dim_value?: unknown; dim_param?: string }[] } } } }
export interface PGraph { node?: PNode[]; name?: string; initializer?: PTensor[]; input?: PValueInfo[]; output?: PValueInfo[]; value_info?: PValueInfo[] }
export interface PModel { graph?: PGraph; ir_version?: unknown; opset_import?: unknown[] }

function modelType(): protobuf.Type {
  return onnxRoot().lookupType('onnx.ModelProto');
}

export function decodeModel(bytes: Uint8Array, file: string): PModel {
  try {
    const m = modelType().decode(bytes) as unknown as PModel;
    if (!m.graph) throw new Error('no graph');
    return m;
  } catch (e) {
    throw new FormatError(file, 'ModelProto', e instanceof Error ? e.message : String(e));
  }
}

export function encodeModel(m: PModel): Uint8Array {
  return modelType().encode(m as unknown as protobuf.Message).finish();
}

/** ONNX element type codes of the feed types. */
export const ONNX_ELEM: Record<FeedDType, number> = {
  float32: 1, uint8: 2, int8: 3, uint16: 4, int16: 5, int32: 6, int64: 7, bool: 9, float16: 10, float64: 11, uint32: 12, uint64: 13,
};
const FEED_OF: Record<number, FeedDType> = Object.fromEntries(Object.entries(ONNX_ELEM).map(([k, v]) => [v, k as FeedDType]));

function toInt(v: unknown): number {
  if (typeof v === 'number') return v;
  const l = v as { low: number; high: number; unsigned?: boolean };
  return (l.unsigned ? l.high >>> 0 : l.high | 0) * 2 ** 32 + (l.low >>> 0);
}

/** The node name the reader uses (its name, or `${op_type}_${index}`), so graph paths agree with it. */
function nodeName(n: PNode, idx: number): string {
  return n.name || `${n.op_type ?? ''}_${idx}`;
}

/** Every (sub)graph with its path, parents first. */
export function walkGraphs(g: PGraph, gpath = 'main', out: { g: PGraph; path: string }[] = []): { g: PGraph; path: string }[] {
  out.push({ g, path: gpath });
  (g.node ?? []).forEach((n, idx) => {
    for (const a of n.attribute ?? []) {
      if (a.g) walkGraphs(a.g, `${gpath}/${nodeName(n, idx)}/${a.name ?? ''}`, out);
      (a.graphs ?? []).forEach((sg, k) => walkGraphs(sg, `${gpath}/${nodeName(n, idx)}/${a.name ?? ''}[${k}]`, out));
    }
  });
  return out;
}

/** Names a subgraph reads from enclosing scopes (used but not defined inside it). */
function freeNames(g: PGraph, out = new Set<string>()): Set<string> {
  const defined = new Set<string>();
  for (const i of g.input ?? []) if (i.name) defined.add(i.name);
  for (const t of g.initializer ?? []) if (t.name) defined.add(t.name);
  for (const n of g.node ?? []) {
    for (const i of n.input ?? []) if (i && !defined.has(i)) out.add(i);
    for (const a of n.attribute ?? []) {
      const subs = [...(a.g ? [a.g] : []), ...(a.graphs ?? [])];
      for (const sg of subs) for (const f of freeNames(sg)) if (!defined.has(f)) out.add(f);
    }
    for (const o of n.output ?? []) if (o) defined.add(o);
  }
  for (const o of g.output ?? []) if (o.name && !defined.has(o.name)) out.add(o.name);
  return out;
}

/** Explicit inputs and names a node's subgraphs read from outside. */
export function nodeReads(n: PNode): string[] {
  const r = (n.input ?? []).filter((x) => x);
  for (const a of n.attribute ?? []) {
    for (const sg of [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]) for (const f of freeNames(sg)) r.push(f);
  }
  return r;
}

/** Float data of a TensorProto (raw_data or float_data), copied into its own buffer. */
export function tensorData(t: PTensor, where: string): FeedTensor {
  const dtype = FEED_OF[t.data_type ?? 0];
  const dims = (t.dims ?? []).map(toInt);
  const n = dims.reduce((a, b) => a * b, 1);
  if (dtype !== 'float32') throw new Error(`${where}: only float32 weights can be fed (this one is element type ${t.data_type})`);
  if ((t.data_location ?? 0) === 1) throw new Error(`${where}: external data is not supported by the in-memory rewriting yet`);
  const data = new Float32Array(n);
  if (t.raw_data && t.raw_data.length) {
    if (t.raw_data.length !== 4 * n) throw new Error(`${where}: raw_data holds ${t.raw_data.length} bytes for ${n} float32`);
    new Uint8Array(data.buffer).set(t.raw_data);
  } else {
    const fd = t.float_data ?? [];
    if (fd.length !== n) throw new Error(`${where}: float_data holds ${fd.length} values for ${n}`);
    data.set(fd);
  }
  return { dtype, dims, data };
}

export interface WeightRef { name: string; graph: string }
export interface LiftedWeight extends WeightRef {
  /** The main-graph input that now carries it. */
  input: string;
  /** The original value (exact bytes): feed it for the reference outputs. */
  original: FeedTensor;
}

function valueInfo(name: string, elem: number, dims?: readonly (number | string)[]): PValueInfo {
  const vi: PValueInfo = { name, type: { tensor_type: { elem_type: elem } } };
  if (dims) vi.type!.tensor_type!.shape = { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) };
  return vi;
}

function allNames(m: PModel): Set<string> {
  const s = new Set<string>();
  for (const { g } of walkGraphs(m.graph!)) {
    for (const i of g.input ?? []) if (i.name) s.add(i.name);
    for (const t of g.initializer ?? []) if (t.name) s.add(t.name);
    for (const n of g.node ?? []) for (const x of [...(n.input ?? []), ...(n.output ?? [])]) if (x) s.add(x);
  }
  return s;
}

/** Rename a name in a graph and everything nested in it (the lifted name is read, never written, there). */
function renameIn(g: PGraph, from: string, to: string): void {
  for (const n of g.node ?? []) {
    n.input = (n.input ?? []).map((x) => (x === from ? to : x));
    for (const a of n.attribute ?? []) for (const sg of [...(a.g ? [a.g] : []), ...(a.graphs ?? [])]) renameIn(sg, from, to);
  }
  for (const o of g.output ?? []) if (o.name === from) o.name = to;
}

/**
 * Turn the chosen float32 weights into main-graph inputs (in place). A
 * Constant node's weight loses its node; a subgraph's weight is read from
 * the enclosing scope under its own name, or `name@graph` when that name is
 * taken elsewhere in the model. Returns the lifted weights in model order.
 */
export function liftWeights(m: PModel, want: (w: WeightRef) => boolean, file = 'model'): LiftedWeight[] {
  const main = m.graph!;
  const taken = allNames(m);
  const counts = new Map<string, number>();
  for (const { g } of walkGraphs(main)) {
    for (const t of g.initializer ?? []) if (t.name) counts.set(t.name, (counts.get(t.name) ?? 0) + 1);
    for (const n of g.node ?? []) if (n.op_type === 'Constant') for (const o of n.output ?? []) counts.set(o, (counts.get(o) ?? 0) + 1);
  }
  const lifted: LiftedWeight[] = [];
  const mainInputs = new Set((main.input ?? []).map((i) => i.name));
  const newInputs: PValueInfo[] = [];
  for (const { g, path: gpath } of walkGraphs(main)) {
    const lift = (name: string, t: PTensor): boolean => {
      if (t.data_type !== ONNX_ELEM.float32 || !want({ name, graph: gpath })) return false;
      const original = tensorData(t, `${file}: tensor ${name} (${gpath})`);
      let input = name;
      if (gpath !== 'main' && ((counts.get(name) ?? 0) > 1 || mainInputs.has(name))) {
        input = `${name}@${gpath}`;
        while (taken.has(input)) input += '_';
        renameIn(g, name, input);
        taken.add(input);
      }
      lifted.push({ name, graph: gpath, input, original });
      if (!(gpath === 'main' && mainInputs.has(name))) newInputs.push(valueInfo(input, ONNX_ELEM.float32, original.dims));
      return true;
    };
    g.initializer = (g.initializer ?? []).filter((t) => !lift(t.name ?? '', t));
    g.node = (g.node ?? []).filter((n) => {
      if (n.op_type !== 'Constant' || (n.domain ?? '') !== '' || (n.output ?? []).length !== 1) return true;
      const value = (n.attribute ?? []).find((a) => a.name === 'value' && a.t);
      return !(value && lift(n.output![0], value.t!));
    });
  }
  main.input = [...(main.input ?? []), ...newInputs];
  return lifted;
}

/** Make main-graph tensors graph outputs (in place); their types are left to ONNX Runtime's inference. */
export function addOutputs(m: PModel, names: readonly string[]): void {
  const g = m.graph!;
  const have = new Set((g.output ?? []).map((o) => o.name));
  for (const n of names) if (!have.has(n)) { g.output!.push({ name: n }); have.add(n); }
}

/** Main-graph tensors that hold float activations worth capturing: every node output not computed from weights alone. */
export function activationNames(m: PModel): string[] {
  const g = m.graph!;
  const constant = constantNames(g);
  const out: string[] = [];
  for (const n of g.node ?? []) for (const o of n.output ?? []) if (o && !constant.has(o)) out.push(o);
  return out;
}

/** Names computable from initializers and Constant nodes alone (shape arithmetic, folded weights). */
function constantNames(g: PGraph, extraInputs: ReadonlySet<string> = new Set()): Set<string> {
  const c = new Set<string>();
  const inputs = new Set((g.input ?? []).map((i) => i.name));
  for (const t of g.initializer ?? []) if (t.name && !inputs.has(t.name)) c.add(t.name);
  for (const n of g.node ?? []) {
    const reads = nodeReads(n);
    if (reads.every((r) => c.has(r) && !extraInputs.has(r))) for (const o of n.output ?? []) if (o) c.add(o);
  }
  return c;
}

export interface Suffix {
  /** Graph inputs of the cut model other than the changed names: activations to feed from a capture (or original inputs). */
  boundary: string[];
  /** Original graph outputs the cut model computes; the others do not depend on the changed names. */
  outputs: string[];
  nodes: number;
}

/**
 * Cut the main graph (in place) to the nodes downstream of `changed` (main-
 * graph inputs, e.g. lifted weights), plus the constant-only nodes they
 * read. Every other tensor they read becomes a graph input (`boundary`),
 * typed by `types` (element type code per name) when known.
 */
export function cutSuffix(m: PModel, changed: readonly string[], types: ReadonlyMap<string, number> = new Map()): Suffix {
  const g = m.graph!;
  const nodes = g.node ?? [];
  const tainted = new Set(changed);
  const keep = new Array<boolean>(nodes.length).fill(false);
  nodes.forEach((n, i) => {
    if (nodeReads(n).some((r) => tainted.has(r))) {
      keep[i] = true;
      for (const o of n.output ?? []) if (o) tainted.add(o);
    }
  });
  const constant = constantNames(g, new Set(changed));
  // Constant-only producers of what the kept nodes read, walked backwards.
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => { for (const o of n.output ?? []) if (o) producer.set(o, i); });
  const stack: string[] = [];
  nodes.forEach((n, i) => { if (keep[i]) stack.push(...nodeReads(n)); });
  while (stack.length) {
    const r = stack.pop()!;
    const p = producer.get(r);
    if (p === undefined || keep[p] || !constant.has(r)) continue;
    keep[p] = true;
    stack.push(...nodeReads(nodes[p]));
  }
  const kept = nodes.filter((_, i) => keep[i]);
  const produced = new Set<string>();
  for (const n of kept) for (const o of n.output ?? []) if (o) produced.add(o);
  const inits = new Set((g.initializer ?? []).map((t) => t.name ?? ''));
  const read = new Set<string>();
  for (const n of kept) for (const r of nodeReads(n)) read.add(r);
  const boundary = [...read].filter((r) => !produced.has(r) && !inits.has(r) && !changed.includes(r));
  const oldInputs = new Map((g.input ?? []).map((i) => [i.name ?? '', i]));
  g.node = kept;
  g.initializer = (g.initializer ?? []).filter((t) => read.has(t.name ?? ''));
  g.input = [
    ...changed.map((c) => oldInputs.get(c) ?? valueInfo(c, ONNX_ELEM.float32)),
    ...boundary.map((b) => oldInputs.get(b) ?? valueInfo(b, types.get(b) ?? ONNX_ELEM.float32)),
  ];
  g.output = (g.output ?? []).filter((o) => produced.has(o.name ?? ''));
  g.value_info = [];
  return { boundary, outputs: g.output.map((o) => o.name ?? ''), nodes: kept.length };
}

/**
 * ONNX: a protobuf ModelProto decoded with protobufjs and the official schema
 * (onnx-schema.ts). Tensor bytes are not read: protobufScan.ts walks the file
 * through a small buffer and hands protobufjs a compact copy in which every
 * TensorProto.raw_data payload is a placeholder, so a raw_data field becomes an
 * offset and length into the .onnx file without its bytes ever being loaded.
 * External data is an offset and length into the file beside the model, and
 * only small typed fields (float_data, int32_data, ...) are kept decoded in
 * memory: a single field over 64 MiB, or more than 256 MiB of non-raw_data
 * content in total, is a FormatError rather than a large allocation (typed
 * fields that big do not occur in exported models; raw_data is the norm).
 * Weights are initializers and Constant-node values, in the main graph and in
 * every If/Loop/Scan subgraph; each is linked to the nodes that consume it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { ONNX_PROTO } from './schema';
import {
  ConsumerRef, DType, FormatError, GraphInfo, GraphNode, LayerLink, MetadataValue, ModelFile, ScalarDType, TensorInfo,
} from '../types';
import { ONNX_DTYPES, ONNX_DTYPE_NAMES, scalarByteLength } from '../dtypes';
import { LazyModelFile, checkedNumel, fileSize, readFully } from '../lazyModelFile';
import { parseTensorName } from '../naming';
import { scanProtobufFile } from './protobufScan';

/** protobuf messages are limited to 2 GiB; larger models must use external data. */
export const MAX_ONNX_BYTES = 2 ** 31 - 1;
const MAX_GRAPH_DEPTH = 64;
/** Ops that pass a weight through unchanged: follow them to the real consumer. */
const PASS_THROUGH = new Set(['Identity', 'Cast']);
/** Consumers that make a tensor a layer weight, in order of preference for the "main" consumer. */
const WEIGHT_OPS = new Set([
  'Conv', 'ConvTranspose', 'MatMul', 'Gemm', 'Gather', 'MatMulNBits', 'DequantizeLinear', 'LSTM', 'GRU', 'RNN',
  'QLinearConv', 'ConvInteger', 'MatMulInteger', 'QLinearMatMul', 'GatherBlockQuantized', 'Attention', 'EmbedLayerNormalization',
]);

let cachedRoot: protobuf.Root | undefined;
export function onnxRoot(): protobuf.Root {
  if (!cachedRoot) cachedRoot = protobuf.parse(ONNX_PROTO, { keepCase: true }).root;
  return cachedRoot;
}

// Decoded message shapes (only what we read).
interface LongLike { low: number; high: number; unsigned: boolean }
type Int64 = number | LongLike;
interface PEntry { key?: string; value?: string }
interface PTensor {
  dims?: Int64[]; data_type?: number; name?: string; raw_data?: Uint8Array; float_data?: number[];
  int32_data?: number[]; string_data?: Uint8Array[]; int64_data?: Int64[]; double_data?: number[];
  uint64_data?: Int64[]; external_data?: PEntry[]; data_location?: number; segment?: unknown;
}
interface PAttr {
  name?: string; type?: number; f?: number; i?: Int64; s?: Uint8Array; t?: PTensor; g?: PGraph;
  floats?: number[]; ints?: Int64[]; strings?: Uint8Array[]; tensors?: PTensor[]; graphs?: PGraph[];
}
interface PNode { input?: string[]; output?: string[]; name?: string; op_type?: string; domain?: string; attribute?: PAttr[] }
interface PDim { dim_value?: Int64; dim_param?: string }
interface PValueInfo { name?: string; type?: { tensor_type?: { elem_type?: number; shape?: { dim?: PDim[] } } } }
interface PGraph { node?: PNode[]; name?: string; initializer?: PTensor[]; input?: PValueInfo[]; output?: PValueInfo[] }
interface PModel {
  ir_version?: Int64; opset_import?: { domain?: string; version?: Int64 }[]; producer_name?: string; producer_version?: string;
  domain?: string; model_version?: Int64; doc_string?: string; graph?: PGraph; metadata_props?: PEntry[];
}

function has(o: object, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}

/** An int64 field as a number; throws when it is not exactly representable. */
function toNumber(v: Int64 | undefined, file: string, where: string): number {
  if (v === undefined) return 0;
  if (typeof v === 'number') return v;
  const n = (v.unsigned ? v.high >>> 0 : v.high | 0) * 2 ** 32 + (v.low >>> 0);
  if (!Number.isSafeInteger(n)) throw new FormatError(file, where, `integer ${n} is out of range`);
  return n;
}
function toMeta(v: Int64): number | bigint {
  if (typeof v === 'number') return v;
  const n = (v.unsigned ? v.high >>> 0 : v.high | 0) * 2 ** 32 + (v.low >>> 0);
  if (Number.isSafeInteger(n)) return n;
  return (BigInt(v.unsigned ? v.high >>> 0 : v.high | 0) << 32n) | BigInt(v.low >>> 0);
}

const utf8Decoder = new TextDecoder('utf-8');
/** A bytes field as text; an absent field decodes to protobufjs' default (an empty array), hence the check. */
function utf8(b: unknown): string {
  return b instanceof Uint8Array ? utf8Decoder.decode(b) : '';
}

interface GraphCtx {
  path: string;
  parent?: GraphCtx;
  defined: Set<string>;
  nodes: { node: PNode; info: GraphNode }[];
}
interface Use { node: PNode; info: GraphNode; inputIndex: number; ctx: GraphCtx }

class OnnxIndexer {
  readonly tensors: TensorInfo[] = [];
  /** Weight by `${graphPath}\0${name}`, with the graph it is defined in. */
  private weights = new Map<string, { t: TensorInfo; ctx: GraphCtx }>();
  private uses = new Map<string, Use[]>();
  private graphs: GraphCtx[] = [];
  readonly nodes: GraphNode[] = [];
  readonly extraFiles = new Map<string, number>();

  constructor(private file: string, private locateRaw: (raw: Uint8Array, w: string) => { offset: number; length: number }) {}

  walkGraph(g: PGraph, gpath: string, parent: GraphCtx | undefined, depth: number): GraphCtx {
    if (depth > MAX_GRAPH_DEPTH) throw new FormatError(this.file, gpath, `subgraphs nested deeper than ${MAX_GRAPH_DEPTH}`);
    const ctx: GraphCtx = { path: gpath, parent, defined: new Set(), nodes: [] };
    this.graphs.push(ctx);
    for (const vi of g.input ?? []) if (vi.name) ctx.defined.add(vi.name);
    for (const init of g.initializer ?? []) {
      const name = init.name ?? '';
      const t = this.tensorFromProto(init, name, 'initializer', gpath);
      ctx.defined.add(name);
      this.addWeight(ctx, t);
    }
    (g.node ?? []).forEach((n, idx) => {
      const opType = n.op_type ?? '';
      const nodeName = n.name || `${opType}_${idx}`;
      const attributes: Record<string, MetadataValue> = {};
      for (const a of n.attribute ?? []) attributes[a.name ?? ''] = this.attrValue(a, gpath, nodeName);
      const info: GraphNode = {
        name: nodeName, opType, domain: n.domain ?? '', inputs: (n.input ?? []).slice(), outputs: (n.output ?? []).slice(),
        attributes, graph: gpath,
      };
      this.nodes.push(info);
      ctx.nodes.push({ node: n, info });
      for (const o of n.output ?? []) if (o) ctx.defined.add(o);
      if (opType === 'Constant' && (n.domain ?? '') === '') {
        const out = (n.output ?? [])[0];
        const t = out ? this.constantValue(n, out, `${gpath}/${nodeName}`) : undefined;
        if (t) this.addWeight(ctx, t);
      }
    });
    // Subgraphs after this graph's names are known, so their references resolve outward.
    (g.node ?? []).forEach((n, idx) => {
      const nodeName = n.name || `${n.op_type ?? ''}_${idx}`;
      for (const a of n.attribute ?? []) {
        if (a.g) this.walkGraph(a.g, `${gpath}/${nodeName}/${a.name ?? ''}`, ctx, depth + 1);
        (a.graphs ?? []).forEach((sg, k) => this.walkGraph(sg, `${gpath}/${nodeName}/${a.name ?? ''}[${k}]`, ctx, depth + 1));
      }
    });
    return ctx;
  }

  /** The tensor a Constant node holds: `value`, or the scalar / list forms that become f32 or i64 tensors. */
  private constantValue(n: PNode, out: string, where: string): TensorInfo | undefined {
    const w = `tensor ${out} (in ${where})`;
    for (const a of n.attribute ?? []) {
      const inline = (dtype: 'f32' | 'i64', shape: number[], bytes: Uint8Array): TensorInfo => ({
        name: out, dtype, shape, numel: shape.length ? shape[0] : 1, byteLength: bytes.byteLength, source: 'constant',
        location: { kind: 'inline', bytes }, layer: { consumers: [] },
      });
      const i64 = (vals: Int64[]): Uint8Array => {
        const b = new Uint8Array(vals.length * 8);
        const dv = new DataView(b.buffer);
        vals.forEach((v, i) => {
          if (typeof v === 'number') {
            if (!Number.isSafeInteger(v)) throw new FormatError(this.file, w, `integer ${v} is not exact`);
            dv.setBigInt64(i * 8, BigInt(v), true);
          } else { dv.setUint32(i * 8, v.low >>> 0, true); dv.setUint32(i * 8 + 4, v.high >>> 0, true); }
        });
        return b;
      };
      switch (a.name) {
        case 'value': if (a.t) return this.tensorFromProto(a.t, out, 'constant', where); break;
        case 'value_float': return inline('f32', [], u8(Float32Array.of(a.f ?? 0)));
        case 'value_floats': return inline('f32', [(a.floats ?? []).length], u8(Float32Array.from(a.floats ?? [])));
        case 'value_int': return inline('i64', [], i64([a.i ?? 0]));
        case 'value_ints': return inline('i64', [(a.ints ?? []).length], i64(a.ints ?? []));
        default: break;
      }
    }
    return undefined;
  }

  private addWeight(ctx: GraphCtx, t: TensorInfo): void {
    t.graph = ctx.path;
    const key = `${ctx.path}\0${t.name}`;
    if (this.weights.has(key)) throw new FormatError(this.file, `tensor ${t.name}`, `defined twice in graph ${ctx.path}`);
    this.weights.set(key, { t, ctx });
    this.tensors.push(t);
  }

  private attrValue(a: PAttr, gpath: string, nodeName: string): MetadataValue {
    const summary = (t: PTensor): MetadataValue => ({
      tensor: t.name ?? '', dtype: ONNX_DTYPE_NAMES[t.data_type ?? 0] ?? String(t.data_type),
      shape: (t.dims ?? []).map((d) => toMeta(d)),
    });
    switch (a.type) {
      case 1: return a.f ?? 0;
      case 2: return toMeta(a.i ?? 0);
      case 3: return utf8(a.s);
      case 4: return a.t ? summary(a.t) : {};
      case 5: return { graph: `${gpath}/${nodeName}/${a.name ?? ''}` };
      case 6: return (a.floats ?? []).slice();
      case 7: return (a.ints ?? []).map(toMeta);
      case 8: return (a.strings ?? []).map((s) => utf8(s));
      case 9: return (a.tensors ?? []).map(summary);
      case 10: return (a.graphs ?? []).map((_, k) => ({ graph: `${gpath}/${nodeName}/${a.name ?? ''}[${k}]` }));
      default: {
        // IR < 2 files carry no type: infer it from the field present.
        if (has(a, 'f')) return a.f ?? 0;
        if (has(a, 'i')) return toMeta(a.i ?? 0);
        if (has(a, 's')) return utf8(a.s);
        if (a.t) return summary(a.t);
        if ((a.ints ?? []).length) return (a.ints ?? []).map(toMeta);
        if ((a.floats ?? []).length) return (a.floats ?? []).slice();
        return null as unknown as MetadataValue;
      }
    }
  }

  tensorFromProto(t: PTensor, name: string, source: 'initializer' | 'constant', where: string): TensorInfo {
    const w = `tensor ${name || '(unnamed)'}${where === 'main' ? '' : ` (in ${where})`}`;
    const code = t.data_type ?? 0;
    const dtype: ScalarDType | undefined = ONNX_DTYPES[code];
    if (!dtype) throw new FormatError(this.file, w, `unsupported data type ${ONNX_DTYPE_NAMES[code] ?? 'unknown'} (${code})`);
    const shape = (t.dims ?? []).map((d, i) => toNumber(d, this.file, `${w} dim ${i}`));
    const numel = checkedNumel(this.file, w, shape);
    if (t.segment) throw new FormatError(this.file, w, 'segmented tensors are not supported');
    const base = { name, dtype: dtype as DType, shape, numel, source, layer: { consumers: [] } as LayerLink };
    if (dtype === 'string') {
      const n = (t.string_data ?? []).length;
      if (n !== numel) throw new FormatError(this.file, w, `has ${n} strings for ${numel} elements`);
      return { ...base, byteLength: 0, location: { kind: 'inline', bytes: new Uint8Array(0) } };
    }
    const expect = scalarByteLength(dtype, numel);
    if (t.data_location === 1) return { ...base, byteLength: expect, location: this.external(t, w, expect) };
    if (has(t, 'raw_data') && t.raw_data) {
      const { offset, length } = this.locateRaw(t.raw_data, w);
      if (length !== expect) {
        throw new FormatError(this.file, w, `raw_data holds ${length} bytes but ${dtype} [${shape.join(', ')}] needs ${expect}`);
      }
      return { ...base, byteLength: expect, location: { kind: 'disk', file: this.file, offset, length: expect } };
    }
    const bytes = this.typedFieldBytes(t, dtype, numel, w);
    return { ...base, byteLength: bytes.byteLength, location: { kind: 'inline', bytes } };
  }

  private external(t: PTensor, w: string, expect: number): { kind: 'disk'; file: string; offset: number; length: number } {
    const kv: Record<string, string> = {};
    for (const e of t.external_data ?? []) if (e.key) kv[e.key] = e.value ?? '';
    const loc = kv.location;
    if (!loc) throw new FormatError(this.file, `${w} external_data`, 'no location');
    if (path.isAbsolute(loc) || loc.split(/[\\/]/).includes('..')) {
      throw new FormatError(this.file, `${w} external_data`, `location ${JSON.stringify(loc)} is outside the model's directory`);
    }
    const ext = path.join(path.dirname(this.file), loc);
    let size = this.extraFiles.get(ext);
    if (size === undefined) {
      try {
        size = fs.statSync(ext).size;
      } catch {
        throw new FormatError(ext, `external data of ${w} in ${path.basename(this.file)}`, 'file not found');
      }
      this.extraFiles.set(ext, size);
    }
    const parse = (k: string, dflt: number): number => {
      if (!(k in kv)) return dflt;
      if (!/^\d+$/.test(kv[k])) throw new FormatError(this.file, `${w} external_data ${k}`, `${JSON.stringify(kv[k])} is not a non-negative integer`);
      const n = Number(kv[k]);
      if (!Number.isSafeInteger(n)) throw new FormatError(this.file, `${w} external_data ${k}`, `${kv[k]} is too large`);
      return n;
    };
    const offset = parse('offset', 0);
    const length = parse('length', expect);
    if (length !== expect) throw new FormatError(this.file, `${w} external_data length`, `${length} bytes but the tensor needs ${expect}`);
    if (offset + length > size) throw new FormatError(ext, w, `bytes ${offset}..${offset + length} run past the end of the ${size}-byte file`);
    return { kind: 'disk', file: ext, offset, length };
  }

  private typedFieldBytes(t: PTensor, dtype: ScalarDType, numel: number, w: string): Uint8Array {
    const count = (field: string, arr: unknown[] | undefined, want: number): unknown[] => {
      const a = arr ?? [];
      if (a.length !== want) throw new FormatError(this.file, w, `${field} has ${a.length} values for ${want} expected (shape ${numel} elements)`);
      return a;
    };
    const i64 = (vals: Int64[], out: DataView): void => {
      vals.forEach((v, i) => {
        if (typeof v === 'number') out.setBigInt64(i * 8, BigInt(v), true);
        else { out.setUint32(i * 8, v.low >>> 0, true); out.setUint32(i * 8 + 4, v.high >>> 0, true); }
      });
    };
    switch (dtype) {
      case 'f32': return u8(Float32Array.from(count('float_data', t.float_data, numel) as number[]));
      case 'c64': return u8(Float32Array.from(count('float_data', t.float_data, numel * 2) as number[]));
      case 'f64': return u8(Float64Array.from(count('double_data', t.double_data, numel) as number[]));
      case 'c128': return u8(Float64Array.from(count('double_data', t.double_data, numel * 2) as number[]));
      case 'i64': case 'u64': case 'u32': {
        const field = dtype === 'i64' ? 'int64_data' : 'uint64_data';
        const vals = count(field, dtype === 'i64' ? t.int64_data : t.uint64_data, numel) as Int64[];
        if (dtype === 'u32') return u8(Uint32Array.from(vals.map((v) => toNumber(v, this.file, w))));
        const out = new Uint8Array(numel * 8);
        i64(vals, new DataView(out.buffer));
        return out;
      }
      case 'i32': return u8(Int32Array.from(count('int32_data', t.int32_data, numel) as number[]));
      case 'i16': return u8(Int16Array.from(count('int32_data', t.int32_data, numel) as number[]));
      case 'u16': case 'f16': case 'bf16': return u8(Uint16Array.from(count('int32_data', t.int32_data, numel) as number[]));
      case 'i8': return u8(Int8Array.from(count('int32_data', t.int32_data, numel) as number[]));
      case 'u8': case 'bool': case 'f8_e4m3fn': case 'f8_e4m3fnuz': case 'f8_e5m2': case 'f8_e5m2fnuz':
        return Uint8Array.from(count('int32_data', t.int32_data, numel) as number[]);
      case 'i4': case 'u4':
        // Each int32_data entry carries one packed byte (two 4-bit values, low nibble first).
        return Uint8Array.from((count('int32_data', t.int32_data, Math.ceil(numel / 2)) as number[]).map((v) => v & 0xff));
      default:
        throw new FormatError(this.file, w, `no typed field for ${dtype}`);
    }
  }

  /** Resolve every node input to the weight it names (if any), then link weights to consumers. */
  link(): void {
    for (const ctx of this.graphs) {
      for (const { node, info } of ctx.nodes) {
        (node.input ?? []).forEach((name, inputIndex) => {
          if (!name) return;
          const def = resolve(ctx, name);
          if (!def) return;
          const key = `${def.path}\0${name}`;
          let list = this.uses.get(key);
          if (!list) this.uses.set(key, (list = []));
          list.push({ node, info, inputIndex, ctx });
        });
      }
    }
    for (const [key, { t }] of this.weights) {
      const found: Use[] = [];
      this.follow(key, found, new Set());
      const consumers: ConsumerRef[] = found.map((u) => ({ node: u.info.name, opType: u.info.opType, inputIndex: u.inputIndex, graph: u.ctx.path }));
      const main = found.find((u) => WEIGHT_OPS.has(u.info.opType)) ?? found[0];
      const link: LayerLink = { consumers };
      if (main) {
        link.opType = main.info.opType;
        link.layerName = main.info.name;
        const axis = outputChannelAxis(main, t.shape.length);
        if (axis !== undefined) link.outputChannelAxis = axis;
      }
      const named = parseTensorName(t.name);
      const fromNode = main && named.block === undefined ? parseTensorName(main.info.name.replace(/^\//, '').replace(/\//g, '.')) : {};
      const nm = named.block !== undefined || named.role ? named : fromNode;
      if (nm.block !== undefined) link.block = nm.block;
      if (nm.role) link.role = nm.role;
      t.layer = link;
    }
  }

  private follow(key: string, out: Use[], seen: Set<string>): void {
    if (seen.has(key)) return;
    seen.add(key);
    for (const u of this.uses.get(key) ?? []) {
      const outName = (u.node.output ?? [])[0];
      if (PASS_THROUGH.has(u.info.opType) && u.info.domain === '' && outName) {
        const before = out.length;
        this.follow(`${u.ctx.path}\0${outName}`, out, seen);
        if (out.length > before) continue;
      }
      out.push(u);
    }
  }

  graphInfo(model: PModel): GraphInfo {
    const g = model.graph ?? {};
    const inits = new Set((g.initializer ?? []).map((t) => t.name));
    const vi = (v: PValueInfo): GraphInfo['inputs'][number] => {
      const tt = v.type?.tensor_type;
      const out: GraphInfo['inputs'][number] = { name: v.name ?? '' };
      if (tt?.elem_type !== undefined && ONNX_DTYPES[tt.elem_type]) out.dtype = ONNX_DTYPES[tt.elem_type];
      if (tt?.shape) out.shape = (tt.shape.dim ?? []).map((d) => (d.dim_param ? d.dim_param : d.dim_value !== undefined ? Number(toMeta(d.dim_value)) : '?'));
      return out;
    };
    return {
      nodes: this.nodes,
      inputs: (g.input ?? []).filter((v) => !inits.has(v.name)).map(vi),
      outputs: (g.output ?? []).map(vi),
      opsetImports: (model.opset_import ?? []).map((o) => ({ domain: o.domain ?? '', version: toNumber(o.version, this.file, 'opset_import') })),
    };
  }
}

function u8(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function resolve(ctx: GraphCtx | undefined, name: string): GraphCtx | undefined {
  for (let c = ctx; c; c = c.parent) if (c.defined.has(name)) return c;
  return undefined;
}

function intAttr(n: PNode, name: string): number | undefined {
  const a = (n.attribute ?? []).find((x) => x.name === name);
  if (!a || a.i === undefined) return undefined;
  return Number(toMeta(a.i));
}

/** Which axis of the weight indexes output channels, for the op that consumes it. */
function outputChannelAxis(u: Use, rank: number): number | undefined {
  const op = u.info.opType;
  const i = u.inputIndex;
  if (rank === 0) return undefined;
  switch (op) {
    case 'Conv': case 'ConvInteger': return i === 1 || i === 2 ? 0 : undefined;
    case 'QLinearConv': return i === 3 || i === 8 ? 0 : undefined;
    case 'ConvTranspose': return i === 1 ? (rank >= 2 ? 1 : undefined) : i === 2 ? 0 : undefined;
    case 'MatMul': case 'MatMulInteger': return i === 1 ? (rank >= 2 ? rank - 1 : 0) : undefined;
    case 'QLinearMatMul': return i === 3 ? (rank >= 2 ? rank - 1 : 0) : undefined;
    case 'Gemm': {
      if (i === 1) return (intAttr(u.node, 'transB') ?? 0) ? 0 : 1;
      return i === 2 && rank === 1 ? 0 : undefined;
    }
    case 'Gather': return i === 0 ? 0 : undefined;
    case 'MatMulNBits': return i === 1 || i === 2 || i === 3 ? 0 : undefined;
    case 'DequantizeLinear': {
      if (i !== 0) return undefined;
      const a = intAttr(u.node, 'axis') ?? 1;
      const ax = a < 0 ? a + rank : a;
      return ax >= 0 && ax < rank ? ax : undefined;
    }
    case 'LSTM': case 'GRU': case 'RNN': return i >= 1 && i <= 3 && rank >= 2 ? 1 : undefined;
    default: return undefined;
  }
}

/** Heuristic claim: a protobuf whose first field is ir_version (tag 0x08) or the graph (0x3a). */
export function matchOnnx(head: Uint8Array): boolean {
  return head.length > 1 && (head[0] === 0x08 || head[0] === 0x3a || head[0] === 0x12 || head[0] === 0x42);
}

export function openOnnx(file: string): ModelFile {
  const abs = path.resolve(file);
  const size = fileSize(abs);
  if (size > MAX_ONNX_BYTES) throw new FormatError(abs, 'file', `${size} bytes is over the 2 GiB protobuf limit (large models keep weights in external data)`);
  let scan;
  try {
    scan = scanProtobufFile(abs, onnxRoot().lookupType('onnx.ModelProto'), { splice: RAW_DATA_FIELD, label: 'ModelProto' });
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw new FormatError(abs, 'file', `cannot be read: ${(e as Error).message}`);
  }
  const { compact, spliced } = scan;
  return indexModel(abs, size, compact, (raw, w) => {
    const at = spliced.get(raw.byteOffset - compact.byteOffset);
    if (raw.buffer !== compact.buffer || raw.byteLength !== 1 || !at) throw new FormatError(abs, `${w} raw_data`, 'not found where the scan left it');
    return { offset: at.fileOffset, length: at.length };
  });
}

const RAW_DATA_FIELD: ReadonlySet<string> = new Set(['onnx.TensorProto.raw_data']);

/**
 * The previous reader: the whole file in memory, raw_data located through the
 * decoder's views into it. Kept as the reference the streaming reader is
 * tested and benchmarked against; not used to open models.
 */
export function openOnnxInMemory(file: string): ModelFile {
  const abs = path.resolve(file);
  const size = fileSize(abs);
  if (size > MAX_ONNX_BYTES) throw new FormatError(abs, 'file', `${size} bytes is over the 2 GiB protobuf limit (large models keep weights in external data)`);
  const buf = new Uint8Array(size);
  const fd = fs.openSync(abs, 'r');
  try {
    readFully(fd, abs, buf, 0, size, 0);
  } finally {
    fs.closeSync(fd);
  }
  return indexModel(abs, size, buf, (raw, w) => {
    if (raw.byteLength > 0 && raw.buffer !== buf.buffer) throw new FormatError(abs, `${w} raw_data`, 'decoder copied raw_data; cannot locate it in the file');
    return { offset: raw.byteLength > 0 ? raw.byteOffset - buf.byteOffset : 0, length: raw.byteLength };
  });
}

function indexModel(abs: string, size: number, buf: Uint8Array, locateRaw: (raw: Uint8Array, w: string) => { offset: number; length: number }): ModelFile {
  let model: PModel;
  try {
    model = onnxRoot().lookupType('onnx.ModelProto').decode(buf) as unknown as PModel;
  } catch (e) {
    throw new FormatError(abs, 'protobuf', `malformed ModelProto: ${(e as Error).message}`);
  }
  if (!model.graph) throw new FormatError(abs, 'ModelProto', 'has no graph (not an ONNX model?)');
  const ix = new OnnxIndexer(abs, locateRaw);
  try {
    ix.walkGraph(model.graph, 'main', undefined, 0);
  } catch (e) {
    if (e instanceof RangeError) throw new FormatError(abs, 'graph', `cannot be indexed: ${e.message}`);
    throw e;
  }
  ix.link();
  const metadata: Record<string, MetadataValue> = {};
  metadata.ir_version = toMeta(model.ir_version ?? 0);
  if (model.producer_name) metadata.producer_name = model.producer_name;
  if (model.producer_version) metadata.producer_version = model.producer_version;
  if (model.domain) metadata.domain = model.domain;
  if (model.model_version !== undefined && has(model, 'model_version')) metadata.model_version = toMeta(model.model_version);
  if (model.doc_string) metadata.doc_string = model.doc_string;
  if (model.graph.name) metadata.graph_name = model.graph.name;
  for (const e of model.metadata_props ?? []) if (e.key) metadata[e.key] = e.value ?? '';
  const graph = ix.graphInfo(model);
  const opset = graph.opsetImports.find((o) => o.domain === '' || o.domain === 'ai.onnx');
  const extra = [...ix.extraFiles.entries()];
  return new LazyModelFile({
    path: abs, format: 'onnx',
    formatVersion: `IR ${String(metadata.ir_version)}${opset ? ` / opset ${opset.version}` : ''}`,
    files: [abs, ...extra.map(([f]) => f)], sizeOnDisk: size + extra.reduce((s, [, n]) => s + n, 0),
    metadata, tensors: ix.tensors, graph,
  });
}

/**
 * ONNX writer: an editable ModelProto plus a streaming serializer.
 *
 * `openOnnxForEdit` decodes a model with protobufjs and the project's schema
 * through the same bounded-memory scan the reader uses, so tensor payloads
 * (raw_data in the file, or external data beside it) stay on disk as
 * references. Callers edit the decoded message objects (add nodes and
 * initializers, drop others) and give new tensors their bytes with
 * `setPayload`.
 *
 * `writeOnnx` serializes the edited model without ever holding it whole:
 * every message is encoded by protobufjs except the fields that can hold
 * tensors (graphs, nodes, attributes, tensors), which are written as
 * length-delimited children after their parent's other fields. Sizes are
 * computed first, so the output streams through one buffer and payloads are
 * copied from the source file in chunks. Unchanged tensors keep their exact
 * bytes. Fields the schema does not know at the top level of ModelProto
 * (functions, training_info) are copied verbatim from the source.
 *
 * Output goes to a temp file in the destination folder, is fsynced and then
 * renamed; on error or cancel the temp files are removed. Models whose
 * protobuf would pass 2 GiB (or when asked) put tensor payloads of at least
 * `externalThreshold` bytes into `<name>.data` beside the model, at aligned
 * offsets, with `external_data` location/offset/length entries.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { FormatError } from '../types';
import { tempPathFor } from '../atomicWrite';
import { onnxRoot, MAX_ONNX_BYTES } from './reader';
import { scanProtobufFile } from './protobufScan';
import { fileSize, readFully } from '../lazyModelFile';

/**
 * Where a tensor's bytes are: a region of a file, bytes in memory, or bytes
 * that another writer puts straight into the output (`writeOnnxFilled`).
 */
export type Payload =
  | { kind: 'file'; file: string; offset: number; length: number }
  | { kind: 'bytes'; bytes: Uint8Array }
  | { kind: 'deferred'; length: number };

/** Decoded message objects (protobufjs instances or plain objects of the same shape). */
export type Msg = Record<string, unknown>;
export interface TensorMsg extends Msg {
  name?: string; dims?: (number | object)[]; data_type?: number; raw_data?: Uint8Array;
  external_data?: { key?: string; value?: string }[]; data_location?: number;
}
export interface AttrMsg extends Msg { name?: string; type?: number; i?: unknown; f?: number; s?: Uint8Array; t?: TensorMsg; g?: GraphMsg; graphs?: GraphMsg[]; ints?: unknown[]; tensors?: TensorMsg[] }
export interface NodeMsg extends Msg { input?: string[]; output?: string[]; name?: string; op_type?: string; domain?: string; attribute?: AttrMsg[] }
export interface ValueInfoMsg extends Msg { name?: string; type?: { tensor_type?: { elem_type?: number; shape?: { dim?: { dim_value?: unknown; dim_param?: string }[] } } } }
export interface GraphMsg extends Msg { node?: NodeMsg[]; name?: string; initializer?: TensorMsg[]; input?: ValueInfoMsg[]; output?: ValueInfoMsg[]; value_info?: ValueInfoMsg[] }
export interface ModelMsg extends Msg { ir_version?: unknown; opset_import?: { domain?: string; version?: unknown }[]; graph?: GraphMsg }

/** A graph with its place in the model: subgraphs know the node and attribute that hold them. */
export interface GraphScope {
  graph: GraphMsg;
  path: string;
  parent?: GraphScope;
}

export class EditableOnnx {
  private payloads = new Map<object, Payload>();
  constructor(
    readonly file: string,
    readonly model: ModelMsg,
    /** Byte ranges of top-level ModelProto fields the schema does not know, copied verbatim on write. */
    readonly unknownTopLevel: { offset: number; length: number }[],
  ) {}

  payloadOf(t: TensorMsg): Payload | undefined {
    return this.payloads.get(t);
  }
  setPayload(t: TensorMsg, p: Payload | Uint8Array): void {
    delete t.raw_data;
    delete t.external_data;
    delete t.data_location;
    this.payloads.set(t, p instanceof Uint8Array ? { kind: 'bytes', bytes: p } : p);
  }
  /** Every graph, parents before their subgraphs. */
  graphs(): GraphScope[] {
    const out: GraphScope[] = [];
    const walk = (g: GraphMsg, p: string, parent?: GraphScope): void => {
      const scope = { graph: g, path: p, parent };
      out.push(scope);
      (g.node ?? []).forEach((n, idx) => {
        const nodeName = n.name || `${n.op_type ?? ''}_${idx}`;
        for (const a of n.attribute ?? []) {
          if (a.g) walk(a.g, `${p}/${nodeName}/${a.name ?? ''}`, scope);
          (a.graphs ?? []).forEach((sg, k) => walk(sg, `${p}/${nodeName}/${a.name ?? ''}[${k}]`, scope));
        }
      });
    };
    if (this.model.graph) walk(this.model.graph, 'main');
    return out;
  }
  /** Payload length in bytes without reading it. */
  payloadLength(t: TensorMsg): number | undefined {
    const p = this.payloads.get(t);
    return p ? payloadBytes(p) : undefined;
  }
  /** The payload read into `dst` (a view of it), or the in-memory bytes themselves. */
  readPayloadInto(t: TensorMsg, dst: Uint8Array): Uint8Array | undefined {
    const p = this.payloads.get(t);
    if (!p) return undefined;
    if (p.kind === 'bytes') return p.bytes;
    if (p.kind === 'deferred') throw new Error(`tensor ${t.name}: its bytes are written later, straight into the output`);
    if (dst.byteLength < p.length) throw new RangeError(`readPayloadInto: ${dst.byteLength}-byte buffer for a ${p.length}-byte payload`);
    const fd = fs.openSync(p.file, 'r');
    try {
      readFully(fd, p.file, dst, 0, p.length, p.offset);
    } finally {
      fs.closeSync(fd);
    }
    return dst.subarray(0, p.length);
  }
  /** The bytes of a tensor's payload (raw or external), read now. Typed-field tensors return undefined. */
  readPayload(t: TensorMsg): Uint8Array | undefined {
    const p = this.payloads.get(t);
    if (!p) return undefined;
    if (p.kind === 'bytes') return p.bytes;
    if (p.kind === 'deferred') throw new Error(`tensor ${t.name}: its bytes are written later, straight into the output`);
    const out = new Uint8Array(p.length);
    const fd = fs.openSync(p.file, 'r');
    try {
      readFully(fd, p.file, out, 0, p.length, p.offset);
    } finally {
      fs.closeSync(fd);
    }
    return out;
  }
}

function payloadBytes(p: Payload): number {
  return p.kind === 'bytes' ? p.bytes.byteLength : p.length;
}

const RAW_DATA = new Set(['onnx.TensorProto.raw_data']);

/** Decode an ONNX file for editing, tensor payloads left on disk. */
export function openOnnxForEdit(file: string): EditableOnnx {
  const abs = path.resolve(file);
  const size = fileSize(abs);
  if (size > MAX_ONNX_BYTES) throw new FormatError(abs, 'file', `${size} bytes is over the 2 GiB protobuf limit`);
  const modelType = onnxRoot().lookupType('onnx.ModelProto');
  let scan;
  try {
    scan = scanProtobufFile(abs, modelType, { splice: RAW_DATA, label: 'ModelProto' });
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw new FormatError(abs, 'file', `cannot be read: ${(e as Error).message}`);
  }
  let model: ModelMsg;
  try {
    model = modelType.decode(scan.compact) as unknown as ModelMsg;
  } catch (e) {
    throw new FormatError(abs, 'protobuf', `malformed ModelProto: ${(e as Error).message}`);
  }
  if (!model.graph) throw new FormatError(abs, 'ModelProto', 'has no graph (not an ONNX model?)');
  const ed = new EditableOnnx(abs, model, unknownTopLevelFields(abs, modelType));
  const dir = path.dirname(abs);
  forEachTensor(model, (t) => {
    const where = `tensor ${t.name ?? '(unnamed)'}`;
    if (t.data_location === 1) {
      const kv: Record<string, string> = {};
      for (const e of t.external_data ?? []) if (e.key) kv[e.key] = e.value ?? '';
      const loc = kv.location;
      if (!loc || path.isAbsolute(loc) || loc.split(/[\\/]/).includes('..')) {
        throw new FormatError(abs, `${where} external_data`, `location ${JSON.stringify(loc ?? '')} is missing or outside the model's directory`);
      }
      const ext = path.join(dir, loc);
      const offset = Number(kv.offset ?? 0);
      const length = kv.length !== undefined ? Number(kv.length) : fileSize(ext) - offset;
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > fileSize(ext)) {
        throw new FormatError(ext, where, `external data offset ${kv.offset} / length ${kv.length} is outside the file`);
      }
      ed.setPayload(t, { kind: 'file', file: ext, offset, length });
    } else if (Object.prototype.hasOwnProperty.call(t, 'raw_data') && t.raw_data) {
      const raw = t.raw_data;
      const at = scan.spliced.get(raw.byteOffset - scan.compact.byteOffset);
      if (raw.buffer !== scan.compact.buffer || raw.byteLength !== 1 || !at) throw new FormatError(abs, `${where} raw_data`, 'not found where the scan left it');
      ed.setPayload(t, { kind: 'file', file: abs, offset: at.fileOffset, length: at.length });
    }
  });
  return ed;
}

/** Visit every TensorProto of a model: initializers, Constant values, attribute tensors, sparse parts, in every subgraph. */
export function forEachTensor(model: ModelMsg, visit: (t: TensorMsg) => void): void {
  const tensorType = onnxRoot().lookupType('onnx.TensorProto');
  const walk = (m: Msg, type: protobuf.Type): void => {
    if (type === tensorType) { visit(m as TensorMsg); return; }
    for (const f of type.fieldsArray) {
      const rt = f.resolve().resolvedType;
      if (!(rt instanceof protobuf.Type) || !heavyTypes().has(rt)) continue;
      const v = m[f.name];
      if (v === undefined || v === null) continue;
      if (Array.isArray(v)) for (const x of v) walk(x as Msg, rt);
      else walk(v as Msg, rt);
    }
  };
  walk(model, onnxRoot().lookupType('onnx.ModelProto'));
}

let heavy: Set<protobuf.Type> | undefined;
/** Message types that can (transitively) hold tensor payloads: written as streamed children, never by protobufjs. */
function heavyTypes(): Set<protobuf.Type> {
  if (!heavy) {
    const r = onnxRoot();
    heavy = new Set(['GraphProto', 'NodeProto', 'AttributeProto', 'TensorProto', 'SparseTensorProto'].map((n) => r.lookupType(`onnx.${n}`)));
  }
  return heavy;
}

/** Byte ranges (tag included) of top-level fields ModelProto's schema does not declare. */
function unknownTopLevelFields(file: string, type: protobuf.Type): { offset: number; length: number }[] {
  const known = new Set(type.fieldsArray.map((f) => f.id));
  const size = fileSize(file);
  const out: { offset: number; length: number }[] = [];
  const fd = fs.openSync(file, 'r');
  const head = new Uint8Array(32);
  try {
    let pos = 0;
    while (pos < size) {
      const n = fs.readSync(fd, head, 0, Math.min(32, size - pos), pos);
      let p = 0;
      const varint = (): number => {
        let v = 0, mul = 1;
        for (;;) {
          if (p >= n) throw new FormatError(file, `ModelProto field at byte ${pos}`, 'truncated varint');
          const b = head[p++];
          v += (b & 0x7f) * mul;
          if (b < 0x80) return v;
          mul *= 128;
        }
      };
      const tag = varint();
      const field = Math.floor(tag / 8);
      const wire = tag & 7;
      let len: number;
      if (wire === 0) { varint(); len = 0; } else if (wire === 1) len = 8;
      else if (wire === 2) len = varint();
      else if (wire === 5) len = 4;
      else throw new FormatError(file, `ModelProto field ${field} at byte ${pos}`, `unsupported wire type ${wire}`);
      const end = pos + p + len;
      if (end > size) throw new FormatError(file, `ModelProto field ${field} at byte ${pos}`, 'runs past the end of the file');
      if (!known.has(field)) out.push({ offset: pos, length: end - pos });
      pos = end;
    }
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

// ---------------------------------------------------------------- serializer

export interface WriteOnnxOptions {
  /** true: tensors of at least externalThreshold bytes go to `<out>.data`; 'auto' (default): only when the model would pass 2 GiB. */
  externalData?: boolean | 'auto';
  /** Smallest payload moved to external data (default 1024 bytes, as onnx's own save does). */
  externalThreshold?: number;
  /** Alignment of external payloads of 64 KiB or more (default 4096: page aligned, so runtimes can map them). */
  align?: number;
  signal?: AbortSignal;
  /** Bytes written so far of the expected total. */
  onProgress?: (written: number, total: number) => void;
  /** Files that must not be overwritten (the sources). */
  sources?: string[];
}

export interface WriteOnnxResult {
  path: string;
  bytes: number;
  externalDataPath?: string;
  externalBytes?: number;
}

interface ExternalPlan { offset: number; length: number }

class Sizer {
  readonly shallow = new Map<object, Uint8Array>();
  readonly sizes = new Map<object, number>();
  constructor(private ed: EditableOnnx, private ext: Map<object, ExternalPlan>, private location: string) {}

  size(m: Msg, type: protobuf.Type): number {
    const known = this.sizes.get(m);
    if (known !== undefined) return known;
    const shallow = this.encodeShallow(m, type);
    let n = shallow.length;
    for (const { f, rt, items } of heavyFields(m, type)) {
      for (const x of items) {
        const s = this.size(x, rt);
        n += varintLen(f.id * 8 + 2) + varintLen(s) + s;
      }
    }
    const p = this.inlinePayload(m);
    if (p !== undefined) n += varintLen(9 * 8 + 2) + varintLen(p) + p;
    this.sizes.set(m, n);
    return n;
  }

  /** Length of the raw_data this tensor carries inline, if any. */
  inlinePayload(m: Msg): number | undefined {
    const p = this.ed.payloadOf(m as TensorMsg);
    if (!p || this.ext.has(m)) return undefined;
    return payloadBytes(p);
  }

  encodeShallow(m: Msg, type: protobuf.Type): Uint8Array {
    let b = this.shallow.get(m);
    if (b) return b;
    const copy: Msg = {};
    const heavyNames = new Set(heavyFields(m, type).map((h) => h.f.name));
    for (const k of Object.keys(m)) if (!heavyNames.has(k)) copy[k] = m[k];
    if (this.ed.payloadOf(m as TensorMsg)) {
      delete copy.raw_data;
      delete copy.external_data;
      delete copy.data_location;
      const e = this.ext.get(m);
      if (e) {
        copy.data_location = 1;
        copy.external_data = [
          { key: 'location', value: this.location }, { key: 'offset', value: String(e.offset) }, { key: 'length', value: String(e.length) },
        ];
      }
    }
    b = type.encode(copy).finish();
    this.shallow.set(m, b);
    return b;
  }
}

function heavyFields(m: Msg, type: protobuf.Type): { f: protobuf.Field; rt: protobuf.Type; items: Msg[] }[] {
  const out: { f: protobuf.Field; rt: protobuf.Type; items: Msg[] }[] = [];
  for (const f of type.fieldsArray) {
    const rt = f.resolve().resolvedType;
    if (!(rt instanceof protobuf.Type) || !heavyTypes().has(rt)) continue;
    const v = m[f.name];
    if (v === undefined || v === null) continue;
    const items = (Array.isArray(v) ? v : [v]) as Msg[];
    if (items.length) out.push({ f, rt, items });
  }
  return out;
}

function varintLen(v: number): number {
  let n = 1;
  while (v >= 128) { v = Math.floor(v / 128); n++; }
  return n;
}

/** A write-through buffer over a file descriptor (fd -1: only counts, for a dry run). */
class OutFile {
  private buf: Uint8Array;
  private used = 0;
  written = 0;
  /** Bytes handed to this file so far, flushed or not. */
  get position(): number {
    return this.written + this.used;
  }
  constructor(readonly fd: number, readonly file: string, bufBytes = 4 << 20, private onFlush?: () => void) {
    this.buf = new Uint8Array(fd < 0 ? 0 : bufBytes);
  }
  bytes(b: Uint8Array): void {
    if (this.fd < 0) { this.written += b.byteLength; return; }
    if (b.byteLength > this.buf.byteLength - this.used) this.flush();
    if (b.byteLength >= this.buf.byteLength) { this.writeAll(b); return; }
    this.buf.set(b, this.used);
    this.used += b.byteLength;
  }
  varint(v: number): void {
    const tmp = new Uint8Array(10);
    let n = 0;
    while (v >= 128) { tmp[n++] = (v % 128) | 0x80; v = Math.floor(v / 128); }
    tmp[n++] = v;
    this.bytes(tmp.subarray(0, n));
  }
  zeros(n: number): void {
    while (n > 0) {
      const k = Math.min(n, 4096);
      this.bytes(new Uint8Array(k));
      n -= k;
    }
  }
  /** Leave `n` bytes for another writer (positional writes into the same file). */
  skip(n: number): void {
    this.flush();
    this.written += n;
  }
  /** Copy a region of another file through this buffer. */
  copyFrom(file: string, offset: number, length: number, signal?: AbortSignal): void {
    if (this.fd < 0) { this.written += length; return; }
    const fd = fs.openSync(file, 'r');
    try {
      let done = 0;
      while (done < length) {
        signal?.throwIfAborted();
        if (this.used === this.buf.byteLength) this.flush();
        const k = Math.min(length - done, this.buf.byteLength - this.used);
        readFully(fd, file, this.buf, this.used, k, offset + done);
        this.used += k;
        done += k;
      }
    } finally {
      fs.closeSync(fd);
    }
  }
  flush(): void {
    if (this.used) this.writeAll(this.buf.subarray(0, this.used));
    this.used = 0;
    this.onFlush?.();
  }
  private writeAll(b: Uint8Array): void {
    let off = 0;
    if (this.fd >= 0) while (off < b.byteLength) off += fs.writeSync(this.fd, b, off, b.byteLength - off, this.written + off);
    this.written += b.byteLength;
  }
}

/** Write a temp file beside `dest`, fsync it and rename it over dest; the temp file is removed on any failure. */
export function writeAtomically(dest: string, body: (fd: number, tmp: string) => void): void {
  const tmp = tempPathFor(dest);
  const fd = fs.openSync(tmp, 'wx');
  try {
    try {
      body(fd, tmp);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, dest);
  } catch (e) {
    try { fs.unlinkSync(tmp); } catch { /* already gone */ }
    throw e;
  }
}

/**
 * Serialize the edited model to `outPath`. Payloads are streamed from their
 * source files; nothing of the model's size is held in memory.
 */
export function writeOnnx(ed: EditableOnnx, outPath: string, opts: WriteOnnxOptions = {}): WriteOnnxResult {
  const w = new OnnxWrite(ed, outPath, opts);
  if (w.deferred.size) throw new Error('writeOnnx: some tensors are filled by another writer; use writeOnnxFilled');
  try {
    w.writeData();
    writeAtomically(w.out, (fd, tmp) => w.writeModel(fd, tmp));
    w.publishData();
  } catch (e) {
    w.dropData();
    throw e;
  }
  return w.result();
}

/** Where a deferred payload goes: a temp file (the model or its external data) and the byte offset in it. */
export interface PayloadPlace { file: string; offset: number; length: number }

/**
 * `writeOnnx` for a model whose 'deferred' payloads are written by
 * `fill` (any thread or process: positional writes into the temp files named
 * in `places`) while this writes everything else. The files are fsynced and
 * renamed only once `fill` resolves; if it throws, nothing is left behind.
 */
export async function writeOnnxFilled(
  ed: EditableOnnx, outPath: string, opts: WriteOnnxOptions, fill: (places: Map<TensorMsg, PayloadPlace>) => Promise<void>,
): Promise<WriteOnnxResult> {
  const w = new OnnxWrite(ed, outPath, opts);
  const tmp = tempPathFor(w.out);
  const places = new Map<TensorMsg, PayloadPlace>();
  for (const [t, e] of w.ext) if (w.deferred.has(t)) places.set(t as TensorMsg, { file: w.dataTmp!, offset: e.offset, length: e.length });
  for (const [t, at] of w.inlineOffsets()) places.set(t, { file: tmp, offset: at, length: w.ed.payloadLength(t)! });
  let fd = -1;
  try {
    if (w.external) {
      const dfd = fs.openSync(w.dataTmp!, 'wx');
      try { fs.ftruncateSync(dfd, w.extBytes); } finally { fs.closeSync(dfd); }
    }
    fd = fs.openSync(tmp, 'wx');
    // Sizes first, so a filler can write past what this side has reached.
    fs.ftruncateSync(fd, w.total);
    const filled = fill(places);
    filled.catch(() => undefined);
    try {
      w.writeData();
      w.writeModel(fd, tmp);
    } catch (e) {
      await filled.catch(() => undefined);
      throw e;
    }
    await filled;
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = -1;
    fs.renameSync(tmp, w.out);
    w.publishData();
  } catch (e) {
    if (fd >= 0) fs.closeSync(fd);
    try { fs.unlinkSync(tmp); } catch { /* never made, or gone */ }
    w.dropData();
    throw e;
  }
  return w.result();
}

/** One serialization: the layout (sizes, external data plan) and the writes. */
class OnnxWrite {
  readonly out: string;
  readonly dataName: string;
  readonly dataPath: string;
  /** The external data's temp file (set once the layout needs external data). */
  dataTmp?: string;
  private dataCreated = false;
  readonly external!: boolean;
  readonly ext!: Map<object, ExternalPlan>;
  readonly extBytes!: number;
  readonly total!: number;
  readonly deferred = new Set<object>();
  private sizer: Sizer;
  private progressBase = 0;
  private readonly modelType = onnxRoot().lookupType('onnx.ModelProto');

  constructor(readonly ed: EditableOnnx, outPath: string, private opts: WriteOnnxOptions) {
    this.out = path.resolve(outPath);
    const out = this.out;
    this.dataName = `${path.basename(out)}.data`;
    this.dataPath = path.join(path.dirname(out), this.dataName);
    const sources = new Set([ed.file, ...(opts.sources ?? [])].map((f) => path.resolve(f)));
    forEachTensor(ed.model, (t) => {
      const p = ed.payloadOf(t);
      if (p?.kind === 'file') sources.add(path.resolve(p.file));
      if (p?.kind === 'deferred') this.deferred.add(t);
    });
    if (sources.has(out)) throw new FormatError(out, 'output', 'is one of the source files; refusing to overwrite it');
    const threshold = opts.externalThreshold ?? 1024;
    const align = opts.align ?? 4096;
    const plan = (external: boolean): { ext: Map<object, ExternalPlan>; extBytes: number } => {
      const ext = new Map<object, ExternalPlan>();
      let extBytes = 0;
      if (!external) return { ext, extBytes };
      forEachTensor(ed.model, (t) => {
        const p = ed.payloadOf(t);
        if (!p || ext.has(t)) return;
        const length = payloadBytes(p);
        if (length < threshold) return;
        const a = length >= 65536 ? align : 16;
        const offset = Math.ceil(extBytes / a) * a;
        ext.set(t, { offset, length });
        extBytes = offset + length;
      });
      return { ext, extBytes };
    };
    let external = opts.externalData === true;
    let { ext, extBytes } = plan(external);
    let sizer = new Sizer(ed, ext, this.dataName);
    const unknownBytes = ed.unknownTopLevel.reduce((s, u) => s + u.length, 0);
    let total = sizer.size(ed.model, this.modelType) + unknownBytes;
    if (!external && opts.externalData !== false && total > MAX_ONNX_BYTES) {
      external = true;
      ({ ext, extBytes } = plan(true));
      sizer = new Sizer(ed, ext, this.dataName);
      total = sizer.size(ed.model, this.modelType) + unknownBytes;
    }
    if (total > MAX_ONNX_BYTES) throw new FormatError(out, 'output', `the ModelProto would be ${total} bytes, over the 2 GiB protobuf limit even with external data`);
    if (external && sources.has(this.dataPath)) throw new FormatError(this.dataPath, 'output', 'is one of the source files; refusing to overwrite it');
    Object.assign(this, { external, ext, extBytes, total });
    this.sizer = sizer;
    if (external) this.dataTmp = tempPathFor(this.dataPath);
  }

  private progress(o: OutFile): void {
    this.opts.onProgress?.(this.progressBase + o.position, this.total + this.extBytes);
  }

  private writePayload(o: OutFile, p: Payload): void {
    this.progress(o);
    this.opts.signal?.throwIfAborted();
    if (p.kind === 'bytes') o.bytes(p.bytes);
    else if (p.kind === 'deferred') o.skip(p.length);
    else o.copyFrom(p.file, p.offset, p.length, this.opts.signal);
  }

  /** Stream the ModelProto; with `places`, only record where each deferred inline payload starts. */
  private emitModel(o: OutFile, places?: Map<TensorMsg, number>): void {
    const { sizer, ed } = this;
    const emit = (m: Msg, type: protobuf.Type): void => {
      o.bytes(sizer.encodeShallow(m, type));
      for (const { f, rt, items } of heavyFields(m, type)) {
        for (const x of items) {
          o.varint(f.id * 8 + 2);
          o.varint(sizer.size(x, rt));
          emit(x, rt);
        }
      }
      const len = sizer.inlinePayload(m);
      if (len !== undefined) {
        o.varint(9 * 8 + 2);
        o.varint(len);
        const p = ed.payloadOf(m as TensorMsg)!;
        if (places && p.kind === 'deferred') places.set(m as TensorMsg, o.position);
        if (places) o.skip(len);
        else this.writePayload(o, p);
      }
    };
    emit(ed.model, this.modelType);
    for (const u of ed.unknownTopLevel) o.copyFrom(ed.file, u.offset, u.length, this.opts.signal);
    o.flush();
    if (o.written !== this.total) throw new Error(`writer: wrote ${o.written} bytes but sized ${this.total} (internal error)`);
  }

  /** Offsets in the model file of the deferred payloads stored inline (a dry run of the serializer). */
  inlineOffsets(): Map<TensorMsg, number> {
    const places = new Map<TensorMsg, number>();
    this.emitModel(new OutFile(-1, this.out), places);
    return places;
  }

  writeModel(fd: number, tmp: string): void {
    const o: OutFile = new OutFile(fd, tmp, 4 << 20, () => this.progress(o));
    this.emitModel(o);
  }

  /** The external data file, written first and fsynced: the model is renamed into place only once everything it points to is there. */
  writeData(): void {
    if (!this.external) return;
    const dataTmp = this.dataTmp!;
    const fd = fs.openSync(dataTmp, this.deferred.size ? 'r+' : 'wx');
    this.dataCreated = true;
    try {
      const o: OutFile = new OutFile(fd, dataTmp, 4 << 20, () => this.progress(o));
      const items = [...this.ext.entries()].sort((a, b) => a[1].offset - b[1].offset);
      for (const [t, e] of items) {
        o.zeros(e.offset - o.position);
        this.writePayload(o, this.ed.payloadOf(t as TensorMsg)!);
      }
      o.flush();
      if (o.written !== this.extBytes) throw new Error(`writer: external data is ${o.written} bytes, planned ${this.extBytes} (internal error)`);
      if (!this.deferred.size) fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    this.progressBase = this.extBytes;
  }

  /** Rename the external data into place (after the model), or do nothing. */
  publishData(): void {
    if (!this.external) return;
    if (this.deferred.size) {
      const fd = fs.openSync(this.dataTmp!, 'r+');
      try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
    }
    fs.renameSync(this.dataTmp!, this.dataPath);
    this.dataCreated = false;
    fsyncDir(path.dirname(this.out));
  }

  dropData(): void {
    if (this.dataTmp && (this.dataCreated || this.deferred.size)) try { fs.unlinkSync(this.dataTmp); } catch { /* gone */ }
  }

  result(): WriteOnnxResult {
    return this.external
      ? { path: this.out, bytes: this.total, externalDataPath: this.dataPath, externalBytes: this.extBytes }
      : { path: this.out, bytes: this.total };
  }
}

function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  } catch { /* not supported on every platform */ }
}

// ---------------------------------------------------------------- helpers for editors

/** A new TensorProto with its bytes as payload. */
export function newTensor(ed: EditableOnnx, name: string, dataType: number, dims: number[], bytes: Uint8Array): TensorMsg {
  const t: TensorMsg = { name, data_type: dataType, dims: dims.slice() };
  ed.setPayload(t, bytes);
  return t;
}

export function intAttr(name: string, v: number): AttrMsg {
  return { name, type: 2, i: v };
}
export function floatAttr(name: string, v: number): AttrMsg {
  return { name, type: 1, f: v };
}
export function getAttr(n: NodeMsg, name: string): AttrMsg | undefined {
  return (n.attribute ?? []).find((a) => a.name === name);
}
/** An int attribute as a number (int64 fields decode as numbers or Long-like objects). */
export function attrInt(n: NodeMsg, name: string, dflt: number): number {
  const a = getAttr(n, name);
  if (!a || a.i === undefined || a.i === null) return dflt;
  return int64ToNumber(a.i);
}
export function int64ToNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  const l = v as { low: number; high: number; unsigned?: boolean };
  return (l.unsigned ? l.high >>> 0 : l.high | 0) * 2 ** 32 + (l.low >>> 0);
}

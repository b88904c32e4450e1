/**
 * GGUF v3 writer. The header (magic, version, counts, metadata, tensor infos)
 * is laid out up front from each tensor's type and shape, so tensor data can
 * then be streamed one tensor at a time, in chunks, with bounded memory. The
 * file is written under a temporary name in the destination folder and only
 * appears under its real name after `commit()` (fsync, then rename); `abort()`
 * or any error leaves nothing behind.
 *
 * Layout as ggml's gguf.cpp writes it: data section padded to
 * `general.alignment` (32 when absent), each tensor's offset a multiple of it,
 * zero padding after each tensor.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GgufValueType } from './reader';
import { tempPathFor } from '../atomicWrite';
import { MetadataValue } from '../types';
import { ggmlTypeById } from './ggmlTypes';

export const GGUF_DEFAULT_ALIGNMENT = 32;

export interface GgufKv {
  key: string;
  type: GgufValueType;
  value: MetadataValue;
  /** For ARRAY values: the element type (nested arrays are not written). */
  elementType?: GgufValueType;
}

export interface GgufTensorEntry {
  name: string;
  /** Dims in ggml order: ne[0] (the row length) first. */
  ne: number[];
  /** ggml type id. */
  type: number;
}

export interface GgufLayout {
  header: Buffer;
  /** Bytes of each tensor and its offset within the data section. */
  sizes: number[];
  offsets: number[];
  alignment: number;
  /** Total file size. */
  fileSize: number;
}

/** Bytes of a tensor of ggml type `type` and dims `ne`; throws naming the tensor when rows are not whole blocks. */
export function ggmlTensorBytes(name: string, type: number, ne: readonly number[]): number {
  const info = ggmlTypeById(type);
  if (!info) throw new RangeError(`GGUF writer: tensor ${name} has unknown ggml type ${type}`);
  const ne0 = ne.length ? ne[0] : 1;
  if (ne0 % info.blockSize !== 0) throw new RangeError(`GGUF writer: tensor ${name}: row of ${ne0} is not a whole number of ${info.name} blocks (${info.blockSize})`);
  let n = 1;
  for (const d of ne) n *= d;
  return (n / info.blockSize) * info.typeSize;
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Serialises GGUF values into a growable buffer. */
class Out {
  private buf = Buffer.alloc(1 << 16);
  len = 0;
  private room(n: number): void {
    if (this.len + n <= this.buf.length) return;
    const b = Buffer.alloc(Math.max(this.buf.length * 2, this.len + n));
    this.buf.copy(b, 0, 0, this.len);
    this.buf = b;
  }
  u8(v: number): void { this.room(1); this.buf.writeUInt8(v, this.len); this.len += 1; }
  i8(v: number): void { this.room(1); this.buf.writeInt8(v, this.len); this.len += 1; }
  u16(v: number): void { this.room(2); this.buf.writeUInt16LE(v, this.len); this.len += 2; }
  i16(v: number): void { this.room(2); this.buf.writeInt16LE(v, this.len); this.len += 2; }
  u32(v: number): void { this.room(4); this.buf.writeUInt32LE(v, this.len); this.len += 4; }
  i32(v: number): void { this.room(4); this.buf.writeInt32LE(v, this.len); this.len += 4; }
  f32(v: number): void { this.room(4); this.buf.writeFloatLE(v, this.len); this.len += 4; }
  f64(v: number): void { this.room(8); this.buf.writeDoubleLE(v, this.len); this.len += 8; }
  u64(v: number | bigint): void { this.room(8); this.buf.writeBigUInt64LE(BigInt(v), this.len); this.len += 8; }
  i64(v: number | bigint): void { this.room(8); this.buf.writeBigInt64LE(BigInt(v), this.len); this.len += 8; }
  str(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.room(b.length);
    b.copy(this.buf, this.len);
    this.len += b.length;
  }
  zeros(n: number): void { this.room(n); this.buf.fill(0, this.len, this.len + n); this.len += n; }
  take(): Buffer { return this.buf.subarray(0, this.len); }
}

function writeScalar(o: Out, type: GgufValueType, v: MetadataValue, key: string): void {
  const num = (): number => {
    if (typeof v !== 'number') throw new TypeError(`GGUF writer: metadata ${key}: ${String(v)} is not a number`);
    return v;
  };
  switch (type) {
    case GgufValueType.UINT8: return o.u8(num());
    case GgufValueType.INT8: return o.i8(num());
    case GgufValueType.UINT16: return o.u16(num());
    case GgufValueType.INT16: return o.i16(num());
    case GgufValueType.UINT32: return o.u32(num());
    case GgufValueType.INT32: return o.i32(num());
    case GgufValueType.FLOAT32: return o.f32(num());
    case GgufValueType.FLOAT64: return o.f64(num());
    case GgufValueType.UINT64:
    case GgufValueType.INT64:
      if (typeof v !== 'number' && typeof v !== 'bigint') throw new TypeError(`GGUF writer: metadata ${key}: ${String(v)} is not an integer`);
      return type === GgufValueType.UINT64 ? o.u64(v) : o.i64(v);
    case GgufValueType.BOOL:
      if (typeof v !== 'boolean') throw new TypeError(`GGUF writer: metadata ${key}: ${String(v)} is not a bool`);
      return o.u8(v ? 1 : 0);
    case GgufValueType.STRING:
      if (typeof v !== 'string') throw new TypeError(`GGUF writer: metadata ${key}: ${String(v)} is not a string`);
      return o.str(v);
    default:
      throw new TypeError(`GGUF writer: metadata ${key}: cannot write value type ${type as number}`);
  }
}

/** The alignment a metadata list asks for (general.alignment), validated. */
export function alignmentOf(kvs: readonly GgufKv[]): number {
  const kv = kvs.find((k) => k.key === 'general.alignment');
  if (!kv) return GGUF_DEFAULT_ALIGNMENT;
  const a = kv.value;
  if (kv.type !== GgufValueType.UINT32 || typeof a !== 'number' || a <= 0 || (a & (a - 1)) !== 0) {
    throw new RangeError(`GGUF writer: general.alignment must be a u32 power of two, got ${String(a)}`);
  }
  return a;
}

/** Header bytes and data layout of a GGUF v3 file with these metadata and tensors. */
export function layoutGguf(kvs: readonly GgufKv[], tensors: readonly GgufTensorEntry[]): GgufLayout {
  const alignment = alignmentOf(kvs);
  const o = new Out();
  o.u32(0x46554747);
  o.u32(3);
  o.u64(tensors.length);
  o.u64(kvs.length);
  const seen = new Set<string>();
  for (const kv of kvs) {
    if (seen.has(kv.key)) throw new RangeError(`GGUF writer: duplicate metadata key ${kv.key}`);
    seen.add(kv.key);
    o.str(kv.key);
    o.u32(kv.type);
    if (kv.type === GgufValueType.ARRAY) {
      const et = kv.elementType;
      if (et === undefined || et === GgufValueType.ARRAY) throw new TypeError(`GGUF writer: metadata ${kv.key}: arrays need a scalar element type`);
      if (!Array.isArray(kv.value)) throw new TypeError(`GGUF writer: metadata ${kv.key} is not an array`);
      o.u32(et);
      o.u64(kv.value.length);
      for (const v of kv.value) writeScalar(o, et, v, kv.key);
    } else {
      writeScalar(o, kv.type, kv.value, kv.key);
    }
  }
  const sizes: number[] = [];
  const offsets: number[] = [];
  let off = 0;
  const names = new Set<string>();
  for (const t of tensors) {
    if (names.has(t.name)) throw new RangeError(`GGUF writer: duplicate tensor name ${t.name}`);
    names.add(t.name);
    const bytes = ggmlTensorBytes(t.name, t.type, t.ne);
    o.str(t.name);
    o.u32(t.ne.length);
    for (const d of t.ne) o.u64(d);
    o.u32(t.type);
    o.u64(off);
    sizes.push(bytes);
    offsets.push(off);
    off += alignUp(bytes, alignment);
  }
  o.zeros(alignUp(o.len, alignment) - o.len);
  const header = o.take();
  return { header, sizes, offsets, alignment, fileSize: header.length + off };
}

/**
 * Streams one GGUF file: construct with the layout, then for each tensor in
 * order `write` its bytes (any chunking) and `endTensor()`; `finish()` fsyncs
 * and closes, `commit()` renames onto the destination, `abort()` deletes.
 */
export class GgufFileWriter {
  readonly tempPath: string;
  private fd: number | undefined;
  private index = 0;
  private written = 0;
  private pos = 0;
  private done = false;

  constructor(readonly outPath: string, readonly layout: GgufLayout) {
    this.tempPath = tempPathFor(path.resolve(outPath));
    this.fd = fs.openSync(this.tempPath, 'wx');
    this.pos = 0;
    try {
      this.put(layout.header);
    } catch (e) {
      this.abort();
      throw e;
    }
  }

  /** Index of the tensor the next bytes belong to. */
  get tensorIndex(): number {
    return this.index;
  }

  write(bytes: Uint8Array): void {
    if (this.fd === undefined) throw new Error(`GGUF writer: ${this.outPath} is closed`);
    const want = this.layout.sizes[this.index];
    if (want === undefined) throw new RangeError(`GGUF writer: ${this.outPath}: more tensors written than the header lists`);
    if (this.written + bytes.length > want) {
      throw new RangeError(`GGUF writer: ${this.outPath}: tensor #${this.index} gets ${this.written + bytes.length} bytes, its type and shape need ${want}`);
    }
    this.put(bytes);
    this.written += bytes.length;
  }

  /** Write at the current position; a failure (full disk, file size limit) names the output. */
  private put(bytes: Uint8Array): void {
    try {
      let done = 0;
      while (done < bytes.length) done += fs.writeSync(this.fd!, bytes, done, bytes.length - done, this.pos + done);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      const wrapped = new Error(`cannot write ${this.outPath} (${err.code ?? 'error'}: ${err.message})`) as NodeJS.ErrnoException;
      wrapped.code = err.code;
      throw wrapped;
    }
    this.pos += bytes.length;
  }

  endTensor(): void {
    const want = this.layout.sizes[this.index];
    if (this.written !== want) throw new RangeError(`GGUF writer: ${this.outPath}: tensor #${this.index} got ${this.written} of ${want} bytes`);
    const pad = alignUp(want, this.layout.alignment) - want;
    if (pad) this.write0(pad);
    this.index++;
    this.written = 0;
  }

  private write0(n: number): void {
    this.put(Buffer.alloc(n));
  }

  /** All tensors written: flush to disk and close. The file still has its temporary name. */
  finish(): void {
    if (this.index !== this.layout.sizes.length) {
      throw new RangeError(`GGUF writer: ${this.outPath}: ${this.index} of ${this.layout.sizes.length} tensors written`);
    }
    if (this.pos !== this.layout.fileSize) throw new Error(`GGUF writer: ${this.outPath}: wrote ${this.pos} bytes, layout says ${this.layout.fileSize}`);
    fs.fsyncSync(this.fd!);
    fs.closeSync(this.fd!);
    this.fd = undefined;
  }

  /** Give the finished file its real name (and make the rename durable). */
  commit(): void {
    if (this.fd !== undefined) throw new Error(`GGUF writer: ${this.outPath}: finish() before commit()`);
    fs.renameSync(this.tempPath, this.outPath);
    this.done = true;
    try {
      const dfd = fs.openSync(path.dirname(path.resolve(this.outPath)), 'r');
      try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
    } catch {
      // Some filesystems refuse fsync on a directory; the rename itself has happened.
    }
  }

  /** Drop the partial file. Safe to call more than once and after errors. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    if (this.fd !== undefined) {
      try { fs.closeSync(this.fd); } catch { /* already closed */ }
      this.fd = undefined;
    }
    try { fs.unlinkSync(this.tempPath); } catch { /* never created or already gone */ }
  }
}

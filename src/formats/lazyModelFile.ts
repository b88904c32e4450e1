/**
 * The lazy half of every ModelFile: tensor bytes are read by offset with
 * fs.readSync in bounded chunks, decoded to float32 on demand, and never
 * cached. Format readers only build the index and hand it to this class.
 */
import * as fs from 'node:fs';
import { DType, FormatError, GraphInfo, MetadataValue, ModelFile, ModelFormat, TensorInfo } from './types';
import { decodeToFloat32, isScalarDType, SCALAR_DTYPES } from './dtypes';
import { canDequantizeGgml, dequantizeGgml } from './gguf/dequant';
import { ggmlTypeByName } from './gguf/ggmlTypes';

/** Largest single fs.readSync call. */
export const READ_CHUNK = 1 << 20;
/** Upper bound on iterateFloat32 chunks, whatever the caller asks for (16 MiB of float32). */
export const MAX_CHUNK_ELEMENTS = 1 << 22;

/** Read exactly `length` bytes at `position` into `dst[dstOffset..]`, in bounded chunks. */
export function readFully(fd: number, file: string, dst: Uint8Array, dstOffset: number, length: number, position: number): void {
  let done = 0;
  while (done < length) {
    const n = Math.min(READ_CHUNK, length - done);
    const got = fs.readSync(fd, dst, dstOffset + done, n, position + done);
    if (got <= 0) throw new FormatError(file, `bytes ${position + done}..${position + length}`, 'unexpected end of file');
    done += got;
  }
}

/** Elements per decoding unit: block size for ggml block types, 1 otherwise. */
export function elementsPerUnit(dtype: DType): { block: number; bytes: number } {
  if (dtype.startsWith('gguf:')) {
    const t = ggmlTypeByName(dtype.slice(5));
    if (!t) return { block: 1, bytes: 0 };
    return { block: t.blockSize, bytes: t.typeSize };
  }
  if (isScalarDType(dtype)) return { block: 1, bytes: SCALAR_DTYPES[dtype].bits / 8 };
  return { block: 1, bytes: 0 };
}

/** What identifies a file's content for as long as it is read: a change of any field means it was modified or replaced. */
export interface FileStamp { size: number; mtimeMs: number; ino: number }

function stampOf(st: fs.Stats): FileStamp {
  return { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino };
}

function describeChange(was: FileStamp, now: FileStamp): string {
  if (now.ino !== was.ino) return 'it was replaced by another file';
  if (now.size !== was.size) return `its size went from ${was.size} to ${now.size} bytes`;
  return `it was modified at ${new Date(now.mtimeMs).toISOString()}`;
}

/** A model file changed while a job read it: its results would mix two versions, so the job stops. */
export class SourceChangedError extends FormatError {
  constructor(file: string, change: string) {
    super(file, 'read', `the file changed while it was being read (${change}); the job stopped rather than mix two versions: run it again once the file is complete`);
    this.name = 'SourceChangedError';
  }
}

export interface ModelIndex {
  path: string;
  format: ModelFormat;
  formatVersion: string;
  files: string[];
  sizeOnDisk: number;
  metadata: Record<string, MetadataValue>;
  tensors: TensorInfo[];
  graph?: GraphInfo;
}

export class LazyModelFile implements ModelFile {
  readonly path: string;
  readonly format: ModelFormat;
  readonly formatVersion: string;
  readonly sizeOnDisk: number;
  readonly files: string[];
  readonly metadata: Record<string, MetadataValue>;
  readonly tensors: readonly TensorInfo[];
  readonly graph?: GraphInfo;
  private fds = new Map<string, number>();
  /** Each file as it was when the index was read. */
  private readonly stamps = new Map<string, FileStamp>();

  constructor(ix: ModelIndex) {
    this.path = ix.path;
    this.format = ix.format;
    this.formatVersion = ix.formatVersion;
    this.sizeOnDisk = ix.sizeOnDisk;
    this.files = ix.files;
    this.metadata = ix.metadata;
    this.tensors = ix.tensors;
    this.graph = ix.graph;
    for (const f of ix.files) {
      try { this.stamps.set(f, stampOf(fs.statSync(f))); } catch { /* reported when it is read */ }
    }
  }

  /** Throws SourceChangedError if `file` (open as `fd`, or by path) is no longer what the index was read from. */
  private checkStamp(file: string, fd?: number): void {
    const was = this.stamps.get(file);
    if (!was) return;
    let now: FileStamp;
    try { now = stampOf(fd === undefined ? fs.statSync(file) : fs.fstatSync(fd)); } catch (e) {
      throw new SourceChangedError(file, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'it was deleted' : (e as Error).message);
    }
    if (now.size !== was.size || now.mtimeMs !== was.mtimeMs || now.ino !== was.ino) throw new SourceChangedError(file, describeChange(was, now));
  }

  /** Throws SourceChangedError if any file of the model was modified, replaced or deleted since it was opened (pipelines call it when their jobs are done). */
  checkUnchanged(): void {
    for (const f of this.stamps.keys()) this.checkStamp(f);
  }

  private fd(file: string): number {
    let fd = this.fds.get(file);
    if (fd === undefined) {
      try {
        fd = fs.openSync(file, 'r');
      } catch (e) {
        throw new FormatError(file, 'open', (e as Error).message);
      }
      this.fds.set(file, fd);
      this.checkStamp(file, fd);
    }
    return fd;
  }

  readBytes(t: TensorInfo, offset = 0, length?: number): Uint8Array {
    const len = length ?? t.byteLength - offset;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(len) || offset < 0 || len < 0 || offset + len > t.byteLength) {
      throw new FormatError(this.path, `tensor ${t.name}`, `byte range ${offset}+${len} outside its ${t.byteLength} bytes`);
    }
    const loc = t.location;
    if (loc.kind === 'inline') return loc.bytes.subarray(offset, offset + len);
    const out = new Uint8Array(len);
    const fd = this.fd(loc.file);
    readFully(fd, loc.file, out, 0, len, loc.offset + offset);
    // After the read: bytes read from a file being rewritten are caught before anyone uses them.
    this.checkStamp(loc.file, fd);
    return out;
  }

  readFloat32(t: TensorInfo, start = 0, count?: number): Float32Array {
    const n = count ?? t.numel - start;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(n) || start < 0 || n < 0 || start + n > t.numel) {
      throw new FormatError(this.path, `tensor ${t.name}`, `element range ${start}+${n} outside its ${t.numel} elements`);
    }
    const out = new Float32Array(n);
    if (n === 0) return out;
    const dtype = t.dtype;
    if (dtype.startsWith('gguf:')) {
      const name = dtype.slice(5);
      const info = ggmlTypeByName(name);
      if (!info || !canDequantizeGgml(name)) throw new FormatError(this.path, `tensor ${t.name}`, `unsupported GGUF type ${name.toUpperCase()}`);
      const b0 = Math.floor(start / info.blockSize);
      const b1 = Math.ceil((start + n) / info.blockSize);
      const bytes = this.readBytes(t, b0 * info.typeSize, (b1 - b0) * info.typeSize);
      if (start % info.blockSize === 0 && n % info.blockSize === 0) {
        // Block-aligned (every iterateFloat32 chunk): decode straight into the result.
        dequantizeGgml(info.name, bytes, out, n);
        return out;
      }
      const tmp = new Float32Array((b1 - b0) * info.blockSize);
      dequantizeGgml(info.name, bytes, tmp, tmp.length);
      out.set(tmp.subarray(start - b0 * info.blockSize, start - b0 * info.blockSize + n));
      return out;
    }
    if (!isScalarDType(dtype) || !SCALAR_DTYPES[dtype].numeric) {
      throw new FormatError(this.path, `tensor ${t.name}`, `dtype ${dtype} has no float32 value`);
    }
    if (dtype === 'i4' || dtype === 'u4') {
      const b0 = start >> 1;
      const b1 = (start + n + 1) >> 1;
      decodeToFloat32(dtype, this.readBytes(t, b0, b1 - b0), n, out, 0, start & 1);
      return out;
    }
    const size = SCALAR_DTYPES[dtype].bits / 8;
    decodeToFloat32(dtype, this.readBytes(t, start * size, n * size), n, out);
    return out;
  }

  *iterateFloat32(t: TensorInfo, chunkElements = 32768): Iterable<{ start: number; values: Float32Array }> {
    const { block } = elementsPerUnit(t.dtype);
    // Whole blocks (and an even count for nibble types) keep every chunk a clean byte range.
    const unit = Math.max(block, 2);
    const chunk = Math.max(unit, Math.floor(Math.min(Math.max(1, chunkElements), MAX_CHUNK_ELEMENTS) / unit) * unit);
    for (let start = 0; start < t.numel; start += chunk) {
      const count = Math.min(chunk, t.numel - start);
      yield { start, values: this.readFloat32(t, start, count) };
    }
  }

  close(): void {
    for (const fd of this.fds.values()) {
      try { fs.closeSync(fd); } catch { /* already closed */ }
    }
    this.fds.clear();
  }
}

/** Throws SourceChangedError if a model's files changed since it was opened (a no-op for models not read from files). */
export function assertSourceUnchanged(m: ModelFile): void {
  if (m instanceof LazyModelFile) m.checkUnchanged();
}

/** Product of dims, checked: every dim a non-negative safe integer and the product safe. */
export function checkedNumel(file: string, where: string, shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new FormatError(file, where, `invalid dimension ${String(d)}`);
    n *= d;
    if (!Number.isSafeInteger(n)) throw new FormatError(file, where, `shape [${shape.join(', ')}] has more elements than can be addressed`);
  }
  return n;
}

export function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch (e) {
    throw new FormatError(file, 'open', (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (e as Error).message);
  }
}

/** Read `length` bytes at `position` from a path (opens and closes it). */
export function readAt(file: string, position: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new FormatError(file, 'open', (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (e as Error).message);
  }
  try {
    readFully(fd, file, out, 0, length, position);
  } finally {
    fs.closeSync(fd);
  }
  return out;
}

/** Bytes [offset, offset+length) of a logical tensor stored as its parts one after another (quantized views); `read` reads one part's range. */
export function readPartsRange(
  file: string, t: TensorInfo, parts: readonly TensorInfo[], offset: number, length: number | undefined,
  read: (part: TensorInfo, offset: number, length: number) => Uint8Array,
): Uint8Array {
  const len = length ?? t.byteLength - offset;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(len) || offset < 0 || len < 0 || offset + len > t.byteLength) {
    throw new FormatError(file, `tensor ${t.name}`, `byte range ${offset}+${len} outside its ${t.byteLength} bytes`);
  }
  const all = new Uint8Array(len);
  let at = 0;
  for (const p of parts) {
    const a = Math.max(offset, at), b = Math.min(offset + len, at + p.byteLength);
    if (a < b) all.set(read(p, a - at, b - a), a - offset);
    at += p.byteLength;
  }
  return all;
}

/**
 * GGUF v2/v3 (llama.cpp): magic, version, tensor and key/value counts,
 * metadata of typed values (arrays nest), tensor infos, then the data section
 * at `general.alignment`. The header is parsed through a bounded cursor:
 * every count and string length is checked against the bytes left in the file
 * before anything is allocated, so a corrupt length cannot trigger a huge
 * allocation or a long loop.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DType, FormatError, MetadataValue, ModelFile, TensorInfo } from '../types';
import { LazyModelFile, READ_CHUNK, checkedNumel, fileSize } from '../lazyModelFile';
import { ggmlTypeById } from './ggmlTypes';
import { parseTensorName } from '../naming';

export const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian

export enum GgufValueType {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
}
/** Smallest encoding of each value type, used to bound array counts before reading them. */
const MIN_BYTES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 8: 8, 9: 12, 10: 8, 11: 8, 12: 8 };
const MAX_ARRAY_DEPTH = 16;

export function matchGguf(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x47 && head[1] === 0x47 && head[2] === 0x55 && head[3] === 0x46;
}

/** Sequential reader over a file that loads bounded windows on demand. */
class Cursor {
  pos = 0;
  private buf: Buffer = Buffer.alloc(0);
  private bufStart = 0;
  private dv = new DataView(this.buf.buffer);
  constructor(private fd: number, readonly file: string, readonly size: number) {}

  get remaining(): number {
    return this.size - this.pos;
  }

  /** Make bytes [pos, pos+n) available; n is bounded by the caller. */
  private need(n: number, what: string): number {
    if (n > this.size - this.pos) throw new FormatError(this.file, what, `needs ${n} bytes at offset ${this.pos} but the file ends at ${this.size}`);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      const len = Math.min(Math.max(n, READ_CHUNK), this.size - this.pos);
      const b = Buffer.allocUnsafe(len);
      let done = 0;
      while (done < len) {
        const got = fs.readSync(this.fd, b, done, Math.min(READ_CHUNK, len - done), this.pos + done);
        if (got <= 0) throw new FormatError(this.file, what, 'unexpected end of file');
        done += got;
      }
      this.buf = b;
      this.bufStart = this.pos;
      this.dv = new DataView(b.buffer, b.byteOffset, b.length);
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return at;
  }
  u8(w: string): number { const at = this.need(1, w); return this.buf[at]; }
  i8(w: string): number { const at = this.need(1, w); return this.dv.getInt8(at); }
  u16(w: string): number { const at = this.need(2, w); return this.dv.getUint16(at, true); }
  i16(w: string): number { const at = this.need(2, w); return this.dv.getInt16(at, true); }
  u32(w: string): number { const at = this.need(4, w); return this.dv.getUint32(at, true); }
  i32(w: string): number { const at = this.need(4, w); return this.dv.getInt32(at, true); }
  f32(w: string): number { const at = this.need(4, w); return this.dv.getFloat32(at, true); }
  f64(w: string): number { const at = this.need(8, w); return this.dv.getFloat64(at, true); }
  u64(w: string): bigint { const at = this.need(8, w); return this.dv.getBigUint64(at, true); }
  i64(w: string): bigint { const at = this.need(8, w); return this.dv.getBigInt64(at, true); }
  /** A u64 that must fit a safe integer (counts, lengths, offsets). */
  size64(w: string): number {
    const v = this.u64(w);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(this.file, w, `value ${v} is too large`);
    return Number(v);
  }
  str(w: string): string {
    const n = this.size64(`${w} (string length)`);
    if (n > this.remaining) throw new FormatError(this.file, w, `string length ${n} exceeds the ${this.remaining} bytes left`);
    const at = this.need(n, w);
    return this.buf.toString('utf8', at, at + n);
  }
  skip(n: number, w: string): void {
    if (n > this.remaining) throw new FormatError(this.file, w, `needs ${n} bytes but ${this.remaining} are left`);
    this.pos += n;
  }
}

/** 64-bit integers become numbers when exact, bigints otherwise. */
function int64Value(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

function readValue(c: Cursor, type: number, w: string, depth: number): MetadataValue {
  switch (type) {
    case GgufValueType.UINT8: return c.u8(w);
    case GgufValueType.INT8: return c.i8(w);
    case GgufValueType.UINT16: return c.u16(w);
    case GgufValueType.INT16: return c.i16(w);
    case GgufValueType.UINT32: return c.u32(w);
    case GgufValueType.INT32: return c.i32(w);
    case GgufValueType.FLOAT32: return c.f32(w);
    case GgufValueType.FLOAT64: return c.f64(w);
    case GgufValueType.UINT64: return int64Value(c.u64(w));
    case GgufValueType.INT64: return int64Value(c.i64(w));
    case GgufValueType.BOOL: {
      const b = c.u8(w);
      if (b > 1) throw new FormatError(c.file, w, `bool value ${b} is neither 0 nor 1`);
      return b === 1;
    }
    case GgufValueType.STRING: return c.str(w);
    case GgufValueType.ARRAY: {
      if (depth >= MAX_ARRAY_DEPTH) throw new FormatError(c.file, w, `arrays nested deeper than ${MAX_ARRAY_DEPTH}`);
      const et = c.u32(`${w} (array element type)`);
      if (!(et in MIN_BYTES)) throw new FormatError(c.file, w, `unknown array element type ${et}`);
      const n = c.size64(`${w} (array length)`);
      if (n * MIN_BYTES[et] > c.remaining) throw new FormatError(c.file, w, `array of ${n} elements cannot fit in the ${c.remaining} bytes left`);
      const out: MetadataValue[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = readValue(c, et, w, depth + 1);
      return out;
    }
    default:
      throw new FormatError(c.file, w, `unknown value type ${type}`);
  }
}

export interface GgufHeader {
  version: number;
  metadata: Record<string, MetadataValue>;
  /** Value type of each metadata key, for writers that must round-trip it. */
  metadataTypes: Record<string, number>;
  /** Element type of each array-valued key (its outermost level). */
  metadataArrayTypes: Record<string, number>;
  /** Each tensor's dims in ggml order (ne[0], the row length, first) and offset within the data section. */
  rawTensors: { name: string; ne: number[]; type: number; offset: number }[];
  alignment: number;
  dataOffset: number;
  tensors: TensorInfo[];
  /** ggml type id of each tensor, parallel to `tensors`. */
  ggmlTypes: number[];
}

export function readGgufHeader(file: string): GgufHeader {
  const size = fileSize(file);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch (e) {
    throw new FormatError(file, 'open', (e as Error).message);
  }
  try {
    return parse(new Cursor(fd, file, size), file, size);
  } finally {
    fs.closeSync(fd);
  }
}

function parse(c: Cursor, file: string, size: number): GgufHeader {
  if (size < 24) throw new FormatError(file, 'header', `file is ${size} bytes, too short for a GGUF header`);
  const magic = c.u32('magic');
  if (magic !== GGUF_MAGIC) throw new FormatError(file, 'magic', 'not a GGUF file');
  const version = c.u32('version');
  if (version === 1) throw new FormatError(file, 'version', 'unsupported GGUF version 1 (only v2 and v3 are read)');
  if (version !== 2 && version !== 3) {
    const swapped = ((version & 0xff) << 24 | (version & 0xff00) << 8 | (version >>> 8) & 0xff00 | version >>> 24) >>> 0;
    if (swapped === 2 || swapped === 3) throw new FormatError(file, 'version', 'big-endian GGUF files are not supported');
    throw new FormatError(file, 'version', `unsupported GGUF version ${version}`);
  }
  const nTensors = c.size64('tensor count');
  const nKv = c.size64('metadata count');
  // Each key/value needs at least 8 (key length) + 4 (type) + 1 bytes, each tensor info 8+4+4+8.
  if (nKv * 13 > c.remaining) throw new FormatError(file, 'metadata count', `${nKv} entries cannot fit in the file`);
  if (nTensors * 24 > c.remaining) throw new FormatError(file, 'tensor count', `${nTensors} tensors cannot fit in the file`);
  const metadata: Record<string, MetadataValue> = Object.create(null) as Record<string, MetadataValue>;
  const metadataTypes: Record<string, number> = Object.create(null) as Record<string, number>;
  const metadataArrayTypes: Record<string, number> = Object.create(null) as Record<string, number>;
  for (let i = 0; i < nKv; i++) {
    const key = c.str(`metadata key #${i}`);
    const type = c.u32(`metadata ${key} (type)`);
    if (key in metadata) throw new FormatError(file, `metadata ${key}`, 'duplicate key');
    if (type === GgufValueType.ARRAY) {
      const at = c.pos;
      metadataArrayTypes[key] = c.u32(`metadata ${key} (array element type)`);
      c.pos = at;
    }
    metadata[key] = readValue(c, type, `metadata ${key}`, 0);
    metadataTypes[key] = type;
  }
  let alignment = 32;
  if ('general.alignment' in metadata) {
    const a = metadata['general.alignment'];
    if (typeof a !== 'number' || a <= 0 || (a & (a - 1)) !== 0 || a > 1 << 30) {
      throw new FormatError(file, 'metadata general.alignment', `${String(a)} is not a power of two`);
    }
    alignment = a;
  }
  const raw: { name: string; dims: number[]; type: number; offset: number }[] = [];
  const names = new Set<string>();
  for (let i = 0; i < nTensors; i++) {
    const name = c.str(`tensor info #${i} (name)`);
    const w = `tensor ${name}`;
    if (names.has(name)) throw new FormatError(file, w, 'duplicate tensor name');
    names.add(name);
    const nd = c.u32(`${w} (n_dims)`);
    if (nd > 8) throw new FormatError(file, w, `${nd} dimensions (GGML_MAX_DIMS is 4)`);
    const dims: number[] = [];
    for (let d = 0; d < nd; d++) dims.push(c.size64(`${w} (dim ${d})`));
    const type = c.u32(`${w} (type)`);
    const offset = c.size64(`${w} (offset)`);
    raw.push({ name, dims, type, offset });
  }
  const dataOffset = Math.ceil(c.pos / alignment) * alignment;
  if (dataOffset > size) throw new FormatError(file, 'data section', `starts at ${dataOffset}, past the end of the ${size}-byte file`);
  const dataLen = size - dataOffset;
  const tensors: TensorInfo[] = [];
  const ggmlTypes: number[] = [];
  for (const r of raw) {
    const w = `tensor ${r.name}`;
    const info = ggmlTypeById(r.type);
    if (!info) throw new FormatError(file, w, `unknown GGUF type id ${r.type}`);
    // ggml lists ne[0] (the contiguous dimension) first; we show row-major order like the other formats.
    const shape = r.dims.slice().reverse();
    const numel = checkedNumel(file, w, shape);
    const ne0 = r.dims.length ? r.dims[0] : 1;
    if (ne0 % info.blockSize !== 0) throw new FormatError(file, w, `row of ${ne0} elements is not a whole number of ${info.name} blocks of ${info.blockSize}`);
    const byteLength = (numel / info.blockSize) * info.typeSize;
    if (!Number.isSafeInteger(byteLength)) throw new FormatError(file, w, 'byte length overflows');
    if (r.offset % alignment !== 0) throw new FormatError(file, w, `offset ${r.offset} is not a multiple of the alignment ${alignment}`);
    if (r.offset + byteLength > dataLen) {
      throw new FormatError(file, w, `bytes ${r.offset}..${r.offset + byteLength} run past the ${dataLen}-byte data section`);
    }
    const dtype: DType = info.quantized ? `gguf:${info.name.toLowerCase()}` : ggmlScalar(info.name);
    const named = parseTensorName(r.name);
    tensors.push({
      name: r.name, dtype, shape, numel, byteLength,
      location: { kind: 'disk', file, offset: dataOffset + r.offset, length: byteLength },
      source: 'tensor',
      layer: {
        consumers: [], ...named,
        // ggml weights are [n_out rows][n_in]: rows are output channels.
        outputChannelAxis: shape.length >= 2 ? 0 : undefined,
      },
    });
    ggmlTypes.push(r.type);
  }
  // Tensors may be listed in any order but must not share bytes.
  const order = tensors.map((t, i) => i).sort((a, b) => raw[a].offset - raw[b].offset);
  for (let k = 1; k < order.length; k++) {
    const prev = order[k - 1], cur = order[k];
    if (raw[prev].offset + tensors[prev].byteLength > raw[cur].offset && tensors[prev].byteLength > 0) {
      throw new FormatError(file, `tensor ${tensors[cur].name}`, `overlaps tensor ${tensors[prev].name}`);
    }
  }
  // Null-prototype objects: a key named "__proto__" in a file stays plain data.
  const rawTensors = raw.map((r) => ({ name: r.name, ne: r.dims, type: r.type, offset: r.offset }));
  return { version, metadata, metadataTypes, metadataArrayTypes, rawTensors, alignment, dataOffset, tensors, ggmlTypes };
}

function ggmlScalar(name: string): DType {
  switch (name) {
    case 'F32': return 'f32';
    case 'F16': return 'f16';
    case 'BF16': return 'bf16';
    case 'F64': return 'f64';
    case 'I8': return 'i8';
    case 'I16': return 'i16';
    case 'I32': return 'i32';
    case 'I64': return 'i64';
    default: return `gguf:${name.toLowerCase()}`;
  }
}

export function openGguf(file: string): ModelFile {
  const abs = path.resolve(file);
  const h = readGgufHeader(abs);
  return new LazyModelFile({
    path: abs, format: 'gguf', formatVersion: `GGUF v${h.version}`, files: [abs], sizeOnDisk: fileSize(abs),
    metadata: h.metadata, tensors: h.tensors,
  });
}

/**
 * A bounded-memory pass over a protobuf file that leaves chosen bytes fields
 * (ONNX TensorProto.raw_data) on disk. It walks the wire format with the
 * message types of a protobufjs schema, reading the file through one small
 * refilled buffer, and writes a compact copy of the message in which every
 * spliced field's payload is replaced by a one-byte placeholder. The compact
 * copy is then decoded by protobufjs as usual (it stays the decoder of
 * record); the placeholder's position in the compact copy is the key to where
 * the real payload lives in the file.
 *
 * Why a placeholder and not removal: the decoder must still see that the
 * field is present, and protobufjs returns a detached empty array for a
 * zero-length bytes field, which would lose the key.
 *
 * Fields the schema does not know are dropped (protobufjs would skip them
 * anyway), so training_info and other large unknown parts never reach memory.
 * Fields kept in memory are bounded one by one (`maxFieldBytes`) and in total
 * (`maxRetainedBytes`); going over either is a FormatError rather than an
 * allocation the size of the file.
 */
import * as fs from 'node:fs';
import * as protobuf from 'protobufjs';
import { FormatError } from '../types';

export interface SplicedField {
  /** Byte offset of the payload in the file. */
  fileOffset: number;
  length: number;
}

export interface ScanResult {
  /** The message without spliced payloads, ready for protobufjs. */
  compact: Uint8Array;
  /** Placeholder offset in `compact` -> where the payload really is. */
  spliced: Map<number, SplicedField>;
}

export interface ScanOptions {
  /** Fully qualified fields to leave on disk, e.g. "onnx.TensorProto.raw_data". */
  splice: ReadonlySet<string>;
  /** Largest single field kept in memory. */
  maxFieldBytes?: number;
  /** Largest compact copy. */
  maxRetainedBytes?: number;
  /** Deepest message nesting followed. */
  maxDepth?: number;
  /** Size of the read buffer. */
  chunkBytes?: number;
  /** Name used in error messages for the top-level message. */
  label?: string;
}

export const DEFAULT_MAX_FIELD_BYTES = 64 * 2 ** 20;
export const DEFAULT_MAX_RETAINED_BYTES = 256 * 2 ** 20;
/** protoc's and protobufjs' default recursion limit: deeper input would fail in the decoder anyway. */
export const DEFAULT_MAX_DEPTH = 100;
const SMALL_FILL = 64 * 1024;

interface FieldPlan {
  name: string;
  /** Message type to descend into, when the field is a message. */
  message?: protobuf.Type;
  splice: boolean;
}

/** Per-type lookup of field number -> plan, built once from the reflection objects. */
class Plans {
  private cache = new Map<protobuf.Type, Map<number, FieldPlan>>();
  constructor(private splice: ReadonlySet<string>) {}
  of(t: protobuf.Type): Map<number, FieldPlan> {
    let m = this.cache.get(t);
    if (m) return m;
    m = new Map();
    for (const f of t.fieldsArray) {
      f.resolve();
      const full = `${t.fullName.replace(/^\./, '')}.${f.name}`;
      const message = f.resolvedType instanceof protobuf.Type ? f.resolvedType : undefined;
      m.set(f.id, { name: f.name, message, splice: this.splice.has(full) });
    }
    this.cache.set(t, m);
    return m;
  }
}

class Scanner {
  private buf: Buffer;
  private bufStart = 0;
  private bufLen = 0;
  private fillSize = SMALL_FILL;
  pos = 0;
  private out: Uint8Array;
  private outLen = 0;
  /** Placeholders in output order (keys only grow), so a late shift touches only the tail. */
  private spliced: { at: number; field: SplicedField }[] = [];
  /** Field names from the top message down, for error messages. */
  private trail: string[] = [];
  /** Bytes of the last varint read, so a kept field can be copied as it was. */
  private vbytes = new Uint8Array(10);
  private vlen = 0;
  private plans: Plans;
  private maxField: number;
  private maxRetained: number;
  private maxDepth: number;
  private label: string;

  constructor(private fd: number, private file: string, private size: number, opts: ScanOptions) {
    const chunk = opts.chunkBytes ?? 2 ** 20;
    this.buf = Buffer.allocUnsafe(Math.max(16, Math.min(chunk, size)));
    this.out = new Uint8Array(Math.min(64 * 1024, size + 16));
    this.plans = new Plans(opts.splice);
    this.maxField = opts.maxFieldBytes ?? DEFAULT_MAX_FIELD_BYTES;
    this.maxRetained = opts.maxRetainedBytes ?? DEFAULT_MAX_RETAINED_BYTES;
    this.maxDepth = opts.maxDepth ?? DEFAULT_MAX_DEPTH;
    this.label = opts.label ?? 'message';
  }

  result(): ScanResult {
    return { compact: this.out.subarray(0, this.outLen), spliced: new Map(this.spliced.map((s) => [s.at, s.field])) };
  }

  private fail(problem: string, at = this.pos): never {
    const where = this.trail.length ? `${this.trail.join('.')}: ` : '';
    throw new FormatError(this.file, 'protobuf', `malformed ${this.label}: ${where}${problem} (at byte ${at})`);
  }

  private fill(at: number): void {
    const n = Math.min(this.fillSize, this.buf.length, this.size - at);
    if (n <= 0) this.fail('unexpected end of file', at);
    let got = 0;
    while (got < n) {
      const r = fs.readSync(this.fd, this.buf, got, n - got, at + got);
      if (r <= 0) this.fail('unexpected end of file', at + got);
      got += r;
    }
    this.bufStart = at;
    this.bufLen = n;
    // Sequential reading grows the fill; a jump over a payload resets it so the
    // few header bytes after each skipped tensor do not cost a full buffer.
    this.fillSize = Math.min(this.fillSize * 2, this.buf.length);
  }

  private byteAt(p: number): number {
    if (p < this.bufStart || p >= this.bufStart + this.bufLen) this.fill(p);
    return this.buf[p - this.bufStart];
  }

  /** A varint ending before `end`, as a double (exact below 2^53); its bytes stay in vbytes. */
  private varint(end: number, what: string, suffix = ''): number {
    const start = this.pos;
    let value = 0;
    let scale = 1;
    for (let i = 0; ; i++) {
      if (i >= 10) this.fail(`${what}${suffix} varint longer than 10 bytes`, start);
      if (this.pos >= end) this.fail(`${what}${suffix} varint runs past the end`, start);
      const p = this.pos++;
      const b = p >= this.bufStart && p < this.bufStart + this.bufLen ? this.buf[p - this.bufStart] : this.byteAt(p);
      this.vbytes[i] = b;
      value += (b & 0x7f) * scale;
      scale *= 128;
      if (b < 0x80) {
        this.vlen = i + 1;
        return value;
      }
    }
  }

  private reserve(n: number): void {
    const need = this.outLen + n;
    if (need > this.maxRetained) {
      this.fail(`the parts kept in memory exceed ${this.maxRetained} bytes`);
    }
    if (need <= this.out.length) return;
    let cap = this.out.length * 2;
    while (cap < need) cap *= 2;
    // The copy is never much larger than the file (placeholders add at most a byte or two per empty raw_data).
    const grown = new Uint8Array(Math.max(need, Math.min(cap, this.maxRetained, this.size + 4096)));
    grown.set(this.out.subarray(0, this.outLen));
    this.out = grown;
  }

  private emit(bytes: Uint8Array, n: number): void {
    this.reserve(n);
    this.out.set(bytes.subarray(0, n), this.outLen);
    this.outLen += n;
  }

  private emitVarint(v: number): void {
    this.reserve(10);
    while (v >= 0x80) {
      this.out[this.outLen++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.out[this.outLen++] = v;
  }

  /** Copy `n` file bytes at pos to the output. */
  private copy(n: number): void {
    this.reserve(n);
    let done = 0;
    while (done < n) {
      const p = this.pos + done;
      if (p < this.bufStart || p >= this.bufStart + this.bufLen) this.fill(p);
      const avail = Math.min(n - done, this.bufStart + this.bufLen - p);
      this.out.set(this.buf.subarray(p - this.bufStart, p - this.bufStart + avail), this.outLen + done);
      done += avail;
    }
    this.outLen += n;
    this.pos += n;
  }

  private skip(n: number): void {
    this.pos += n;
    if (n > SMALL_FILL) this.fillSize = SMALL_FILL;
  }

  /** Write `v` as a varint of exactly `width` bytes at `at` (padding with continuation bytes is valid protobuf). */
  private patchLength(at: number, width: number, v: number): void {
    let need = 1;
    for (let x = v; x >= 0x80; x = Math.floor(x / 128)) need++;
    if (need > width) {
      // Only when placeholders made a message grow across a 7-bit boundary: move its body up.
      const extra = need - width;
      this.reserve(extra);
      this.out.copyWithin(at + need, at + width, this.outLen);
      this.outLen += extra;
      for (let i = this.spliced.length - 1; i >= 0 && this.spliced[i].at > at; i--) this.spliced[i].at += extra;
      width = need;
    }
    for (let i = 0; i < width - 1; i++) {
      this.out[at + i] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    this.out[at + width - 1] = v;
  }

  message(type: protobuf.Type, end: number, depth: number): void {
    if (depth > this.maxDepth) this.fail(`messages nested deeper than ${this.maxDepth}`);
    const plans = this.plans.of(type);
    while (this.pos < end) {
      const tagAt = this.pos;
      const tag = this.varint(end, 'tag');
      const fieldNo = Math.floor(tag / 8);
      const wire = tag % 8;
      if (fieldNo === 0 || fieldNo >= 2 ** 29) this.fail(`invalid field number ${fieldNo}`, tagAt);
      const plan = plans.get(fieldNo);
      const fieldName = plan ? plan.name : `field ${fieldNo}`;
      switch (wire) {
        case 0: {
          this.varint(end, fieldName);
          if (plan) { this.emitVarint(tag); this.emit(this.vbytes, this.vlen); }
          break;
        }
        case 1: case 5: {
          const n = wire === 1 ? 8 : 4;
          if (end - this.pos < n) this.fail(`${fieldName}: ${n}-byte value runs past the end`, tagAt);
          if (plan) { this.emitVarint(tag); this.copy(n); } else this.skip(n);
          break;
        }
        case 2: {
          const len = this.varint(end, fieldName, ' length');
          const width = this.vlen;
          if (len > end - this.pos) {
            this.fail(`${fieldName}: length ${len} runs past the end of its message (${end - this.pos} bytes left)`, tagAt);
          }
          if (!plan) { this.skip(len); break; }
          this.emitVarint(tag);
          if (plan.splice) {
            this.emitVarint(1);
            this.spliced.push({ at: this.outLen, field: { fileOffset: this.pos, length: len } });
            this.reserve(1);
            this.out[this.outLen++] = 0;
            this.skip(len);
          } else if (plan.message) {
            this.reserve(width);
            const lenAt = this.outLen;
            this.outLen += width;
            this.trail.push(fieldName);
            this.message(plan.message, this.pos + len, depth + 1);
            this.trail.pop();
            this.patchLength(lenAt, width, this.outLen - lenAt - width);
          } else {
            if (len > this.maxField) {
              this.trail.push(fieldName);
              this.fail(`${len} bytes, over the ${this.maxField}-byte limit for a field held in memory`, tagAt);
            }
            this.emit(this.vbytes, width);
            this.copy(len);
          }
          break;
        }
        case 3: case 4:
          this.fail(`${fieldName}: group (wire type ${wire}) is not used by this format`, tagAt);
          break;
        default:
          this.fail(`${fieldName}: invalid wire type ${wire}`, tagAt);
      }
    }
  }
}

/**
 * Scan the file as one message of `type`, leaving `opts.splice` fields on disk.
 * Memory held: the read buffer plus the compact copy (bounded by options).
 */
export function scanProtobufFile(file: string, type: protobuf.Type, opts: ScanOptions): ScanResult {
  const size = fs.statSync(file).size;
  const fd = fs.openSync(file, 'r');
  try {
    const s = new Scanner(fd, file, size, opts);
    s.message(type, size, 0);
    return s.result();
  } finally {
    fs.closeSync(fd);
  }
}

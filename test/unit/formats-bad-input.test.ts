/** Broken files: each is a FormatError that names the file, the part, and what is wrong. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { openModel } from '../../src/formats/index';
import { FormatError } from '../../src/formats/types';
import { ONNX_PROTO } from '../../src/formats/onnx/schema';

const fixtures = path.resolve(__dirname, '../../../test/fixtures/formats');
let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-bad-')); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array | string): string {
  const p = path.join(tmp, name);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, bytes);
  return p;
}
/** Opening `file` fails with a FormatError about `file` whose message matches `re`. */
function rejects(file: string, re: RegExp, errFile = file): void {
  assert.throws(() => openModel(file), (e: unknown) => {
    assert.ok(e instanceof FormatError, `not a FormatError: ${String(e)}`);
    assert.equal(e.file, path.resolve(errFile));
    assert.match(e.message, re);
    return true;
  });
}
function st(header: unknown, data: Uint8Array | number = 0, lenOverride?: bigint): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lenOverride ?? BigInt(json.length));
  return Buffer.concat([len, json, typeof data === 'number' ? Buffer.alloc(data) : Buffer.from(data)]);
}

describe('bad input: safetensors', () => {
  it('header length 2^63, past the end, or a file shorter than 8 bytes', () => {
    rejects(write('a.safetensors', st({}, 0, 1n << 63n)), /header length: 9223372036854775808 bytes exceeds/);
    rejects(write('b.safetensors', st({ x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, 4, 4000n)), /header length/);
    rejects(write('c.safetensors', Buffer.from([1, 2, 3])), /shorter than the 8-byte header length/);
  });
  it('malformed JSON and non-object headers', () => {
    const bad = Buffer.from('{"x": [');
    const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(bad.length));
    rejects(write('d.safetensors', Buffer.concat([len, bad])), /header: malformed JSON/);
    rejects(write('e.safetensors', st([1, 2])), /header: is not a JSON object/);
  });
  it('unknown dtype, shape/length mismatch, overflowing shape, offsets past the end', () => {
    rejects(write('f.safetensors', st({ w: { dtype: 'F7', shape: [1], data_offsets: [0, 1] } }, 1)), /tensor w: unknown dtype "F7"/);
    rejects(write('g.safetensors', st({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, 8)), /tensor w: holds 8 bytes but F32 \[3\] needs 12/);
    rejects(write('h.safetensors', st({ w: { dtype: 'F32', shape: [2 ** 30, 2 ** 30, 2 ** 30], data_offsets: [0, 4] } }, 4)), /tensor w: shape .* more elements than can be addressed/);
    rejects(write('i.safetensors', st({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, 8)), /tensor w: data_offsets end 16 past the 8-byte data section/);
    rejects(write('j.safetensors', st({ w: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, 4)), /tensor w: invalid dimension -1/);
  });
  it('holes, overlaps and unindexed trailing bytes', () => {
    const two = (a: number[], b: number[], n: number): Buffer => st({ a: { dtype: 'U8', shape: [a[1] - a[0]], data_offsets: a }, b: { dtype: 'U8', shape: [b[1] - b[0]], data_offsets: b } }, n);
    rejects(write('k.safetensors', two([0, 2], [3, 4], 4)), /tensor b: leaves a 1-byte hole/);
    rejects(write('l.safetensors', two([0, 2], [1, 3], 3)), /tensor b: overlaps/);
    rejects(write('m.safetensors', two([0, 2], [2, 4], 6)), /data section: 2 bytes after the last tensor/);
  });
  it('a missing shard names the shard file', () => {
    const idx = write('shards/model.safetensors.index.json', JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }));
    write('shards/model-00001-of-00002.safetensors', st({ a: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, 1));
    rejects(idx, /shard of model.safetensors.index.json: file not found/, path.join(tmp, 'shards/model-00002-of-00002.safetensors'));
    // Opening the present shard goes through the sibling index, so it fails the same way.
    rejects(path.join(tmp, 'shards/model-00001-of-00002.safetensors'), /file not found/, path.join(tmp, 'shards/model-00002-of-00002.safetensors'));
    const esc = write('shards2/model.safetensors.index.json', JSON.stringify({ weight_map: { a: '../x.safetensors' } }));
    rejects(esc, /weight_map.a: invalid shard name/);
  });
});

class Gguf {
  parts: Buffer[] = [];
  u32(v: number): this { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.parts.push(b); return this; }
  u64(v: bigint | number): this { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.parts.push(b); return this; }
  str(s: string): this { this.u64(Buffer.byteLength(s)); this.parts.push(Buffer.from(s)); return this; }
  raw(b: Uint8Array): this { this.parts.push(Buffer.from(b)); return this; }
  pad(a: number): this { const n = this.bytes().length; this.parts.push(Buffer.alloc((a - (n % a)) % a)); return this; }
  bytes(): Buffer { return Buffer.concat(this.parts); }
}
/** A GGUF with one F32 tensor; pieces can be overridden. */
function gguf(o: { version?: number; nt?: bigint; nkv?: bigint; dims?: (bigint | number)[]; type?: number; offset?: bigint | number; data?: number; kv?: (g: Gguf) => void } = {}): Buffer {
  const g = new Gguf().u32(0x46554747).u32(o.version ?? 3).u64(o.nt ?? 1n).u64(o.nkv ?? (o.kv ? 1n : 0n));
  o.kv?.(g);
  const dims = o.dims ?? [4];
  g.str('w').u32(dims.length);
  for (const d of dims) g.u64(d);
  g.u32(o.type ?? 0).u64(o.offset ?? 0).pad(32).raw(Buffer.alloc(o.data ?? 16));
  return g.bytes();
}

describe('bad input: GGUF', () => {
  it('a well-formed base case opens (so the failures below are about the change)', () => {
    assert.equal(openModel(write('ok.gguf', gguf())).tensors[0].numel, 4);
  });
  it('unsupported versions: v1, big-endian, unknown', () => {
    rejects(write('v1.gguf', gguf({ version: 1 })), /version: unsupported GGUF version 1/);
    rejects(write('be.gguf', gguf({ version: 0x03000000 })), /big-endian/);
    rejects(write('v9.gguf', gguf({ version: 9 })), /unsupported GGUF version 9/);
  });
  it('counts and string lengths larger than the file', () => {
    rejects(write('nt.gguf', gguf({ nt: 1n << 62n })), /tensor count: value .* too large|cannot fit/);
    rejects(write('nt2.gguf', gguf({ nt: 100000n })), /tensor count: 100000 tensors cannot fit/);
    rejects(write('nkv.gguf', gguf({ nkv: 1n << 40n })), /metadata count: .* cannot fit/);
    rejects(write('str.gguf', gguf({ kv: (g) => g.u64(1n << 50n) })), /string length|exceeds/);
    rejects(write('arr.gguf', gguf({ kv: (g) => g.str('a').u32(9).u32(4).u64(1n << 40n) })), /metadata a: array of 1099511627776 elements cannot fit/);
    rejects(write('vt.gguf', gguf({ kv: (g) => g.str('a').u32(77) })), /metadata a: unknown value type 77/);
  });
  it('unknown tensor type, overflowing shape, offsets past the end or misaligned', () => {
    rejects(write('ty.gguf', gguf({ type: 99 })), /tensor w: unknown GGUF type id 99/);
    rejects(write('ov.gguf', gguf({ dims: [1n << 40n, 1n << 40n] })), /tensor w: shape .* more elements than can be addressed/);
    rejects(write('off.gguf', gguf({ offset: 64 })), /tensor w: bytes 64\.\.80 run past the 16-byte data section/);
    rejects(write('al.gguf', gguf({ offset: 4, data: 32 })), /offset 4 is not a multiple of the alignment 32/);
    rejects(write('blk.gguf', gguf({ type: 8, dims: [16] })), /row of 16 elements is not a whole number of Q8_0 blocks/);
    rejects(write('bad-align.gguf', gguf({ kv: (g) => g.str('general.alignment').u32(4).u32(3) })), /general.alignment: 3 is not a power of two/);
  });
  it('every truncation of the v3 fixture is rejected cleanly', () => {
    const src = fs.readFileSync(path.join(fixtures, 'v3.gguf'));
    for (let n = 0; n < src.length; n += 37) {
      const p = write('trunc.gguf', src.subarray(0, n));
      assert.throws(() => openModel(p), FormatError, `truncated at ${n}`);
    }
  });
});

describe('bad input: ONNX', () => {
  const Model = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType('onnx.ModelProto');
  const onnx = (name: string, inits: object[]): string =>
    write(name, Model.encode(Model.fromObject({ ir_version: 8, opset_import: [{ version: 13 }], graph: { name: 'g', initializer: inits } })).finish());
  it('malformed and truncated protobuf', () => {
    rejects(write('junk.onnx', Buffer.from([0x08, 0x08, 0x3a, 0xff, 0xff, 0xff, 0x0f, 1, 2])), /protobuf: malformed ModelProto/);
    const src = fs.readFileSync(path.join(fixtures, 'weights.onnx'));
    rejects(write('trunc.onnx', src.subarray(0, src.length - 100)), /protobuf: malformed ModelProto/);
    rejects(write('nograph.onnx', Model.encode(Model.fromObject({ ir_version: 8 })).finish()), /has no graph/);
  });
  it('raw_data length disagreeing with the shape, unknown and unsupported data types', () => {
    rejects(onnx('len.onnx', [{ name: 'w', data_type: 1, dims: [3], raw_data: new Uint8Array(8) }]), /tensor w: raw_data holds 8 bytes but f32 \[3\] needs 12/);
    rejects(onnx('dt.onnx', [{ name: 'w', data_type: 99, dims: [1], raw_data: new Uint8Array(1) }]), /tensor w: unsupported data type unknown \(99\)/);
    rejects(onnx('fp4.onnx', [{ name: 'w', data_type: 23, dims: [2], raw_data: new Uint8Array(1) }]), /tensor w: unsupported data type FLOAT4E2M1/);
    rejects(onnx('typed.onnx', [{ name: 'w', data_type: 1, dims: [3], float_data: [1, 2] }]), /tensor w: float_data has 2 values for 3 expected/);
    rejects(onnx('neg.onnx', [{ name: 'w', data_type: 1, dims: [-2], float_data: [] }]), /tensor w: invalid dimension -2/);
    rejects(onnx('big.onnx', [{ name: 'w', data_type: 1, dims: [2 ** 31, 2 ** 31, 2 ** 31], float_data: [] }]), /tensor w: shape .* more elements/);
  });
  it('external data: missing file (named), escaping path, range past the end, wrong length', () => {
    const ext = (loc: string, extra: object[] = []): object => ({ name: 'w', data_type: 1, dims: [2], data_location: 1, external_data: [{ key: 'location', value: loc }, ...extra] });
    rejects(onnx('missing.onnx', [ext('nothere.bin')]), /external data of tensor w in missing.onnx: file not found/, path.join(tmp, 'nothere.bin'));
    rejects(onnx('escape.onnx', [ext('../etc/passwd')]), /outside the model's directory/);
    write('small.bin', new Uint8Array(6));
    rejects(onnx('past.onnx', [ext('small.bin')]), /tensor w: bytes 0\.\.8 run past the end of the 6-byte file/, path.join(tmp, 'small.bin'));
    rejects(onnx('wrong.onnx', [ext('small.bin', [{ key: 'length', value: '4' }])]), /external_data length: 4 bytes but the tensor needs 8/);
    rejects(onnx('nan.onnx', [ext('small.bin', [{ key: 'offset', value: '-1' }])]), /external_data offset/);
  });
  it('unknown files are refused by name', () => {
    rejects(write('notes.txt', 'hello'), /format: not an ONNX, safetensors or GGUF file/);
  });
});

#!/usr/bin/env node
// Writes the small model files the format tests read back, under
// test/fixtures/formats/, plus manifest.json with the values every tensor must
// decode to. Expected values are written here literally or computed from the
// integer codes a block is built from, never by reading the files back.
// Needs the compiled tree (npx tsc -p .) for the f16/bf16 encoders and the ONNX schema.
import { createRequire } from 'node:module';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
let dtypes, schema;
try {
  dtypes = require(path.join(root, 'out/src/formats/dtypes.js'));
  schema = require(path.join(root, 'out/src/formats/onnx-schema.js'));
} catch {
  console.error('gen-fixtures: compile first (npx tsc -p .)');
  process.exit(1);
}
const protobuf = require('protobufjs');
const { f32ToF16, f32ToBf16 } = dtypes;

const outDir = path.join(root, 'test/fixtures/formats');
fs.mkdirSync(path.join(outDir, 'sharded'), { recursive: true });
const manifest = {};
const fr = Math.fround;

// Deterministic pseudo-random bytes (xorshift32) so regenerated fixtures are identical.
let seed = 0x9e3779b9;
function rnd() {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed;
}
const randInt = (lo, hi) => lo + (rnd() % (hi - lo + 1));

// ---------------------------------------------------------------------------
// Scalar tensors with known values, shared by safetensors and ONNX.

function le(ctor, values) { return new Uint8Array(ctor.from(values).buffer); }
function u16(codes) { return new Uint8Array(Uint16Array.from(codes).buffer); }
function nibbles(values) {
  const out = new Uint8Array(Math.ceil(values.length / 2));
  values.forEach((v, i) => { out[i >> 1] |= (v & 15) << ((i & 1) * 4); });
  return out;
}
const SCALARS = {
  f64: { shape: [3], bytes: le(Float64Array, [0.1, -2.5, 1e300]), expect: [fr(0.1), -2.5, Infinity] },
  f32: { shape: [5], bytes: le(Float32Array, [0.5, -1.25, 1024.125, 2 ** -126, -(2 ** 100)]), expect: [0.5, -1.25, 1024.125, 2 ** -126, -(2 ** 100)] },
  f16: { shape: [5], bytes: u16([1, -2, 65504, 2 ** -24, 0.1].map(f32ToF16)), expect: [1, -2, 65504, 2 ** -24, 0.0999755859375] },
  bf16: { shape: [2, 2], bytes: u16([1, -2, 3.140625, 0.1].map(f32ToBf16)), expect: [1, -2, 3.140625, 0.10009765625] },
  f8_e4m3fn: { shape: [4], bytes: Uint8Array.from([0x38, 0xc0, 0x7e, 0x01]), expect: [1, -2, 448, 2 ** -9] },
  f8_e5m2: { shape: [4], bytes: Uint8Array.from([0x3c, 0xc0, 0x7b, 0x01]), expect: [1, -2, 57344, 2 ** -16] },
  f8_e4m3fnuz: { shape: [3], bytes: Uint8Array.from([0x40, 0xc8, 0x7f]), expect: [1, -2, 240] },
  f8_e5m2fnuz: { shape: [3], bytes: Uint8Array.from([0x40, 0xc4, 0x7f]), expect: [1, -2, 57344] },
  i64: { shape: [2], bytes: le(BigInt64Array, [-3n, 1n << 40n]), expect: [-3, 2 ** 40] },
  u64: { shape: [2], bytes: le(BigUint64Array, [7n, 1n << 50n]), expect: [7, 2 ** 50] },
  i32: { shape: [2], bytes: le(Int32Array, [-7, 123456]), expect: [-7, 123456] },
  u32: { shape: [2], bytes: le(Uint32Array, [4000000000, 1]), expect: [4000000000, 1] },
  i16: { shape: [2], bytes: le(Int16Array, [-32768, 32767]), expect: [-32768, 32767] },
  u16: { shape: [2], bytes: le(Uint16Array, [65535, 2]), expect: [65535, 2] },
  i8: { shape: [3], bytes: le(Int8Array, [-128, 127, -1]), expect: [-128, 127, -1] },
  u8: { shape: [2], bytes: Uint8Array.from([0, 255]), expect: [0, 255] },
  bool: { shape: [3], bytes: Uint8Array.from([0, 1, 1]), expect: [0, 1, 1] },
  i4: { shape: [5], bytes: nibbles([-8, 7, -1, 0, 3]), expect: [-8, 7, -1, 0, 3] },
  u4: { shape: [3], bytes: nibbles([0, 15, 9]), expect: [0, 15, 9] },
};

// ---------------------------------------------------------------------------
// safetensors

function writeSafetensors(file, tensors, metadata) {
  const header = {};
  if (metadata) header.__metadata__ = metadata;
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] };
    off += t.bytes.length;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8) json += ' '; // the reference writer pads to 8 bytes
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...tensors.map((t) => Buffer.from(t.bytes))]));
}
const ST_NAMES = { f64: 'F64', f32: 'F32', f16: 'F16', bf16: 'BF16', f8_e4m3fn: 'F8_E4M3', f8_e5m2: 'F8_E5M2', i64: 'I64', u64: 'U64', i32: 'I32', u32: 'U32', i16: 'I16', u16: 'U16', i8: 'I8', u8: 'U8', bool: 'BOOL' };
{
  const tensors = Object.entries(ST_NAMES).map(([d, st]) => ({ name: `t_${d}`, dtype: st, shape: SCALARS[d].shape, bytes: SCALARS[d].bytes }));
  writeSafetensors(path.join(outDir, 'all-dtypes.safetensors'), tensors, { format: 'pt', note: 'quantscope fixture' });
  manifest['all-dtypes.safetensors'] = Object.fromEntries(Object.keys(ST_NAMES).map((d) => [`t_${d}`, { dtype: d, shape: SCALARS[d].shape, values: SCALARS[d].expect }]));
}
{
  // Two shards of a tiny Llama-style checkpoint; values are small integers in F32/BF16 (exact).
  const mk = (name, dtype, shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const values = Array.from({ length: n }, (_, i) => ((i * 7 + name.length) % 17) - 8);
    const bytes = dtype === 'F32' ? le(Float32Array, values) : u16(values.map(f32ToBf16));
    return { name, dtype, shape, bytes, values };
  };
  const s1 = [mk('model.embed_tokens.weight', 'F32', [8, 4]), mk('model.layers.0.self_attn.q_proj.weight', 'BF16', [4, 4]), mk('model.layers.0.input_layernorm.weight', 'F32', [4])];
  const s2 = [mk('model.layers.1.mlp.down_proj.weight', 'BF16', [4, 6]), mk('lm_head.weight', 'F32', [8, 4])];
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  writeSafetensors(path.join(outDir, 'sharded', names[0]), s1, { format: 'pt' });
  writeSafetensors(path.join(outDir, 'sharded', names[1]), s2, { format: 'pt' });
  const weight_map = {};
  s1.forEach((t) => (weight_map[t.name] = names[0]));
  s2.forEach((t) => (weight_map[t.name] = names[1]));
  const total = [...s1, ...s2].reduce((a, t) => a + t.bytes.length, 0);
  fs.writeFileSync(path.join(outDir, 'sharded', 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: total }, weight_map }, null, 2));
  manifest['sharded/model.safetensors.index.json'] = Object.fromEntries([...s1, ...s2].map((t) => [t.name, { dtype: t.dtype === 'F32' ? 'f32' : 'bf16', shape: t.shape, values: t.values }]));
}

// ---------------------------------------------------------------------------
// GGUF

class GgufWriter {
  constructor() { this.parts = []; }
  u8(v) { this.parts.push(Buffer.from([v])); }
  u32(v) { const b = Buffer.alloc(4); b.writeUInt32LE(v); this.parts.push(b); }
  u64(v) { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); this.parts.push(b); }
  str(s) { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.parts.push(b); }
  raw(b) { this.parts.push(Buffer.from(b)); }
  get length() { return this.parts.reduce((a, b) => a + b.length, 0); }
  value(type, v) {
    const b8 = Buffer.alloc(8);
    switch (type) {
      case 0: case 7: return this.u8(type === 7 ? (v ? 1 : 0) : v);
      case 1: b8.writeInt8(v); return this.raw(b8.subarray(0, 1));
      case 2: b8.writeUInt16LE(v); return this.raw(b8.subarray(0, 2));
      case 3: b8.writeInt16LE(v); return this.raw(b8.subarray(0, 2));
      case 4: return this.u32(v);
      case 5: b8.writeInt32LE(v); return this.raw(b8.subarray(0, 4));
      case 6: b8.writeFloatLE(v); return this.raw(b8.subarray(0, 4));
      case 8: return this.str(v);
      case 9: this.u32(v.type); this.u64(v.items.length); for (const x of v.items) this.value(v.type, x); return;
      case 10: return this.u64(v);
      case 11: b8.writeBigInt64LE(BigInt(v)); return this.raw(b8);
      case 12: b8.writeDoubleLE(v); return this.raw(b8);
    }
  }
}
function writeGguf(file, version, kvs, tensors, alignment) {
  const w = new GgufWriter();
  w.u32(0x46554747); w.u32(version); w.u64(tensors.length); w.u64(kvs.length);
  for (const [k, type, v] of kvs) { w.str(k); w.u32(type); w.value(type, v); }
  let off = 0;
  const offsets = tensors.map((t) => { const o = off; off = Math.ceil((off + t.bytes.length) / alignment) * alignment; return o; });
  tensors.forEach((t, i) => { w.str(t.name); w.u32(t.ne.length); for (const d of t.ne) w.u64(d); w.u32(t.type); w.u64(offsets[i]); });
  const head = w.length;
  w.raw(Buffer.alloc(Math.ceil(head / alignment) * alignment - head));
  tensors.forEach((t, i) => {
    w.raw(t.bytes);
    const end = offsets[i] + t.bytes.length;
    const next = i + 1 < tensors.length ? offsets[i + 1] : end;
    w.raw(Buffer.alloc(next - end));
  });
  fs.writeFileSync(file, Buffer.concat(w.parts));
}
const f16val = (h) => { // exact binary16 value, written out from the definition
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
};
const randScale = () => 0x2000 + randInt(0, 0x1400); // positive normal fp16 codes around 2^-7..2^-2
function q8_0Block() {
  const d = randScale(), q = Array.from({ length: 32 }, () => randInt(-128, 127));
  const b = Buffer.alloc(34); b.writeUInt16LE(d, 0); q.forEach((v, i) => b.writeInt8(v, 2 + i));
  return { bytes: b, values: q.map((v) => fr(v * f16val(d))) };
}
function q4_0Block() {
  const d = randScale(), q = Array.from({ length: 32 }, () => randInt(0, 15));
  const b = Buffer.alloc(18); b.writeUInt16LE(d, 0);
  for (let j = 0; j < 16; j++) b[2 + j] = q[j] | (q[j + 16] << 4);
  return { bytes: b, values: q.map((v) => fr((v - 8) * f16val(d))) };
}
function q4_kBlock() {
  const d = randScale(), dmin = randScale();
  const sc = Array.from({ length: 8 }, () => randInt(0, 63)), mn = Array.from({ length: 8 }, () => randInt(0, 63));
  const q = Array.from({ length: 256 }, () => randInt(0, 15));
  const b = Buffer.alloc(144); b.writeUInt16LE(d, 0); b.writeUInt16LE(dmin, 2);
  // 6-bit scale/min packing: sub-blocks 0-3 in the low 6 bits of bytes 0-3 / 4-7,
  // sub-blocks 4-7 as nibbles of bytes 8-11 plus their top 2 bits in bits 6-7 of bytes 0-7.
  for (let j = 0; j < 4; j++) { b[4 + j] = sc[j] | ((sc[j + 4] >> 4) << 6); b[8 + j] = mn[j] | ((mn[j + 4] >> 4) << 6); b[12 + j] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4); }
  // qs: each 32-byte chunk holds sub-block 2c in low nibbles and 2c+1 in high nibbles.
  for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) b[16 + c * 32 + l] = q[c * 64 + l] | (q[c * 64 + 32 + l] << 4);
  const values = q.map((v, i) => { const s = i >> 5; return fr(fr(fr(f16val(d) * sc[s]) * v) - fr(f16val(dmin) * mn[s])); });
  return { bytes: b, values };
}
function q6_kBlock() {
  const d = randScale(), sc = Array.from({ length: 16 }, () => randInt(-128, 127)), q = Array.from({ length: 256 }, () => randInt(0, 63));
  const b = Buffer.alloc(210);
  // Each 128-element half: low 4 bits in ql (elements l and l+64 share a byte, as do l+32 and l+96), top 2 bits in qh.
  for (let n = 0; n < 2; n++) for (let l = 0; l < 32; l++) {
    const e = (k) => q[n * 128 + k];
    b[n * 64 + l] = (e(l) & 15) | ((e(l + 64) & 15) << 4);
    b[n * 64 + l + 32] = (e(l + 32) & 15) | ((e(l + 96) & 15) << 4);
    b[128 + n * 32 + l] = (e(l) >> 4) | ((e(l + 32) >> 4) << 2) | ((e(l + 64) >> 4) << 4) | ((e(l + 96) >> 4) << 6);
  }
  sc.forEach((v, i) => b.writeInt8(v, 192 + i));
  b.writeUInt16LE(d, 208);
  const values = q.map((v, i) => fr(fr(f16val(d) * sc[i >> 4]) * (v - 32)));
  return { bytes: b, values };
}
function blocks(make, n) {
  const bs = Array.from({ length: n }, make);
  return { bytes: Buffer.concat(bs.map((x) => x.bytes)), values: bs.flatMap((x) => x.values) };
}
{
  const kvs = [
    ['general.architecture', 8, 'llama'],
    ['general.name', 8, 'quantscope fixture ü'],
    ['general.alignment', 4, 64],
    ['test.u8', 0, 200], ['test.i8', 1, -100], ['test.u16', 2, 60000], ['test.i16', 3, -30000],
    ['test.u32', 4, 4000000000], ['test.i32', 5, -2000000000], ['test.f32', 6, 1.5], ['test.bool', 7, true],
    ['test.u64', 10, '18446744073709551615'], ['test.i64', 11, '-9007199254740993'], ['test.f64', 12, 0.1],
    ['test.array_i32', 9, { type: 5, items: [1, -2, 3] }],
    ['test.array_str', 9, { type: 8, items: ['a', 'bc', ''] }],
    ['test.nested', 9, { type: 9, items: [{ type: 4, items: [1, 2] }, { type: 4, items: [] }, { type: 8, items: ['x'] }] }],
  ];
  const f32v = [0.5, -1.5, 2.25, -3.125, 4, 5, 6, 7];
  const f16v = [1, -2, 0.5, 65504, 2 ** -24, -0.25, 3, 4];
  const bf16v = [1, -2, 3.140625, 0.5, 256, -1024, 1e-10, 7];
  const q8 = blocks(q8_0Block, 4), q4 = blocks(q4_0Block, 2), q4k = blocks(q4_kBlock, 2), q6k = blocks(q6_kBlock, 1);
  const iq = Buffer.from(Array.from({ length: 66 }, () => rnd() & 255));
  const tensors = [
    { name: 'token_embd.weight', ne: [4, 2], type: 0, bytes: le(Float32Array, f32v), values: f32v, dtype: 'f32' },
    { name: 'blk.0.attn_q.weight', ne: [4, 2], type: 1, bytes: u16(f16v.map(f32ToF16)), values: f16v, dtype: 'f16' },
    { name: 'blk.0.ffn_up.weight', ne: [8, 1], type: 30, bytes: u16(bf16v.map(f32ToBf16)), values: bf16v.map((v) => (v === 1e-10 ? 1.0004441719502211e-10 : v)), dtype: 'bf16' },
    { name: 'blk.0.attn_k.weight', ne: [64, 2], type: 8, ...q8, dtype: 'gguf:q8_0' },
    { name: 'blk.0.attn_v.weight', ne: [32, 2], type: 2, ...q4, dtype: 'gguf:q4_0' },
    { name: 'blk.0.ffn_down.weight', ne: [256, 2], type: 12, ...q4k, dtype: 'gguf:q4_k' },
    { name: 'output.weight', ne: [256, 1], type: 14, ...q6k, dtype: 'gguf:q6_k' },
    { name: 'blk.1.attn_q.weight', ne: [256], type: 16, bytes: iq, dtype: 'gguf:iq2_xxs' },
  ];
  writeGguf(path.join(outDir, 'v3.gguf'), 3, kvs, tensors, 64);
  manifest['v3.gguf'] = Object.fromEntries(tensors.map((t) => [t.name, { dtype: t.dtype, shape: t.ne.slice().reverse(), values: t.values }]));
  writeGguf(path.join(outDir, 'v2.gguf'), 2, [['general.architecture', 8, 'gpt2'], ['test.u32', 4, 7]],
    [{ name: 'blk.3.ffn_down.weight', ne: [3, 2], type: 0, bytes: le(Float32Array, [1, 2, 3, 4, 5, 6]) }], 32);
  manifest['v2.gguf'] = { 'blk.3.ffn_down.weight': { dtype: 'f32', shape: [2, 3], values: [1, 2, 3, 4, 5, 6] } };
}

// ---------------------------------------------------------------------------
// ONNX (protobufjs with the schema the reader uses)

const pbRoot = protobuf.parse(schema.ONNX_PROTO, { keepCase: true }).root;
const Model = pbRoot.lookupType('onnx.ModelProto');
const ONNX_CODE = { f32: 1, u8: 2, i8: 3, u16: 4, i16: 5, i32: 6, i64: 7, bool: 9, f16: 10, f64: 11, u32: 12, u64: 13, bf16: 16, f8_e4m3fn: 17, f8_e4m3fnuz: 18, f8_e5m2: 19, f8_e5m2fnuz: 20, u4: 21, i4: 22 };
const onnxExpect = {};
function rawTensor(name, d) {
  onnxExpect[name] = { dtype: d, shape: SCALARS[d].shape, values: SCALARS[d].expect };
  return { name, data_type: ONNX_CODE[d], dims: SCALARS[d].shape, raw_data: SCALARS[d].bytes };
}
function typedTensor(name, d) {
  const s = SCALARS[d];
  const t = { name, data_type: ONNX_CODE[d], dims: s.shape };
  const dv = new DataView(s.bytes.buffer, s.bytes.byteOffset, s.bytes.byteLength);
  const n = s.shape.reduce((a, b) => a * b, 1);
  switch (d) {
    case 'f32': t.float_data = Array.from(new Float32Array(s.bytes.buffer.slice(s.bytes.byteOffset, s.bytes.byteOffset + n * 4))); break;
    case 'f64': t.double_data = Array.from({ length: n }, (_, i) => dv.getFloat64(i * 8, true)); break;
    case 'i64': t.int64_data = Array.from({ length: n }, (_, i) => Number(dv.getBigInt64(i * 8, true))); break;
    case 'u64': t.uint64_data = Array.from({ length: n }, (_, i) => Number(dv.getBigUint64(i * 8, true))); break;
    case 'u32': t.uint64_data = Array.from({ length: n }, (_, i) => dv.getUint32(i * 4, true)); break;
    case 'i32': t.int32_data = Array.from({ length: n }, (_, i) => dv.getInt32(i * 4, true)); break;
    case 'i16': t.int32_data = Array.from({ length: n }, (_, i) => dv.getInt16(i * 2, true)); break;
    case 'u16': case 'f16': case 'bf16': t.int32_data = Array.from({ length: n }, (_, i) => dv.getUint16(i * 2, true)); break;
    case 'i8': t.int32_data = Array.from({ length: n }, (_, i) => dv.getInt8(i)); break;
    case 'i4': case 'u4': t.int32_data = Array.from(s.bytes); break;
    default: t.int32_data = Array.from(s.bytes); // u8, bool, f8 codes
  }
  onnxExpect[name] = { dtype: d, shape: s.shape, values: s.expect };
  return t;
}
const vi = (name, elem = 1, shape = undefined) => ({ name, type: { tensor_type: { elem_type: elem, ...(shape ? { shape: { dim: shape.map((d) => (typeof d === 'string' ? { dim_param: d } : { dim_value: d })) } } : {}) } } });
const attrI = (name, i) => ({ name, type: 2, i });
const attrG = (name, g) => ({ name, type: 5, g });
const attrT = (name, t) => ({ name, type: 4, t });
const f32t = (name, dims, values) => { onnxExpect[name] = { dtype: 'f32', shape: dims, values }; return { name, data_type: 1, dims, raw_data: le(Float32Array, values) }; };
{
  const dtypesRaw = Object.keys(SCALARS).map((d) => rawTensor(`raw_${d}`, d));
  const dtypesTyped = Object.keys(SCALARS).map((d) => typedTensor(`typed_${d}`, d));
  const thenG = {
    name: 'then_g',
    initializer: [f32t('sub_w', [2, 2], [1, 2, 3, 4])],
    node: [
      { name: 'sub_const', op_type: 'Constant', output: ['sub_c'], attribute: [attrT('value', f32t('sub_c', [2], [9, 10]))] },
      { name: 'sub_mm', op_type: 'MatMul', input: ['X2', 'sub_w'], output: ['T1'] },
      { name: 'sub_add', op_type: 'Add', input: ['T1', 'sub_c'], output: ['then_out'] },
      { name: 'sub_outer', op_type: 'Mul', input: ['then_out', 'mm_b'], output: ['T2'] },
    ],
    output: [vi('then_out')],
  };
  const elseG = {
    name: 'else_g',
    node: [{ name: 'else_const', op_type: 'Constant', output: ['else_out'], attribute: [attrT('value', f32t('else_out', [2], [-1, -2]))] }],
    output: [vi('else_out')],
  };
  // A Loop body with its own initializer, a Constant feeding a Conv, and a use of an outer weight.
  const loopBody = {
    name: 'loop_body',
    input: [vi('i', 7, []), vi('c', 9, []), vi('state')],
    initializer: [f32t('loop_w', [3, 2, 1, 1], [1, -1, 2, -2, 3, -3])],
    node: [
      { name: 'loop_const', op_type: 'Constant', output: ['loop_c'], attribute: [attrT('value', f32t('loop_c', [2], [0.125, 0.375]))] },
      { name: 'loop_conv', op_type: 'Conv', input: ['state', 'loop_w', 'loop_c'], output: ['s1'] },
      { name: 'loop_gemm', op_type: 'Gemm', input: ['s1', 'emb'], output: ['s2'] },
    ],
    output: [vi('c'), vi('s2')],
  };
  const graph = {
    name: 'fixture',
    input: [vi('X', 1, ['N', 1, 4, 4]), vi('X2', 1, ['N', 2]), vi('cond', 9, [])],
    output: [vi('Y')],
    initializer: [
      f32t('conv_w', [2, 1, 1, 1], [0.5, -0.5]),
      f32t('conv_b', [2], [0.25, 0.75]),
      f32t('convt_w', [2, 3, 1, 1], [1, 2, 3, 4, 5, 6]),
      { ...typedTensor('mm_b', 'f32'), dims: [5, 1] },
      { name: 'gemm_b', data_type: 10, dims: [3, 2], raw_data: u16([1, 2, 3, 4, 5, 6].map(f32ToF16)) },
      f32t('emb', [4, 2], [1, 2, 3, 4, 5, 6, 7, 8]),
      f32t('lstm_w', [1, 8, 2], Array.from({ length: 16 }, (_, i) => i / 4)),
      f32t('lstm_r', [1, 8, 2], Array.from({ length: 16 }, (_, i) => -i / 4)),
      { name: 'dq_x', data_type: 3, dims: [2, 3], raw_data: le(Int8Array, [1, -2, 3, -4, 5, -6]) },
      f32t('dq_s', [2], [0.5, 0.25]),
      { name: 'nbits_b', data_type: 2, dims: [4, 1, 16], raw_data: Uint8Array.from({ length: 64 }, (_, i) => i) },
      f32t('nbits_s', [4], [1, 2, 3, 4]),
      ...dtypesRaw, ...dtypesTyped,
    ],
    node: [
      { name: 'conv', op_type: 'Conv', input: ['X', 'conv_w', 'conv_b'], output: ['C1'] },
      { name: 'convt', op_type: 'ConvTranspose', input: ['C1', 'convt_w'], output: ['C2'] },
      { name: 'const_w', op_type: 'Constant', output: ['cw'], attribute: [attrT('value', f32t('cw', [2, 2], [1.5, -1.5, 2.5, -2.5]))] },
      { name: 'id', op_type: 'Identity', input: ['cw'], output: ['cw_id'] },
      { name: 'cast', op_type: 'Cast', input: ['cw_id'], output: ['cw_cast'], attribute: [attrI('to', 1)] },
      { name: 'mm_const', op_type: 'MatMul', input: ['X2', 'cw_cast'], output: ['M0'] },
      { name: 'mm', op_type: 'MatMul', input: ['M0', 'mm_b'], output: ['M1'] },
      { name: 'gemm', op_type: 'Gemm', input: ['X2', 'gemm_b'], output: ['G1'], attribute: [attrI('transB', 1)] },
      { name: 'gather', op_type: 'Gather', input: ['emb', 'idx'], output: ['E1'] },
      { name: 'lstm', op_type: 'LSTM', input: ['X2', 'lstm_w', 'lstm_r'], output: ['L1'], attribute: [attrI('hidden_size', 2)] },
      { name: 'dq', op_type: 'DequantizeLinear', input: ['dq_x', 'dq_s'], output: ['D1'], attribute: [attrI('axis', 0)] },
      { name: 'nbits', op_type: 'MatMulNBits', domain: 'com.microsoft', input: ['X2', 'nbits_b', 'nbits_s'], output: ['NB'], attribute: [attrI('K', 32), attrI('N', 4), attrI('bits', 4), attrI('block_size', 32)] },
      { name: 'if', op_type: 'If', input: ['cond'], output: ['Y'], attribute: [attrG('then_branch', thenG), attrG('else_branch', elseG)] },
      { name: 'loop', op_type: 'Loop', input: ['trip', 'cond', 'X2'], output: ['LY'], attribute: [attrG('body', loopBody)] },
    ],
  };
  onnxExpect.mm_b = { dtype: 'f32', shape: [5, 1], values: SCALARS.f32.expect };
  onnxExpect.gemm_b = { dtype: 'f16', shape: [3, 2], values: [1, 2, 3, 4, 5, 6] };
  onnxExpect.dq_x = { dtype: 'i8', shape: [2, 3], values: [1, -2, 3, -4, 5, -6] };
  onnxExpect.nbits_b = { dtype: 'u8', shape: [4, 1, 16], values: Array.from({ length: 64 }, (_, i) => i) };
  const model = { ir_version: 10, producer_name: 'quantscope-fixtures', opset_import: [{ domain: '', version: 21 }, { domain: 'com.microsoft', version: 1 }], graph, metadata_props: [{ key: 'author', value: 'fixture' }] };
  const err = Model.verify(model);
  if (err) throw new Error(err);
  fs.writeFileSync(path.join(outDir, 'weights.onnx'), Model.encode(Model.fromObject(model)).finish());
  manifest['weights.onnx'] = { ...onnxExpect };
}
{
  // External data: two tensors in one file (explicit offsets) and one in a second file (defaults).
  const a = le(Float32Array, [1, 2, 3, 4, 5, 6]), b = u16([0.5, -0.5].map(f32ToF16)), c = le(Float32Array, [7, 8]);
  const bin = Buffer.concat([Buffer.from(a), Buffer.alloc(8), Buffer.from(b)]);
  fs.writeFileSync(path.join(outDir, 'external.bin'), bin);
  fs.writeFileSync(path.join(outDir, 'external2.bin'), Buffer.from(c));
  const ext = (name, dt, dims, loc, off, len) => ({
    name, data_type: dt, dims, data_location: 1,
    external_data: [{ key: 'location', value: loc }, ...(off !== undefined ? [{ key: 'offset', value: String(off) }, { key: 'length', value: String(len) }] : [])],
  });
  const graph = {
    name: 'ext', input: [vi('X', 1, [1, 3])], output: [vi('Y')],
    initializer: [ext('ext_a', 1, [3, 2], 'external.bin', 0, 24), ext('ext_b', 10, [2], 'external.bin', 32, 4), ext('ext_c', 1, [2], 'external2.bin')],
    node: [{ name: 'mm', op_type: 'MatMul', input: ['X', 'ext_a'], output: ['Y'] }],
  };
  fs.writeFileSync(path.join(outDir, 'external.onnx'), Model.encode(Model.fromObject({ ir_version: 8, opset_import: [{ domain: '', version: 13 }], graph })).finish());
  manifest['external.onnx'] = {
    ext_a: { dtype: 'f32', shape: [3, 2], values: [1, 2, 3, 4, 5, 6] },
    ext_b: { dtype: 'f16', shape: [2], values: [0.5, -0.5] },
    ext_c: { dtype: 'f32', shape: [2], values: [7, 8] },
  };
}

fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify(manifest, (_k, v) => (v === Infinity ? 'Infinity' : Object.is(v, -0) ? '-0' : v), 1));
let total = 0;
for (const f of fs.readdirSync(outDir, { recursive: true })) {
  const p = path.join(outDir, f);
  if (fs.statSync(p).isFile()) total += fs.statSync(p).size;
}
console.log(`gen-fixtures: wrote ${outDir} (${total} bytes)`);

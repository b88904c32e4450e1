/**
 * Quantized ONNX weights read dequantized (src/formats/onnx/quantizedView.ts):
 * files written by our own onnx-int4 and onnx-qdq writers open through
 * openModel with each quantized weight as one `q:` tensor whose values are
 * (1) bit for bit the engine's prediction the converter recorded, and
 * (2) bit for bit what ONNX Runtime computes with: the converted MatMul run
 * on the identity matrix outputs the weight itself.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertOnnx, ConvertOnnxOptions } from '../../src/pipelines/convertOnnx';
import { openModel } from '../../src/formats';
import { openOnnx } from '../../src/formats/onnx/reader';
import { DequantizedOnnxFile } from '../../src/formats/onnx/quantizedView';
import { float32Digest } from '../../src/quant/onnxLayouts';
import { runOnnxInWorker } from '../../src/runtime/ortRun';
import { analyseArray, analyseSource, channelLayout } from '../../src/analysis/weightStats';
import { tensorSource } from '../../src/analysis/tensorSource';
import { modelTensorSensitivity } from '../../src/analysis/sensitivity';
import { randomTensor } from './quant-testUtil';
import { f32Tensor, matmulModel, node, vi, writeModel } from './onnx-testModels';

function identity(K: number): Float32Array {
  const x = new Float32Array(K * K);
  for (let k = 0; k < K; k++) x[k * K + k] = 1;
  return x;
}

describe('ONNX reader: quantized weights shown dequantized', function () {
  this.timeout(120000);
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-onnxqv-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  const K = 96, N = 40;
  const cases: { tag: string; opts: ConvertOnnxOptions; dtype: string }[] = [
    { tag: 'int4-sym-g32', opts: { target: 'onnx-int4', bits: 4, blockSize: 32 }, dtype: 'q:MatMulNBits int4 g32' },
    { tag: 'int4-asym-g16', opts: { target: 'onnx-int4', bits: 4, blockSize: 16, symmetric: false }, dtype: 'q:MatMulNBits int4 g16 asym' },
    { tag: 'int8-asym-g32', opts: { target: 'onnx-int4', bits: 8, blockSize: 32, symmetric: false }, dtype: 'q:MatMulNBits int8 g32 asym' },
    { tag: 'qdq-int8', opts: { target: 'onnx-qdq' }, dtype: 'q:DequantizeLinear int8 per-channel axis 1' },
    { tag: 'qdq-uint8-asym', opts: { target: 'onnx-qdq', symmetric: false }, dtype: 'q:DequantizeLinear uint8 per-channel axis 1' },
    { tag: 'qdq-int4-g32', opts: { target: 'onnx-qdq', bits: 4, blockSize: 32 }, dtype: 'q:DequantizeLinear int4 block 32 axis 0' },
  ];
  for (const c of cases) {
    it(`${c.tag}: the view's W is the engine's prediction and what ONNX Runtime multiplies with`, async () => {
      const src = path.join(dir, `mm-${c.tag}.onnx`);
      const out = path.join(dir, `mm-${c.tag}.q.onnx`);
      const w = matmulModel(src, K, N, 11);
      const r = await convertOnnx(src, out, c.opts);
      assert.equal(r.tensors.length, 1);
      const m = openModel(out);
      try {
        assert.ok(m instanceof DequantizedOnnxFile, 'opened through the dequantized view');
        // One logical W; its stored parts are hidden.
        assert.deepEqual(m.tensors.map((t) => t.name), ['W']);
        const t = m.tensors[0];
        assert.equal(t.dtype, c.dtype);
        assert.deepEqual(t.shape, [K, N]);
        assert.equal(t.layer.outputChannelAxis, 1);
        const raw = openOnnx(out);
        assert.equal(t.byteLength, raw.tensors.reduce((s, x) => s + x.byteLength, 0), 'bytes: all stored parts');
        raw.close();
        const values = m.readFloat32(t);
        // (1) the converter's prediction, bit for bit.
        assert.equal(float32Digest(values), r.tensors[0].stored.digest);
        // Chunked reads give the same values (statistics read that way).
        const chunks: number[] = [];
        for (const ch of m.iterateFloat32(t, 1000)) chunks.push(...ch.values);
        assert.deepEqual(Float32Array.from(chunks), values);
        // Quantized, not the float weight: close to it, not equal.
        let err = 0, ref = 0;
        for (let i = 0; i < w.length; i++) { err += (w[i] - values[i]) ** 2; ref += w[i] ** 2; }
        assert.ok(err > 0 && err / ref < (c.opts.bits === 4 || c.opts.target === 'onnx-int4' && !c.opts.bits ? 0.02 : 0.01), `relative error ${err / ref}`);
      } finally {
        m.close();
      }
      // (2) ONNX Runtime on the identity: I·W = W as ORT dequantizes it.
      const [[o]] = await runOnnxInWorker([{ model: out, feeds: [{ x: { data: identity(K), dims: [K, K] } }], optimization: 'disabled' }]);
      const viaOrt = o[0].data as Float32Array;
      const m2 = openModel(out);
      try {
        const values = m2.readFloat32(m2.tensors[0]);
        assert.equal(viaOrt.length, values.length);
        for (let i = 0; i < values.length; i++) assert.equal(viaOrt[i], values[i], `element ${i} (k=${Math.floor(i / N)}, n=${i % N}): ORT ${viaOrt[i]}, view ${values[i]}`);
      } finally {
        m2.close();
      }
    });
  }

  it('QDQ Conv weights: one q: tensor per weight with the Conv\'s channel axis; statistics run on the dequantized values', async () => {
    const src = path.join(dir, 'conv.onnx');
    const out = path.join(dir, 'conv.qdq.onnx');
    const wc = randomTensor(8 * 4 * 3 * 3, 5, 0.3);
    const bias = randomTensor(8, 6, 0.1);
    writeModel(src, {
      name: 'g', node: [node('Conv', ['x', 'Wc', 'bc'], ['y'], { group: 1 })],
      initializer: [f32Tensor('Wc', [8, 4, 3, 3], wc), f32Tensor('bc', [8], bias)],
      input: [vi('x', 1, [1, 4, 6, 6])], output: [vi('y', 1, [1, 8, 4, 4])],
    });
    const r = await convertOnnx(src, out, { target: 'onnx-qdq' });
    assert.deepEqual(r.tensors.map((t) => t.name), ['Wc']);
    const m = openModel(out);
    try {
      assert.deepEqual(m.tensors.map((t) => [t.name, t.dtype]).sort(), [['Wc', 'q:DequantizeLinear int8 per-channel axis 0'], ['bc', 'f32']]);
      const t = m.tensors.find((x) => x.name === 'Wc')!;
      assert.equal(t.layer.opType, 'Conv');
      assert.equal(t.layer.outputChannelAxis, 0);
      assert.equal(m.metadata['quantization.packed_tensors'], 3, 'codes, scale and zero point hidden');
      const values = m.readFloat32(t);
      assert.equal(float32Digest(values), r.tensors[0].stored.digest);
      // Statistics read from the file (chunk source) equal those of the decoded array; max |w| is the decoded one.
      const src = tensorSource(m, t);
      const s = analyseSource(src, {}, channelLayout(t.shape, t.layer.outputChannelAxis));
      src.close();
      const a = analyseArray(values, {}, t.shape, 0);
      let maxAbs = 0;
      for (const v of values) maxAbs = Math.max(maxAbs, Math.abs(v));
      assert.equal(s.absMax, maxAbs);
      assert.equal(s.count, wc.length);
      assert.deepEqual(JSON.parse(JSON.stringify(s)), JSON.parse(JSON.stringify(a)));
      // Sensitivity at further quantization measures the dequantized weight.
      const sens = modelTensorSensitivity(m, t);
      assert.equal(sens.numel, wc.length);
      assert.ok(sens.configs.length > 0 && sens.configs.every((x) => Object.values(x).every((v) => typeof v !== 'number' || !Number.isNaN(v))));
    } finally {
      m.close();
    }
  });

  it('a float model opens as before (no view)', () => {
    const src = path.join(dir, 'plain.onnx');
    matmulModel(src, 16, 8, 3);
    const m = openModel(src);
    try {
      assert.ok(!(m instanceof DequantizedOnnxFile));
      assert.deepEqual(m.tensors.map((t) => [t.name, t.dtype]), [['W', 'f32']]);
    } finally {
      m.close();
    }
  });
});

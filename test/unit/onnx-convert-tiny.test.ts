/**
 * The tiny trained transformer (test/fixtures/tiny-transformer, made by
 * scripts/train-tiny-transformer.py): every ONNX target runs in ONNX Runtime,
 * and at the same bits GPTQ and AWQ, calibrated on in-distribution text, give
 * a lower output error than round-to-nearest on the held-out text, measured
 * through ONNX Runtime (mean per-position KL of the next-byte distribution).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertOnnx, ConvertOnnxOptions } from '../../src/pipelines/convertOnnx';
import { verifyOnnx, decodeStored, OutputComparison } from '../../src/pipelines/verifyOnnx';
import { runOnnxInWorker } from '../../src/runtime/ortRun';
import { openOnnx } from '../../src/formats/onnx/reader';
import { randomTensor } from './quant-testUtil';
import { assertUntouchedIdentical, node, vi, writeModel } from './onnx-testModels';
import { f32ToF16, f16ToF32 } from '../../src/formats/dtypes';
import { windows } from './tinyTransformer';

const FIX = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'tiny-transformer');
const MODEL = path.join(FIX, 'tiny-transformer.onnx');

describe('ONNX conversion: tiny trained transformer', function () {
  this.timeout(300000);
  let dir: string;
  const heldout = [windows(path.join(FIX, 'heldout.txt'), 64)];
  const calibration = [windows(path.join(FIX, 'calibration.txt'), 128)];
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-onnxt-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  async function logitsError(opts: ConvertOnnxOptions, tag: string): Promise<OutputComparison> {
    const out = path.join(dir, `tiny.${tag}.onnx`);
    const r = await convertOnnx(MODEL, out, opts);
    assert.equal(r.tensors.length, 9, `${tag}: all nine linear weights quantized (${JSON.stringify(r.skipped.filter((s) => /MatMul/.test(s.reason)))})`);
    const v = await verifyOnnx(r, { feeds: heldout });
    assert.deepEqual(v.weights.mismatched, [], `${tag}: stored weights decode to the prediction`);
    assertUntouchedIdentical(r);
    return v.outputs[0];
  }

  it('int4 block 32: GPTQ and AWQ beat RTN on held-out text (sym and asym)', async () => {
    for (const symmetric of [true, false]) {
      const base: ConvertOnnxOptions = { target: 'onnx-int4', bits: 4, blockSize: 32, symmetric, calibration };
      const rtn = await logitsError({ ...base, algo: 'rtn' }, `rtn-${symmetric}`);
      const gptq = await logitsError({ ...base, algo: 'gptq', actOrder: true }, `gptq-${symmetric}`);
      const awq = await logitsError({ ...base, algo: 'awq', calibration: async () => calibration }, `awq-${symmetric}`); // feeds from a callback
      const line = `${symmetric ? 'sym' : 'asym'}: KL rtn ${rtn.meanKl!.toFixed(4)} gptq ${gptq.meanKl!.toFixed(4)} awq ${awq.meanKl!.toFixed(4)}`;
      assert.ok(gptq.meanKl! < 0.7 * rtn.meanKl!, line);
      assert.ok(awq.meanKl! < rtn.meanKl!, line);
      assert.ok(gptq.top1Agreement! > rtn.top1Agreement!, `${line}; top-1 rtn ${rtn.top1Agreement} gptq ${gptq.top1Agreement}`);
      assert.ok(rtn.cosine > 0.95, `rtn cosine ${rtn.cosine}`);
    }
  });

  it('GPTQ act-order without static groups writes g_idx, and ORT runs it with the decoded weights', async () => {
    const out = path.join(dir, 'tiny.gidx.onnx');
    const r = await convertOnnx(MODEL, out, { target: 'onnx-int4', blockSize: 32, algo: 'gptq', actOrder: true, staticGroups: false, calibration });
    assert.ok(r.tensors.some((t) => t.stored.kind === 'nbits' && t.stored.gIdx), 'some tensor has g_idx');
    const v = await verifyOnnx(r, { feeds: heldout });
    assert.deepEqual(v.weights.mismatched, []);
    assert.ok(v.outputs[0].cosine > 0.97, `cosine ${v.outputs[0].cosine}`);
  });

  it('onnx-qdq int8, onnx-qdq int4 (opset 17 → 21) and onnx-dynamic run in ORT close to the float model', async () => {
    for (const [tag, opts, minCos] of [
      ['qdq8', { target: 'onnx-qdq' }, 0.999],
      ['qdq4', { target: 'onnx-qdq', bits: 4, blockSize: 32 }, 0.97],
      ['dyn', { target: 'onnx-dynamic' }, 0.99],
    ] as const) {
      const o = await logitsError(opts as ConvertOnnxOptions, tag);
      assert.ok(o.cosine > minCos, `${tag}: cosine ${o.cosine}`);
    }
  });

  it('plan and exclude: per-tensor choices and skips are honoured and reported', async () => {
    const out = path.join(dir, 'tiny.plan.onnx');
    const plan = new Map<string, { bits: 8 } | 'skip'>([['onnx::MatMul_285', 'skip'], ['onnx::MatMul_257', { bits: 8 }]]);
    const r = await convertOnnx(MODEL, out, { target: 'onnx-int4', plan, exclude: /blocks\.1\/mlp|MatMul_284/ });
    assert.match(r.skipped.find((s) => s.name === 'onnx::MatMul_285')!.reason, /plan/);
    assert.match(r.skipped.find((s) => s.name === 'onnx::MatMul_284')!.reason, /excluded/);
    assert.match(r.tensors.find((t) => t.name === 'onnx::MatMul_257')!.choice, /int8/);
    assert.equal(r.tensors.length, 7);
    const v = await verifyOnnx(r, { feeds: heldout });
    assert.deepEqual(v.weights.mismatched, []);
    assertUntouchedIdentical(r);
  });

  it('float16 model: MatMulNBits with float16 scales matches x·dequant(W) to float16 precision; onnx-qdq runs (float32 DequantizeLinear + Cast below opset 19)', async () => {
    const K = 64, N = 32, M = 4;
    const w = randomTensor(K * N, 21, 0.5);
    const w16 = Uint16Array.from(w, (v) => f32ToF16(v));
    const src = path.join(dir, 'f16.onnx');
    writeModel(src, {
      name: 'g', node: [node('MatMul', ['x', 'W'], ['y'])],
      initializer: [{ name: 'W', data_type: 10, dims: [K, N], raw_data: new Uint8Array(w16.buffer) }],
      input: [vi('x', 10, [M, K])], output: [vi('y', 10, [M, N])],
    });
    const out = path.join(dir, 'f16.int4.onnx');
    const r = await convertOnnx(src, out, { target: 'onnx-int4', blockSize: 32 });
    const v = await verifyOnnx(r, { skipRuntime: true });
    assert.deepEqual(v.weights.mismatched, []);
    const m = openOnnx(out);
    assert.equal(m.tensors.find((t) => t.name === 'W_scales')!.dtype, 'f16');
    m.close();
    const x = randomTensor(M * K, 22);
    const x16 = Uint16Array.from(x, (v2) => f32ToF16(v2));
    const [[o]] = await runOnnxInWorker([{ model: out, feeds: [{ x: { data: x16, dims: [M, K] } }] }]);
    const mm = openOnnx(out);
    const wq = decodeStored(mm, r.tensors[0].stored);
    mm.close();
    // onnx-qdq on the same opset-17 float16 model: DequantizeLinear-13 outputs float32, so a Cast brings the weight back to float16.
    const rq = await convertOnnx(src, path.join(dir, 'f16.qdq.onnx'), { target: 'onnx-qdq' });
    const vq = await verifyOnnx(rq, { feeds: [{ x: { data: x16, dims: [M, K] } }] });
    assert.deepEqual(vq.weights.mismatched, []);
    assert.ok(vq.outputs[0].cosine > 0.999 && vq.outputs[0].maxAbs < 0.1, `float16 qdq: ${JSON.stringify(vq.outputs[0])}`);
    const y = o[0].data as Uint16Array;
    for (let i = 0; i < M; i++) {
      for (let n = 0; n < N; n++) {
        let ref = 0, mag = 0;
        for (let k = 0; k < K; k++) { const p = f16ToF32(x16[i * K + k]) * wq[k * N + n]; ref += p; mag += Math.abs(p); }
        assert.ok(Math.abs(f16ToF32(y[i * N + n]) - ref) <= 2e-3 * mag + 1e-3, `y[${i},${n}] = ${f16ToF32(y[i * N + n])}, reference ${ref}`);
      }
    }
  });
});

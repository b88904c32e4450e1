import * as assert from 'node:assert/strict';
import { sampleRows, tensorSensitivity } from '../../src/analysis/sensitivity';
import { CONFIGS, storageBytes, weightLayout } from '../../src/quant/configs';

function gaussian(n: number, seed: number): Float32Array {
  let s = seed;
  const r = () => { s = (s * 1103515245 + 12345) % 2147483648; return (s + 1) / 2147483649; };
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = Math.sqrt(-2 * Math.log(r())) * Math.cos(2 * Math.PI * r()) * 0.05;
  return a;
}

describe('analysis: weight-space sensitivity', function () {
  this.timeout(10000);
  const shape = [64, 300];
  const x = gaussian(64 * 300, 99);
  const res = tensorSensitivity(x, shape, shape, 0);
  const by = (id: string) => res.configs.find((c) => c.config === id)!;

  it('covers every candidate config with the better calibrator', () => {
    assert.deepEqual(res.configs.map((c) => c.config), CONFIGS.map((c) => c.id));
    for (const c of res.configs) {
      assert.equal(c.mse, Math.min(c.tried.minmax, c.tried.mse), c.config);
      assert.equal(c.mse, c.tried[c.calibrator]);
    }
  });

  it('int8 per-channel min-max error equals an independent symmetric int8 round trip', () => {
    let sse = 0, energy = 0;
    for (let r = 0; r < 64; r++) {
      const row = x.subarray(r * 300, (r + 1) * 300);
      const amax = row.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
      const scale = amax / 127;
      for (const v of row) {
        const q = Math.max(-127, Math.min(127, Math.round(v / scale)));
        sse += (v - q * scale) ** 2;
        energy += v * v;
      }
    }
    const mse = sse / x.length;
    const c = by('int8-channel');
    assert.ok(Math.abs(c.tried.minmax - mse) <= 1e-4 * mse, `${c.tried.minmax} vs ${mse}`);
    assert.ok(Math.abs(c.sqnrDb - 10 * Math.log10(energy / (c.mse * x.length))) < 1e-6);
    assert.ok(Math.abs(c.relError - Math.sqrt((c.mse * x.length) / energy)) < 1e-9);
  });

  it('errors order as the bit widths do; bytes include scales and zero points', () => {
    assert.ok(by('int2-g64').mse > by('int3-g128').mse);
    assert.ok(by('int3-g128').mse > by('int4-g128').mse);
    assert.ok(by('int4-g128').mse >= by('int4-g32').mse);
    assert.ok(by('int4-g32').mse > by('int8-channel').mse);
    // [64, 300], groups along axis 1: 3 groups of 128 per row (last one ragged), float32 scales, 4-bit zero points.
    assert.equal(by('int4-g128').bytes, 64 * 300 / 2 + 64 * 3 * 4 + 64 * 3 / 2);
    assert.equal(by('int4-g32').bytes, 64 * 300 / 2 + 64 * 10 * 4 + 64 * 10 / 2);
    assert.equal(by('int3-g128').bytes, Math.ceil(64 * 300 * 3 / 8) + 64 * 3 * 4 + Math.ceil(64 * 3 * 3 / 8));
    assert.equal(by('int8-channel').bytes, 64 * 300 + 64 * 4);
    assert.equal(by('nf4-g64').bytes, 64 * 300 / 2 + 64 * 5 * 4);
    assert.equal(by('fp8-e4m3').bytes, 64 * 300 + 64 * 4);
    assert.equal(storageBytes([64, 300], { format: 'int', bits: 8, symmetric: true, granularity: { kind: 'channel', axis: 0 } }, { scaleBytes: 2 }), 64 * 300 + 128);
  });

  it('groups a conv kernel along its flattened row (depthwise [O, 1, kh, kw] included)', () => {
    // Depthwise 3x3: each output channel has 9 weights, so int4-g128 is one group of 9 per channel.
    const dw = gaussian(32 * 9, 7);
    const r = tensorSensitivity(dw, [32, 1, 3, 3], [32, 1, 3, 3], 0);
    const c = r.configs.find((k) => k.config === 'int4-g128')!;
    assert.equal(c.bytes, 32 * 9 / 2 + 32 * 4 + 32 / 2);
    // Same numbers as the 2-D view [32, 9] the engine reduces over.
    const flat = tensorSensitivity(dw, [32, 9], [32, 9], 0).configs.find((k) => k.config === 'int4-g128')!;
    assert.equal(c.mse, flat.mse);
    // 16 levels over 9 values is far from lossless: a per-element "group" would read ~160 dB.
    assert.ok(c.sqnrDb > 10 && c.sqnrDb < 60, `${c.sqnrDb} dB`);
  });

  it('axes and sampling', () => {
    assert.deepEqual(weightLayout([300, 64], 1), { shape: [300, 64], channelAxis: 1, groupAxis: 0 });
    assert.deepEqual(weightLayout([64, 32, 3, 3], 0), { shape: [64, 288], channelAxis: 0, groupAxis: 1 });
    const s = sampleRows([4096, 1000], 1_000_000);
    assert.deepEqual(s.sampledShape, [7 * 128, 1000]);
    assert.equal(s.rows.length, 7);
    for (const [a, b] of s.rows) { assert.equal(a % 128, 0); assert.equal(b - a, 128); }
    assert.deepEqual(sampleRows([10, 10], 1000).rows, [[0, 10]]);
    assert.throws(() => tensorSensitivity(new Float32Array([1, NaN]), [2], [2], undefined), /finite/);
  });
});

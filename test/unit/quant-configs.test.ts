import * as assert from 'node:assert/strict';
import { CONFIGS, configById, configBytes, referenceConfig, specFor, storageBytes, weightLayout } from '../../src/quant/configs';
import { tensorSensitivity } from '../../src/analysis/sensitivity';

describe('config catalogue (quant/configs)', () => {
  it('ids are unique, each reference role is taken once, unknown ids name the known ones', () => {
    assert.equal(new Set(CONFIGS.map((c) => c.id)).size, CONFIGS.length);
    assert.equal(referenceConfig('int8').id, 'int8-channel');
    assert.equal(referenceConfig('int4').id, 'int4-g128');
    assert.throws(() => configById('int5-g7'), /unknown quantization config 'int5-g7'; known: int8-channel, int8-g128, int4-g128/);
  });

  it('the axis rule: output channel, reduction axis, and conv kernels grouped along their flattened row', () => {
    assert.deepEqual(weightLayout([4096, 11008], undefined), { shape: [4096, 11008], channelAxis: 0, groupAxis: 1 });
    assert.deepEqual(weightLayout([768, 3072], 1), { shape: [768, 3072], channelAxis: 1, groupAxis: 0 });
    assert.deepEqual(weightLayout([32, 1, 3, 3], 0), { shape: [32, 9], channelAxis: 0, groupAxis: 1 });
    assert.deepEqual(weightLayout([16, 8, 3, 3], 1), { shape: [16, 8, 3, 3], channelAxis: 1, groupAxis: 0 });
    assert.deepEqual(weightLayout([7], undefined), { shape: [7], channelAxis: 0, groupAxis: 0 });
  });

  it('bytes by hand: codes, one scale per group in the model precision, packed zero points when asymmetric', () => {
    // MatMul weight [K=300, N=200] with the output channel on axis 1: INT4 groups of 128 along K (3 per column).
    assert.equal(configBytes(configById('int4-g128'), [300, 200], 1, 'f32'), 30000 + 600 * 4 + 300);
    assert.equal(configBytes(configById('int8-channel'), [300, 200], 1, 'f16'), 60000 + 200 * 2);
    // NF4 is symmetric: no zero points. 2-bit asymmetric groups of 64: 2-bit zero points.
    assert.equal(configBytes(configById('nf4-g64'), [128, 128], 0, 'f32'), 8192 + 256 * 4);
    assert.equal(configBytes(configById('int2-g64'), [128, 128], 0, 'f32'), 4096 + 256 * 4 + 64);
    assert.equal(storageBytes([3, 50], { format: 'int', bits: 3, granularity: { kind: 'tensor' } }), Math.ceil(150 * 3 / 8) + 4);
  });

  it('the spec of each config is what the sensitivity measures, and its bytes what it reports', () => {
    const x = Float32Array.from({ length: 64 * 256 }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7)));
    const s = tensorSensitivity(x, [64, 256], [64, 256], 0, { scaleBytes: 4 });
    for (const r of s.configs) assert.equal(r.bytes, configBytes(configById(r.config), [64, 256], 0, 'f32'), r.config);
    const g = specFor(configById('int4-g32'), weightLayout([64, 256], 0)).granularity;
    assert.deepEqual(g, { kind: 'group', axis: 1, size: 32 });
  });
});

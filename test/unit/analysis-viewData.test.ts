import * as assert from 'node:assert/strict';
import { channelEnvelope, rebin, unravel } from '../../src/analysis/viewData';
import { readinessReport } from '../../src/analysis/report';
import { int4g128Bytes, int8ChannelBytes } from '../../src/analysis/overview';
import type { ModelOverview } from '../../src/shared/protocol/inspector';
import type { Row } from '../../src/shared/tableModel';

describe('inspector data (host side)', () => {
  it('unravels flat positions row-major, checked against nested loops', () => {
    const shape = [3, 4, 5];
    let flat = 0;
    for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) for (let k = 0; k < 5; k++) assert.deepEqual(unravel(flat++, shape), [i, j, k]);
    assert.deepEqual(unravel(0, []), []);
  });

  it('rebins by summing neighbours and keeps the total', () => {
    const c = Array.from({ length: 2048 }, (_, i) => (i * 37) % 11);
    const r = rebin(c, 512);
    assert.equal(r.length, 512);
    assert.equal(r.reduce((a, b) => a + b, 0), c.reduce((a, b) => a + b, 0));
    assert.equal(r[3], c[12] + c[13] + c[14] + c[15]);
    assert.deepEqual(rebin([1, 2, 3], 512), [1, 2, 3]);
  });

  it('the per-channel envelope keeps the extremes of every channel it merges', () => {
    const min = Array.from({ length: 10_000 }, (_, i) => -((i * 7) % 13));
    const max = Array.from({ length: 10_000 }, (_, i) => (i * 5) % 17);
    const e = channelEnvelope(min, max, 4096);
    assert.equal(e.stride, 3);
    assert.equal(e.min.length, Math.ceil(10_000 / 3));
    assert.equal(Math.min(...e.min), Math.min(...min));
    assert.equal(Math.max(...e.max), Math.max(...max));
    assert.equal(e.max[5], Math.max(max[15], max[16], max[17]));
  });

  it('INT8 / INT4-g128 sizes in the overview count codes, scales and zero points by hand', () => {
    const cases: { shape: number[]; axis?: number; dtype: 'f32' | 'f16'; int8: number; int4: number }[] = [
      // rows·cols codes + a scale per output channel; cols/2 bytes of nibbles + per group a scale and half a byte of zero point
      { shape: [4096, 4096], dtype: 'f16', int8: 4096 * 4096 + 4096 * 2, int4: 4096 * 4096 / 2 + 4096 * 32 * 2 + 4096 * 32 / 2 },
      { shape: [300, 200], axis: 1, dtype: 'f32', int8: 60000 + 200 * 4, int4: 30000 + 200 * 3 * 4 + 300 },
      // a conv kernel [O, I, kh, kw] groups along its flattened row of 147: two groups per output channel
      { shape: [64, 3, 7, 7], axis: 0, dtype: 'f32', int8: 64 * 147 + 64 * 4, int4: Math.ceil(64 * 147 / 2) + 128 * 4 + 64 },
      { shape: [1000, 130], dtype: 'f16', int8: 130000 + 1000 * 2, int4: 65000 + 2000 * 2 + 1000 },
    ];
    for (const c of cases) {
      const numel = c.shape.reduce((a, b) => a * b, 1);
      const t = { dtype: c.dtype, shape: c.shape, numel, layer: c.axis === undefined ? { consumers: [] } : { consumers: [], outputChannelAxis: c.axis } };
      assert.equal(int8ChannelBytes(t), c.int8, `int8 ${c.shape}`);
      assert.equal(int4g128Bytes(t), c.int4, `int4 ${c.shape}`);
    }
  });

  it('the readiness report names the worst tensor per config and says when the analysis is incomplete', () => {
    const o: ModelOverview = {
      fileName: 'm.onnx', path: '/m/m.onnx', format: 'onnx', formatVersion: 'IR 8', sizeOnDisk: 1000, tensorCount: 3, parameterCount: 30,
      bytesByDtype: { f32: 120 }, metadataKeys: 0, quantizableTensors: 2, sizeAtInt8: 400, sizeAtInt4g128: 300,
    };
    const mk = (name: string, s4: number, kurt: number): Row => ({
      name, dtype: 'f32', shape: [2, 5], params: 10, bytes: 40, layer: name, opType: 'MatMul', analysable: true, quantizable: true,
      stats: { name, min: -1, max: 1, mean: 0, std: 0.3, kurtosis: kurt, outlierShare: 0, nan: 0, inf: 0 },
      configs: [{ config: 'int4-g128', bits: 4, reference: 'int4', sqnrDb: s4, relError: 0, bytes: 8, bitsPerWeight: 6.4, calibrator: 'mse' }],
    });
    const rows = [mk('a|pipe', 5.5, 40), mk('b', 19.25, 0.1)];
    const md = readinessReport(o, rows, { complete: false, generated: new Date(0) });
    assert.match(md, /^# Quantization readiness: m\.onnx/);
    assert.match(md, /Analysis incomplete/);
    // Median of [5.5, 19.25] by lower middle is 5.5; worst is 5.5 on the tensor with the escaped pipe.
    assert.ok(md.includes('| int4-g128 | 5.5 dB | 5.5 dB | `a\\|pipe` | 1 |'), md);
    assert.ok(!md.includes('| `a\\|pipe` | 43.00 |'), 'the kurtosis table lists excess kurtosis, not plain');
    assert.ok(md.includes('| `a\\|pipe` | 40.00 |'));
    assert.ok(!readinessReport(o, rows, { complete: true, generated: new Date(0) }).includes('Analysis incomplete'));
  });
});

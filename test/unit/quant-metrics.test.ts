import * as assert from 'node:assert/strict';
import { mse, sqnrDb, cosineSimilarity, maxAbsError, relativeFrobeniusError, layerOutputError, layerOutputErrorFromGram, weightErrorReport, fakeQuantize } from '../../src/quant';
import { randomTensor } from './quant-testUtil';

describe('quant error metrics', () => {
  it('hand-computed small cases', () => {
    const a = [3, 4, 0];
    const b = [3, 3, 1];
    assert.equal(mse(a, b), 2 / 3);
    assert.equal(maxAbsError(a, b), 1);
    assert.ok(Math.abs(sqnrDb(a, b) - 10 * Math.log10(25 / 2)) < 1e-12);
    assert.ok(Math.abs(cosineSimilarity(a, b) - 21 / (5 * Math.sqrt(19))) < 1e-12);
    assert.ok(Math.abs(relativeFrobeniusError(a, b) - Math.sqrt(2) / 5) < 1e-12);
    assert.equal(sqnrDb(a, a), Infinity);
    assert.equal(cosineSimilarity([0, 0], [0, 0]), 1);
    assert.throws(() => mse([1], [1, 2]), /lengths differ/);
    const rep = weightErrorReport(a, b);
    assert.equal(rep.maxAbs, 1);
  });

  it('weightErrorReport (one pass) gives exactly what the five separate metrics give, zero and exact cases included', () => {
    const a = randomTensor(10007, 3, 0.5);
    const b = Float32Array.from(a, (v, i) => (i % 7 ? v + 0.01 * Math.sin(i) : v));
    for (const [x, y] of [[a, b], [a, a], [new Float32Array(9), new Float32Array(9)], [new Float32Array(9), b.subarray(0, 9)], [new Float32Array(0), new Float32Array(0)]]) {
      assert.deepEqual(weightErrorReport(x, y), { mse: mse(x, y), sqnrDb: sqnrDb(x, y), cosine: cosineSimilarity(x, y), maxAbs: maxAbsError(x, y), relFrobenius: relativeFrobeniusError(x, y) });
    }
  });
  it('layer output error ‖WX − ŴX‖/‖WX‖ matches an explicit float64 matrix product, from activations and from the Gram matrix, both layouts', () => {
    const out = 7;
    const K = 12;
    const T = 9;
    const w = randomTensor(out * K, 1);
    const wq = fakeQuantize(w, [out, K], { format: 'int', bits: 3, granularity: { kind: 'channel', axis: 0 } });
    const x = randomTensor(T * K, 2);
    // Reference: Y[t][o] = Σ_k x[t][k] w[o][k].
    let num = 0;
    let den = 0;
    for (let t = 0; t < T; t++) {
      for (let o = 0; o < out; o++) {
        let y = 0;
        let yq = 0;
        for (let k = 0; k < K; k++) {
          y += x[t * K + k] * w[o * K + k];
          yq += x[t * K + k] * wq[o * K + k];
        }
        num += (y - yq) ** 2;
        den += y * y;
      }
    }
    const ref = Math.sqrt(num / den);
    assert.ok(Math.abs(layerOutputError(w, wq, { out, in: K }, x, T) - ref) < 1e-12);
    const H = new Float64Array(K * K);
    for (let t = 0; t < T; t++) for (let i = 0; i < K; i++) for (let j = 0; j < K; j++) H[i * K + j] += x[t * K + i] * x[t * K + j];
    assert.ok(Math.abs(layerOutputErrorFromGram(w, wq, { out, in: K }, H) - ref) < 1e-10);
    // The same weights stored [in, out].
    const wt = new Float32Array(out * K);
    const wqt = new Float32Array(out * K);
    for (let o = 0; o < out; o++) for (let k = 0; k < K; k++) {
      wt[k * out + o] = w[o * K + k];
      wqt[k * out + o] = wq[o * K + k];
    }
    assert.ok(Math.abs(layerOutputError(wt, wqt, { out, in: K, layout: 'in_out' }, x, T) - ref) < 1e-12);
    assert.throws(() => layerOutputError(w, wq, { out, in: K }, x, T + 1), /activations must be/);
  });
});

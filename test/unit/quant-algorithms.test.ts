import * as assert from 'node:assert/strict';
import { choleskyLower, invertLower, upperCholeskyOfInverse, gram, matmulXWt, outputErrorFromGram } from '../../src/quant/algorithms/linalg';
import { rtnQuantize } from '../../src/quant/algorithms/intGrid';
import { roundHalfEven } from '../../src/quant/numberFormats';
import { gptq, gptqHessian, gptqPlan, gptqRows } from '../../src/quant/algorithms/gptq';
import { rng } from '../random';

export function gauss(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r() + 1e-300)) * Math.cos(2 * Math.PI * r());
}

/** Correlated activations: Gaussian latents mixed through a random matrix, with uneven channel scales. */
export function correlatedActivations(r: () => number, tokens: number, cols: number, latent = 16): Float32Array {
  const mix = new Float64Array(latent * cols);
  for (let i = 0; i < mix.length; i++) mix[i] = gauss(r);
  const chan = Float64Array.from({ length: cols }, () => Math.exp(gauss(r) * 0.7));
  const x = new Float32Array(tokens * cols);
  const z = new Float64Array(latent);
  for (let t = 0; t < tokens; t++) {
    for (let k = 0; k < latent; k++) z[k] = gauss(r);
    for (let j = 0; j < cols; j++) {
      let s = 0.1 * gauss(r);
      for (let k = 0; k < latent; k++) s += z[k] * mix[k * cols + j];
      x[t * cols + j] = s * chan[j];
    }
  }
  return x;
}

function randomWeights(r: () => number, rows: number, cols: number): Float32Array {
  return Float32Array.from({ length: rows * cols }, () => gauss(r) * 0.05);
}

/** ‖WXᵀ − ŴXᵀ‖_F computed directly in float64 from the outputs. */
function outputError(w: ArrayLike<number>, wq: ArrayLike<number>, rows: number, cols: number, x: ArrayLike<number>, tokens: number): number {
  const y = matmulXWt(x, tokens, w, rows, cols);
  const yq = matmulXWt(x, tokens, wq, rows, cols);
  let e = 0;
  for (let i = 0; i < y.length; i++) e += (y[i] - yq[i]) ** 2;
  return Math.sqrt(e);
}

describe('linalg', () => {
  const r = rng(1);
  const n = 24;
  const a = new Float64Array(n * n);
  const b = Float64Array.from({ length: n * n }, () => gauss(r));
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
    let s = i === j ? 0.5 : 0;
    for (let k = 0; k < n; k++) s += b[i * n + k] * b[j * n + k];
    a[i * n + j] = s;
  }

  it('choleskyLower reproduces A = L Lᵀ', () => {
    const l = choleskyLower(a.slice(), n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += l[i * n + k] * l[j * n + k];
      assert.ok(Math.abs(s - a[i * n + j]) < 1e-9 * (1 + Math.abs(a[i * n + j])));
    }
  });

  it('invertLower gives L⁻¹ with L·L⁻¹ = I', () => {
    const l = choleskyLower(a.slice(), n);
    const inv = invertLower(l, n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      if (j > i) assert.equal(inv[i * n + j], 0);
      let s = 0;
      for (let k = 0; k < n; k++) s += l[i * n + k] * inv[k * n + j];
      assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-9, `(${i},${j}) ${s}`);
    }
  });

  it('upperCholeskyOfInverse gives upper U with Uᵀ U A = I', () => {
    const u = upperCholeskyOfInverse(a, n);
    for (let i = 0; i < n; i++) for (let j = 0; j < i; j++) assert.equal(u[i * n + j], 0);
    const inv = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += u[k * n + i] * u[k * n + j];
      inv[i * n + j] = s;
    }
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += inv[i * n + k] * a[k * n + j];
      assert.ok(Math.abs(s - (i === j ? 1 : 0)) < 1e-8, `(${i},${j}) ${s}`);
    }
  });

  it('rejects a matrix that is not positive definite', () => {
    const m = Float64Array.from([1, 2, 2, 1]);
    assert.throws(() => choleskyLower(m, 2), /not positive definite/);
  });

  it('gram equals XᵀX for widths that are not a multiple of its 4-row blocking', () => {
    for (const cols of [1, 6, 13]) {
      const tokens = 7;
      const x = Float32Array.from({ length: tokens * cols }, () => gauss(r));
      const g = gram(x, tokens, cols);
      for (let i = 0; i < cols; i++) for (let j = 0; j < cols; j++) {
        let s = 0;
        for (let t = 0; t < tokens; t++) s += x[t * cols + i] * x[t * cols + j];
        assert.ok(Math.abs(g[i * cols + j] - s) < 1e-12 * (1 + Math.abs(s)), `cols ${cols} (${i},${j})`);
      }
    }
  });

  it('outputErrorFromGram equals the error of the outputs', () => {
    const rows = 5, cols = 12, tokens = 40;
    const x = Float32Array.from({ length: tokens * cols }, () => gauss(r));
    const dw = Float32Array.from({ length: rows * cols }, () => gauss(r));
    const direct = matmulXWt(x, tokens, dw, rows, cols).reduce((s, v) => s + v * v, 0);
    const viaGram = outputErrorFromGram(dw, rows, cols, gram(x, tokens, cols));
    assert.ok(Math.abs(direct - viaGram) < 1e-9 * direct);
  });
});

describe('integer grid (round to nearest)', () => {
  it('ties go to even and codes saturate', () => {
    // (+ 0: the sign of a zero code does not matter)
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4, 2.6].map((v) => roundHalfEven(v) + 0), [0, 2, 2, 0, -2, -2, 2, 3]);
    // symmetric 4-bit: scale = 7/7 = 1, zero 8
    const q = rtnQuantize(Float32Array.from([7, -7, 2.5, 3.5, 0, -0.5, 1, 1]), 1, 8, { bits: 4, symmetric: true });
    assert.equal(q.scales[0], 1);
    assert.equal(q.zeroPoints[0], 8);
    assert.deepEqual([...q.codes], [15, 1, 10, 12, 8, 8, 9, 9]);
  });

  it('asymmetric grid keeps 0 exact and stays within half a step', () => {
    const r = rng(3);
    const rows = 8, cols = 64;
    const w = Float32Array.from({ length: rows * cols }, () => gauss(r) + 0.3);
    const q = rtnQuantize(w, rows, cols, { bits: 3, symmetric: false, groupSize: 16 });
    for (let i = 0; i < w.length; i++) {
      const s = q.scales[Math.floor(i / cols) * q.nGroups + q.groupIndex[i % cols]];
      assert.ok(Math.abs(w[i] - q.dequantized[i]) <= s / 2 + 1e-6);
    }
    const z = rtnQuantize(new Float32Array(16), 1, 16, { bits: 4, symmetric: false });
    assert.ok(z.dequantized.every((v) => v === 0));
  });
});

describe('GPTQ', () => {
  const rows = 64, cols = 128, tokens = 256;
  const configs = [
    { bits: 4, symmetric: true },
    { bits: 3, symmetric: false },
    { bits: 4, symmetric: false, groupSize: 32 },
    { bits: 3, symmetric: true, groupSize: 32, actOrder: true },
    { bits: 4, symmetric: true, actOrder: true },
    { bits: 3, symmetric: false, groupSize: 64, actOrder: true, staticGroups: true },
    { bits: 4, symmetric: false, groupSize: 32, staticGroups: true },
  ];
  for (const cfg of configs) {
    it(`beats RTN on layer-output error for 10 seeds: ${JSON.stringify(cfg)}`, () => {
      const ratios: number[] = [];
      for (let seed = 0; seed < 10; seed++) {
        const r = rng(1000 + seed);
        const x = correlatedActivations(r, tokens, cols);
        const w = randomWeights(r, rows, cols);
        const h = gptqHessian(x, tokens, cols);
        const g = gptq(w, rows, cols, h, { ...cfg, blockSize: 32 });
        const base = rtnQuantize(w, rows, cols, cfg);
        const eg = outputError(w, g.dequantized, rows, cols, x, tokens);
        const er = outputError(w, base.dequantized, rows, cols, x, tokens);
        assert.ok(eg < er, `seed ${seed}: GPTQ ${eg} vs RTN ${er}`);
        ratios.push(eg / er);
      }
      // On strongly correlated inputs the gain is large, not marginal.
      assert.ok(Math.max(...ratios) < 0.9, `worst GPTQ/RTN ratio ${Math.max(...ratios)}`);
    });
  }

  it('returned codes, scales and zero points dequantize to the returned weights', () => {
    const r = rng(5);
    const x = correlatedActivations(r, 128, 64);
    const w = randomWeights(r, 16, 64);
    const g = gptq(w, 16, 64, gptqHessian(x, 128, 64), { bits: 4, symmetric: false, groupSize: 16, actOrder: true });
    assert.ok(g.permutation);
    assert.deepEqual([...g.permutation!].sort((a, b) => a - b), Array.from({ length: 64 }, (_, i) => i));
    for (let i = 0; i < 16 * 64; i++) {
      const row = Math.floor(i / 64), gi = g.groupIndex[i % 64];
      const v = g.scales[row * g.nGroups + gi] * (g.codes[i] - g.zeroPoints[row * g.nGroups + gi]);
      assert.equal(g.dequantized[i], Math.fround(v));
      assert.ok(g.codes[i] <= 15);
    }
    // act-order without static groups: every group holds exactly groupSize columns
    const counts = new Array(g.nGroups).fill(0);
    for (const gi of g.groupIndex) counts[gi]++;
    assert.ok(counts.every((c) => c === 16));
  });

  it('splitting rows over a shared plan (as a worker pool does) gives the same result', () => {
    const r = rng(6);
    const rows = 12, cols = 64;
    const x = correlatedActivations(r, 128, cols);
    const w = randomWeights(r, rows, cols);
    const opts = { bits: 4, symmetric: false, groupSize: 16, actOrder: true };
    const h = gptqHessian(x, 128, cols);
    const whole = gptq(w, rows, cols, h, opts);
    const plan = gptqPlan(h, cols, opts);
    const a = gptqRows(plan, w.subarray(0, 5 * cols), 5, opts);
    const b = gptqRows(plan, w.subarray(5 * cols), rows - 5, opts);
    assert.deepEqual([...a.codes, ...b.codes], [...whole.codes]);
    assert.deepEqual([...a.dequantized, ...b.dequantized], [...whole.dequantized]);
  });

  it('with a diagonal Hessian (uncorrelated inputs) and no damping effect it reduces to RTN', () => {
    const rows = 8, cols = 32;
    const r = rng(9);
    const w = randomWeights(r, rows, cols);
    const h = new Float64Array(cols * cols);
    for (let j = 0; j < cols; j++) h[j * cols + j] = 1 + j;
    const g = gptq(w, rows, cols, h, { bits: 4, symmetric: true });
    const base = rtnQuantize(w, rows, cols, { bits: 4, symmetric: true });
    assert.deepEqual([...g.codes], [...base.codes]);
  });

  it('dead columns (never active) are zeroed, and bad shapes are refused', () => {
    const rows = 4, cols = 16;
    const r = rng(11);
    const x = correlatedActivations(r, 64, cols);
    for (let t = 0; t < 64; t++) x[t * cols + 3] = 0;
    const w = randomWeights(r, rows, cols);
    const g = gptq(w, rows, cols, gptqHessian(x, 64, cols), { bits: 4, symmetric: true });
    assert.equal(g.deadColumns, 1);
    for (let rr = 0; rr < rows; rr++) assert.equal(g.dequantized[rr * cols + 3], 0);
    assert.throws(() => gptq(w, rows, cols, new Float64Array(10), { bits: 4, symmetric: true }), /Hessian holds 10/);
    assert.throws(() => gptq(w, rows, cols, new Float64Array(256), { bits: 9, symmetric: true }), /bits must be/);
    assert.throws(() => gptq(w, rows, cols, new Float64Array(256), { bits: 4, symmetric: true, groupSize: 5 }), /does not divide/);
  });
});

import { awq, meanAbsPerChannel } from '../../src/quant/algorithms/awq';
import { smoothQuant, maxAbsPerChannel } from '../../src/quant/algorithms/smoothquant';
import { outlierDecompose, decomposedMatmul, fakeQuantizeActivationsInt8, selectOutlierChannels } from '../../src/quant/algorithms/outlierDecomposition';
import { biasCorrection, channelMeans } from '../../src/quant/algorithms/biasCorrection';

/** Activations where a few input channels are much larger than the rest (salient / outlier channels). */
function salientActivations(r: () => number, tokens: number, cols: number, salient: number[], gain: number): Float32Array {
  const x = new Float32Array(tokens * cols);
  const boost = new Float64Array(cols).fill(1);
  for (const j of salient) boost[j] = gain;
  for (let t = 0; t < tokens; t++) for (let j = 0; j < cols; j++) x[t * cols + j] = gauss(r) * boost[j];
  return x;
}

function relDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let e = 0, s = 0;
  for (let i = 0; i < a.length; i++) { e += (a[i] - b[i]) ** 2; s += a[i] ** 2; }
  return Math.sqrt(e / s);
}

function scaleColumns(x: ArrayLike<number>, n: number, cols: number, s: ArrayLike<number>): Float32Array {
  return Float32Array.from({ length: n * cols }, (_, i) => x[i] * s[i % cols]);
}

describe('AWQ', () => {
  const rows = 48, cols = 128, tokens = 192;
  for (const cfg of [{ bits: 4, symmetric: false, groupSize: 32 }, { bits: 3, symmetric: true, groupSize: 64 }]) {
    it(`keeps the float output and beats RTN on salient channels (5 seeds): ${JSON.stringify(cfg)}`, () => {
      for (let seed = 0; seed < 5; seed++) {
        const r = rng(200 + seed);
        const salient = [3, 17, 40, 77, 100, 121];
        const x = salientActivations(r, tokens, cols, salient, 12);
        const w = randomWeights(r, rows, cols);
        const res = awq(w, rows, cols, x, tokens, cfg);
        assert.equal(res.errors.length, 20);
        // Float model unchanged: (X diag s⁻¹)(W diag s)ᵀ = X Wᵀ.
        const y = matmulXWt(x, tokens, w, rows, cols);
        const yFolded = matmulXWt(scaleColumns(x, tokens, cols, res.inputScale), tokens, res.scaledWeights, rows, cols);
        assert.ok(relDiff(y, yFolded) <= 1e-5, `seed ${seed}: folded float output differs by ${relDiff(y, yFolded)}`);
        // Quantized error measured independently from the outputs.
        const eAwq = outputError(w, res.dequantized, rows, cols, x, tokens);
        const eRtn = outputError(w, rtnQuantize(w, rows, cols, cfg).dequantized, rows, cols, x, tokens);
        assert.ok(Math.abs(eAwq ** 2 - res.error) <= 1e-6 * res.error, 'reported error matches the outputs');
        assert.ok(Math.abs(eRtn ** 2 - res.rtnError) <= 1e-6 * res.rtnError, 'α = 0 is plain RTN');
        assert.ok(res.alpha > 0, `seed ${seed}: α = ${res.alpha}`);
        assert.ok(eAwq < 0.95 * eRtn, `seed ${seed}: AWQ ${eAwq} vs RTN ${eRtn}`);
      }
    });
  }

  it('meanAbsPerChannel and shape errors', () => {
    assert.deepEqual([...meanAbsPerChannel([1, -2, -3, 4], 2, 2)], [2, 3]);
    assert.throws(() => awq(new Float32Array(8), 2, 4, new Float32Array(8), 2, { bits: 4, symmetric: true, activationMagnitude: [1, 2] }), /2 entries/);
  });
});

/** W8A8 output: per-tensor int8 activations × per-row int8 weights. */
function w8a8(x: Float32Array, tokens: number, w: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const xq = fakeQuantizeActivationsInt8(x, tokens, cols, 'tensor');
  const wq = rtnQuantize(w, rows, cols, { bits: 8, symmetric: true }).dequantized;
  return matmulXWt(xq, tokens, wq, rows, cols);
}

describe('SmoothQuant', () => {
  const rows = 32, cols = 96, tokens = 128;
  it('keeps the float output and lowers W8A8 error on activation outliers (5 seeds)', () => {
    for (let seed = 0; seed < 5; seed++) {
      const r = rng(300 + seed);
      const x = salientActivations(r, tokens, cols, [5, 50, 90], 60);
      const w = randomWeights(r, rows, cols);
      const w2 = randomWeights(r, 16, cols);
      const sq = smoothQuant(maxAbsPerChannel(x, tokens, cols), [{ weights: w, rows }, { weights: w2, rows: 16 }], { alpha: 0.5 });
      const xs = scaleColumns(x, tokens, cols, sq.activationScale);
      const y = matmulXWt(x, tokens, w, rows, cols);
      assert.ok(relDiff(y, matmulXWt(xs, tokens, sq.smoothedWeights[0], rows, cols)) <= 1e-5);
      assert.ok(relDiff(matmulXWt(x, tokens, w2, 16, cols), matmulXWt(xs, tokens, sq.smoothedWeights[1], 16, cols)) <= 1e-5);
      const plain = relDiff(y, w8a8(x, tokens, w, rows, cols));
      const smooth = relDiff(y, w8a8(xs, tokens, sq.smoothedWeights[0], rows, cols));
      assert.ok(smooth < 0.7 * plain, `seed ${seed}: smoothed ${smooth} vs plain ${plain}`);
    }
  });

  it('factors follow the formula and α is validated', () => {
    const sq = smoothQuant([4, 1], [{ weights: [1, 0.25, -0.5, 1], rows: 2 }], { alpha: 0.5 });
    // channel 0: sqrt(4)/sqrt(1) = 2; channel 1: sqrt(1)/sqrt(1) = 1
    assert.deepEqual([...sq.factors], [2, 1]);
    assert.throws(() => smoothQuant([1], [{ weights: [1], rows: 1 }], { alpha: 1.5 }), /alpha/);
    assert.throws(() => smoothQuant([1, 2], [{ weights: [1, 2, 3], rows: 2 }]), /expected 2×2/);
  });
});

describe('outlier decomposition (LLM.int8)', () => {
  const rows = 32, cols = 128, tokens = 96;
  it('beats plain int8 on data with outlier columns (5 seeds)', () => {
    for (let seed = 0; seed < 5; seed++) {
      const r = rng(400 + seed);
      const outliers = [7, 64, 99];
      const x = salientActivations(r, tokens, cols, outliers, 40);
      const w = randomWeights(r, rows, cols);
      const mag = maxAbsPerChannel(x, tokens, cols);
      const d = outlierDecompose(w, rows, cols, mag, { threshold: 20 });
      assert.deepEqual([...d.outlierColumns], outliers);
      const y = matmulXWt(x, tokens, w, rows, cols);
      const plainX = fakeQuantizeActivationsInt8(x, tokens, cols, 'token');
      const plain = relDiff(y, matmulXWt(plainX, tokens, rtnQuantize(w, rows, cols, { bits: 8, symmetric: true }).dequantized, rows, cols));
      const mixed = relDiff(y, decomposedMatmul(d, x, tokens));
      assert.ok(mixed < 0.5 * plain, `seed ${seed}: mixed ${mixed} vs plain ${plain}`);
    }
  });

  it('keeps outlier columns fp16-exact and the rest on the per-row int8 grid', () => {
    const w = Float32Array.from([0.1, 1000.3, -0.2, 0.05, 2, 3]);
    const d = outlierDecompose(w, 2, 3, [1, 50, 2], { topK: 1 });
    assert.deepEqual([...d.outlierColumns], [1]);
    assert.deepEqual([...d.fp16Weights], [1000.5, 2]); // 1000.3 rounds to the fp16 grid (step 0.5)
    assert.equal(d.int8Codes[1], 0);
    assert.equal(d.rowScales[0], Math.fround(0.2 / 127));
    assert.equal(d.int8Codes[2], -127);
    assert.deepEqual([...selectOutlierChannels([1, 7, 6, 2], {})], [1, 2]);
  });
});

describe('bias correction', () => {
  it('removes the mean output shift of a coarsely quantized conv (held-out data too)', () => {
    const r = rng(500);
    const inC = 8, k = 9, outC = 16, cols = inC * k;
    const mu = Float64Array.from({ length: inC }, () => 0.5 + r() * 2);
    // im2col patches: column c·k + p is kernel position p of input channel c; post-ReLU so means are positive.
    const patches = (n: number) => Float32Array.from({ length: n * cols }, (_, i) => Math.max(0, mu[Math.floor((i % cols) / k)] + gauss(r)));
    const raw = (n: number, p: Float32Array) => {
      // The per-channel statistics a calibration pass records: every kernel position of channel c.
      const x = new Float32Array(n * k * inC);
      for (let t = 0; t < n; t++) for (let c = 0; c < inC; c++) for (let q = 0; q < k; q++) x[(t * k + q) * inC + c] = p[t * cols + c * k + q];
      return x;
    };
    const w = randomWeights(r, outC, cols);
    const b = Float32Array.from({ length: outC }, () => gauss(r) * 0.1);
    const wq = rtnQuantize(w, outC, cols, { bits: 3, symmetric: true }).dequantized;
    const calib = patches(400);
    const means = channelMeans(raw(400, calib), 400 * k, inC);
    const bc = biasCorrection(w, wq, outC, cols, means, b, k);
    const meanErr = (x: Float32Array, n: number, bias: ArrayLike<number>) => {
      const y = matmulXWt(x, n, w, outC, cols), yq = matmulXWt(x, n, wq, outC, cols);
      const m = new Float64Array(outC);
      for (let t = 0; t < n; t++) for (let o = 0; o < outC; o++) m[o] += (y[t * outC + o] + b[o]) - (yq[t * outC + o] + bias[o]);
      return Math.sqrt(m.reduce((s, v) => s + (v / n) ** 2, 0));
    };
    const before = meanErr(calib, 400, b), after = meanErr(calib, 400, bc.bias);
    // Not exactly zero: the correction uses one mean per input channel, while each kernel position's sample mean differs slightly.
    assert.ok(after < 0.05 * before, `calibration: ${after} vs ${before}`);
    const held = patches(400);
    const hb = meanErr(held, 400, b), ha = meanErr(held, 400, bc.bias);
    assert.ok(ha < 0.5 * hb, `held-out: ${ha} vs ${hb}`);
    for (let o = 0; o < outC; o++) assert.ok(Math.abs(bc.bias[o] - b[o] - bc.delta[o]) < 1e-6);
  });

  it('checks shapes', () => {
    assert.throws(() => biasCorrection([1, 2], [1, 2], 1, 2, [1], undefined, 3), /1 input means × 3 kernel elements ≠ 2/);
  });
});

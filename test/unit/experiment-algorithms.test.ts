/**
 * Experiments with GPTQ and AWQ runs on the tiny trained transformer
 * (test/fixtures/tiny-transformer), calibrated on its calibration text.
 *
 * Independent checks: the weights a GPTQ / AWQ run feeds are, bit for bit,
 * the ones `quantize --target onnx-int4 --algo gptq|awq` writes for the same
 * config and data (the written file's MatMulNBits weights decoded, times its
 * stored 1/s for AWQ); and each run's measured effect matches ONNX Runtime
 * running that written file against the float model, with the mean KL of the
 * next-byte distributions computed here in float64.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/formats/index';
import { openOnnx } from '../../src/formats/onnx/reader';
import type { ModelFile } from '../../src/formats/types';
import { WorkerPool } from '../../src/jobs/pool';
import { CancelledError } from '../../src/jobs/cancel';
import { calibratedRunWeights, modelCalib, recordCalibratedInputs, runExperiment, runtimeWeights, type ExperimentRun } from '../../src/pipelines/evaluate';
import { convertOnnx, type OnnxAlgo } from '../../src/pipelines/convertOnnx';
import { loadCalibration } from '../../src/pipelines/convert';
import { decodeStored } from '../../src/pipelines/verifyOnnx';
import { feedsOfSamples, runOnnxInWorker } from '../../src/runtime/ortRun';
import { f32Tensor, node, vi, writeModel } from './onnx-testModels';
import { batchSamples } from '../../src/runtime/session';
import type { CalibSet } from '../../src/runtime/calibData';
import type { SensWeight } from '../../src/runtime/sensitivity';
import { quantizeWeight } from '../../src/runtime/sensitivity';

const FIX = path.join(__dirname, '..', '..', '..', 'test', 'fixtures', 'tiny-transformer');
const MODEL = path.join(FIX, 'tiny-transformer.onnx');
const CALIB = path.join(FIX, 'calibration.txt');
const SAMPLES = 16;
/** int4-g32 is 4-bit, asymmetric, groups of 32 along K: `quantize --bits 4 --block-size 32 --asym`. */
const CONFIG = 'int4-g32';
const WRITE = { target: 'onnx-int4', bits: 4, blockSize: 32, symmetric: false } as const;

/** Mean over rows of KL(softmax(ref) ‖ softmax(got)), float64. */
function meanKl(ref: Float32Array, got: Float32Array, n: number): { sum: number; rows: number } {
  let sum = 0;
  const rows = ref.length / n;
  for (let r = 0; r < rows; r++) {
    const lse = (x: Float32Array) => {
      let m = -Infinity;
      for (let i = 0; i < n; i++) m = Math.max(m, x[r * n + i]);
      let s = 0;
      for (let i = 0; i < n; i++) s += Math.exp(x[r * n + i] - m);
      return m + Math.log(s);
    };
    const lp = lse(ref), lq = lse(got);
    let kl = 0;
    for (let i = 0; i < n; i++) {
      const logp = ref[r * n + i] - lp;
      kl += Math.exp(logp) * (logp - (got[r * n + i] - lq));
    }
    sum += kl;
  }
  return { sum, rows };
}

describe('experiment: GPTQ and AWQ runs (tiny trained transformer, real calibration text)', function () {
  this.timeout(600_000);
  let pool: WorkerPool;
  let model: ModelFile;
  let set: CalibSet;
  let matmuls: SensWeight[];
  let dir: string;
  const written = new Map<OnnxAlgo, string>();
  /** The conversion's per-tensor report of each written file (where each weight's MatMulNBits tensors are). */
  const reports = new Map<OnnxAlgo, Awaited<ReturnType<typeof convertOnnx>>['tensors']>();

  before(async () => {
    pool = new WorkerPool({ size: 2 });
    model = openModel(MODEL);
    set = modelCalib(model, CALIB, { samples: SAMPLES });
    // The nine MatMul weights: what onnx-int4 quantizes (the token embedding, a Gather table, stays float in the written file).
    matmuls = runtimeWeights(model).filter((w) => { const c = model.tensors.find((t) => t.name === w.name)!.layer.consumers; return c.length > 0 && c.every((x) => x.opType === 'MatMul'); });
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-exp-alg-'));
    // What `quantscope quantize TINY --target onnx-int4 --bits 4 --block-size 32 --asym --algo A --calib calibration.txt --samples 16` writes.
    const calibration = loadCalibration(MODEL, CALIB, SAMPLES);
    for (const algo of ['rtn', 'gptq', 'awq'] as const) {
      const out = path.join(dir, `tiny.${algo}.onnx`);
      const r = await convertOnnx(MODEL, out, { ...WRITE, algo, calibration });
      assert.equal(r.tensors.length, 9);
      if (algo !== 'rtn') assert.ok(r.tensors.every((t) => t.choice.includes(`(${algo}`)), JSON.stringify(r.tensors.map((t) => t.choice)));
      written.set(algo, out);
      reports.set(algo, r.tensors);
    }
  });
  after(async () => {
    await pool?.close();
    model?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the calibration set is real text: 16 windows of 64 bytes', () => {
    assert.equal(set.synthetic, false);
    assert.equal(set.samples.length, SAMPLES);
    assert.equal(matmuls.length, 9);
  });

  it('the weights a GPTQ / AWQ run feeds are what quantize --algo gptq|awq writes for int4-g32 (decoded MatMulNBits; AWQ times its stored 1/s), bit for bit; RTN feeds what --algo rtn writes', async () => {
    const inputs = await recordCalibratedInputs(model, set);
    for (const algo of ['gptq', 'awq'] as const) {
      const { given, calibrated } = await calibratedRunWeights(model, inputs, matmuls, { config: CONFIG, algorithm: algo }, pool);
      assert.equal(calibrated.weights.length, 9, JSON.stringify(calibrated.roundedToNearest));
      assert.ok(calibrated.weights.every((w) => w.used.startsWith(algo)));
      const file = openOnnx(written.get(algo)!);
      try {
        const rep = reports.get(algo)!;
        for (const t of rep) {
          const i = matmuls.findIndex((w) => w.name === t.name);
          assert.ok(i >= 0, t.name);
          const dec = decodeStored(file, t.stored);
          const { K, N } = t.stored as { K: number; N: number };
          let want = dec;
          if (algo === 'awq') {
            const inv = file.readFloat32(file.tensors.find((x) => x.name === `${t.name}_awq_inv_scale`)!);
            assert.equal(inv.length, K);
            want = Float32Array.from(dec, (v, j) => v * inv[Math.floor(j / N)]);
          }
          const got = given[i]!;
          assert.equal(got.length, K * N);
          assert.ok(Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(Buffer.from(want.buffer, want.byteOffset, want.byteLength)), `${algo} ${t.name}: fed weight differs from the written one`);
        }
      } finally { file.close(); }
    }
    // RTN runs use the config's own numerics; for int4-g32 they land on the grid --algo rtn writes.
    const file = openOnnx(written.get('rtn')!);
    try {
      for (const t of reports.get('rtn')!) {
        const w = matmuls.find((x) => x.name === t.name)!;
        const orig = model.readFloat32(model.tensors.find((x) => x.name === t.name)!);
        const q = quantizeWeight(orig, w.shape, w.outputChannelAxis, CONFIG);
        const dec = decodeStored(file, t.stored);
        let worst = 0;
        for (let j = 0; j < q.length; j++) worst = Math.max(worst, Math.abs(q[j] - dec[j]));
        assert.ok(worst <= 1e-6 * Math.max(...Array.from(orig, Math.abs)), `rtn ${t.name}: config RTN and written RTN differ by ${worst}`);
      }
    } finally { file.close(); }
  });

  it('a Gemm with transB=1 (weight stored [N, K]) and a MatMul after it: the fed GPTQ / AWQ weights, in each weight\'s own layout, are what quantize writes', async () => {
    const K = 64, N = 32, M = 48;
    const rnd = (n: number, seed: number, scale: number) => { let x = seed; return Float32Array.from({ length: n }, () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * scale); };
    const wg = rnd(N * K, 7, 0.6), wm = rnd(N * M, 8, 0.6);
    const src = path.join(dir, 'gemm.onnx');
    writeModel(src, {
      name: 'g',
      node: [node('Gemm', ['x', 'Wg', 'bias'], ['h'], { transB: 1 }), node('Relu', ['h'], ['hr']), node('MatMul', ['hr', 'Wm'], ['y'])],
      initializer: [f32Tensor('Wg', [N, K], wg), f32Tensor('bias', [N], rnd(N, 9, 0.1)), f32Tensor('Wm', [N, M], wm)],
      input: [vi('x', 1, ['batch', K])], output: [vi('y', 1, ['batch', M])],
    });
    // Real (not generated by the data layer) inputs: activations with a few loud channels, as AWQ expects of real data.
    const samples = Array.from({ length: 6 }, (_, i) => {
      const x = rnd(8 * K, 100 + i, 2);
      for (let r = 0; r < 8; r++) for (const c of [3, 17, 40]) x[r * K + c] *= 8;
      return { x: { dtype: 'float32' as const, dims: [8, K], data: x } };
    });
    const data: CalibSet = { samples, synthetic: false, source: 'test activations', hash: 'gemm-test' };
    const m = openModel(src);
    try {
      const weights = runtimeWeights(m);
      assert.deepEqual(weights.map((w) => w.name).sort(), ['Wg', 'Wm']);
      const inputs = await recordCalibratedInputs(m, data);
      for (const algo of ['gptq', 'awq'] as const) {
        const { given, calibrated } = await calibratedRunWeights(m, inputs, weights, { config: CONFIG, algorithm: algo }, pool);
        assert.equal(calibrated.weights.length, 2, JSON.stringify(calibrated.roundedToNearest));
        const out = path.join(dir, `gemm.${algo}.onnx`);
        const r = await convertOnnx(src, out, { ...WRITE, algo, calibration: feedsOfSamples(samples) });
        const file = openOnnx(out);
        try {
          for (const t of r.tensors) {
            const s = t.stored as { K: number; N: number };
            const dec = decodeStored(file, t.stored); // [K, N]
            const inv = algo === 'awq' ? file.readFloat32(file.tensors.find((x) => x.name === `${t.name}_awq_inv_scale`)!) : undefined;
            const eff = (k: number, n: number) => (inv ? Math.fround(dec[k * s.N + n] * inv[k]) : dec[k * s.N + n]);
            const got = given[weights.findIndex((w) => w.name === t.name)]!;
            // Wg is stored [N, K] (transB=1), Wm [K, N]: each fed in its own layout.
            const at = t.name === 'Wg' ? (k: number, n: number) => got[n * s.K + k] : (k: number, n: number) => got[k * s.N + n];
            for (let k = 0; k < s.K; k++) for (let n = 0; n < s.N; n++) if (!Object.is(at(k, n), eff(k, n))) assert.fail(`${algo} ${t.name}[${k}, ${n}]: fed ${at(k, n)}, written ${eff(k, n)}`);
          }
        } finally { file.close(); }
      }
    } finally { m.close(); }
  });

  it('int4-g32: GPTQ and AWQ measure a lower output error than RTN; each result names its algorithm and real data; ONNX Runtime on the written files agrees', async () => {
    const runs: ExperimentRun[] = [{ config: CONFIG, algorithm: 'rtn' }, { config: CONFIG, algorithm: 'gptq' }, { config: CONFIG, algorithm: 'awq' }];
    const seen: string[] = [];
    const measured = await runExperiment(model, set, { pool, runs, weights: matmuls, onProgress: (_d, _t, what) => { if (what) seen.push(what); } });
    assert.equal(measured.data, 'real');
    assert.deepEqual(measured.results.map((r) => [r.config, r.algorithm, r.data]), runs.map((r) => [r.config, r.algorithm, 'real']));
    assert.ok(seen.some((w) => /recording the inputs/.test(w)) || seen.includes('inputs recorded'), seen.join(' | '));
    const [rtn, gptq, awq] = measured.results;
    const line = `mean KL on ${SAMPLES} calibration windows: RTN ${rtn.effect.toExponential(3)}  GPTQ ${gptq.effect.toExponential(3)}  AWQ ${awq.effect.toExponential(3)}`;
    console.log(`      ${line}`);
    assert.ok(gptq.effect < rtn.effect, line);
    assert.ok(awq.effect < rtn.effect, line);
    assert.equal(rtn.calibrated, undefined);
    assert.equal(gptq.calibrated!.weights.length, 9);
    // Sizes: GPTQ stores what RTN stores; AWQ adds its float32 1/s per input channel of each weight.
    assert.equal(gptq.bytes, rtn.bytes);
    assert.equal(awq.bytes - rtn.bytes, matmuls.reduce((s, w) => s + 4 * w.shape[0], 0));

    // Independent: the float model and each written file run in ONNX Runtime on the same batches; KL here in float64.
    const { feeds } = batchSamples(set.samples, new Set(['input_ids']), 4);
    const ortFeeds = feedsOfSamples(feeds);
    const [ref] = await runOnnxInWorker([{ model: MODEL, feeds: ortFeeds, outputs: ['logits'] }]);
    for (const r of measured.results) {
      const [got] = await runOnnxInWorker([{ model: written.get(r.algorithm)!, feeds: ortFeeds, outputs: ['logits'] }]);
      let sum = 0, rows = 0;
      ref.forEach((o, i) => {
        const a = o[0].data as Float32Array, b = got[i][0].data as Float32Array;
        const k = meanKl(a, b, o[0].dims[o[0].dims.length - 1]);
        sum += k.sum; rows += k.rows;
      });
      const kl = sum / rows;
      console.log(`      ${r.algorithm}: experiment ${r.effect.toExponential(4)}, ORT on the written file ${kl.toExponential(4)}`);
      assert.ok(Math.abs(kl - r.effect) <= 0.02 * kl, `${r.algorithm}: experiment effect ${r.effect} vs written file ${kl}`);
    }
  });

  it('every weight: the token embedding (a Gather table) is rounded to nearest in GPTQ runs, said so with the conversion\'s reason', async () => {
    const e = await runExperiment(model, set, { pool, runs: [{ config: CONFIG, algorithm: 'gptq' }] });
    const c = e.results[0].calibrated!;
    assert.equal(c.weights.length, 9);
    assert.deepEqual(c.roundedToNearest.map((w) => w.name), ['tok.weight']);
    assert.match(c.roundedToNearest[0].reason, /Gather/);
  });

  it('refuses GPTQ / AWQ on synthetic data, on non-integer configs and with another calibrator; RTN on synthetic data still runs, labelled', async () => {
    const synthetic = modelCalib(model, undefined, { samples: 2 });
    await assert.rejects(runExperiment(model, synthetic, { pool, runs: [{ config: CONFIG, algorithm: 'gptq' }] }), /GPTQ needs real calibration data/);
    await assert.rejects(runExperiment(model, set, { pool, runs: [{ config: 'nf4-g64', algorithm: 'awq' }] }), /AWQ quantizes onto an integer grid; nf4-g64 is NF4/);
    await assert.rejects(runExperiment(model, set, { pool, runs: [{ config: CONFIG, algorithm: 'gptq' }], calibrator: 'mse' }), /min\/max/);
    const e = await runExperiment(model, synthetic, { pool, configs: [CONFIG] });
    assert.deepEqual(e.results.map((r) => [r.algorithm, r.data]), [['rtn', 'synthetic']]);
  });

  it('a GPTQ run cancels: the signal aborted mid-run rejects with CancelledError', async () => {
    const ctl = new AbortController();
    const p = runExperiment(model, set, { pool, runs: [{ config: 'int8-channel', algorithm: 'gptq' }, { config: CONFIG, algorithm: 'awq' }], signal: ctl.signal, onProgress: (d) => { if (d >= 1) ctl.abort(); } });
    await assert.rejects(p, (e: unknown) => e instanceof CancelledError);
  });
});

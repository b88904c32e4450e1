/**
 * Does single-layer output sensitivity predict which layers hurt? On the tiny
 * trained byte-level transformer (fixture from the onnx branch): each weight
 * quantized alone at INT3 g128, its measured effect (per-token KL of the
 * logits over calibration text) against the rise of the next-byte loss when
 * only that weight is quantized, over more held-out text, and weight-space
 * SQNR against the same.
 *
 * Held-out text: the model never saw MPL-2.0 (16.7 KB), and
 * scripts/heldout-licences.py gathers more licence text it never saw from
 * Debian's copyright files (no 32-character stretch of it in the training
 * text, in MPL-2.0 or twice in itself). Calibration: MPL-2.0's first 4 KB
 * (heldout.txt) and 12 KB more (heldout-more.txt), 256 windows; judge:
 * the rest of MPL-2.0 (heldout-rest.txt) and 36 KB more
 * (heldout-more-judge.txt), 773 windows. Effect and loss rise come from
 * disjoint text of one distribution, split 1:3 in both sources. The GPL-3
 * head (calibration.txt, 128 windows of training text) is measured too, for
 * comparison. Measured: Spearman 0.927 (weight SQNR -0.188); with only MPL-2.0
 * (64 calibration windows, 197 judging) it was 0.891: the judge was noisy.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openModel } from '../../src/formats/index';
import { modelCalib, runtimeWeights } from '../../src/pipelines/evaluate';
import { decodeModel, encodeModel, liftWeights } from '../../src/runtime/graph';
import { nextTokenNll } from '../../src/runtime/outputMetrics';
import { measureWeights, quantizeWeight } from '../../src/runtime/sensitivity';
import { EXACT, batchSamples, createSession, runFeed } from '../../src/runtime/session';
import { sqnrDb } from '../../src/quant';

const dir = path.resolve(__dirname, '../../../test/fixtures/tiny-transformer');
const file = path.join(dir, 'tiny-transformer.onnx');
const CALIB_FILES = ['heldout.txt', 'heldout-more.txt'];
const JUDGE_FILES = ['heldout-rest.txt', 'heldout-more-judge.txt'];

/** Ranks 1..n, ties sharing their mean rank. */
function ranks(x: number[]): number[] {
  const idx = x.map((v, i) => [v, i] as const).sort((a, b) => a[0] - b[0]);
  const r = new Array<number>(x.length);
  for (let i = 0; i < idx.length;) {
    let j = i;
    while (j + 1 < idx.length && idx[j + 1][0] === idx[i][0]) j++;
    for (let k = i; k <= j; k++) r[idx[k][1]] = (i + j) / 2 + 1;
    i = j + 1;
  }
  return r;
}
export function spearman(a: number[], b: number[]): number {
  const ra = ranks(a), rb = ranks(b);
  const n = a.length;
  const ma = ra.reduce((s, v) => s + v, 0) / n, mb = rb.reduce((s, v) => s + v, 0) / n;
  let num = 0, da = 0, db = 0;
  for (let i = 0; i < n; i++) { num += (ra[i] - ma) * (rb[i] - mb); da += (ra[i] - ma) ** 2; db += (rb[i] - mb) ** 2; }
  return num / Math.sqrt(da * db);
}

/** Every K-character stretch of a text, lowercased with whitespace runs collapsed (as scripts/heldout-licences.py checks). */
function kgrams(text: string, k: number): Set<string> {
  const n = text.toLowerCase().replace(/\s+/g, ' ').trim();
  const out = new Set<string>();
  for (let i = 0; i + k <= n.length; i++) out.add(n.slice(i, i + k));
  return out;
}

describe('runtime quality: output sensitivity predicts the loss (tiny transformer)', function () {
  this.timeout(300000);

  it('the gathered held-out text shares no 64-character stretch with the other fixture texts or across calibration and judge', function () {
    if (!fs.existsSync(file)) this.skip();
    const read = (f: string) => fs.readFileSync(path.join(dir, f), 'latin1');
    const more = kgrams(read('heldout-more.txt'), 64);
    const moreJudge = kgrams(read('heldout-more-judge.txt'), 64);
    assert.ok(more.size > 6000 && moreJudge.size > 18000, `${more.size}, ${moreJudge.size} distinct stretches`);
    const shared = (a: Set<string>, b: Set<string>) => [...a].filter((g) => b.has(g));
    assert.deepEqual(shared(more, moreJudge), []);
    for (const f of ['heldout.txt', 'heldout-rest.txt', 'calibration.txt']) {
      const g = kgrams(read(f), 64);
      assert.deepEqual(shared(more, g), [], f);
      assert.deepEqual(shared(moreJudge, g), [], f);
    }
  });

  it('Spearman(single-layer INT3 effect on held-out calibration text, loss rise over more held-out text) ≥ 0.9 and beats Spearman(weight-space SQNR, loss rise)', async function () {
    if (!fs.existsSync(file)) this.skip();
    assert.equal(spearman([1, 2, 3, 4], [10, 20, 30, 40]), 1);
    assert.equal(spearman([1, 2, 3], [3, 2, 1]), -1);
    const model = openModel(file);
    const weights = runtimeWeights(model);
    const text = (files: string[]) => files.flatMap((f) => {
      const c = modelCalib(model, path.join(dir, f));
      assert.equal(c.synthetic, false);
      return c.samples;
    });
    const calib = text(CALIB_FILES);
    const judgeParts = JUDGE_FILES.map((f) => text([f]));
    const trainText = modelCalib(model, path.join(dir, 'calibration.txt'), { samples: 128 });
    model.close();
    assert.equal(calib.length, 256);
    assert.deepEqual(judgeParts.map((p) => p.length), [197, 576]);
    assert.equal(weights.length, 10);
    const batchable = new Set(['input_ids']);
    const effectOf = async (samples: typeof calib) => {
      const r = await measureWeights(file, weights, ['int3-g128'], batchSamples(samples, batchable, 8).feeds, { session: EXACT });
      return r.weights.map((w) => w.configs[0].effect);
    };
    const effect = await effectOf(calib);
    const effectTrain = await effectOf(trainText.samples);

    // Loss rise, every weight quantized alone, the whole model run (not the suffix).
    const m = decodeModel(fs.readFileSync(file), file);
    const lifted = liftWeights(m, (w) => weights.some((x) => x.name === w.name && x.graph === w.graph));
    const s = await createSession(encodeModel(m), EXACT);
    const originals = Object.fromEntries(lifted.map((l) => [l.input, l.original]));
    type Feed = Record<string, typeof lifted[0]['original']>;
    /** Summed next-byte loss (nats) and predictions over some windows. */
    const nll = async (samples: typeof calib, extra: Feed) => {
      let sum = 0, count = 0;
      for (const f of batchSamples(samples, batchable, 16).feeds) {
        const n = nextTokenNll((await runFeed(s, f, extra)).logits, f.input_ids);
        sum += n.sum; count += n.count;
      }
      return { sum, count };
    };
    /** Mean loss over the whole judge text, and over each of its two parts. */
    const judgeLoss = async (extra: Feed) => {
      const parts: { sum: number; count: number }[] = [];
      for (const p of judgeParts) parts.push(await nll(p, extra));
      const all = parts.reduce((a, b) => ({ sum: a.sum + b.sum, count: a.count + b.count }));
      return [all, ...parts].map((p) => p.sum / p.count);
    };
    const mean = async (samples: typeof calib, extra: Feed) => { const r = await nll(samples, extra); return r.sum / r.count; };
    const base = await judgeLoss(originals);
    const baseCalib = await mean(calib, originals);
    const rise: number[] = [], riseMpl: number[] = [], riseMore: number[] = [];
    const riseCalib: number[] = [];
    const wsqnr: number[] = [];
    for (const w of weights) {
      const l = lifted.find((x) => x.name === w.name)!;
      const q = quantizeWeight(l.original.data as Float32Array, w.shape, w.outputChannelAxis, 'int3-g128');
      const feed = { ...originals, [l.input]: { ...l.original, data: q } };
      const j = await judgeLoss(feed);
      rise.push(j[0] - base[0]);
      riseMpl.push(j[1] - base[1]);
      riseMore.push(j[2] - base[2]);
      riseCalib.push((await mean(calib, feed)) - baseCalib);
      wsqnr.push(sqnrDb(l.original.data as Float32Array, q));
    }
    await s.release();
    const rhoOutput = spearman(effect, rise);
    // Lower weight SQNR should mean a larger rise: rank the negated SQNR.
    const rhoWeight = spearman(wsqnr.map((v) => -v), rise);
    console.log(`      held-out loss ${(base[0] / Math.LN2).toFixed(3)} bits/byte (MPL-2.0 rest ${(base[1] / Math.LN2).toFixed(3)}, gathered ${(base[2] / Math.LN2).toFixed(3)}); Spearman(output effect, loss rise) = ${rhoOutput.toFixed(3)}, Spearman(-weight SQNR, loss rise) = ${rhoWeight.toFixed(3)}`);
    console.log(`      for comparison: effect on training text (GPL-3 head) ${spearman(effectTrain, rise).toFixed(3)}; loss rise on the calibration text itself ${spearman(riseCalib, rise).toFixed(3)}; the judge's two parts (197 and 576 windows) agree at ${spearman(riseMpl, riseMore).toFixed(3)}`);
    for (const [i, w] of weights.entries()) console.log(`      ${w.name.padEnd(18)} KL ${effect[i].toExponential(2)}  loss rise ${rise[i].toExponential(2)}  weight SQNR ${wsqnr[i].toFixed(2)} dB`);
    // Measured once under this protocol (fixed before measuring): 0.927, against -0.188 for weight SQNR (effect on the
    // GPL-3 training text instead: 0.915; loss rise on the calibration text itself: 0.976; the judge's two parts agree
    // at 0.879). The first protocol (64 calibration windows of MPL-2.0, judged on its other 197) measured 0.891.
    assert.ok(rhoOutput >= 0.9, `Spearman(output effect, loss rise) = ${rhoOutput}`);
    assert.ok(rhoOutput > rhoWeight, `output ${rhoOutput} vs weight ${rhoWeight}`);
  });
});

/**
 * The Quantize wizard over output-space effects: the plan problem built from
 * the Sensitivity panel's measurement (same settings, same cache), all or
 * nothing, and its frontier checked against brute-force enumeration.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { planOf, solveFrontier, withOutputEffects, type PlanEdits, type PlanLayer } from '../../src/analysis/planFrontier';
import { OUTPUT_SPACE_ERROR } from '../../src/analysis/budgetMarks';
import { WEIGHT_SPACE_ERROR } from '../../src/analysis/budgetPlan';
import { openModel } from '../../src/formats';
import { WorkerPool } from '../../src/jobs/pool';
import { candidates } from '../../src/pipelines/convert';
import { cachedRuntimeSensitivity, modelCalib, planEffectSettings, runtimeSensitivity, PLAN_EFFECT_SAMPLES } from '../../src/pipelines/evaluate';
import { configsFor, targetBytes } from '../../src/quant/plan';
import { measureWeights } from '../../src/runtime/sensitivity';
import { batchSamples } from '../../src/runtime/session';
import { metricLabel } from '../../src/shared/protocol/wizard';

const root = path.resolve(__dirname, '../../..');
const tiny = path.join(root, 'test', 'fixtures', 'tiny-transformer', 'tiny-transformer.onnx');

/**
 * The exact Pareto frontier by enumerating every assignment the edits allow
 * (integer bytes: the least error per total size, then the strictly falling
 * part), independent of the knapsack.
 */
function bruteFrontier(ls: readonly PlanLayer[], e: PlanEdits = { pinned: [], forced: {}, tied: [] }): { bytes: number; error: number }[] {
  const best = new Map<number, number>();
  const labels: string[] = [];
  const ok = () => ls.every((l, j) => (!e.pinned.includes(l.name) || labels[j] === 'keep') && (e.forced[l.name] === undefined || labels[j] === e.forced[l.name]))
    && e.tied.every((g) => g.every((n) => labels[ls.findIndex((l) => l.name === n)] === labels[ls.findIndex((l) => l.name === g[0])]));
  const walk = (i: number, bytes: number, error: number) => {
    if (i === ls.length) {
      if (ok() && !(best.get(bytes)! <= error)) best.set(bytes, error);
      return;
    }
    for (const o of ls[i].options) {
      labels[i] = o.label;
      walk(i + 1, bytes + o.bytes, error + o.error);
    }
  };
  walk(0, 0, 0);
  const out: { bytes: number; error: number }[] = [];
  for (const [bytes, error] of [...best].sort((a, b) => a[0] - b[0])) if (!out.length || error < out[out.length - 1].error) out.push({ bytes, error });
  return out;
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(a), Math.abs(b));

function assertFrontier(ls: readonly PlanLayer[], edits?: PlanEdits): void {
  const want = bruteFrontier(ls, edits);
  const dp = solveFrontier(ls, edits, 10_000, 'dp');
  assert.ok(dp.exact);
  assert.equal(dp.points.length, want.length, `DP: ${dp.points.length} points, brute force ${want.length}`);
  dp.points.forEach((p, k) => assert.ok(p.bytes === want[k].bytes && close(p.error, want[k].error), `DP point ${k}: ${JSON.stringify(p)} vs ${JSON.stringify(want[k])}`));
  // Each DP point's assignment sums to the point (the table's totals are the chart's point).
  const n = ls.length;
  dp.points.forEach((p, k) => {
    const plan = planOf('onnx-int4', ls, dp.choices.slice(k * n, (k + 1) * n));
    assert.equal(plan.predicted!.bytes, p.bytes);
    assert.ok(close(plan.predicted!.error, p.error));
  });
  // The hull sweep: every point on the brute-force frontier, both ends included.
  const hull = solveFrontier(ls, edits, 10_000, 'hull');
  const byBytes = new Map(want.map((p) => [p.bytes, p.error]));
  for (const p of hull.points) assert.ok(byBytes.has(p.bytes) && close(byBytes.get(p.bytes)!, p.error), `hull point ${JSON.stringify(p)} is not on the brute-force frontier`);
  assert.equal(hull.points[0].bytes, want[0].bytes);
  assert.equal(hull.points[hull.points.length - 1].bytes, want[want.length - 1].bytes);
}

describe('Quantize wizard: output-space plan problem', () => {
  // Output-space effects are small and not monotone in the bits (a, b: the 8-bit config moves the output more than a 4-bit one).
  const base: PlanLayer[] = [
    { name: 'a', params: 64, options: [{ label: 'keep', bytes: 256, error: 9 }, { label: 'c8', bytes: 66, error: 1 }, { label: 'c4', bytes: 34, error: 4 }, { label: 'c2', bytes: 18, error: 30 }] },
    { name: 'b', params: 64, options: [{ label: 'keep', bytes: 256, error: 9 }, { label: 'c8', bytes: 66, error: 2 }, { label: 'c4', bytes: 34, error: 3 }, { label: 'c2', bytes: 18, error: 40 }] },
    { name: 'c', params: 128, options: [{ label: 'keep', bytes: 512, error: 9 }, { label: 'c8', bytes: 132, error: 5 }, { label: 'c4', bytes: 68, error: 8 }, { label: 'c2', bytes: 36, error: 60 }] },
    { name: 'd', params: 32, options: [{ label: 'keep', bytes: 128, error: 9 }, { label: 'c8', bytes: 34, error: 0.5 }, { label: 'c4', bytes: 18, error: 9 }] },
  ];
  const effects = new Map<string, Map<string, number>>([
    ['a', new Map([['c8', 3.1e-6], ['c4', 2.7e-6], ['c2', 9.5e-4]])],
    ['b', new Map([['c8', 4.0e-7], ['c4', 6.2e-5], ['c2', 2.2e-3]])],
    ['c', new Map([['c8', 1.5e-6], ['c4', 1.1e-4], ['c2', 1.9e-2]])],
    ['d', new Map([['c8', 0], ['c4', 3.3e-5]])],
  ]);

  it('replaces every config option\'s error by its measured effect (keep: 0), bytes untouched', () => {
    const r = withOutputEffects(base, effects);
    assert.ok(r.layers);
    r.layers.forEach((l, i) => l.options.forEach((o, j) => {
      assert.equal(o.bytes, base[i].options[j].bytes);
      assert.equal(o.error, o.label === 'keep' ? 0 : effects.get(l.name)!.get(o.label));
    }));
  });

  it('is all or nothing: a weight or config without a finite effect leaves the whole problem weight-space and is named', () => {
    const partial = new Map(effects);
    partial.set('b', new Map([['c8', 4.0e-7], ['c4', 6.2e-5]]));
    partial.set('c', new Map([['c8', NaN], ['c4', 1.1e-4], ['c2', 1.9e-2]]));
    partial.delete('d');
    const r = withOutputEffects(base, partial);
    assert.equal(r.layers, undefined);
    assert.deepEqual(r.missing, ['b: c2', 'c: c8', 'd: c8', 'd: c4']);
  });

  const cases: [string, PlanEdits | undefined][] = [
    ['no edits', undefined],
    ['a pin and a forced config', { pinned: ['c'], forced: { a: 'c2' }, tied: [] }],
    ['a and b tied', { pinned: [], forced: {}, tied: [['a', 'b']] }],
  ];
  for (const [what, edits] of cases) {
    it(`the frontier over output-space effects equals brute-force enumeration (${what})`, () => {
      const r = withOutputEffects(base, effects);
      assertFrontier(r.layers!, edits);
      // Not the weight-space frontier: the metric changes the plan.
      const w = solveFrontier(base, edits, 10_000, 'dp');
      const o = solveFrontier(r.layers!, edits, 10_000, 'dp');
      assert.notDeepEqual(Array.from(w.choices), Array.from(o.choices));
    });
  }

  it('a plan says which error it predicts', () => {
    const r = withOutputEffects(base, effects);
    assert.equal(planOf('onnx-int4', base, [1, 1, 1, 1]).predicted!.errorKind, WEIGHT_SPACE_ERROR);
    const p = planOf('onnx-int4', r.layers!, [1, 2, 1, 0], 'm.onnx', undefined, OUTPUT_SPACE_ERROR);
    assert.equal(p.predicted!.errorKind, OUTPUT_SPACE_ERROR);
    assert.ok(close(p.predicted!.error, 3.1e-6 + 6.2e-5 + 1.5e-6 + 0));
    assert.equal(metricLabel({ kind: 'output', data: 'synthetic', samples: 8 }), 'output-space (measured on 8 synthetic samples)');
    assert.equal(metricLabel({ kind: 'weight' }), 'weight-space');
  });
});

describe('Quantize wizard: output-space effects measured on the tiny transformer', function () {
  this.timeout(180_000);
  let pool: WorkerPool;
  let tmp: string;
  before(() => {
    pool = new WorkerPool({ size: 1 });
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-wizout-'));
  });
  after(async () => {
    await pool.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('the Sensitivity panel\'s settings: nothing cached, then measured, then a cache hit; the frontier over the measured effects equals brute force', async () => {
    const m = openModel(tiny);
    try {
      const target = 'onnx-int4';
      const cands = candidates(m, target);
      const configs = configsFor(target).map((c) => c.id);
      const settings = planEffectSettings(m, new Set(cands.map((t) => t.name)), configs);
      assert.deepEqual(settings.weights.map((w) => w.name).sort(), cands.map((t) => t.name).sort());
      const set = modelCalib(m, undefined, { samples: PLAN_EFFECT_SAMPLES });
      assert.equal(set.synthetic, true);
      assert.equal(await cachedRuntimeSensitivity(m, set, { cacheDir: tmp, ...settings }), undefined);
      const r = await runtimeSensitivity(m, set, { pool, cacheDir: tmp, ...settings });
      assert.equal(r.samples, PLAN_EFFECT_SAMPLES);
      assert.equal(r.data, 'synthetic');
      const hit = await cachedRuntimeSensitivity(m, set, { cacheDir: tmp, ...settings });
      assert.ok(hit?.cached);
      assert.deepEqual(hit.weights, r.weights);
      // Other data: not this entry.
      assert.equal(await cachedRuntimeSensitivity(m, modelCalib(m, undefined, { samples: PLAN_EFFECT_SAMPLES, seed: 5 }), { cacheDir: tmp, ...settings }), undefined);
      // Two effects again, in this thread, straight from the runtime's measurement.
      const two = settings.weights.slice(0, 2);
      const direct = await measureWeights(tiny, two, configs, batchSamples(set.samples, new Set(m.graph!.inputs.filter((i) => typeof i.shape?.[0] !== 'number').map((i) => i.name)), 4).feeds);
      for (const w of direct.weights) assert.deepEqual(r.weights.find((x) => x.name === w.name)!.configs.map((c) => c.effect), w.configs.map((c) => c.effect), w.name);
      // The wizard's plan problem: bytes from the target, errors the measured effects.
      const layers: PlanLayer[] = cands.map((t) => ({
        name: t.name, params: t.shape.reduce((a, b) => a * b, 1),
        options: [{ label: 'keep', bytes: t.byteLength, error: 1 }, ...configs.map((c) => ({ label: c, bytes: targetBytes(target, c, t.shape, t.layer.outputChannelAxis, t.dtype), error: 1 }))],
      }));
      const effects = new Map(r.weights.map((w) => [w.name, new Map(w.configs.map((c) => [c.config, c.effect]))]));
      const out = withOutputEffects(layers, effects);
      assert.ok(out.layers, `missing: ${out.missing.join(', ')}`);
      for (const l of out.layers) for (const o of l.options.slice(1)) assert.ok(o.error > 0 && Number.isFinite(o.error), `${l.name} ${o.label}: ${o.error}`);
      assertFrontier(out.layers);
      assertFrontier(out.layers, { pinned: [], forced: {}, tied: [[cands[0].name, cands[4].name]] });
    } finally {
      m.close();
    }
  });
});

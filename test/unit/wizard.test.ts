import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { parseFromWizard, pointAtBudget } from '../../src/shared/protocol/wizard';
import { allowedLabels, planOf, solveFrontier, type PlanEdits, type PlanLayer } from '../../src/analysis/planFrontier';
import { exportPlan, shellQuote } from '../../src/quant/planExport';
import { PLAN_SCHEMA, parsePlan } from '../../src/quant/plan';
import { openModel } from '../../src/formats';

describe('Quantize wizard: protocol, frontier with pins/forces/ties, plan export', () => {
  it('accepts every well-formed message from the webview', () => {
    const ok: unknown[] = [
      { type: 'ready' }, { type: 'pickData' }, { type: 'loadPlan' }, { type: 'clearData' }, { type: 'quantize' }, { type: 'cancel' }, { type: 'back' }, { type: 'openOutput' }, { type: 'compare' }, { type: 'tieQkv' },
      { type: 'log', level: 'warn', message: 'x' },
      { type: 'setTarget', target: 'onnx-int4' }, { type: 'setPreset', preset: 'Q4_K_M' }, { type: 'select', point: 3 },
      { type: 'pin', name: 'w', pinned: true }, { type: 'force', name: 'w', config: 'int4-g32' }, { type: 'force', name: 'w', config: null },
      { type: 'tie', names: ['a', 'b'] }, { type: 'untie', name: 'a' }, { type: 'setUniform', uniform: false },
      { type: 'setAlgorithm', algo: 'gptq', bits: 4, groupSize: 32, symmetric: false }, { type: 'exportPlan', format: 'ort' },
      { type: 'measureOutput' }, { type: 'cancelMeasure' }, { type: 'setMetric', metric: 'output' }, { type: 'setMetric', metric: 'weight' },
    ];
    for (const m of ok) assert.deepEqual(parseFromWizard(m), m, JSON.stringify(m));
  });

  it('rejects malformed messages', () => {
    const bad: unknown[] = [
      null, 'ready', [], {}, { type: 'nope' }, { type: 42 },
      { type: 'log', level: 'debug', message: 'x' },
      { type: 'setTarget' }, { type: 'setTarget', target: '' }, { type: 'setTarget', target: 'x'.repeat(65) },
      { type: 'setPreset', preset: 'q4_k_m; rm -rf' },
      { type: 'select', point: -1 }, { type: 'select', point: 1.5 }, { type: 'select', point: '2' }, { type: 'select', point: 1e7 },
      { type: 'pin', name: 'w' }, { type: 'pin', name: '', pinned: true }, { type: 'pin', name: 'w', pinned: 'yes' },
      { type: 'force', name: 'w' }, { type: 'force', name: 'w', config: 3 },
      { type: 'tie', names: ['a'] }, { type: 'tie', names: ['a', 'a'] }, { type: 'tie', names: 'a,b' }, { type: 'tie', names: ['a', 2] },
      { type: 'setUniform', uniform: 1 },
      { type: 'setAlgorithm', algo: 'hqq', bits: 4, groupSize: 32, symmetric: true },
      { type: 'setAlgorithm', algo: 'rtn', bits: 3, groupSize: 32, symmetric: true },
      { type: 'setAlgorithm', algo: 'rtn', bits: 4, groupSize: 100, symmetric: true },
      { type: 'setAlgorithm', algo: 'rtn', bits: 4, groupSize: 32 },
      { type: 'exportPlan', format: 'csv' }, { type: 'exportPlan' },
      { type: 'setMetric' }, { type: 'setMetric', metric: 'kl' }, { type: 'setMetric', metric: true },
    ];
    for (const m of bad) assert.equal(parseFromWizard(m), undefined, JSON.stringify(m));
  });

  it('a budget picks the largest frontier point that fits (binary search = linear scan)', () => {
    const pts = [10, 20, 35, 35.5, 80].map((bytes) => ({ bytes }));
    for (const b of [0, 9.99, 10, 19, 20, 35.4, 35.5, 79, 80, 1e9]) {
      let want = -1;
      pts.forEach((p, i) => { if (p.bytes <= b) want = i; });
      assert.equal(pointAtBudget(pts, b), want, `budget ${b}`);
    }
    assert.equal(pointAtBudget([], 5), -1);
  });

  // A small problem: 5 weights, keep + up to 3 configs, integer bytes (the DP's exact mode).
  const layers: PlanLayer[] = [
    { name: 'q', params: 16, options: [{ label: 'keep', bytes: 64, error: 0 }, { label: 'a8', bytes: 17, error: 1 }, { label: 'a4', bytes: 9, error: 9 }, { label: 'a2', bytes: 5, error: 40 }] },
    { name: 'k', params: 16, options: [{ label: 'keep', bytes: 64, error: 0 }, { label: 'a8', bytes: 17, error: 2 }, { label: 'a4', bytes: 9, error: 5 }, { label: 'a2', bytes: 5, error: 70 }] },
    { name: 'v', params: 16, options: [{ label: 'keep', bytes: 64, error: 0 }, { label: 'a8', bytes: 17, error: 0.5 }, { label: 'a4', bytes: 9, error: 12 }, { label: 'a2', bytes: 5, error: 30 }] },
    { name: 'up', params: 32, options: [{ label: 'keep', bytes: 128, error: 0 }, { label: 'a8', bytes: 34, error: 3 }, { label: 'a4', bytes: 18, error: 7 }] },
    { name: 'down', params: 32, options: [{ label: 'keep', bytes: 128, error: 0 }, { label: 'a8', bytes: 34, error: 1.5 }, { label: 'a4', bytes: 18, error: 20 }, { label: 'a2', bytes: 10, error: 90 }] },
  ];

  /** Every assignment the edits allow, reduced to its Pareto set (bytes up, error strictly down). */
  function bruteFrontier(ls: PlanLayer[], e: PlanEdits): { bytes: number; error: number }[] {
    const all: { bytes: number; error: number }[] = [];
    const pick = (i: number, labels: string[], bytes: number, error: number) => {
      if (i === ls.length) {
        // Independent check of the edits: pins keep, forced take their config, tied share one label.
        const ok = ls.every((l, j) => (!e.pinned.includes(l.name) || labels[j] === 'keep') && (e.forced[l.name] === undefined || labels[j] === e.forced[l.name]))
          && e.tied.every((g) => g.every((n) => labels[ls.findIndex((l) => l.name === n)] === labels[ls.findIndex((l) => l.name === g[0])]));
        if (ok) all.push({ bytes, error });
        return;
      }
      for (const o of ls[i].options) pick(i + 1, [...labels, o.label], bytes + o.bytes, error + o.error);
    };
    pick(0, [], 0, 0);
    all.sort((a, b) => a.bytes - b.bytes || a.error - b.error);
    const out: { bytes: number; error: number }[] = [];
    for (const p of all) if (!out.length || p.error < out[out.length - 1].error) out.push(p);
    return out;
  }

  const cases: [string, PlanEdits][] = [
    ['no edits', { pinned: [], forced: {}, tied: [] }],
    ['a pin', { pinned: ['down'], forced: {}, tied: [] }],
    ['a forced config', { pinned: [], forced: { up: 'a4' }, tied: [] }],
    ['q/k/v tied', { pinned: [], forced: {}, tied: [['q', 'k', 'v']] }],
    ['tie + pin + force', { pinned: ['up'], forced: { down: 'a8' }, tied: [['q', 'k']] }],
    ['a tie with a forced member', { pinned: [], forced: { k: 'a4' }, tied: [['q', 'k', 'v']] }],
  ];
  for (const [what, edits] of cases) {
    it(`the frontier equals brute-force enumeration (${what}), and each point's assignment respects the edits`, () => {
      const f = solveFrontier(layers, edits);
      assert.equal(f.method, 'dp');
      assert.ok(f.exact);
      const want = bruteFrontier(layers, edits);
      assert.deepEqual(f.points.map((p) => [p.bytes, p.error]), want.map((p) => [p.bytes, p.error]));
      const n = layers.length;
      f.points.forEach((p, k) => {
        const a = Array.from(f.choices.slice(k * n, (k + 1) * n));
        const plan = planOf('onnx-int4', layers, a);
        assert.equal(plan.predicted!.bytes, p.bytes);
        assert.ok(Math.abs(plan.predicted!.error - p.error) < 1e-9);
        for (const pn of edits.pinned) assert.equal(plan.tensors[pn], 'keep');
        for (const [fn, c] of Object.entries(edits.forced)) assert.equal(plan.tensors[fn], c);
        for (const g of edits.tied) assert.equal(new Set(g.map((x) => plan.tensors[x])).size, 1);
      });
    });
  }

  for (const [what, edits] of cases) {
    it(`the convex-hull frontier's points are each the exact optimum for their size, ends included (${what})`, () => {
      const f = solveFrontier(layers, edits, 400, 'hull');
      assert.equal(f.method, 'hull');
      const brute = bruteFrontier(layers, edits);
      const key = (p: { bytes: number; error: number }) => `${p.bytes}:${p.error.toFixed(9)}`;
      const onFrontier = new Set(brute.map(key));
      for (const p of f.points) assert.ok(onFrontier.has(key(p)), `hull point ${key(p)} is not on the brute-force frontier`);
      assert.deepEqual(f.points[0], brute[0]);
      assert.equal(key(f.points[f.points.length - 1]), key(brute[brute.length - 1]));
      // And it is the lower convex hull: no brute-force point lies below the segment between two neighbours.
      for (let k = 1; k < f.points.length; k++) {
        const [a, b] = [f.points[k - 1], f.points[k]];
        for (const p of brute) if (p.bytes > a.bytes && p.bytes < b.bytes) {
          const line = a.error + ((b.error - a.error) * (p.bytes - a.bytes)) / (b.bytes - a.bytes);
          assert.ok(p.error >= line - 1e-9, `${key(p)} lies below the hull between ${key(a)} and ${key(b)}`);
        }
      }
      const n = layers.length;
      f.points.forEach((p, k) => {
        const plan = planOf('onnx-int4', layers, Array.from(f.choices.slice(k * n, (k + 1) * n)));
        assert.equal(plan.predicted!.bytes, p.bytes);
        for (const pn of edits.pinned) assert.equal(plan.tensors[pn], 'keep');
        for (const [fn, c] of Object.entries(edits.forced)) assert.equal(plan.tensors[fn], c);
        for (const g of edits.tied) assert.equal(new Set(g.map((x) => plan.tensors[x])).size, 1);
      });
    });
  }

  it('uniform reference points are each config over every weight; a config some weight lacks is not one', () => {
    const f = solveFrontier(layers);
    assert.deepEqual(f.uniform, [
      { config: 'a8', bytes: 17 * 3 + 34 * 2, error: 1 + 2 + 0.5 + 3 + 1.5 },
      { config: 'a4', bytes: 9 * 3 + 18 * 2, error: 9 + 5 + 12 + 7 + 20 },
    ]);
  });

  it('refuses edits no assignment satisfies, naming the weights', () => {
    assert.throws(() => allowedLabels(layers, { pinned: ['q'], forced: { k: 'a4' }, tied: [['q', 'k']] }), /tied weights q, k share no allowed choice/);
    assert.throws(() => allowedLabels(layers, { pinned: [], forced: { up: 'a2' }, tied: [] }), /up cannot take a2/);
    assert.throws(() => solveFrontier(layers, { pinned: [], forced: {}, tied: [['q', 'nope']] }), /tied weight 'nope'/);
  });

  it('exports the plan JSON byte for byte, and it parses back', () => {
    const plan = parsePlan({ schema: PLAN_SCHEMA, target: 'onnx-int4', model: 'm.onnx', tensors: { a: 'keep', b: 'int4-g32' } }, 'x');
    const e = exportPlan(plan, 'plan');
    assert.equal(e.suffix, '.plan.json');
    assert.equal(e.content, '{\n  "schema": "quantscope/plan/v1",\n  "target": "onnx-int4",\n  "tensors": {\n    "a": "keep",\n    "b": "int4-g32"\n  },\n  "model": "m.onnx"\n}\n');
    assert.deepEqual(parsePlan(JSON.parse(e.content), 'y'), plan);
  });

  it('exports ONNX Runtime settings with the graph\'s node and initializer names (tiny transformer, names listed by the onnx Python package)', () => {
    const file = path.join(__dirname, '../../../test/fixtures/tiny-transformer/tiny-transformer.onnx');
    const m = openModel(file);
    const consumers = new Map(m.tensors.map((t) => [t.name, t.layer.consumers.map((c) => c.node)]));
    m.close();
    const plan = parsePlan({ schema: PLAN_SCHEMA, target: 'onnx-int4', tensors: { 'onnx::MatMul_257': 'keep', 'onnx::MatMul_285': 'keep', 'onnx::MatMul_269': 'int4-g32', 'onnx::MatMul_270': 'int8-g128' } }, 'x');
    const e = exportPlan(plan, 'ort', { consumers: (t) => consumers.get(t) ?? [] });
    // Expected by hand from `onnx.load(...).graph.node`: the MatMul reading each initializer.
    assert.deepEqual(JSON.parse(e.content), {
      nodes_to_exclude: ['/blocks.0/qkv/MatMul', '/head/MatMul'],
      tensor_quant_overrides: {
        'onnx::MatMul_269': [{ bits: 4, block_size: 32, symmetric: false }],
        'onnx::MatMul_270': [{ bits: 8, block_size: 128, symmetric: false }],
      },
    });
    assert.throws(() => exportPlan(plan, 'llamacpp'), /for gguf plans; this plan is for onnx-int4/);
  });

  it('exports the llama-quantize command line, quoted for a POSIX shell', () => {
    const plan = parsePlan({ schema: PLAN_SCHEMA, target: 'gguf', tensors: { 'blk.0.attn_v.weight': 'Q6_K', 'blk.0.ffn_down.weight': 'Q5_K', 'output.weight': 'keep' } }, 'x');
    const e = exportPlan(plan, 'llamacpp', { llama: { source: 'my model-F16.gguf', output: 'out.gguf', preset: 'Q4_K_M' } });
    assert.equal(e.content, "llama-quantize --tensor-type '^blk\\.0\\.attn_v\\.weight$=q6_k' --tensor-type '^blk\\.0\\.ffn_down\\.weight$=q5_k' 'my model-F16.gguf' out.gguf Q4_K_M\n");
    assert.equal(shellQuote("it's"), "'it'\\''s'");
    assert.throws(() => exportPlan(plan, 'ort'), /for ONNX plans; this plan is for gguf/);
  });
});

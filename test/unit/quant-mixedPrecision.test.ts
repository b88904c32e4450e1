import * as assert from 'node:assert/strict';
import { searchMixedPrecision, paretoFrontier, evaluate, LayerChoices, SearchConstraints, storageBytes, quantize, packInt4, layerOptions } from '../../src/quant';
import { randomTensor } from './quant-testUtil';
import { rng } from './quant-testUtil';

const LABELS = ['int2', 'int3', 'int4', 'int8', 'f16'];
const BITS = [2, 3, 4, 8, 16];

function randomInstance(r: () => number, integerErrors: boolean): LayerChoices[] {
  const L = 1 + Math.floor(r() * 5);
  const layers: LayerChoices[] = [];
  for (let i = 0; i < L; i++) {
    const params = 8 * (1 + Math.floor(r() * 40));
    const k = 1 + Math.floor(r() * 4);
    const idx = [...LABELS.keys()].sort(() => r() - 0.5).slice(0, k).sort((a, b) => a - b);
    layers.push({
      name: `l${i}`,
      params,
      options: idx.map((j) => ({
        label: LABELS[j],
        bits: BITS[j],
        bytes: (params * BITS[j]) / 8 + Math.floor(r() * 7), // + scale overhead
        error: integerErrors ? Math.floor(r() * 1000) : r() * 10 / BITS[j],
      })),
    });
  }
  return layers;
}

/** Every assignment that satisfies the constraints (labels tied, pins, min width). */
function allAssignments(layers: LayerChoices[], c: SearchConstraints): number[][] {
  const out: number[][] = [];
  const cur: number[] = [];
  const pinned = new Set(c.pinned16 ?? []);
  const rec = (i: number) => {
    if (i === layers.length) {
      for (const g of c.tied ?? []) {
        const labs = g.map((n) => { const li = layers.findIndex((l) => l.name === n); return layers[li].options[cur[li]].label; });
        if (labs.some((l) => l !== labs[0])) return;
      }
      out.push(cur.slice());
      return;
    }
    layers[i].options.forEach((o, j) => {
      if (pinned.has(layers[i].name) ? o.bits < 16 : o.bits < (c.minBits ?? 0)) return;
      cur.push(j);
      rec(i + 1);
      cur.pop();
    });
  };
  rec(0);
  return out;
}

function bruteBest(layers: LayerChoices[], c: SearchConstraints, budget: number): number {
  let best = Infinity;
  for (const a of allAssignments(layers, c)) {
    const e = evaluate(layers, a);
    if (e.bytes <= budget && e.error < best) best = e.error;
  }
  return best;
}

function randomConstraints(r: () => number, layers: LayerChoices[]): SearchConstraints {
  const c: SearchConstraints = {};
  if (r() < 0.3) c.minBits = 3;
  if (r() < 0.3) {
    const l = layers[Math.floor(r() * layers.length)];
    if (l.options.some((o) => o.bits >= 16)) c.pinned16 = [l.name];
  }
  if (r() < 0.4 && layers.length >= 2) c.tied = [[layers[0].name, layers[1].name]];
  return c;
}

describe('quant mixed-precision search', () => {
  it('exact mode equals brute force on 400 random small instances (integer errors: exact equality)', () => {
    const r = rng(42);
    let checked = 0;
    let infeasible = 0;
    for (let t = 0; t < 400; t++) {
      const layers = randomInstance(r, true);
      const c = randomConstraints(r, layers);
      let all: number[][];
      try {
        all = allAssignments(layers, c);
        if (all.length === 0) continue;
      } catch {
        continue;
      }
      let res;
      try {
        const sizes = all.map((a) => evaluate(layers, a).bytes);
        const budget = Math.min(...sizes) + Math.floor(r() * (Math.max(...sizes) - Math.min(...sizes) + 3)) - 1;
        res = searchMixedPrecision(layers, { ...c, budgetBytes: budget });
        const brute = bruteBest(layers, c, budget);
        assert.ok(res.discretization.exact);
        if (brute === Infinity) {
          assert.equal(res.best, null);
          infeasible++;
        } else {
          assert.equal(res.best!.error, brute, `instance ${t}`);
          assert.ok(res.best!.bytes <= budget);
          checked++;
        }
      } catch (e) {
        if (e instanceof RangeError && /no option left|share no allowed/.test(e.message)) continue;
        throw e;
      }
      // Constraints hold in the answer.
      if (res.best) {
        for (const p of c.pinned16 ?? []) assert.ok(layers.find((l) => l.name === p)!.options[res.best.options[layers.findIndex((l) => l.name === p)]].bits >= 16);
        for (const g of c.tied ?? []) {
          const labs = g.map((n) => { const i = layers.findIndex((l) => l.name === n); return layers[i].options[res.best!.options[i]].label; });
          assert.ok(labs.every((l) => l === labs[0]));
        }
      }
    }
    assert.ok(checked > 200, `checked ${checked} feasible instances`);
    assert.ok(infeasible > 0, 'some instances are infeasible');
  });

  it('grid mode: never exceeds the budget, and error lies between OPT(budget) and OPT(budget − m·u) (the documented bound)', () => {
    const r = rng(7);
    let strict = 0;
    for (let t = 0; t < 300; t++) {
      const layers = randomInstance(r, false);
      for (const l of layers) for (const o of l.options) o.bytes += r() * 0.9; // fractional bytes force grid mode
      const sizes = allAssignments(layers, {}).map((a) => evaluate(layers, a).bytes);
      const budget = Math.min(...sizes) + r() * (Math.max(...sizes) - Math.min(...sizes));
      const res = searchMixedPrecision(layers, { budgetBytes: budget, maxCells: 8 + Math.floor(r() * 60) });
      const d = res.discretization;
      assert.ok(!d.exact);
      assert.ok(Math.abs(d.boundBudget - (budget - layers.length * d.unit)) < 1e-9);
      const optB = bruteBest(layers, {}, budget);
      const optLow = bruteBest(layers, {}, d.boundBudget);
      if (res.best === null) {
        assert.equal(optLow, Infinity, 'an assignment within the bound budget exists, so the DP must find one');
        continue;
      }
      assert.ok(res.best.bytes <= budget + 1e-9, `bytes ${res.best.bytes} > budget ${budget}`);
      assert.ok(res.best.error >= optB - 1e-12);
      assert.ok(res.best.error <= optLow + 1e-12, `error ${res.best.error} > OPT(budget − m·u) ${optLow}`);
      if (res.best.error > optB + 1e-12) strict++;
    }
    assert.ok(strict > 0, 'coarse grids sometimes lose optimality (so the bound is being exercised)');
  });

  it('Pareto frontier: bytes strictly increasing, error strictly decreasing, equal to the brute-force non-dominated set', () => {
    const r = rng(99);
    for (let t = 0; t < 150; t++) {
      const layers = randomInstance(r, true);
      const f = paretoFrontier(layers);
      for (let i = 1; i < f.length; i++) {
        assert.ok(f[i].bytes > f[i - 1].bytes);
        assert.ok(f[i].error < f[i - 1].error);
      }
      const pts = allAssignments(layers, {}).map((a) => evaluate(layers, a));
      const nd = pts.filter((p) => !pts.some((q) => (q.bytes <= p.bytes && q.error < p.error) || (q.bytes < p.bytes && q.error <= p.error)));
      const key = (p: { bytes: number; error: number }) => `${p.bytes}:${p.error}`;
      assert.deepEqual([...new Set(f.map(key))].sort(), [...new Set(nd.map(key))].sort(), `instance ${t}`);
    }
  });

  it('average-bits budget, pinned, tied, minimum width and error messages', () => {
    const mk = (name: string, params: number): LayerChoices => ({
      name, params,
      options: [
        { label: 'int4', bits: 4, bytes: params / 2 + 8, error: 10 },
        { label: 'int8', bits: 8, bytes: params + 8, error: 1 },
        { label: 'f16', bits: 16, bytes: params * 2, error: 0 },
      ],
    });
    const layers = [mk('q', 64), mk('k', 64), mk('v', 64), mk('mlp', 256)];
    const res = searchMixedPrecision(layers, { averageBits: 6, tied: [['q', 'k', 'v']], pinned16: ['mlp'] });
    assert.equal(res.budgetBytes, (6 * 448) / 8);
    // mlp pinned to f16 (512 bytes) leaves 336 − 512 < 0: infeasible.
    assert.equal(res.best, null);
    const res2 = searchMixedPrecision(layers, { averageBits: 12, tied: [['q', 'k', 'v']], pinned16: ['mlp'] });
    // 672 bytes: mlp f16 = 512, q/k/v tied: int4 = 120 fits, int8 = 216 does not.
    assert.deepEqual(res2.best!.options, [0, 0, 0, 2]);
    assert.throws(() => searchMixedPrecision(layers, { budgetBytes: 1000, minBits: 32 }), /layer 'q' has no option left/);
    assert.throws(() => searchMixedPrecision(layers, { budgetBytes: 1000, tied: [['q', 'zz']] }), /tied layer 'zz'/);
    assert.throws(() => searchMixedPrecision([{ name: 'a', options: [] }], { averageBits: 4 }), /needs params/);
  });

  it('storageBytes counts packed codes, scales and packed zero points', () => {
    const g128 = { kind: 'group', axis: 1, size: 128 } as const;
    assert.equal(storageBytes([256, 512], { format: 'int', bits: 4, granularity: g128 }), 256 * 512 / 2 + 256 * 4 * 4);
    assert.equal(storageBytes([256, 512], { format: 'uint', bits: 4, symmetric: false, granularity: g128 }), 256 * 512 / 2 + 1024 * 4 + 512);
    assert.equal(storageBytes([64, 64], { format: 'int', bits: 8, granularity: { kind: 'channel', axis: 0 } }), 4096 + 64 * 4);
    assert.equal(storageBytes([4, 64], { format: 'fp4_e2m1', scale: 'pow2', granularity: { kind: 'group', axis: 1, size: 32 } }), 128 + 8);
    // Agrees with what the packer actually produces for int4 codes.
    const x = randomTensor(3 * 50, 1);
    const q = quantize(x, [3, 50], { format: 'int', bits: 4, granularity: { kind: 'tensor' } });
    assert.equal(storageBytes([3, 50], { format: 'int', bits: 4, granularity: { kind: 'tensor' } }), packInt4(q.codes).length + 4);
  });

  it('layerOptions scores each candidate by its real quantization error; more bits never cost more error here', () => {
    const w = randomTensor(16 * 256, 3);
    const opts = layerOptions(w, [16, 256], [
      { label: 'int3-g64', spec: { format: 'int', bits: 3, granularity: { kind: 'group', axis: 1, size: 64 } } },
      { label: 'int4-g64', spec: { format: 'int', bits: 4, granularity: { kind: 'group', axis: 1, size: 64 } } },
      { label: 'int8', spec: { format: 'int', bits: 8, granularity: { kind: 'channel', axis: 0 } } },
    ]);
    const deq = quantize(w, [16, 256], { format: 'int', bits: 4, granularity: { kind: 'group', axis: 1, size: 64 } }).dequantized;
    let e = 0;
    for (let i = 0; i < w.length; i++) e += (w[i] - deq[i]) ** 2;
    assert.equal(opts[1].error, e);
    assert.equal(opts[1].bytes, 16 * 256 / 2 + 64 * 4);
    assert.ok(opts[0].error > opts[1].error && opts[1].error > opts[2].error);
    assert.deepEqual(opts.map((o) => o.bits), [3, 4, 8]);
  });

  it('frontier sampling keeps both ends and at most maxPoints points', () => {
    const r = rng(5);
    const layers: LayerChoices[] = Array.from({ length: 12 }, (_, i) => ({
      name: `l${i}`,
      options: [2, 4, 8, 16].map((b) => ({ label: `b${b}`, bits: b, bytes: b * (10 + i), error: r() * 100 / b })),
    }));
    const full = paretoFrontier(layers);
    const few = paretoFrontier(layers, { maxPoints: 5 });
    assert.ok(full.length > 5);
    assert.equal(few.length, 5);
    assert.deepEqual(few[0], full[0]);
    assert.deepEqual(few[4], full[full.length - 1]);
  });
});

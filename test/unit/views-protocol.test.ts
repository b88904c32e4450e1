/**
 * The Compare view's and the Sensitivity panel's messages: each well-formed
 * one is accepted, malformed ones are refused; the CSV export and the
 * non-finite-number wire encoding round-trip; the budget slider's marks come
 * from an exhaustive search on a small case.
 */
import * as assert from 'node:assert/strict';
import { compareCsv, fromWire, parseFromCompare, toWire, type CompareData } from '../../src/shared/protocol/compare';
import { parseFromSensitivity } from '../../src/shared/protocol/sensitivity';
import { algorithmApplies, calibratedNotes, experimentCsv, experimentMarkdown, experimentRuns, paretoFrontier, parseFromExperiment, type ExperimentResult } from '../../src/shared/protocol/experiment';
import { budgetMarks } from '../../src/analysis/budgetMarks';
import type { TensorInfo } from '../../src/formats/types';
import type { TensorSensitivity } from '../../src/analysis/sensitivity';
import { targetBytes } from '../../src/quant/plan';

const PNG_1x1 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

describe('Compare view and Sensitivity panel protocols', () => {
  it('the Compare view: accepts its messages, refuses malformed ones', () => {
    for (const t of ['ready', 'cancel', 'rerun', 'swap', 'chooseData', 'exportCsv']) assert.deepEqual(parseFromCompare({ type: t }), { type: t });
    assert.deepEqual(parseFromCompare({ type: 'log', level: 'warn', message: 'x' }), { type: 'log', level: 'warn', message: 'x' });
    assert.equal(parseFromCompare({ type: 'exportPng', chart: 'compare-histogram', dataUrl: `data:image/png;base64,${PNG_1x1}` })?.type, 'exportPng');
    const bad: unknown[] = [
      null, 'ready', [], 7, {}, { type: 'openFile', path: '/etc/passwd' }, { type: 'ready', file: '/x' }, { type: 'chooseData', path: '/x' },
      { type: 'rerun', data: '/tmp/evil' }, { type: 'log', level: 'debug', message: 'x' }, { type: 'exportPng', chart: '../x', dataUrl: `data:image/png;base64,${PNG_1x1}` },
      { type: 'exportPng', chart: 'h', dataUrl: 'data:image/svg+xml,<svg/>' }, { type: '__proto__' },
    ];
    for (const m of bad) assert.equal(parseFromCompare(m), undefined, JSON.stringify(m));
  });

  it('the Sensitivity panel: metric, budget, output measurement and plan messages are validated', () => {
    assert.deepEqual(parseFromSensitivity({ type: 'setMetric', metric: 'output' }), { type: 'setMetric', metric: 'output' });
    assert.deepEqual(parseFromSensitivity({ type: 'setBudget', bitsPerWeight: 4.5 }), { type: 'setBudget', bitsPerWeight: 4.5 });
    assert.deepEqual(parseFromSensitivity({ type: 'setBudget', bitsPerWeight: 6, target: 'onnx-qdq', x: 1 }), { type: 'setBudget', bitsPerWeight: 6, target: 'onnx-qdq' });
    for (const t of ['measureOutput', 'cancelOutput', 'quantizeWithPlan']) assert.deepEqual(parseFromSensitivity({ type: t }), { type: t });
    const bad: unknown[] = [
      { type: 'setMetric', metric: 'loss' }, { type: 'setMetric' }, { type: 'setBudget', bitsPerWeight: '4' }, { type: 'setBudget', bitsPerWeight: NaN },
      { type: 'setBudget', bitsPerWeight: Infinity }, { type: 'setBudget', bitsPerWeight: -1 }, { type: 'setBudget', bitsPerWeight: 0 }, { type: 'setBudget', bitsPerWeight: 65 },
      { type: 'setBudget', bitsPerWeight: 4, target: 'tflite' }, { type: 'setBudget', bitsPerWeight: 4, target: 3 }, { type: 'quantize' },
    ];
    for (const m of bad) assert.equal(parseFromSensitivity(m), undefined, JSON.stringify(m));
  });

  it('the Experiment view: run with known-shaped ids and known algorithms only, every other message refused', () => {
    assert.deepEqual(parseFromExperiment({ type: 'run', configs: ['int4-g32', 'int8-channel'], calibrators: ['minmax'], algorithms: ['rtn'] }), { type: 'run', configs: ['int4-g32', 'int8-channel'], calibrators: ['minmax'], algorithms: ['rtn'] });
    assert.deepEqual(parseFromExperiment({ type: 'run', configs: ['nf4-g64'], calibrators: ['mse'], algorithms: ['rtn', 'gptq', 'awq'], activations: true }), { type: 'run', configs: ['nf4-g64'], calibrators: ['mse'], algorithms: ['rtn', 'gptq', 'awq'], activations: true });
    for (const t of ['ready', 'cancel', 'chooseData', 'clearData', 'exportCsv', 'exportMarkdown']) assert.deepEqual(parseFromExperiment({ type: t }), { type: t });
    const run = { type: 'run', configs: ['int4-g32'], calibrators: ['minmax'], algorithms: ['rtn'] };
    const bad: unknown[] = [
      { ...run, configs: [] }, { ...run, calibrators: [] }, { ...run, configs: ['../x'] },
      { ...run, configs: ['int4-g32', 'int4-g32'] }, { ...run, configs: 'int4-g32' },
      { ...run, activations: 'yes' }, { ...run, configs: Array.from({ length: 65 }, (_, i) => `c${i}`) },
      // Algorithms: required, known, once each, at most three; no stray keys.
      { type: 'run', configs: ['int4-g32'], calibrators: ['minmax'] }, { ...run, algorithms: [] }, { ...run, algorithms: ['hqq'] }, { ...run, algorithms: ['gptq', 'gptq'] },
      { ...run, algorithms: 'gptq' }, { ...run, algorithms: ['rtn', 'gptq', 'awq', 'rtn'] }, { ...run, algorithms: ['GPTQ'] }, { ...run, data: '/etc/passwd' },
      { type: 'chooseData', path: '/etc' }, { type: 'exportPng', chart: 'x', dataUrl: 'data:text/html,<b>' }, { type: 'eval' }, null,
    ];
    for (const m of bad) assert.equal(parseFromExperiment(m), undefined, JSON.stringify(m));
  });

  it('the Experiment grid: config × calibrator × algorithm, GPTQ / AWQ only where the host says they apply', () => {
    const configs = [{ id: 'int4-g32', algorithms: ['rtn', 'gptq', 'awq'] as const }, { id: 'nf4-g64', algorithms: ['rtn'] as const }].map((c) => ({ ...c, algorithms: [...c.algorithms] }));
    const algos = [{ id: 'rtn' as const, label: 'RTN', needsData: false }, { id: 'gptq' as const, label: 'GPTQ', needsData: true, calibrators: ['minmax'] }];
    const runs = experimentRuns(configs, ['minmax', 'mse'], algos).map((r) => `${r.config.id}/${r.calibrator}/${r.algorithm.id}`);
    // Brute force over the product: RTN everywhere, GPTQ on the integer config with minmax only.
    const want: string[] = [];
    for (const k of ['minmax', 'mse']) for (const c of configs) for (const a of algos) if (a.id === 'rtn' || (c.id === 'int4-g32' && k === 'minmax')) want.push(`${c.id}/${k}/${a.id}`);
    assert.deepEqual(runs, want);
    assert.equal(runs.length, 5);
    assert.equal(algorithmApplies(algos[1], configs[1], 'minmax'), false);
    assert.equal(algorithmApplies(algos[1], configs[0], 'mse'), false);
  });

  it('paretoFrontier equals a brute-force "nothing beats it on both" filter; CSV and Markdown list every run', () => {
    let seed = 5;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let trial = 0; trial < 50; trial++) {
      const rows = Array.from({ length: 12 }, (_, i) => ({ id: i, bytes: Math.floor(rnd() * 8), effect: Math.floor(rnd() * 8) / 8 }));
      const brute = rows.filter((r) => !rows.some((o) => o !== r && o.bytes <= r.bytes && o.effect <= r.effect && (o.bytes < r.bytes || o.effect < r.effect)));
      const key = (r: { bytes: number; effect: number }) => `${r.bytes}/${r.effect}`;
      assert.deepEqual([...new Set(paretoFrontier(rows).map(key))].sort(), [...new Set(brute.map(key))].sort());
    }
    const r: ExperimentResult = {
      data: 'synthetic', dataSource: 'synthetic (seed 1)', samples: 4, layers: [], layerSqnr: {}, seconds: 1, cached: false,
      rows: [{ config: 'int8-channel', calibrator: 'minmax', algorithm: 'rtn', bytes: 2e6, floatBytes: 8e6, effect: 1e-4, seconds: 1, outputs: [{ output: 'y', sqnrDb: 40, cosine: 0.9999, maxAbs: 0.01 }] },
        { config: 'int4-g32', calibrator: 'minmax', algorithm: 'rtn', bytes: 1e6, floatBytes: 8e6, effect: 1e-2, seconds: 1, outputs: [{ output: 'y', sqnrDb: 20, cosine: 0.99, maxAbs: 0.1 }] },
        { config: 'int4-g32', calibrator: 'minmax', algorithm: 'gptq', bytes: 1e6, floatBytes: 8e6, effect: 5e-3, seconds: 1, outputs: [{ output: 'y', sqnrDb: 23, cosine: 0.995, maxAbs: 0.05 }], calibrated: { weights: 9, roundedToNearest: [{ name: 'emb', reason: 'consumed by Gather input 0' }] } }],
      notRun: ['nf4-g64 × GPTQ: GPTQ quantizes onto integer grids (per channel or group)'],
    };
    const csv = experimentCsv(r).trim().split('\n');
    assert.equal(csv.length, 4);
    assert.deepEqual(csv.slice(1).map((l) => l.split(',')[2]), ['rtn', 'rtn', 'gptq']);
    const md = experimentMarkdown('m.onnx', r);
    assert.match(md, /\*\*synthetic\*\*/);
    assert.match(md, /\| int4-g32 \| minmax \| GPTQ \| 1\.000 \|/);
    assert.match(md, /\| int4-g32 \| minmax \| RTN \| 1\.000 \|/);
    // The GPTQ run beats RTN at the same size: it and INT8 are the frontier.
    assert.equal((md.match(/★/g) ?? []).length, 2);
    assert.match(md, /- int4-g32 GPTQ: 9 of 10 weights by GPTQ; rounded to nearest: emb \(consumed by Gather input 0\)/);
    assert.match(md, /- not run: nf4-g64 × GPTQ/);
    assert.deepEqual(calibratedNotes(r).length, 1);
  });

  const data: CompareData = {
    a: { file: '/m/a.onnx', format: 'onnx', sizeOnDisk: 10, weights: 2 }, b: { file: '/m/b.onnx', format: 'onnx', sizeOnDisk: 5, weights: 2 },
    tensors: [
      { name: 'w,1', matchedBy: 'name', typeA: 'f32', typeB: 'MatMulNBits int4 g32', shapeA: [4, 8], shapeB: [4, 8], numel: 32, bytesA: 128, bytesB: 20, sqnrDb: 21.5, cosine: 0.99, maxAbs: 0.1, mse: 0.001 },
      { name: 'b', matchedBy: 'name', typeA: 'f32', typeB: 'f32', shapeA: [8], shapeB: [8], numel: 8, bytesA: 32, bytesB: 32, sqnrDb: Infinity, cosine: 1, maxAbs: 0, mse: 0 },
    ],
    onlyA: [], onlyB: [], seconds: 1,
  };

  it('non-finite numbers survive the JSON channel (toWire → JSON → fromWire)', () => {
    const back = fromWire(JSON.parse(JSON.stringify(toWire(data))) as CompareData);
    assert.equal(back.tensors[1].sqnrDb, Infinity);
    assert.equal(back.tensors[0].sqnrDb, 21.5);
    assert.equal(JSON.parse(JSON.stringify(data)).tensors[1].sqnrDb, null, 'plain JSON loses it (why toWire exists)');
  });

  it('compareCsv: one quoted row per pair, infinities spelled out', () => {
    const lines = compareCsv(data).trim().split('\n');
    assert.equal(lines.length, 3);
    assert.ok(lines[1].startsWith('"w,1","w,1",name,f32,MatMulNBits int4 g32,4x8,4x8,32,128,20,21.5,0.99,0.1,0.001,'));
    assert.ok(lines[2].includes(',inf,1,0,0,'));
  });

  it('budgetMarks: the slider\'s marks are the exhaustive optimum of a 3-weight, 2-option case; output-space uses the measured effects', () => {
    const shape = [256, 64];
    const t = (name: string): TensorInfo => ({ name, dtype: 'f32', shape, numel: 256 * 64, byteLength: 256 * 64 * 4, location: { kind: 'inline', bytes: new Uint8Array(0) }, source: 'initializer', layer: { consumers: [], outputChannelAxis: 1 } });
    const tensors = ['a', 'b', 'c'].map(t);
    const mse: Record<string, number> = { a: 1e-3, b: 1e-5, c: 1e-4 };
    const sens = new Map<string, TensorSensitivity>(tensors.map((x) => [x.name, { numel: x.numel, measuredElements: x.numel, configs: [{ config: 'int4-g128', mse: mse[x.name], bytes: 0 } as unknown as TensorSensitivity['configs'][number]] }]));
    const q = targetBytes('onnx-int4', 'int4-g128', shape, 1, 'f32'), keep = 256 * 64 * 4;
    // Budget for exactly one kept weight: the plan keeps the one with the largest error (a), lowers b and c.
    const bpw = (8 * (keep + 2 * q)) / (3 * 256 * 64) + 1e-6;
    const m = budgetMarks('onnx-int4', tensors, sens, bpw);
    assert.deepEqual(m.marks, { a: 'keep', b: 'int4-g128', c: 'int4-g128' });
    assert.equal(m.kept, 1);
    assert.equal(m.lowered, 2);
    assert.ok(Math.abs(m.minBits - (8 * 3 * q) / (3 * 256 * 64)) < 1e-9 && Math.abs(m.maxBits - 32) < 1e-9);
    // Output-space: c hurts the outputs most, so c is the one kept.
    const effects = new Map([['a', new Map([['int4-g128', 0.01]])], ['b', new Map([['int4-g128', 0.02]])], ['c', new Map([['int4-g128', 0.5]])]]);
    const o = budgetMarks('onnx-int4', tensors, sens, bpw, 'output', effects);
    assert.deepEqual(o.marks, { a: 'int4-g128', b: 'int4-g128', c: 'keep' });
    assert.ok(Math.abs(o.error - 0.03) < 1e-12);
    assert.match(o.plan.predicted!.errorKind, /output-space/);
    assert.equal(o.plan.schema, 'quantscope/plan/v1');
  });
});

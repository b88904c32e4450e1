import * as assert from 'node:assert/strict';
import { PLAN_SCHEMA, PlanError, configsFor, llamaCppTensorTypeArgs, nbitsChoice, ortOverrides, parsePlan, planChoice, targetBytes } from '../../src/quant/plan';
import { budgetPlan } from '../../src/analysis/budgetPlan';
import { tensorSensitivity } from '../../src/analysis/sensitivity';

describe('quantization plans (quant/plan, analysis/budgetPlan)', () => {
  const names = new Set(['w1', 'w2', 'blk.0.attn_v.weight']);

  it('parses a valid plan and answers per tensor, the default filling the rest', () => {
    const p = parsePlan({ schema: PLAN_SCHEMA, target: 'onnx-int4', default: 'int4-g128', tensors: { w1: 'keep', w2: 'int8-g128' } }, 'p.json', names);
    assert.equal(planChoice(p, 'w1'), 'keep');
    assert.equal(planChoice(p, 'w2'), 'int8-g128');
    assert.equal(planChoice(p, 'other'), 'int4-g128');
    assert.deepEqual(nbitsChoice('int4-g32'), { bits: 4, blockSize: 32, symmetric: false });
  });

  it('bytes as MatMulNBits lays them out: codes padded to whole blocks along K, zero points packed per column', () => {
    // K = 64 < block 128: one padded block per column (what the converter wrote for the tiny transformer's qkv weight).
    assert.equal(targetBytes('onnx-int4', 'int8-g128', [64, 192], 1, 'f32'), 192 * 128 + 192 * 4 + 192);
    assert.equal(targetBytes('onnx-int4', 'int4-g32', [64, 192], 1, 'f32'), 192 * 2 * 16 + 192 * 2 * 4 + 192);
    // Gemm with transB: [N, K], output channels on axis 0; float16 scales.
    assert.equal(targetBytes('onnx-int4', 'int4-g128', [10, 300], 0, 'f16'), 10 * 3 * 64 + 10 * 3 * 2 + 10 * 2);
    assert.equal(targetBytes('onnx-qdq', 'int8-channel', [64, 192], 1, 'f32'), 64 * 192 + 192 * 4);
  });

  it('refuses, naming the file: wrong schema, unknown target, unknown tensors, choices the target cannot write', () => {
    const bad: [unknown, RegExp][] = [
      [[], /p\.json: a plan is a JSON object/],
      [{ schema: 'quantscope/plan/v9', target: 'gguf', tensors: {} }, /p\.json: "schema" must be "quantscope\/plan\/v1"/],
      [{ schema: PLAN_SCHEMA, target: 'tflite', tensors: {} }, /"target" must be one of/],
      [{ schema: PLAN_SCHEMA, target: 'onnx-int4', tensors: { nope: 'keep' } }, /tensor 'nope' is not in the model/],
      [{ schema: PLAN_SCHEMA, target: 'onnx-int4', tensors: { w1: 'nf4-g64' } }, /'nf4-g64' cannot be written by onnx-int4/],
      [{ schema: PLAN_SCHEMA, target: 'onnx-int4', tensors: { w1: 'int3-g128' } }, /'int3-g128' cannot be written by onnx-int4/],
      [{ schema: PLAN_SCHEMA, target: 'gguf', tensors: { w1: 'Q7_K' } }, /'Q7_K' is not a ggml type/],
      [{ schema: PLAN_SCHEMA, target: 'gguf', tensors: { w1: 42 } }, /a choice must be a non-empty string/],
      [{ schema: PLAN_SCHEMA, target: 'onnx-dynamic', tensors: { w1: 'int8-channel' } }, /onnx-dynamic takes only "keep"/],
    ];
    for (const [raw, re] of bad) assert.throws(() => parsePlan(raw, 'p.json', names), (e: unknown) => e instanceof PlanError && re.test(e.message), JSON.stringify(raw));
  });

  it('exports llama.cpp --tensor-type arguments and ONNX Runtime node exclusions with node names', () => {
    const g = parsePlan({ schema: PLAN_SCHEMA, target: 'gguf', tensors: { 'blk.0.attn_v.weight': 'Q6_K', w1: 'keep' } }, 'g.json', names);
    assert.deepEqual(llamaCppTensorTypeArgs(g), ['--tensor-type', '^blk\\.0\\.attn_v\\.weight$=q6_k']);
    const o = parsePlan({ schema: PLAN_SCHEMA, target: 'onnx-int4', tensors: { w1: 'keep', w2: 'int4-g32' } }, 'o.json', names);
    const x = ortOverrides(o, (t) => (t === 'w1' ? ['/model/layers.0/MatMul', '/model/layers.0/MatMul_1'] : ['other']));
    assert.deepEqual(x.nodes_to_exclude, ['/model/layers.0/MatMul', '/model/layers.0/MatMul_1']);
    assert.deepEqual(x.tensor_quant_overrides, { w2: [{ bits: 4, block_size: 32, symmetric: false }] });
  });

  it('the knapsack plan fits the budget, never loses to a uniform plan it could have picked, and refuses budgets below the smallest plan', () => {
    const ids = configsFor('onnx-int4').map((c) => c.id);
    assert.deepEqual(ids.sort(), ['int2-g64', 'int4-g128', 'int4-g32', 'int8-g128']);
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const layers = [0.5, 1, 4, 0.2].map((spread, i) => {
      // Heavier tails on some layers: their INT4 error is larger, so the search should spend bits there.
      const x = Float32Array.from({ length: 128 * 256 }, () => (rnd() - 0.5) * (rnd() < 0.01 ? 20 * spread : spread));
      return { name: `w${i}`, bytes: x.length * 4, sens: tensorSensitivity(x, [128, 256], [128, 256], 0, { scaleBytes: 4, configs: ids }) };
    });
    const r = budgetPlan('onnx-int4', layers, { bitsPerWeight: 5 });
    const params = layers.reduce((a, l) => a + l.sens.numel, 0);
    assert.ok(r.bytes * 8 <= 5 * params + 1e-9, `${r.bytes} bytes over budget`);
    const g32 = r.uniform.find((u) => u.config === 'int4-g32')!;
    if (g32.bytes * 8 <= 5 * params) assert.ok(r.error <= g32.error, `knapsack ${r.error} > uniform int4-g32 ${g32.error}`);
    assert.equal(Object.keys(r.plan.tensors).length, 4);
    assert.throws(() => budgetPlan('onnx-int4', layers, { bitsPerWeight: 1 }), /the budget is below the smallest plan: \d+ bytes \(2\.\d+ bits per weight\)/);
    assert.throws(() => budgetPlan('gguf', layers, { bitsPerWeight: 5 }), /gguf has none/);
  });
});

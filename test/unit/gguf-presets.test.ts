/**
 * Our per-tensor type choice (quant/ggml/presets.ts) against llama.cpp's own
 * (llama_quant_compute_types on a mock model, from the library node-llama-cpp
 * ships) for model shapes the conversion tests cannot build cheaply: grouped
 * query attention, a 70B LLaMA, Falcon, an 8-expert MoE, tied embeddings, a
 * fused QKV, and widths that are not whole k-quant blocks.
 */
import * as assert from 'node:assert/strict';
import { GGUF_PRESETS, GgufPreset, llamaTensorOrder, planGgufTypes, parseTensorTypeOverride } from '../../src/quant/ggml/presets';
import { ggmlTypeById, ggmlTypeByName } from '../../src/formats/gguf/ggmlTypes';
import { callLlama } from '../../src/runtime/llamacpp/client';

interface MockModel {
  label: string;
  arch: string;
  nEmbd: number;
  nFf: number;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  nExpert: number;
  vocab: number;
  tied?: boolean;
  fusedQkv?: boolean;
}

function tensorsOf(m: MockModel): { name: string; ne: number[]; type: number }[] {
  const F16 = 1, F32 = 0;
  const head = m.nEmbd / m.nHead, kv = head * m.nHeadKv;
  const t = [{ name: 'token_embd.weight', ne: [m.nEmbd, m.vocab], type: F16 }, { name: 'output_norm.weight', ne: [m.nEmbd], type: F32 }];
  if (!m.tied) t.push({ name: 'output.weight', ne: [m.nEmbd, m.vocab], type: F16 });
  for (let i = 0; i < m.nLayer; i++) {
    const p = `blk.${i}.`;
    t.push({ name: `${p}attn_norm.weight`, ne: [m.nEmbd], type: F32 });
    if (m.fusedQkv) t.push({ name: `${p}attn_qkv.weight`, ne: [m.nEmbd, m.nEmbd + 2 * kv], type: F16 });
    else {
      t.push({ name: `${p}attn_q.weight`, ne: [m.nEmbd, m.nEmbd], type: F16 }, { name: `${p}attn_k.weight`, ne: [m.nEmbd, kv], type: F16 },
        { name: `${p}attn_v.weight`, ne: [m.nEmbd, kv], type: F16 });
    }
    t.push({ name: `${p}attn_output.weight`, ne: [m.nEmbd, m.nEmbd], type: F16 }, { name: `${p}ffn_norm.weight`, ne: [m.nEmbd], type: F32 });
    if (m.nExpert > 1) {
      t.push({ name: `${p}ffn_gate_inp.weight`, ne: [m.nEmbd, m.nExpert], type: F32 },
        { name: `${p}ffn_gate_exps.weight`, ne: [m.nEmbd, m.nFf, m.nExpert], type: F16 },
        { name: `${p}ffn_up_exps.weight`, ne: [m.nEmbd, m.nFf, m.nExpert], type: F16 },
        { name: `${p}ffn_down_exps.weight`, ne: [m.nFf, m.nEmbd, m.nExpert], type: F16 });
    } else {
      t.push({ name: `${p}ffn_gate.weight`, ne: [m.nEmbd, m.nFf], type: F16 }, { name: `${p}ffn_up.weight`, ne: [m.nEmbd, m.nFf], type: F16 },
        { name: `${p}ffn_down.weight`, ne: [m.nFf, m.nEmbd], type: F16 });
    }
  }
  return t.sort((a, b) => llamaTensorOrder(a.name, b.name));
}

const MODELS: MockModel[] = [
  { label: 'llama, 12 layers, MHA', arch: 'llama', nEmbd: 512, nFf: 1536, nLayer: 12, nHead: 8, nHeadKv: 8, nExpert: 0, vocab: 1000 },
  { label: 'llama, 32 layers, GQA 8', arch: 'llama', nEmbd: 1024, nFf: 2816, nLayer: 32, nHead: 32, nHeadKv: 4, nExpert: 0, vocab: 1000 },
  { label: 'llama 70B (80 layers, GQA)', arch: 'llama', nEmbd: 8192, nFf: 28672, nLayer: 80, nHead: 64, nHeadKv: 8, nExpert: 0, vocab: 32000 },
  { label: 'falcon, fused QKV', arch: 'falcon', nEmbd: 512, nFf: 2048, nLayer: 16, nHead: 8, nHeadKv: 1, nExpert: 0, vocab: 1000, fusedQkv: true },
  { label: 'mixtral-like, 8 experts', arch: 'llama', nEmbd: 512, nFf: 1024, nLayer: 8, nHead: 8, nHeadKv: 2, nExpert: 8, vocab: 1000 },
  { label: 'qwen2-like, width 896 (not whole 256-blocks), tied', arch: 'qwen2', nEmbd: 896, nFf: 4864, nLayer: 24, nHead: 14, nHeadKv: 2, nExpert: 0, vocab: 1000, tied: true },
  { label: 'phi3-like, fused QKV, FFN of 1000 (no 32-block fallback either)', arch: 'phi3', nEmbd: 768, nFf: 1000, nLayer: 10, nHead: 12, nHeadKv: 12, nExpert: 0, vocab: 1000, fusedQkv: true },
];

function metadataOf(m: MockModel): Record<string, unknown> {
  return {
    'general.architecture': m.arch, [`${m.arch}.block_count`]: m.nLayer, [`${m.arch}.attention.head_count`]: m.nHead,
    [`${m.arch}.attention.head_count_kv`]: m.nHeadKv, [`${m.arch}.expert_count`]: m.nExpert,
  };
}

async function llamaTypes(m: MockModel, preset: GgufPreset, extra: { pure?: boolean; tensorTypes?: { pattern: string; type: number }[] } = {}): Promise<string[]> {
  const tensors = tensorsOf(m);
  const r = await callLlama({
    op: 'computeTypes', ftype: GGUF_PRESETS[preset].ftype, tensors, ...extra,
    model: { arch: m.arch, nEmbd: m.nEmbd, nFf: m.nFf, nLayer: m.nLayer, nHead: m.nHead, nHeadKv: m.nHeadKv, nExpert: m.nExpert, nEmbdHead: m.nEmbd / m.nHead },
  });
  return r.types.map((id, i) => (id < 0 ? ggmlTypeById(tensors[i].type)!.name : ggmlTypeById(id)?.name ?? `#${id}`));
}

describe('GGUF presets: per-tensor types equal llama.cpp llama_quant_compute_types', function () {
  this.timeout(300000);
  for (const m of MODELS) {
    it(m.label, async () => {
      const tensors = tensorsOf(m);
      for (const preset of Object.keys(GGUF_PRESETS) as GgufPreset[]) {
        const theirs = await llamaTypes(m, preset);
        const ours = planGgufTypes(metadataOf(m), tensors, preset);
        assert.deepEqual(ours.map((t) => t.name), tensors.map((t) => t.name));
        ours.forEach((t, i) => assert.equal(t.to, theirs[i], `${m.label} ${preset} ${t.name}: ours ${t.to} (${t.reason}), llama.cpp ${theirs[i]}`));
      }
    });
  }

  it('--pure and --tensor-type on the 8-expert and 70B shapes', async () => {
    const overrides = ['ffn_down_exps=Q8_0', 'attn_v=q5_1', 'blk\\.[0-3]\\.attn_output=Q2_K'];
    for (const m of [MODELS[2], MODELS[4]]) {
      for (const preset of ['Q4_K_M', 'Q3_K_M', 'Q5_0'] as GgufPreset[]) {
        const tensors = tensorsOf(m);
        const pure = planGgufTypes(metadataOf(m), tensors, preset, { pure: true });
        assert.deepEqual(pure.map((t) => t.to), await llamaTypes(m, preset, { pure: true }), `${m.label} ${preset} pure`);
        const parsed = overrides.map(parseTensorTypeOverride);
        const ov = planGgufTypes(metadataOf(m), tensors, preset, { tensorTypes: parsed });
        const theirs = await llamaTypes(m, preset, { tensorTypes: parsed.map((o) => ({ pattern: o.pattern.source, type: ggmlTypeByName(o.type)!.id })) });
        assert.deepEqual(ov.map((t) => t.to), theirs, `${m.label} ${preset} overrides`);
      }
    }
  });
});

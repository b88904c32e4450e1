/**
 * Transformer tensor names → (block, role), so the UI can group by block and
 * the bit-width search can reason per block. Covers the Hugging Face (Llama,
 * Mistral, Qwen, ...), GGUF/llama.cpp, GPT-2 and BERT naming schemes.
 */

export interface NameInfo {
  block?: number;
  role?: string;
  /** "model.layers.12" / "blk.12"; for tensors outside blocks, the tensor name minus its suffix. */
  layerName?: string;
}

// The block container followed by its index: layers.12, h.12, layer.3, blocks.7, blk.12.
const BLOCK = /^(.*?(?:^|\.)(?:layers|layer|h|blocks|block|blk|decoder_layers|encoder_layers))\.(\d+)(?:\.|$)/;

// Checked in order: earlier, more specific patterns win (BERT "attention.output.dense"
// must be o before "output.dense" is ffn_out; norms before the projections they sit beside).
const ROLES: [RegExp, string][] = [
  [/norm|(?:^|\.)ln_?\w*(?:\.|$)/i, 'norm'],
  [/(?:^|\.)(?:q_proj|attn_q|query|wq|q)(?:\.|$)/, 'q'],
  [/(?:^|\.)(?:k_proj|attn_k|key|wk|k)(?:\.|$)/, 'k'],
  [/(?:^|\.)(?:v_proj|attn_v|value|wv|v)(?:\.|$)/, 'v'],
  [/(?:^|\.)(?:c_attn|qkv_proj|attn_qkv|query_key_value|wqkv|qkv)(?:\.|$)/i, 'qkv'],
  [/(?:^|\.)(?:o_proj|attn_output|out_proj|wo)(?:\.|$)/, 'o'],
  [/(?:^|\.)(?:gate_proj|ffn_gate|w1|gate)(?:\.|$)/, 'gate'],
  [/(?:^|\.)(?:up_proj|ffn_up|w3|up)(?:\.|$)/, 'up'],
  [/(?:^|\.)(?:down_proj|ffn_down|w2|down)(?:\.|$)/, 'down'],
  [/(?:^|\.)(?:c_fc|fc1|fc_in)(?:\.|$)|intermediate\.dense/, 'ffn_in'],
  [/(?:^|\.)(?:fc2|fc_out)(?:\.|$)/, 'ffn_out'],
];

const TOP: [RegExp, string][] = [
  [/(?:^|\.)(?:embed_tokens|token_embd|wte|word_embeddings|tok_embeddings|embeddings\.word)(?:\.|$)/, 'embed'],
  [/(?:^|\.)(?:wpe|position_embeddings|embed_positions|position_embd)(?:\.|$)/, 'pos_embed'],
  [/(?:^|\.)(?:token_type_embeddings)(?:\.|$)/, 'embed'],
  [/(?:^|\.)lm_head(?:\.|$)|^output\.(?:weight|bias)$/, 'lm_head'],
  [/(?:norm|ln_f|layernorm|layer_norm)(?:\.|$)/i, 'norm'],
];

export function parseTensorName(name: string): NameInfo {
  const m = BLOCK.exec(name);
  if (m) {
    const block = Number(m[2]);
    const rest = name.slice(m[0].length);
    const layerName = `${m[1]}.${m[2]}`;
    // BERT's attention.output.dense is the attention out-projection; its
    // plain output.dense is the FFN down-projection: decide before ROLES.
    if (/(?:^|\.)attention\.output\.dense(?:\.|$)/.test(rest)) return { block, role: 'o', layerName };
    if (/^output\.dense(?:\.|$)/.test(rest)) return { block, role: 'ffn_out', layerName };
    if (/(?:^|\.)mlp\.c_proj(?:\.|$)/.test(rest)) return { block, role: 'ffn_out', layerName };
    if (/(?:^|\.)attn\.c_proj(?:\.|$)/.test(rest)) return { block, role: 'o', layerName };
    for (const [re, role] of ROLES) if (re.test(rest)) return { block, role, layerName };
    return { block, layerName };
  }
  for (const [re, role] of TOP) if (re.test(name)) return { role, layerName: name.replace(/\.(?:weight|bias)$/, '') };
  return {};
}

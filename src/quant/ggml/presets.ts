/**
 * llama.cpp's quantization presets (`llama-quantize ... Q4_K_M`): which ggml
 * type each tensor of a model gets. Learned from llama-quant.cpp of the
 * llama.cpp that node-llama-cpp 3.21.1 ships (llama_tensor_get_type and its
 * helpers) and written here as data: a table of presets, a table of promotion
 * rules per tensor category, and the few structural steps around them
 * (tensors never quantized, manual overrides, shape fallbacks).
 *
 * Scope: the k-quant and legacy presets listed in GGUF_PRESETS for dense and
 * mixture-of-experts models; the IQ and MXFP4 presets (which need other
 * encoders) are not covered. "70B" is recognised as llama.cpp's loader does
 * for the llama architecture only (80 layers with grouped-query attention).
 */
import { GgmlTypeName, ggmlTypeById, ggmlTypeByName } from '../../formats/gguf/ggmlTypes';

/** llama_ftype values (llama.h), written to general.file_type. */
export const LLAMA_FTYPE = {
  ALL_F32: 0, MOSTLY_F16: 1, MOSTLY_Q4_0: 2, MOSTLY_Q4_1: 3, MOSTLY_Q8_0: 7, MOSTLY_Q5_0: 8, MOSTLY_Q5_1: 9,
  MOSTLY_Q2_K: 10, MOSTLY_Q3_K_S: 11, MOSTLY_Q3_K_M: 12, MOSTLY_Q3_K_L: 13, MOSTLY_Q4_K_S: 14, MOSTLY_Q4_K_M: 15,
  MOSTLY_Q5_K_S: 16, MOSTLY_Q5_K_M: 17, MOSTLY_Q6_K: 18, MOSTLY_BF16: 32,
} as const;

export type GgufPreset =
  | 'Q8_0' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q2_K' | 'Q3_K_S' | 'Q3_K_M'
  | 'Q4_K_S' | 'Q4_K_M' | 'Q5_K_S' | 'Q5_K_M' | 'Q6_K';

const PRESET_ROWS: [GgufPreset, number, GgmlTypeName][] = [
  ['Q8_0', LLAMA_FTYPE.MOSTLY_Q8_0, 'Q8_0'], ['Q4_0', LLAMA_FTYPE.MOSTLY_Q4_0, 'Q4_0'], ['Q4_1', LLAMA_FTYPE.MOSTLY_Q4_1, 'Q4_1'],
  ['Q5_0', LLAMA_FTYPE.MOSTLY_Q5_0, 'Q5_0'], ['Q5_1', LLAMA_FTYPE.MOSTLY_Q5_1, 'Q5_1'], ['Q2_K', LLAMA_FTYPE.MOSTLY_Q2_K, 'Q2_K'],
  ['Q3_K_S', LLAMA_FTYPE.MOSTLY_Q3_K_S, 'Q3_K'], ['Q3_K_M', LLAMA_FTYPE.MOSTLY_Q3_K_M, 'Q3_K'],
  ['Q4_K_S', LLAMA_FTYPE.MOSTLY_Q4_K_S, 'Q4_K'], ['Q4_K_M', LLAMA_FTYPE.MOSTLY_Q4_K_M, 'Q4_K'],
  ['Q5_K_S', LLAMA_FTYPE.MOSTLY_Q5_K_S, 'Q5_K'], ['Q5_K_M', LLAMA_FTYPE.MOSTLY_Q5_K_M, 'Q5_K'], ['Q6_K', LLAMA_FTYPE.MOSTLY_Q6_K, 'Q6_K'],
];

/** Each preset's llama_ftype and the type most tensors get. */
export const GGUF_PRESETS: Readonly<Record<GgufPreset, { ftype: number; base: GgmlTypeName }>> =
  Object.fromEntries(PRESET_ROWS.map(([p, ftype, base]) => [p, { ftype, base }])) as Record<GgufPreset, { ftype: number; base: GgmlTypeName }>;

export function isGgufPreset(s: string): s is GgufPreset {
  return Object.prototype.hasOwnProperty.call(GGUF_PRESETS, s.toUpperCase());
}

// ---------------------------------------------------------------------------
// What llama.cpp never quantizes: anything but 2-D/3-D tensors whose name ends
// in "weight", norms, and these small or position-like tensors (name fragments).

const NEVER_QUANTIZED_FRAGMENTS = [
  '_norm.weight', 'ffn_gate_inp.weight', 'ffn_gate_tid2eid.weight', 'altup', 'laurel', 'per_layer_model_proj',
  'ssm_conv1d', 'shortconv.conv.weight', 'indexer.k_proj.weight', 'indexer.q_proj.weight',
  'time_mix_first.weight', 'time_mix_w0.weight', 'time_mix_w1.weight', 'time_mix_w2.weight', 'time_mix_v0.weight',
  'time_mix_v1.weight', 'time_mix_v2.weight', 'time_mix_a0.weight', 'time_mix_a1.weight', 'time_mix_a2.weight',
  'time_mix_g1.weight', 'time_mix_g2.weight', 'time_mix_decay_w1.weight', 'time_mix_decay_w2.weight',
  'time_mix_lerp_fused.weight', 'attn_rel_b.weight', '.position_embd', 'sam.pos_embd', 'sam.neck.', 'sam.net_',
  '.rel_pos', '.patch_embd', '.patch_merger', 'a.rvq.codebook', 'mm.a.code_embd',
];
const NEVER_QUANTIZED_NAMES = ['position_embd.weight', 'token_types.weight'];

/** Why llama.cpp leaves a tensor as it is, or undefined when it may be quantized. */
export function keptReason(name: string, nDims: number, quantizeOutput = true): string | undefined {
  if (nDims < 2) return '1-D tensor';
  if (!name.endsWith('weight')) return 'not a weight';
  if (!quantizeOutput && name === 'output.weight') return 'output tensor left as is';
  if (NEVER_QUANTIZED_NAMES.includes(name)) return 'positional / token-type embedding';
  const f = NEVER_QUANTIZED_FRAGMENTS.find((s) => name.includes(s));
  return f ? `llama.cpp never quantizes "${f}" tensors` : undefined;
}

// ---------------------------------------------------------------------------
// Tensor categories (by name fragment, first match wins, as llama.cpp checks them).

export type TensorCategory =
  | 'token_embd' | 'output' | 'attn_v' | 'attn_k' | 'attn_q' | 'attn_output'
  | 'ffn_up' | 'ffn_gate' | 'ffn_down' | 'other';

const CATEGORY_RULES: [(n: string) => boolean, TensorCategory][] = [
  [(n) => n === 'output.weight', 'output'],
  [(n) => n === 'token_embd.weight' || n === 'per_layer_token_embd.weight', 'token_embd'],
  // attn_qkv and attn_kv_b are treated as attention V (the most sensitive projection).
  [(n) => n.includes('attn_qkv.weight') || n.includes('attn_kv_b.weight') || n.includes('attn_v.weight'), 'attn_v'],
  [(n) => n.includes('attn_k.weight'), 'attn_k'],
  [(n) => n.includes('attn_q.weight'), 'attn_q'],
  [(n) => n.includes('attn_output.weight'), 'attn_output'],
  [(n) => n.includes('ffn_up'), 'ffn_up'],
  [(n) => n.includes('ffn_gate'), 'ffn_gate'],
  [(n) => n.includes('ffn_down'), 'ffn_down'],
];

export function tensorCategory(name: string): TensorCategory {
  return CATEGORY_RULES.find(([m]) => m(name))?.[1] ?? 'other';
}

// ---------------------------------------------------------------------------
// Promotion rules. Each row: the category, the presets it applies to, an
// optional condition on the tensor's place in the model, and the type it gets.
// Within a category the first matching row wins, as in llama.cpp's if/else chains.

export interface RuleContext {
  arch: string;
  /** Index of this tensor among its category (attention V) or its layer (FFN), and the count. */
  i: number;
  n: number;
  nGqa: number;
  nExpert: number;
  is70B: boolean;
  hasImatrix: boolean;
}

/** llama.cpp's "more bits" layers: the first and last eighth, and every third one between. */
export function useMoreBits(i: number, n: number): boolean {
  const e = Math.trunc(n / 8);
  return i < e || i >= Math.trunc((7 * n) / 8) || (i - e) % 3 === 2;
}

type Rule = [TensorCategory, readonly GgufPreset[] | '*', ((c: RuleContext) => boolean) | null, GgmlTypeName | ((c: RuleContext) => GgmlTypeName)];

const falcon = (c: RuleContext): boolean => c.arch === 'falcon';
const firstEighth = (c: RuleContext): boolean => c.i < Math.trunc(c.n / 8);
const moreBits = (c: RuleContext): boolean => useMoreBits(c.i, c.n);

export const PROMOTION_RULES: readonly Rule[] = [
  // Attention V (then the 70B and 8-expert adjustments below).
  ['attn_v', ['Q2_K'], null, (c) => c.nGqa >= 4 ? 'Q4_K' : 'Q3_K'],
  ['attn_v', ['Q3_K_M'], null, (c) => c.i < 2 ? 'Q5_K' : 'Q4_K'],
  ['attn_v', ['Q4_K_M', 'Q5_K_M'], moreBits, 'Q6_K'],
  ['attn_v', ['Q4_K_S'], (c) => c.i < 4, 'Q5_K'],
  // Attention K: 8-expert models.
  ['attn_k', '*', (c) => c.nExpert === 8, 'Q8_0'],
  // FFN down, by layer.
  ['ffn_down', ['Q2_K'], null, 'Q3_K'],
  ['ffn_down', ['Q3_K_M'], null, (c) => c.i < Math.trunc(c.n / 16) ? 'Q5_K' : !falcon(c) || moreBits(c) ? 'Q4_K' : 'Q3_K'],
  ['ffn_down', ['Q4_K_M'], falcon, (c) => c.i < Math.trunc(c.n / 16) ? 'Q6_K' : moreBits(c) ? 'Q5_K' : 'Q4_K'],
  ['ffn_down', ['Q4_K_M'], moreBits, 'Q6_K'],
  ['ffn_down', ['Q5_K_M'], moreBits, 'Q6_K'],
  ['ffn_down', ['Q4_K_S'], (c) => !falcon(c) && firstEighth(c), 'Q5_K'],
  // Only with an imatrix, so that without one the result stays what it always was.
  ['ffn_down', ['Q4_0'], (c) => c.hasImatrix && firstEighth(c), 'Q4_1'],
  ['ffn_down', ['Q5_0'], (c) => c.hasImatrix && firstEighth(c), 'Q5_1'],
  // Attention output.
  ['attn_output', ['Q2_K', 'Q3_K_S', 'Q3_K_M', 'Q4_K_S', 'Q4_K_M'], (c) => !falcon(c) && c.nExpert === 8, 'Q5_K'],
  ['attn_output', ['Q2_K'], (c) => !falcon(c) && c.nExpert !== 8, 'Q3_K'],
  ['attn_output', ['Q3_K_M'], (c) => !falcon(c) && c.nExpert !== 8, 'Q4_K'],
];

/** Shape fallbacks when a row is not a whole number of the chosen type's blocks. */
const FALLBACK: Partial<Record<GgmlTypeName, GgmlTypeName>> = {
  Q2_K: 'Q4_0', Q3_K: 'Q4_0', Q4_K: 'Q5_0', Q5_K: 'Q5_1', Q6_K: 'Q8_0',
};

// ---------------------------------------------------------------------------

export interface ModelShapeInfo {
  arch: string;
  nLayer: number;
  nHead: number;
  nHeadKv: number;
  nExpert: number;
}

/** Architecture facts the rules need, from GGUF metadata (`{arch}.block_count`, head counts, expert count). */
export function modelShapeInfo(metadata: Record<string, unknown>): ModelShapeInfo {
  const arch = String(metadata['general.architecture'] ?? '');
  const num = (k: string, dflt: number): number => {
    const v = metadata[`${arch}.${k}`];
    const x = Array.isArray(v) ? v[0] : v;
    return typeof x === 'number' ? x : typeof x === 'bigint' ? Number(x) : dflt;
  };
  const nHead = num('attention.head_count', 0);
  return {
    arch, nLayer: num('block_count', 0), nHead, nHeadKv: num('attention.head_count_kv', nHead), nExpert: num('expert_count', 0),
  };
}

export interface TensorTypeOverride {
  /** Matched anywhere in the name (std::regex_search); the first matching override wins. */
  pattern: RegExp;
  type: GgmlTypeName;
}

export interface PlanOptions {
  pure?: boolean;
  tensorTypes?: TensorTypeOverride[];
  outputTensorType?: GgmlTypeName;
  tokenEmbeddingType?: GgmlTypeName;
  /** llama.cpp's --leave-output-tensor is quantizeOutput: false. */
  quantizeOutput?: boolean;
  hasImatrix?: boolean;
}

export interface PlannedTensor {
  name: string;
  /** Dims in ggml order (ne[0] first). */
  ne: number[];
  from: GgmlTypeName;
  to: GgmlTypeName;
  /** Why `to` (the preset's base type, a promotion, an override, a fallback, or why it is kept). */
  reason: string;
}

/**
 * The order llama.cpp walks (and writes) tensors: non-layer tensors first,
 * then by layer number, by name within each. The promotion counters depend on it.
 */
export function llamaTensorOrder(a: string, b: string): number {
  const la = layerOf(a) ?? -1, lb = layerOf(b) ?? -1;
  if (la !== lb) return la - lb;
  return a < b ? -1 : a > b ? 1 : 0;
}

function layerOf(name: string): number | undefined {
  const m = /^blk\.(-?\d+)\./.exec(name);
  return m ? parseInt(m[1], 10) : undefined;
}

function blockSize(t: GgmlTypeName): number {
  return ggmlTypeByName(t)!.blockSize;
}

/**
 * The ggml type llama.cpp's quantizer gives each tensor for `preset`, in
 * llama.cpp's tensor order. `tensors` carry ggml dims (ne[0] first) and the
 * source type id.
 */
export function planGgufTypes(
  metadata: Record<string, unknown>, tensors: readonly { name: string; ne: number[]; type: number }[],
  preset: GgufPreset, opts: PlanOptions = {},
): PlannedTensor[] {
  const p = GGUF_PRESETS[preset];
  if (!p) throw new RangeError(`unknown GGUF preset ${preset} (known: ${Object.keys(GGUF_PRESETS).join(', ')})`);
  const shape = modelShapeInfo(metadata);
  const ordered = [...tensors].sort((a, b) => llamaTensorOrder(a.name, b.name));
  const nAttnV = ordered.filter((t) => tensorCategory(t.name) === 'attn_v').length;
  const tied = !ordered.some((t) => t.name === 'output.weight');
  const counters: Partial<Record<TensorCategory, number>> = {};
  const layerCount = shape.nLayer;
  const base = p.base;

  return ordered.map((t): PlannedTensor => {
    const fromInfo = ggmlTypeById(t.type);
    if (!fromInfo) throw new RangeError(`tensor ${t.name}: unknown ggml type ${t.type}`);
    const from = fromInfo.name;
    const out = (to: GgmlTypeName, reason: string): PlannedTensor => ({ name: t.name, ne: t.ne, from, to, reason });
    const kept = keptReason(t.name, t.ne.length, opts.quantizeOutput ?? true);
    if (kept) return out(from, kept);
    const cat = tensorCategory(t.name);
    if (opts.tokenEmbeddingType && cat === 'token_embd') {
      const named = t.name === 'per_layer_token_embd.weight' && (opts.tensorTypes ?? []).some((o) => o.pattern.test(t.name));
      if (!named) return out(opts.tokenEmbeddingType, 'token embedding type option');
    }
    if (opts.outputTensorType && cat === 'output') return out(opts.outputTensorType, 'output tensor type option');

    let to: GgmlTypeName = base;
    let reason = `${preset} base type`;
    const manual = (opts.tensorTypes ?? []).find((o) => o.pattern.test(t.name));
    if (manual) {
      to = manual.type;
      reason = `--tensor-type ${manual.pattern.source}=${manual.type}`;
    } else if (!opts.pure) {
      [to, reason] = promote(t, cat, to, reason);
    }
    const fb = fallback(t, to);
    if (fb !== to) {
      reason = `${reason}; row of ${t.ne[0]} is not a whole number of ${to} blocks, falls back to ${fb}`;
      to = fb;
    }
    return out(to, reason);
  });

  function promote(t: { name: string; ne: number[] }, cat: TensorCategory, to: GgmlTypeName, reason: string): [GgmlTypeName, string] {
    const c = (i: number, n: number): RuleContext => ({
      arch: shape.arch, i, n, nGqa: shape.nHeadKv ? Math.trunc(shape.nHead / shape.nHeadKv) : 0, nExpert: shape.nExpert,
      is70B: shape.arch === 'llama' && shape.nLayer === 80 && shape.nHead !== shape.nHeadKv, hasImatrix: !!opts.hasImatrix,
    });
    if (cat === 'output' || (tied && cat === 'token_embd')) {
      if (opts.outputTensorType) return [opts.outputTensorType, 'output tensor type option (tied embeddings)'];
      if (shape.arch === 'falcon' || t.ne[0] % blockSize(to) !== 0) return ['Q8_0', 'output: Q8_0 (falcon, or rows not whole blocks)'];
      if (to !== 'Q8_0') return ['Q6_K', `${cat === 'output' ? 'output' : 'tied token embedding'}: Q6_K`];
      return [to, reason];
    }
    if (cat === 'token_embd') return [to, reason];
    const counted = cat === 'attn_v' || cat === 'ffn_down' || cat === 'ffn_gate' || cat === 'ffn_up';
    let i = counters[cat] ?? 0;
    let n = cat === 'attn_v' ? nAttnV : layerCount;
    if (counted && cat !== 'attn_v' && shape.nExpert > 1) {
      // Expert FFNs are not stored layer by layer in order, so take the layer from the name.
      const l = layerOf(t.name);
      if (l === undefined || l < 0 || l >= layerCount) throw new RangeError(`tensor ${t.name}: cannot tell its layer (0..${layerCount - 1})`);
      i = l;
      n = layerCount;
    }
    const ctx = c(i, n);
    for (const [rc, presets, when, type] of PROMOTION_RULES) {
      if (rc !== cat || (presets !== '*' && !presets.includes(preset))) continue;
      if (when && !when(ctx)) continue;
      to = typeof type === 'function' ? type(ctx) : type;
      reason = `${cat} promotion (${preset}, ${cat === 'attn_v' ? 'attention V' : 'layer'} ${ctx.i} of ${ctx.n})`;
      break;
    }
    if (cat === 'attn_v') {
      if (ctx.is70B && (to === 'Q3_K' || to === 'Q4_K')) { to = 'Q5_K'; reason = 'attn_v of a 70B model: Q5_K'; }
      if (shape.nExpert === 8) { to = 'Q8_0'; reason = 'attn_v of an 8-expert model: Q8_0'; }
    }
    if (counted) counters[cat] = (counters[cat] ?? 0) + 1;
    return [to, reason];
  }
}

function fallback(t: { name: string; ne: number[] }, to: GgmlTypeName): GgmlTypeName {
  const ncols = t.ne[0];
  const info = ggmlTypeByName(to)!;
  if (!info.quantized || ncols % info.blockSize === 0) return to;
  let r: GgmlTypeName = to;
  if (info.blockSize > 32) {
    const f = FALLBACK[to];
    if (!f) throw new RangeError(`tensor ${t.name}: no fallback type for ${to} (row of ${ncols})`);
    r = f;
  }
  return ncols % blockSize(r) === 0 ? r : 'F16';
}

/** Parse `REGEX=TYPE` (llama-quantize's --tensor-type); the type is a ggml type name. */
export function parseTensorTypeOverride(s: string): TensorTypeOverride {
  const eq = s.lastIndexOf('=');
  if (eq <= 0) throw new RangeError(`--tensor-type ${s}: expected REGEX=TYPE`);
  const pat = s.slice(0, eq), typeName = s.slice(eq + 1).toUpperCase();
  const info = ggmlTypeByName(typeName);
  if (!info) throw new RangeError(`--tensor-type ${s}: unknown ggml type ${typeName}`);
  let re: RegExp;
  try {
    re = new RegExp(pat);
  } catch (e) {
    throw new RangeError(`--tensor-type ${s}: bad regular expression (${(e as Error).message})`);
  }
  return { pattern: re, type: info.name };
}

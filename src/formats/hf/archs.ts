/**
 * Hugging Face architectures → llama.cpp's GGUF conventions: per architecture
 * the GGUF architecture name, its hyperparameter keys, and each HF tensor's
 * GGUF name and the reshuffle its values need. Learned from llama.cpp's
 * convert_hf_to_gguf.py and gguf-py constants; llama.cpp's loader is what the
 * names, shapes and keys must satisfy (the tests load every output in it).
 *
 * - Llama and Mistral (written as `llama`): q_proj/k_proj rows are permuted
 *   from HF's rotate-half rope layout to llama.cpp's interleaved pairs.
 * - Qwen2: llama's names plus q/k/v biases; rope stays rotate-half (NEOX), no permutation.
 * - GPT-2: Conv1D weights are stored [in, out] and are transposed; c_attn is
 *   the fused qkv projection, written as attn_qkv.
 */
import { FormatError, TensorInfo } from '../types';
import { GgufValueType } from '../gguf/reader';
import type { GgufKv } from '../gguf/writer';
import type { HfCheckpoint } from './checkpoint';

export type SourceFloat = 'F32' | 'F16' | 'BF16';

/** How an output tensor's values come from the checkpoint. */
export type TensorSource =
  | { kind: 'hf'; name: string; info: TensorInfo; reshape?: { permuteHeads: number } | { transpose: true } }
  | { kind: 'values'; values: Float32Array };

export interface GgufTensorSpec {
  /** GGUF tensor name. */
  name: string;
  /** ggml dims, ne[0] (row length) first. */
  ne: number[];
  /** The source's float type (F32 for computed tensors). */
  srcType: SourceFloat;
  source: TensorSource;
}

export interface MappedModel {
  /** general.architecture. */
  arch: string;
  /** general.* and `<arch>.*` keys, without tokenizer and file-type keys. */
  kvs: GgufKv[];
  tensors: GgufTensorSpec[];
  /** Rows of the token embedding: the tokenizer must list exactly this many tokens. */
  nVocab: number;
  /** HF tensors deliberately not written (rope caches, attention masks). */
  skipped: string[];
}

const u32 = (key: string, value: number): GgufKv => ({ key, type: GgufValueType.UINT32, value });
const f32 = (key: string, value: number): GgufKv => ({ key, type: GgufValueType.FLOAT32, value });
const str = (key: string, value: string): GgufKv => ({ key, type: GgufValueType.STRING, value });

/** Typed reads of config.json values, each error naming the file and key. */
class Config {
  constructor(readonly file: string, readonly c: Record<string, unknown>) {}
  has(key: string): boolean {
    return this.c[key] !== undefined && this.c[key] !== null;
  }
  int(key: string, fallback?: number, min = 1): number {
    const v = this.has(key) ? this.c[key] : fallback;
    if (v === undefined) throw new FormatError(this.file, key, 'missing');
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > 2 ** 31) throw new FormatError(this.file, key, `must be an integer in ${min}..2^31, got ${JSON.stringify(v)}`);
    return v;
  }
  num(key: string, fallback?: number): number {
    const v = this.has(key) ? this.c[key] : fallback;
    if (v === undefined) throw new FormatError(this.file, key, 'missing');
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new FormatError(this.file, key, `must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  }
}

/** HF `architectures[0]` (or `model_type`) → the mapper. */
const ARCHS: Record<string, (ck: HfCheckpoint) => MappedModel> = {
  LlamaForCausalLM: (ck) => llamaFamily(ck, 'llama', true),
  llama: (ck) => llamaFamily(ck, 'llama', true),
  MistralForCausalLM: (ck) => llamaFamily(ck, 'llama', true),
  mistral: (ck) => llamaFamily(ck, 'llama', true),
  Qwen2ForCausalLM: (ck) => llamaFamily(ck, 'qwen2', false),
  qwen2: (ck) => llamaFamily(ck, 'qwen2', false),
  GPT2LMHeadModel: gpt2,
  gpt2: gpt2,
};

export const SUPPORTED_ARCHITECTURES = ['LlamaForCausalLM', 'MistralForCausalLM', 'Qwen2ForCausalLM', 'GPT2LMHeadModel'];

export function mapHfModel(ck: HfCheckpoint): MappedModel {
  const f = Object.prototype.hasOwnProperty.call(ARCHS, ck.architecture) ? ARCHS[ck.architecture] : undefined;
  if (!f) throw new FormatError(ck.configPath, 'architectures', `${ck.architecture} is not supported (supported: ${SUPPORTED_ARCHITECTURES.join(', ')})`);
  return f(ck);
}

function srcFloat(ck: HfCheckpoint, t: TensorInfo): SourceFloat {
  if (t.dtype === 'f32') return 'F32';
  if (t.dtype === 'f16') return 'F16';
  if (t.dtype === 'bf16') return 'BF16';
  throw new FormatError(t.location.kind === 'disk' ? t.location.file : ck.dir, `tensor ${t.name}`, `dtype ${t.dtype} cannot be converted (F32, F16 and BF16 can)`);
}

/** Collects output tensors, checking each HF tensor's shape and that none is left unmapped. */
class TensorMap {
  readonly out: GgufTensorSpec[] = [];
  private used = new Set<string>();
  constructor(readonly ck: HfCheckpoint) {}
  where(name: string): string {
    const t = this.ck.tensors.get(name);
    return t && t.location.kind === 'disk' ? t.location.file : this.ck.dir;
  }
  has(name: string): boolean {
    return this.ck.tensors.has(name);
  }
  /** Map HF `hf` ([rows, cols] in HF order) to GGUF `name`; `shape` is the expected HF shape. */
  add(hf: string, name: string, shape: number[], reshape?: { permuteHeads: number } | { transpose: true }): void {
    const info = this.ck.tensors.get(hf);
    if (!info) throw new FormatError(this.ck.dir, `tensor ${hf}`, `missing from the checkpoint (needed for ${name})`);
    if (info.shape.join() !== shape.join()) {
      throw new FormatError(this.where(hf), `tensor ${hf}`, `shape [${info.shape.join(', ')}], config.json implies [${shape.join(', ')}]`);
    }
    this.used.add(hf);
    const outShape = reshape && 'transpose' in reshape ? [shape[1], shape[0]] : shape;
    this.out.push({ name, ne: [...outShape].reverse(), srcType: srcFloat(this.ck, info), source: { kind: 'hf', name: hf, info, reshape } });
  }
  optional(hf: string, name: string, shape: number[], reshape?: { permuteHeads: number } | { transpose: true }): boolean {
    if (!this.has(hf)) return false;
    this.add(hf, name, shape, reshape);
    return true;
  }
  values(name: string, values: Float32Array): void {
    this.out.push({ name, ne: [values.length], srcType: 'F32', source: { kind: 'values', values } });
  }
  /** Every HF tensor must be mapped or match `ignore`; anything else is a checkpoint this code does not understand. */
  finish(ignore: RegExp): string[] {
    const skipped: string[] = [];
    for (const name of this.ck.tensors.keys()) {
      if (this.used.has(name)) continue;
      if (ignore.test(name)) { skipped.push(name); continue; }
      throw new FormatError(this.where(name), `tensor ${name}`, `has no GGUF counterpart for ${this.ck.architecture}`);
    }
    return skipped;
  }
}

function modelName(ck: HfCheckpoint): string {
  const n = ck.config._name_or_path;
  return typeof n === 'string' && n.trim() ? n.trim().split('/').pop()! : ck.dir.split(/[\\/]/).filter(Boolean).pop() ?? 'model';
}

function llamaFamily(ck: HfCheckpoint, arch: 'llama' | 'qwen2', permute: boolean): MappedModel {
  const c = new Config(ck.configPath, ck.config);
  const nEmbd = c.int('hidden_size');
  const nLayer = c.int('num_hidden_layers');
  const nHead = c.int('num_attention_heads');
  const nHeadKv = c.int('num_key_value_heads', nHead);
  const nFf = c.int('intermediate_size');
  const headDim = c.int('head_dim', Math.floor(nEmbd / nHead));
  if (nHead % nHeadKv !== 0) throw new FormatError(ck.configPath, 'num_key_value_heads', `${nHeadKv} does not divide num_attention_heads ${nHead}`);
  if (headDim % 2 !== 0) throw new FormatError(ck.configPath, 'head_dim', `${headDim} is odd; rope needs pairs`);
  const ropeTheta = c.num('rope_theta', 10000);
  const tm = new TensorMap(ck);
  const embd = ck.tensors.get('model.embed_tokens.weight');
  if (!embd) throw new FormatError(ck.dir, 'tensor model.embed_tokens.weight', 'missing from the checkpoint');
  const nVocab = embd.shape[0];
  if (c.has('vocab_size') && c.int('vocab_size') !== nVocab) {
    throw new FormatError(ck.configPath, 'vocab_size', `${c.int('vocab_size')}, but model.embed_tokens.weight has ${nVocab} rows`);
  }
  const kvs: GgufKv[] = [
    str('general.architecture', arch),
    str('general.name', modelName(ck)),
    u32(`${arch}.block_count`, nLayer),
    u32(`${arch}.context_length`, c.int('max_position_embeddings', 4096)),
    u32(`${arch}.embedding_length`, nEmbd),
    u32(`${arch}.feed_forward_length`, nFf),
    u32(`${arch}.attention.head_count`, nHead),
    u32(`${arch}.attention.head_count_kv`, nHeadKv),
    f32(`${arch}.rope.freq_base`, ropeTheta),
    f32(`${arch}.attention.layer_norm_rms_epsilon`, c.num('rms_norm_eps', 1e-6)),
    u32(`${arch}.vocab_size`, nVocab),
    u32(`${arch}.rope.dimension_count`, headDim),
  ];
  if (headDim * nHead !== nEmbd) kvs.push(u32(`${arch}.attention.key_length`, headDim), u32(`${arch}.attention.value_length`, headDim));
  const ropeFreqs = ropeScaling(ck, arch, headDim, ropeTheta, kvs);

  tm.add('model.embed_tokens.weight', 'token_embd.weight', [nVocab, nEmbd]);
  tm.add('model.norm.weight', 'output_norm.weight', [nEmbd]);
  tm.optional('lm_head.weight', 'output.weight', [nVocab, nEmbd]);
  if (ropeFreqs) tm.values('rope_freqs.weight', ropeFreqs);
  for (let i = 0; i < nLayer; i++) {
    const p = `model.layers.${i}.`, b = `blk.${i}.`;
    tm.add(`${p}input_layernorm.weight`, `${b}attn_norm.weight`, [nEmbd]);
    tm.add(`${p}self_attn.q_proj.weight`, `${b}attn_q.weight`, [nHead * headDim, nEmbd], permute ? { permuteHeads: nHead } : undefined);
    tm.add(`${p}self_attn.k_proj.weight`, `${b}attn_k.weight`, [nHeadKv * headDim, nEmbd], permute ? { permuteHeads: nHeadKv } : undefined);
    tm.add(`${p}self_attn.v_proj.weight`, `${b}attn_v.weight`, [nHeadKv * headDim, nEmbd]);
    tm.add(`${p}self_attn.o_proj.weight`, `${b}attn_output.weight`, [nEmbd, nHead * headDim]);
    if (arch === 'qwen2') {
      tm.add(`${p}self_attn.q_proj.bias`, `${b}attn_q.bias`, [nHead * headDim]);
      tm.add(`${p}self_attn.k_proj.bias`, `${b}attn_k.bias`, [nHeadKv * headDim]);
      tm.add(`${p}self_attn.v_proj.bias`, `${b}attn_v.bias`, [nHeadKv * headDim]);
    }
    tm.add(`${p}post_attention_layernorm.weight`, `${b}ffn_norm.weight`, [nEmbd]);
    tm.add(`${p}mlp.gate_proj.weight`, `${b}ffn_gate.weight`, [nFf, nEmbd]);
    tm.add(`${p}mlp.up_proj.weight`, `${b}ffn_up.weight`, [nFf, nEmbd]);
    tm.add(`${p}mlp.down_proj.weight`, `${b}ffn_down.weight`, [nEmbd, nFf]);
  }
  const skipped = tm.finish(/(^|\.)rotary_emb\.inv_freq$/);
  return { arch, kvs, tensors: tm.out, nVocab, skipped };
}

/**
 * rope_scaling: linear and yarn become `rope.scaling.*` keys; Llama 3's
 * `llama3` becomes a rope_freqs tensor of per-dimension frequency divisors,
 * computed as llama.cpp's converter does from the four llama3 settings.
 */
function ropeScaling(ck: HfCheckpoint, arch: string, headDim: number, base: number, kvs: GgufKv[]): Float32Array | undefined {
  const rs = ck.config.rope_scaling;
  if (rs === undefined || rs === null) return undefined;
  if (typeof rs !== 'object' || Array.isArray(rs)) throw new FormatError(ck.configPath, 'rope_scaling', 'is not an object');
  const r = new Config(ck.configPath, rs as Record<string, unknown>);
  const type = (rs as Record<string, unknown>).rope_type ?? (rs as Record<string, unknown>).type;
  const factor = (): number => {
    try { return r.num('factor'); } catch (e) { throw new FormatError(ck.configPath, 'rope_scaling.factor', (e as FormatError).problem); }
  };
  switch (type) {
    case 'default':
      return undefined;
    case 'linear':
      kvs.push(str(`${arch}.rope.scaling.type`, 'linear'), f32(`${arch}.rope.scaling.factor`, factor()));
      return undefined;
    case 'yarn': {
      kvs.push(str(`${arch}.rope.scaling.type`, 'yarn'), f32(`${arch}.rope.scaling.factor`, factor()));
      const orig = (rs as Record<string, unknown>).original_max_position_embeddings;
      if (orig !== undefined) {
        if (typeof orig !== 'number' || !Number.isSafeInteger(orig) || orig <= 0) throw new FormatError(ck.configPath, 'rope_scaling.original_max_position_embeddings', `must be a positive integer, got ${JSON.stringify(orig)}`);
        kvs.push(u32(`${arch}.rope.scaling.original_context_length`, orig));
      }
      return undefined;
    }
    case 'llama3': {
      if (arch !== 'llama') throw new FormatError(ck.configPath, 'rope_scaling.rope_type', `llama3 scaling on ${arch} is not supported`);
      const f = factor();
      const low = r.num('low_freq_factor', 1), high = r.num('high_freq_factor', 4);
      const oldCtx = r.num('original_max_position_embeddings', 8192);
      if (!(high > low)) throw new FormatError(ck.configPath, 'rope_scaling', `high_freq_factor ${high} must exceed low_freq_factor ${low}`);
      const lowWavelen = oldCtx / low, highWavelen = oldCtx / high;
      const out = new Float32Array(headDim / 2);
      for (let i = 0; i < out.length; i++) {
        const freq = 1 / base ** ((2 * i) / headDim);
        const wavelen = (2 * Math.PI) / freq;
        if (wavelen < highWavelen) out[i] = 1;
        else if (wavelen > lowWavelen) out[i] = f;
        else {
          const smooth = (oldCtx / wavelen - low) / (high - low);
          out[i] = 1 / ((1 - smooth) / f + smooth);
        }
      }
      return out;
    }
    default:
      throw new FormatError(ck.configPath, 'rope_scaling', `type ${JSON.stringify(type)} is not supported (linear, yarn, llama3)`);
  }
}

function gpt2(ck: HfCheckpoint): MappedModel {
  const c = new Config(ck.configPath, ck.config);
  const nEmbd = c.int('n_embd');
  const nLayer = c.int('n_layer');
  const nHead = c.int('n_head');
  const nCtx = c.int('n_positions', c.has('n_ctx') ? c.int('n_ctx') : undefined);
  const nFf = c.has('n_inner') ? c.int('n_inner') : 4 * nEmbd;
  if (nEmbd % nHead !== 0) throw new FormatError(ck.configPath, 'n_head', `${nHead} does not divide n_embd ${nEmbd}`);
  const tm = new TensorMap(ck);
  // Checkpoints saved from GPT2LMHeadModel carry a "transformer." prefix; the hub's gpt2 does not.
  const pre = tm.has('transformer.wte.weight') ? 'transformer.' : '';
  const wte = ck.tensors.get(`${pre}wte.weight`);
  if (!wte) throw new FormatError(ck.dir, 'tensor wte.weight', 'missing from the checkpoint');
  const nVocab = wte.shape[0];
  if (c.has('vocab_size') && c.int('vocab_size') !== nVocab) throw new FormatError(ck.configPath, 'vocab_size', `${c.int('vocab_size')}, but wte.weight has ${nVocab} rows`);
  const kvs: GgufKv[] = [
    str('general.architecture', 'gpt2'),
    str('general.name', modelName(ck)),
    u32('gpt2.block_count', nLayer),
    u32('gpt2.context_length', nCtx),
    u32('gpt2.embedding_length', nEmbd),
    u32('gpt2.feed_forward_length', nFf),
    u32('gpt2.attention.head_count', nHead),
    f32('gpt2.attention.layer_norm_epsilon', c.num('layer_norm_epsilon', 1e-5)),
  ];
  const T = { transpose: true } as const;
  tm.add(`${pre}wte.weight`, 'token_embd.weight', [nVocab, nEmbd]);
  tm.add(`${pre}wpe.weight`, 'position_embd.weight', [nCtx, nEmbd]);
  tm.add(`${pre}ln_f.weight`, 'output_norm.weight', [nEmbd]);
  tm.add(`${pre}ln_f.bias`, 'output_norm.bias', [nEmbd]);
  tm.optional('lm_head.weight', 'output.weight', [nVocab, nEmbd]);
  for (let i = 0; i < nLayer; i++) {
    const p = `${pre}h.${i}.`, b = `blk.${i}.`;
    tm.add(`${p}ln_1.weight`, `${b}attn_norm.weight`, [nEmbd]);
    tm.add(`${p}ln_1.bias`, `${b}attn_norm.bias`, [nEmbd]);
    tm.add(`${p}attn.c_attn.weight`, `${b}attn_qkv.weight`, [nEmbd, 3 * nEmbd], T);
    tm.add(`${p}attn.c_attn.bias`, `${b}attn_qkv.bias`, [3 * nEmbd]);
    tm.add(`${p}attn.c_proj.weight`, `${b}attn_output.weight`, [nEmbd, nEmbd], T);
    tm.add(`${p}attn.c_proj.bias`, `${b}attn_output.bias`, [nEmbd]);
    tm.add(`${p}ln_2.weight`, `${b}ffn_norm.weight`, [nEmbd]);
    tm.add(`${p}ln_2.bias`, `${b}ffn_norm.bias`, [nEmbd]);
    tm.add(`${p}mlp.c_fc.weight`, `${b}ffn_up.weight`, [nEmbd, nFf], T);
    tm.add(`${p}mlp.c_fc.bias`, `${b}ffn_up.bias`, [nFf]);
    tm.add(`${p}mlp.c_proj.weight`, `${b}ffn_down.weight`, [nFf, nEmbd], T);
    tm.add(`${p}mlp.c_proj.bias`, `${b}ffn_down.bias`, [nEmbd]);
  }
  // The causal-mask buffers some GPT-2 checkpoints carry.
  const skipped = tm.finish(/(^|\.)h\.\d+\.attn\.(masked_)?bias$/);
  return { arch: 'gpt2', kvs, tensors: tm.out, nVocab, skipped };
}

/**
 * The whole tensor's values in GGUF layout (row-major over ne reversed), as float32.
 * `read` gives elements [start, start+count) of the HF tensor as float32.
 */
export function gatherTensor(spec: GgufTensorSpec, read: (info: TensorInfo, start: number, count: number) => Float32Array): Float32Array {
  const s = spec.source;
  if (s.kind === 'values') return s.values;
  const x = read(s.info, 0, s.info.numel);
  if (!s.reshape) return x;
  const [rows, cols] = s.info.shape;
  const out = new Float32Array(x.length);
  if ('transpose' in s.reshape) {
    for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) out[k * rows + r] = x[r * cols + k];
    return out;
  }
  const hd = rows / s.reshape.permuteHeads;
  for (let r = 0; r < rows; r++) {
    const src = ropeSourceRow(r, hd);
    out.set(x.subarray(src * cols, (src + 1) * cols), r * cols);
  }
  return out;
}

/**
 * The Hugging Face row that llama.cpp's row `r` of a q/k projection comes
 * from, for heads of `headRows` rows: HF keeps each head's rope pairs as
 * (i, i + d/2), llama.cpp wants them adjacent (2i, 2i+1). Rows move only
 * within their head.
 */
export function ropeSourceRow(r: number, headRows: number): number {
  const w = r % headRows;
  return r - w + (w & 1) * (headRows / 2) + (w >> 1);
}

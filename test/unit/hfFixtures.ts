/**
 * Small Hugging Face checkpoints generated for the tests: config.json, random
 * weights in safetensors (written here, optionally sharded with an index),
 * and a real tokenizer.json trained here on licence text by a tiny BPE
 * trainer: byte-level (GPT-2 / Llama 3 / Qwen2 split regexes) or
 * SentencePiece-style (▁ for spaces, <0xNN> byte fallback, Llama 2 /
 * Mistral). Also float64 reference forward passes of each architecture,
 * written from the HF definitions, for the logits checks.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { LLAMA3_SPLIT, QWEN2_SPLIT } from '../../src/formats/hf/tokenizer';
import { f32ToBf16, f32ToF16, bf16ToF32, f16ToF32 } from '../../src/formats/dtypes';

// ---------------------------------------------------------------------------
// Text

const EXTRA = [
  'The quick brown fox jumps over the lazy dog. 0123456789 and 12345 more numbers: 3.14159, 2,718.',
  "It's, they're, we've, I'm, you'll, he'd; DON'T SHOUT! \"quotes\" (parens) [brackets] {braces} <angles>",
  'Café crème, naïve façade, Zürich, São Paulo, Kraków. Ελληνικά, русский текст, 日本語のテキスト, 中文, 한국어.',
  'Emoji 🙂🚀 and tabs\tand\nnew lines\n\n  indented   spaces   here.  ',
  'def main():\n    return {"key": [1, 2, 3]}  # code-like text\n',
];

export function corpus(): string {
  const parts: string[] = [];
  for (const f of ['/usr/share/common-licenses/Apache-2.0', '/usr/share/common-licenses/MPL-2.0']) {
    try { parts.push(fs.readFileSync(f, 'utf8')); } catch { /* not on this machine: the built-in text still trains a tokenizer */ }
  }
  parts.push(...EXTRA, ...EXTRA);
  return parts.join('\n');
}

/** A few hundred test strings: lines and pieces of the corpus and of text it never saw. */
export function testStrings(n = 300): string[] {
  const c = corpus();
  const lines = c.split('\n').filter((l) => l.trim());
  const out: string[] = [...EXTRA, ' leading space', 'trailing space ', '  two leading', 'a', ' ', 'x y z', 'ünïcödé 😀 mixed ASCII', '1234567', "'s 're 've"];
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  while (out.length < n) {
    const l = lines[Math.floor(rnd() * lines.length)];
    const a = Math.floor(rnd() * l.length), b = Math.min(l.length, a + 1 + Math.floor(rnd() * 60));
    out.push(rnd() < 0.5 ? l : l.slice(a, b));
  }
  return out.slice(0, n);
}

// ---------------------------------------------------------------------------
// BPE training

/** GPT-2's map of bytes to printable characters. */
export function bytesToUnicode(): string[] {
  const bs: number[] = [];
  for (let i = 33; i <= 126; i++) bs.push(i);
  for (let i = 161; i <= 172; i++) bs.push(i);
  for (let i = 174; i <= 255; i++) bs.push(i);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) if (!bs.includes(b)) { bs.push(b); cs.push(256 + n++); }
  const map = new Array<string>(256);
  bs.forEach((b, i) => { map[b] = String.fromCodePoint(cs[i]); });
  return map;
}

/** Merges learned greedily from word counts; ties go to the smaller pair string, so training is deterministic. */
function learnMerges(words: Map<string, number>, split: (w: string) => string[], nMerges: number): [string, string][] {
  const seqs = [...words].map(([w, c]) => ({ s: split(w), c }));
  const merges: [string, string][] = [];
  for (let m = 0; m < nMerges; m++) {
    const counts = new Map<string, number>();
    for (const { s, c } of seqs) for (let i = 0; i + 1 < s.length; i++) {
      const k = `${s[i]}\u0000${s[i + 1]}`;
      counts.set(k, (counts.get(k) ?? 0) + c);
    }
    let best = '', bc = 1;
    for (const [k, c] of counts) if (c > bc || (c === bc && best && k < best)) { best = k; bc = c; }
    if (!best) break;
    const [a, b] = best.split('\u0000');
    merges.push([a, b]);
    for (const q of seqs) {
      const o: string[] = [];
      for (let i = 0; i < q.s.length; i++) {
        if (i + 1 < q.s.length && q.s[i] === a && q.s[i + 1] === b) { o.push(a + b); i++; } else o.push(q.s[i]);
      }
      q.s = o;
    }
  }
  return merges;
}

export type ByteLevelStyle = 'llama3' | 'qwen2' | 'gpt2';

const JS_SPLITS: Record<ByteLevelStyle, RegExp> = {
  llama3: /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu,
  qwen2: /(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+/gu,
  gpt2: /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu,
};

export interface TokenizerFiles { tokenizer: object; config: object; nTokens: number }

const SPECIAL = (id: number, content: string, special = true) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special });

/** A byte-level BPE tokenizer.json in the style of GPT-2, Llama 3 or Qwen2, trained on `text`. */
export function byteLevelTokenizer(style: ByteLevelStyle, text: string, nMerges: number): TokenizerFiles {
  const b2u = bytesToUnicode();
  const enc = new TextEncoder();
  const words = new Map<string, number>();
  for (const m of text.matchAll(JS_SPLITS[style])) {
    const w = [...enc.encode(m[0])].map((b) => b2u[b]).join('');
    words.set(w, (words.get(w) ?? 0) + 1);
  }
  const merges = learnMerges(words, (w) => [...w], nMerges);
  const vocab: Record<string, number> = {};
  b2u.forEach((c, i) => { vocab[c] = i; });
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = Object.keys(vocab).length;
  let next = Object.keys(vocab).length;
  const specials = style === 'llama3' ? ['<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>'] : style === 'qwen2' ? ['<|endoftext|>', '<|im_start|>', '<|im_end|>'] : ['<|endoftext|>'];
  const added = specials.map((s) => SPECIAL(next++, s));
  const preTokenizer = style === 'gpt2'
    ? { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }
    : { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: style === 'llama3' ? LLAMA3_SPLIT : QWEN2_SPLIT }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    ] };
  const tokenizer = {
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer: null, pre_tokenizer: preTokenizer,
    post_processor: null, decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false,
      byte_fallback: false, ignore_merges: style === 'llama3', vocab, merges: merges.map(([a, b]) => `${a} ${b}`),
    },
  };
  const config = style === 'llama3'
    ? { bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>', add_bos_token: true, chat_template: "{% for m in messages %}<|start|>{{ m['role'] }}\n{{ m['content'] }}<|eot_id|>{% endfor %}" }
    : style === 'qwen2'
      ? { bos_token: null, eos_token: '<|im_end|>', pad_token: '<|endoftext|>', chat_template: "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}" }
      : { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>' };
  return { tokenizer, config, nTokens: next };
}

/** A SentencePiece-style BPE tokenizer.json (▁ for spaces, <0xNN> byte fallback), like Llama 2 and Mistral's. */
export function sentencePieceTokenizer(text: string, nMerges: number, minCharCount = 3): TokenizerFiles {
  const norm = (s: string) => `▁${s.replace(/ /g, '▁')}`;
  const words = new Map<string, number>();
  for (const line of text.split('\n')) {
    for (const m of norm(line).matchAll(/▁*[^▁]+|▁+/gu)) words.set(m[0], (words.get(m[0]) ?? 0) + 1);
  }
  const charCount = new Map<string, number>();
  for (const [w, c] of words) for (const ch of w) charCount.set(ch, (charCount.get(ch) ?? 0) + c);
  const chars = [...charCount].filter(([, c]) => c >= minCharCount).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).map(([ch]) => ch);
  const known = new Set(chars);
  // Rare characters are left to byte fallback, as SentencePiece does.
  const merges = learnMerges(words, (w) => [...w].map((ch) => (known.has(ch) ? ch : '\u0001')), nMerges).filter(([a, b]) => !a.includes('\u0001') && !b.includes('\u0001'));
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  for (const ch of chars) vocab[ch] = Object.keys(vocab).length;
  for (const [a, b] of merges) if (!(a + b in vocab)) vocab[a + b] = Object.keys(vocab).length;
  // Every split of every piece into two pieces, by the piece's rank (its id): what SentencePiece's BPE merges by score.
  const pieces = Object.entries(vocab).filter(([t, id]) => id >= 259 + chars.length && [...t].length > 1).sort((a, b) => a[1] - b[1]);
  const mergeList: string[] = [];
  for (const [t] of pieces) {
    const cps = [...t];
    const splits: [number, number, string][] = [];
    for (let i = 1; i < cps.length; i++) {
      const l = cps.slice(0, i).join(''), r = cps.slice(i).join('');
      if (vocab[l] !== undefined && vocab[r] !== undefined && vocab[l] >= 259 && vocab[r] >= 259) splits.push([vocab[l], vocab[r], `${l} ${r}`]);
    }
    splits.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    mergeList.push(...splits.map((s) => s[2]));
  }
  const tokenizer = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [SPECIAL(0, '<unk>'), SPECIAL(1, '<s>'), SPECIAL(2, '</s>')],
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null, post_processor: null,
    decoder: { type: 'Sequence', decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }] },
    model: {
      type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: true,
      byte_fallback: true, ignore_merges: false, vocab, merges: mergeList,
    },
  };
  const config = { add_bos_token: true, add_eos_token: false, bos_token: '<s>', eos_token: '</s>', unk_token: '<unk>', legacy: true, chat_template: "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}" };
  return { tokenizer, config, nTokens: Object.keys(vocab).length };
}

// ---------------------------------------------------------------------------
// safetensors

export type StDtype = 'F32' | 'F16' | 'BF16';

export interface StTensor { name: string; shape: number[]; data: Float32Array }

/** Round values to what `dtype` stores, so the reference sees exactly the checkpoint's weights. */
export function roundTo(dtype: StDtype, x: Float32Array): Float32Array {
  if (dtype === 'F32') return x;
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = dtype === 'F16' ? f16ToF32(f32ToF16(x[i])) : bf16ToF32(f32ToBf16(x[i]));
  return out;
}

export function writeSafetensors(file: string, tensors: StTensor[], dtype: StDtype): void {
  const bpe = dtype === 'F32' ? 4 : 2;
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const t of tensors) {
    header[t.name] = { dtype, shape: t.shape, data_offsets: [off, off + t.data.length * bpe] };
    off += t.data.length * bpe;
  }
  let h = Buffer.from(JSON.stringify(header));
  const pad = (8 - (h.length % 8)) % 8;
  h = Buffer.concat([h, Buffer.alloc(pad, 0x20)]);
  const data = Buffer.alloc(off);
  let p = 0;
  for (const t of tensors) {
    for (let i = 0; i < t.data.length; i++, p += bpe) {
      if (dtype === 'F32') data.writeFloatLE(t.data[i], p);
      else data.writeUInt16LE(dtype === 'F16' ? f32ToF16(t.data[i]) : f32ToBf16(t.data[i]), p);
    }
  }
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(file, Buffer.concat([len, h, data]));
}

// ---------------------------------------------------------------------------
// Checkpoints

export type FixtureArch = 'llama' | 'mistral' | 'qwen2' | 'gpt2';

export interface FixtureOptions {
  dtype?: StDtype;
  /** Split the weights into this many shards with an index. */
  shards?: number;
  layers?: number;
  hidden?: number;
  heads?: number;
  kvHeads?: number;
  /** Per-head width when it is not hidden / heads (written as config head_dim). */
  headDim?: number;
  ffn?: number;
  merges?: number;
  ropeScaling?: Record<string, unknown>;
  tied?: boolean;
  seed?: number;
}

export interface Fixture {
  dir: string;
  arch: FixtureArch;
  config: Record<string, unknown>;
  /** Weights as stored (rounded to the dtype), by HF name. */
  weights: Map<string, StTensor>;
  tokenizer: TokenizerFiles;
}

function gaussian(seed: number): () => number {
  let s = seed >>> 0 || 1;
  const u = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s + 0.5) / 2 ** 32; };
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

export function makeCheckpoint(dir: string, arch: FixtureArch, o: FixtureOptions = {}): Fixture {
  fs.mkdirSync(dir, { recursive: true });
  const dtype = o.dtype ?? 'BF16';
  const g = gaussian(o.seed ?? 7);
  const text = corpus();
  const tok = arch === 'mistral' ? sentencePieceTokenizer(text, o.merges ?? 300)
    : byteLevelTokenizer(arch === 'llama' ? 'llama3' : arch === 'qwen2' ? 'qwen2' : 'gpt2', text, o.merges ?? 300);
  // Pad the embedding past the tokenizer, as real checkpoints round their vocabulary up.
  const nVocab = Math.ceil((tok.nTokens + 3) / 16) * 16;
  const L = o.layers ?? 2, d = o.hidden ?? 256, nh = o.heads ?? 4, nkv = o.kvHeads ?? (arch === 'gpt2' ? nh : 2), ff = o.ffn ?? 512;
  const hd = o.headDim ?? d / nh;
  const tensors: StTensor[] = [];
  const add = (name: string, shape: number[], scale: number, offset = 0) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = offset + scale * g();
    tensors.push({ name, shape, data: roundTo(dtype, x) });
  };
  let config: Record<string, unknown>;
  if (arch === 'gpt2') {
    const nCtx = 128;
    config = {
      architectures: ['GPT2LMHeadModel'], model_type: 'gpt2', n_embd: d, n_layer: L, n_head: nh, n_positions: nCtx, n_ctx: nCtx,
      n_inner: null, vocab_size: nVocab, layer_norm_epsilon: 1e-5, activation_function: 'gelu_new', bos_token_id: tok.nTokens - 1, eos_token_id: tok.nTokens - 1,
    };
    add('wte.weight', [nVocab, d], 0.1);
    add('wpe.weight', [nCtx, d], 0.05);
    for (let i = 0; i < L; i++) {
      const p = `h.${i}.`;
      add(`${p}ln_1.weight`, [d], 0.1, 1); add(`${p}ln_1.bias`, [d], 0.05);
      add(`${p}attn.c_attn.weight`, [d, 3 * d], 0.08); add(`${p}attn.c_attn.bias`, [3 * d], 0.05);
      add(`${p}attn.c_proj.weight`, [d, d], 0.06); add(`${p}attn.c_proj.bias`, [d], 0.02);
      add(`${p}ln_2.weight`, [d], 0.1, 1); add(`${p}ln_2.bias`, [d], 0.05);
      add(`${p}mlp.c_fc.weight`, [d, 4 * d], 0.08); add(`${p}mlp.c_fc.bias`, [4 * d], 0.05);
      add(`${p}mlp.c_proj.weight`, [4 * d, d], 0.04); add(`${p}mlp.c_proj.bias`, [d], 0.02);
      // The causal-mask buffer older GPT-2 checkpoints carry; the converter must drop it.
      tensors.push({ name: `${p}attn.bias`, shape: [1, 1, 4, 4], data: roundTo(dtype, new Float32Array(16).fill(1)) });
    }
    add('ln_f.weight', [d], 0.1, 1); add('ln_f.bias', [d], 0.05);
  } else {
    const tied = o.tied ?? arch === 'qwen2';
    config = {
      architectures: [arch === 'llama' ? 'LlamaForCausalLM' : arch === 'mistral' ? 'MistralForCausalLM' : 'Qwen2ForCausalLM'], model_type: arch,
      hidden_size: d, num_hidden_layers: L, num_attention_heads: nh, num_key_value_heads: nkv, intermediate_size: ff,
      max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: arch === 'llama' ? 500000 : 10000, vocab_size: nVocab,
      tie_word_embeddings: tied, hidden_act: 'silu', torch_dtype: dtype === 'BF16' ? 'bfloat16' : dtype === 'F16' ? 'float16' : 'float32',
      rope_scaling: o.ropeScaling ?? null,
      ...(o.headDim ? { head_dim: o.headDim } : {}),
    };
    add('model.embed_tokens.weight', [nVocab, d], 0.1);
    for (let i = 0; i < L; i++) {
      const p = `model.layers.${i}.`;
      add(`${p}input_layernorm.weight`, [d], 0.1, 1);
      add(`${p}self_attn.q_proj.weight`, [nh * hd, d], 0.1);
      add(`${p}self_attn.k_proj.weight`, [nkv * hd, d], 0.1);
      add(`${p}self_attn.v_proj.weight`, [nkv * hd, d], 0.08);
      add(`${p}self_attn.o_proj.weight`, [d, nh * hd], 0.06);
      if (arch === 'qwen2') {
        add(`${p}self_attn.q_proj.bias`, [nh * hd], 0.2);
        add(`${p}self_attn.k_proj.bias`, [nkv * hd], 0.2);
        add(`${p}self_attn.v_proj.bias`, [nkv * hd], 0.1);
      }
      add(`${p}post_attention_layernorm.weight`, [d], 0.1, 1);
      add(`${p}mlp.gate_proj.weight`, [ff, d], 0.08);
      add(`${p}mlp.up_proj.weight`, [ff, d], 0.08);
      add(`${p}mlp.down_proj.weight`, [d, ff], 0.05);
    }
    add('model.norm.weight', [d], 0.1, 1);
    if (!tied) add('lm_head.weight', [nVocab, d], 0.1);
  }
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(tok.tokenizer));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tok.config, null, 2));
  const shards = o.shards ?? 1;
  if (shards <= 1) writeSafetensors(path.join(dir, 'model.safetensors'), tensors, dtype);
  else {
    const per = Math.ceil(tensors.length / shards);
    const weightMap: Record<string, string> = {};
    for (let s = 0; s < shards; s++) {
      const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = tensors.slice(s * per, (s + 1) * per);
      for (const t of part) weightMap[t.name] = name;
      writeSafetensors(path.join(dir, name), part, dtype);
    }
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  }
  return { dir, arch, config, weights: new Map(tensors.map((t) => [t.name, t])), tokenizer: tok };
}

// ---------------------------------------------------------------------------
// Float64 reference forward passes (HF semantics)

/** y[r] = sum_k W[r, k] x[k] (+ b[r]) for W stored [rows, cols] row-major. */
function matvec(W: Float32Array, rows: number, cols: number, x: Float64Array, b?: Float32Array): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = b ? b[r] : 0;
    const o = r * cols;
    for (let k = 0; k < cols; k++) s += W[o + k] * x[k];
    y[r] = s;
  }
  return y;
}

/** y[c] = sum_k x[k] W[k, c] + b[c] for a Conv1D weight stored [in, out]. */
function conv1d(W: Float32Array, nIn: number, nOut: number, x: Float64Array, b: Float32Array): Float64Array {
  const y = new Float64Array(nOut);
  for (let c = 0; c < nOut; c++) y[c] = b[c];
  for (let k = 0; k < nIn; k++) {
    const xk = x[k], o = k * nOut;
    for (let c = 0; c < nOut; c++) y[c] += xk * W[o + c];
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const s = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * s * w[i]);
}

function layerNorm(x: Float64Array, w: Float32Array, b: Float32Array, eps: number): Float64Array {
  let m = 0;
  for (const v of x) m += v;
  m /= x.length;
  let vv = 0;
  for (const v of x) vv += (v - m) * (v - m);
  const s = 1 / Math.sqrt(vv / x.length + eps);
  return x.map((v, i) => (v - m) * s * w[i] + b[i]);
}

/** Causal softmax attention of one position over keys 0..pos; q, k, v per head. */
function attend(q: Float64Array[], ks: Float64Array[][], vs: Float64Array[][], pos: number, nh: number, nkv: number, hd: number): Float64Array {
  const out = new Float64Array(nh * hd);
  const scale = 1 / Math.sqrt(hd);
  for (let h = 0; h < nh; h++) {
    const kh = Math.floor(h / (nh / nkv));
    const sc = new Float64Array(pos + 1);
    let mx = -Infinity;
    for (let t = 0; t <= pos; t++) {
      let s = 0;
      for (let i = 0; i < hd; i++) s += q[h][i] * ks[t][kh][i];
      sc[t] = s * scale;
      if (sc[t] > mx) mx = sc[t];
    }
    let z = 0;
    for (let t = 0; t <= pos; t++) { sc[t] = Math.exp(sc[t] - mx); z += sc[t]; }
    for (let t = 0; t <= pos; t++) for (let i = 0; i < hd; i++) out[h * hd + i] += (sc[t] / z) * vs[t][kh][i];
  }
  return out;
}

/** HF's rope frequencies, with Llama 3's rope_scaling applied as transformers does. */
function invFreq(cfg: Record<string, unknown>, hd: number): Float64Array {
  const base = (cfg.rope_theta as number) ?? 10000;
  const f = new Float64Array(hd / 2).map((_v, i) => 1 / base ** ((2 * i) / hd));
  const rs = cfg.rope_scaling as Record<string, number | string> | null;
  if (rs && rs.rope_type === 'llama3') {
    const factor = rs.factor as number, low = rs.low_freq_factor as number, high = rs.high_freq_factor as number;
    const old = rs.original_max_position_embeddings as number;
    return f.map((fr) => {
      const wl = (2 * Math.PI) / fr;
      if (wl < old / high) return fr;
      if (wl > old / low) return fr / factor;
      const smooth = (old / wl - low) / (high - low);
      return (1 - smooth) * (fr / factor) + smooth * fr;
    });
  }
  if (rs && (rs.rope_type ?? rs.type) === 'linear') return f.map((fr) => fr / (rs.factor as number));
  return f;
}

/** Rotate-half rope (HF's apply_rotary_pos_emb) on one head vector. */
function rope(x: Float64Array, pos: number, freq: Float64Array): Float64Array {
  const half = x.length / 2;
  const y = new Float64Array(x.length);
  for (let i = 0; i < half; i++) {
    const c = Math.cos(pos * freq[i]), s = Math.sin(pos * freq[i]);
    y[i] = x[i] * c - x[i + half] * s;
    y[i + half] = x[i + half] * c + x[i] * s;
  }
  return y;
}

/** Logits [tokens.length][nVocab] of a Llama / Mistral / Qwen2 checkpoint, float64. */
export function llamaReference(fx: Fixture, tokens: number[]): Float64Array {
  const c = fx.config, W = (n: string) => fx.weights.get(n)!.data;
  const d = c.hidden_size as number, nh = c.num_attention_heads as number, nkv = c.num_key_value_heads as number;
  const ff = c.intermediate_size as number, L = c.num_hidden_layers as number, eps = c.rms_norm_eps as number;
  const hd = (c.head_dim as number | undefined) ?? d / nh;
  const emb = W('model.embed_tokens.weight');
  const nVocab = emb.length / d;
  const head = fx.weights.get('lm_head.weight')?.data ?? emb;
  const freq = invFreq(c, hd);
  const ks: Float64Array[][][] = Array.from({ length: L }, () => []);
  const vs: Float64Array[][][] = Array.from({ length: L }, () => []);
  const out = new Float64Array(tokens.length * nVocab);
  const bias = (n: string) => fx.weights.get(n)?.data;
  tokens.forEach((tk, pos) => {
    let x = Float64Array.from(emb.subarray(tk * d, (tk + 1) * d));
    for (let l = 0; l < L; l++) {
      const p = `model.layers.${l}.`;
      const h = rmsNorm(x, W(`${p}input_layernorm.weight`), eps);
      const q = matvec(W(`${p}self_attn.q_proj.weight`), nh * hd, d, h, bias(`${p}self_attn.q_proj.bias`));
      const k = matvec(W(`${p}self_attn.k_proj.weight`), nkv * hd, d, h, bias(`${p}self_attn.k_proj.bias`));
      const v = matvec(W(`${p}self_attn.v_proj.weight`), nkv * hd, d, h, bias(`${p}self_attn.v_proj.bias`));
      const qh = Array.from({ length: nh }, (_v, i) => rope(q.subarray(i * hd, (i + 1) * hd), pos, freq));
      ks[l].push(Array.from({ length: nkv }, (_v, i) => rope(k.subarray(i * hd, (i + 1) * hd), pos, freq)));
      vs[l].push(Array.from({ length: nkv }, (_v, i) => v.slice(i * hd, (i + 1) * hd)));
      const a = matvec(W(`${p}self_attn.o_proj.weight`), d, nh * hd, attend(qh, ks[l], vs[l], pos, nh, nkv, hd));
      x = x.map((xv, i) => xv + a[i]);
      const h2 = rmsNorm(x, W(`${p}post_attention_layernorm.weight`), eps);
      const gt = matvec(W(`${p}mlp.gate_proj.weight`), ff, d, h2);
      const up = matvec(W(`${p}mlp.up_proj.weight`), ff, d, h2);
      const act = gt.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]);
      const m = matvec(W(`${p}mlp.down_proj.weight`), d, ff, act);
      x = x.map((xv, i) => xv + m[i]);
    }
    out.set(matvec(head, nVocab, d, rmsNorm(x, W('model.norm.weight'), eps)), pos * nVocab);
  });
  return out;
}

/** Logits of a GPT-2 checkpoint, float64 (gelu_new, the tanh approximation GPT-2 uses). */
export function gpt2Reference(fx: Fixture, tokens: number[]): Float64Array {
  const c = fx.config, W = (n: string) => fx.weights.get(n)!.data;
  const d = c.n_embd as number, nh = c.n_head as number, L = c.n_layer as number, eps = c.layer_norm_epsilon as number;
  const hd = d / nh;
  const wte = W('wte.weight'), wpe = W('wpe.weight');
  const nVocab = wte.length / d;
  const ks: Float64Array[][][] = Array.from({ length: L }, () => []);
  const vs: Float64Array[][][] = Array.from({ length: L }, () => []);
  const out = new Float64Array(tokens.length * nVocab);
  const gelu = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  tokens.forEach((tk, pos) => {
    let x = new Float64Array(d).map((_v, i) => wte[tk * d + i] + wpe[pos * d + i]);
    for (let l = 0; l < L; l++) {
      const p = `h.${l}.`;
      const h = layerNorm(x, W(`${p}ln_1.weight`), W(`${p}ln_1.bias`), eps);
      const qkv = conv1d(W(`${p}attn.c_attn.weight`), d, 3 * d, h, W(`${p}attn.c_attn.bias`));
      const heads = (off: number) => Array.from({ length: nh }, (_v, i) => qkv.slice(off + i * hd, off + (i + 1) * hd));
      ks[l].push(heads(d));
      vs[l].push(heads(2 * d));
      const a = conv1d(W(`${p}attn.c_proj.weight`), d, d, attend(heads(0), ks[l], vs[l], pos, nh, nh, hd), W(`${p}attn.c_proj.bias`));
      x = x.map((xv, i) => xv + a[i]);
      const h2 = layerNorm(x, W(`${p}ln_2.weight`), W(`${p}ln_2.bias`), eps);
      const up = conv1d(W(`${p}mlp.c_fc.weight`), d, 4 * d, h2, W(`${p}mlp.c_fc.bias`)).map(gelu);
      const m = conv1d(W(`${p}mlp.c_proj.weight`), 4 * d, d, up, W(`${p}mlp.c_proj.bias`));
      x = x.map((xv, i) => xv + m[i]);
    }
    out.set(matvec(wte, nVocab, d, layerNorm(x, W('ln_f.weight'), W('ln_f.bias'), eps)), pos * nVocab);
  });
  return out;
}

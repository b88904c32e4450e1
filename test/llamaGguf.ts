/**
 * Generates LLaMA-architecture GGUF files (F16 or F32 weights) complete enough
 * for llama.cpp to load and run: llama.* hyperparameters, an SPM tokenizer
 * (<unk>, <s>, </s>, the 256 byte tokens, a few words) and every tensor the
 * llama graph needs. Used by the GGUF conversion tests and the convert bench
 * (which makes a LLaMA-7B-shaped one). Values are weight-like: Gaussian with a
 * few outliers per row, streamed tensor by tensor so big files need little memory.
 */
import { GgufValueType } from '../src/formats/gguf/reader';
import { GgufFileWriter, GgufKv, layoutGguf } from '../src/formats/gguf/writer';
import { f32ToBf16, f32ToF16 } from '../src/formats/dtypes';
import { rng } from './random';

export interface TinyLlamaSpec {
  nLayer: number;
  nEmbd: number;
  nFf: number;
  nHead: number;
  nHeadKv: number;
  /** Extra word tokens after <unk>, <s>, </s> and the 256 byte tokens. */
  nWords: number;
  dtype: 'F16' | 'F32' | 'BF16';
  /** No output.weight: the token embedding is reused (llama.cpp then treats it as the output tensor). */
  tied?: boolean;
  seed?: number;
  alignment?: number;
  /**
   * Fill from a pool of this many pre-generated values, rotated per chunk
   * (fast, for multi-GB files); 0 draws every value (default).
   */
  pool?: number;
}

export function llamaTensors(s: TinyLlamaSpec): { name: string; ne: number[]; norm: boolean }[] {
  const nVocab = 3 + 256 + s.nWords;
  const kv = (s.nEmbd / s.nHead) * s.nHeadKv;
  const t: { name: string; ne: number[]; norm: boolean }[] = [{ name: 'token_embd.weight', ne: [s.nEmbd, nVocab], norm: false }];
  for (let i = 0; i < s.nLayer; i++) {
    const p = `blk.${i}.`;
    t.push(
      { name: `${p}attn_norm.weight`, ne: [s.nEmbd], norm: true },
      { name: `${p}attn_q.weight`, ne: [s.nEmbd, s.nEmbd], norm: false },
      { name: `${p}attn_k.weight`, ne: [s.nEmbd, kv], norm: false },
      { name: `${p}attn_v.weight`, ne: [s.nEmbd, kv], norm: false },
      { name: `${p}attn_output.weight`, ne: [s.nEmbd, s.nEmbd], norm: false },
      { name: `${p}ffn_norm.weight`, ne: [s.nEmbd], norm: true },
      { name: `${p}ffn_gate.weight`, ne: [s.nEmbd, s.nFf], norm: false },
      { name: `${p}ffn_up.weight`, ne: [s.nEmbd, s.nFf], norm: false },
      { name: `${p}ffn_down.weight`, ne: [s.nFf, s.nEmbd], norm: false },
    );
  }
  t.push({ name: 'output_norm.weight', ne: [s.nEmbd], norm: true });
  if (!s.tied) t.push({ name: 'output.weight', ne: [s.nEmbd, nVocab], norm: false });
  return t;
}

export function llamaMetadata(s: TinyLlamaSpec): GgufKv[] {
  const U32 = GgufValueType.UINT32, F32 = GgufValueType.FLOAT32;
  const tokens = ['<unk>', '<s>', '</s>'];
  for (let b = 0; b < 256; b++) tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  for (let w = 0; w < s.nWords; w++) tokens.push(`\u2581w${w}`);
  const kvs: GgufKv[] = [
    { key: 'general.architecture', type: GgufValueType.STRING, value: 'llama' },
    { key: 'general.name', type: GgufValueType.STRING, value: 'quantscope-test-llama' },
  ];
  if (s.alignment) kvs.push({ key: 'general.alignment', type: U32, value: s.alignment });
  kvs.push(
    { key: 'llama.context_length', type: U32, value: 512 },
    { key: 'llama.embedding_length', type: U32, value: s.nEmbd },
    { key: 'llama.block_count', type: U32, value: s.nLayer },
    { key: 'llama.feed_forward_length', type: U32, value: s.nFf },
    { key: 'llama.rope.dimension_count', type: U32, value: s.nEmbd / s.nHead },
    { key: 'llama.attention.head_count', type: U32, value: s.nHead },
    { key: 'llama.attention.head_count_kv', type: U32, value: s.nHeadKv },
    { key: 'llama.attention.layer_norm_rms_epsilon', type: F32, value: 1e-5 },
    { key: 'llama.rope.freq_base', type: F32, value: 10000 },
    { key: 'general.file_type', type: U32, value: s.dtype === 'F16' ? 1 : s.dtype === 'BF16' ? 32 : 0 },
    { key: 'tokenizer.ggml.model', type: GgufValueType.STRING, value: 'llama' },
    { key: 'tokenizer.ggml.tokens', type: GgufValueType.ARRAY, elementType: GgufValueType.STRING, value: tokens },
    { key: 'tokenizer.ggml.scores', type: GgufValueType.ARRAY, elementType: F32, value: tokens.map((_t, i) => (i < 259 ? 0 : -i / 10)) },
    { key: 'tokenizer.ggml.token_type', type: GgufValueType.ARRAY, elementType: GgufValueType.INT32, value: tokens.map((_t, i) => (i === 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1)) },
    { key: 'tokenizer.ggml.bos_token_id', type: U32, value: 1 },
    { key: 'tokenizer.ggml.eos_token_id', type: U32, value: 2 },
    { key: 'tokenizer.ggml.unknown_token_id', type: U32, value: 0 },
    { key: 'general.quantization_version', type: U32, value: 2 },
  );
  return kvs;
}

/** Writes the file (temp name, fsync, rename). Returns the vocabulary size. */
export function writeLlamaGguf(file: string, s: TinyLlamaSpec): number {
  const tensors = llamaTensors(s);
  const typeId = s.dtype === 'F16' ? 1 : s.dtype === 'BF16' ? 30 : 0;
  // Norms stay F32 as convert_hf_to_gguf writes them.
  const layout = layoutGguf(llamaMetadata(s), tensors.map((t) => ({ name: t.name, ne: t.ne, type: t.norm ? 0 : typeId })));
  const w = new GgufFileWriter(file, layout);
  const r = rng(s.seed ?? 1);
  const gauss = (): number => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  let pool: Float32Array | undefined;
  if (s.pool) {
    pool = new Float32Array(s.pool);
    for (let i = 0; i < pool.length; i++) pool[i] = gauss() * 0.02 * (r() < 0.002 ? 8 : 1);
  }
  try {
    for (const t of tensors) {
      const n = t.ne.reduce((a, b) => a * b, 1);
      const std = t.norm ? 0 : 1 / Math.sqrt(t.ne[0]);
      const chunk = 1 << 20;
      for (let done = 0; done < n; done += chunk) {
        const len = Math.min(chunk, n - done);
        const x = new Float32Array(len);
        if (t.norm) for (let i = 0; i < len; i++) x[i] = 1 + 0.1 * gauss();
        else if (pool) {
          const rot = Math.floor(r() * pool.length), scale = (0.5 + r()) * std / 0.02;
          for (let i = 0; i < len; i++) x[i] = pool[(i + rot) % pool.length] * scale;
        } else {
          for (let i = 0; i < len; i++) x[i] = gauss() * std * (r() < 0.002 ? 8 : 1);
        }
        if (t.norm || s.dtype === 'F32') w.write(new Uint8Array(x.buffer));
        else {
          const h = new Uint16Array(len);
          const conv = s.dtype === 'BF16' ? f32ToBf16 : f32ToF16;
          for (let i = 0; i < len; i++) h[i] = conv(x[i]);
          w.write(new Uint8Array(h.buffer));
        }
      }
      w.endTensor();
    }
    w.finish();
    w.commit();
  } catch (e) {
    w.abort();
    throw e;
  }
  return 3 + 256 + s.nWords;
}

/**
 * Test-side helpers for the quantized Hugging Face checkpoint tests, written
 * from the specs and independent of src/: a minimal safetensors writer and
 * parser, IEEE half / bfloat16 decoding, and a small generated Llama-shaped
 * checkpoint folder (config, weights, tokenizer files).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeNpy } from '../../src/runtime/calibData';

export type StDType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'I8' | 'U8' | 'F8_E4M3';
export interface StTensor { name: string; dtype: StDType; shape: number[]; data: Uint8Array }

/** safetensors from its spec: u64 header length, JSON header, contiguous data. */
export function writeSt(file: string, tensors: StTensor[], metadata?: Record<string, string>): void {
  const h: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let off = 0;
  for (const t of tensors) {
    h[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.data.length] };
    off += t.data.length;
  }
  const json = Buffer.from(JSON.stringify(h));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, ...tensors.map((t) => Buffer.from(t.data))]));
}

export interface ParsedSt { header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; metadata?: Record<string, string>; bytes: (name: string) => Buffer }

export function readSt(file: string): ParsedSt {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const h = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const metadata = h.__metadata__ as Record<string, string> | undefined;
  delete h.__metadata__;
  const header = h as ParsedSt['header'];
  return {
    header, metadata,
    bytes: (name) => {
      const e = header[name];
      if (!e) throw new Error(`${file}: no tensor ${name}`);
      return buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1]);
    },
  };
}

export const i32s = (b: Buffer): number[] => Array.from({ length: b.length / 4 }, (_, i) => b.readInt32LE(4 * i));
export const f32s = (b: Buffer): number[] => Array.from({ length: b.length / 4 }, (_, i) => b.readFloatLE(4 * i));

/** IEEE 754 binary16 → number, from the bit fields. */
export function half(h: number): number {
  const s = h >> 15 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
/** bfloat16 → number: the top half of a float32. */
export function bfloat(h: number): number {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(h << 16 >>> 0);
  return b.readFloatLE(0);
}
export const halfs = (b: Buffer): number[] => Array.from({ length: b.length / 2 }, (_, i) => half(b.readUInt16LE(2 * i)));
export const bfloats = (b: Buffer): number[] => Array.from({ length: b.length / 2 }, (_, i) => bfloat(b.readUInt16LE(2 * i)));

/** Deterministic weights: a sum of uniforms (bell-shaped) from a 32-bit LCG, with a few outliers. */
export function weights(n: number, seed: number, scale = 0.05): Float32Array {
  let x = seed >>> 0;
  const u = () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = scale * (u() + u() + u() + u() - 2) * (i % 97 === 5 ? 6 : 1);
  return w;
}

export function f32Bytes(a: Float32Array): Uint8Array { return new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)); }
/** float32 → bfloat16 bits by round to nearest even (test-side). */
export function bf16Bytes(a: Float32Array): Uint8Array {
  const out = Buffer.alloc(a.length * 2);
  const b = Buffer.alloc(4);
  for (let i = 0; i < a.length; i++) {
    b.writeFloatLE(a[i]);
    const u = b.readUInt32LE(0);
    out.writeUInt16LE(((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff, 2 * i);
  }
  return out;
}

export interface TinyOptions { hidden?: number; inter?: number; layers?: number; vocab?: number; shards?: 1 | 2; dtype?: 'F32' | 'BF16'; config?: Record<string, unknown> }

/** A Llama-shaped checkpoint folder: config.json, weights (one file or two shards + index), tokenizer and generation config. */
export function tinyLlama(dir: string, o: TinyOptions = {}): { tensors: Map<string, { shape: number[]; values: Float32Array }> } {
  const H = o.hidden ?? 64, I = o.inter ?? 128, L = o.layers ?? 2, V = o.vocab ?? 50;
  fs.mkdirSync(dir, { recursive: true });
  const tensors = new Map<string, { shape: number[]; values: Float32Array }>();
  let seed = 1;
  const add = (name: string, shape: number[]) => tensors.set(name, { shape, values: weights(shape.reduce((a, b) => a * b, 1), seed++) });
  add('model.embed_tokens.weight', [V, H]);
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}`;
    add(`${p}.input_layernorm.weight`, [H]);
    for (const m of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) add(`${p}.self_attn.${m}.weight`, [H, H]);
    add(`${p}.post_attention_layernorm.weight`, [H]);
    add(`${p}.mlp.gate_proj.weight`, [I, H]);
    add(`${p}.mlp.up_proj.weight`, [I, H]);
    add(`${p}.mlp.down_proj.weight`, [H, I]);
  }
  add('model.norm.weight', [H]);
  add('lm_head.weight', [V, H]);
  const dtype = o.dtype ?? 'F32';
  // What the file holds is what the test compares against: bf16 sources are rounded here.
  for (const t of tensors.values()) if (dtype === 'BF16') t.values = Float32Array.from(bfloats(Buffer.from(bf16Bytes(t.values))));
  const st = (names: string[]): StTensor[] => names.map((n) => {
    const t = tensors.get(n)!;
    return { name: n, dtype, shape: t.shape, data: dtype === 'F32' ? f32Bytes(t.values) : bf16Bytes(t.values) };
  });
  const names = [...tensors.keys()];
  if ((o.shards ?? 1) === 1) writeSt(path.join(dir, 'model.safetensors'), st(names), { format: 'pt' });
  else {
    const half = Math.ceil(names.length / 2);
    const parts = [names.slice(0, half), names.slice(half)];
    const weightMap: Record<string, string> = {};
    parts.forEach((ns, k) => {
      const f = `model-0000${k + 1}-of-00002.safetensors`;
      writeSt(path.join(dir, f), st(ns), { format: 'pt' });
      for (const n of ns) weightMap[n] = f;
    });
    fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  }
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: H, intermediate_size: I, num_hidden_layers: L, num_attention_heads: 4,
    num_key_value_heads: 4, vocab_size: V, torch_dtype: dtype === 'F32' ? 'float32' : 'bfloat16', rms_norm_eps: 1e-5, ...o.config,
  }, null, 2));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab: { a: 0, b: 1 }, merges: [] } }));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', chat_template: '{{ messages }}' }));
  fs.writeFileSync(path.join(dir, 'generation_config.json'), JSON.stringify({ do_sample: false, max_new_tokens: 8 }));
  return { tensors };
}

/** sha256 of every file in a folder (name → hash). */
export function hashFolder(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of fs.readdirSync(dir).sort()) out[n] = crypto.createHash('sha256').update(fs.readFileSync(path.join(dir, n))).digest('hex');
  return out;
}

/** Round half to even (IEEE default), for the codes the spec's quantizer produces. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** An uncompressed .npz (a zip of .npy files, stored), written from the zip and npy specs. */
export function writeNpz(file: string, arrays: Record<string, { data: Float32Array; dims: number[] }>): void {
  const locals: Buffer[] = [], central: Buffer[] = [];
  let off = 0;
  for (const [name, a] of Object.entries(arrays)) {
    const body = Buffer.from(encodeNpy({ data: a.data, dims: a.dims, dtype: 'float32' }));
    const fname = Buffer.from(`${name}.npy`);
    const crc = crc32(body);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt16LE(20, 4); lh.writeUInt32LE(crc, 14); lh.writeUInt32LE(body.length, 18); lh.writeUInt32LE(body.length, 22); lh.writeUInt16LE(fname.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0); ch.writeUInt16LE(20, 4); ch.writeUInt16LE(20, 6); ch.writeUInt32LE(crc, 16); ch.writeUInt32LE(body.length, 20); ch.writeUInt32LE(body.length, 24); ch.writeUInt16LE(fname.length, 28); ch.writeUInt32LE(off, 42);
    locals.push(lh, fname, body);
    central.push(ch, fname);
    off += 30 + fname.length + body.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(Object.keys(arrays).length, 8); end.writeUInt16LE(Object.keys(arrays).length, 10); end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(off, 16);
  fs.writeFileSync(file, Buffer.concat([...locals, cd, end]));
}

function crc32(b: Buffer): number {
  let c = ~0;
  for (const x of b) { c ^= x; for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1)); }
  return ~c >>> 0;
}

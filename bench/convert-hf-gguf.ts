/**
 * `npm run bench -- convert-hf-gguf [--json] [--layers N]`: a LLaMA-7B-shaped
 * Hugging Face checkpoint in bf16 (13.5 GB, 4 shards with an index, a small
 * trained tokenizer with the embedding rows past it as [PAD] tokens; written
 * once under bench/.data/) straight to Q4_K_M by convertHfGguf on a 2-worker
 * pool, verification (read-back) included, against llama.cpp's quantizer
 * alone (llama_model_quantize, 2 threads) on the F16 GGUF of the same
 * weights (our F16 conversion, not timed). Each side's input is read once
 * before it is timed, so both start from the page cache (as right after a
 * download; 24 GiB of RAM cannot hold both 13.5 GB inputs at once). The
 * outputs differ where bf16 weights round in F16 (llama.cpp's input), so
 * only their sizes are compared. Nothing is asserted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { convertHfGguf } from '../src/pipelines/convertHfGguf';
import { GGUF_PRESETS } from '../src/quant/ggml/presets';
import { llamaModelQuantize } from '../src/runtime/llamacpp/quantize';
import { WorkerPool } from '../src/jobs/pool';
import { f32ToBf16 } from '../src/formats/dtypes';
import { byteLevelTokenizer, corpus } from '../test/unit/hfFixtures';
import { childCpuSince, childrenCpuSeconds } from './convert-gguf';

const DATA = path.join(__dirname, '..', '..', 'bench', '.data');

/** Writes the checkpoint tensor by tensor (bf16 from a rotated pool of Gaussian values), sharded with an index. */
function writeCheckpoint(dir: string, layers: number): void {
  const d = 4096, ff = 11008, nh = 32, vocab = 32000;
  const shapes: [string, number[]][] = [['model.embed_tokens.weight', [vocab, d]]];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}.`;
    shapes.push([`${p}input_layernorm.weight`, [d]], [`${p}self_attn.q_proj.weight`, [d, d]], [`${p}self_attn.k_proj.weight`, [d, d]],
      [`${p}self_attn.v_proj.weight`, [d, d]], [`${p}self_attn.o_proj.weight`, [d, d]], [`${p}post_attention_layernorm.weight`, [d]],
      [`${p}mlp.gate_proj.weight`, [ff, d]], [`${p}mlp.up_proj.weight`, [ff, d]], [`${p}mlp.down_proj.weight`, [d, ff]]);
  }
  shapes.push(['model.norm.weight', [d]], ['lm_head.weight', [vocab, d]]);
  const tmp = `${dir}.partial`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  let s = 0x9e3779b9;
  const u = () => { s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0; return (s + 0.5) / 2 ** 32; };
  const pool = new Uint16Array(1 << 22);
  for (let i = 0; i < pool.length; i++) pool[i] = f32ToBf16(0.02 * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()) * (u() < 0.002 ? 8 : 1));
  const shards = 4, per = Math.ceil(shapes.length / shards);
  const weightMap: Record<string, string> = {};
  for (let k = 0; k < shards; k++) {
    const name = `model-${String(k + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part = shapes.slice(k * per, (k + 1) * per);
    const header: Record<string, unknown> = {};
    let off = 0;
    for (const [n, sh] of part) {
      const bytes = sh.reduce((a, b) => a * b, 1) * 2;
      header[n] = { dtype: 'BF16', shape: sh, data_offsets: [off, off + bytes] };
      off += bytes;
      weightMap[n] = name;
    }
    const h = Buffer.from(JSON.stringify(header).padEnd(Math.ceil(JSON.stringify(header).length / 8) * 8, ' '));
    const fd = fs.openSync(path.join(tmp, name), 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    fs.writeSync(fd, len);
    fs.writeSync(fd, h);
    const chunk = new Uint16Array(1 << 22);
    for (const [n, sh] of part) {
      let left = sh.reduce((a, b) => a * b, 1);
      const norm = sh.length === 1;
      while (left > 0) {
        const m = Math.min(left, chunk.length);
        if (norm) chunk.fill(f32ToBf16(1), 0, m);
        else {
          const rot = Math.floor(u() * pool.length);
          chunk.set(pool.subarray(rot, Math.min(pool.length, rot + m)));
          if (pool.length - rot < m) chunk.set(pool.subarray(0, m - (pool.length - rot)), pool.length - rot);
        }
        fs.writeSync(fd, new Uint8Array(chunk.buffer, 0, m * 2));
        left -= m;
      }
      void n;
    }
    fs.closeSync(fd);
  }
  fs.writeFileSync(path.join(tmp, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: d, num_hidden_layers: layers, num_attention_heads: nh,
    num_key_value_heads: nh, intermediate_size: ff, max_position_embeddings: 4096, rms_norm_eps: 1e-5, rope_theta: 10000, vocab_size: vocab,
    tie_word_embeddings: false, torch_dtype: 'bfloat16',
  }));
  const tok = byteLevelTokenizer('llama3', corpus(), 500);
  fs.writeFileSync(path.join(tmp, 'tokenizer.json'), JSON.stringify(tok.tokenizer));
  fs.writeFileSync(path.join(tmp, 'tokenizer_config.json'), JSON.stringify(tok.config));
  fs.renameSync(tmp, dir);
}

/** Reads the files through one reused buffer, so that they sit in the page cache. */
function warm(files: string[]): void {
  const buf = Buffer.allocUnsafe(1 << 24);
  for (const f of files) {
    const fd = fs.openSync(f, 'r');
    try { while (fs.readSync(fd, buf, 0, buf.length, null) > 0); } finally { fs.closeSync(fd); }
  }
}

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const li = argv.indexOf('--layers');
  const layers = li >= 0 ? parseInt(argv[li + 1], 10) : 32;
  const tag = layers === 32 ? '7b' : `7b_${layers}l`;
  fs.mkdirSync(DATA, { recursive: true });
  const ckpt = path.join(DATA, `llama7b-${layers}l-hf-bf16`);
  if (!fs.existsSync(ckpt)) writeCheckpoint(ckpt, layers);
  const f16 = path.join(DATA, `llama7b-${layers}l-hf-F16.gguf`);
  const ours = path.join(DATA, 'convert-hf-ours-Q4_K_M.gguf'), ref = path.join(DATA, 'convert-hf-llamacpp-Q4_K_M.gguf');
  for (const f of [ours, ref]) fs.rmSync(f, { force: true });
  const out: Record<string, unknown> = {
    source_GB: Math.round(fs.readdirSync(ckpt).reduce((s, f) => s + fs.statSync(path.join(ckpt, f)).size, 0) / 1e7) / 100,
  };
  const pool = new WorkerPool({ size: 2 });
  let peak = 0;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 100);
  try {
    if (!fs.existsSync(f16)) await convertHfGguf(ckpt, f16, { type: 'F16', pool, verify: false });
    warm(fs.readdirSync(ckpt).map((f) => path.join(ckpt, f)));
    peak = 0;
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    const r = await convertHfGguf(ckpt, ours, { type: 'Q4_K_M', pool });
    const c = process.cpuUsage(c0);
    // CPU seconds of the whole process (main thread and pool workers): the 2-core VM is shared, so wall time drifts.
    out.convert_st_to_gguf_cpu_s = Math.round((c.user + c.system) / 1e5) / 10;
    out.convert_st_to_gguf_peak_rss_MB = Math.round(Math.max(peak, process.memoryUsage().rss) / 2 ** 20);
    out[`convert_st_to_gguf_q4_k_m_${tag}_s`] = Math.round((Number(process.hrtime.bigint() - t0) / 1e9) * 10) / 10;
    out.convert_st_to_gguf_encode_s = Math.round(r.seconds.convert * 10) / 10;
    out.convert_st_to_gguf_verify_s = Math.round(r.seconds.verify * 10) / 10;
    out.convert_st_to_gguf_bpw = Math.round(r.totals.bpw * 1000) / 1000;
  } finally {
    clearInterval(sampler);
    await pool.close();
  }
  warm([f16]);
  const t1 = process.hrtime.bigint();
  const cc0 = childrenCpuSeconds();
  const own = await llamaModelQuantize(f16, ref, { ftype: GGUF_PRESETS.Q4_K_M.ftype, nthread: 2 }, { timeoutMs: 4 * 3600e3 });
  out[`llamacpp_f16_q4_k_m_${tag}_s`] = Math.round((Number(process.hrtime.bigint() - t1) / 1e9) * 10) / 10;
  out.llamacpp_own_timer_s = Math.round(own * 10) / 10;
  out.llamacpp_cpu_s = await childCpuSince(cc0);
  out.ratio_wall = Math.round((out[`convert_st_to_gguf_q4_k_m_${tag}_s`] as number) / (out[`llamacpp_f16_q4_k_m_${tag}_s`] as number) * 100) / 100;
  out.ratio_cpu = Math.round((out.convert_st_to_gguf_cpu_s as number) / (out.llamacpp_cpu_s as number) * 100) / 100;
  out.output_bytes = { ours: fs.statSync(ours).size, llamacpp: fs.statSync(ref).size };
  for (const f of [ours, ref]) fs.rmSync(f, { force: true });
  return out;
}

/**
 * `npm run bench -- convert-gguf [--json] [--layers N]`: GGUF requantization
 * to Q4_K_M, ours (convertGguf on a 2-worker pool, verification included)
 * against llama.cpp's own llama_model_quantize with 2 threads, on the same
 * generated LLaMA-7B-shaped F16 GGUF (13.5 GB, written once under
 * bench/.data/; --layers N makes a shallower one of the same width). Also
 * says whether the two outputs are byte-identical. Nothing is asserted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { convertGguf } from '../src/pipelines/convertGguf';
import { GGUF_PRESETS } from '../src/quant/ggml/presets';
import { llamaModelQuantize } from '../src/runtime/llamacpp/quantize';
import { WorkerPool } from '../src/jobs/pool';
import { writeLlamaGguf, TinyLlamaSpec } from '../test/llamaGguf';

const DATA = path.join(__dirname, '..', '..', 'bench', '.data');

function sameFiles(a: string, b: string): boolean {
  if (fs.statSync(a).size !== fs.statSync(b).size) return false;
  const fa = fs.openSync(a, 'r'), fb = fs.openSync(b, 'r');
  try {
    const ba = Buffer.alloc(1 << 24), bb = Buffer.alloc(1 << 24);
    for (let pos = 0; ; pos += ba.length) {
      const na = fs.readSync(fa, ba, 0, ba.length, pos), nb = fs.readSync(fb, bb, 0, bb.length, pos);
      if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
      if (na === 0) return true;
    }
  } finally {
    fs.closeSync(fa);
    fs.closeSync(fb);
  }
}

/** CPU seconds of this process's reaped children (/proc/self/stat cutime + cstime), or NaN off Linux. */
export function childrenCpuSeconds(): number {
  try {
    const f = fs.readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
    return (Number(f[13]) + Number(f[14])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}

/** Children's CPU seconds since `before`, once the last child has been reaped (its time counts only then). */
export async function childCpuSince(before: number): Promise<number> {
  for (let i = 0; i < 40 && childrenCpuSeconds() === before; i++) await new Promise((r) => setTimeout(r, 50));
  return Math.round((childrenCpuSeconds() - before) * 10) / 10;
}

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const li = argv.indexOf('--layers');
  const layers = li >= 0 ? parseInt(argv[li + 1], 10) : 32;
  // LLaMA-7B: 4096 wide, 32 layers, FFN 11008, 32 heads, vocabulary 32000 (3 + 256 byte tokens + words).
  const spec: TinyLlamaSpec = {
    nLayer: layers, nEmbd: 4096, nFf: 11008, nHead: 32, nHeadKv: 32, nWords: 32000 - 259, dtype: 'F16', seed: 7, pool: 1 << 22,
  };
  fs.mkdirSync(DATA, { recursive: true });
  const src = path.join(DATA, `llama7b-${layers}l-f16.gguf`);
  if (!fs.existsSync(src)) writeLlamaGguf(src, spec);
  const ours = path.join(DATA, 'convert-ours-Q4_K_M.gguf'), ref = path.join(DATA, 'convert-llamacpp-Q4_K_M.gguf');
  for (const f of [ours, ref]) fs.rmSync(f, { force: true });
  const tag = layers === 32 ? '7b' : `7b_${layers}l`;
  const out: Record<string, unknown> = { source_GB: Math.round(fs.statSync(src).size / 1e7) / 100 };

  const pool = new WorkerPool({ size: 2 });
  // Peak resident memory of this process (the workers are threads of it) while ours runs.
  let peak = 0;
  const sampler = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 100);
  try {
    const t0 = process.hrtime.bigint();
    const c0 = process.cpuUsage();
    const r = await convertGguf(src, ours, { preset: 'Q4_K_M', pool });
    out.convert_gguf_peak_rss_MB = Math.round(Math.max(peak, process.memoryUsage().rss) / 2 ** 20);
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    out[`convert_gguf_q4_k_m_${tag}_s`] = Math.round(s * 10) / 10;
    // CPU seconds of the whole process (main thread and pool workers): the 2-core VM is shared, so wall time drifts.
    const c = process.cpuUsage(c0);
    out.convert_gguf_cpu_s = Math.round((c.user + c.system) / 1e5) / 10;
    out.convert_gguf_encode_s = Math.round(r.seconds.convert * 10) / 10;
    out.convert_gguf_verify_s = Math.round(r.seconds.verify * 10) / 10;
    out.convert_gguf_bpw = Math.round(r.totals.bpw * 1000) / 1000;
  } finally {
    clearInterval(sampler);
    await pool.close();
  }
  const t1 = process.hrtime.bigint();
  const cc0 = childrenCpuSeconds();
  const own = await llamaModelQuantize(src, ref, { ftype: GGUF_PRESETS.Q4_K_M.ftype, nthread: 2 }, { timeoutMs: 4 * 3600e3 });
  out[`llamacpp_q4_k_m_${tag}_s`] = Math.round((Number(process.hrtime.bigint() - t1) / 1e9) * 10) / 10;
  out.llamacpp_own_timer_s = Math.round(own * 10) / 10;
  // llama.cpp runs in a child process: its CPU seconds (node start-up and library load included, well under a second).
  out.llamacpp_cpu_s = await childCpuSince(cc0);
  out.ratio_wall = Math.round((out[`convert_gguf_q4_k_m_${tag}_s`] as number) / (out[`llamacpp_q4_k_m_${tag}_s`] as number) * 100) / 100;
  out.ratio_cpu = Math.round((out.convert_gguf_cpu_s as number) / (out.llamacpp_cpu_s as number) * 100) / 100;
  out.outputs_identical = sameFiles(ours, ref);
  for (const f of [ours, ref]) fs.rmSync(f, { force: true });
  return out;
}

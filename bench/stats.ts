/**
 * `npm run bench -- stats [--json] [--small] [--7b]`: statistics throughput against
 * this machine's memory-read bandwidth. Generates (once, then reuses) a 2 GiB
 * float32 and a 2 GiB float16 safetensors file under bench/.data/, reads them
 * once to warm the page cache, then times the full statistics pass through
 * the worker pool with 1 and 2 workers. Kernel figures run in place on a
 * 256 MiB float32 region in WASM memory. --7b also times a LLaMA-7B-shaped
 * float16 checkpoint (13.5 GB, generated once) with 2 workers. Nothing is asserted.
 *
 * `--sens7b` runs only the weight-space sensitivity figures on that checkpoint:
 * sens_weight_7b_s is the wall time of `analyseSensitivity` (every weight matrix,
 * every catalogue config, min-max and MSE calibrators, the default 1M-element
 * sample per tensor) on a pool of 2 workers, best of 2 runs (the first also
 * pulls the sampled rows into the page cache); `_cpu_s` is the CPU time of
 * the whole process (all threads) in that run, the fair figure on a shared machine.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../src/formats/index';
import { analyseModel } from '../src/pipelines/analyseModel';
import { analyseSensitivity } from '../src/pipelines/analyseSensitivity';
import { WasmKernel, f32Down, f32Up } from '../src/kernels/statsKernel';
import { StatsOptions, analyseArray, channelLayout, finalize, pass2Params, resolveOptions, runPass1, runPass2 } from '../src/analysis/weightStats';
import { isAnalysable, tensorSource } from '../src/analysis/tensorSource';
import { WorkerPool } from '../src/jobs/pool';
import { rng } from '../test/random';

const DATA = path.join(__dirname, '..', '..', 'bench', '.data');


/** Roughly weight-like values: a narrow bell with occasional large outliers. */
function fillWeights(a: Float32Array, r: () => number): void {
  for (let i = 0; i < a.length; i++) {
    const u = r() + r() + r() + r() - 2;
    a[i] = r() < 1e-4 ? u * 0.5 : u * 0.02;
  }
}

const cvF = new Float32Array(1);
const cvU = new Uint32Array(cvF.buffer);
function f32ToF16(v: number): number {
  // Round-to-nearest-even float32 -> float16 for |v| in the normal half range (bench data only).
  cvF[0] = v;
  const b = cvU[0];
  const sign = (b >>> 16) & 0x8000;
  const e = ((b >>> 23) & 0xff) - 127 + 15;
  if (e <= 0) return sign;
  if (e >= 31) return sign | 0x7c00;
  let h = sign | (e << 10) | ((b >>> 13) & 0x3ff);
  const rest = b & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return h;
}

/**
 * Writes a safetensors file once: the JSON header (space-padded to 8 bytes) and `dataBytes` of
 * tensor data from `writeData`, through a temp file renamed at the end. A file of the right size
 * is kept as it is.
 */
function writeSafetensorsOnce(file: string, header: Record<string, unknown>, dataBytes: number, writeData: (fd: number) => void): void {
  let json = JSON.stringify(header);
  while ((json.length + 8) % 8) json += ' ';
  if (fs.existsSync(file) && fs.statSync(file).size === 8 + json.length + dataBytes) return;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  const fd = fs.openSync(tmp, 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeSync(fd, len);
  fs.writeSync(fd, Buffer.from(json));
  writeData(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

function ensureFile(file: string, dtype: 'F32' | 'F16', tensors: number, rows: number, cols: number): void {
  const bpe = dtype === 'F32' ? 4 : 2;
  const per = rows * cols * bpe;
  const header: Record<string, unknown> = {};
  for (let i = 0; i < tensors; i++) header[`layers.${i}.weight`] = { dtype, shape: [rows, cols], data_offsets: [i * per, (i + 1) * per] };
  writeSafetensorsOnce(file, header, tensors * per, (fd) => {
    // One random block, rotated and rescaled per chunk: generating 1G fresh values would dominate the bench.
    const r = rng(42);
    const pool = new Float32Array(1 << 22);
    fillWeights(pool, r);
    const chunk = new Float32Array(pool.length);
    const h = new Uint16Array(chunk.length);
    for (let done = 0; done < tensors * rows * cols; done += chunk.length) {
      const rot = Math.floor(r() * pool.length), scale = 0.5 + r();
      for (let i = 0; i < chunk.length; i++) chunk[i] = pool[(i + rot) & (pool.length - 1)] * scale;
      if (dtype === 'F32') fs.writeSync(fd, new Uint8Array(chunk.buffer));
      else { for (let i = 0; i < chunk.length; i++) h[i] = f32ToF16(chunk[i]); fs.writeSync(fd, new Uint8Array(h.buffer)); }
    }
  });
}

/** LLaMA-7B's tensor names and shapes (6.74B parameters), float16: the checkpoint the 5 s figure is about. */
function llama7bTensors(): [string, number[]][] {
  const d = 4096, ff = 11008, vocab = 32000;
  const t: [string, number[]][] = [['model.embed_tokens.weight', [vocab, d]]];
  for (let i = 0; i < 32; i++) {
    const p = `model.layers.${i}.`;
    for (const n of ['q_proj', 'k_proj', 'v_proj', 'o_proj']) t.push([`${p}self_attn.${n}.weight`, [d, d]]);
    t.push([`${p}mlp.gate_proj.weight`, [ff, d]], [`${p}mlp.up_proj.weight`, [ff, d]], [`${p}mlp.down_proj.weight`, [d, ff]]);
    t.push([`${p}input_layernorm.weight`, [d]], [`${p}post_attention_layernorm.weight`, [d]]);
  }
  t.push(['model.norm.weight', [d]], ['lm_head.weight', [vocab, d]]);
  return t;
}

/** Writes (once) a float16 safetensors file with these tensors, filled with weight-like values. */
function ensureNamedF16(file: string, tensors: [string, number[]][]): void {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const [name, shape] of tensors) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 2;
    header[name] = { dtype: 'F16', shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  writeSafetensorsOnce(file, header, off, (fd) => {
    const r = rng(7);
    const pool = new Float32Array(1 << 22);
    fillWeights(pool, r);
    const codes = new Uint16Array(pool.length);
    for (let i = 0; i < pool.length; i++) codes[i] = f32ToF16(pool[i]);
    const block = new Uint16Array(1 << 24);
    for (let done = 0; done < off / 2; done += block.length) {
      const rot = Math.floor(r() * codes.length);
      for (let i = 0; i < block.length; i++) block[i] = codes[(i + rot) & (codes.length - 1)];
      const n = Math.min(block.length, off / 2 - done);
      fs.writeSync(fd, new Uint8Array(block.buffer, 0, n * 2));
    }
  });
}

function warm(file: string): void {
  const fd = fs.openSync(file, 'r');
  const b = Buffer.alloc(1 << 20);
  let pos = 0;
  for (;;) { const n = fs.readSync(fd, b, 0, b.length, pos); if (!n) break; pos += n; }
  fs.closeSync(fd);
}

/** Best wall time of `reps` runs. */
function best(reps: number, f: () => void): number {
  let t = Infinity;
  for (let i = 0; i < reps; i++) { const s = process.hrtime.bigint(); f(); t = Math.min(t, Number(process.hrtime.bigint() - s) / 1e9); }
  return t;
}
/** CPU seconds (user + system, all threads of this process) spent in f: on a shared, loaded machine this is the fair per-core figure. */
async function cpuSeconds(f: () => unknown): Promise<number> {
  const c = process.cpuUsage();
  await f();
  const d = process.cpuUsage(c);
  return (d.user + d.system) / 1e6;
}

const gbs = (bytes: number, s: number) => Math.round((bytes / 1e9 / s) * 100) / 100;

/**
 * Each float32 pass alone over the file's tensors, in this thread (best of 2): where the two-pass
 * time goes, and pass 1 alone is what any one-pass design that keeps pass 1's work would cost.
 */
function passesAlone(m: ReturnType<typeof openModel>): Record<string, number> {
  const o = resolveOptions({});
  const k = new WasmKernel(o.chunkElements);
  let t1 = Infinity, t2 = Infinity, bytes = 0;
  for (let rep = 0; rep < 2; rep++) {
    let a = 0, b = 0;
    bytes = 0;
    for (const t of m.tensors) {
      if (!isAnalysable(t)) continue;
      const n = t.numel;
      bytes += n * 4;
      const src = tensorSource(m, t);
      const layout = channelLayout(t.shape, t.layer.outputChannelAxis);
      try {
        const s0 = process.hrtime.bigint();
        const p1 = runPass1(src, k, [0, n], o, layout);
        const s1 = process.hrtime.bigint();
        const params = pass2Params(p1, o);
        finalize(p1, runPass2(src, k, [0, n], params, o), params, o, layout);
        a += Number(s1 - s0) / 1e9;
        b += Number(process.hrtime.bigint() - s1) / 1e9;
      } finally { src.close(); }
    }
    t1 = Math.min(t1, a);
    t2 = Math.min(t2, b);
  }
  return { f32_pass1_alone_1thread_GBps: gbs(bytes, t1), f32_pass2_and_finalize_alone_1thread_GBps: gbs(bytes, t2) };
}

/** Weight-space sensitivity of the 7B-shaped checkpoint through a pool of 2 workers (see the header). */
async function sens7b(): Promise<Record<string, number | string>> {
  const out: Record<string, number | string> = { load_average_1m: Number(os.loadavg()[0].toFixed(2)) };
  const file = path.join(DATA, 'llama7b-f16.safetensors');
  ensureNamedF16(file, llama7bTensors());
  const m = openModel(file);
  const pool = new WorkerPool({ size: 2 });
  try {
    await analyseSensitivity(m, { pool, filter: (t) => t.name === 'model.layers.0.self_attn.q_proj.weight' }); // start the workers
    let bestWall = Infinity;
    for (let rep = 0; rep < 2; rep++) {
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      const r = await analyseSensitivity(m, { pool });
      const cpu = process.cpuUsage(c0);
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      if (r.failed.length) throw new Error(`bench sensitivity failed: ${r.failed[0].name}: ${r.failed[0].error}`);
      if (wall >= bestWall) continue;
      bestWall = wall;
      const cpuS = (cpu.user + cpu.system) / 1e6;
      const measured = r.tensors.reduce((a, t) => a + t.sensitivity.measuredElements, 0);
      out.sens_weight_7b_s = Math.round(wall * 100) / 100;
      out.sens_weight_7b_cpu_s = Math.round(cpuS * 100) / 100;
      out.sens_weight_7b_tensors = r.tensors.length;
      out.sens_weight_7b_configs = r.tensors[0]?.sensitivity.configs.length ?? 0;
      out.sens_weight_7b_measured_Melements = Math.round(measured / 1e4) / 100;
      out.sens_weight_7b_Melements_per_cpu_s = Math.round((measured / 1e6 / cpuS) * 100) / 100;
    }
  } finally { await pool.close(); m.close(); }
  out.load_average_1m_after = Number(os.loadavg()[0].toFixed(2));
  out.cores = os.availableParallelism();
  return out;
}

export async function run(argv: string[]): Promise<Record<string, number | string>> {
  if (argv.includes('--sens7b')) return sens7b();
  const small = argv.includes('--small');
  const out: Record<string, number | string> = {};

  // Kernels in place on a 256 MiB region: plain sum (read bandwidth), moments, histogram.
  const n = (small ? 16 : 64) << 20;
  const k = new WasmKernel(65536);
  const region = k.benchRegion(n);
  fillWeights(region.view, rng(1));
  const bytes = n * 4;
  region.sum();
  out.mem_read_wasm_simd_GBps = gbs(bytes, best(5, () => region.sum()));
  out.moments_kernel_GBps = gbs(bytes, best(3, () => region.moments(32768, 1e-6)));
  out.moments_kernel_per_cpu_s_GBps = gbs(bytes, await cpuSeconds(() => region.moments(32768, 1e-6)));
  out.mem_read_per_cpu_s_GBps = gbs(bytes, await cpuSeconds(() => region.sum()));
  const s = analyseArray(region.view.subarray(0, 1 << 20));
  const scale = 2048 / (s.max - s.min);
  out.topk_filter_kernel_GBps = gbs(bytes, best(3, () => region.above(32768, s.absMax)));
  out.hist_kernel_GBps = gbs(bytes, best(3, () => region.hist(32768, s.min, scale, f32Up(s.mean - 6 * s.std), f32Down(s.mean + 6 * s.std))));
  // Per-output-channel pass (axis 0 and last axis) on an in-memory 4096×4096 tensor, all passes, in this thread.
  const tensor = region.view.slice(0, 4096 * 4096);
  for (const [label, axis] of [['full_inmem_no_channels', undefined], ['full_inmem_channels_axis0', 0], ['full_inmem_channels_lastaxis', 1]] as const) {
    out[`${label}_GBps`] = gbs(tensor.byteLength, best(2, () => analyseArray(tensor, {}, [4096, 4096], axis)));
    out[`${label}_per_cpu_s_GBps`] = gbs(tensor.byteLength, await cpuSeconds(() => analyseArray(tensor, {}, [4096, 4096], axis)));
  }

  // Whole files through the pool.
  const files = {
    f32: path.join(DATA, small ? 'stats-f32-small.safetensors' : 'stats-f32.safetensors'),
    f16: path.join(DATA, small ? 'stats-f16-small.safetensors' : 'stats-f16.safetensors'),
  };
  const tensors = small ? 4 : 16;
  ensureFile(files.f32, 'F32', tensors, 4096, small ? 2048 : 8192);
  ensureFile(files.f16, 'F16', tensors, 8192, small ? 2048 : 8192);
  for (const [dt, file] of Object.entries(files)) {
    warm(file);
    const m = openModel(file);
    out[`${dt}_file_GB`] = Math.round((m.sizeOnDisk / 1e9) * 1000) / 1000;
    const pools = [new WorkerPool({ size: 1 }), new WorkerPool({ size: 2 })];
    try {
      // Start the workers and let their JIT warm up on one tensor.
      for (const pool of pools) await analyseModel(m, { pool, filter: (t) => t.name === 'layers.0.weight' });
      const variants: [string, StatsOptions][] = dt === 'f16'
        ? [['exact16_1pass', {}], ['f32_2pass', { exact16: false }]]
        : [['2pass', {}]];
      for (const [label, stats] of variants) {
        // 1 and 2 workers alternate, best of `reps` each: this VM's speed drifts over minutes.
        const reps = label === 'f32_2pass' ? 1 : 2;
        for (let rep = 0; rep < reps; rep++) {
          for (const pool of pools) {
            const t0 = process.hrtime.bigint();
            const c0 = process.cpuUsage();
            const r = await analyseModel(m, { pool, stats });
            const cpu = process.cpuUsage(c0);
            const sec = Number(process.hrtime.bigint() - t0) / 1e9;
            if (r.failed.length) throw new Error(`bench analysis failed: ${r.failed[0].error}`);
            const name = `${dt}_full_pass_${label}_${pool.size}w`;
            const prev = out[`${name}_GBps`];
            if (typeof prev === 'number' && prev >= gbs(m.sizeOnDisk, sec)) continue;
            out[`${name}_GBps`] = gbs(m.sizeOnDisk, sec);
            out[`${name}_per_cpu_s_GBps`] = gbs(m.sizeOnDisk, (cpu.user + cpu.system) / 1e6);
          }
        }
      }
      if (dt === 'f32') Object.assign(out, passesAlone(m));
    } finally { await Promise.all(pools.map((p) => p.close())); m.close(); }
  }
  if (argv.includes('--7b')) {
    // 13.5 GB: generated once under bench/.data (about a minute), then page-cached by the warm read.
    const file = path.join(DATA, 'llama7b-f16.safetensors');
    ensureNamedF16(file, llama7bTensors());
    warm(file);
    const m = openModel(file);
    const pool = new WorkerPool({ size: 2 });
    try {
      await analyseModel(m, { pool, filter: (t) => t.name === 'model.norm.weight' });
      let best = Infinity;
      for (let rep = 0; rep < 2; rep++) {
        const t0 = process.hrtime.bigint();
        const r = await analyseModel(m, { pool });
        best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
        if (r.failed.length) throw new Error(`bench analysis failed: ${r.failed[0].error}`);
        out.llama7b_f16_tensors = r.tensors.length;
      }
      out.llama7b_f16_file_GB = Math.round((m.sizeOnDisk / 1e9) * 100) / 100;
      out.llama7b_f16_2w_seconds = Math.round(best * 100) / 100;
      out.llama7b_f16_2w_GBps = gbs(m.sizeOnDisk, best);
    } finally { await pool.close(); m.close(); }
  }
  out.loadavg_1min_at_end = Math.round(os.loadavg()[0] * 10) / 10;
  out.cores = os.availableParallelism();
  for (const dt of ['f32', 'f16']) {
    const label = dt === 'f32' ? '2pass' : 'exact16_1pass';
    const a = out[`${dt}_full_pass_${label}_1w_GBps`], b = out[`${dt}_full_pass_${label}_2w_GBps`];
    if (typeof a === 'number' && typeof b === 'number' && a > 0) out[`${dt}_2w_over_1w_wall`] = Math.round((b / a) * 100) / 100;
    // Bytes per CPU-second with 2 workers over 1: the parallel efficiency, so 2 × this is the
    // speed-up two free cores would give (wall figures cannot show it on a loaded shared machine).
    const ca = out[`${dt}_full_pass_${label}_1w_per_cpu_s_GBps`], cb = out[`${dt}_full_pass_${label}_2w_per_cpu_s_GBps`];
    if (typeof ca === 'number' && typeof cb === 'number' && ca > 0) out[`${dt}_2w_cpu_efficiency`] = Math.round((cb / ca) * 100) / 100;
  }
  out.note = 'full_pass figures are the best of 2 runs, 1 and 2 workers alternating (f32_2pass of the f16 file: 1 run); full_pass = every statistic incl. histograms and exact percentiles; 2pass = float32 passes (moments + key buckets, then histogram + outliers + percentile refinement), exact16_1pass = float16 code counting; GB/s of file bytes, page-cached; per_cpu_s = bytes per CPU-second of the whole process (fair on a loaded machine); f32_pass*_alone = each float32 pass by itself over the f32 file in the bench thread, best of 2';
  return out;
}

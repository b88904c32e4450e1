/**
 * GPTQ time for a 4096×4096 layer with 512 calibration tokens (H = XᵀX, then
 * GPTQ 4-bit with groups of 128), measured for real:
 *   npm run bench -- quantalgo [--json] [--workers N] [--skip-1worker] [--gptq-size N]
 * gptq_4096x4096_s runs the rows on a worker pool (2 workers by default; the
 * Hessian and its factorisation stay on the calling thread), and
 * gptq_4096x4096_1worker_s the same code with one worker. CPU seconds are the
 * whole process's (all threads), which is the fairer figure on a shared
 * machine. `--gptq-size N` (a multiple of 128) measures a smaller layer
 * instead and extrapolates (XᵀX ∝ N², GPTQ ∝ N³), saying so in the note.
 * The GGUF encoder figures live in bench/quant.ts.
 */
import { gptq, gptqHessian } from '../src/quant/algorithms/gptq';
import { gptqParallel } from '../src/pipelines/gptqParallel';
import { WorkerPool } from '../src/jobs/pool';
import * as os from 'node:os';

function arg(argv: string[], name: string, dflt: number): number {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? Number(argv[i + 1]) : dflt;
}

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s + 0.5) / 4294967296;
  };
}

function normal(r: () => number): number {
  return Math.sqrt(-2 * Math.log(r())) * Math.cos(2 * Math.PI * r());
}

/** Wall-clock seconds of f. */
function seconds(f: () => void): number {
  const t0 = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t0) / 1e9;
}

const TOKENS = 512;

/** A size×size layer and correlated calibration activations (64 latent factors), deterministic. */
function layerAndActivations(size: number): { w: Float32Array; x: Float32Array } {
  const r = lcg(42);
  const w = Float32Array.from({ length: size * size }, () => normal(r) * 0.02);
  const latent = 64;
  const mix = Float32Array.from({ length: latent * size }, () => normal(r));
  const x = new Float32Array(TOKENS * size);
  const z = new Float64Array(latent);
  for (let t = 0; t < TOKENS; t++) {
    for (let k = 0; k < latent; k++) z[k] = normal(r);
    for (let j = 0; j < size; j++) {
      let s = 0.1 * normal(r);
      for (let k = 0; k < latent; k++) s += z[k] * mix[k * size + j];
      x[t * size + j] = s;
    }
  }
  return { w, x };
}

/** Seconds for XᵀX and for single-thread GPTQ on a size×size layer (bench/quant.ts uses this too). */
export function gptqOnce(size: number): { hessian: number; quantize: number } {
  const { w, x } = layerAndActivations(size);
  let h: Float64Array = new Float64Array(0);
  const hessian = seconds(() => { h = gptqHessian(x, TOKENS, size); });
  const quantize = seconds(() => { gptq(w, size, size, h, OPTS); });
  return { hessian, quantize };
}

const OPTS = { bits: 4, symmetric: true, groupSize: 128, blockSize: 128 };

interface PoolTiming { hessian: number; plan: number; total: number; cpuHessian: number; cpuPlan: number; cpu: number }

/** Wall seconds of XᵀX + GPTQ with the rows on `workers` workers; cpu covers every thread of the process. */
async function gptqOnPool(w: Float32Array, x: Float32Array, size: number, workers: number): Promise<PoolTiming> {
  const pool = new WorkerPool({ size: workers, maxOldGenerationSizeMb: 2048 });
  try {
    // Start the workers (and JIT their code) outside the timed region.
    const s = 128;
    await gptqParallel(w.subarray(0, s * s), s, s, gptqHessian(x.subarray(0, TOKENS * s), TOKENS, s), OPTS, { pool });
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const at = () => Number(process.hrtime.bigint() - t0) / 1e9;
    const h = gptqHessian(x, TOKENS, size);
    const hessian = at();
    const ch = process.cpuUsage(c0);
    let plan = 0, cpuPlan = 0;
    await gptqParallel(w, size, size, h, OPTS, {
      pool,
      onPlanned: () => {
        plan = at() - hessian;
        const c = process.cpuUsage(c0);
        cpuPlan = (c.user + c.system) / 1e6 - (ch.user + ch.system) / 1e6;
      },
    });
    const total = at();
    const c = process.cpuUsage(c0);
    return { hessian, plan, total, cpuHessian: (ch.user + ch.system) / 1e6, cpuPlan, cpu: (c.user + c.system) / 1e6 };
  } finally {
    await pool.close();
  }
}

export async function run(argv: string[]): Promise<Record<string, number | string>> {
  const n = 4096;
  const size = arg(argv, '--gptq-size', n);
  const workers = arg(argv, '--workers', 2);
  if (!Number.isInteger(size) || size < 128 || size % 128 !== 0) throw new Error(`bench quantalgo: --gptq-size must be a multiple of 128, got ${size}`);
  if (!Number.isInteger(workers) || workers < 1) throw new Error(`bench quantalgo: --workers must be a positive integer, got ${workers}`);
  gptqOnce(128); // JIT warm-up of the calling thread
  const { w, x } = layerAndActivations(size);
  // Hessian time scales with N², everything after it (plan and rows) with N³.
  const f = n / size;
  const scale = (t: PoolTiming, key: 'hessian' | 'plan') => key === 'hessian' ? t.hessian * f * f : t[key] * f * f * f;
  const est = (t: PoolTiming) => t.hessian * f * f + (t.total - t.hessian) * f * f * f;
  const cpu = (t: PoolTiming) => t.cpuHessian * f * f + (t.cpu - t.cpuHessian) * f * f * f;
  const out: Record<string, number | string> = {};
  const multi = await gptqOnPool(w, x, size, workers);
  out.gptq_4096x4096_s = +est(multi).toFixed(2);
  out.gptq_4096x4096_cpu_s = +cpu(multi).toFixed(2);
  out.gptq_4096x4096_hessian_s = +scale(multi, 'hessian').toFixed(2);
  out.gptq_4096x4096_plan_s = +scale(multi, 'plan').toFixed(2);
  out.gptq_4096x4096_rows_s = +((multi.total - multi.hessian - multi.plan) * f * f * f).toFixed(2);
  // Per phase in CPU seconds: while the calling thread works the workers idle, and the rows
  // phase is split evenly, so on an otherwise idle machine the wall time would be about
  // hessian + plan + rows / workers. On a loaded shared machine the wall figures above are not.
  const rowsCpu = (t: PoolTiming) => (t.cpu - t.cpuHessian - t.cpuPlan) * f * f * f;
  out.gptq_4096x4096_hessian_cpu_s = +(multi.cpuHessian * f * f).toFixed(2);
  out.gptq_4096x4096_plan_cpu_s = +(multi.cpuPlan * f * f * f).toFixed(2);
  out.gptq_4096x4096_rows_cpu_s = +rowsCpu(multi).toFixed(2);
  out.gptq_4096x4096_idle_estimate_s = +(multi.cpuHessian * f * f + multi.cpuPlan * f * f * f + rowsCpu(multi) / workers).toFixed(2);
  out.gptq_workers = workers;
  if (!argv.includes('--skip-1worker')) {
    const one = await gptqOnPool(w, x, size, 1);
    out.gptq_4096x4096_1worker_s = +est(one).toFixed(2);
    out.gptq_4096x4096_1worker_cpu_s = +cpu(one).toFixed(2);
    out.gptq_4096x4096_1worker_rows_s = +((one.total - one.hessian - one.plan) * f * f * f).toFixed(2);
  }
  out.gptq_4096x4096_note = size === n
    ? `measured, ${TOKENS} tokens, 4-bit groups of 128; XᵀX and the plan on the calling thread, rows on the workers; cpu = all threads`
    : `extrapolated from ${size}x${size} (XᵀX ∝ N², the rest ∝ N³), ${TOKENS} tokens`;
  out.gptq_load_average = os.loadavg().map((v) => v.toFixed(1)).join(' ');
  return out;
}

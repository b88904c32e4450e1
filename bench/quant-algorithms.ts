/**
 * GPTQ time for a 4096×4096 layer with 512 calibration tokens (H = XᵀX, then
 * GPTQ 4-bit with groups of 128):
 *   npm run bench -- quantalgo [--json] [--gptq-size N]
 * Pure TypeScript on one core takes minutes at 4096, so by default an N×N
 * layer (N = 1024) is measured and the time extrapolated: XᵀX scales with N²,
 * GPTQ with N³ (its factorisation and lazy updates are cubic). The measured
 * size and raw times are printed beside the figure; `--gptq-size 4096`
 * measures the real thing. The GGUF encoder figures live in bench/quant.ts.
 */
import { gptq, gptqHessian } from '../src/quant/algorithms/gptq';

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

let cpuSeconds = 0;

/** Wall-clock seconds of f; its on-CPU seconds accumulate in cpuSeconds (a fairer figure on a shared machine). */
function seconds(f: () => void): number {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  f();
  const c = process.cpuUsage(c0);
  cpuSeconds += (c.user + c.system) / 1e6;
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

/** Seconds for XᵀX and for GPTQ on a size×size layer. */
export function gptqOnce(size: number): { hessian: number; quantize: number } {
  const { w, x } = layerAndActivations(size);
  let h: Float64Array = new Float64Array(0);
  const hessian = seconds(() => { h = gptqHessian(x, TOKENS, size); });
  const quantize = seconds(() => { gptq(w, size, size, h, { bits: 4, symmetric: true, groupSize: 128, blockSize: 128 }); });
  return { hessian, quantize };
}

export async function run(argv: string[]): Promise<Record<string, number | string>> {
  const n = 4096;
  const size = arg(argv, '--gptq-size', 1024);
  if (!Number.isInteger(size) || size < 128 || size % 128 !== 0) throw new Error(`bench quantalgo: --gptq-size must be a multiple of 128, got ${size}`);
  gptqOnce(128); // JIT warm-up
  cpuSeconds = 0;
  const { hessian, quantize } = gptqOnce(size);
  const cpu = cpuSeconds;
  const f = n / size;
  return {
    gptq_4096x4096_s: +(hessian * f * f + quantize * f * f * f).toFixed(2),
    gptq_4096x4096_s_note: size === n ? 'measured' : `extrapolated from ${size}x${size} (XᵀX ∝ N², GPTQ ∝ N³), one thread`,
    gptq_measured_size: `${size}x${size}, ${TOKENS} tokens`,
    gptq_measured_hessian_s: +hessian.toFixed(3),
    gptq_measured_quantize_s: +quantize.toFixed(3),
    gptq_measured_cpu_s: +cpu.toFixed(3),
  };
}

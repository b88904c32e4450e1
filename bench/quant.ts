/**
 * Quantization engine throughput: `npm run bench -- quant [--json] [--size 4096] [--only a,b] [--reps 3]`.
 * Figures are GB/s of float32 input (4 bytes per weight) on one core, or seconds.
 *
 * ADDING A FIGURE (GGUF encoders, GPTQ, ...): append one entry to `figures`
 * below. `run` receives the shared random weight (float32 [size, size],
 * N(0, 0.02²), row-major) and does the work once; the harness warms up, repeats
 * and reports the best repetition. For example:
 *
 *   { key: 'gguf_q8_0', unit: 'GB/s', run: async (t) => { (await import('../src/quant/ggml/q8_0.js')).quantizeRowQ8_0(t.w); } },
 *   { key: 'gptq_4096x4096_s', unit: 's', reps: 1, run: async (t) => { ... 512 calibration tokens ... } },
 *
 * Use `unit: 's'` for wall-clock seconds. Keep imports inside `run` so one
 * missing module does not break the other figures.
 */
import { quantizeCodes, quantizeCodesInto, quantizePacked4Into, quantOutputSizes, packInt4, packMatMulNBits, QuantSpec } from '../src/quant';

interface BenchTensor {
  /** float32 [rows, cols], row-major. */
  w: Float32Array;
  rows: number;
  cols: number;
}

interface Figure {
  key: string;
  unit: 'GB/s' | 's';
  /** Repetitions after one warm-up run (default from --reps). */
  reps?: number;
  /** Also report `<key>_cpu`: the rate over on-CPU time (process.cpuUsage), less sensitive to a busy machine. */
  cpu?: boolean;
  run(t: BenchTensor): void | Promise<void>;
}

const int8PerChannel: QuantSpec = { format: 'int', bits: 8, granularity: { kind: 'channel', axis: 0 } };
const int4G128: QuantSpec = { format: 'int', bits: 4, granularity: { kind: 'group', axis: 1, size: 128 } };

// GGUF figures encode into an output reused across repetitions, as a converter reuses its
// buffers: page-faulting a fresh 17-53 MB output costs more than encoding Q8_0 on a busy VM.
const ggufDst = new Map<string, Uint8Array>();
async function gguf(type: string, t: BenchTensor, impl: 'auto' | 'ref'): Promise<void> {
  const q = await import('../src/quant/ggml/quantize.js');
  const bytes = q.ggmlQuantizedSize(type, t.w.length);
  let dst = ggufDst.get(type);
  if (!dst || dst.length !== bytes) ggufDst.set(type, (dst = new Uint8Array(bytes)));
  q.quantizeGgmlInto(type, t.w, 0, dst, 0, t.w.length, { impl });
}

// RTN outputs reused across repetitions, as a converter reuses them from tensor to tensor.
const rtnOut = new Map<string, { codes: Int8Array | Uint8Array; scales: Float32Array }>();
function rtnInto(t: BenchTensor, spec: QuantSpec, tag: string): Int8Array | Uint8Array {
  let o = rtnOut.get(tag);
  if (!o) {
    const z = quantOutputSizes([t.rows, t.cols], spec);
    o = { codes: z.signedCodes ? new Int8Array(z.numel) : new Uint8Array(z.numel), scales: new Float32Array(z.groups) };
    rtnOut.set(tag, o);
  }
  quantizeCodesInto(t.w, [t.rows, t.cols], spec, o);
  return o.codes;
}
const rtnPacked = new Map<string, { packed: Uint8Array; scales: Float32Array }>();
function rtnPacked4Into(t: BenchTensor, spec: QuantSpec, tag: string): void {
  let o = rtnPacked.get(tag);
  if (!o) rtnPacked.set(tag, (o = { packed: new Uint8Array((t.w.length + 1) >> 1), scales: new Float32Array(quantOutputSizes([t.rows, t.cols], spec).groups) }));
  quantizePacked4Into(t.w, [t.rows, t.cols], spec, o);
}

const figures: Figure[] = [
  // RTN figures produce what a converter stores (codes + scales), not the dequantized tensor.
  // rtn_int8_per_channel goes through quantizeCodesInto with outputs reused across runs (see rtn_note);
  // _alloc is quantizeCodes, which allocates fresh codes and scales every call.
  { key: 'rtn_int8_per_channel', unit: 'GB/s', cpu: true, run: (t) => { rtnInto(t, int8PerChannel, 'int8pc'); } },
  { key: 'rtn_int8_per_channel_alloc', unit: 'GB/s', cpu: true, run: (t) => { quantizeCodes(t.w, [t.rows, t.cols], int8PerChannel); } },
  // rtn_int4_g128_packed: quantizePacked4Into (packed in the module) into reused outputs; _alloc: quantizeCodes + packInt4.
  { key: 'rtn_int4_g128_packed', unit: 'GB/s', cpu: true, run: (t) => { rtnPacked4Into(t, int4G128, 'int4g128'); } },
  { key: 'rtn_int4_g128_packed_alloc', unit: 'GB/s', run: (t) => { packInt4(quantizeCodes(t.w, [t.rows, t.cols], int4G128).codes); } },
  { key: 'rtn_int8_per_channel_ref', unit: 'GB/s', reps: 1, run: (t) => { quantizeCodes(t.w, [t.rows, t.cols], int8PerChannel, { impl: 'ref' }); } },
  // A complete com.microsoft MatMulNBits weight (transpose, asymmetric uint4 per 32, packed B / scales / zero points).
  { key: 'matmulnbits_uint4_g32_asym', unit: 'GB/s', run: (t) => { packMatMulNBits(t.w, t.rows, t.cols, { bits: 4, blockSize: 32 }); } },
  { key: 'mse_clip_int4_g128', unit: 'GB/s', reps: 2, run: (t) => { quantizeCodes(t.w, [t.rows, t.cols], { ...int4G128, calibrator: 'mse' }); } },
  { key: 'mse_clip_int4_g128_ref', unit: 'GB/s', reps: 1, run: (t) => { quantizeCodes(t.w, [t.rows, t.cols], { ...int4G128, calibrator: 'mse' }, { impl: 'ref' }); } },
  // GGUF encoders (byte-exact with ggml's reference quantizers), the whole tensor each run.
  { key: 'gguf_q8_0', unit: 'GB/s', run: (t) => gguf('Q8_0', t, 'auto') },
  { key: 'gguf_q4_0', unit: 'GB/s', run: (t) => gguf('Q4_0', t, 'auto') },
  { key: 'gguf_q4_k', unit: 'GB/s', reps: 2, run: (t) => gguf('Q4_K', t, 'auto') },
  { key: 'gguf_q6_k', unit: 'GB/s', reps: 2, run: (t) => gguf('Q6_K', t, 'auto') },
  // The same encoders on the TypeScript reference path (what the WebAssembly kernels are tested against).
  { key: 'gguf_q8_0_ref', unit: 'GB/s', reps: 1, run: (t) => gguf('Q8_0', t, 'ref') },
  { key: 'gguf_q4_0_ref', unit: 'GB/s', reps: 1, run: (t) => gguf('Q4_0', t, 'ref') },
  { key: 'gguf_q4_k_ref', unit: 'GB/s', reps: 1, run: (t) => gguf('Q4_K', t, 'ref') },
  { key: 'gguf_q6_k_ref', unit: 'GB/s', reps: 1, run: (t) => gguf('Q6_K', t, 'ref') },
  // GPTQ at 4096x4096 takes minutes in pure TypeScript (and this harness runs every figure twice), so a
  // 1024x1024 layer is timed here; `npm run bench -- quantalgo` extrapolates to 4096x4096 or measures it.
  { key: 'gptq_1024x1024_s', unit: 's', reps: 1, run: async () => { (await import('./quant-algorithms.js')).gptqOnce(1024); } },
];

/** Deterministic N(0, sigma²) weights (mulberry32 + Box-Muller), so every run measures the same data. */
function randomWeights(n: number, seed: number, sigma: number): Float32Array {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 1) / 4294967297;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(u())) * sigma;
    const th = 2 * Math.PI * u();
    out[i] = r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = r * Math.sin(th);
  }
  return out;
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < argv.length) return argv[i + 1];
  const eq = argv.find((a) => a.startsWith(`--${name}=`));
  return eq?.slice(name.length + 3);
}

export async function run(argv: string[]): Promise<Record<string, number | string>> {
  const size = Number(flag(argv, 'size') ?? 4096);
  const reps = Number(flag(argv, 'reps') ?? 3);
  const only = flag(argv, 'only')?.split(',');
  if (!Number.isInteger(size) || size < 128) throw new Error(`bench quant: --size must be an integer >= 128, got ${flag(argv, 'size')}`);
  const t: BenchTensor = { w: randomWeights(size * size, 1234, 0.02), rows: size, cols: size };
  const out: Record<string, number | string> = { tensor: `${size}x${size} f32` };
  if (!only || only.some((k) => k.startsWith('rtn_'))) {
    out.rtn_note = 'rtn_int8_per_channel: quantizeCodesInto, rtn_int4_g128_packed: quantizePacked4Into, outputs reused across runs '
      + '(_alloc: fresh outputs per call); _cpu: rate over process.cpuUsage time';
  }
  for (const f of figures) {
    if (only && !only.includes(f.key)) continue;
    await f.run(t); // warm-up: JIT and allocation
    const times: number[] = [];
    const cpuTimes: number[] = [];
    for (let r = 0; r < (f.reps ?? reps); r++) {
      const c0 = process.cpuUsage();
      const t0 = process.hrtime.bigint();
      await f.run(t);
      times.push(Number(process.hrtime.bigint() - t0) / 1e9);
      const c = process.cpuUsage(c0);
      cpuTimes.push((c.user + c.system) / 1e6);
    }
    // The best repetition: on a machine shared with other jobs the median mostly measures the neighbours.
    const sec = Math.min(...times);
    out[f.key] = f.unit === 's' ? Number(sec.toFixed(3)) : Number((t.w.byteLength / sec / 1e9).toFixed(4));
    if (f.cpu && f.unit === 'GB/s') out[`${f.key}_cpu`] = Number((t.w.byteLength / Math.min(...cpuTimes) / 1e9).toFixed(4));
  }
  return out;
}

/**
 * Worker entry: runs statistics jobs for the pool. Built twice: by tsc to
 * out/src/worker/worker.js and by esbuild to dist/worker.js; the pool takes
 * the script path as an option.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openModel } from '../formats/index';
import type { ModelFile } from '../formats/types';
import { StatsKernel, WasmKernel } from '../analysis/kernels';
import { ChunkHook, ChunkSource, analyseSource, arraySource, channelLayout, isRaw16, resolveOptions, runCodes, runPass1, runPass2, ResolvedStatsOptions } from '../analysis/stats';
import { tensorSource } from '../analysis/tensorSource';
import { modelTensorSensitivity } from '../analysis/sensitivity';
import { gptqRows } from '../quant/algorithms/gptq';
import { digestGgufRange, encodeGgufSlab, readSourceSlab } from '../quant/ggml/slab';
import type { FileTensorRef, FromWorker, JobRequest, ToWorker, WorkerInit } from './protocol';

class Cancelled extends Error {
  constructor() { super('cancelled'); this.name = 'CancelledError'; }
}

const init = (workerData ?? { allowTestJobs: false }) as WorkerInit;
const models = new Map<string, ModelFile>();
let kernel: StatsKernel | undefined;

function kernelFor(o: ResolvedStatsOptions): StatsKernel {
  if (!kernel || kernel.capacity < o.chunkElements) kernel = new WasmKernel(Math.max(o.chunkElements, 65536));
  return kernel;
}

function model(path: string): ModelFile {
  let m = models.get(path);
  if (!m) {
    // A few open models at most: a worker serves one analysis at a time.
    if (models.size >= 4) {
      const [oldPath, old] = models.entries().next().value as [string, ModelFile];
      old.close();
      models.delete(oldPath);
    }
    m = openModel(path);
    models.set(path, m);
  }
  return m;
}

function fileTensor(ref: FileTensorRef) {
  const m = model(ref.path);
  const t = m.tensors.find((x) => x.name === ref.tensor);
  if (!t) throw new Error(`${ref.path}: no tensor named '${ref.tensor}'`);
  return { m, t };
}

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(msg, transfer);
}

function collectBuffers(v: unknown, out: ArrayBuffer[], seen = new Set<unknown>()): ArrayBuffer[] {
  if (v === null || typeof v !== 'object' || seen.has(v)) return out;
  seen.add(v);
  if (ArrayBuffer.isView(v)) {
    const b = v.buffer;
    // Transfer only buffers the view owns entirely (not WASM memory or shared pools).
    if (b instanceof ArrayBuffer && v.byteOffset === 0 && v.byteLength === b.byteLength && !out.includes(b)) out.push(b);
    return out;
  }
  // Arrays of numbers (histograms, per-channel values) hold no buffers: not walked element by element.
  if (Array.isArray(v) && (v.length === 0 || typeof v[0] !== 'object')) return out;
  for (const x of Object.values(v)) collectBuffers(x, out, seen);
  return out;
}

function run(id: number, job: JobRequest, cancel: Int32Array): unknown {
  // A job handed over ahead of time may have been cancelled while it waited.
  if (Atomics.load(cancel, 0) !== 0) throw new Cancelled();
  let last = 0;
  const progress = (total: number): ChunkHook => (done) => {
    if (Atomics.load(cancel, 0) !== 0) throw new Cancelled();
    const now = Date.now();
    if (now - last > 50 || done === total) { last = now; post({ type: 'progress', id, done, total }); }
  };
  switch (job.kind) {
    case 'analyse': {
      const o = resolveOptions(job.options);
      const k = kernelFor(o);
      if (job.source.kind === 'array') {
        const src = arraySource(job.source.data);
        const layout = job.source.shape ? channelLayout(job.source.shape, job.source.outputChannelAxis) : undefined;
        return analyseSource(src, o, layout, k, multiPass(progress, src.numel, 2));
      }
      const { m, t } = fileTensor(job.source);
      const src = tensorSource(m, t);
      try {
        const passes = o.exact16 && isRaw16(src) ? 1 : 2;
        return analyseSource(src, o, channelLayout(t.shape, t.layer.outputChannelAxis), k, multiPass(progress, t.numel, passes));
      } finally { src.close(); }
    }
    case 'pass1': case 'pass2': case 'codes16': {
      const o = resolveOptions(job.options);
      const k = kernelFor(o);
      const { m, t } = fileTensor(job.source);
      const [a, b] = job.range;
      if (!(Number.isSafeInteger(a) && Number.isSafeInteger(b) && 0 <= a && a <= b && b <= t.numel)) {
        throw new Error(`${job.source.path}: tensor ${t.name}: range [${a}, ${b}) outside its ${t.numel} elements`);
      }
      const src: ChunkSource & { close(): void } = tensorSource(m, t);
      const hook = progress(b - a);
      try {
        if (job.kind === 'codes16') {
          if (!isRaw16(src)) throw new Error(`${job.source.path}: tensor ${t.name}: codes16 needs a float16/bfloat16 tensor stored on disk, not ${t.dtype}`);
          return runCodes(src, k, job.range, o, channelLayout(t.shape, t.layer.outputChannelAxis), hook);
        }
        if (job.kind === 'pass1') return runPass1(src, k, job.range, o, channelLayout(t.shape, t.layer.outputChannelAxis), hook);
        return runPass2(src, k, job.range, job.params, o, hook);
      } finally { src.close(); }
    }
    case 'gptqRows': {
      const n = job.rows;
      if (!(Number.isSafeInteger(n) && n >= 0)) throw new Error(`gptqRows job: rows must be a non-negative integer, got ${n}`);
      // Progress in weights; the hook also polls the cancel flag once per block of columns.
      const hook = progress(n * job.plan.cols);
      return gptqRows(job.plan, job.weights, n, job.options, (c) => hook(c * n));
    }
    case 'sensitivity': {
      const { m, t } = fileTensor(job.source);
      return modelTensorSensitivity(m, t, job.options);
    }
    case 'ggufSlab': {
      const { m, t } = fileTensor(job.source);
      return encodeGgufSlab(readSourceSlab(m, t, job.start, job.count), job.to, job.rowLength, job.importance, job.impl);
    }
    case 'ggufDigest': {
      const { m, t } = fileTensor(job.source);
      return digestGgufRange(m, t, job.start, job.count, job.raw);
    }
    case 'test-crash': {
      if (!init.allowTestJobs) throw new Error('test jobs are disabled in this pool');
      if (job.how === 'exit') process.exit(3);
      if (job.how === 'throw') setImmediate(() => { throw new Error('deliberate crash from test-crash job'); });
      if (job.how === 'oom') {
        const hog: number[][] = [];
        for (;;) hog.push(new Array(1 << 20).fill(Math.random()));
      }
      return new Promise(() => { /* the worker dies before this settles */ });
    }
    case 'test-hang': {
      if (!init.allowTestJobs) throw new Error('test jobs are disabled in this pool');
      const end = Date.now() + job.ms;
      let sliced = 0;
      while (Date.now() < end) {
        if (job.cooperative && Atomics.load(cancel, 0) !== 0) throw new Cancelled();
        const s = Date.now();
        while (Date.now() - s < 1) { /* spin */ }
        sliced++;
      }
      return { sliced };
    }
  }
}

/** analyseSource makes up to three passes; report progress over all of them. */
function multiPass(progress: (total: number) => ChunkHook, numel: number, passes: number): ChunkHook {
  const hook = progress(passes * numel);
  let base = 0, prev = 0;
  return (done) => {
    if (done <= prev) base += numel; // a new pass started
    prev = done;
    hook(Math.min(base + done, passes * numel));
  };
}

if (parentPort) {
  parentPort.on('message', (msg: ToWorker) => {
    if (msg.type !== 'run') return;
    const { id, job, cancel } = msg;
    Promise.resolve()
      .then(() => run(id, job, cancel))
      .then(
        (result) => post({ type: 'done', id, result }, collectBuffers(result, [])),
        (e: unknown) => {
          const err = e instanceof Error ? e : new Error(String(e));
          post({ type: 'failed', id, error: { name: err.name, message: err.message, stack: err.stack }, cancelled: err instanceof Cancelled });
        },
      );
  });
}

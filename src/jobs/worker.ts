/**
 * Worker entry: runs the pool's jobs. Generic: each domain registers its
 * handlers (handlers/*.ts, one per job kind) and this file only dispatches,
 * polls cancellation, posts progress and hands results back without copying
 * the buffers they own. Built twice: by tsc to out/src/jobs/worker.js and by
 * esbuild to dist/worker.js; the pool takes the script path as an option.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CancelledError } from './cancel';
import { setNativeCallCounter } from '../shared/nativeCalls';
import type { Handlers, JobContext } from './handler';
import type { FromWorker, JobRequest, JobResults, ToWorker, WorkerInit } from './protocol';
import { statsHandlers } from './handlers/stats';
import { quantHandlers } from './handlers/quant';
import { testHandlers } from './handlers/test';
import { ggufHandlers } from './handlers/gguf';

import { runtimeHandlers } from './handlers/runtime';
import { compareHandlers } from './handlers/compare';
import { planHandlers } from './handlers/plan';

const handlers: Handlers<JobRequest, JobResults> = { ...statsHandlers, ...quantHandlers, ...ggufHandlers, ...runtimeHandlers, ...compareHandlers, ...planHandlers, ...testHandlers };

const init = (workerData ?? { allowTestJobs: false }) as WorkerInit;
if (init.nativeCalls) setNativeCallCounter(init.nativeCalls);

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
  const checkCancelled = () => { if (Atomics.load(cancel, 0) !== 0) throw new CancelledError('job'); };
  // A job handed over ahead of time may have been cancelled while it waited.
  checkCancelled();
  let last = 0;
  const ctx: JobContext = {
    cancel,
    checkCancelled,
    allowTestJobs: init.allowTestJobs,
    progress: (total) => (done) => {
      checkCancelled();
      const now = Date.now();
      if (now - last > 50 || done === total) { last = now; post({ type: 'progress', id, done, total }); }
    },
  };
  const handler = handlers[job.kind] as ((j: JobRequest, c: JobContext) => unknown) | undefined;
  if (!handler) throw new Error(`unknown job kind '${String((job as { kind?: unknown }).kind)}'`);
  return handler(job, ctx);
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
          post({ type: 'failed', id, error: { name: err.name, message: err.message, stack: err.stack }, cancelled: err instanceof CancelledError });
        },
      );
  });
}

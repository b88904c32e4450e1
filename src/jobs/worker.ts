/**
 * Worker entry: runs the pool's jobs, one at a time in the order they come.
 * Generic: each domain registers its handlers (handlers/*.ts, one per job
 * kind) and this file only dispatches, polls cancellation, posts progress and
 * hands results back. Two transports, one script: a worker thread (results'
 * buffers moved without copying, cancellation through shared memory) or,
 * for the job kinds that load a native runtime (protocol.ts nativeRuntimeOf),
 * a child process forked with WORKER_PROCESS_ARG (IPC with V8 serialization,
 * so typed arrays pass through; cancellation by message), where a native
 * abort ends only this process. Built twice: by tsc to out/src/jobs/worker.js
 * and by esbuild to dist/worker.js; the pool takes the script path as an option.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CancelledError } from './cancel';
import { setNativeCallCounter } from '../shared/nativeCalls';
import type { Handlers, JobContext } from './handler';
import { nativeRuntimeOf, WORKER_PROCESS_ARG } from './protocol';
import type { FromWorker, JobRequest, JobResults, ToWorker, WorkerInit } from './protocol';
import { statsHandlers } from './handlers/stats';
import { quantHandlers } from './handlers/quant';
import { testHandlers } from './handlers/test';
import { ggufHandlers } from './handlers/gguf';

import { runtimeHandlers } from './handlers/runtime';
import { compareHandlers } from './handlers/compare';
import { planHandlers } from './handlers/plan';

const handlers: Handlers<JobRequest, JobResults> = { ...statsHandlers, ...quantHandlers, ...ggufHandlers, ...runtimeHandlers, ...compareHandlers, ...planHandlers, ...testHandlers };

const asProcess = !parentPort && typeof process.send === 'function' && process.argv[2] === WORKER_PROCESS_ARG;
const init = (asProcess ? JSON.parse(process.argv[3]) : workerData ?? { allowTestJobs: false }) as WorkerInit;
if (init.nativeCalls) setNativeCallCounter(init.nativeCalls);

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  if (parentPort) parentPort.postMessage(msg, transfer);
  else process.send!(msg);
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
  if (!asProcess && nativeRuntimeOf(job)) throw new Error(`${job.kind} jobs load ${nativeRuntimeOf(job)!.runtime} and run only in a worker process, not a worker thread`);
  return handler(job, ctx);
}

/** Jobs waiting their turn, and the cancel flag of each job this worker holds. */
const waiting: { id: number; job: JobRequest }[] = [];
const flags = new Map<number, Int32Array>();
let busy = false;

async function drain(): Promise<void> {
  busy = true;
  while (waiting.length) {
    const { id, job } = waiting.shift()!;
    const cancel = flags.get(id)!;
    try {
      const result = await run(id, job, cancel);
      post({ type: 'done', id, result }, parentPort ? collectBuffers(result, []) : []);
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      post({ type: 'failed', id, error: { name: err.name, message: err.message, stack: err.stack }, cancelled: err instanceof CancelledError });
    } finally {
      flags.delete(id);
    }
  }
  busy = false;
}

function onMessage(msg: ToWorker): void {
  if (msg.type === 'cancel') {
    const f = flags.get(msg.id);
    if (f) Atomics.store(f, 0, 1);
    return;
  }
  flags.set(msg.id, msg.cancel ?? new Int32Array(1));
  waiting.push({ id: msg.id, job: msg.job });
  if (!busy) void drain();
}

if (parentPort) parentPort.on('message', onMessage);
else if (asProcess) {
  process.on('message', (m) => onMessage(m as ToWorker));
  // The pool's process is gone (or closed the channel): nothing is left to answer.
  process.on('disconnect', () => process.exit(0));
  // Ctrl+C in a terminal reaches the whole process group: the pool cancels or ends this worker itself.
  process.on('SIGINT', () => { /* ignored */ });
}

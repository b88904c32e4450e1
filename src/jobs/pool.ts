/**
 * A worker_threads pool for every domain's jobs (statistics, sensitivity,
 * GPTQ, ...: see handlers/ and protocol.ts). Jobs are queued FIFO and run one
 * at a time per worker; each worker is also handed the next job ahead of time
 * (`prefetch`), so it starts it the moment it posts a result instead of idling
 * for the round trip through this thread. A worker that crashes, exits or runs
 * out of memory fails only the job it was running (WorkerCrashedError); the
 * jobs handed to it ahead go back to the front of the queue (a job that moves
 * buffers is never handed ahead), and the worker is replaced on the next
 * dispatch.
 * Cancellation sets a shared flag the worker polls between chunks; a worker
 * that has not stopped `cancelGraceMs` later is terminated and replaced, so a
 * cancelled job always settles within that bound. A worker inside a native
 * call (onnxruntime-node: see shared/nativeCalls.ts) is never terminated,
 * since that aborts the whole process: its job settles as cancelled at the
 * bound, and the worker is replaced once the call has returned (or takes its
 * next job, if it stops by itself first).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { CancelledError } from './cancel';
import type { FromWorker, JobKind, JobOf, JobResults, ToWorker, WorkerInit } from './protocol';

export interface PoolOptions {
  /** Number of workers; default os.availableParallelism(), at least 1. */
  size?: number;
  /** Worker script; default worker.js next to this module (out/src/jobs or dist). */
  workerScript?: string;
  /** V8 old-generation limit per worker, MB. Default 1024. */
  maxOldGenerationSizeMb?: number;
  /** Allow the test-crash / test-hang job kinds. Only tests set this. */
  allowTestJobs?: boolean;
  /** How long a cancelled job may keep running before its worker is terminated. Default 100 ms. */
  cancelGraceMs?: number;
  /** Jobs handed to each worker at once: the running one and those waiting behind it. Default 2 (one ahead). */
  prefetch?: number;
}

export interface RunOptions {
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
  /** Buffers to move (not copy) to the worker, e.g. an in-memory tensor's data.buffer. */
  transfer?: ArrayBuffer[];
  /**
   * This job's grace after a cancel (default: the pool's). Jobs inside native
   * code that a terminate would abort mid-call (an ONNX Runtime run aborts the
   * whole process) set it long and check the flag between calls.
   */
  cancelGraceMs?: number;
}

export { CancelledError };
export class WorkerCrashedError extends Error {
  constructor(message: string) { super(message); this.name = 'WorkerCrashedError'; }
}
export class JobFailedError extends Error {
  constructor(message: string, readonly remoteName: string, readonly remoteStack?: string) {
    super(message);
    this.name = 'JobFailedError';
  }
}

interface Task {
  id: number;
  job: JobOf<JobKind>;
  opts: RunOptions;
  cancel: Int32Array;
  resolve(v: unknown): void;
  reject(e: Error): void;
  settled: boolean;
  slot?: Slot;
  onAbort?: () => void;
  killTimer?: NodeJS.Timeout;
}

/** tasks[0] is running (or about to); the rest wait in the worker's message queue. */
interface Slot { worker: Worker; tasks: Task[]; dead: boolean; /** Native calls in flight in the worker. */ nativeCalls: Int32Array }

export class WorkerPool {
  readonly size: number;
  private readonly script: string;
  private readonly opts: PoolOptions;
  private readonly slots: Slot[] = [];
  private readonly queue: Task[] = [];
  private nextId = 1;
  private closed = false;
  /** Workers started so far, replacements included (for tests and diagnostics). */
  workersStarted = 0;

  constructor(opts: PoolOptions = {}) {
    const n = opts.size ?? (typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length);
    this.size = Math.max(1, Math.floor(Number.isFinite(n) ? n : 1));
    this.script = opts.workerScript ?? path.join(__dirname, 'worker.js');
    this.opts = opts;
  }

  run<K extends JobKind>(job: JobOf<K>, opts: RunOptions = {}): Promise<JobResults[K]> {
    if (this.closed) return Promise.reject(new Error('worker pool is closed'));
    return new Promise<JobResults[K]>((resolve, reject) => {
      const task: Task = {
        id: this.nextId++, job, opts, cancel: new Int32Array(new SharedArrayBuffer(4)),
        resolve: resolve as (v: unknown) => void, reject, settled: false,
      };
      if (opts.signal?.aborted) { reject(new CancelledError(`${job.kind} job`)); return; }
      if (opts.signal) {
        task.onAbort = () => this.cancelTask(task);
        opts.signal.addEventListener('abort', task.onAbort, { once: true });
      }
      this.queue.push(task);
      this.pump();
    });
  }

  /** Live workers, jobs running or waiting in a worker, and jobs queued here: what tests and diagnostics check returns to idle. */
  state(): { workers: number; running: number; queued: number } {
    const live = this.slots.filter((s) => !s.dead);
    return { workers: live.length, running: live.reduce((n, s) => n + s.tasks.length, 0), queued: this.queue.length };
  }

  /**
   * Terminates all workers; queued and running jobs fail. A worker inside a
   * native call is asked to stop and terminated once the call returns (at most
   * `nativeWaitMs`, default 60 s; after that it is left to exit with the process).
   */
  async close(nativeWaitMs = 60_000): Promise<void> {
    this.closed = true;
    for (const t of this.queue.splice(0)) this.settle(t, new Error('worker pool closed'));
    const slots = this.slots.splice(0);
    for (const s of slots) {
      s.dead = true;
      for (const t of s.tasks.splice(0)) { Atomics.store(t.cancel, 0, 1); this.settle(t, new Error('worker pool closed')); }
    }
    await Promise.all(slots.map(async (s) => {
      if (!(await nativeCallsEnd(s, nativeWaitMs))) { s.worker.unref(); return; }
      await s.worker.terminate();
    }));
  }

  private spawn(): Slot {
    const nativeCalls = new Int32Array(new SharedArrayBuffer(8));
    const init: WorkerInit = { allowTestJobs: !!this.opts.allowTestJobs, nativeCalls };
    const worker = new Worker(this.script, {
      workerData: init,
      resourceLimits: { maxOldGenerationSizeMb: this.opts.maxOldGenerationSizeMb ?? 1024 },
    });
    this.workersStarted++;
    const slot: Slot = { worker, tasks: [], dead: false, nativeCalls };
    worker.on('message', (m: FromWorker) => this.onMessage(slot, m));
    worker.on('error', (e: Error) => this.onDeath(slot, `worker crashed: ${e.message}`));
    worker.on('exit', (code) => this.onDeath(slot, `worker exited with code ${code}`));
    // An idle worker must not keep the process (CLI, tests) alive.
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  private pump(): void {
    const depth = Math.max(1, Math.floor(this.opts.prefetch ?? 2));
    while (this.queue.length) {
      // An idle worker first (or a new one while below size), then the least loaded.
      let slot: Slot | undefined;
      for (const s of this.slots) if (!s.dead && (!slot || s.tasks.length < slot.tasks.length)) slot = s;
      if ((!slot || slot.tasks.length > 0) && this.slots.filter((s) => !s.dead).length < this.size) slot = this.spawn();
      if (!slot || slot.tasks.length >= depth) return;
      // A job that moves buffers goes only to an idle worker: handed ahead to one that then died, its data would be gone.
      if (this.queue[0].opts.transfer?.length && slot.tasks.length > 0) return;
      const task = this.queue.shift()!;
      task.slot = slot;
      slot.tasks.push(task);
      slot.worker.ref();
      const msg: ToWorker = { type: 'run', id: task.id, job: task.job, cancel: task.cancel };
      try {
        slot.worker.postMessage(msg, task.opts.transfer ?? []);
      } catch (e) {
        slot.tasks.splice(slot.tasks.indexOf(task), 1);
        if (!slot.tasks.length) slot.worker.unref();
        this.settle(task, e instanceof Error ? e : new Error(String(e)));
      }
    }
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    const i = slot.tasks.findIndex((t) => t.id === m.id);
    if (i < 0) return;
    const task = slot.tasks[i];
    if (m.type === 'progress') { if (!task.settled) task.opts.onProgress?.(m.done, m.total); return; }
    slot.tasks.splice(i, 1);
    if (task.killTimer) clearTimeout(task.killTimer);
    if (!slot.tasks.length) slot.worker.unref();
    if (m.type === 'done') this.settle(task, undefined, m.result);
    else if (m.cancelled) this.settle(task, new CancelledError(`${task.job.kind} job`));
    else this.settle(task, new JobFailedError(m.error.message, m.error.name, m.error.stack));
    // A worker told to refuse native calls is replaced rather than handed more jobs.
    if (Atomics.load(slot.nativeCalls, 1) !== 0) this.retire(slot);
    this.pump();
  }

  private onDeath(slot: Slot, why: string): void {
    if (slot.dead) return;
    for (const t of slot.tasks) if (t.killTimer) clearTimeout(t.killTimer);
    slot.dead = true;
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    // The worker runs its jobs in order: the first one died with it; the others never started.
    const [task, ...waiting] = slot.tasks.splice(0);
    if (task && !task.settled) {
      const cancelled = Atomics.load(task.cancel, 0) !== 0;
      this.settle(task, cancelled ? new CancelledError(`${task.job.kind} job`) : new WorkerCrashedError(`${task.job.kind} job failed: ${why}`));
    }
    this.queue.unshift(...waiting.filter((t) => !t.settled));
    void slot.worker.terminate();
    if (!this.closed) this.pump();
  }

  /** Takes a live worker out of service: the jobs handed to it ahead go back to the queue; it is terminated once no native call is in flight. */
  private retire(slot: Slot): void {
    if (slot.dead) return;
    slot.dead = true;
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    const waiting = slot.tasks.splice(0);
    for (const t of waiting) if (t.killTimer) clearTimeout(t.killTimer);
    this.queue.unshift(...waiting.filter((t) => !t.settled));
    slot.worker.unref();
    void nativeCallsEnd(slot, 60_000).then(async (ok) => { if (ok) await slot.worker.terminate(); });
  }

  private cancelTask(task: Task): void {
    if (task.settled) return;
    const qi = this.queue.indexOf(task);
    if (qi >= 0) { this.queue.splice(qi, 1); this.settle(task, new CancelledError(`${task.job.kind} job`)); return; }
    Atomics.store(task.cancel, 0, 1);
    const slot = task.slot;
    if (!slot) return;
    // Handed to a worker but not started: it will see the flag before doing any work.
    if (slot.tasks.indexOf(task) > 0) { this.settle(task, new CancelledError(`${task.job.kind} job`)); return; }
    // Running: a worker that ignores the flag is replaced after the grace period; one inside a
    // native call answers cancelled now and is replaced when the call returns.
    const check = (): void => {
      if (slot.dead || slot.tasks[0] !== task) return;
      if (!mayTerminate(slot)) {
        this.settle(task, new CancelledError(`${task.job.kind} job`));
        task.killTimer = setTimeout(check, 100);
        return;
      }
      this.onDeath(slot, 'terminated after cancellation');
    };
    task.killTimer = setTimeout(check, task.opts.cancelGraceMs ?? this.opts.cancelGraceMs ?? 100);
  }

  private settle(task: Task, err?: Error, value?: unknown): void {
    if (task.settled) return;
    task.settled = true;
    if (task.killTimer) clearTimeout(task.killTimer);
    if (task.onAbort) task.opts.signal?.removeEventListener('abort', task.onAbort);
    if (err) task.reject(err); else task.resolve(value);
  }
}

/** Tells the worker to refuse new native calls, then whether none is in flight (see shared/nativeCalls.ts for the order). */
function mayTerminate(slot: Slot): boolean {
  Atomics.store(slot.nativeCalls, 1, 1);
  return Atomics.load(slot.nativeCalls, 0) === 0;
}

/** Waits until a worker has no native call in flight; false if it still has one after `ms`. */
async function nativeCallsEnd(slot: Slot, ms: number): Promise<boolean> {
  const t0 = Date.now();
  while (!mayTerminate(slot)) {
    if (Date.now() - t0 > ms) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

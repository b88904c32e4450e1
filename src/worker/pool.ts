/**
 * A worker_threads pool for statistics jobs. Jobs are queued FIFO and run one
 * per worker. A worker that crashes, exits or runs out of memory fails only
 * its own job (WorkerCrashedError) and is replaced on the next dispatch.
 * Cancellation sets a shared flag the worker polls between chunks; a worker
 * that has not stopped `cancelGraceMs` later is terminated and replaced, so a
 * cancelled job always settles within that bound.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { FromWorker, JobKind, JobOf, JobResults, ToWorker, WorkerInit } from './protocol';

export interface PoolOptions {
  /** Number of workers; default os.availableParallelism(), at least 1. */
  size?: number;
  /** Worker script; default worker.js next to this module (out/src/worker or dist). */
  workerScript?: string;
  /** V8 old-generation limit per worker, MB. Default 1024. */
  maxOldGenerationSizeMb?: number;
  /** Allow the test-crash / test-hang job kinds. Only tests set this. */
  allowTestJobs?: boolean;
  /** How long a cancelled job may keep running before its worker is terminated. Default 100 ms. */
  cancelGraceMs?: number;
}

export interface RunOptions {
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
  /** Buffers to move (not copy) to the worker, e.g. an in-memory tensor's data.buffer. */
  transfer?: ArrayBuffer[];
}

export class CancelledError extends Error {
  constructor(what: string) { super(`${what}: cancelled`); this.name = 'CancelledError'; }
}
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

interface Slot { worker: Worker; task?: Task; dead: boolean }

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

  /** Terminates all workers; queued and running jobs fail. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.queue.splice(0)) this.settle(t, new Error('worker pool closed'));
    const slots = this.slots.splice(0);
    for (const s of slots) { s.dead = true; if (s.task) this.settle(s.task, new Error('worker pool closed')); }
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private spawn(): Slot {
    const init: WorkerInit = { allowTestJobs: !!this.opts.allowTestJobs };
    const worker = new Worker(this.script, {
      workerData: init,
      resourceLimits: { maxOldGenerationSizeMb: this.opts.maxOldGenerationSizeMb ?? 1024 },
    });
    this.workersStarted++;
    const slot: Slot = { worker, dead: false };
    worker.on('message', (m: FromWorker) => this.onMessage(slot, m));
    worker.on('error', (e: Error) => this.onDeath(slot, `worker crashed: ${e.message}`));
    worker.on('exit', (code) => this.onDeath(slot, `worker exited with code ${code}`));
    // An idle worker must not keep the process (CLI, tests) alive.
    worker.unref();
    this.slots.push(slot);
    return slot;
  }

  private pump(): void {
    while (this.queue.length) {
      let slot = this.slots.find((s) => !s.dead && !s.task);
      if (!slot) {
        if (this.slots.filter((s) => !s.dead).length >= this.size) return;
        slot = this.spawn();
      }
      const task = this.queue.shift()!;
      task.slot = slot;
      slot.task = task;
      slot.worker.ref();
      const msg: ToWorker = { type: 'run', id: task.id, job: task.job, cancel: task.cancel };
      try {
        slot.worker.postMessage(msg, task.opts.transfer ?? []);
      } catch (e) {
        slot.task = undefined;
        this.settle(task, e instanceof Error ? e : new Error(String(e)));
      }
    }
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    const task = slot.task;
    if (!task || task.id !== m.id) return;
    if (m.type === 'progress') { if (!task.settled) task.opts.onProgress?.(m.done, m.total); return; }
    slot.task = undefined;
    slot.worker.unref();
    if (m.type === 'done') this.settle(task, undefined, m.result);
    else if (m.cancelled) this.settle(task, new CancelledError(`${task.job.kind} job`));
    else this.settle(task, new JobFailedError(m.error.message, m.error.name, m.error.stack));
    this.pump();
  }

  private onDeath(slot: Slot, why: string): void {
    if (slot.dead) return;
    slot.dead = true;
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    const task = slot.task;
    slot.task = undefined;
    if (task && !task.settled) {
      const cancelled = Atomics.load(task.cancel, 0) !== 0;
      this.settle(task, cancelled ? new CancelledError(`${task.job.kind} job`) : new WorkerCrashedError(`${task.job.kind} job failed: ${why}`));
    }
    void slot.worker.terminate();
    if (!this.closed) this.pump();
  }

  private cancelTask(task: Task): void {
    if (task.settled) return;
    const qi = this.queue.indexOf(task);
    if (qi >= 0) { this.queue.splice(qi, 1); this.settle(task, new CancelledError(`${task.job.kind} job`)); return; }
    Atomics.store(task.cancel, 0, 1);
    const slot = task.slot;
    if (!slot) return;
    // Settle now so callers see the cancellation promptly; a worker that ignores the flag is replaced.
    task.killTimer = setTimeout(() => {
      if (slot.task === task) this.onDeath(slot, 'terminated after cancellation');
    }, this.opts.cancelGraceMs ?? 100);
  }

  private settle(task: Task, err?: Error, value?: unknown): void {
    if (task.settled) return;
    task.settled = true;
    if (task.killTimer) clearTimeout(task.killTimer);
    if (task.onAbort) task.opts.signal?.removeEventListener('abort', task.onAbort);
    if (err) task.reject(err); else task.resolve(value);
  }
}

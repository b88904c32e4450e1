/**
 * The worker pool for every domain's jobs (statistics, sensitivity, GPTQ,
 * ONNX Runtime runs, ...: see handlers/ and protocol.ts). Two kinds of worker
 * run the same script (worker.ts): worker threads for the pure-JS/WASM jobs
 * (buffers moved without copying), and child processes for the job kinds that
 * load a native runtime (protocol.ts nativeRuntimeOf), so that a native abort
 * (an ONNX Runtime assertion: SIGABRT) ends only that worker, not the
 * extension host or the CLI; the job fails naming the runtime, the model file
 * and the signal or exit code. Each kind has its own workers (`size` threads,
 * `processes` processes, started on demand).
 * Jobs are queued FIFO (per kind of worker) and run one at a time per worker;
 * each worker is also handed the next job ahead of time (`prefetch`), so it
 * starts it the moment it posts a result instead of idling for the round
 * trip through this thread. A worker that crashes, exits or runs out of
 * memory fails only the job it was running (WorkerCrashedError); the jobs
 * handed to it ahead go back to the front of the queue (a job that moves
 * buffers is never handed ahead), and the worker is replaced.
 * Cancellation sets a flag the worker polls between chunks (shared memory for
 * a thread, a message for a process); a worker that has not stopped
 * `cancelGraceMs` later is terminated (a process is killed) and replaced, so
 * a cancelled job always settles within that bound. A worker thread inside a
 * native call (see shared/nativeCalls.ts) is never terminated, since that
 * aborts the whole process: its job settles as cancelled at the bound, and
 * the worker is replaced once the call has returned (or takes its next job,
 * if it stops by itself first).
 */
import { fork } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { CancelledError } from './cancel';
import { nativeRuntimeOf, WORKER_PROCESS_ARG } from './protocol';
import type { FromWorker, JobKind, JobOf, JobResults, ToWorker, WorkerInit } from './protocol';

export interface PoolOptions {
  /** Number of worker threads; default os.availableParallelism(), at least 1. */
  size?: number;
  /** Number of worker processes, for the job kinds that load a native runtime (protocol.ts nativeRuntimeOf); default `size`. */
  processes?: number;
  /** Worker script, for threads and processes alike; default worker.js next to this module (out/src/jobs or dist). */
  workerScript?: string;
  /** V8 old-generation limit per worker (thread or process), MB. Default 1024. */
  maxOldGenerationSizeMb?: number;
  /** Allow the test-crash / test-hang / test-abort job kinds. Only tests set this. */
  allowTestJobs?: boolean;
  /** How long a cancelled job may keep running before its worker is terminated. Default 100 ms. */
  cancelGraceMs?: number;
  /** Jobs handed to each worker at once: the running one and those waiting behind it. Default 2 (one ahead). */
  prefetch?: number;
}

export interface RunOptions {
  signal?: AbortSignal;
  onProgress?(done: number, total: number): void;
  /** Buffers to move (not copy) to a worker thread, e.g. an in-memory tensor's data.buffer (a worker process gets a copy). */
  transfer?: ArrayBuffer[];
  /** This job's grace after a cancel before its worker is terminated (default: the pool's). */
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

/** A worker thread or process, behind the few operations the pool needs. */
interface Endpoint {
  readonly isProcess: boolean;
  send(msg: ToWorker, transfer: ArrayBuffer[]): void;
  /** Whether the worker keeps this process alive (only while it holds jobs). */
  ref(): void;
  unref(): void;
  /** Ends the worker now. */
  terminate(): Promise<void>;
  /** The end of what a worker process wrote to stderr (a native runtime's own report of its abort); '' for a thread. */
  stderrTail(): string;
}

/** How a worker ended. */
interface Death { error?: Error; code?: number | null; signal?: NodeJS.Signals | null; cancelled?: boolean }

/** tasks[0] is running (or about to); the rest wait in the worker's queue. */
interface Slot {
  ep: Endpoint;
  tasks: Task[];
  dead: boolean;
  /** Native calls in flight in a worker thread (see shared/nativeCalls.ts); none for a process, which is simply killed. */
  nativeCalls?: Int32Array;
}

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
   * Terminates all workers; queued and running jobs fail. Worker processes are
   * killed; a worker thread inside a native call is asked to stop and
   * terminated once the call returns (at most `nativeWaitMs`, default 60 s;
   * after that it is left to exit with the process).
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
      if (!(await nativeCallsEnd(s, nativeWaitMs))) { s.ep.unref(); return; }
      await s.ep.terminate();
    }));
  }

  private spawn(asProcess: boolean): Slot {
    const slot: Slot = { ep: undefined as unknown as Endpoint, tasks: [], dead: false };
    slot.ep = asProcess ? this.startProcess(slot) : this.startThread(slot);
    this.workersStarted++;
    // An idle worker must not keep the process (CLI, tests) alive.
    slot.ep.unref();
    this.slots.push(slot);
    return slot;
  }

  private startThread(slot: Slot): Endpoint {
    const nativeCalls = new Int32Array(new SharedArrayBuffer(8));
    slot.nativeCalls = nativeCalls;
    const init: WorkerInit = { allowTestJobs: !!this.opts.allowTestJobs, nativeCalls };
    const worker = new Worker(this.script, {
      workerData: init,
      resourceLimits: { maxOldGenerationSizeMb: this.opts.maxOldGenerationSizeMb ?? 1024 },
    });
    worker.on('message', (m: FromWorker) => this.onMessage(slot, m));
    worker.on('error', (error: Error) => this.onDeath(slot, { error }));
    worker.on('exit', (code) => this.onDeath(slot, { code }));
    return {
      isProcess: false,
      send: (msg, transfer) => worker.postMessage(msg, transfer),
      ref: () => worker.ref(),
      unref: () => worker.unref(),
      terminate: async () => { await worker.terminate(); },
      stderrTail: () => '',
    };
  }

  /** A child process on the same script, IPC with V8 serialization (typed arrays pass through, copied). */
  private startProcess(slot: Slot): Endpoint {
    const init: WorkerInit = { allowTestJobs: !!this.opts.allowTestJobs };
    const child = fork(this.script, [WORKER_PROCESS_ARG, JSON.stringify(init)], {
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      // Not the parent's flags (an inspector port, a debugger break in the extension host), except the CLI's
      // bounds-checked WebAssembly under an address-space limit (cli.ts), which the child inherits.
      execArgv: [`--max-old-space-size=${this.opts.maxOldGenerationSizeMb ?? 1024}`, ...process.execArgv.filter((a) => a === '--disable-wasm-trap-handler')],
      // In VS Code, process.execPath is Electron: this makes it a plain Node.js (as language clients fork their servers).
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    });
    let tail = '';
    child.stderr?.on('data', (d: Buffer) => { tail = (tail + d.toString()).slice(-4000); });
    (child.stderr as unknown as { unref?(): void } | null)?.unref?.();
    child.on('message', (m) => this.onMessage(slot, m as FromWorker));
    child.on('error', (error) => this.onDeath(slot, { error }));
    // 'close', not 'exit': by then stderr has been read to its end (what the runtime printed as it aborted).
    child.on('close', (code, signal) => this.onDeath(slot, { code, signal }));
    return {
      isProcess: true,
      // A message that cannot be delivered means a broken channel: the process is ended, and its 'close' settles its job.
      send: (msg) => { child.send(msg, (e) => { if (e) child.kill('SIGKILL'); }); },
      ref: () => { child.ref(); child.channel?.ref(); },
      unref: () => { child.unref(); child.channel?.unref(); },
      terminate: () => new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) { resolve(); return; }
        child.once('exit', () => resolve());
        // Held until it is gone: an idle worker is unreferenced, and the wait must keep this process up.
        child.ref();
        child.kill('SIGKILL');
      }),
      stderrTail: () => tail.trim(),
    };
  }

  private limit(asProcess: boolean): number {
    return asProcess ? Math.max(1, Math.floor(this.opts.processes ?? this.size)) : this.size;
  }

  /** The worker of this kind to hand the next job to (an idle one, a new one while below the limit, then the least loaded), if any may take it now. */
  private slotFor(asProcess: boolean, depth: number, movesBuffers: boolean): Slot | undefined {
    const mine = this.slots.filter((s) => !s.dead && s.ep.isProcess === asProcess);
    let slot: Slot | undefined;
    for (const s of mine) if (!slot || s.tasks.length < slot.tasks.length) slot = s;
    if ((!slot || slot.tasks.length > 0) && mine.length < this.limit(asProcess)) slot = this.spawn(asProcess);
    if (!slot || slot.tasks.length >= depth) return undefined;
    // A job that moves buffers goes only to an idle worker: handed ahead to one that then died, its data would be gone.
    if (movesBuffers && slot.tasks.length > 0) return undefined;
    return slot;
  }

  private pump(): void {
    const depth = Math.max(1, Math.floor(this.opts.prefetch ?? 2));
    // FIFO within each kind of worker: once a job of one kind must wait, so do the later ones of that kind.
    const blocked = new Set<boolean>();
    for (let i = 0; i < this.queue.length && blocked.size < 2;) {
      const task = this.queue[i];
      const asProcess = nativeRuntimeOf(task.job) !== undefined;
      const slot = blocked.has(asProcess) ? undefined : this.slotFor(asProcess, depth, !!task.opts.transfer?.length);
      if (!slot) { blocked.add(asProcess); i++; continue; }
      this.queue.splice(i, 1);
      task.slot = slot;
      slot.tasks.push(task);
      slot.ep.ref();
      const msg: ToWorker = slot.ep.isProcess ? { type: 'run', id: task.id, job: task.job } : { type: 'run', id: task.id, job: task.job, cancel: task.cancel };
      try {
        slot.ep.send(msg, slot.ep.isProcess ? [] : task.opts.transfer ?? []);
      } catch (e) {
        slot.tasks.splice(slot.tasks.indexOf(task), 1);
        if (!slot.tasks.length) slot.ep.unref();
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
    if (!slot.tasks.length) slot.ep.unref();
    if (m.type === 'done') this.settle(task, undefined, m.result);
    else if (m.cancelled) this.settle(task, new CancelledError(`${task.job.kind} job`));
    else this.settle(task, new JobFailedError(m.error.message, m.error.name, m.error.stack));
    // A worker thread told to refuse native calls is replaced rather than handed more jobs.
    if (slot.nativeCalls && Atomics.load(slot.nativeCalls, 1) !== 0) this.retire(slot);
    this.pump();
  }

  private onDeath(slot: Slot, death: Death): void {
    if (slot.dead) return;
    for (const t of slot.tasks) if (t.killTimer) clearTimeout(t.killTimer);
    slot.dead = true;
    const i = this.slots.indexOf(slot);
    if (i >= 0) this.slots.splice(i, 1);
    // The worker runs its jobs in order: the first one died with it; the others never started.
    const [task, ...waiting] = slot.tasks.splice(0);
    if (task && !task.settled) {
      const cancelled = Atomics.load(task.cancel, 0) !== 0;
      this.settle(task, cancelled ? new CancelledError(`${task.job.kind} job`) : new WorkerCrashedError(crashMessage(task, slot.ep, death)));
    }
    this.queue.unshift(...waiting.filter((t) => !t.settled));
    void slot.ep.terminate();
    if (this.closed) return;
    this.pump();
    // A worker process that died running a job is restarted at once, ready for the next one (not one that
    // failed to start: that would loop).
    if (slot.ep.isProcess && task && !death.error && !this.slots.some((s) => !s.dead && s.ep.isProcess)) this.spawn(true);
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
    slot.ep.unref();
    void nativeCallsEnd(slot, 60_000).then(async (ok) => { if (ok) await slot.ep.terminate(); });
  }

  private cancelTask(task: Task): void {
    if (task.settled) return;
    const qi = this.queue.indexOf(task);
    if (qi >= 0) { this.queue.splice(qi, 1); this.settle(task, new CancelledError(`${task.job.kind} job`)); return; }
    Atomics.store(task.cancel, 0, 1);
    const slot = task.slot;
    if (!slot) return;
    // A worker process has no shared memory: it sets its own copy of the flag on this message.
    if (slot.ep.isProcess && !slot.dead) try { slot.ep.send({ type: 'cancel', id: task.id }, []); } catch { /* dying: the death settles the job */ }
    // Handed to a worker but not started: it will see the flag before doing any work.
    if (slot.tasks.indexOf(task) > 0) { this.settle(task, new CancelledError(`${task.job.kind} job`)); return; }
    // Running: a worker that ignores the flag is replaced after the grace period; a thread inside a
    // native call answers cancelled now and is replaced when the call returns.
    const check = (): void => {
      if (slot.dead || slot.tasks[0] !== task) return;
      if (!mayTerminate(slot)) {
        this.settle(task, new CancelledError(`${task.job.kind} job`));
        task.killTimer = setTimeout(check, 100);
        return;
      }
      this.onDeath(slot, { cancelled: true });
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

/**
 * Why a job failed with its worker. A worker process running a native
 * runtime names the runtime, the model file and the signal or exit code, plus
 * the end of what it wrote to stderr (the runtime's own report).
 */
function crashMessage(task: Task, ep: Endpoint, d: Death): string {
  const native = ep.isProcess ? nativeRuntimeOf(task.job) : undefined;
  const stderr = ep.stderrTail();
  const said = stderr ? `\n${stderr.split('\n').slice(-8).join('\n')}` : '';
  if (native && d.signal) {
    return `${native.runtime} ${d.signal === 'SIGABRT' ? 'aborted' : 'crashed'} while running ${native.file} (${d.signal}); the worker was restarted${said}`;
  }
  if (native && typeof d.code === 'number') return `${native.runtime} worker exited with code ${d.code} while running ${native.file}; the worker was restarted${said}`;
  const why = d.cancelled ? 'terminated after cancellation'
    : d.error ? `worker${ep.isProcess ? ' process' : ''} crashed: ${d.error.message}`
    : d.signal ? `worker process ended by ${d.signal}` : `worker exited with code ${d.code}`;
  return `${task.job.kind} job failed: ${why}${said}`;
}

/** Tells a worker thread to refuse new native calls, then whether none is in flight (see shared/nativeCalls.ts for the order); a process may always be killed. */
function mayTerminate(slot: Slot): boolean {
  if (!slot.nativeCalls) return true;
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

/**
 * What a job handler gets from the worker: the job's cancel flag and a
 * progress hook that also polls it. Handlers are grouped by domain
 * (handlers/*.ts); the worker dispatches on the job's kind.
 */
import type { ChunkHook } from '../analysis/weightStats';

export interface JobContext {
  /** Throws CancelledError once the pool has asked this job to stop. */
  checkCancelled(): void;
  /** A hook for `total` units of work: posts progress (at most every 50 ms) and polls cancellation. */
  progress(total: number): ChunkHook;
  /** The raw flag (Int32Array over a SharedArrayBuffer, 1 = cancel), for loops that poll it themselves. */
  cancel: Int32Array;
  /** The pool allows the test-crash / test-hang / test-abort kinds. */
  allowTestJobs: boolean;
}

/** One handler per job kind of a domain. */
export type Handlers<Req extends { kind: string }, Res extends Record<Req['kind'], unknown>> = {
  [K in Req['kind']]: (job: Extract<Req, { kind: K }>, ctx: JobContext) => Res[K] | Promise<Res[K]>;
};

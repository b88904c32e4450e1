/** The one cancellation error: thrown by a job that saw its cancel flag, by the pool, and by every pipeline that drives it. */
export class CancelledError extends Error {
  constructor(what: string) { super(`${what}: cancelled`); this.name = 'CancelledError'; }
}

/**
 * Native addon calls in flight on this thread, counted in memory the worker
 * pool reads. A worker terminated inside an onnxruntime-node call takes the
 * whole process down (the addon's completion throws a napi error into a dying
 * environment: std::terminate, SIGABRT), which in VS Code is the extension
 * host. So the pool never terminates a worker while this count is above
 * zero: a cancelled job is answered at once and its worker is replaced or
 * reused once the call has returned. The pool runs its ONNX Runtime jobs in
 * worker processes (jobs/protocol.ts nativeRuntimeOf), which it may kill at
 * any time and where no counter is set: this guards a native call that runs
 * in a worker thread.
 */
let counter: Int32Array | undefined;

/**
 * Called once by a pool worker with its slot's shared array: [0] calls in
 * flight, [1] set by the pool before it terminates the worker. A call first
 * counts itself, then checks [1]; the pool first sets [1], then checks [0]
 * (sequentially consistent atomics): either the call backs out or the pool
 * sees it and waits, never both missing each other.
 */
export function setNativeCallCounter(c: Int32Array): void {
  counter = c;
}

/** Thrown instead of starting a native call in a worker the pool is about to terminate. */
export class NativeCallRefused extends Error {
  constructor() { super('cancelled: the worker is being stopped'); this.name = 'CancelledError'; }
}

/** Runs an async native call, counted while it is in flight. */
export async function nativeCall<T>(f: () => Promise<T>): Promise<T> {
  if (!counter) return f();
  Atomics.add(counter, 0, 1);
  try {
    if (Atomics.load(counter, 1) !== 0) throw new NativeCallRefused();
    return await f();
  } finally {
    Atomics.sub(counter, 0, 1);
  }
}

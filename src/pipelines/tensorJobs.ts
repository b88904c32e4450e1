/**
 * One pool job (or a few) per tensor, all in flight at once: a tensor whose
 * job fails is listed and the others go on; a cancel (the caller's signal)
 * or an unexpected error stops every sibling job and throws.
 */
import { setMaxListeners } from 'node:events';
import type { TensorInfo } from '../formats/types';
import { CancelledError } from '../jobs/cancel';

/** Jobs all in flight at once; a cancel (the caller's signal) or the first error stops every sibling and throws. */
export async function siblingJobs<R>(what: string, outer: AbortSignal | undefined, jobs: readonly ((signal: AbortSignal) => Promise<R>)[]): Promise<R[]> {
  const inner = new AbortController();
  setMaxListeners(0, inner.signal); // one listener per queued job
  const abort = () => inner.abort();
  if (outer?.aborted) throw new CancelledError(what);
  outer?.addEventListener('abort', abort, { once: true });
  try {
    return await Promise.all(jobs.map((j) => j(inner.signal)));
  } catch (e) {
    inner.abort();
    if (outer?.aborted) throw new CancelledError(what);
    throw e;
  } finally {
    outer?.removeEventListener('abort', abort);
  }
}

export async function eachTensorJob<R>(
  what: string,
  tensors: readonly TensorInfo[],
  outer: AbortSignal | undefined,
  one: (t: TensorInfo, signal: AbortSignal) => Promise<R>,
  onResult: (t: TensorInfo, r: R) => void,
  onFailure: (t: TensorInfo, error: string, cause: unknown) => void,
): Promise<void> {
  await siblingJobs(what, outer, tensors.map((t) => async (signal: AbortSignal) => {
    let r: R;
    try {
      r = await one(t, signal);
    } catch (e) {
      if (signal.aborted || e instanceof CancelledError) throw e;
      onFailure(t, e instanceof Error ? e.message : String(e), e);
      return;
    }
    onResult(t, r);
  }));
}

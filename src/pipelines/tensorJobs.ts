/**
 * One pool job (or a few) per tensor, all in flight at once: a tensor whose
 * job fails is listed and the others go on; a cancel (the caller's signal)
 * or an unexpected error stops every sibling job and throws.
 */
import { setMaxListeners } from 'node:events';
import type { TensorInfo } from '../formats/types';
import { CancelledError } from '../jobs/cancel';

export async function eachTensorJob<R>(
  what: string,
  tensors: readonly TensorInfo[],
  outer: AbortSignal | undefined,
  one: (t: TensorInfo, signal: AbortSignal) => Promise<R>,
  onResult: (t: TensorInfo, r: R) => void,
  onFailure: (t: TensorInfo, error: string) => void,
): Promise<void> {
  const inner = new AbortController();
  setMaxListeners(0, inner.signal); // one listener per queued job
  const abort = () => inner.abort();
  if (outer?.aborted) throw new CancelledError(what);
  outer?.addEventListener('abort', abort, { once: true });
  try {
    await Promise.all(tensors.map(async (t) => {
      let r: R;
      try {
        r = await one(t, inner.signal);
      } catch (e) {
        if (inner.signal.aborted || e instanceof CancelledError) throw e;
        onFailure(t, e instanceof Error ? e.message : String(e));
        return;
      }
      onResult(t, r);
    }));
  } catch (e) {
    inner.abort();
    if (outer?.aborted) throw new CancelledError(what);
    throw e;
  } finally {
    outer?.removeEventListener('abort', abort);
  }
}

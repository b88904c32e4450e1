/** Jobs that break a worker on purpose, for the pool's tests; refused unless the pool allows them. */
import * as fs from 'node:fs';
import { createSession } from '../../runtime/session';
import { CancelledError } from '../cancel';
import type { Handlers } from '../handler';
import type { JobRequest, JobResults } from '../protocol';

type TestJob = Extract<JobRequest, { kind: 'test-crash' | 'test-hang' | 'test-abort' }>;

export const testHandlers: Handlers<TestJob, Pick<JobResults, TestJob['kind']>> = {
  'test-crash'(job, ctx) {
    if (!ctx.allowTestJobs) throw new Error('test jobs are disabled in this pool');
    if (job.how === 'exit') process.exit(3);
    if (job.how === 'throw') setImmediate(() => { throw new Error('deliberate crash from test-crash job'); });
    if (job.how === 'oom') {
      const hog: number[][] = [];
      for (;;) hog.push(new Array(1 << 20).fill(Math.random()));
    }
    return new Promise<never>(() => { /* the worker dies before this settles */ });
  },
  'test-hang'(job, ctx) {
    if (!ctx.allowTestJobs) throw new Error('test jobs are disabled in this pool');
    const end = Date.now() + job.ms;
    let sliced = 0;
    while (Date.now() < end) {
      if (job.cooperative && Atomics.load(ctx.cancel, 0) !== 0) throw new CancelledError('job');
      const s = Date.now();
      while (Date.now() - s < 1) { /* spin */ }
      sliced++;
    }
    return { sliced };
  },
  async 'test-abort'(job, ctx) {
    if (!ctx.allowTestJobs) throw new Error('test jobs are disabled in this pool');
    // ONNX Runtime really loaded and holding a session in this process, as when one of its assertions fails.
    await createSession(fs.readFileSync(job.model));
    process.abort();
  },
};

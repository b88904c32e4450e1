/** Compare jobs: one weight pair of two models, decoded and measured in the worker. */
import { diffWeights, readLogical, transpose2d, unpermuteRope, type WeightSource } from '../../analysis/compareWeights';
import type { Handlers } from '../handler';
import type { JobRequest, JobResults } from '../protocol';
import { model } from './models';

type CompareJob = Extract<JobRequest, { kind: 'compareWeights' }>;

export const compareHandlers: Handlers<CompareJob, Pick<JobResults, 'compareWeights'>> = {
  compareWeights(job, ctx) {
    const read = (side: 'a' | 'b', ref: { path: string; source: WeightSource }) => {
      const m = model(ref.path);
      const v = readLogical(m, ref.source);
      if (job.rope?.side !== side || ref.source.kind !== 'tensor') return v;
      const t = m.tensors.find((x) => x.name === (ref.source as { tensor: string }).tensor)!;
      return unpermuteRope(v, t.shape[0], t.shape[1], job.rope.heads);
    };
    const a = read('a', job.a);
    ctx.checkCancelled();
    let b = read('b', job.b);
    if (job.transpose) b = transpose2d(b, job.transpose[0], job.transpose[1]);
    ctx.checkCancelled();
    return diffWeights(a, b, job.bins);
  },
};

/** Compare jobs: one weight pair of two models, decoded and measured in the worker. */
import { diffWeights, readLogical, transpose2d } from '../../analysis/compareWeights';
import type { Handlers } from '../handler';
import type { JobRequest, JobResults } from '../protocol';
import { model } from './models';

type CompareJob = Extract<JobRequest, { kind: 'compareWeights' }>;

export const compareHandlers: Handlers<CompareJob, Pick<JobResults, 'compareWeights'>> = {
  compareWeights(job, ctx) {
    const a = readLogical(model(job.a.path), job.a.source);
    ctx.checkCancelled();
    let b = readLogical(model(job.b.path), job.b.source);
    if (job.transpose) b = transpose2d(b, job.transpose[0], job.transpose[1]);
    ctx.checkCancelled();
    return diffWeights(a, b, job.bins);
  },
};

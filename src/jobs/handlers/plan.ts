/** Plan jobs: the wizard's knapsack frontier, off the extension host's thread. */
import type { Handlers } from '../handler';
import type { JobRequest, JobResults } from '../protocol';
import { solveFrontier } from '../../analysis/planFrontier';

type PlanJob = Extract<JobRequest, { kind: 'planFrontier' }>;

export const planHandlers: Handlers<PlanJob, Pick<JobResults, PlanJob['kind']>> = {
  planFrontier(job, ctx) {
    ctx.checkCancelled();
    return solveFrontier(job.layers, job.edits, job.maxPoints);
  },
};

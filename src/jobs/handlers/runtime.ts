/**
 * Jobs that run a model through onnxruntime-node. Sessions live here, in the
 * pool's worker processes (protocol.ts nativeRuntimeOf lists these kinds),
 * never in the extension host or the CLI's process, nor in a worker thread of
 * it: a model that aborts ONNX Runtime takes down only its worker process,
 * which the pool reports (naming the model and the signal) and replaces.
 * `activationRows` is pure JS and runs in a worker thread.
 */
import { collectActivations } from '../../runtime/activations';
import { activationRows } from '../../runtime/activationRows';
import { evaluateVariants, measureWeights } from '../../runtime/sensitivity';
import { EXACT, FAST } from '../../runtime/session';
import type { Handlers } from '../handler';
import type { JobRequest, JobResults } from '../protocol';

type RuntimeJob = Extract<JobRequest, { kind: 'runtimeSensitivity' | 'runtimeVariants' | 'runtimeActivations' | 'activationRows' }>;

export const runtimeHandlers: Handlers<RuntimeJob, Pick<JobResults, RuntimeJob['kind']>> = {
  runtimeSensitivity(job, ctx) {
    const hook = ctx.progress(job.weights.length * job.configs.length);
    return measureWeights(job.model, job.weights, job.configs, job.feeds, {
      calibrator: job.calibrator, session: { ...(job.exact ? EXACT : FAST), provider: job.provider }, reference: job.reference, check: ctx.checkCancelled, progress: (d) => hook(d),
    });
  },
  async runtimeVariants(job, ctx) {
    const hook = ctx.progress(job.variants.length);
    const r = await evaluateVariants(job.model, job.weights, job.variants, job.feeds, {
      calibrator: job.calibrator, session: { ...(job.exact ? EXACT : FAST), provider: job.provider }, check: ctx.checkCancelled, progress: (d) => hook(d),
    });
    return r.results;
  },
  async runtimeActivations(job, ctx) {
    const hook = ctx.progress(job.feeds.length);
    const c = await collectActivations(job.model, job.feeds, {
      names: job.names, bins: job.bins, session: { ...(job.exact ? EXACT : FAST), provider: job.provider }, check: ctx.checkCancelled, progress: (d) => hook(d),
    });
    return c.states();
  },
  activationRows(job, ctx) {
    return Promise.resolve(activationRows(job.states, { calibrators: job.calibrators, target: job.target, percentile: job.percentile, displayBins: job.displayBins, check: ctx.checkCancelled }));
  },
};

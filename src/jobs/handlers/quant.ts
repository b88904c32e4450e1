/** Quantization jobs: weight-space sensitivity of a tensor, GPTQ of a row range, a Linear weight of a quantized safetensors checkpoint. */
import { modelTensorSensitivity } from '../../analysis/sensitivity';
import { gptqRows } from '../../quant/algorithms/gptq';
import { quantizeHfWeight } from '../../quant/hfQuantize';
import type { Handlers } from '../handler';
import type { JobRequest, JobResults } from '../protocol';
import { fileTensor } from './models';

type QuantJob = Extract<JobRequest, { kind: 'sensitivity' | 'gptqRows' | 'hfqWeight' }>;

export const quantHandlers: Handlers<QuantJob, Pick<JobResults, QuantJob['kind']>> = {
  sensitivity(job) {
    const { m, t } = fileTensor(job.source);
    return modelTensorSensitivity(m, t, job.options);
  },
  hfqWeight(job) {
    const { m, t } = fileTensor(job.source);
    return quantizeHfWeight(m, t, job.target, job.scheme, job.scaleType);
  },
  gptqRows(job, ctx) {
    const n = job.rows;
    if (!(Number.isSafeInteger(n) && n >= 0)) throw new Error(`gptqRows job: rows must be a non-negative integer, got ${n}`);
    // Progress in weights; the hook also polls the cancel flag once per block of columns.
    const hook = ctx.progress(n * job.plan.cols);
    return gptqRows(job.plan, job.weights, n, job.options, (c) => hook(c * n));
  },
};

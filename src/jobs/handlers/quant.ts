/** Quantization jobs: weight-space sensitivity of a tensor, GPTQ of a row range, one weight under GPTQ or AWQ, a Linear weight of a quantized safetensors checkpoint. */
import { modelTensorSensitivity } from '../../analysis/sensitivity';
import { gptqRows } from '../../quant/algorithms/gptq';
import { quantizeHfWeight } from '../../quant/hfQuantize';
import { calibratedWeight } from '../../quant/algorithms/weightOnly';
import type { Handlers } from '../handler';
import type { JobRequest, JobResults } from '../protocol';
import { fileTensor } from './models';

type QuantJob = Extract<JobRequest, { kind: 'sensitivity' | 'gptqRows' | 'calibratedWeight' | 'hfqWeight' }>;

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
  calibratedWeight(job, ctx) {
    const { m, t } = fileTensor(job.source);
    if (t.dtype !== 'f32' || t.shape.length !== 2 || t.shape[0] * t.shape[1] !== job.K * job.N) throw new Error(`${job.source.path}: ${t.name} is ${t.dtype} [${t.shape.join(', ')}], not a float32 ${job.K}×${job.N} MatMul weight`);
    ctx.checkCancelled();
    // GPTQ reports columns done per block (and the hook polls the cancel flag); AWQ is one step.
    const hook = ctx.progress(job.K);
    return calibratedWeight(m.readFloat32(t), job, job.algo, job.input, job.grid, { onProgress: (d) => hook(d) });
  },
};

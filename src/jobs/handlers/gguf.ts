/** GGUF conversion jobs: encode a slab of whole rows into a ggml type; measure candidate types on sampled rows (size budgets); fingerprint a range of a written tensor. */
import { digestGgufRange, encodeGgufSlab, readSourceSlab, readSourceValues, readSourceValuesRope } from '../../quant/ggml/slab';
import { ggufTypeErrors } from '../../quant/ggml/budgetTypes';
import type { Handlers } from '../handler';
import type { JobRequest, JobResults } from '../protocol';
import { fileTensor } from './models';

type GgufJob = Extract<JobRequest, { kind: 'ggufSlab' | 'ggufDigest' | 'ggufTypeErrors' }>;

export const ggufHandlers: Handlers<GgufJob, Pick<JobResults, GgufJob['kind']>> = {
  ggufSlab(job) {
    if (job.source.kind === 'array') return encodeGgufSlab(job.source.data, job.to, job.rowLength, job.importance, job.impl);
    const { m, t } = fileTensor(job.source);
    const values = job.ropeHeads ? readSourceValuesRope(m, t, job.start, job.count, job.rowLength, job.ropeHeads) : readSourceValues(m, t, job.start, job.count);
    return encodeGgufSlab(values, job.to, job.rowLength, job.importance, job.impl);
  },
  ggufTypeErrors(job) {
    const o = { importance: job.importance, rowsPerExpert: job.rowsPerExpert, impl: job.impl };
    if (job.source.kind === 'array') return ggufTypeErrors(job.source.data, job.rows, job.rowLength, job.types, o);
    const { m, t } = fileTensor(job.source);
    const x = new Float32Array(job.rows.length * job.rowLength);
    job.rows.forEach((r, i) => x.set(readSourceSlab(m, t, r * job.rowLength, job.rowLength), i * job.rowLength));
    return ggufTypeErrors(x, job.rows, job.rowLength, job.types, o);
  },
  ggufDigest(job) {
    const { m, t } = fileTensor(job.source);
    return digestGgufRange(m, t, job.start, job.count, job.raw);
  },
};

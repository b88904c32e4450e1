/** GGUF conversion jobs: encode a slab of whole rows into a ggml type; fingerprint a range of a written tensor. */
import { digestGgufRange, encodeGgufSlab, readSourceValues } from '../../quant/ggml/slab';
import type { Handlers } from '../handler';
import type { JobRequest, JobResults } from '../protocol';
import { fileTensor } from './models';

type GgufJob = Extract<JobRequest, { kind: 'ggufSlab' | 'ggufDigest' }>;

export const ggufHandlers: Handlers<GgufJob, Pick<JobResults, GgufJob['kind']>> = {
  ggufSlab(job) {
    if (job.source.kind === 'array') return encodeGgufSlab(job.source.data, job.to, job.rowLength, job.importance, job.impl);
    const { m, t } = fileTensor(job.source);
    return encodeGgufSlab(readSourceValues(m, t, job.start, job.count), job.to, job.rowLength, job.importance, job.impl);
  },
  ggufDigest(job) {
    const { m, t } = fileTensor(job.source);
    return digestGgufRange(m, t, job.start, job.count, job.raw);
  },
};

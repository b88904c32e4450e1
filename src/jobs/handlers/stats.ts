/** Weight statistics jobs: a whole tensor, or one range of a pass when the pool splits a big tensor. */
import type { StatsKernel } from '../../kernels/statsKernel';
import { ChunkHook, ChunkSource, analyseSource, makeKernel, arraySource, channelLayout, isRaw16, resolveOptions, runCodes, runPass1, runPass2, ResolvedStatsOptions } from '../../analysis/weightStats';
import { tensorSource } from '../../analysis/tensorSource';
import type { Handlers } from '../handler';
import type { JobRequest, JobResults } from '../protocol';
import { fileTensor } from './models';

type StatsJob = Extract<JobRequest, { kind: 'analyse' | 'pass1' | 'pass2' | 'codes16' }>;

let kernel: StatsKernel | undefined;

function kernelFor(o: ResolvedStatsOptions): StatsKernel {
  if (!kernel || kernel.capacity < o.chunkElements) kernel = makeKernel('auto', Math.max(o.chunkElements, 65536));
  return kernel;
}

/** analyseSource makes up to three passes; report progress over all of them. */
function multiPass(progress: (total: number) => ChunkHook, numel: number, passes: number): ChunkHook {
  const hook = progress(passes * numel);
  let base = 0, prev = 0;
  return (done) => {
    if (done <= prev) base += numel; // a new pass started
    prev = done;
    hook(Math.min(base + done, passes * numel));
  };
}

function passJob(job: Extract<StatsJob, { kind: 'pass1' | 'pass2' | 'codes16' }>, hookFor: (total: number) => ChunkHook) {
  const o = resolveOptions(job.options);
  const k = kernelFor(o);
  const { m, t } = fileTensor(job.source);
  const [a, b] = job.range;
  if (!(Number.isSafeInteger(a) && Number.isSafeInteger(b) && 0 <= a && a <= b && b <= t.numel)) {
    throw new Error(`${job.source.path}: tensor ${t.name}: range [${a}, ${b}) outside its ${t.numel} elements`);
  }
  const src: ChunkSource & { close(): void } = tensorSource(m, t);
  const hook = hookFor(b - a);
  try {
    if (job.kind === 'codes16') {
      if (!isRaw16(src)) throw new Error(`${job.source.path}: tensor ${t.name}: codes16 needs a float16/bfloat16 tensor stored on disk, not ${t.dtype}`);
      return runCodes(src, k, job.range, o, channelLayout(t.shape, t.layer.outputChannelAxis), hook);
    }
    if (job.kind === 'pass1') return runPass1(src, k, job.range, o, channelLayout(t.shape, t.layer.outputChannelAxis), hook);
    return runPass2(src, k, job.range, job.params, o, hook);
  } finally { src.close(); }
}

export const statsHandlers: Handlers<StatsJob, Pick<JobResults, StatsJob['kind']>> = {
  analyse(job, ctx) {
    const o = resolveOptions(job.options);
    const k = kernelFor(o);
    if (job.source.kind === 'array') {
      const src = arraySource(job.source.data);
      const layout = job.source.shape ? channelLayout(job.source.shape, job.source.outputChannelAxis) : undefined;
      return analyseSource(src, o, layout, k, multiPass(ctx.progress, src.numel, 2));
    }
    const { m, t } = fileTensor(job.source);
    const src = tensorSource(m, t);
    try {
      const passes = o.exact16 && isRaw16(src) ? 1 : 2;
      return analyseSource(src, o, channelLayout(t.shape, t.layer.outputChannelAxis), k, multiPass(ctx.progress, t.numel, passes));
    } finally { src.close(); }
  },
  pass1: (job, ctx) => passJob(job, ctx.progress) as JobResults['pass1'],
  pass2: (job, ctx) => passJob(job, ctx.progress) as JobResults['pass2'],
  codes16: (job, ctx) => passJob(job, ctx.progress) as JobResults['codes16'],
};

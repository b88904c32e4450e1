/**
 * Child process of ortRun.ts: loads each job's model in onnxruntime-node,
 * runs its feeds (or probes an execution provider), answers once and exits. A native abort inside ONNX Runtime
 * ends only this process; the parent reports it naming the model.
 */
import type { OrtChildMessage, OrtChildRequest, OrtJob, OrtOutput, FeedData, ProviderProbe } from './ortRun';
import { feedType } from './ortRun';

type Ort = typeof import('onnxruntime-node');

async function probe(ort: Ort, provider: string, model: Uint8Array): Promise<ProviderProbe> {
  const o = ort as Ort & { listSupportedBackends?: () => { name: string }[] };
  const offered = o.listSupportedBackends?.().map((b) => b.name) ?? ['cpu'];
  if (!offered.includes(provider)) return { offered };
  try {
    const s = await ort.InferenceSession.create(model, { executionProviders: [provider], logSeverityLevel: 4 });
    await s.release();
    return { offered };
  } catch (e) {
    return { offered, error: e instanceof Error ? e.message : String(e) };
  }
}

async function runJobs(ort: Ort, jobs: OrtJob[]): Promise<OrtOutput[][][]> {
  const results: OrtOutput[][][] = [];
  for (const [index, job] of jobs.entries()) {
    send({ type: 'running', index });
    let session;
    try {
      session = await ort.InferenceSession.create(job.model, { graphOptimizationLevel: job.optimization ?? 'all', intraOpNumThreads: job.threads ?? 2 });
    } catch (e) {
      throw new Error(`${job.model}: ONNX Runtime cannot load it: ${(e as Error).message}`);
    }
    const names = job.outputs ?? session.outputNames;
    const perFeed: OrtOutput[][] = [];
    for (const feed of job.feeds) {
      const f: Record<string, InstanceType<typeof ort.Tensor>> = {};
      for (const [k, v] of Object.entries(feed)) f[k] = new ort.Tensor(feedType(v) as 'float32', v.data as Float32Array, v.dims);
      let out;
      try {
        out = await session.run(f, names);
      } catch (e) {
        throw new Error(`${job.model}: ONNX Runtime run failed: ${(e as Error).message}`);
      }
      perFeed.push(names.map((n) => ({ name: n, type: out[n].type, dims: out[n].dims.slice(), data: out[n].data as FeedData })));
    }
    await session.release();
    results.push(perFeed);
  }
  return results;
}

function send(m: OrtChildMessage, then?: () => void): void {
  process.send!(m, undefined, undefined, then);
}

process.once('message', (m: OrtChildRequest) => {
  const ort = require('onnxruntime-node') as Ort;
  const answer = m.op === 'probe'
    ? probe(ort, m.provider, m.model).then((p) => ({ probe: p }))
    : runJobs(ort, m.jobs).then((results) => ({ results }));
  answer.then(
    (a) => send({ type: 'done', ok: true, ...a }, () => process.exit(0)),
    (e: Error) => send({ type: 'done', ok: false, error: e.message }, () => process.exit(0)),
  );
});
// The parent is gone or gave up (cancel): nothing is left to answer.
process.on('disconnect', () => process.exit(0));
// Ctrl+C in a terminal reaches the whole process group: the parent cancels (kills) this process itself.
process.on('SIGINT', () => { /* ignored */ });

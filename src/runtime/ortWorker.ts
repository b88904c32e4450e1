/** Worker side of ortRun.ts: loads each job's model in onnxruntime-node and runs its feeds. */
import { parentPort, workerData } from 'node:worker_threads';
import type { OrtJob, OrtOutput, FeedData } from './ortRun';
import { feedType } from './ortRun';

async function main(): Promise<void> {
  const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');
  const jobs = (workerData as { jobs: OrtJob[] }).jobs;
  const results: OrtOutput[][][] = [];
  for (const job of jobs) {
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
  parentPort!.postMessage({ ok: true, results });
}

main().catch((e: Error) => parentPort!.postMessage({ ok: false, error: e.message }));

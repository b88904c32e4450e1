/**
 * Run ONNX models with onnxruntime-node in a worker thread, so a long
 * verification never blocks the extension host or the CLI's event loop.
 * One worker per call: it loads each model in turn, runs every feed, posts
 * the outputs back and exits (sessions never outlive the call).
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Sample } from './calibData';

export type FeedData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Uint16Array | Int16Array;
/** One input tensor. `type` defaults from the array class (Uint16Array means float16). */
export interface Feed { data: FeedData; dims: number[]; type?: string }
export type Feeds = Record<string, Feed>;
export interface OrtOutput { name: string; type: string; dims: number[]; data: FeedData }
export interface OrtJob { model: string; feeds: Feeds[]; /** Output names to fetch; default all. */ outputs?: string[]; /** ORT graph optimization level (default 'all'). */ optimization?: 'disabled' | 'basic' | 'extended' | 'all'; /** ORT intra-op threads (default 2). */ threads?: number }

/** Calibration samples as feeds, one per sample (how GPTQ/AWQ accumulate over them and verification runs them). */
export function feedsOfSamples(samples: readonly Sample[]): Feeds[] {
  return samples.map((smp) => Object.fromEntries(Object.entries(smp).map(([k, t]) => [k, { data: t.data as FeedData, dims: t.dims, type: t.dtype }])));
}

export function feedType(f: Feed): string {
  if (f.type) return f.type;
  if (f.data instanceof Float32Array) return 'float32';
  if (f.data instanceof Float64Array) return 'float64';
  if (f.data instanceof BigInt64Array) return 'int64';
  if (f.data instanceof Int32Array) return 'int32';
  if (f.data instanceof Uint8Array) return 'uint8';
  if (f.data instanceof Int8Array) return 'int8';
  if (f.data instanceof Uint16Array) return 'float16';
  return 'int16';
}

/** Results indexed [job][feed][output]. Rejects with ORT's own message (naming the model) when a model fails to load or run. */
export function runOnnxInWorker(jobs: OrtJob[], signal?: AbortSignal): Promise<OrtOutput[][][]> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const w = new Worker(path.join(__dirname, 'ortWorker.js'), { workerData: { jobs } });
    let settled = false;
    // Cancel answers at once but leaves the worker to finish its run: terminating a worker inside
    // an ONNX Runtime call aborts the whole process (napi error → std::terminate, exit 134),
    // which in VS Code is the extension host. The worker is stopped as soon as it answers.
    const onAbort = () => finish(() => reject(signal!.reason));
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      f();
    };
    signal?.addEventListener('abort', onAbort);
    w.on('message', (m: { ok: true; results: OrtOutput[][][] } | { ok: false; error: string }) => {
      if (settled) {
        void w.terminate();
        return;
      }
      finish(() => (m.ok ? resolve(m.results) : reject(new Error(m.error))));
    });
    w.on('error', (e) => finish(() => reject(e)));
    w.on('exit', (code) => finish(() => reject(new Error(`ONNX Runtime worker exited with code ${code} before answering`))));
  });
}

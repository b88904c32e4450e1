/**
 * onnxruntime-node sessions for evaluation. Loaded lazily (a native module:
 * the extension host never loads it; pool workers do). CPU by default, one
 * intra-op thread per session since the pool runs one session per core;
 * custom-op libraries are never registered.
 */
import type * as OrtModule from 'onnxruntime-node';
import type { FeedData, FeedDType, FeedTensor, Sample } from './calibData';
import { nativeCall } from '../shared/nativeCalls';
import { probeProviderInWorker, type ProviderProbe } from './ortRun';

export type Ort = typeof OrtModule;
let ortModule: Ort | undefined;
export function ort(): Ort {
  if (!ortModule) ortModule = require('onnxruntime-node') as Ort;
  return ortModule;
}

export interface SessionOptions {
  /** Intra-op threads (default 1: the pool runs one worker per core). */
  threads?: number;
  /** 'cpu' (default) or another provider onnxruntime-node offers here (cuda, dml, coreml); falls back to CPU. */
  provider?: string;
  optimization?: 'disabled' | 'basic' | 'extended' | 'all';
  /** Pre-packed constant weights take other kernels than weights fed as inputs; off makes the two paths bit-identical. */
  prepack?: boolean;
}

/**
 * The settings under which a rewritten model (weights as inputs, extra
 * outputs, a cut suffix) computes bit for bit what the original computes:
 * graph optimizations fuse differently once a weight is an input or an
 * intermediate is an output, and pre-packed constant weights take other
 * kernels. Every evaluation uses these for the reference and the variants alike.
 */
export const EXACT: SessionOptions = { optimization: 'disabled', prepack: false };

/**
 * The fast settings: full graph optimizations, no pre-packing (weights fed as
 * inputs cannot be pre-packed anyway, and the constant ones then take the
 * same kernels). A rewritten model differs from the original in the last
 * bits here, so every comparison takes its reference from the same session.
 */
export const FAST: SessionOptions = { optimization: 'all', prepack: false };

/** The execution provider a run uses, and why it is not the one asked for. */
export interface ProviderChoice { provider: string; note?: string }

const providerChecks = new Map<string, Promise<ProviderChoice>>();

/** A one-node model (Identity on float [1]) that any provider must run: the probe of whether it works here. */
function probeModel(): Uint8Array {
  const { onnxRoot } = require('../formats/onnx/reader') as typeof import('../formats/onnx/reader');
  const T = onnxRoot().lookupType('onnx.ModelProto');
  const vi = (name: string) => ({ name, type: { tensorType: { elemType: 1, shape: { dim: [{ dimValue: 1 }] } } } });
  const m = T.fromObject({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    graph: { name: 'probe', node: [{ opType: 'Identity', input: ['x'], output: ['y'] }], input: [vi('x')], output: [vi('y')] },
  });
  return T.encode(m).finish();
}

/**
 * Whether onnxruntime-node runs `name` here: listed by this build and able to
 * create a session (tried in a child process, ortRun.ts). Otherwise CPU, with
 * the reason in `note` (every result carries it). Checked once per process.
 */
export function resolveProvider(name: string | undefined): Promise<ProviderChoice> {
  const want = (name ?? 'cpu').toLowerCase();
  if (want === 'cpu') return Promise.resolve({ provider: 'cpu' });
  let p = providerChecks.get(want);
  if (!p) {
    p = (async (): Promise<ProviderChoice> => {
      const cannot = (why: string): ProviderChoice => ({ provider: 'cpu', note: `execution provider '${want}' could not start here (${why.split('\n')[0].slice(0, 300)}); running on CPU` });
      // In a child process: this runs in the caller (the extension host, the CLI), where a provider that aborts must not.
      let found: ProviderProbe;
      try {
        found = await probeProviderInWorker(want, probeModel());
      } catch (e) {
        return cannot(e instanceof Error ? e.message : String(e));
      }
      if (!found.offered.includes(want)) return { provider: 'cpu', note: `execution provider '${want}' is not offered by this onnxruntime-node build (offers: ${found.offered.join(', ')}); running on CPU` };
      return found.error === undefined ? { provider: want } : cannot(found.error);
    })();
    providerChecks.set(want, p);
  }
  return p;
}

export async function createSession(bytes: Uint8Array, opts: SessionOptions = {}): Promise<OrtModule.InferenceSession> {
  const o = ort();
  const providers = opts.provider && opts.provider !== 'cpu' ? [opts.provider, 'cpu'] : ['cpu'];
  const options: OrtModule.InferenceSession.SessionOptions = {
    executionProviders: providers,
    intraOpNumThreads: opts.threads ?? 1,
    interOpNumThreads: 1,
    graphOptimizationLevel: opts.optimization ?? 'all',
    logSeverityLevel: 3,
  };
  if (opts.prepack === false) options.extra = { session: { disable_prepacking: '1' } };
  return nativeCall(() => o.InferenceSession.create(bytes, options));
}

/** Frees a session's native memory (counted as a native call: see shared/nativeCalls.ts). */
export function releaseSession(session: OrtModule.InferenceSession): Promise<void> {
  return nativeCall(() => session.release());
}

export function toOrt(t: FeedTensor): OrtModule.Tensor {
  return new (ort().Tensor)(t.dtype, t.data as never, t.dims);
}

export function fromOrt(t: OrtModule.Tensor): FeedTensor {
  return { dtype: t.type as FeedDType, dims: [...t.dims], data: t.data as FeedData };
}

/**
 * Concatenate samples along axis 0 into batches of at most `maxBatch` when
 * every input is batchable (symbolic leading axis, equal trailing shapes);
 * otherwise every sample is its own batch. Returns batches and the sample
 * count of each.
 */
export function batchSamples(samples: readonly Sample[], batchable: ReadonlySet<string>, maxBatch: number): { feeds: Sample[]; sizes: number[] } {
  const feeds: Sample[] = [];
  const sizes: number[] = [];
  const key = (s: Sample) => Object.keys(s).sort().map((k) => `${k}:${s[k].dtype}:${s[k].dims.slice(1).join('x')}:${s[k].dims[0]}`).join('|');
  const canBatch = (s: Sample) => Object.entries(s).every(([k, t]) => batchable.has(k) && t.dims.length > 0 && t.dims[0] === 1);
  let i = 0;
  while (i < samples.length) {
    let j = i + 1;
    if (canBatch(samples[i])) while (j < samples.length && j - i < maxBatch && canBatch(samples[j]) && key(samples[j]) === key(samples[i])) j++;
    if (j - i === 1) { feeds.push(samples[i]); sizes.push(1); i = j; continue; }
    const batch: Sample = {};
    for (const name of Object.keys(samples[i])) {
      const first = samples[i][name];
      const per = first.data.length;
      const data = new (first.data.constructor as { new (n: number): FeedData })(per * (j - i));
      for (let s = i; s < j; s++) (data as unknown as { set(a: ArrayLike<unknown>, o: number): void }).set(samples[s][name].data as ArrayLike<unknown>, (s - i) * per);
      batch[name] = { dtype: first.dtype, dims: [j - i, ...first.dims.slice(1)], data };
    }
    feeds.push(batch);
    sizes.push(j - i);
    i = j;
  }
  return { feeds, sizes };
}

/** Run a session on one feed (extra inputs such as weights merged in), returning the requested outputs. */
export async function runFeed(
  session: OrtModule.InferenceSession, feed: Sample, extra: Record<string, FeedTensor> = {}, outputs?: readonly string[],
): Promise<Record<string, FeedTensor>> {
  const feeds: Record<string, OrtModule.Tensor> = {};
  for (const name of session.inputNames) {
    const t = extra[name] ?? feed[name];
    if (!t) throw new Error(`no data for model input '${name}'`);
    feeds[name] = toOrt(t);
  }
  const res = await nativeCall(() => session.run(feeds, (outputs ?? session.outputNames) as string[]));
  const out: Record<string, FeedTensor> = {};
  for (const [k, v] of Object.entries(res)) out[k] = fromOrt(v);
  return out;
}

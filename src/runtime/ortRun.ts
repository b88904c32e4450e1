/**
 * Run ONNX models with onnxruntime-node in a child process (ortWorker.ts), so
 * a long verification never blocks the extension host or the CLI's event
 * loop, and a model that aborts ONNX Runtime ends only that process. One
 * process per call: it loads each model in turn, runs every feed, sends the
 * outputs back (IPC with V8 serialization: typed arrays pass through) and
 * exits (sessions never outlive the call). The execution-provider probe
 * (session.ts resolveProvider) runs in such a process too.
 */
import { fork } from 'node:child_process';
import * as path from 'node:path';
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

/** What a provider probe found: the providers this build offers, and why `provider` could not create a session (none: it could). */
export interface ProviderProbe { offered: string[]; error?: string }

/** What ortWorker.ts is asked: run jobs, or probe an execution provider on a one-node model. */
export type OrtChildRequest = { op: 'run'; jobs: OrtJob[] } | { op: 'probe'; provider: string; model: Uint8Array };

/** What ortWorker.ts sends: the job it starts (so a crash names its model), then its one answer. */
export type OrtChildMessage =
  | { type: 'running'; index: number }
  | { type: 'done'; ok: true; results?: OrtOutput[][][]; probe?: ProviderProbe }
  | { type: 'done'; ok: false; error: string };

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

/**
 * Results indexed [job][feed][output]. Rejects with ORT's own message (naming
 * the model) when a model fails to load or run, and naming the model and the
 * signal or exit code when ONNX Runtime ends the process. Cancel kills the
 * process at once (only a worker thread inside a native call could not be
 * stopped without taking the whole process down).
 */
export async function runOnnxInWorker(jobs: OrtJob[], signal?: AbortSignal): Promise<OrtOutput[][][]> {
  return (await callOrtChild({ op: 'run', jobs }, (i) => `running ${jobs[i]?.model ?? '(no model)'}`, signal)).results ?? [];
}

/** Lists the providers onnxruntime-node offers and tries `provider` on `model`, in a child process (a provider that aborts ends only that). */
export async function probeProviderInWorker(provider: string, model: Uint8Array): Promise<ProviderProbe> {
  const r = await callOrtChild({ op: 'probe', provider, model }, () => `probing execution provider '${provider}'`);
  return r.probe ?? { offered: [], error: 'no answer' };
}

/** One request to a fresh ortWorker.ts process; `doing(i)` says what it was doing when it ended without an answer. */
function callOrtChild(req: OrtChildRequest, doing: (running: number) => string, signal?: AbortSignal): Promise<Extract<OrtChildMessage, { ok: true }>> {
  return new Promise((resolve, reject) => {
    signal?.throwIfAborted();
    const child = fork(path.join(__dirname, 'ortWorker.js'), [], {
      serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: [],
      // In VS Code, process.execPath is Electron: this makes it a plain Node.js.
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
    let running = 0;
    let settled = false;
    const finish = (f: () => void) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      f();
    };
    const onAbort = () => finish(() => reject(signal!.reason));
    signal?.addEventListener('abort', onAbort);
    child.on('message', (m: OrtChildMessage) => {
      if (m.type === 'running') { running = m.index; return; }
      finish(() => (m.ok ? resolve(m) : reject(new Error(m.error))));
    });
    child.on('error', (e) => finish(() => reject(e)));
    // 'close': stderr has been read to its end (ONNX Runtime's own report of an abort).
    child.on('close', (code, sig) => finish(() => {
      const said = stderr.trim() ? `\n${stderr.trim().split('\n').slice(-8).join('\n')}` : '';
      reject(new Error(sig
        ? `ONNX Runtime ${sig === 'SIGABRT' ? 'aborted' : 'crashed'} while ${doing(running)} (${sig})${said}`
        : `ONNX Runtime worker exited with code ${code} while ${doing(running)} before answering${said}`));
    }));
    try {
      child.send(req);
    } catch (e) {
      finish(() => reject(e instanceof Error ? e : new Error(String(e))));
    }
  });
}

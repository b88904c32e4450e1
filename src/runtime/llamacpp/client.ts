/**
 * Runs one llama.cpp request in a child process (child.ts) and returns its
 * reply. A native crash, abort or hang there becomes a rejected promise here.
 */
import { fork } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type {
  ChildMessage, ComputeTypesReply, ComputeTypesRequest, EvaluateReply, EvaluateRequest, InfoReply, InfoRequest, LlamaReply, LlamaRequest,
  QuantizeChunkReply, QuantizeChunkRequest, QuantizeReply, QuantizeRequest, TokenizeReply, TokenizeRequest,
} from './protocol';

export interface LlamaCallOptions {
  signal?: AbortSignal;
  /** Kill the child after this long (default 10 minutes). */
  timeoutMs?: number;
}

/** The compiled child script beside this file (out/ or a bundle that ships it). */
function childScript(): string {
  const here = path.join(__dirname, 'child.js');
  if (fs.existsSync(here)) return here;
  const bundled = path.join(__dirname, 'llamacpp-child.js');
  if (fs.existsSync(bundled)) return bundled;
  throw new Error(`llama.cpp child script not found beside ${__dirname} (child.js)`);
}

type ReplyOf<R extends LlamaRequest> =
  R extends QuantizeRequest ? QuantizeReply :
  R extends QuantizeChunkRequest ? QuantizeChunkReply :
  R extends EvaluateRequest ? EvaluateReply :
  R extends ComputeTypesRequest ? ComputeTypesReply :
  R extends TokenizeRequest ? TokenizeReply :
  R extends InfoRequest ? InfoReply : LlamaReply;

export function callLlama<R extends LlamaRequest>(req: R, opts: LlamaCallOptions = {}): Promise<ReplyOf<R>> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(new Error('cancelled'));
    const child = fork(childScript(), [], {
      serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: [],
      // In VS Code, process.execPath is Electron: this makes it a plain Node.js (as the pool's worker processes).
      env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' },
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => { if (stderr.length < 20000) stderr += d.toString(); });
    let settled = false;
    const finish = (err: Error | null, reply?: LlamaReply): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      if (err) reject(err); else resolve(reply as ReplyOf<R>);
    };
    const onAbort = (): void => finish(new Error('cancelled'));
    opts.signal?.addEventListener('abort', onAbort);
    const timer = setTimeout(() => finish(new Error(`llama.cpp ${req.op} timed out after ${opts.timeoutMs ?? 600000} ms`)), opts.timeoutMs ?? 600000);
    child.on('message', (m: ChildMessage) => {
      if (m.error !== undefined) finish(new Error(m.error));
      else finish(null, m.reply);
    });
    child.on('error', (e) => finish(e));
    child.on('exit', (code, sig) => {
      finish(new Error(`llama.cpp child process for ${req.op} ended (${sig ?? `exit code ${code}`}) without an answer` +
        (stderr ? `: ${stderr.trim().slice(-2000)}` : '')));
    });
    child.send(req);
  });
}

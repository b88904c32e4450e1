/**
 * Output files of CLI commands (quantized models, plans, reports): the same
 * `--output FILE` / `--overwrite` options everywhere, written atomically
 * (temp file beside FILE, removed on Ctrl+C or error), an existing FILE kept
 * unless --overwrite, and a source of the command never written over.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { AtomicFile, openAtomic, writeFileAtomic } from '../formats/atomicWrite';
import type { OptionSpec, ParsedArgs } from './command';
import { UsageError } from './exitCodes';

export const OUTPUT_OPTIONS: readonly OptionSpec[] = [
  { name: 'output', short: 'o', value: 'FILE', help: 'where to write the result (refused if it exists, unless --overwrite)' },
  { name: 'overwrite', help: 'replace an existing output file' },
];

/** The same file, whatever the path spelling (symlinks, `..`), when it exists. */
function sameFile(a: string, b: string): boolean {
  try {
    const x = fs.statSync(a), y = fs.statSync(b);
    return x.dev === y.dev && x.ino === y.ino;
  } catch {
    return path.resolve(a) === path.resolve(b);
  }
}

/** The --output path, checked: given, its folder exists, and it is none of `sources` (files the command reads). */
export function outputPath(args: ParsedArgs, sources: readonly string[] = [], fallback?: string): string {
  const given = typeof args.options.output === 'string' ? args.options.output : fallback;
  if (!given) throw new UsageError('--output FILE is required');
  const dir = path.dirname(path.resolve(given));
  if (!fs.existsSync(dir)) throw new UsageError(`--output: folder ${dir} does not exist`);
  for (const s of sources) {
    if (sameFile(given, s)) throw new UsageError(`--output ${given} is an input of this command; sources are never written over: choose another file`);
  }
  return given;
}

/** Starts a streamed atomic write of the command's output; `signal` (Ctrl+C) removes the temp file. */
export function openOutput(args: ParsedArgs, signal: AbortSignal, sources: readonly string[] = [], fallback?: string): Promise<AtomicFile> {
  return openAtomic(outputPath(args, sources, fallback), { overwrite: !!args.options.overwrite, signal });
}

/** Writes the whole output at once, atomically. */
export async function writeOutput(args: ParsedArgs, signal: AbortSignal, data: string | Uint8Array, sources: readonly string[] = [], fallback?: string): Promise<string> {
  const p = outputPath(args, sources, fallback);
  await writeFileAtomic(p, data, { overwrite: !!args.options.overwrite, signal });
  return p;
}

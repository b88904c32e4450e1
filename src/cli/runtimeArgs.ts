/**
 * The options every command that runs a model shares (`sensitivity`,
 * `experiment`, later `quantize --calib`): where the calibration data comes
 * from, how synthetic data is shaped, batching, threads.
 */
import type { ModelFile } from '../formats/types';
import type { CalibratorName } from '../quant/calibrators';
import type { CalibOptions, CalibSet, FeedTensor } from '../runtime/calibData';
import { modelCalib } from '../pipelines/evaluate';

export const RUNTIME_VALUE_FLAGS = ['calib', 'samples', 'shape', 'dim', 'input-value', 'seed', 'batch', 'threads', 'calibrator', 'cache-dir', 'configs'];

export const RUNTIME_HELP = `Data options:
  --calib DATA         .npy, .npz (arrays named after the inputs), .json or a
                       folder of them; without it, deterministic synthetic
                       inputs, and every result is labelled synthetic
  --samples N          samples to use (default 16)
  --shape NAME=AxBxC   synthetic data: the shape of input NAME
  --dim SYM=N          synthetic data: value of a symbolic dimension (default
                       1 for a leading axis, 32 elsewhere); comma-separate several
  --input-value NAME=V an integer input fed V in every sample (e.g. sr=16000)
  --seed N             synthetic data seed (default 1)
Run options:
  --batch N            samples per session run (default 4)
  --threads N          worker threads (default: number of cores)
  --calibrator minmax|mse  weight ranges of the quantized weights (default minmax)
  --exact              session settings bit-identical to the original model (slower)
  --no-cache / --cache-dir DIR   results cache (default ~/.cache/quantscope)
  --json               print the full result as JSON`;

function posInt(v: string | boolean | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer, got '${String(v)}'`);
  return n;
}

function pairs(v: string | boolean | undefined, flag: string): [string, string][] {
  if (v === undefined) return [];
  return String(v).split(',').map((p) => {
    const eq = p.lastIndexOf('=');
    if (eq <= 0) throw new Error(`--${flag} expects NAME=VALUE, got '${p}'`);
    return [p.slice(0, eq), p.slice(eq + 1)];
  });
}

export interface RuntimeArgs {
  calib: CalibSet;
  batch?: number;
  threads?: number;
  calibrator?: CalibratorName;
  exact: boolean;
}

/** Parse the shared flags and load the data for this model (errors name the flag or the file). */
export function runtimeArgs(model: ModelFile, flags: Record<string, string | boolean>): RuntimeArgs {
  const opts: CalibOptions = { samples: posInt(flags.samples, 'samples') ?? 16 };
  if (flags.seed !== undefined) opts.seed = Number(flags.seed);
  const shapes: Record<string, number[]> = {};
  for (const [k, v] of pairs(flags.shape, 'shape')) {
    const dims = v.split('x').map(Number);
    if (!dims.every((d) => Number.isInteger(d) && d > 0)) throw new Error(`--shape ${k}=${v}: dimensions must be positive integers separated by x`);
    shapes[k] = dims;
  }
  opts.shapes = shapes;
  opts.dims = Object.fromEntries(pairs(flags.dim, 'dim').map(([k, v]) => [k, posInt(v, 'dim')!]));
  const fixed: Record<string, FeedTensor> = {};
  for (const [k, v] of pairs(flags['input-value'], 'input-value')) {
    if (!/^-?\d+$/.test(v)) throw new Error(`--input-value ${k}=${v}: an integer is expected`);
    fixed[k] = { dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(v)) };
  }
  opts.fixed = fixed;
  const cal = flags.calibrator;
  if (cal !== undefined && cal !== 'minmax' && cal !== 'mse') throw new Error(`--calibrator must be minmax or mse, got '${String(cal)}'`);
  return {
    calib: modelCalib(model, typeof flags.calib === 'string' ? flags.calib : undefined, opts),
    batch: posInt(flags.batch, 'batch'),
    threads: posInt(flags.threads, 'threads'),
    calibrator: cal as CalibratorName | undefined,
    exact: !!flags.exact,
  };
}

/** Left-aligned first column, right-aligned numbers. */
export function table(rows: string[][]): string {
  const w = rows[0].map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length)));
  return rows.map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(w[c]) : cell.padStart(w[c]))).join('  ')).join('\n');
}

export function fmt(v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return '-';
  if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(2) : v.toPrecision(3);
}

/** JSON with typed arrays as arrays and non-finite numbers as strings. */
export function toJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (ArrayBuffer.isView(x) && !(x instanceof DataView) ? Array.from(x as unknown as ArrayLike<number>) : typeof x === 'number' && !Number.isFinite(x) ? String(x) : x));
}

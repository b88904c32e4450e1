/**
 * The options every command that runs a model shares (`sensitivity`,
 * `experiment`, later `quantize --calib`): where the calibration data comes
 * from, how synthetic data is shaped, batching, threads.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelFile } from '../formats/types';
import type { CalibratorName } from '../quant/calibrators';
import type { CalibOptions, CalibSet, FeedTensor } from '../runtime/calibData';
import { modelCalib } from '../pipelines/evaluate';
import type { OptionSpec, ParsedArgs } from './command';
import { UsageError } from './exitCodes';

/** How images and text become inputs (every command that reads --calib). */
export const DATA_OPTIONS: readonly OptionSpec[] = [
  { name: 'image-size', value: 'HxW', help: 'images: resize to H×W (default: the input\'s fixed dims, else the first image\'s size)' },
  { name: 'mean', value: 'M[,M,M]', help: 'images: per-channel mean subtracted from values in [0,1] (default 0)' },
  { name: 'std', value: 'S[,S,S]', help: 'images: per-channel std divided after the mean (default 1)' },
  { name: 'layout', value: 'L', choices: ['nchw', 'nhwc'], help: 'images: input layout (default: guessed from the input shape)' },
  { name: 'channel-order', value: 'O', choices: ['rgb', 'bgr'], help: 'images: channel order the model expects (default rgb)' },
  { name: 'tokenizer', value: 'FILE', help: '.txt data: the model\'s tokenizer.json (default: tokenizer.json beside the model, else UTF-8 bytes as ids)' },
];

function floats(v: Flags[string], flag: string): number[] | undefined {
  if (v === undefined) return undefined;
  const xs = String(v).split(',').map(Number);
  if (!xs.length || xs.some((x) => !Number.isFinite(x))) throw new UsageError(`--${flag} expects numbers separated by commas, got '${String(v)}'`);
  return xs;
}

/** The image and text options of a command line, for a model at `modelPath`. */
export function dataOptions(flags: Flags, modelPath: string): Pick<CalibOptions, 'image' | 'tokenizer'> {
  let size: [number, number] | undefined;
  if (flags['image-size'] !== undefined) {
    const m = /^(\d+)x(\d+)$/.exec(String(flags['image-size']));
    if (!m || +m[1] < 1 || +m[2] < 1) throw new UsageError(`--image-size expects HxW, e.g. 224x224, got '${String(flags['image-size'])}'`);
    size = [+m[1], +m[2]];
  }
  const beside = path.join(path.dirname(path.resolve(modelPath)), 'tokenizer.json');
  const tokenizer = typeof flags.tokenizer === 'string' ? path.resolve(flags.tokenizer) : fs.existsSync(beside) ? beside : undefined;
  return {
    image: {
      size,
      mean: floats(flags.mean, 'mean'),
      std: floats(flags.std, 'std'),
      layout: flags.layout as 'nchw' | 'nhwc' | undefined,
      channelOrder: flags['channel-order'] as 'rgb' | 'bgr' | undefined,
    },
    tokenizer,
  };
}

/** The options of every command that runs a model (declared once, spread into each command's options). */
export const RUNTIME_OPTIONS: readonly OptionSpec[] = [
  { name: 'calib', value: 'DATA', help: '.npy, .npz (arrays named after the inputs), .json, .txt (tokenized, or byte windows), .png/.jpg images, or a folder of them; without it, deterministic synthetic inputs, and every result is labelled synthetic' },
  ...DATA_OPTIONS,
  { name: 'samples', value: 'N', int: { min: 1, max: 100_000 }, help: 'samples to use (default 16)' },
  { name: 'shape', value: 'NAME=AxBxC', help: 'synthetic data: the shape of input NAME (comma-separate several)' },
  { name: 'dim', value: 'SYM=N', help: 'synthetic data: value of a symbolic dimension (default 1 for a leading axis, 32 elsewhere)' },
  { name: 'input-value', value: 'NAME=V', help: 'an integer input fed V in every sample (e.g. sr=16000)' },
  { name: 'seed', value: 'N', int: { min: 0, max: 2 ** 31 }, help: 'synthetic data seed (default 1)' },
  { name: 'batch', value: 'N', int: { min: 1, max: 4096 }, help: 'samples per session run (default 4)' },
  { name: 'threads', value: 'N', int: { min: 1, max: 1024 }, help: 'worker threads (default: number of cores)' },
  { name: 'calibrator', value: 'NAME', choices: ['minmax', 'mse'], help: 'weight ranges of the quantized weights (default minmax)' },
  { name: 'provider', value: 'EP', help: 'onnxruntime-node execution provider: cpu (default), cuda, webgpu, tensorrt, dml, coreml where this build offers it; one that cannot start falls back to CPU, said so' },
  { name: 'exact', help: 'session settings bit-identical to the original model (slower)' },
  { name: 'json', help: 'print the full result as JSON' },
];

type Flags = ParsedArgs['options'];

function posInt(v: Flags[string], flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${flag} must be a positive integer, got '${String(v)}'`);
  return n;
}

function pairs(v: Flags[string], flag: string): [string, string][] {
  if (v === undefined) return [];
  return String(v).split(',').map((p) => {
    const eq = p.lastIndexOf('=');
    if (eq <= 0) throw new UsageError(`--${flag} expects NAME=VALUE, got '${p}'`);
    return [p.slice(0, eq), p.slice(eq + 1)];
  });
}

export interface RuntimeArgs {
  calib: CalibSet;
  batch?: number;
  threads?: number;
  calibrator?: CalibratorName;
  exact: boolean;
  provider?: string;
}

/** Parse the shared flags and load the data for this model (errors name the flag or the file). */
export function runtimeArgs(model: ModelFile, flags: Flags): RuntimeArgs {
  const opts: CalibOptions = { samples: posInt(flags.samples, 'samples') ?? 16, ...dataOptions(flags, model.path) };
  if (flags.seed !== undefined) opts.seed = Number(flags.seed);
  const shapes: Record<string, number[]> = {};
  for (const [k, v] of pairs(flags.shape, 'shape')) {
    const dims = v.split('x').map(Number);
    if (!dims.every((d) => Number.isInteger(d) && d > 0)) throw new UsageError(`--shape ${k}=${v}: dimensions must be positive integers separated by x`);
    shapes[k] = dims;
  }
  opts.shapes = shapes;
  opts.dims = Object.fromEntries(pairs(flags.dim, 'dim').map(([k, v]) => [k, posInt(v, 'dim')!]));
  const fixed: Record<string, FeedTensor> = {};
  for (const [k, v] of pairs(flags['input-value'], 'input-value')) {
    if (!/^-?\d+$/.test(v)) throw new UsageError(`--input-value ${k}=${v}: an integer is expected`);
    fixed[k] = { dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(v)) };
  }
  opts.fixed = fixed;
  const cal = flags.calibrator;
  return {
    calib: modelCalib(model, typeof flags.calib === 'string' ? flags.calib : undefined, opts),
    batch: posInt(flags.batch, 'batch'),
    threads: posInt(flags.threads, 'threads'),
    calibrator: cal as CalibratorName | undefined,
    exact: !!flags.exact,
    provider: typeof flags.provider === 'string' ? flags.provider : undefined,
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

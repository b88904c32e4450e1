/**
 * `quantscope quantize MODEL -o OUT --target TARGET [options] [--json]`:
 * writes a quantized model a runtime loads, verified before it is kept
 * (src/pipelines/convert.ts). Exit codes: 0 written and verified, 1 bad
 * input (file, plan, data, budget), 2 usage, 3 verification failed (nothing
 * kept), 130 cancelled (nothing kept).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CliCommand, parseArgs } from './common';
import { FormatError } from '../formats/types';
import { PlanError } from '../quant/plan';
import { CancelledError } from '../jobs/cancel';
import { ConvertInputError, TARGETS, VerificationError, convert, defaultOutputPath, type ConvertReport, type ConvertRequest, type ConvertTarget } from '../pipelines/convert';
import type { Feeds } from '../runtime/ortRun';

export const HELP = `Usage: quantscope quantize MODEL [-o OUT] --target TARGET [options] [--json]

Writes a quantized copy of MODEL that a runtime loads, reads it back and runs
it before keeping it. The source is never modified.

Targets:
${TARGETS.map((t) => `  ${t.id.padEnd(13)} ${t.label}; loaded by ${t.loadedBy}`).join('\n')}

Options:
  -o, --output OUT        output file (default: next to MODEL, e.g. model.int4.onnx, model-Q4_K_M.gguf)
  --overwrite             replace OUT if it exists
  --json                  print the report as JSON (schema quantscope/quantize/v1)
  --progress              progress on stderr even when it is not a terminal
ONNX targets:
  --bits 2|4|8            onnx-int4: 4 (default), 8, or 2; onnx-qdq: 8 (default) or 4 (blocked, opset 21)
  --block-size N          elements per block along K, a power of two 16..256 (default 128)
  --asym                  zero points per block (default symmetric)
  --accuracy-level N      MatMulNBits accuracy_level 0..4
  --algo rtn|gptq|awq     rounding algorithm (gptq and awq need --calib)
  --act-order             GPTQ: columns by decreasing activation energy (writes g_idx)
  --calib FILE.json       calibration inputs: a JSON array of {"<input>": {"dims": [...], "data": [...], "type": "int64"|"float32"|...}}
  --exclude REGEX         leave tensors or nodes whose name matches as they are
GGUF target:
  --type PRESET           Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q4_K_S Q4_K_M (default) Q5_K_S Q5_K_M Q6_K
  --tensor-type REGEX=TYPE  per-tensor override, as llama-quantize (repeatable)
  --imatrix FILE          llama.cpp importance matrix (GGUF or legacy .dat)
  --pure                  every quantizable tensor gets the preset's base type
  --allow-requantize      accept Q8_0 source tensors
Plans:
  --plan PLAN.json        per-tensor choices (schema quantscope/plan/v1, see the README)
  --budget-bpw X          run the knapsack over the weight-space sensitivity for X bits per weight
  --budget-mb N           the same for N MB of planned weights; the plan is written to OUT.plan.json
  --plan-out FILE         where a budget's plan is written
Verification:
  --no-runtime-check      do not run the models (the read-back check always runs)

Exit codes: 0 written and verified, 1 bad input, 2 usage, 3 verification failed (nothing kept), 130 cancelled.`;

const VALUE_FLAGS = ['output', 'target', 'bits', 'block-size', 'accuracy-level', 'algo', 'calib', 'exclude', 'type', 'tensor-type', 'imatrix', 'plan', 'budget-bpw', 'budget-mb', 'plan-out'];

class UsageError extends Error {}

/** Calibration inputs from a JSON file: an array of feeds keyed by the model's input names. */
export function readJsonFeeds(file: string): Feeds[] {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new ConvertInputError(`${file}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!Array.isArray(raw) || raw.length === 0) throw new ConvertInputError(`${file}: calibration data must be a non-empty JSON array of feeds`);
  const ctor: Record<string, (a: number[]) => Feeds[string]['data']> = {
    float32: (a) => Float32Array.from(a), int64: (a) => BigInt64Array.from(a.map((x) => BigInt(Math.trunc(x)))), int32: (a) => Int32Array.from(a),
    uint8: (a) => Uint8Array.from(a), int8: (a) => Int8Array.from(a), float64: (a) => Float64Array.from(a),
  };
  return raw.map((feed, i) => {
    if (typeof feed !== 'object' || feed === null || Array.isArray(feed)) throw new ConvertInputError(`${file}: feed ${i} must be an object of input name → tensor`);
    const out: Feeds = {};
    for (const [name, t] of Object.entries(feed as Record<string, unknown>)) {
      const v = t as { dims?: unknown; data?: unknown; type?: unknown };
      const type = typeof v.type === 'string' ? v.type : 'float32';
      if (!Array.isArray(v.dims) || !v.dims.every((d) => Number.isInteger(d) && d >= 0)) throw new ConvertInputError(`${file}: feed ${i} input '${name}': dims must be an array of non-negative integers`);
      if (!Array.isArray(v.data) || !v.data.every((x) => typeof x === 'number' && Number.isFinite(x))) throw new ConvertInputError(`${file}: feed ${i} input '${name}': data must be an array of finite numbers`);
      const n = (v.dims as number[]).reduce((a, b) => a * b, 1);
      if (v.data.length !== n) throw new ConvertInputError(`${file}: feed ${i} input '${name}': dims [${v.dims.join(', ')}] hold ${n} values, data has ${v.data.length}`);
      const make = ctor[type];
      if (!make) throw new ConvertInputError(`${file}: feed ${i} input '${name}': type '${type}' (known: ${Object.keys(ctor).join(', ')})`);
      out[name] = { data: make(v.data as number[]), dims: v.dims as number[], type };
    }
    return out;
  });
}

function numberFlag(flags: Record<string, string | boolean | string[]>, name: string): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || !Number.isFinite(n)) throw new UsageError(`--${name} needs a number, got '${String(v)}'`);
  return n;
}

/** Parses the command line into a request; throws UsageError for anything malformed. */
export function parseQuantizeArgs(argv: string[]): { req: ConvertRequest; json: boolean; progress: boolean } {
  // -o is the short form of --output; --tensor-type may repeat.
  const tensorTypes: string[] = [];
  const norm: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '-o') norm.push('--output');
    else if (argv[i] === '--tensor-type' && i + 1 < argv.length) { tensorTypes.push(argv[++i]); continue; }
    else if (argv[i].startsWith('--tensor-type=')) { tensorTypes.push(argv[i].slice('--tensor-type='.length)); continue; }
    else norm.push(argv[i]);
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(norm, VALUE_FLAGS);
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : String(e));
  }
  const { flags, positionals } = parsed;
  const known = new Set([...VALUE_FLAGS, 'overwrite', 'json', 'progress', 'asym', 'act-order', 'pure', 'allow-requantize', 'no-runtime-check', 'help', 'h']);
  for (const k of Object.keys(flags)) if (!known.has(k)) throw new UsageError(`unknown option --${k}`);
  if (positionals.length !== 1) throw new UsageError(`expected one MODEL, got ${positionals.length}`);
  const target = flags.target;
  if (typeof target !== 'string') throw new UsageError('--target is required');
  if (!TARGETS.some((t) => t.id === target)) throw new UsageError(`unknown target '${target}' (known: ${TARGETS.map((t) => t.id).join(', ')})`);
  const source = path.resolve(positionals[0]);
  const bits = numberFlag(flags, 'bits');
  if (bits !== undefined && bits !== 2 && bits !== 4 && bits !== 8) throw new UsageError(`--bits must be 2, 4 or 8, got ${bits}`);
  const blockSize = numberFlag(flags, 'block-size');
  if (blockSize !== undefined && !(blockSize >= 16 && blockSize <= 256 && (blockSize & (blockSize - 1)) === 0)) throw new UsageError(`--block-size must be a power of two from 16 to 256, got ${blockSize}`);
  const accuracyLevel = numberFlag(flags, 'accuracy-level');
  if (accuracyLevel !== undefined && !(Number.isInteger(accuracyLevel) && accuracyLevel >= 0 && accuracyLevel <= 4)) throw new UsageError(`--accuracy-level must be 0..4, got ${accuracyLevel}`);
  const algo = flags.algo;
  if (algo !== undefined && algo !== 'rtn' && algo !== 'gptq' && algo !== 'awq') throw new UsageError(`--algo must be rtn, gptq or awq, got '${String(algo)}'`);
  const bpw = numberFlag(flags, 'budget-bpw');
  const mb = numberFlag(flags, 'budget-mb');
  if (bpw !== undefined && mb !== undefined) throw new UsageError('give --budget-bpw or --budget-mb, not both');
  if (bpw !== undefined && !(bpw > 0 && bpw <= 64)) throw new UsageError(`--budget-bpw must be in (0, 64], got ${bpw}`);
  if (mb !== undefined && !(mb > 0)) throw new UsageError(`--budget-mb must be positive, got ${mb}`);
  if (typeof flags.plan === 'string' && (bpw !== undefined || mb !== undefined)) throw new UsageError('give --plan or a budget, not both');
  if (typeof flags.exclude === 'string') {
    try { new RegExp(flags.exclude); } catch (e) { throw new UsageError(`--exclude: ${e instanceof Error ? e.message : String(e)}`); }
  }
  const tt = target as ConvertTarget;
  const preset = typeof flags.type === 'string' ? flags.type : undefined;
  if (tt !== 'gguf' && (preset || tensorTypes.length || flags.imatrix || flags.pure || flags['allow-requantize'])) throw new UsageError('--type, --tensor-type, --imatrix, --pure and --allow-requantize are for --target gguf');
  if (tt === 'gguf' && (bits !== undefined || blockSize !== undefined || flags.asym || algo)) throw new UsageError('--bits, --block-size, --asym and --algo are for the ONNX targets');
  const output = typeof flags.output === 'string' ? path.resolve(flags.output) : defaultOutputPath(source, tt, { bits, preset });
  const req: ConvertRequest = { source, output, target: tt, overwrite: !!flags.overwrite, skipRuntime: !!flags['no-runtime-check'] };
  if (bits !== undefined) req.bits = bits as 2 | 4 | 8;
  if (blockSize !== undefined) req.blockSize = blockSize;
  if (flags.asym) req.symmetric = false;
  if (accuracyLevel !== undefined) req.accuracyLevel = accuracyLevel;
  if (algo) req.algo = algo as ConvertRequest['algo'];
  if (flags['act-order']) req.actOrder = true;
  if (typeof flags.exclude === 'string') req.exclude = flags.exclude;
  if (preset) req.preset = preset;
  if (tensorTypes.length) req.tensorTypes = tensorTypes;
  if (typeof flags.imatrix === 'string') req.imatrix = path.resolve(flags.imatrix);
  if (flags.pure) req.pure = true;
  if (flags['allow-requantize']) req.allowRequantize = true;
  if (typeof flags.plan === 'string') req.plan = path.resolve(flags.plan);
  if (bpw !== undefined) req.budget = { bitsPerWeight: bpw };
  if (mb !== undefined) req.budget = { bytes: Math.round(mb * 1e6) };
  if (typeof flags['plan-out'] === 'string') req.planOut = path.resolve(flags['plan-out']);
  if (typeof flags.calib === 'string') req.calibration = readJsonFeeds(path.resolve(flags.calib));
  return { req, json: !!flags.json, progress: !!flags.progress };
}

const fmtBytes = (n: number) => (n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(2)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);
const db = (v: number | undefined) => (v === undefined ? '—' : Number.isFinite(v) ? `${v.toFixed(1)} dB` : '∞ dB');

export function renderReport(r: ConvertReport): string {
  const L: string[] = [];
  L.push(`wrote       ${r.output}${r.files.length > 1 ? ` (+ ${r.files.slice(1).map((f) => path.basename(f)).join(', ')})` : ''}`);
  L.push(`target      ${r.target}`);
  L.push(`tensors     ${r.totals.tensorsQuantized} quantized, ${r.totals.tensorsKept} kept as they were`);
  L.push(`weights     ${fmtBytes(r.totals.bytesBefore)} → ${fmtBytes(r.totals.bytesAfter)}`);
  L.push(`file        ${fmtBytes(r.totals.fileBytesBefore)} → ${fmtBytes(r.totals.fileBytesAfter)} (${((100 * r.totals.fileBytesAfter) / Math.max(1, r.totals.fileBytesBefore)).toFixed(1)}%)`);
  if (r.plan) L.push(`plan        ${r.plan.tensors} tensors${r.plan.file ? ` from ${r.plan.file}` : ''}${r.plan.predicted ? `; predicted ${r.plan.predicted.errorKind}: ${r.plan.predicted.error.toPrecision(4)}` : ''}`);
  const worst = [...r.tensors].sort((a, b) => a.predicted.sqnrDb - b.predicted.sqnrDb).slice(0, 5);
  if (worst.length) {
    L.push('', 'weight error (computed from the written codes, weight space), worst first:');
    for (const t of worst) L.push(`  ${db(t.predicted.sqnrDb).padStart(9)}  ${t.name}  ${t.choice}`);
  }
  L.push('', `read back   ${r.verification.readBack.checked} tensors decode to the predicted values`);
  const rt = r.verification.runtime;
  if (rt) {
    L.push(`measured    on ${rt.runtime}, ${rt.data} inputs (${rt.inputs.join('; ')}):`);
    for (const o of rt.outputs) {
      const parts = [o.cosine !== undefined ? `cosine ${o.cosine.toFixed(6)}` : '', o.sqnrDb !== undefined ? `SQNR ${db(o.sqnrDb)}` : '', o.maxAbs !== undefined ? `max |err| ${o.maxAbs.toPrecision(3)}` : '',
        o.top1Agreement !== undefined ? `top-1 agreement ${(100 * o.top1Agreement).toFixed(1)}%` : '', o.meanKl !== undefined ? `mean KL ${o.meanKl.toPrecision(3)} nats` : ''].filter(Boolean);
      L.push(`  ${o.name}: ${parts.join(', ')}`);
    }
  } else if (r.verification.runtimeSkipped) L.push(`measured    not run: ${r.verification.runtimeSkipped}`);
  L.push(`time        ${r.seconds.total.toFixed(2)} s (convert ${r.seconds.convert.toFixed(2)} s, verify ${r.seconds.verify.toFixed(2)} s)`);
  return L.join('\n');
}

export async function runQuantize(argv: string[], signal?: AbortSignal): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) { console.log(HELP); return 0; }
  let parsed: ReturnType<typeof parseQuantizeArgs>;
  try {
    parsed = parseQuantizeArgs(argv);
  } catch (e) {
    if (e instanceof UsageError) { console.error(`quantscope quantize: ${e.message}\n\nRun 'quantscope quantize --help' for the options.`); return 2; }
    console.error(`quantscope quantize: ${e instanceof Error ? e.message : String(e)}`);
    return 1;
  }
  const { WorkerPool } = require('../jobs/pool') as typeof import('../jobs/pool');
  const pool = new WorkerPool();
  const showProgress = parsed.progress || !!process.stderr.isTTY;
  let last = 0;
  try {
    const report = await convert({ ...parsed.req, pool }, {
      signal,
      onProgress: (p) => {
        if (!showProgress) return;
        const now = Date.now();
        if (now - last < 200 && p.done !== p.total) return;
        last = now;
        process.stderr.write(`\r${p.phase} ${p.done}/${p.total}${p.tensor ? ` ${p.tensor.slice(0, 50)}` : ''}`.padEnd(80) + (p.phase === 'verify' ? '\n' : ''));
      },
    });
    if (showProgress) process.stderr.write('\r'.padEnd(81) + '\r');
    console.log(parsed.json ? JSON.stringify(report, null, 2) : renderReport(report));
    return 0;
  } catch (e) {
    if (showProgress) process.stderr.write('\n');
    if (e instanceof CancelledError || signal?.aborted) { console.error('quantscope quantize: cancelled; nothing was written'); return 130; }
    if (e instanceof VerificationError) {
      console.error(`quantscope quantize: verification failed: ${e.message}`);
      if (parsed.json && e.report) console.log(JSON.stringify(e.report, null, 2));
      return 3;
    }
    // Bad input (ConvertInputError, PlanError, FormatError) and anything else that stopped the conversion: 1, with the message.
    const known = e instanceof ConvertInputError || e instanceof PlanError || e instanceof FormatError;
    console.error(`quantscope quantize: ${e instanceof Error ? (known ? e.message : e.stack ?? e.message) : String(e)}`);
    return 1;
  } finally {
    await pool.close();
  }
}

export const command: CliCommand = {
  summary: 'write a quantized model (ONNX MatMulNBits / QDQ / dynamic, GGUF presets), verified',
  run: (argv) => {
    const ac = new AbortController();
    const onSig = () => ac.abort();
    process.once('SIGINT', onSig);
    return runQuantize(argv, ac.signal).finally(() => process.off('SIGINT', onSig));
  },
};

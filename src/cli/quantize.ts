/**
 * `quantscope quantize MODEL -o OUT --target TARGET [options] [--json]`:
 * writes a quantized model a runtime loads, verified before it is kept
 * (src/pipelines/convert.ts). Exit codes: 0 written and verified, 1 bad
 * input (file, plan, data, budget), 2 usage, 3 verification failed (nothing
 * kept), 130 cancelled (nothing kept).
 */
import * as path from 'node:path';
import type { CliCommand, OptionSpec, ParsedArgs } from './command';
import { EXIT, UsageError } from './exitCodes';
import type { CliIO } from './io';
import { QUANTIZE_SCHEMA, TARGETS, convert, defaultOutputPath, loadCalibration, type ConvertReport, type ConvertRequest, type ConvertTarget } from '../pipelines/convert';
import { DATA_OPTIONS, dataOptions } from './runtimeArgs';

export const OPTIONS: readonly OptionSpec[] = [
  { name: 'output', short: 'o', value: 'OUT', help: 'output file, or folder for the safetensors-* targets (default: next to MODEL, e.g. model.int4.onnx, model-Q4_K_M.gguf, MODEL_DIR-GPTQ-4bit)' },
  { name: 'overwrite', help: 'replace OUT if it exists' },
  { name: 'target', value: 'TARGET', choices: TARGETS.map((t) => t.id), help: `${TARGETS.map((t) => t.id).join(', ')} (required)` },
  { name: 'json', help: `print the report as JSON (schema ${QUANTIZE_SCHEMA})` },
  { name: 'bits', value: 'B', choices: ['2', '4', '8'], help: 'onnx-int4 and safetensors-*: 4 (default), 8 or 2; onnx-qdq: 8 (default) or 4 (blocked, opset 21)' },
  { name: 'block-size', value: 'N', int: { min: 16, max: 256 }, help: 'elements per block (group) along K, a power of two 16..256 (default 128)' },
  { name: 'asym', help: 'zero points per block (default symmetric)' },
  { name: 'accuracy-level', value: 'N', int: { min: 0, max: 4 }, help: 'MatMulNBits accuracy_level' },
  { name: 'algo', value: 'ALGO', choices: ['rtn', 'gptq', 'awq'], help: 'rounding algorithm (gptq and awq need --calib)' },
  { name: 'act-order', help: 'GPTQ: columns by decreasing activation energy (writes g_idx)' },
  { name: 'calib', value: 'DATA', help: 'calibration inputs for GPTQ/AWQ, static activation ranges (onnx-qdq) and the output comparison: .npy, .npz (arrays named after the inputs), .json, .txt (tokenized, or byte windows), .png/.jpg images, or a folder of them; safetensors-* targets: each Linear\'s input activations, .npz with arrays named after the modules' },
  { name: 'samples', value: 'N', int: { min: 1, max: 100_000 }, help: 'calibration samples to use (default 32)' },
  ...DATA_OPTIONS,
  { name: 'calibrator', value: 'NAME', choices: ['minmax', 'percentile', 'mse', 'entropy'], help: 'onnx-qdq with --calib: how the static activation ranges are chosen (default minmax)' },
  { name: 'exclude', value: 'REGEX', help: 'leave tensors or nodes whose name matches as they are' },
  { name: 'type', value: 'PRESET', help: 'gguf: Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 Q2_K Q3_K_S Q3_K_M Q4_K_S Q4_K_M (default) Q5_K_S Q5_K_M Q6_K; from a Hugging Face checkpoint folder also F32 F16 BF16' },
  { name: 'tensor-type', value: 'REGEX=TYPE', repeat: true, help: 'gguf: per-tensor override, as llama-quantize (repeatable)' },
  { name: 'imatrix', value: 'FILE', help: 'gguf: llama.cpp importance matrix (GGUF or legacy .dat)' },
  { name: 'pure', help: 'gguf: every quantizable tensor gets the preset\'s base type' },
  { name: 'allow-requantize', help: 'gguf: accept Q8_0 source tensors' },
  { name: 'plan', value: 'PLAN.json', help: 'per-tensor choices (schema quantscope/plan/v1, see the README)' },
  { name: 'budget-bpw', value: 'X', help: 'run the knapsack over the weight-space sensitivity for X bits per weight' },
  { name: 'budget-mb', value: 'N', help: 'the same for N MB (1e6 bytes) of planned weights (gguf: of the whole file); the plan is written to OUT.plan.json' },
  { name: 'plan-out', value: 'FILE', help: 'where a budget\'s plan is written' },
  { name: 'no-runtime-check', help: 'do not run the models (the read-back check always runs)' },
];

function numberOption(o: ParsedArgs['options'], name: string): number | undefined {
  const v = o[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} needs a number, got '${String(v)}'`);
  return n;
}

/** The request a parsed command line asks for; UsageError for combinations that make no sense. */
export function quantizeRequest(args: ParsedArgs): ConvertRequest {
  const o = args.options;
  const target = o.target;
  if (typeof target !== 'string') throw new UsageError('--target is required');
  const source = path.resolve(args.positionals[0]);
  const bits = o.bits === undefined ? undefined : Number(o.bits);
  const blockSize = typeof o['block-size'] === 'number' ? o['block-size'] : undefined;
  if (blockSize !== undefined && (blockSize & (blockSize - 1)) !== 0) throw new UsageError(`--block-size must be a power of two from 16 to 256, got ${blockSize}`);
  const bpw = numberOption(o, 'budget-bpw');
  const mb = numberOption(o, 'budget-mb');
  if (bpw !== undefined && mb !== undefined) throw new UsageError('give --budget-bpw or --budget-mb, not both');
  if (bpw !== undefined && !(bpw > 0 && bpw <= 64)) throw new UsageError(`--budget-bpw must be in (0, 64], got ${bpw}`);
  if (mb !== undefined && !(mb > 0)) throw new UsageError(`--budget-mb must be positive, got ${mb}`);
  if (typeof o.plan === 'string' && (bpw !== undefined || mb !== undefined)) throw new UsageError('give --plan or a budget, not both');
  if (typeof o.exclude === 'string') {
    try { new RegExp(o.exclude); } catch (e) { throw new UsageError(`--exclude: ${e instanceof Error ? e.message : String(e)}`); }
  }
  const tt = target as ConvertTarget;
  const tensorTypes = Array.isArray(o['tensor-type']) ? o['tensor-type'] : typeof o['tensor-type'] === 'string' ? [o['tensor-type']] : [];
  const preset = typeof o.type === 'string' ? o.type : undefined;
  if (tt !== 'gguf' && (preset || tensorTypes.length || o.imatrix || o.pure || o['allow-requantize'])) throw new UsageError('--type, --tensor-type, --imatrix, --pure and --allow-requantize are for --target gguf');
  if (tt === 'gguf' && (bits !== undefined || blockSize !== undefined || o.asym || o.algo)) throw new UsageError('--bits, --block-size, --asym and --algo are for the ONNX targets');
  const output = typeof o.output === 'string' ? path.resolve(o.output) : defaultOutputPath(source, tt, { bits, preset });
  const req: ConvertRequest = { source, output, target: tt, overwrite: !!o.overwrite, skipRuntime: !!o['no-runtime-check'] };
  if (bits !== undefined) req.bits = bits as 2 | 4 | 8;
  if (blockSize !== undefined) req.blockSize = blockSize;
  if (o.asym) req.symmetric = false;
  if (typeof o['accuracy-level'] === 'number') req.accuracyLevel = o['accuracy-level'];
  if (typeof o.algo === 'string') req.algo = o.algo as ConvertRequest['algo'];
  if (typeof o.calibrator === 'string') {
    if (tt !== 'onnx-qdq' || typeof o.calib !== 'string') throw new UsageError('--calibrator sets the static activation ranges of --target onnx-qdq with --calib');
    req.activationCalibrator = o.calibrator as ConvertRequest['activationCalibrator'];
  }
  if (o['act-order']) req.actOrder = true;
  if (typeof o.exclude === 'string') req.exclude = o.exclude;
  if (preset) req.preset = preset;
  if (tensorTypes.length) req.tensorTypes = tensorTypes;
  if (typeof o.imatrix === 'string') req.imatrix = path.resolve(o.imatrix);
  if (o.pure) req.pure = true;
  if (o['allow-requantize']) req.allowRequantize = true;
  if (typeof o.plan === 'string') req.plan = path.resolve(o.plan);
  if (bpw !== undefined) req.budget = { bitsPerWeight: bpw };
  if (mb !== undefined) req.budget = { bytes: Math.round(mb * 1e6) };
  if (typeof o['plan-out'] === 'string') req.planOut = path.resolve(o['plan-out']);
  // A Hugging Face checkpoint has no graph to run here: GPTQ takes each Linear's recorded input activations instead.
  if (typeof o.calib === 'string' && tt.startsWith('safetensors-')) req.activations = path.resolve(o.calib);
  else if (typeof o.calib === 'string') req.calibration = loadCalibration(source, path.resolve(o.calib), typeof o.samples === 'number' ? o.samples : 32, dataOptions(o, source));
  return req;
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
  if (r.plan?.estimates?.length) {
    L.push('', 'plan (predicted per tensor: weight-space error of the chosen ggml type on sampled rows of the real weights):');
    for (const e of r.plan.estimates) L.push(`  ${e.choice.padEnd(5)} ${db(e.sqnrDb).padStart(9)}  ${e.name}  (${e.sampledRows} of ${e.rows} rows, ${fmtBytes(e.bytes)})`);
  }
  const worst = [...r.tensors].sort((a, b) => a.predicted.sqnrDb - b.predicted.sqnrDb).slice(0, 5);
  if (worst.length) {
    L.push('', 'weight error (computed from the written codes, weight space), worst first:');
    for (const t of worst) L.push(`  ${db(t.predicted.sqnrDb).padStart(9)}  ${t.name}  ${t.choice}`);
  }
  if (r.activations) {
    L.push('', `activations ${r.activations.tensors.length} quantized statically (uint8 QuantizeLinear/DequantizeLinear), ranges by ${r.activations.calibrator} measured on ${r.activations.samples} calibration samples${r.activations.skipped.length ? `; ${r.activations.skipped.length} left float` : ''}`);
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

async function run(args: ParsedArgs, io: CliIO, signal: AbortSignal): Promise<number> {
  const req = quantizeRequest(args);
  const { WorkerPool } = require('../jobs/pool') as typeof import('../jobs/pool');
  const pool = new WorkerPool();
  try {
    const report = await convert({ ...req, pool }, {
      signal,
      onProgress: (p) => io.progress(`${p.phase} ${p.done}/${p.total}${p.tensor ? ` ${p.tensor.slice(0, 50)}` : ''}`, p.done === p.total),
    });
    io.progressDone();
    if (args.options.json) await io.json(QUANTIZE_SCHEMA, report);
    else await io.line(renderReport(report));
    return EXIT.ok;
  } finally {
    io.progressDone();
    await pool.close();
  }
}

export const command: CliCommand = {
  name: 'quantize',
  summary: 'write a quantized model (ONNX MatMulNBits / QDQ / dynamic, GGUF presets), verified before it is kept',
  synopsis: 'MODEL|CHECKPOINT_DIR [-o OUT] --target TARGET [options]',
  description: `Writes a quantized copy of MODEL that a runtime loads, reads every quantized
tensor back and runs both models (ONNX Runtime; llama.cpp for GGUF when
node-llama-cpp is installed) before keeping it. The source is never modified.
Targets:
${TARGETS.map((t) => `  ${t.id.padEnd(13)} ${t.label}; loaded by ${t.loadedBy}`).join('\n')}
Exit codes: 0 written and verified, 1 bad input (file, plan, data, budget),
2 usage, 3 verification failed (nothing kept), 130 cancelled (nothing kept).`,
  options: OPTIONS,
  positionals: { min: 1, max: 1 },
  jsonSchema: QUANTIZE_SCHEMA,
  run,
};

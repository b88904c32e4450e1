/**
 * Quantize a model into a file a runtime loads: the one entry the CLI
 * (`quantscope quantize`) and the extension (Quantize Model…) call. It picks
 * the converter for the target, turns a plan or a size budget into per-tensor
 * choices, and verifies what was written before reporting it:
 * - every quantized tensor is read back with the project's reader and must
 *   decode to exactly the values the engine predicted;
 * - ONNX: original and output run in ONNX Runtime on the same inputs (given
 *   calibration feeds, else deterministic synthetic ones, labelled so);
 * - GGUF: when llama.cpp (node-llama-cpp) is installed, both files are
 *   evaluated on the same tokens and the KL of the output against the source
 *   is reported.
 * The output is written next to its final name and renamed only after the
 * read-back check; a failed check removes it (exit code 3 in the CLI).
 */
import { setMaxListeners } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelFile, TensorInfo } from '../formats/types';
import { openModel } from '../formats/index';
import { DestinationExistsError, publishFile, removeStaleTempFiles, tempPathFor, writeFileAtomicSync } from '../formats/atomicWrite';
import { CancelledError } from '../jobs/cancel';
import type { WorkerPool } from '../jobs/pool';
import { configsFor, nbitsChoice, parsePlan, planChoice, targetBytes, type Plan, type PlanTarget } from '../quant/plan';
import { budgetPlan, type Budget, type BudgetPlanResult } from '../analysis/budgetPlan';
import { isAnalysable } from '../analysis/tensorSource';
import { analyseSensitivity } from './analyseSensitivity';
import { convertOnnx, type ConvertOnnxOptions, type ConvertOnnxResult, type TensorChoice } from './convertOnnx';
import { verifyOnnx, type VerifyOnnxReport } from './verifyOnnx';
import { feedsOfSamples, type Feeds } from '../runtime/ortRun';
import { modelCalib } from './evaluate';
import type { CalibOptions } from '../runtime/calibData';
import { convertGguf, type ConvertGgufResult } from './convertGguf';
import { runSafetensors, type SafetensorsTarget } from './convertSafetensors';
import { ConvertInputError, VerificationError } from './errors';
import { isHfCheckpoint } from '../formats/hf/checkpoint';
import { runHfGguf } from './hfGgufReport';
import { resolveGgufBudget, type GgufTensorEstimate } from './ggufBudget';
import { readGgufHeader } from '../formats/gguf/reader';
import { ggmlTypeById } from '../formats/gguf/ggmlTypes';

export { ConvertInputError, VerificationError };
import { isGgufPreset, type GgufPreset } from '../quant/ggml/presets';

export const QUANTIZE_SCHEMA = 'quantscope/quantize/v1';

export type ConvertTarget = PlanTarget;

export interface TargetInfo {
  id: ConvertTarget;
  label: string;
  /** Who loads the written file. */
  loadedBy: string;
  /** Source formats it converts. */
  from: ModelFile['format'][];
}

export const TARGETS: readonly TargetInfo[] = [
  { id: 'onnx-int4', label: 'ONNX weight-only INT4/INT8 (MatMulNBits)', loadedBy: 'ONNX Runtime (CPU, CUDA, DirectML), onnxruntime-genai', from: ['onnx'] },
  { id: 'onnx-qdq', label: 'ONNX QDQ (DequantizeLinear on INT8 / blocked INT4 weights)', loadedBy: 'ONNX Runtime and any ONNX runtime with QDQ support (TensorRT, OpenVINO, QNN)', from: ['onnx'] },
  { id: 'onnx-dynamic', label: 'ONNX dynamic INT8 (MatMul/Gemm)', loadedBy: 'ONNX Runtime (CPU)', from: ['onnx'] },
  { id: 'gguf', label: 'GGUF (llama.cpp quantization presets)', loadedBy: 'llama.cpp, Ollama, LM Studio', from: ['gguf', 'safetensors'] },
  { id: 'safetensors-gptq', label: 'GPTQ checkpoint folder (qweight/qzeros/scales/g_idx, v1 zeros)', loadedBy: 'transformers with gptqmodel or optimum, vLLM', from: ['safetensors'] },
  { id: 'safetensors-compressed', label: 'compressed-tensors pack-quantized checkpoint folder (W4A16/W8A16 groups)', loadedBy: 'vLLM, transformers with compressed-tensors', from: ['safetensors'] },
];

export function targetsFor(format: ModelFile['format']): TargetInfo[] {
  return TARGETS.filter((t) => t.from.includes(format));
}

/** Where the output goes by default: next to the source (model.int4.onnx, model-Q4_K_M.gguf). */
/** `label` names a GGUF file instead of the preset (a mixed plan: `mixed-5.00bpw`). */
export function defaultOutputPath(source: string, target: ConvertTarget, o: { bits?: number; preset?: string; label?: string } = {}): string {
  if (target === 'gguf' && isHfCheckpoint(source)) {
    // A checkpoint's GGUF goes into its folder, named after it: llama-3-8b/llama-3-8b-Q4_K_M.gguf.
    const dir = fs.statSync(source).isDirectory() ? source : path.dirname(source);
    return path.join(dir, `${path.basename(path.resolve(dir))}-${o.label ?? (o.preset ?? 'Q4_K_M').toUpperCase()}.gguf`);
  }
  const dir = path.dirname(source);
  const base = path.basename(source).replace(/\.(onnx|gguf)$/i, '');
  switch (target) {
    case 'onnx-int4': return path.join(dir, `${base}.int${o.bits ?? 4}.onnx`);
    case 'onnx-qdq': return path.join(dir, `${base}.qdq${o.bits === 4 ? '-int4' : ''}.onnx`);
    case 'onnx-dynamic': return path.join(dir, `${base}.dynamic.onnx`);
    case 'gguf': return path.join(dir, `${base.replace(/-(F16|F32|BF16)$/i, '')}-${o.label ?? (o.preset ?? 'Q4_K_M').toUpperCase()}.gguf`);
    case 'safetensors-gptq':
    case 'safetensors-compressed': {
      // A checkpoint folder beside the source folder (the folder of a given .safetensors file).
      const folder = fs.existsSync(source) && fs.statSync(source).isDirectory() ? source : dir;
      return `${folder.replace(/[\\/]+$/, '')}-${target === 'safetensors-gptq' ? `GPTQ-${o.bits ?? 4}bit` : `W${o.bits ?? 4}A16`}`;
    }
  }
}

/** The ONNX converter's settings a request passes through unchanged (documented on ConvertOnnxOptions). */
const ONNX_SETTINGS = ['bits', 'blockSize', 'symmetric', 'accuracyLevel', 'algo', 'actOrder', 'activationCalibrator'] as const;

export interface ConvertRequest extends Pick<ConvertOnnxOptions, (typeof ONNX_SETTINGS)[number]> {
  source: string;
  output: string;
  target: ConvertTarget;
  overwrite?: boolean;
  /** Model inputs for GPTQ/AWQ calibration and for the output comparison. */
  calibration?: Feeds[];
  /** Tensors or nodes whose name matches are left as they are. */
  exclude?: string;
  /** safetensors targets with algo gptq: each Linear's input activations (.npz named after the modules, or a folder of .npy). */
  activations?: string;
  /** gguf: the llama.cpp preset (Q4_K_M, ...). */
  preset?: string;
  tensorTypes?: string[];
  imatrix?: string;
  pure?: boolean;
  allowRequantize?: boolean;
  /** A plan file (path) or a plan. */
  plan?: string | Plan;
  /** Run the knapsack over the weight-space sensitivity for this budget and convert with its plan. */
  budget?: Budget;
  /** Where the budget's plan is written (default: OUTPUT.plan.json). */
  planOut?: string;
  /** Skip running the models (ONNX Runtime / llama.cpp); the read-back check always runs. */
  skipRuntime?: boolean;
  pool?: WorkerPool;
}

export interface ConvertProgress {
  phase: 'plan' | 'calibrate' | 'quantize' | 'write' | 'verify';
  done: number;
  total: number;
  tensor?: string;
}

export interface TensorReport {
  name: string;
  choice: string;
  bytesBefore: number;
  bytesAfter: number;
  /** Weight-space error of what was written against the source weight (computed from the written codes). */
  predicted: { sqnrDb: number; relError: number };
}

export interface ConvertReport {
  schema: typeof QUANTIZE_SCHEMA;
  source: string;
  output: string;
  files: string[];
  target: ConvertTarget;
  settings: Record<string, unknown>;
  plan?: {
    file?: string; tensors: number; predicted?: Plan['predicted']; uniform?: BudgetPlanResult['uniform'];
    /** gguf budgets: per chosen tensor, the weight-space error its type gave on sampled rows of the real weights. */
    estimates?: GgufTensorEstimate[];
  };
  tensors: TensorReport[];
  kept: { name: string; reason: string }[];
  totals: { tensorsQuantized: number; tensorsKept: number; bytesBefore: number; bytesAfter: number; fileBytesBefore: number; fileBytesAfter: number };
  verification: {
    /** Every quantized tensor read back from the written file decodes to the predicted values. */
    readBack: { checked: number; mismatched: string[] };
    /** Measured on a runtime: what ran, on what data, and the output error; absent when skipped (with the reason). */
    runtime?: {
      runtime: 'onnxruntime-node' | 'llama.cpp';
      data: 'calibration' | 'synthetic';
      inputs: string[];
      outputs: { name: string; cosine?: number; sqnrDb?: number; maxAbs?: number; top1Agreement?: number; meanKl?: number }[];
    };
    runtimeSkipped?: string;
  };
  /** onnx-qdq with calibration data: activations given static uint8 QuantizeLinear/DequantizeLinear pairs, ranges measured on that data. */
  activations?: ConvertOnnxResult['activations'];
  seconds: { total: number; convert: number; verify: number };
}

function sameFile(a: string, b: string): boolean {
  const ra = fs.realpathSync(a);
  try { return fs.realpathSync(b) === ra; } catch { return path.resolve(b) === ra; }
}

function fileSize(p: string): number {
  try { return fs.statSync(p).size; } catch { return 0; }
}

/** The weights a target converts, as the converter will see them (the wizard plans over the same list). */
export function candidates(model: ModelFile, target: ConvertTarget): TensorInfo[] {
  const ops = target === 'onnx-qdq' ? new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm']) : new Set(['MatMul', 'Gemm']);
  return model.tensors.filter((t) => isAnalysable(t) && t.shape.length >= 2 && t.layer.consumers.some((c) => ops.has(c.opType)));
}

/**
 * Calibration inputs through the one data layer (src/runtime/calibData.ts):
 * .npy, .npz, .json, .txt (byte windows for byte-level models) or a folder.
 * The CLI's --calib and the wizard's Data step both read through it.
 */
export function loadCalibration(source: string, calib: string, samples: number, data: Pick<CalibOptions, 'image' | 'tokenizer'> = {}): Feeds[] {
  const model = openModel(source);
  try {
    const set = modelCalib(model, calib, { samples, ...data });
    // Each sample is one feed: GPTQ/AWQ accumulate over them, verification runs the first few.
    return feedsOfSamples(set.samples);
  } finally {
    model.close();
  }
}

function writePlanFile(file: string, plan: Plan, overwrite: boolean): void {
  writeFileAtomicSync(file, JSON.stringify(plan, null, 2) + '\n', { overwrite });
}

async function resolvePlan(req: ConvertRequest, model: ModelFile, signal?: AbortSignal, onProgress?: (p: ConvertProgress) => void): Promise<{ plan?: Plan; file?: string; uniform?: BudgetPlanResult['uniform']; estimates?: GgufTensorEstimate[] }> {
  if (req.plan && req.budget) throw new ConvertInputError('give a plan or a budget, not both');
  const names = new Set(model.tensors.map((t) => t.name));
  if (typeof req.plan === 'string') {
    let raw: unknown;
    try {
      raw = JSON.parse(fs.readFileSync(req.plan, 'utf8'));
    } catch (e) {
      throw new ConvertInputError(`${req.plan}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const plan = parsePlan(raw, req.plan, names);
    if (plan.target !== req.target) throw new ConvertInputError(`${req.plan}: the plan is for ${plan.target}, not ${req.target}`);
    return { plan, file: req.plan };
  }
  if (req.plan) return { plan: parsePlan(req.plan, '(plan)', names) };
  if (!req.budget) return {};
  if (req.target === 'gguf') return resolveGgufBudget(req, model.path, false, { signal, onProgress });
  if (configsFor(req.target).length === 0) throw new ConvertInputError(`a size budget needs per-tensor choices; ${req.target} has none (use the default settings)`);
  if (!req.pool) throw new ConvertInputError('a size budget needs a worker pool to measure the weights');
  const todo = candidates(model, req.target);
  const want = new Set(todo.map((t) => t.name));
  const ids = configsFor(req.target).map((c) => c.id);
  let done = 0;
  const sens = await analyseSensitivity(model, {
    pool: req.pool, signal, options: { configs: ids }, filter: (t) => want.has(t.name),
    onTensor: () => onProgress?.({ phase: 'plan', done: ++done, total: todo.length }),
  });
  if (sens.failed.length) throw new Error(`${model.path}: could not measure ${sens.failed[0].name}: ${sens.failed[0].error}`);
  const byName = new Map(model.tensors.map((t) => [t.name, t]));
  let r: BudgetPlanResult;
  try {
    r = budgetPlan(req.target, sens.tensors.map((s) => {
      const t = byName.get(s.name)!;
      return { name: s.name, bytes: t.byteLength, sens: s.sensitivity, bytesOf: (id: string) => targetBytes(req.target, id, t.shape, t.layer.outputChannelAxis, t.dtype) };
    }), req.budget, path.basename(model.path));
  } catch (e) {
    throw new ConvertInputError(`${model.path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  const file = req.planOut ?? `${req.output}.plan.json`;
  writePlanFile(file, r.plan, !!req.overwrite);
  return { plan: r.plan, file, uniform: r.uniform };
}

/** The ONNX converter's per-tensor choices from a plan. */
function onnxPlan(plan: Plan, model: ModelFile, target: ConvertTarget): Map<string, TensorChoice | 'skip'> {
  const out = new Map<string, TensorChoice | 'skip'>();
  for (const t of model.tensors) {
    const c = planChoice(plan, t.name);
    if (c === undefined) continue;
    if (c === 'keep') out.set(t.name, 'skip');
    else if (target === 'onnx-int4') out.set(t.name, nbitsChoice(c));
    else if (target === 'onnx-qdq') out.set(t.name, { bits: 8 });
  }
  return out;
}

export async function convert(req: ConvertRequest, run: { onProgress?: (p: ConvertProgress) => void; signal?: AbortSignal } = {}): Promise<ConvertReport> {
  const t0 = performance.now();
  // Every tensor job listens on the caller's signal.
  if (run.signal) setMaxListeners(0, run.signal);
  const source = path.resolve(req.source);
  const output = path.resolve(req.output);
  if (!fs.existsSync(source)) throw new ConvertInputError(`${source}: no such file`);
  if (sameFile(source, output)) throw new ConvertInputError(`${output}: the output would overwrite the source`);
  if (fs.existsSync(output) && !req.overwrite) throw new ConvertInputError(`${output} exists (pass --overwrite to replace it)`);
  if (!fs.existsSync(path.dirname(output))) throw new ConvertInputError(`${path.dirname(output)}: no such folder`);
  // What a killed run (SIGKILL, power cut) left beside its output: temp files of processes that are gone.
  removeStaleTempFiles(path.dirname(output));
  const info = TARGETS.find((t) => t.id === req.target);
  if (!info) throw new ConvertInputError(`unknown target '${req.target}' (known: ${TARGETS.map((t) => t.id).join(', ')})`);
  if (req.target === 'safetensors-gptq' || req.target === 'safetensors-compressed') return runSafetensors(req, source, output, run, t0);

  if (req.target === 'gguf' && isHfCheckpoint(source)) return runHfGguf(req, source, output, run);
  if (fs.statSync(source).isDirectory()) throw new ConvertInputError(`${source}: a folder converts only as a Hugging Face checkpoint to --target gguf, and ${isHfCheckpoint(source) ? `${req.target} is not gguf` : 'it has no config.json'}`);
  if (req.target === 'gguf' && /\.safetensors(\.index\.json)?$/i.test(source)) throw new ConvertInputError(`${source}: converting safetensors to GGUF needs the Hugging Face checkpoint's config.json beside it`);
  const model = openModel(source);
  let planned: Awaited<ReturnType<typeof resolvePlan>>;
  try {
    if (!info.from.includes(model.format)) throw new ConvertInputError(`${source}: ${req.target} converts ${info.from.join('/')} models, not ${model.format}`);
    planned = await resolvePlan(req, model, run.signal, run.onProgress);
  } catch (e) {
    model.close();
    throw e;
  }
  const fileBytesBefore = model.sizeOnDisk;
  const settings: Record<string, unknown> = {};
  let report: ConvertReport;
  try {
    if (req.target === 'gguf') report = await runGguf(req, source, output, planned.plan, run, settings);
    else report = await runOnnx(req, source, output, model, planned.plan, run, settings);
  } finally {
    model.close();
  }
  report.totals.fileBytesBefore = fileBytesBefore;
  if (planned.plan) report.plan = { file: planned.file, tensors: Object.keys(planned.plan.tensors).length, predicted: planned.plan.predicted, uniform: planned.uniform, ...(planned.estimates ? { estimates: planned.estimates } : {}) };
  report.seconds.total = (performance.now() - t0) / 1000;
  return report;
}

async function runOnnx(req: ConvertRequest, source: string, output: string, model: ModelFile, plan: Plan | undefined, run: { onProgress?: (p: ConvertProgress) => void; signal?: AbortSignal }, settings: Record<string, unknown>): Promise<ConvertReport> {
  const target = req.target as Exclude<ConvertTarget, 'gguf' | SafetensorsTarget>;
  const opts: ConvertOnnxOptions = { target };
  Object.assign(opts, Object.fromEntries(ONNX_SETTINGS.filter((k) => req[k] !== undefined).map((k) => [k, req[k]])));
  if (req.calibration) opts.calibration = req.calibration;
  if (req.exclude) opts.exclude = req.exclude;
  if (plan) opts.plan = onnxPlan(plan, model, target);
  if ((req.algo === 'gptq' || req.algo === 'awq') && !req.calibration?.length) throw new ConvertInputError(`--algo ${req.algo} needs calibration data (--calib)`);
  Object.assign(settings, { bits: opts.bits, blockSize: opts.blockSize, symmetric: opts.symmetric ?? true, algo: opts.algo ?? 'rtn', accuracyLevel: opts.accuracyLevel, exclude: req.exclude, ...(target === 'onnx-qdq' && req.calibration?.length ? { activations: 'static uint8', activationCalibrator: opts.activationCalibrator ?? 'minmax' } : {}) });
  // Written beside the output and renamed once read back; a model with external data is written in place (its data file name is inside it) and removed if the check fails.
  const tmp = tempPathFor(output);
  const big = model.sizeOnDisk > 1.8 * 2 ** 30 || model.files.length > 1;
  const writeTo = big ? output : tmp;
  const tc = performance.now();
  const result = await convertOnnx(source, writeTo, { ...opts, noOverwrite: false }, {
    signal: run.signal,
    onProgress: (p) => run.onProgress?.({ phase: p.phase, done: p.done, total: p.total, tensor: p.tensor }),
  });
  const convertS = (performance.now() - tc) / 1000;
  const files = [writeTo, ...(result.externalData ? [result.externalData] : [])];
  const cleanup = () => { for (const f of files) fs.rmSync(f, { force: true }); };
  let v: VerifyOnnxReport;
  const tv = performance.now();
  try {
    run.onProgress?.({ phase: 'verify', done: 0, total: 1 });
    v = await verifyOnnx({ ...result, output: writeTo }, { feeds: req.calibration?.slice(0, 8), skipRuntime: req.skipRuntime, signal: run.signal });
  } catch (e) {
    cleanup();
    if (run.signal?.aborted) throw new CancelledError('quantize');
    throw new VerificationError(`${output}: ONNX Runtime could not run the written model: ${e instanceof Error ? e.message : String(e)}`);
  }
  const report: ConvertReport = {
    schema: QUANTIZE_SCHEMA, source, output, files: [output, ...(result.externalData ? [result.externalData] : [])], target, settings,
    tensors: result.tensors.map((t) => ({ name: t.name, choice: t.choice, bytesBefore: t.bytesBefore, bytesAfter: t.bytesAfter, predicted: { sqnrDb: t.predicted.sqnrDb, relError: t.predicted.relFrobenius } })),
    kept: result.skipped.map((s) => ({ name: s.name, reason: s.reason })),
    totals: {
      tensorsQuantized: result.totals.tensorsQuantized, tensorsKept: result.totals.tensorsSkipped,
      bytesBefore: result.totals.weightBytesBefore, bytesAfter: result.totals.weightBytesAfter,
      fileBytesBefore: 0, fileBytesAfter: result.totals.fileBytesAfter,
    },
    verification: { readBack: v.weights },
    ...(result.activations ? { activations: result.activations } : {}),
    seconds: { total: 0, convert: convertS, verify: (performance.now() - tv) / 1000 },
  };
  if (v.outputs.length) {
    report.verification.runtime = { runtime: 'onnxruntime-node', data: v.inputs === 'given' ? 'calibration' : 'synthetic', inputs: v.feedsDescription, outputs: v.outputs };
  } else report.verification.runtimeSkipped = req.skipRuntime ? 'skipped on request' : 'no outputs compared';
  if (v.weights.mismatched.length) {
    cleanup();
    throw new VerificationError(`${output}: ${v.weights.mismatched.length} tensor(s) read back differ from the prediction (first: ${v.weights.mismatched[0]}); nothing was kept`, report);
  }
  const bad = v.outputs.find((o) => !Number.isFinite(o.cosine) || !Number.isFinite(o.maxAbs));
  if (bad) {
    cleanup();
    throw new VerificationError(`${output}: output ${bad.name} of the written model is not finite where the original's is; nothing was kept`, report);
  }
  if (!big) {
    try {
      publishFile(tmp, output, !!req.overwrite);
    } catch (e) {
      cleanup();
      throw e instanceof DestinationExistsError ? new ConvertInputError(`${output} appeared while converting; not replaced`) : e;
    }
  }
  report.totals.fileBytesAfter = fileSize(output) + (result.externalData ? fileSize(result.externalData) : 0);
  return report;
}

async function runGguf(req: ConvertRequest, source: string, output: string, plan: Plan | undefined, run: { onProgress?: (p: ConvertProgress) => void; signal?: AbortSignal }, settings: Record<string, unknown>): Promise<ConvertReport> {
  const preset = (req.preset ?? 'Q4_K_M').toUpperCase();
  if (!isGgufPreset(preset)) throw new ConvertInputError(`unknown GGUF type '${req.preset}' (known: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S, Q3_K_M, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K)`);
  const tensorTypes = [...(req.tensorTypes ?? [])];
  if (plan) {
    // A plan's choices come first: llama-quantize's --tensor-type takes the first match.
    // "keep" leaves the tensor in its source type.
    const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    const from = new Map(readGgufHeader(source).rawTensors.map((t) => [t.name, ggmlTypeById(t.type)?.name]));
    for (const [name, choice] of Object.entries(plan.tensors)) tensorTypes.unshift(`^${escape(name)}$=${choice === 'keep' ? from.get(name) : choice}`);
  }
  Object.assign(settings, { preset, tensorTypes, imatrix: req.imatrix, pure: !!req.pure, allowRequantize: !!req.allowRequantize });
  const tc = performance.now();
  let r: ConvertGgufResult;
  try {
    r = await convertGguf(source, output, {
      preset: preset as GgufPreset, tensorTypes, imatrix: req.imatrix, pure: req.pure, allowRequantize: req.allowRequantize,
      overwrite: req.overwrite, verify: true, pool: req.pool,
    }, {
      signal: run.signal,
      onProgress: (p) => run.onProgress?.({ phase: 'quantize', done: p.done, total: p.count, tensor: p.tensor }),
    });
  } catch (e) {
    if (run.signal?.aborted) throw new CancelledError('quantize');
    const msg = e instanceof Error ? e.message : String(e);
    if (/verif|differ|mismatch/i.test(msg)) throw new VerificationError(msg);
    throw e;
  }
  const convertS = (performance.now() - tc) / 1000;
  const report: ConvertReport = {
    schema: QUANTIZE_SCHEMA, source, output, files: [output], target: 'gguf', settings,
    tensors: r.tensors.filter((t) => t.requantized).map((t) => ({
      name: t.name, choice: `${t.from} → ${t.to}${t.importance ? ' (imatrix)' : ''}`, bytesBefore: bytesOf(t.from, t.ne), bytesAfter: t.bytes,
      predicted: { sqnrDb: t.sqnrDb, relError: Math.sqrt(t.relMse) },
    })),
    kept: r.tensors.filter((t) => !t.requantized).map((t) => ({ name: t.name, reason: t.reason })),
    totals: {
      tensorsQuantized: r.totals.requantized, tensorsKept: r.totals.tensors - r.totals.requantized,
      bytesBefore: r.totals.sourceBytes, bytesAfter: r.totals.outputBytes, fileBytesBefore: 0, fileBytesAfter: fileSize(output),
    },
    verification: { readBack: { checked: r.verification?.tensors ?? 0, mismatched: [] } },
    seconds: { total: 0, convert: convertS, verify: r.seconds.verify },
  };
  if (req.skipRuntime) report.verification.runtimeSkipped = 'skipped on request';
  else {
    const tv = performance.now();
    run.onProgress?.({ phase: 'verify', done: 0, total: 1 });
    const measured = await llamaCheck(source, output, run.signal);
    if (typeof measured === 'string') report.verification.runtimeSkipped = measured;
    else report.verification.runtime = measured;
    report.seconds.verify += (performance.now() - tv) / 1000;
  }
  return report;
}

function bytesOf(type: string, ne: number[]): number {
  const n = ne.reduce((a, b) => a * b, 1);
  return type === 'F32' ? 4 * n : type === 'F16' || type === 'BF16' ? 2 * n : n;
}

/** Evaluates source and output in llama.cpp on the same deterministic tokens; a string says why it did not run. */
async function llamaCheck(source: string, output: string, signal?: AbortSignal): Promise<NonNullable<ConvertReport['verification']['runtime']> | string> {
  let ev: typeof import('../runtime/llamacpp/evaluate');
  try {
    ev = require('../runtime/llamacpp/evaluate') as typeof import('../runtime/llamacpp/evaluate');
    require.resolve('node-llama-cpp');
  } catch {
    return 'llama.cpp check skipped: node-llama-cpp is not installed (npm i -D node-llama-cpp@3.21.1 to enable it)';
  }
  const m = openModel(output);
  let nVocab = 0;
  try {
    const toks = m.metadata['tokenizer.ggml.tokens'];
    nVocab = Array.isArray(toks) ? toks.length : 0;
  } finally {
    m.close();
  }
  if (nVocab < 2) return 'llama.cpp check skipped: the model has no tokenizer.ggml.tokens';
  // Deterministic token ids spread over the vocabulary (not text: the tokenizer may be any kind).
  const tokens = Array.from({ length: 64 }, (_, i) => 1 + ((i * 2654435761) % (nVocab - 1)));
  signal?.throwIfAborted();
  try {
    const ref = await ev.llamaEvaluate(source, tokens, { nThreads: 2 });
    signal?.throwIfAborted();
    const got = await ev.llamaEvaluate(output, tokens, { nThreads: 2 });
    return {
      runtime: 'llama.cpp', data: 'synthetic', inputs: [`${tokens.length} token ids spread over the ${nVocab}-entry vocabulary (synthetic)`],
      outputs: [{ name: 'logits', meanKl: ev.meanKlDivergence(ref, got) }],
    };
  } catch (e) {
    if (signal?.aborted) throw new CancelledError('quantize');
    throw new VerificationError(`${output}: llama.cpp could not evaluate the written model: ${e instanceof Error ? e.message : String(e)}`);
  }
}

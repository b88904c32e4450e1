/**
 * ONNX conversion: quantize a model's constant weights and write a file that
 * ONNX Runtime runs.
 *
 * Targets:
 * - onnx-int4: com.microsoft MatMulNBits for MatMul (weight as input B) and
 *   Gemm (transA 0, alpha 1, bias through an Add), laid out as ONNX
 *   Runtime's MatMulNBitsQuantizer writes it (initializers `<W>_Q<bits>`,
 *   `<W>_scales`, `<W>_zero_points`, node `<node>_Q<bits>`, attributes K, N,
 *   bits, block_size, accuracy_level when set). GPTQ act-order without
 *   static groups adds g_idx; AWQ adds a Mul of the activations by 1/s.
 * - onnx-qdq: weight-only QDQ. Each quantized weight becomes an int8 (or
 *   blocked int4) initializer plus scales and zero points, and a
 *   DequantizeLinear node whose output keeps the weight's name, so every
 *   consumer is untouched. Models below opset 13 use com.microsoft
 *   DequantizeLinear (per-axis without bumping the opset, which would change
 *   the meaning of Softmax, Squeeze, ... in the rest of the graph); blocked
 *   int4 needs opset 21 and bumps it only when no op the model uses changed
 *   meaning since its opset.
 * - onnx-dynamic: int8 weights with activations quantized at run time:
 *   DynamicQuantizeLinear → MatMulInteger → Cast → Mul(scale_a·scale_w), the
 *   standard-op form ONNX Runtime's quantize_dynamic writes for MatMul; ONNX
 *   Runtime fuses it into DynamicQuantizeMatMul when it loads the model, and
 *   any other runtime still runs it.
 *
 * Every tensor not quantized keeps its exact bytes and is listed with the
 * reason. A weight shared by several nodes is quantized once.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { decodeToFloat32, f16ToF32, f32ToF16 } from '../formats/dtypes';
import { FormatError } from '../formats/types';
import {
  EditableOnnx, GraphScope, NodeMsg, TensorMsg, AttrMsg, PayloadPlace, openOnnxForEdit, writeOnnx, writeOnnxFilled, newTensor, intAttr, int64ToNumber,
} from '../formats/onnx/writer';
import { packNBits, roundScalesToF16, quantizeForDq, dqCodeBytes, float32Digest, Float32Digest, NBitsTensors, AxisQuantized } from '../quant/onnxLayouts';
import { GraphIndex, Use, WeightRef, freshName, gemmForm, indexGraph } from './onnxGraph';
import { rtnQuantize, GridQuantized } from '../quant/algorithms/intGrid';
import { type RecordedInput, calibratedSkipReason, dequantizedKN, effectiveKN, quantizeCalibrated, transpose, weightNK } from '../quant/algorithms/weightOnly';
import { weightErrorReport } from '../quant/metrics';
import { Feeds, runOnnxInWorker } from '../runtime/ortRun';
import { CalibratorName, HistogramCollector, Range, calibrator } from '../quant/calibrators';
import { rangeTarget } from '../quant/rtn';
import { quantIntZpWasm } from '../kernels/rtnKernels';
import { quantizeNBitsKN } from '../quant/matmulNBitsKN';
import { NBitsKNWasmResult, nbitsKNInput, nbitsKNWasmAvailable, runNbitsKN } from '../kernels/nbitsKnWasm';
import { NbitsPool } from '../jobs/nbitsPool';

export type OnnxTarget = 'onnx-int4' | 'onnx-qdq' | 'onnx-dynamic';
export type OnnxAlgo = 'rtn' | 'gptq' | 'awq';

export interface TensorChoice {
  bits?: 2 | 4 | 8;
  blockSize?: number;
  symmetric?: boolean;
}

export interface ConvertOnnxOptions {
  target: OnnxTarget;
  /** onnx-int4: 4 (default), 8 or 2; onnx-qdq: 8 (default) or 4 (blocked, opset 21). Ignored by onnx-dynamic (int8). */
  bits?: 2 | 4 | 8;
  /** Elements per block along the reduction axis: power of two 16..256 (default 128). */
  blockSize?: number;
  /** Symmetric grid (default) or asymmetric with zero points. */
  symmetric?: boolean;
  /** MatMulNBits accuracy_level (0..4); written only when set and non-zero, as ORT's quantizer does. */
  accuracyLevel?: number;
  algo?: OnnxAlgo;
  /** GPTQ: quantize columns by decreasing activation energy. */
  actOrder?: boolean;
  /** GPTQ act-order: block scales from the original weights in natural order (default true: no g_idx). False writes g_idx. */
  staticGroups?: boolean;
  /** Calibration feeds (model inputs) for GPTQ and AWQ, or a function producing them (called once, only when needed). */
  calibration?: Feeds[] | (() => Feeds[] | Promise<Feeds[]>);
  /** Tensors or nodes whose name matches are left as they are. */
  exclude?: RegExp | string;
  /** Per-tensor choices by weight name; 'skip' leaves the tensor as it is. */
  plan?: Map<string, TensorChoice | 'skip'>;
  externalData?: boolean | 'auto';
  /** Refuse to replace an existing output (default false: replace). */
  noOverwrite?: boolean;
  /** Worker threads for onnx-int4 RTN (default: available cores, at most 4; 1 = quantize on the calling thread). */
  threads?: number;
  /** onnx-qdq with calibration data: the calibrator of the static uint8 activation ranges (default minmax). */
  activationCalibrator?: CalibratorName;
}

/** One activation given a static uint8 QuantizeLinear/DequantizeLinear pair (onnx-qdq with calibration data). */
export interface ActivationQdq { name: string; lo: number; hi: number; scale: number; zeroPoint: number }

export interface ConvertProgress {
  phase: 'plan' | 'calibrate' | 'quantize' | 'write';
  done: number;
  total: number;
  tensor?: string;
}
export interface ConvertRun {
  onProgress?: (p: ConvertProgress) => void;
  signal?: AbortSignal;
}

export interface QuantizedTensorReport {
  name: string;
  graph: string;
  nodes: string[];
  /** e.g. "MatMulNBits int4 sym block 128 (gptq)", "DequantizeLinear int8 per-channel axis 0". */
  choice: string;
  bytesBefore: number;
  bytesAfter: number;
  /** Weight-space error of the quantized weight against the original. */
  predicted: { relFrobenius: number; sqnrDb: number; maxAbs: number };
  /** Where verification finds the stored form, and the fingerprint of the float32 values it must decode to. */
  stored: StoredLayout;
}

export type StoredLayout =
  | { kind: 'nbits'; graph: string; B: string; scales: string; zeroPoints?: string; gIdx?: string; K: number; N: number; bits: number; blockSize: number; digest: string }
  | { kind: 'dq'; graph: string; codes: string; scales: string; zeroPoints: string; axis: number; blockSize: number; digest: string };

export interface SkippedTensor {
  name: string;
  graph: string;
  nodes: string[];
  reason: string;
}

export interface ConvertOnnxResult {
  source: string;
  output: string;
  externalData?: string;
  target: OnnxTarget;
  tensors: QuantizedTensorReport[];
  skipped: SkippedTensor[];
  totals: { tensorsQuantized: number; tensorsSkipped: number; weightBytesBefore: number; weightBytesAfter: number; fileBytesBefore: number; fileBytesAfter: number };
  timings: { planMs: number; calibrateMs: number; quantizeMs: number; writeMs: number; totalMs: number };
  /** Opset changes and other edits outside the weights. */
  notes: string[];
  /** onnx-qdq with calibration data: the activations quantized statically, with the calibrator and the tensors left float (and why). */
  activations?: { calibrator: CalibratorName; samples: number; tensors: ActivationQdq[]; skipped: { name: string; reason: string }[] };
}

const MS = 'com.microsoft';
const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, FLOAT16: 10, UINT4: 21, INT4: 22 } as const;
/** Ops whose meaning changed at these opsets: bumping a model across one of them would change the graph. */
const CHANGED_AT: [number, string[]][] = [
  [11, ['Clip', 'Pad', 'Resize', 'Upsample', 'Gather', 'Concat', 'Flatten', 'ArgMax', 'ArgMin', 'TopK', 'Slice', 'Scan', 'Loop', 'If', 'Split', 'Squeeze', 'Unsqueeze', 'Softmax', 'LogSoftmax', 'Hardmax', 'ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare']],
  [13, ['Softmax', 'LogSoftmax', 'Hardmax', 'Squeeze', 'Unsqueeze', 'Split', 'ReduceSum']],
  [18, ['ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd', 'ReduceL1', 'ReduceL2', 'ReduceLogSum', 'ReduceLogSumExp', 'ReduceSumSquare']],
];

function u8(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * A weight's values as float32, whatever its storage (raw, external or typed
 * fields). float32 payloads are read into `scratch` and viewed in place (the
 * result is valid until the next call with the same scratch).
 */
export function weightFloat32(ed: EditableOnnx, w: WeightRef, scratch?: { buf: Uint8Array }): Float32Array {
  const numel = w.dims.reduce((a, b) => a * b, 1);
  const len = ed.payloadLength(w.tensor);
  if (len !== undefined && scratch && w.dtype === 'f32') {
    if (scratch.buf.byteLength < len) scratch.buf = new Uint8Array(len);
    const raw = ed.readPayloadInto(w.tensor, scratch.buf)!;
    if (raw.byteOffset % 4 === 0 && raw.byteLength === numel * 4) return new Float32Array(raw.buffer, raw.byteOffset, numel);
  }
  const out = new Float32Array(numel);
  const raw = ed.readPayload(w.tensor);
  if (raw) {
    decodeToFloat32(w.dtype!, raw, numel, out);
    return out;
  }
  const t = w.tensor as TensorMsg & { float_data?: number[]; int32_data?: number[]; double_data?: number[] };
  if (w.dtype === 'f32' && t.float_data?.length === numel) return Float32Array.from(t.float_data);
  if (w.dtype === 'f16' && t.int32_data?.length === numel) return Float32Array.from(t.int32_data, (h) => f16ToF32(h));
  throw new FormatError(ed.file, `tensor ${w.name}`, `has no data this converter can read (${w.dtype})`);
}

interface Job {
  w: WeightRef;
  uses: Use[];
  choice: Required<TensorChoice>;
  /** int4/dynamic: weight is stored [N, K] already (Gemm transB=1). */
  transposed: boolean;
  K: number;
  N: number;
  /** qdq: per-channel axis (or -1) and blocked axis. */
  axis: number;
  blockAxis: number;
}

function checkBlockSize(bs: number): void {
  if (!(Number.isInteger(bs) && bs >= 16 && bs <= 256 && (bs & (bs - 1)) === 0)) throw new RangeError(`block size must be a power of two in 16..256, got ${bs}`);
}

/**
 * Convert `srcPath` to `outPath`. The output is written to a temp file in
 * the destination folder, fsynced and renamed; a cancel (signal) or error
 * leaves no file behind. The source is never modified.
 */
export async function convertOnnx(srcPath: string, outPath: string, options: ConvertOnnxOptions, run: ConvertRun = {}): Promise<ConvertOnnxResult> {
  const t0 = performance.now();
  const src = path.resolve(srcPath);
  const out = path.resolve(outPath);
  if (src === out) throw new FormatError(out, 'output', 'is the source model; choose another output path');
  if (options.noOverwrite && fs.existsSync(out)) throw new FormatError(out, 'output', 'exists (overwrite not allowed)');
  const target = options.target;
  if (!['onnx-int4', 'onnx-qdq', 'onnx-dynamic'].includes(target)) throw new RangeError(`unknown ONNX target ${target}`);
  const algo = options.algo ?? 'rtn';
  if (algo !== 'rtn' && target !== 'onnx-int4') throw new RangeError(`--algo ${algo} is for onnx-int4 (MatMulNBits); ${target} uses round-to-nearest`);
  if (algo !== 'rtn' && !options.calibration) throw new RangeError(`--algo ${algo} needs calibration data`);
  const defaults: Required<TensorChoice> = {
    bits: options.bits ?? (target === 'onnx-int4' ? 4 : 8),
    blockSize: options.blockSize ?? 128,
    symmetric: options.symmetric ?? true,
  };
  if (target === 'onnx-dynamic') defaults.bits = 8;
  if (target === 'onnx-qdq' && defaults.bits !== 8 && defaults.bits !== 4) throw new RangeError(`onnx-qdq takes bits 8 or 4, got ${defaults.bits}`);
  if (![2, 4, 8].includes(defaults.bits)) throw new RangeError(`bits must be 2, 4 or 8, got ${defaults.bits}`);
  checkBlockSize(defaults.blockSize);
  const exclude = options.exclude === undefined ? undefined : typeof options.exclude === 'string' ? new RegExp(options.exclude) : options.exclude;
  const signal = run.signal;
  const progress = run.onProgress ?? (() => undefined);

  // ---- plan
  const ed = openOnnxForEdit(src);
  const ix = indexGraph(ed);
  const jobs: Job[] = [];
  const skipped: SkippedTensor[] = [];
  const notes: string[] = [];
  for (const w of ix.weights) {
    const uses = ix.uses.get(w.key) ?? [];
    const nodes = uses.map((u) => u.node.name || u.node.op_type || '?');
    const skip = (reason: string) => skipped.push({ name: w.name, graph: w.scope.path, nodes, reason });
    const planned = options.plan?.get(w.name);
    if (planned === 'skip') { skip('plan: skip'); continue; }
    if (exclude && (exclude.test(w.name) || nodes.some((n) => exclude.test(n)))) { skip(`excluded (${exclude})`); continue; }
    const choice = { ...defaults, ...(planned ?? {}) };
    if (choice.blockSize !== defaults.blockSize) checkBlockSize(choice.blockSize);
    const decision = decide(target, w, uses, choice, ix);
    if (typeof decision === 'string') { skip(decision); continue; }
    jobs.push({ ...decision, w, uses, choice });
  }
  const planMs = performance.now() - t0;

  // opset / domain bookkeeping
  if (target === 'onnx-qdq' && options.calibration && jobs.length && ix.opset < 13) {
    // Static activations: ONNX Runtime's QDQ fusions add per-axis DequantizeLinear (opset 13) for biases; below 13 the model would not load.
    const used = new Set<string>();
    for (const sc of ed.graphs()) for (const n of sc.graph.node ?? []) if (!n.domain || n.domain === 'ai.onnx') used.add(n.op_type ?? '');
    const changed = [...new Set(CHANGED_AT.filter(([v]) => v > ix.opset && v <= 13).flatMap(([, ops]) => ops).filter((o) => used.has(o)))];
    if (ix.opset < 10 || changed.length) {
      throw new FormatError(src, 'opset', `static activation quantization needs opset 13 (ONNX Runtime's QDQ fusions add opset-13 nodes); this model is opset ${ix.opset}${changed.length ? ` and uses ${changed.join(', ')}, whose meaning changed since` : ''}, so the opset cannot be raised safely. Without --calib, onnx-qdq writes weight-only QDQ`);
    }
    setOpset(ed, 13);
    notes.push(`default-domain opset raised from ${ix.opset} to 13 for static activation QDQ (no op used by the model changed meaning in between)`);
    ix.opset = 13;
  }
  if (jobs.length && (target === 'onnx-int4' || (target === 'onnx-qdq' && ix.opset < 13 && jobs.some((j) => j.choice.bits === 8)))) ensureDomain(ed, MS, 1);
  if (target === 'onnx-qdq' && jobs.some((j) => j.choice.bits === 4) && ix.opset < 21) {
    const used = new Set<string>();
    for (const s of ed.graphs()) for (const n of s.graph.node ?? []) if (!n.domain || n.domain === 'ai.onnx') used.add(n.op_type ?? '');
    const changed = CHANGED_AT.filter(([v]) => v > ix.opset).flatMap(([, ops]) => ops).filter((o) => used.has(o));
    if (ix.opset < 11 || changed.length) {
      throw new FormatError(src, 'opset', `blocked int4 DequantizeLinear needs opset 21; this model is opset ${ix.opset} and uses ${[...new Set(changed)].join(', ') || 'ops'} whose meaning changed since, so the opset cannot be raised safely (use bits 8)`);
    }
    setOpset(ed, 21);
    notes.push(`default-domain opset raised from ${ix.opset} to 21 for blocked DequantizeLinear (no op used by the model changed meaning in between)`);
  }
  if (target === 'onnx-dynamic' && jobs.length && ix.opset < 11) {
    throw new FormatError(src, 'opset', `DynamicQuantizeLinear needs opset 11; this model is opset ${ix.opset}`);
  }

  // ---- calibration (GPTQ / AWQ): activations entering each quantized MatMul/Gemm of the main graph
  const tc = performance.now();
  let activations = new Map<string, { x: Float32Array; tokens: number }>();
  if (algo !== 'rtn' && jobs.length) {
    const c = options.calibration!;
    const feeds = typeof c === 'function' ? await c() : c;
    if (!feeds.length) throw new RangeError(`--algo ${algo} needs calibration data (no feeds given)`);
    progress({ phase: 'calibrate', done: 0, total: feeds.length });
    activations = await collectActivations(src, jobs, feeds, signal);
  }
  // onnx-qdq + calibration data: static activation ranges, measured on the original model before any edit.
  let actPlan: { names: string[]; ranges: Map<string, Range>; skipped: { name: string; reason: string }[]; samples: number } | undefined;
  if (target === 'onnx-qdq' && options.calibration && jobs.length) {
    const c = options.calibration;
    const feeds = typeof c === 'function' ? await c() : c;
    if (feeds.length) {
      const names = activationInputsOutputs(ed, jobs);
      progress({ phase: 'calibrate', done: 0, total: feeds.length });
      const r = await measureActivationRanges(src, names, feeds, options.activationCalibrator ?? 'minmax', signal, (d) => progress({ phase: 'calibrate', done: d, total: feeds.length }));
      actPlan = { names, ...r, samples: feeds.length };
    }
  }
  const calibrateMs = performance.now() - tc;

  // ---- quantize and edit
  const tq = performance.now();
  const reports: QuantizedTensorReport[] = [];
  const removable = new Set<WeightRef>();
  const scratch = { buf: new Uint8Array(0) };
  // onnx-int4 RTN of float32 MatMul weights on disk: the graph is edited first with the packed tensors'
  // sizes only; then pool workers read, quantize and write them straight into the output while this
  // thread writes the rest of the file (the quantize phase of these tensors is inside the write phase).
  const deferred = new Map<Job, { report: QuantizedTensorReport; tensors: DeferredNBits }>();
  const fast = target === 'onnx-int4' && algo === 'rtn' ? new Set(jobs.filter((j) => nbitsFastPath(ed, j))) : new Set<Job>();
  const threads = options.threads ?? Math.min(4, os.availableParallelism?.() ?? os.cpus().length);
  const useWorkers = fast.size >= 2 && threads > 1;
  {
    for (let i = 0; i < jobs.length; i++) {
      signal?.throwIfAborted();
      const job = jobs[i];
      progress({ phase: 'quantize', done: i, total: jobs.length, tensor: job.w.name });
      let wf: Float32Array | undefined;
      const weight = () => (wf ??= weightFloat32(ed, job.w, scratch));
      const bytesBefore = ed.payloadLength(job.w.tensor) ?? weight().length * 4;
      let report: QuantizedTensorReport;
      if (useWorkers && fast.has(job)) {
        const tensors: DeferredNBits = { K: job.K, N: job.N, nBlocks: Math.ceil(job.K / job.choice.blockSize) };
        report = emitNBits(ed, ix, job, tensors, false, undefined, 'rtn', { relFrobenius: NaN, sqnrDb: NaN, maxAbs: NaN }, '', options);
        deferred.set(job, { report, tensors });
      } else if (target === 'onnx-int4') report = applyNBits(ed, ix, job, weight, algo, options, activations.get(job.w.key));
      else if (target === 'onnx-qdq') report = applyQdq(ed, ix, job, weight());
      else report = applyDynamic(ed, ix, job, weight());
      report.bytesBefore = bytesBefore;
      reports.push(report);
      removable.add(job.w);
      // Let a cancel from the event loop (a UI button) get through between tensors.
      if (!deferred.has(job)) await new Promise((r) => setImmediate(r));
    }
  }
  const activationsDone = actPlan ? insertActivationQdq(ed, ix, actPlan.names, actPlan.ranges) : undefined;
  // Drop originals nothing reads any more.
  const remaining = indexGraph(ed);
  for (const w of removable) {
    if ((remaining.uses.get(w.key) ?? []).length || remaining.outputRefs.has(w.key)) continue;
    const g = w.scope.graph;
    if (w.constNode) g.node = (g.node ?? []).filter((n) => n !== w.constNode);
    else {
      g.initializer = (g.initializer ?? []).filter((t) => t !== w.tensor);
      g.input = (g.input ?? []).filter((v) => v.name !== w.name);
    }
  }
  const quantizeMs = performance.now() - tq;

  // ---- write
  const tw = performance.now();
  progress({ phase: 'write', done: 0, total: 1 });
  const writeOpts = {
    externalData: options.externalData ?? 'auto', signal,
    onProgress: (d: number, t: number) => progress({ phase: 'write', done: d, total: t }),
  };
  const written = deferred.size
    ? await writeOnnxFilled(ed, out, writeOpts, (places) => fillNBits(ed, deferred, places, threads, signal, (d) => progress({ phase: 'quantize', done: d, total: deferred.size })))
    : writeOnnx(ed, out, writeOpts);
  const writeMs = performance.now() - tw;

  const srcBytes = fs.statSync(src).size;
  const weightBytesBefore = reports.reduce((s, r) => s + r.bytesBefore, 0);
  const weightBytesAfter = reports.reduce((s, r) => s + r.bytesAfter, 0);
  return {
    source: src, output: out, externalData: written.externalDataPath, target, tensors: reports, skipped,
    totals: {
      tensorsQuantized: reports.length, tensorsSkipped: skipped.length, weightBytesBefore, weightBytesAfter,
      fileBytesBefore: srcBytes, fileBytesAfter: written.bytes + (written.externalBytes ?? 0),
    },
    timings: { planMs, calibrateMs, quantizeMs, writeMs, totalMs: performance.now() - t0 },
    notes,
    ...(actPlan && activationsDone ? { activations: { calibrator: options.activationCalibrator ?? 'minmax', samples: actPlan.samples, tensors: activationsDone, skipped: actPlan.skipped } } : {}),
  };
}

// ---------------------------------------------------------------- decisions

type Decision = Omit<Job, 'w' | 'uses' | 'choice'> | string;

const QDQ_OPS = new Set(['Conv', 'ConvTranspose', 'MatMul', 'Gemm']);

function decide(target: OnnxTarget, w: WeightRef, uses: Use[], choice: Required<TensorChoice>, ix: GraphIndex): Decision {
  if (w.dtype !== 'f32' && w.dtype !== 'f16') return `${w.dtype ?? 'unknown'} tensor (only float32 and float16 weights are quantized)`;
  if (!uses.length) return 'not consumed by any node';
  if (ix.outputRefs.has(w.key)) return 'is a graph output';
  const ops = [...new Set(uses.map((u) => `${u.node.op_type}${u.node.domain ? `(${u.node.domain})` : ''} input ${u.inputIndex}`))].join(', ');
  if (target === 'onnx-qdq') {
    for (const u of uses) {
      const op = u.node.op_type ?? '';
      if (u.node.domain || !QDQ_OPS.has(op)) return `consumed by ${ops} (onnx-qdq quantizes weights of Conv, ConvTranspose, MatMul and Gemm)`;
      if ((op === 'Conv' || op === 'ConvTranspose') && u.inputIndex !== 1) return `consumed by ${ops} (a bias stays float)`;
      if (op === 'Gemm' && u.inputIndex === 2) return 'Gemm bias (stays float)';
    }
    if (w.dims.length < 2) return `${w.dims.length}-D tensor (biases and scalars stay float)`;
    // Per-channel axis: where the consumers' output channels are; blocks run along their reduction axis.
    const axes = uses.map((u) => qdqAxes(u, w.dims.length));
    const same = axes.every((a) => a.axis === axes[0].axis && a.blockAxis === axes[0].blockAxis);
    const { axis, blockAxis } = same ? axes[0] : { axis: -1, blockAxis: -1 };
    if (choice.bits === 4 && blockAxis < 0) return `consumers ${ops} disagree on the weight's reduction axis (no single block layout)`;
    return { transposed: false, K: 0, N: 0, axis, blockAxis };
  }
  // onnx-int4 and onnx-dynamic: MatMul input B or Gemm B.
  let transposed: boolean | undefined;
  for (const u of uses) {
    const op = u.node.op_type ?? '';
    if (u.node.domain || (op !== 'MatMul' && op !== 'Gemm')) return `consumed by ${ops} (${target} quantizes MatMul/Gemm weights)`;
    if (u.inputIndex === 0) return `weight is ${op} input A: ${target === 'onnx-int4' ? 'MatMulNBits' : 'MatMulInteger with a per-column weight scale'} takes the weight only as input B (onnx-qdq quantizes either input)`;
    if (op === 'Gemm') {
      if (u.inputIndex !== 1) return 'Gemm bias (stays float)';
      const g = gemmForm(u.node);
      if (g.transA) return 'Gemm with transA=1 (no MatMul form without a Transpose)';
      if (g.alpha !== 1) return `Gemm with alpha=${g.alpha}`;
      if (g.beta !== 1 && (u.node.input ?? [])[2]) return `Gemm with beta=${g.beta}`;
      const t = g.transB === 1;
      if (transposed !== undefined && transposed !== t) return 'shared by Gemm nodes with different transB';
      transposed = t;
    } else {
      if (transposed === true) return 'shared by MatMul and a transB=1 Gemm';
      transposed = false;
    }
  }
  if (w.dims.length !== 2) return `${w.dims.length}-D weight (MatMulNBits/MatMulInteger take a 2-D B)`;
  if (target === 'onnx-dynamic' && w.dtype !== 'f32') return 'float16 weight (DynamicQuantizeLinear takes float32 activations only)';
  const [r, c] = w.dims;
  return { transposed: !!transposed, K: transposed ? c : r, N: transposed ? r : c, axis: -1, blockAxis: -1 };
}

function qdqAxes(u: Use, rank: number): { axis: number; blockAxis: number } {
  const op = u.node.op_type;
  if (op === 'Conv') return { axis: 0, blockAxis: 1 };
  if (op === 'ConvTranspose') return { axis: 1, blockAxis: 0 };
  if (op === 'Gemm') {
    const { transA, transB } = gemmForm(u.node);
    if (u.inputIndex === 1) return transB ? { axis: 0, blockAxis: 1 } : { axis: 1, blockAxis: 0 };
    return transA ? { axis: -1, blockAxis: 0 } : { axis: -1, blockAxis: 1 };
  }
  // MatMul: B [.., K, N] has output channels on the last axis, blocks along K; A [.., M, K] is blocked along its last axis.
  if (u.inputIndex === 1) return rank === 2 ? { axis: 1, blockAxis: 0 } : { axis: -1, blockAxis: rank - 2 };
  return { axis: -1, blockAxis: rank - 1 };
}

// ---------------------------------------------------------------- onnx-int4

/** Round-to-nearest on the grid, through the WebAssembly kernel when it has one for the scheme. */
function gridRtn(wt: Float32Array, rows: number, cols: number, bits: number, bs: number, symmetric: boolean): GridQuantized {
  if (bits === 8 || bits === 4) {
    const nGroups = cols / bs;
    const codes = new Uint8Array(rows * cols);
    const scales = new Float32Array(rows * nGroups);
    const zps = new Int32Array(rows * nGroups);
    const qmax = (1 << bits) - 1;
    const mid = 1 << (bits - 1);
    const r = quantIntZpWasm(wt, bs, 1, symmetric ? mid - 1 : qmax, 0, qmax, !symmetric, mid, codes, null, scales, zps, null, true);
    if (r === -1) {
      // Dequantized values come from the codes, as the op computes them.
      const dq = new Float32Array(rows * cols);
      const zeroPoints = Uint8Array.from(zps);
      for (let i = 0; i < rows * cols; i++) {
        const g = Math.floor(i / bs);
        dq[i] = Math.fround(scales[g] * (codes[i] - zeroPoints[g]));
      }
      const groupIndex = Int32Array.from({ length: cols }, (_, j) => Math.floor(j / bs));
      return { rows, cols, codes, scales, zeroPoints, groupIndex, nGroups, dequantized: dq };
    }
  }
  return rtnQuantize(wt, rows, cols, { bits, symmetric, groupSize: bs });
}

function applyNBits(
  ed: EditableOnnx, ix: GraphIndex, job: Job, weight: () => Float32Array, algo: OnnxAlgo, options: ConvertOnnxOptions,
  act: { x: Float32Array; tokens: number } | undefined,
): QuantizedTensorReport {
  const { K, N } = job;
  const { bits, blockSize: bs, symmetric } = job.choice;
  const payload = ed.payloadLength(job.w.tensor);
  if (algo === 'rtn' && !job.transposed && job.w.dtype === 'f32' && payload === K * N * 4 && nbitsKNWasmAvailable(N)) {
    // The weight is read straight into the kernel's memory: no float copy at all.
    const { view, layout } = nbitsKNInput(K, N, bits, bs);
    const got = ed.readPayloadInto(job.w.tensor, view)!;
    if (got !== view && got.buffer !== view.buffer) view.set(got);
    return emitNBitsFromKernel(ed, ix, job, { r: runNbitsKN(layout, symmetric), nBlocks: layout.nBlocks }, options);
  }
  const wf = weight();
  if (algo === 'rtn' && !job.transposed && job.w.dtype === 'f32') {
    // RTN on a MatMul weight: quantize and pack in its own [K, N] layout (no transpose, no float copies).
    const r = quantizeNBitsKN(wf, K, N, bits, bs, symmetric);
    const packed: NBitsTensors = { K, N, bits, blockSize: bs, nBlocks: r.nBlocks, B: r.B, scales: r.scales, zeroPoints: r.zeroPoints, gIdx: null };
    const err = { relFrobenius: r.sumSq ? Math.sqrt(r.errSq / r.sumSq) : r.errSq ? Infinity : 0, sqnrDb: 10 * Math.log10(r.sumSq / r.errSq), maxAbs: r.maxAbs };
    return emitNBits(ed, ix, job, packed, false, undefined, 'rtn', err, r.digest, options);
  }
  const Kp = Math.ceil(K / bs) * bs;
  const wt = weightNK(wf, K, N, Kp, job.transposed);
  let q: GridQuantized;
  let used: string = algo;
  let inputScale: Float32Array | undefined;
  const cfg = { bits, symmetric, groupSize: bs };
  const skip = algo === 'rtn' ? undefined : calibratedSkipReason(act, K, bs);
  if (algo !== 'rtn' && !skip) {
    const r = quantizeCalibrated(wt, N, K, algo, act!, cfg, { actOrder: options.actOrder, staticGroups: options.staticGroups });
    ({ q, inputScale, used } = r);
  } else {
    if (skip) used = `rtn; ${algo} skipped: ${skip}`;
    q = gridRtn(wt, N, Kp, bits, bs, symmetric);
  }
  const f16 = job.w.dtype === 'f16';
  if (f16) roundScalesToF16(q);
  const packed: NBitsTensors = packNBits(q, K, bits, bs, symmetric);
  // Prediction: the grid's dequantized weight as [K, N] (padding dropped).
  const pred = dequantizedKN(q, K, N, Kp);
  const effective = effectiveKN(pred, N, inputScale);
  const orig = job.transposed ? transpose(wf, N, K) : wf;
  const err = weightErrorReport(orig, effective);
  return emitNBits(ed, ix, job, packed, f16, inputScale, used, err, float32Digest(pred), options);
}

/** Whether the WebAssembly [K, N] kernel takes this job (RTN on a float32 MatMul weight stored in a file). */
function nbitsFastPath(ed: EditableOnnx, j: Job): boolean {
  const p = ed.payloadOf(j.w.tensor);
  return !j.transposed && j.w.dtype === 'f32' && p?.kind === 'file' && p.length === j.K * j.N * 4 && nbitsKNWasmAvailable(j.N);
}

function emitNBitsFromKernel(ed: EditableOnnx, ix: GraphIndex, job: Job, done: { r: NBitsKNWasmResult; nBlocks: number }, options: ConvertOnnxOptions): QuantizedTensorReport {
  const { K, N } = job;
  const { r, nBlocks } = done;
  const packed: NBitsTensors = { K, N, bits: job.choice.bits, blockSize: job.choice.blockSize, nBlocks, B: r.B, scales: r.scales, zeroPoints: r.zeroPoints, gIdx: null };
  const d = new Float32Digest();
  d.setState(r.h, K * N);
  const err = { relFrobenius: r.sumSq ? Math.sqrt(r.errSq / r.sumSq) : r.errSq ? Infinity : 0, sqnrDb: 10 * Math.log10(r.sumSq / r.errSq), maxAbs: r.maxAbs };
  return emitNBits(ed, ix, job, packed, false, undefined, 'rtn', err, d.value(), options);
}

/** A MatMulNBits weight whose packed tensors a pool worker writes into the output (float32 scales, no g_idx). */
interface DeferredNBits { K: number; N: number; nBlocks: number; B?: TensorMsg; scales?: TensorMsg; zeroPoints?: TensorMsg }

/**
 * Quantize every deferred weight in the pool, each worker writing its packed
 * tensors at their places in the output, and complete the reports with the
 * error and fingerprint the kernel measured. Tensors are handed out largest
 * first so both cores stay busy to the end.
 */
async function fillNBits(
  ed: EditableOnnx, deferred: Map<Job, { report: QuantizedTensorReport; tensors: DeferredNBits }>, places: Map<TensorMsg, PayloadPlace>,
  threads: number, signal: AbortSignal | undefined, onDone: (done: number) => void,
): Promise<void> {
  const pool = new NbitsPool(Math.min(threads, deferred.size));
  const stop = () => void pool.close();
  signal?.addEventListener('abort', stop);
  try {
    signal?.throwIfAborted();
    let finished = 0;
    const place = (t: TensorMsg | undefined) => (t ? places.get(t) : undefined);
    const order = [...deferred].sort((a, b) => b[0].K * b[0].N - a[0].K * a[0].N);
    await Promise.all(order.map(async ([j, { report, tensors }]) => {
      const p = ed.payloadOf(j.w.tensor) as { kind: 'file'; file: string; offset: number; length: number };
      const dest = { B: place(tensors.B)!, scales: place(tensors.scales)!, zeroPoints: place(tensors.zeroPoints) };
      if (!dest.B || !dest.scales || (tensors.zeroPoints && !dest.zeroPoints)) throw new Error(`writer placed no bytes for ${j.w.name} (internal error)`);
      const { r } = await pool.run({ file: p.file, offset: p.offset, length: p.length, K: j.K, N: j.N, bits: j.choice.bits, blockSize: j.choice.blockSize, symmetric: j.choice.symmetric, dest });
      const d = new Float32Digest();
      d.setState(r.h, j.K * j.N);
      report.predicted = { relFrobenius: r.sumSq ? Math.sqrt(r.errSq / r.sumSq) : r.errSq ? Infinity : 0, sqnrDb: 10 * Math.log10(r.sumSq / r.errSq), maxAbs: r.maxAbs };
      report.stored = { ...report.stored, digest: d.value() };
      onDone(++finished);
    }));
  } catch (e) {
    signal?.throwIfAborted();
    throw e;
  } finally {
    signal?.removeEventListener('abort', stop);
    await pool.close();
  }
}

/** Add the MatMulNBits initializers beside the weight and replace each consumer (a DeferredNBits gets payloads of its sizes, filled later). */
function emitNBits(
  ed: EditableOnnx, ix: GraphIndex, job: Job, packed: NBitsTensors | DeferredNBits, f16: boolean, inputScale: Float32Array | undefined, used: string,
  err: { relFrobenius: number; sqnrDb: number; maxAbs: number }, digest: string, options: ConvertOnnxOptions,
): QuantizedTensorReport {
  const { K, N } = job;
  const { bits, blockSize: bs, symmetric } = job.choice;
  // Initializers live where the weight is defined, so every consumer (subgraphs included) sees them.
  const g = job.w.scope.graph;
  const base = job.w.name;
  const Bname = freshName(ix, `${base}_Q${bits}`);
  const Sname = freshName(ix, `${base}_scales`);
  let inits: TensorMsg[];
  let Zname: string | undefined;
  let bytesAfter: number;
  if (!('B' in packed) || !(packed.B instanceof Uint8Array)) {
    // Sizes as the kernel writes them: B [N, nBlocks, blob], float32 scales [N·nBlocks], zero points [N·ceil(nBlocks·bits/8)].
    const d = packed as DeferredNBits;
    const later = (name: string, type: number, dims: number[], length: number) => {
      const t: TensorMsg = { name, data_type: type, dims };
      ed.setPayload(t, { kind: 'deferred', length });
      return t;
    };
    const nScales = N * d.nBlocks;
    d.B = later(Bname, DT.UINT8, [N, d.nBlocks, (bs * bits) / 8], (N * d.nBlocks * bs * bits) / 8);
    d.scales = later(Sname, DT.FLOAT, [nScales], nScales * 4);
    inits = [d.B, d.scales];
    if (!symmetric) {
      Zname = freshName(ix, `${base}_zero_points`);
      const nz = N * Math.ceil((d.nBlocks * bits) / 8);
      d.zeroPoints = later(Zname, DT.UINT8, [nz], nz);
      inits.push(d.zeroPoints);
    }
    bytesAfter = inits.reduce((s, t) => s + ed.payloadLength(t)!, 0);
  } else {
    const p = packed as NBitsTensors;
    const scaleBytes = f16 ? u8(Uint16Array.from(p.scales, (s) => f32ToF16(s))) : u8(p.scales);
    inits = [
      newTensor(ed, Bname, DT.UINT8, [N, p.nBlocks, (bs * bits) / 8], p.B),
      newTensor(ed, Sname, f16 ? DT.FLOAT16 : DT.FLOAT, [p.scales.length], scaleBytes),
    ];
    if (p.zeroPoints) {
      Zname = freshName(ix, `${base}_zero_points`);
      inits.push(newTensor(ed, Zname, DT.UINT8, [p.zeroPoints.length], p.zeroPoints));
    }
    bytesAfter = p.B.byteLength + scaleBytes.byteLength + (p.zeroPoints?.byteLength ?? 0) + (p.gIdx ? K * 4 : 0);
  }
  const gIdx = 'gIdx' in packed ? packed.gIdx : null;
  let Gname: string | undefined;
  if (gIdx) {
    Gname = freshName(ix, `${base}_g_idx`);
    inits.push(newTensor(ed, Gname, DT.INT32, [K], u8(gIdx)));
  }
  let Iname: string | undefined;
  if (inputScale) {
    Iname = freshName(ix, `${base}_awq_inv_scale`);
    const bytes = f16 ? u8(Uint16Array.from(inputScale, (s) => f32ToF16(s))) : u8(inputScale);
    inits.push(newTensor(ed, Iname, f16 ? DT.FLOAT16 : DT.FLOAT, [K], bytes));
  }
  g.initializer = [...(g.initializer ?? []), ...inits];
  for (const u of job.uses) {
    const n = u.node;
    const name = n.name ?? '';
    let a = (n.input ?? [])[0];
    const outName = (n.output ?? [])[0];
    const replacement: NodeMsg[] = [];
    if (Iname) {
      const scaled = freshName(ix, `${a}_awq_scaled`);
      replacement.push({ op_type: 'Mul', input: [a, Iname], output: [scaled], name: freshName(ix, `${name || base}_awq_mul`) });
      a = scaled;
    }
    const bias = n.op_type === 'Gemm' ? (n.input ?? [])[2] : undefined;
    const mmOut = bias ? freshName(ix, `${outName}_nobias`) : outName;
    const inputs = [a, Bname, Sname, Zname ?? '', Gname ?? ''];
    while (inputs.length && inputs[inputs.length - 1] === '') inputs.pop();
    const attrs: AttrMsg[] = [intAttr('K', K), intAttr('N', N), intAttr('bits', bits), intAttr('block_size', bs)];
    if (options.accuracyLevel) attrs.push(intAttr('accuracy_level', options.accuracyLevel));
    replacement.push({ op_type: 'MatMulNBits', domain: MS, input: inputs, output: [mmOut], name: name ? freshName(ix, `${name}_Q${bits}`) : '', attribute: attrs });
    if (bias) replacement.push({ op_type: 'Add', input: [mmOut, bias], output: [outName], name: freshName(ix, `${name || base}_bias`) });
    replaceNode(u.scope, n, replacement);
  }
  return {
    name: base, graph: job.w.scope.path, nodes: job.uses.map((u) => u.node.name ?? ''),
    choice: `MatMulNBits int${bits} ${symmetric ? 'sym' : 'asym'} block ${bs} (${used})`,
    bytesBefore: 0, bytesAfter,
    predicted: { relFrobenius: err.relFrobenius, sqnrDb: err.sqnrDb, maxAbs: err.maxAbs },
    stored: { kind: 'nbits', graph: job.w.scope.path, B: Bname, scales: Sname, zeroPoints: Zname, gIdx: Gname, K, N, bits, blockSize: bs, digest },
  };
}

function replaceNode(scope: GraphScope, n: NodeMsg, by: NodeMsg[]): void {
  const list = scope.graph.node ?? [];
  const i = list.indexOf(n);
  if (i < 0) throw new Error(`node ${n.name} not found in graph ${scope.path}`);
  list.splice(i, 1, ...by);
}

// ---------------------------------------------------------------- onnx-qdq

function applyQdq(ed: EditableOnnx, ix: GraphIndex, job: Job, wf: Float32Array): QuantizedTensorReport {
  const { bits, blockSize, symmetric } = job.choice;
  const opset = ix.opset;
  const b = bits === 4 ? 4 : 8;
  // float16 scales (float16 output) need DequantizeLinear-19; earlier ones output float32, cast back to float16.
  const half = job.w.dtype === 'f16';
  const f16 = half && (b === 4 || opset >= 19);
  const castBack = half && !f16;
  const q: AxisQuantized = b === 4
    ? quantizeForDq(wf, job.w.dims, job.blockAxis, blockSize, 4, symmetric, f16)
    : quantizeForDq(wf, job.w.dims, job.axis, 0, 8, symmetric, f16);
  const err = weightErrorReport(wf, q.dequantized);
  const g = job.w.scope.graph;
  const base = job.w.name;
  const codeType = b === 4 ? (q.signed ? DT.INT4 : DT.UINT4) : (q.signed ? DT.INT8 : DT.UINT8);
  const Qname = freshName(ix, `${base}_quantized`);
  const Sname = freshName(ix, `${base}_scale`);
  const Zname = freshName(ix, `${base}_zero_point`);
  const codeBytes = dqCodeBytes(q.codes, b);
  const scaleBytes = f16 ? u8(Uint16Array.from(q.scales, (s) => f32ToF16(s))) : u8(q.scales);
  const zpBytes = dqCodeBytes(q.zeroPoints, b);
  g.initializer = [
    ...(g.initializer ?? []),
    newTensor(ed, Qname, codeType, job.w.dims, codeBytes),
    newTensor(ed, Sname, f16 ? DT.FLOAT16 : DT.FLOAT, q.scaleDims, scaleBytes),
    newTensor(ed, Zname, codeType, q.scaleDims, zpBytes),
  ];
  const contrib = b === 8 && opset < 13 && q.axis >= 0;
  const attrs: AttrMsg[] = [];
  if (b === 4) attrs.push(intAttr('axis', job.blockAxis), intAttr('block_size', blockSize));
  else if (q.axis >= 0) attrs.push(intAttr('axis', q.axis));
  const dqOut = castBack ? freshName(ix, `${base}_float32`) : base;
  const nodes: NodeMsg[] = [{
    op_type: 'DequantizeLinear', input: [Qname, Sname, Zname], output: [dqOut], name: freshName(ix, `${base}_DequantizeLinear`), attribute: attrs,
    ...(contrib ? { domain: MS } : {}),
  }];
  if (castBack) nodes.push({ op_type: 'Cast', input: [dqOut], output: [base], name: freshName(ix, `${base}_to_float16`), attribute: [intAttr('to', DT.FLOAT16)] });
  // The DequantizeLinear (or Cast) output takes the weight's name: consumers are unchanged.
  if (job.w.constNode) replaceNode(job.w.scope, job.w.constNode, nodes);
  else {
    g.initializer = (g.initializer ?? []).filter((t) => t !== job.w.tensor);
    g.input = (g.input ?? []).filter((v) => v.name !== base);
    g.node = [...nodes, ...(g.node ?? [])];
  }
  const layout = b === 4 ? `int4 ${symmetric ? 'sym' : 'asym'} block ${blockSize} axis ${job.blockAxis}` : `int8 ${symmetric ? 'sym' : 'asym'} ${q.axis >= 0 ? `per-channel axis ${q.axis}` : 'per-tensor'}`;
  return {
    name: base, graph: job.w.scope.path, nodes: job.uses.map((u) => u.node.name ?? ''),
    choice: `DequantizeLinear${contrib ? ' (com.microsoft)' : ''} ${layout}`,
    bytesBefore: 0, bytesAfter: codeBytes.byteLength + scaleBytes.byteLength + zpBytes.byteLength,
    predicted: { relFrobenius: err.relFrobenius, sqnrDb: err.sqnrDb, maxAbs: err.maxAbs },
    stored: { kind: 'dq', graph: job.w.scope.path, codes: Qname, scales: Sname, zeroPoints: Zname, axis: b === 4 ? job.blockAxis : q.axis, blockSize: b === 4 ? blockSize : 0, digest: float32Digest(q.dequantized) },
  };
}

// ---------------------------------------------------------------- onnx-dynamic

function applyDynamic(ed: EditableOnnx, ix: GraphIndex, job: Job, wf: Float32Array): QuantizedTensorReport {
  const { K, N } = job;
  const w = job.transposed ? transpose(wf, N, K) : wf; // [K, N]
  const q = quantizeForDq(w, [K, N], 1, 0, 8, true);
  const err = weightErrorReport(w, q.dequantized);
  const g = job.w.scope.graph;
  const base = job.w.name;
  const Qname = freshName(ix, `${base}_quantized`);
  const Sname = freshName(ix, `${base}_scale`);
  const Zname = freshName(ix, `${base}_zero_point`);
  g.initializer = [
    ...(g.initializer ?? []),
    newTensor(ed, Qname, DT.INT8, [K, N], dqCodeBytes(q.codes, 8)),
    newTensor(ed, Sname, DT.FLOAT, [N], u8(q.scales)),
    newTensor(ed, Zname, DT.INT8, [N], dqCodeBytes(q.zeroPoints, 8)),
  ];
  for (const u of job.uses) {
    const n = u.node;
    const name = n.name || base;
    const a = (n.input ?? [])[0];
    const outName = (n.output ?? [])[0];
    const bias = n.op_type === 'Gemm' ? (n.input ?? [])[2] : undefined;
    const aq = freshName(ix, `${a}_quantized`);
    const as = freshName(ix, `${a}_scale`);
    const az = freshName(ix, `${a}_zero_point`);
    const mmi = freshName(ix, `${outName}_MatMulInteger`);
    const cast = freshName(ix, `${outName}_cast`);
    const scale = freshName(ix, `${outName}_scale`);
    const mulOut = bias ? freshName(ix, `${outName}_nobias`) : outName;
    const nodes: NodeMsg[] = [
      { op_type: 'DynamicQuantizeLinear', input: [a], output: [aq, as, az], name: freshName(ix, `${name}_DynamicQuantizeLinear`) },
      { op_type: 'MatMulInteger', input: [aq, Qname, az, Zname], output: [mmi], name: freshName(ix, `${name}_MatMulInteger`) },
      { op_type: 'Cast', input: [mmi], output: [cast], name: freshName(ix, `${name}_cast`), attribute: [intAttr('to', DT.FLOAT)] },
      { op_type: 'Mul', input: [as, Sname], output: [scale], name: freshName(ix, `${name}_scales_mul`) },
      { op_type: 'Mul', input: [cast, scale], output: [mulOut], name: freshName(ix, `${name}_output_scale_mul`) },
    ];
    if (bias) nodes.push({ op_type: 'Add', input: [mulOut, bias], output: [outName], name: freshName(ix, `${name}_bias`) });
    replaceNode(u.scope, n, nodes);
  }
  return {
    name: base, graph: job.w.scope.path, nodes: job.uses.map((u) => u.node.name ?? ''),
    choice: 'MatMulInteger int8 sym per-column weight, dynamic uint8 activations',
    bytesBefore: 0, bytesAfter: K * N + N * 5,
    predicted: { relFrobenius: err.relFrobenius, sqnrDb: err.sqnrDb, maxAbs: err.maxAbs },
    stored: { kind: 'dq', graph: job.w.scope.path, codes: Qname, scales: Sname, zeroPoints: Zname, axis: 1, blockSize: 0, digest: float32Digest(q.dequantized) },
  };
}

// ---------------------------------------------------------------- model-level edits

function ensureDomain(ed: EditableOnnx, domain: string, version: number): void {
  const ops = (ed.model.opset_import ??= []);
  if (!ops.some((o) => o.domain === domain)) ops.push({ domain, version });
}

function setOpset(ed: EditableOnnx, version: number): void {
  const ops = (ed.model.opset_import ??= []);
  const main = ops.find((o) => !o.domain || o.domain === 'ai.onnx');
  if (main) main.version = version;
  else ops.push({ domain: '', version });
  // Opset 21 needs IR version 10.
  if (int64ToNumber(ed.model.ir_version ?? 0) < 10) ed.model.ir_version = 10;
}

// ---------------------------------------------------------------- calibration

/** A weight the onnx-int4 target quantizes (MatMul/Gemm input B), with the inputs its consumers saw on the calibration feeds. */
export interface RecordedWeight {
  name: string;
  /** Graph path ("main" for the top graph). */
  graph: string;
  K: number;
  N: number;
  /** Stored [N, K] (Gemm transB=1) rather than [K, N]. */
  transposed: boolean;
  /** tokens×K; absent when no calibration activations reach its nodes (inside a subgraph). */
  input?: RecordedInput;
}

/**
 * What `--target onnx-int4 --algo gptq|awq` plans and records before it
 * quantizes: the MatMul/Gemm weights it takes (every other tensor, with the
 * reason, in `skipped`), and the inputs each one's consumers saw when the
 * original model ran on `feeds` (one feed per sample, as the conversion gets
 * them). Experiments quantize these weights with the same functions
 * (quant/algorithms/weightOnly.ts) to measure GPTQ and AWQ without writing a file.
 */
export async function recordMatMulInputs(srcPath: string, feeds: Feeds[], signal?: AbortSignal): Promise<{ weights: RecordedWeight[]; skipped: { name: string; graph: string; reason: string }[] }> {
  const src = path.resolve(srcPath);
  if (!feeds.length) throw new RangeError(`${src}: GPTQ and AWQ need calibration data (no feeds given)`);
  const ed = openOnnxForEdit(src);
  const ix = indexGraph(ed);
  const jobs: Job[] = [];
  const skipped: { name: string; graph: string; reason: string }[] = [];
  const choice: Required<TensorChoice> = { bits: 4, blockSize: 128, symmetric: true };
  for (const w of ix.weights) {
    const uses = ix.uses.get(w.key) ?? [];
    const decision = decide('onnx-int4', w, uses, choice, ix);
    if (typeof decision === 'string') skipped.push({ name: w.name, graph: w.scope.path, reason: decision });
    else jobs.push({ ...decision, w, uses, choice });
  }
  const activations = jobs.length ? await collectActivations(src, jobs, feeds, signal) : new Map<string, RecordedInput>();
  return {
    weights: jobs.map((j) => ({ name: j.w.name, graph: j.w.scope.path, K: j.K, N: j.N, transposed: j.transposed, input: activations.get(j.w.key) })),
    skipped,
  };
}

/**
 * Run the original model with the activations entering every quantized
 * MatMul/Gemm of the main graph added as outputs, on the calibration feeds,
 * and return them per weight as tokens×K float32 matrices.
 */
async function collectActivations(src: string, jobs: Job[], feeds: Feeds[], signal?: AbortSignal): Promise<Map<string, { x: Float32Array; tokens: number }>> {
  const ed = openOnnxForEdit(src);
  const want = new Map<string, string[]>(); // weight key -> activation names
  const names = new Set<string>();
  for (const j of jobs) {
    const acts = j.uses.filter((u) => u.scope.path === 'main').map((u) => (u.node.input ?? [])[0]).filter((a) => a);
    if (!acts.length || acts.length !== j.uses.length) continue;
    want.set(j.w.key, acts);
    for (const a of acts) names.add(a);
  }
  const g = ed.model.graph!;
  const existing = new Set((g.output ?? []).map((o) => o.name));
  for (const n of names) if (!existing.has(n)) g.output = [...(g.output ?? []), { name: n }];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantscope-calib-'));
  try {
    const aug = path.join(dir, 'calibration.onnx');
    writeOnnx(ed, aug, { signal });
    const order = [...names];
    const [results] = await runOnnxInWorker([{ model: aug, feeds, outputs: order, optimization: 'disabled' }], signal);
    const byName = new Map<string, Float32Array[]>();
    order.forEach((n, i) => byName.set(n, results.map((r) => {
      const d = r[i].data;
      if (!(d instanceof Float32Array)) throw new Error(`calibration: activation ${n} is ${r[i].type}, expected float32`);
      return d;
    })));
    const out = new Map<string, { x: Float32Array; tokens: number }>();
    for (const j of jobs) {
      const acts = want.get(j.w.key);
      if (!acts) continue;
      const parts = acts.flatMap((a) => byName.get(a)!);
      const total = parts.reduce((s, p) => s + p.length, 0);
      if (total % j.K !== 0) throw new Error(`calibration: activations of ${j.w.name} hold ${total} values, not a multiple of K=${j.K}`);
      const x = new Float32Array(total);
      let o = 0;
      for (const p of parts) { x.set(p, o); o += p.length; }
      out.set(j.w.key, { x, tokens: total / j.K });
    }
    return out;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- static activations (onnx-qdq)

/**
 * The float activations around every node whose weight is quantized (main
 * graph): the data input of Conv and ConvTranspose, the non-constant inputs
 * of MatMul and Gemm (never Gemm's bias), and each such node's output, so
 * ONNX Runtime can fuse DequantizeLinear → op → QuantizeLinear into its
 * integer kernels. Computed before any edit, while weights are still constants.
 */
function activationInputsOutputs(ed: EditableOnnx, jobs: Job[]): string[] {
  const g = ed.model.graph!;
  const constant = new Set<string>((g.initializer ?? []).map((t) => t.name ?? ''));
  for (const n of g.node ?? []) if (n.op_type === 'Constant') for (const o of n.output ?? []) constant.add(o);
  const out = new Set<string>();
  for (const j of jobs) {
    for (const u of j.uses) {
      if (u.scope.path !== 'main') continue;
      const op = u.node.op_type ?? '';
      const ins = u.node.input ?? [];
      for (const i of op === 'MatMul' || op === 'Gemm' ? [0, 1] : [0]) if (ins[i] && !constant.has(ins[i])) out.add(ins[i]);
      const o = (u.node.output ?? [])[0];
      if (o) out.add(o);
    }
  }
  return [...out];
}

/**
 * Run the original model with `names` as extra outputs over the feeds (a few
 * at a time: all activations of a large batch do not fit at once), stream
 * each into a histogram, and let the calibrator pick a uint8 range per
 * tensor. Non-float activations and ones never seen are reported, not quantized.
 */
async function measureActivationRanges(src: string, names: string[], feeds: Feeds[], cal: CalibratorName, signal: AbortSignal | undefined, onFeeds: (done: number) => void):
  Promise<{ ranges: Map<string, Range>; skipped: { name: string; reason: string }[] }> {
  const ed = openOnnxForEdit(src);
  const g = ed.model.graph!;
  const existing = new Set((g.output ?? []).map((o) => o.name));
  for (const n of names) if (!existing.has(n)) g.output = [...(g.output ?? []), { name: n }];
  const hist = new Map(names.map((n) => [n, new HistogramCollector(2048)]));
  const skipped = new Map<string, string>();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quantscope-actcal-'));
  try {
    const aug = path.join(dir, 'activations.onnx');
    writeOnnx(ed, aug, { signal });
    const STEP = 4;
    for (let f = 0; f < feeds.length; f += STEP) {
      signal?.throwIfAborted();
      const [results] = await runOnnxInWorker([{ model: aug, feeds: feeds.slice(f, f + STEP), outputs: names, optimization: 'disabled' }], signal);
      for (const r of results) {
        names.forEach((n, i) => {
          if (skipped.has(n)) return;
          const d = r[i].data;
          if (!(d instanceof Float32Array)) { skipped.set(n, `a ${r[i].type} tensor (static QDQ quantizes float32 activations)`); return; }
          const finite = d.every((v) => Number.isFinite(v)) ? d : d.filter((v) => Number.isFinite(v));
          if (finite.length) hist.get(n)!.add(finite);
        });
      }
      onFeeds(Math.min(feeds.length, f + STEP));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const target = rangeTarget({ format: 'int', bits: 8, symmetric: false, granularity: { kind: 'tensor' } });
  const c = calibrator(cal);
  const ranges = new Map<string, Range>();
  for (const n of names) {
    const h = hist.get(n)!;
    if (skipped.has(n)) continue;
    if (!h.count) { skipped.set(n, 'no finite value seen on the calibration data'); continue; }
    ranges.set(n, c.fromHistogram(h, target));
  }
  return { ranges, skipped: [...skipped].map(([name, reason]) => ({ name, reason })) };
}

/** ONNX Runtime's uint8 rule: the range widened to hold 0, scale over 255 levels, zero point rounded into [0, 255]. */
export function uint8ScaleZeroPoint(lo: number, hi: number): { scale: number; zeroPoint: number } {
  const rmin = Math.min(lo, 0), rmax = Math.max(hi, 0);
  if (rmax === rmin) return { scale: 1, zeroPoint: 0 };
  const scale = Math.fround((rmax - rmin) / 255);
  const zeroPoint = Math.min(255, Math.max(0, Math.round(-rmin / scale)));
  return { scale, zeroPoint };
}

/**
 * One QuantizeLinear → DequantizeLinear pair per activation, placed right
 * after the node that makes it (or first, for a graph input); every main-graph
 * consumer reads the dequantized tensor, graph outputs keep the float one.
 */
function insertActivationQdq(ed: EditableOnnx, ix: GraphIndex, names: string[], ranges: Map<string, Range>): ActivationQdq[] {
  const g = ed.model.graph!;
  const done: ActivationQdq[] = [];
  for (const name of names) {
    const r = ranges.get(name);
    if (!r) continue;
    const { scale, zeroPoint } = uint8ScaleZeroPoint(r.lo, r.hi);
    const base = name.replace(/[^A-Za-z0-9_.:/-]/g, '_');
    const S = freshName(ix, `${base}_scale`), Z = freshName(ix, `${base}_zero_point`);
    const Q = freshName(ix, `${base}_QuantizeLinear_Output`), D = freshName(ix, `${base}_DequantizeLinear_Output`);
    g.initializer = [...(g.initializer ?? []), newTensor(ed, S, DT.FLOAT, [], u8(Float32Array.of(scale))), newTensor(ed, Z, DT.UINT8, [], Uint8Array.of(zeroPoint))];
    for (const n of g.node ?? []) n.input = (n.input ?? []).map((x) => (x === name ? D : x));
    const pair: NodeMsg[] = [
      { op_type: 'QuantizeLinear', input: [name, S, Z], output: [Q], name: freshName(ix, `${base}_QuantizeLinear`) },
      { op_type: 'DequantizeLinear', input: [Q, S, Z], output: [D], name: freshName(ix, `${base}_DequantizeLinear`) },
    ];
    const list = g.node ?? [];
    const at = list.findIndex((n) => (n.output ?? []).includes(name));
    list.splice(at + 1, 0, ...pair);
    g.node = list;
    done.push({ name, lo: r.lo, hi: r.hi, scale, zeroPoint });
  }
  return done;
}

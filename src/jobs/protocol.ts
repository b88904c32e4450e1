/**
 * Messages between the pool (main thread) and its workers. Both sides import
 * these types, so a job kind, its payload and its result type change together.
 */
import type { Impl } from '../kernels/runtime';
import type { CodesPartial, Pass1, Pass2, Pass2Params, StatsOptions, TensorStats } from '../analysis/weightStats';
import type { SensitivityOptions, TensorSensitivity } from '../analysis/sensitivity';
import type { GptqOptions, GptqPlan, GptqResult } from '../quant/algorithms/gptq';
import type { IntGridConfig } from '../quant/algorithms/intGrid';
import type { CalibratedAlgo, RecordedInput } from '../quant/algorithms/weightOnly';
import type { GgufSlabResult } from '../quant/ggml/slab';
import type { GgufTypeError } from '../quant/ggml/budgetTypes';
import type { HfWeightResult, SafetensorsTarget, WeightScheme } from '../quant/hfQuantize';
import type { GgmlTypeName } from '../formats/gguf/ggmlTypes';
import type { CalibratorName } from '../quant/calibrators';
import type { Sample } from '../runtime/calibData';
import type { ChunkResult, SensWeight, Variant, VariantResult } from '../runtime/sensitivity';
import type { ActivationState } from '../runtime/activations';
import type { QuantSpec } from '../quant/rtn';
import type { ActivationRow } from '../shared/protocol/inspector';
import type { WeightDiff, WeightSource } from '../analysis/compareWeights';
import type { Frontier, PlanEdits, PlanLayer } from '../analysis/planFrontier';

/** A tensor the worker reads itself: it opens the model by path (bounded-chunk reads). */
export interface FileTensorRef { kind: 'file'; path: string; tensor: string }
/** An in-memory tensor, transferred to the worker without copying. */
export interface ArrayTensorRef { kind: 'array'; data: Float32Array; shape?: number[]; outputChannelAxis?: number }
export type TensorRef = FileTensorRef | ArrayTensorRef;

export type Range = [number, number];

export type JobRequest =
  | { kind: 'analyse'; source: TensorRef; options: StatsOptions }
  | { kind: 'pass1'; source: FileTensorRef; range: Range; options: StatsOptions }
  | { kind: 'pass2'; source: FileTensorRef; range: Range; options: StatsOptions; params: Pass2Params }
  /** float16/bfloat16 on disk: count the codes of a range (see runCodes). */
  | { kind: 'codes16'; source: FileTensorRef; range: Range; options: StatsOptions }
  /** Weight-space quantization error of each candidate config (needs the tensor, or a sample of it, in memory). */
  | { kind: 'sensitivity'; source: FileTensorRef; options: SensitivityOptions }
  /** GPTQ of a row range of W given the shared plan (see gptqParallel); weights keep their float type so results match gptq() bit for bit. */
  | { kind: 'gptqRows'; plan: GptqPlan; weights: Float32Array | Float64Array; rows: number; options: GptqOptions }
  /** Experiments: one MatMul/Gemm weight (read by the worker) under GPTQ or AWQ on the grid `grid`, given its recorded inputs (quant/algorithms/weightOnly). */
  | { kind: 'calibratedWeight'; source: FileTensorRef; K: number; N: number; transposed: boolean; algo: CalibratedAlgo; grid: IntGridConfig; input: RecordedInput }
  /** Quantized safetensors: one Linear weight, round-to-nearest, into its GPTQ or compressed-tensors parts (quant/hfQuantize). */
  | { kind: 'hfqWeight'; source: FileTensorRef; target: SafetensorsTarget; scheme: WeightScheme; scaleType: 'f16' | 'bf16' }
  /** GGUF conversion: encode elements [start, start+count) (whole rows) of a tensor into `to` (see quant/ggml/slab); an array source is the slab itself (start 0). */
  /** `ropeHeads`: a file tensor in Hugging Face's rope order, read in llama.cpp's (quant/ggml/slab.readSourceValuesRope). */
  | { kind: 'ggufSlab'; source: FileTensorRef | ArrayTensorRef; start: number; count: number; to: GgmlTypeName; rowLength: number; importance?: Float32Array; impl?: Impl; ropeHeads?: number }
  /** GGUF size budget: the error of each candidate type on sampled rows (`rows`, indices into the tensor; an array source holds just those rows, concatenated). */
  | { kind: 'ggufTypeErrors'; source: FileTensorRef | ArrayTensorRef; rows: number[]; rowLength: number; types: GgmlTypeName[]; importance?: Float32Array; rowsPerExpert?: number; impl?: Impl }
  /** GGUF verification: fingerprint of a range of a written tensor (decoded values, or raw bytes). */
  | { kind: 'ggufDigest'; source: FileTensorRef; start: number; count: number; raw: boolean }
  /** Output-space sensitivity of a chunk of weights: one session per weight on its suffix (runtime/sensitivity.ts). */
  | { kind: 'runtimeSensitivity'; model: string; weights: SensWeight[]; configs: string[]; feeds: Sample[]; calibrator?: CalibratorName; exact?: boolean; provider?: string; reference?: 'suffix' | 'capture' }
  /** Whole-model variants (a config per weight, null = float, or the quantized weight itself) compared with the float model. */
  | { kind: 'runtimeVariants'; model: string; weights: SensWeight[]; variants: Variant[]; feeds: Sample[]; calibrator?: CalibratorName; exact?: boolean; provider?: string }
  /** Activation histograms and per-channel maxima over some feeds. */
  | { kind: 'runtimeActivations'; model: string; feeds: Sample[]; names?: string[]; bins?: number; exact?: boolean; provider?: string }
  /** The Activations view's rows of some merged activations: calibrator clip ranges, percentiles, display histogram, outlier channels. */
  | { kind: 'activationRows'; states: ActivationState[]; calibrators: CalibratorName[]; target: QuantSpec; percentile: number; displayBins: number }
  /** Compare: one weight of model A against its pair in model B, each decoded to float32 (`transpose`: B is stored [c, r] for A's [r, c]; `rope`: that side's q/k rows are in llama.cpp's GGUF order). */
  | { kind: 'compareWeights'; a: { path: string; source: WeightSource }; b: { path: string; source: WeightSource }; transpose?: [number, number]; rope?: { side: 'a' | 'b'; heads: number }; bins?: number }
  /** The wizard's plan frontier: the knapsack over every budget, with the user's pins, forced configs and ties. */
  | { kind: 'planFrontier'; layers: PlanLayer[]; edits: PlanEdits; maxPoints?: number }
  /** Test-only (refused unless the pool was created with allowTestJobs): kills the worker in the given way. */
  | { kind: 'test-crash'; how: 'throw' | 'exit' | 'oom' }
  /** Test-only: busy-waits `ms`, honouring cancellation between 1 ms slices only if `cooperative`. */
  | { kind: 'test-hang'; ms: number; cooperative: boolean }
  /** Test-only: opens an ONNX Runtime session of `model` in its worker process, then calls process.abort() there (what a native abort inside ORT does). */
  | { kind: 'test-abort'; model: string };

export interface JobResults {
  analyse: TensorStats;
  pass1: Pass1;
  pass2: Pass2;
  codes16: CodesPartial;
  sensitivity: TensorSensitivity;
  gptqRows: GptqResult;
  /** The effective weight in its stored layout, and what was applied. */
  calibratedWeight: { weight: Float32Array; used: string };
  hfqWeight: HfWeightResult;
  ggufSlab: GgufSlabResult;
  ggufDigest: string;
  ggufTypeErrors: GgufTypeError[];
  runtimeSensitivity: ChunkResult;
  runtimeVariants: VariantResult[];
  runtimeActivations: ActivationState[];
  activationRows: { rows: ActivationRow[]; empty: number };
  compareWeights: WeightDiff;
  planFrontier: Frontier;
  'test-crash': never;
  'test-hang': { sliced: number };
  'test-abort': never;
}
export type JobKind = JobRequest['kind'];
export type JobOf<K extends JobKind> = Extract<JobRequest, { kind: K }>;

/**
 * The native runtime a job loads and the model file it runs, for the job kinds
 * that load one: those run in worker processes, never in worker threads (a
 * native abort there would end the whole process: the extension host, the
 * CLI), and a crash of one names this runtime and file. Undefined for the
 * pure-JS/WASM kinds, which run in worker threads.
 */
export function nativeRuntimeOf(job: JobRequest): { runtime: string; file: string } | undefined {
  switch (job.kind) {
    case 'runtimeSensitivity':
    case 'runtimeVariants':
    case 'runtimeActivations':
    case 'test-abort':
      return { runtime: 'ONNX Runtime', file: job.model };
    default:
      return undefined;
  }
}

/** The argument that starts worker.js as a pool's worker process (the next one is its WorkerInit as JSON). */
export const WORKER_PROCESS_ARG = '--quantscope-worker-process';

export interface WorkerInit {
  allowTestJobs: boolean;
  /** Native calls in flight in this worker thread (shared with the pool; see shared/nativeCalls.ts). */
  nativeCalls?: Int32Array;
}

export type ToWorker =
  /**
   * A worker thread gets `cancel`, an Int32Array over a SharedArrayBuffer the
   * pool stores 1 in to cancel; a worker process (no shared memory) makes its
   * own flag and sets it on a `cancel` message.
   */
  | { type: 'run'; id: number; job: JobRequest; cancel?: Int32Array }
  | { type: 'cancel'; id: number };

export interface WireError { name: string; message: string; stack?: string }

export type FromWorker =
  | { type: 'progress'; id: number; done: number; total: number }
  | { type: 'done'; id: number; result: unknown }
  | { type: 'failed'; id: number; error: WireError; cancelled: boolean };

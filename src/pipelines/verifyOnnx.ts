/**
 * Verification of a converted ONNX model, run on every write:
 * 1. reopen the written file with the project's reader and decode each
 *   quantized weight from its stored form (MatMulNBits blobs, QDQ codes):
 *   the float32 values must equal the engine's prediction bit for bit
 *   (compared through the fingerprint the converter recorded);
 * 2. run the original and the converted model in ONNX Runtime (in worker
 *   threads, side by side for models up to 256 MB, while the weights above
 *   are read back) on the given feeds, or on deterministic synthetic inputs built
 *   from the declared input shapes and types, and compare every output:
 *   cosine, SQNR, max abs error; top-1 agreement for classifier-shaped
 *   outputs ([batch, classes] or [batch, positions, classes]) and mean
 *   per-position KL divergence (softmax first when the values are logits).
 */
import * as fs from 'node:fs';
import { VerificationError } from './errors';
import { performance } from 'node:perf_hooks';
import { openOnnx } from '../formats/onnx/reader';
import { f16ToF32 } from '../formats/dtypes';
import type { ModelFile, TensorInfo } from '../formats/types';
import { unpackNBits, dequantizeDq, float32Digest, digestNBits } from '../quant/onnxLayouts';
import { Feeds, FeedData, OrtOutput, runOnnxInWorker } from '../runtime/ortRun';
import type { ConvertOnnxResult, StoredLayout } from './convertOnnx';

export interface VerifyOnnxOptions {
  /** Model inputs to run; default: synthetic inputs from the declared shapes. */
  feeds?: Feeds[];
  /** Values for symbolic dimensions by name; others get 1 for the first axis and `defaultDim` elsewhere. */
  symbolicDims?: Record<string, number>;
  defaultDim?: number;
  /** Synthetic integer inputs are drawn from [0, intRange). */
  intRange?: number;
  seed?: number;
  /** Skip the ONNX Runtime comparison (weights are still checked). */
  skipRuntime?: boolean;
  signal?: AbortSignal;
}

export interface OutputComparison {
  name: string;
  dims: number[];
  cosine: number;
  sqnrDb: number;
  maxAbs: number;
  /** Fraction of positions whose arg-max class is the same (classifier-shaped outputs). */
  top1Agreement?: number;
  /** Mean KL(original ‖ converted) per position, in nats (classifier-shaped outputs). */
  meanKl?: number;
}

export interface VerifyOnnxReport {
  weights: { checked: number; mismatched: string[] };
  inputs: 'given' | 'synthetic';
  /** What was fed, e.g. "x float32 [1, 3, 48, 64] (synthetic)". */
  feedsDescription: string[];
  outputs: OutputComparison[];
  ms: number;
}

export { VerificationError };

function storedTensor(m: ModelFile, graph: string, name: string): TensorInfo {
  const t = m.tensors.find((x) => x.name === name && x.graph === graph);
  if (!t) throw new VerificationError(`${m.path}: tensor ${name} (graph ${graph}) is missing from the written file`);
  return t;
}

/** Decode one stored weight back to float32 with the project's reader. */
export function decodeStored(m: ModelFile, s: StoredLayout): Float32Array {
  const find = (name: string): TensorInfo => storedTensor(m, s.graph, name);
  if (s.kind === 'nbits') {
    const B = m.readBytes(find(s.B));
    const scales = m.readFloat32(find(s.scales));
    const zp = s.zeroPoints ? m.readBytes(find(s.zeroPoints)) : null;
    const gIdx = s.gIdx ? new Int32Array(Uint8Array.from(m.readBytes(find(s.gIdx))).buffer) : null;
    return unpackNBits({ K: s.K, N: s.N, bits: s.bits, blockSize: s.blockSize, B, scales, zeroPoints: zp, gIdx });
  }
  const codes = find(s.codes);
  return dequantizeDq(m.readFloat32(codes), codes.shape, m.readFloat32(find(s.scales)), m.readFloat32(find(s.zeroPoints)), s.axis, s.blockSize);
}

/** Fingerprint of a MatMulNBits weight read back from the file, block by block. */
function digestStoredNBits(m: ModelFile, s: Extract<StoredLayout, { kind: 'nbits' }>): string {
  const find = (name: string): TensorInfo => storedTensor(m, s.graph, name);
  return digestNBits({
    K: s.K, N: s.N, bits: s.bits, blockSize: s.blockSize, B: m.readBytes(find(s.B)), scales: m.readFloat32(find(s.scales)),
    zeroPoints: s.zeroPoints ? m.readBytes(find(s.zeroPoints)) : null,
  });
}

/** Models up to this size (source file) are run side by side in two workers; larger ones one after the other, to bound memory. */
const PARALLEL_RUN_BYTES = 256 << 20;

export async function verifyOnnx(result: ConvertOnnxResult, opts: VerifyOnnxOptions = {}): Promise<VerifyOnnxReport> {
  const t0 = performance.now();
  const report: VerifyOnnxReport = { weights: { checked: result.tensors.length, mismatched: [] }, inputs: opts.feeds ? 'given' : 'synthetic', feedsDescription: [], outputs: [], ms: 0 };
  // ONNX Runtime runs in workers while this thread reads the weights back.
  let runs: Promise<[OrtOutput[][], OrtOutput[][]]> | undefined;
  if (!opts.skipRuntime) {
    const feeds = opts.feeds ?? [syntheticFeeds(result.source, opts)];
    for (const [k, v] of Object.entries(feeds[0])) report.feedsDescription.push(`${k} [${v.dims.join(', ')}]${opts.feeds ? '' : ' (synthetic)'}`);
    let small = false;
    try { small = fs.statSync(result.source).size <= PARALLEL_RUN_BYTES; } catch { /* reported by the run */ }
    runs = small
      ? Promise.all([
        runOnnxInWorker([{ model: result.source, feeds, threads: 1 }], opts.signal),
        runOnnxInWorker([{ model: result.output, feeds, threads: 1 }], opts.signal),
      ]).then(([[ref], [conv]]) => [ref, conv] as [OrtOutput[][], OrtOutput[][]])
      : runOnnxInWorker([{ model: result.source, feeds }, { model: result.output, feeds }], opts.signal).then(([ref, conv]) => [ref, conv] as [OrtOutput[][], OrtOutput[][]]);
    runs.catch(() => undefined); // awaited below, after the weights
  }
  const m = openOnnx(result.output);
  try {
    for (const t of result.tensors) {
      opts.signal?.throwIfAborted();
      const got = t.stored.kind === 'nbits' && !t.stored.gIdx ? digestStoredNBits(m, t.stored) : float32Digest(decodeStored(m, t.stored));
      if (got !== t.stored.digest) report.weights.mismatched.push(t.name);
    }
  } finally {
    m.close();
  }
  if (runs) {
    const [ref, conv] = await runs;
    report.outputs = compareOutputs(ref, conv);
  }
  report.ms = performance.now() - t0;
  return report;
}

/** Deterministic inputs from the model's declared inputs (symbolic dims → small defaults). */
export function syntheticFeeds(model: string, opts: Pick<VerifyOnnxOptions, 'symbolicDims' | 'defaultDim' | 'intRange' | 'seed'> = {}): Feeds {
  const m = openOnnx(model);
  try {
    const r = xorshift(opts.seed ?? 1);
    const feeds: Feeds = {};
    for (const inp of m.graph?.inputs ?? []) {
      const dims = (inp.shape ?? []).map((d, i) => (typeof d === 'number' && d >= 0 ? d : typeof d === 'string' && opts.symbolicDims?.[d] !== undefined ? opts.symbolicDims[d] : i === 0 ? 1 : opts.defaultDim ?? 16));
      const n = dims.reduce((a, b) => a * b, 1);
      const range = opts.intRange ?? 16;
      let data: FeedData;
      switch (inp.dtype) {
        case 'f32': data = Float32Array.from({ length: n }, () => r() * 2 - 1); break;
        case 'f64': data = Float64Array.from({ length: n }, () => r() * 2 - 1); break;
        case 'i64': data = BigInt64Array.from({ length: n }, () => BigInt(Math.floor(r() * range))); break;
        case 'i32': data = Int32Array.from({ length: n }, () => Math.floor(r() * range)); break;
        case 'u8': data = Uint8Array.from({ length: n }, () => Math.floor(r() * range)); break;
        default: throw new VerificationError(`${model}: input ${inp.name} is ${inp.dtype}; give feeds for it`);
      }
      feeds[inp.name] = { data, dims };
    }
    return feeds;
  } finally {
    m.close();
  }
}

/** Compare every output of every feed (outputs concatenated over feeds). */
export function compareOutputs(ref: OrtOutput[][], conv: OrtOutput[][]): OutputComparison[] {
  const out: OutputComparison[] = [];
  const nOut = ref[0]?.length ?? 0;
  for (let o = 0; o < nOut; o++) {
    let dot = 0, na = 0, nb = 0, err = 0, maxAbs = 0;
    let agree = 0, positions = 0, kl = 0;
    const classifier = ref[0][o].dims.length >= 2 && ref[0][o].dims.length <= 3 && ref[0][o].dims[ref[0][o].dims.length - 1] >= 2;
    for (let f = 0; f < ref.length; f++) {
      if (typeof (ref[f][o].data as unknown as BigInt64Array)[0] === 'bigint') continue;
      const a = asNumbers(ref[f][o]);
      const b = asNumbers(conv[f][o]);
      if (a.length !== b.length) throw new VerificationError(`output ${ref[f][o].name}: ${a.length} values in the original, ${b.length} in the converted model`);
      for (let i = 0; i < a.length; i++) {
        const x = a[i], y = b[i];
        dot += x * y; na += x * x; nb += y * y;
        const d = x - y;
        err += d * d;
        if (Math.abs(d) > maxAbs || Number.isNaN(d)) maxAbs = Math.abs(d);
      }
      if (classifier) {
        const C = ref[f][o].dims[ref[f][o].dims.length - 1];
        const probs = isDistribution(a, C);
        for (let p = 0; p + C <= a.length; p += C) {
          let ia = 0, ib = 0;
          for (let c = 1; c < C; c++) { if (a[p + c] > a[p + ia]) ia = c; if (b[p + c] > b[p + ib]) ib = c; }
          if (ia === ib) agree++;
          kl += klDivergence(a, b, p, C, probs);
          positions++;
        }
      }
    }
    const cmp: OutputComparison = {
      name: ref[0][o].name, dims: ref[0][o].dims,
      cosine: na && nb ? dot / Math.sqrt(na * nb) : na === nb ? 1 : 0,
      sqnrDb: err === 0 ? Infinity : 10 * Math.log10(na / err),
      maxAbs,
    };
    if (classifier && positions) { cmp.top1Agreement = agree / positions; cmp.meanKl = Math.max(0, kl / positions); }
    out.push(cmp);
  }
  return out;
}

/** Output values as numbers: float16 outputs arrive as raw bits. */
function asNumbers(o: OrtOutput): ArrayLike<number> {
  if (o.type === 'float16') return Float32Array.from(o.data as Uint16Array, (h) => f16ToF32(h));
  return o.data as ArrayLike<number>;
}

function isDistribution(a: ArrayLike<number>, C: number): boolean {
  for (let p = 0; p + C <= Math.min(a.length, C * 8); p += C) {
    let s = 0;
    for (let c = 0; c < C; c++) { if (a[p + c] < 0) return false; s += a[p + c]; }
    if (Math.abs(s - 1) > 1e-3) return false;
  }
  return true;
}

function klDivergence(a: ArrayLike<number>, b: ArrayLike<number>, p: number, C: number, probs: boolean): number {
  const pa = new Float64Array(C);
  const pb = new Float64Array(C);
  if (probs) {
    for (let c = 0; c < C; c++) { pa[c] = a[p + c]; pb[c] = b[p + c]; }
  } else {
    let ma = -Infinity, mb = -Infinity;
    for (let c = 0; c < C; c++) { ma = Math.max(ma, a[p + c]); mb = Math.max(mb, b[p + c]); }
    let sa = 0, sb = 0;
    for (let c = 0; c < C; c++) { pa[c] = Math.exp(a[p + c] - ma); pb[c] = Math.exp(b[p + c] - mb); sa += pa[c]; sb += pb[c]; }
    for (let c = 0; c < C; c++) { pa[c] /= sa; pb[c] /= sb; }
  }
  let kl = 0;
  for (let c = 0; c < C; c++) if (pa[c] > 0) kl += pa[c] * Math.log(pa[c] / Math.max(pb[c], 1e-30));
  return kl;
}

/** xorshift32 in [0, 1): synthetic inputs only need to be reproducible. */
function xorshift(seed: number): () => number {
  let x = (seed | 0) || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

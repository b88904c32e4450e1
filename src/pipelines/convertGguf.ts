/**
 * `quantscope quantize MODEL.gguf --target gguf --type PRESET`: requantizes a
 * GGUF whose tensors are F32/F16/BF16 (Q8_0 with allowRequantize) into one of
 * llama.cpp's presets, making the same per-tensor choices and writing the same
 * bytes as llama.cpp's own quantizer (test/unit/gguf-convert*.test.ts hold the
 * two equal), then reopens the written file with our reader and checks every
 * tensor before the file gets its real name.
 *
 * Memory stays bounded: one slab of whole rows (about 16M values) of one
 * tensor is in memory at a time, read from the source, encoded, measured and
 * written before the next.
 */
import type { Impl } from '../kernels/runtime';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GgufValueType, openGguf, readGgufHeader, GgufHeader } from '../formats/gguf/reader';
import { GgufFileWriter, GgufKv, layoutGguf } from '../formats/gguf/writer';
import { Imatrix, readImatrix } from '../formats/gguf/imatrix';
import { MetadataValue, ModelFile, TensorInfo } from '../formats/types';
import { QUANTIZABLE } from '../quant/ggml/quantize';
import { GgufSlabResult, digestGgufRange, encodeGgufSlab, readSourceValues, slabRanges } from '../quant/ggml/slab';
import { GgmlTypeName, ggmlTypeByName } from '../formats/gguf/ggmlTypes';
import type { WorkerPool } from '../jobs/pool';
import {
  GGUF_PRESETS, GgufPreset, PlannedTensor, TensorTypeOverride, parseTensorTypeOverride, planGgufTypes,
} from '../quant/ggml/presets';

/** ggml's quantization format version, written to general.quantization_version. */
export const GGML_QNT_VERSION = 2;
/** Values per slab: the unit of work handed to a worker, and of the verification fingerprints. */
export const SLAB_VALUES = 1 << 22;

export interface ConvertGgufOptions {
  preset: GgufPreset;
  /** Accept Q8_0 source tensors (dequantized, then requantized). */
  allowRequantize?: boolean;
  /** Every quantizable tensor gets the preset's base type (llama-quantize --pure). */
  pure?: boolean;
  /** `REGEX=TYPE` strings or parsed overrides (llama-quantize --tensor-type); first match wins. */
  tensorTypes?: (string | TensorTypeOverride)[];
  /** An imatrix file (GGUF or legacy .dat) or one already read. */
  imatrix?: string | Imatrix;
  outputTensorType?: GgmlTypeName;
  tokenEmbeddingType?: GgmlTypeName;
  /** false = llama-quantize --leave-output-tensor. */
  quantizeOutput?: boolean;
  overwrite?: boolean;
  /** Reopen and check the written file before renaming it (default true). */
  verify?: boolean;
  /** Encoder implementation (see quantizeGgml); default 'auto'. */
  impl?: Impl;
  /**
   * Workers to encode and verify slabs on (two slabs per worker in flight);
   * without one everything runs on this thread.
   */
  pool?: WorkerPool;
}

export interface ConvertGgufProgress {
  /** Tensors finished so far and in all. */
  done: number;
  count: number;
  tensor: string;
  bytesRead: number;
  bytesTotal: number;
}

export interface ConvertGgufCallbacks {
  onProgress?: (p: ConvertGgufProgress) => void;
  signal?: AbortSignal;
}

export interface ConvertedGgufTensor {
  name: string;
  /** ggml dims, ne[0] (row length) first. */
  ne: number[];
  from: GgmlTypeName;
  to: GgmlTypeName;
  /** Whether the data was re-encoded (false: copied byte for byte). */
  requantized: boolean;
  reason: string;
  /** Bytes in the output. */
  bytes: number;
  /** Weight-space error of the output against the source values: sum (q - x)^2 / sum x^2, and SQNR in dB. 0 / Infinity when copied. */
  relMse: number;
  sqnrDb: number;
  /** Whether an imatrix entry was used for this tensor. */
  importance: boolean;
}

export interface ConvertGgufResult {
  source: string;
  output: string;
  preset: GgufPreset;
  ftype: number;
  tensors: ConvertedGgufTensor[];
  totals: {
    tensors: number;
    requantized: number;
    sourceBytes: number;
    outputBytes: number;
    /** Bits per weight of the output's tensor data. */
    bpw: number;
    /** Element-weighted mean relative MSE over requantized tensors. */
    relMse: number;
  };
  seconds: { convert: number; verify: number };
  /** What the reopened file showed; undefined when verify was off. */
  verification?: { tensors: number; metadataKeys: number };
}

/** Where "Quantize Model…" writes by default: beside the source, `model-Q4_K_M.gguf` (a trailing -f16/-f32/-bf16 dropped). */
export function defaultGgufOutputPath(srcPath: string, preset: GgufPreset): string {
  const base = path.basename(srcPath).replace(/\.gguf$/i, '').replace(/[-.](f16|f32|bf16)$/i, '');
  return path.join(path.dirname(srcPath), `${base}-${preset}.gguf`);
}

class Cancelled extends Error {
  constructor() { super('cancelled'); }
}

function sameFile(a: string, b: string): boolean {
  const ra = fs.realpathSync(a);
  let rb: string;
  try { rb = fs.realpathSync(b); } catch { return path.resolve(b) === ra; }
  return ra === rb;
}

/** The output's metadata: the source's, in order, then the keys llama.cpp sets or adds. */
export function ggufOutputMetadata(h: GgufHeader, ftype: number, source: string, imatrix?: { file?: string; m: Imatrix }): GgufKv[] {
  const drop = new Set(['general.quantization_version', 'general.file_type', 'split.no', 'split.count', 'split.tensors.count']);
  const kvs: GgufKv[] = [];
  for (const key of Object.keys(h.metadata)) {
    if (drop.has(key)) continue;
    const type = h.metadataTypes[key] as GgufValueType;
    const kv: GgufKv = { key, type, value: h.metadata[key] };
    if (type === GgufValueType.ARRAY) {
      kv.elementType = h.metadataArrayTypes[key] as GgufValueType;
      if (kv.elementType === GgufValueType.ARRAY) throw new Error(`${source}: metadata ${key} is a nested array, which QuantScope does not write`);
    }
    kvs.push(kv);
  }
  kvs.push({ key: 'general.quantization_version', type: GgufValueType.UINT32, value: GGML_QNT_VERSION });
  kvs.push({ key: 'general.file_type', type: GgufValueType.UINT32, value: ftype });
  if (imatrix) {
    // What llama-quantize records when given --imatrix (its strings are cut at 127 bytes).
    if (imatrix.file) kvs.push({ key: 'quantize.imatrix.file', type: GgufValueType.STRING, value: Buffer.from(imatrix.file).subarray(0, 127).toString() });
    if (imatrix.m.datasets.length) kvs.push({ key: 'quantize.imatrix.dataset', type: GgufValueType.STRING, value: Buffer.from(imatrix.m.datasets[0]).subarray(0, 127).toString() });
    kvs.push({ key: 'quantize.imatrix.entries_count', type: GgufValueType.UINT32, value: imatrix.m.entries.size });
    if (imatrix.m.chunkCount > 0) kvs.push({ key: 'quantize.imatrix.chunks_count', type: GgufValueType.UINT32, value: imatrix.m.chunkCount });
  }
  return kvs;
}

export function encodable(to: GgmlTypeName): boolean {
  return QUANTIZABLE.has(to) || to === 'F16' || to === 'F32';
}

export async function convertGguf(
  srcPath: string, outPath: string, options: ConvertGgufOptions, cb: ConvertGgufCallbacks = {},
): Promise<ConvertGgufResult> {
  const t0 = process.hrtime.bigint();
  const source = path.resolve(srcPath);
  const output = path.resolve(outPath);
  const preset = options.preset.toUpperCase() as GgufPreset;
  const p = GGUF_PRESETS[preset];
  if (!p) throw new RangeError(`unknown GGUF preset ${options.preset} (known: ${Object.keys(GGUF_PRESETS).join(', ')})`);
  if (!fs.existsSync(source)) throw new Error(`${source}: no such file`);
  if (sameFile(source, output)) throw new Error(`${output}: the output would overwrite the source`);
  if (fs.existsSync(output) && !options.overwrite) throw new Error(`${output} exists (pass overwrite to replace it)`);
  if (!fs.existsSync(path.dirname(output))) throw new Error(`${path.dirname(output)}: no such folder`);

  const h = readGgufHeader(source);
  const imFile = typeof options.imatrix === 'string' ? path.resolve(options.imatrix) : undefined;
  const im = typeof options.imatrix === 'string' ? readImatrix(options.imatrix) : options.imatrix;
  const overrides = (options.tensorTypes ?? []).map((o) => typeof o === 'string' ? parseTensorTypeOverride(o) : o);
  const plan = planGgufTypes(h.metadata, h.rawTensors, preset, {
    pure: options.pure, tensorTypes: overrides, outputTensorType: options.outputTensorType,
    tokenEmbeddingType: options.tokenEmbeddingType, quantizeOutput: options.quantizeOutput, hasImatrix: !!im,
  });
  for (const t of plan) {
    if (t.from === t.to) continue;
    if (!encodable(t.to)) throw new Error(`${source}: tensor ${t.name} would become ${t.to}, which QuantScope cannot encode`);
    const src = ggmlTypeByName(t.from)!;
    if (src.quantized) {
      if (t.from !== 'Q8_0') throw new Error(`${source}: tensor ${t.name} is ${t.from}; only F32/F16/BF16 (and Q8_0 with allowRequantize) can be requantized`);
      if (!options.allowRequantize) throw new Error(`${source}: tensor ${t.name} is already ${t.from}; pass allowRequantize to requantize it`);
    } else if (t.from !== 'F32' && t.from !== 'F16' && t.from !== 'BF16') {
      throw new Error(`${source}: tensor ${t.name} is ${t.from}, which cannot be quantized`);
    }
  }

  const kvs = ggufOutputMetadata(h, p.ftype, source, im ? { file: imFile, m: im } : undefined);
  const layout = layoutGguf(kvs, plan.map((t) => ({ name: t.name, ne: t.ne, type: ggmlTypeByName(t.to)!.id })));
  const m = openGguf(source);
  const byName = new Map(m.tensors.map((t) => [t.name, t]));
  const bytesTotal = m.tensors.reduce((s, t) => s + t.byteLength, 0);
  const runner = slabRunner(source, m, options.pool, options.impl ?? 'auto', cb.signal);
  const writer = new GgufFileWriter(output, layout);
  const digests: string[][] = plan.map(() => []);
  const results: ConvertedGgufTensor[] = [];
  try {
    const tasks = plan.flatMap((pt, k) => slabTasks(k, byName.get(pt.name)!.numel, pt));
    const importance = plan.map(() => false);
    let bytesRead = 0;
    const launch = (t: SlabTask): Promise<GgufSlabResult> => {
      const pt = plan[t.k];
      const info = byName.get(pt.name)!;
      if (pt.from === pt.to) return Promise.resolve(copySlab(m, info, t.range));
      const imp = importanceFor(im, pt, t.range[0]);
      if (imp) importance[t.k] = true;
      return runner.encode(info, t.range, pt.to, pt.ne[0], imp);
    };
    await writeSlabsInOrder(tasks, options.pool ? options.pool.size * 2 : 1, launch, writer, digests, cb.signal, (k, err, ref) => {
      const pt = plan[k];
      const relMse = pt.from === pt.to ? 0 : ref > 0 ? err / ref : err > 0 ? Infinity : 0;
      results.push({
        name: pt.name, ne: pt.ne, from: pt.from, to: pt.to, reason: pt.reason, bytes: layout.sizes[k],
        requantized: pt.from !== pt.to, relMse, sqnrDb: sqnr(relMse), importance: importance[k],
      });
      bytesRead += byName.get(pt.name)!.byteLength;
      cb.onProgress?.({ done: k + 1, count: plan.length, tensor: pt.name, bytesRead, bytesTotal });
    });
    writer.finish();
    const t1 = process.hrtime.bigint();
    let verification: ConvertGgufResult['verification'];
    if (options.verify !== false) verification = await verifyWritten(writer.tempPath, output, kvs, plan, digests, runner, cb.signal);
    const t2 = process.hrtime.bigint();
    if (cb.signal?.aborted) throw new Cancelled();
    writer.commit();
    const outBytes = results.reduce((s, t) => s + t.bytes, 0);
    const nElems = plan.reduce((s, t) => s + t.ne.reduce((a, b) => a * b, 1), 0);
    const req = results.filter((t) => t.requantized);
    const reqElems = req.reduce((s, t) => s + t.ne.reduce((a, b) => a * b, 1), 0);
    return {
      source, output, preset, ftype: p.ftype, tensors: results,
      totals: {
        tensors: results.length, requantized: req.length, sourceBytes: bytesTotal, outputBytes: outBytes,
        bpw: nElems ? (outBytes * 8) / nElems : 0,
        relMse: reqElems ? req.reduce((s, t) => s + t.relMse * t.ne.reduce((a, b) => a * b, 1), 0) / reqElems : 0,
      },
      seconds: { convert: Number(t1 - t0) / 1e9, verify: Number(t2 - t1) / 1e9 },
      verification,
    };
  } catch (e) {
    writer.abort();
    throw e;
  } finally {
    m.close();
  }
}

export function checkCancel(signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw new Cancelled();
  // Let an abort (a Cancel click, a signal handler) run between slabs.
  return new Promise((res) => setImmediate(res));
}

export function sqnr(rel: number): number {
  return rel > 0 ? -10 * Math.log10(rel) : Infinity;
}

export interface SlabRunner {
  encode(info: TensorInfo, range: [number, number], to: GgmlTypeName, rowLength: number, importance?: Float32Array): Promise<GgufSlabResult>;
  digest(file: string, m: ModelFile, t: TensorInfo, range: [number, number], raw: boolean): Promise<string>;
}

/** Slabs run here, or as pool jobs that read the files themselves. */
function slabRunner(source: string, m: ModelFile, pool: WorkerPool | undefined, impl: Impl, signal?: AbortSignal): SlabRunner {
  if (!pool) {
    return {
      encode: async (info, [start, count], to, rowLength, importance) =>
        encodeGgufSlab(readSourceValues(m, info, start, count), to, rowLength, importance, impl),
      digest: async (_file, om, t, [start, count], raw) => digestGgufRange(om, t, start, count, raw),
    };
  }
  return {
    encode: (info, [start, count], to, rowLength, importance) => pool.run({
      kind: 'ggufSlab', source: { kind: 'file', path: source, tensor: info.name }, start, count, to, rowLength, importance, impl,
    }, { signal }),
    digest: (file, _om, t, [start, count], raw) =>
      pool.run({ kind: 'ggufDigest', source: { kind: 'file', path: file, tensor: t.name }, start, count, raw }, { signal }),
  };
}

/** One slab of planned tensor `k`: `count` elements from `start` (range = [start, count]). */
export interface SlabTask { k: number; range: [number, number]; last: boolean }

/** The slabs of planned tensor `k` of `numel` elements, in file order. */
export function slabTasks(k: number, numel: number, pt: { ne: number[] }): SlabTask[] {
  return slabRanges(numel, pt.ne[0], pt.ne[1] ?? 1, SLAB_VALUES).map((range, j, all) => ({ k, range, last: j === all.length - 1 }));
}

/**
 * The conversions' ordered pipeline: up to `window` slabs are being encoded
 * while the oldest is written, so the file is written in order in bounded
 * memory. Each slab's digest is kept for the verification;
 * `tensorDone(k, errSum, refSum)` follows a tensor's last slab.
 */
export async function writeSlabsInOrder(
  tasks: SlabTask[], window: number, launch: (t: SlabTask) => Promise<GgufSlabResult>, writer: GgufFileWriter,
  digests: string[][], signal: AbortSignal | undefined, tensorDone: (k: number, errSum: number, refSum: number) => void,
): Promise<void> {
  const inflight: Promise<GgufSlabResult>[] = [];
  let next = 0, err = 0, ref = 0;
  for (let done = 0; done < tasks.length; done++) {
    while (next < tasks.length && inflight.length < window) {
      const p = launch(tasks[next++]);
      // A failed slab is reported when its turn comes; do not let it count as unhandled meanwhile.
      p.catch(() => undefined);
      inflight.push(p);
    }
    await checkCancel(signal);
    const r = await inflight.shift()!;
    const t = tasks[done];
    writer.write(r.bytes);
    digests[t.k].push(r.digest);
    err += r.errSum;
    ref += r.refSum;
    if (!t.last) continue;
    writer.endTensor();
    tensorDone(t.k, err, ref);
    err = 0;
    ref = 0;
  }
}

/** A tensor kept as it is: its bytes, fingerprinted as the verification reads them back. */
function copySlab(m: ModelFile, info: TensorInfo, [start, count]: [number, number]): GgufSlabResult {
  const bpe = info.byteLength / info.numel;
  const bytes = m.readBytes(info, start * bpe, count * bpe);
  return { bytes, errSum: 0, refSum: 0, digest: crypto.createHash('sha256').update(bytes).digest('hex') };
}

/** The imatrix row for the expert that element `start` belongs to, checked as llama.cpp checks it. */
export function importanceFor(im: Imatrix | undefined, pt: PlannedTensor, start: number): Float32Array | undefined {
  const toInfo = ggmlTypeByName(pt.to)!;
  if (!im || !toInfo.quantized) return undefined;
  const e = im.entries.get(pt.name);
  if (!e) return undefined;
  const ne0 = pt.ne[0], nExperts = pt.ne[2] ?? 1;
  if (e.length !== ne0 * nExperts) {
    // llama.cpp refuses this too (most of the model would silently lose its imatrix), except for token embeddings.
    if (/^(per_layer_)?token_embd\.weight$/.test(pt.name)) return undefined;
    throw new Error(`imatrix size ${e.length} differs from tensor size ${ne0 * nExperts} for ${pt.name}`);
  }
  const expert = Math.floor(start / (ne0 * (pt.ne[1] ?? 1)));
  return e.slice(expert * ne0, (expert + 1) * ne0);
}

/** Reopen the written file with our reader: metadata, types, shapes, and every slab's values as the encoder produced them. */
export async function verifyWritten(
  file: string, output: string, kvs: GgufKv[], plan: PlannedTensor[], digests: string[][], runner: SlabRunner, signal?: AbortSignal,
): Promise<{ tensors: number; metadataKeys: number }> {
  const fail = (what: string): never => { throw new Error(`verification of ${output} failed: ${what}`); };
  const h = readGgufHeader(file);
  const keys = Object.keys(h.metadata);
  if (keys.length !== kvs.length) fail(`${keys.length} metadata keys, expected ${kvs.length}`);
  kvs.forEach((kv, i) => {
    if (keys[i] !== kv.key) fail(`metadata key #${i} is ${keys[i]}, expected ${kv.key}`);
    if (h.metadataTypes[kv.key] !== kv.type) fail(`metadata ${kv.key} has type ${h.metadataTypes[kv.key]}, expected ${kv.type}`);
    if (!sameValue(h.metadata[kv.key], kv.value)) fail(`metadata ${kv.key} reads back differently`);
  });
  const m = openGguf(file);
  try {
    if (m.tensors.length !== plan.length) fail(`${m.tensors.length} tensors, expected ${plan.length}`);
    const jobs: { k: number; j: number; p: Promise<string> }[] = [];
    for (let k = 0; k < plan.length; k++) {
      const t = m.tensors[k], pt = plan[k], raw = h.rawTensors[k];
      if (raw.name !== pt.name || ggmlTypeByName(pt.to)!.id !== raw.type || raw.ne.join() !== pt.ne.join()) {
        fail(`tensor #${k} is ${raw.name} ${raw.type} [${raw.ne.join(', ')}], expected ${pt.name} ${pt.to} [${pt.ne.join(', ')}]`);
      }
      const slabs = slabTasks(k, t.numel, pt);
      if (slabs.length !== digests[k].length) fail(`tensor ${pt.name}: ${slabs.length} slabs, ${digests[k].length} fingerprints`);
      slabs.forEach(({ range }, j) => {
        const job = { k, j, p: runner.digest(file, m, t, range, pt.from === pt.to) };
        job.p.catch(() => undefined);
        jobs.push(job);
      });
      // Bounded: settle what is queued before it grows past a few dozen slabs.
      if (jobs.length > 64 || k === plan.length - 1) {
        await checkCancel(signal);
        for (const job of jobs.splice(0)) {
          if ((await job.p) !== digests[job.k][job.j]) fail(`tensor ${plan[job.k].name} (slab ${job.j}) does not dequantize to what the encoder produced`);
        }
      }
    }
  } finally {
    m.close();
  }
  return { tensors: plan.length, metadataKeys: kvs.length };
}

function sameValue(a: MetadataValue, b: MetadataValue): boolean {
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (typeof a === 'number' && typeof b === 'number') return a === b || (Number.isNaN(a) && Number.isNaN(b)) || Math.fround(a) === Math.fround(b);
  return a === b || (typeof a === 'bigint' || typeof b === 'bigint' ? BigInt(a as number) === BigInt(b as number) : false);
}

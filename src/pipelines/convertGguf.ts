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
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { GgufValueType, openGguf, readGgufHeader, GgufHeader } from '../formats/gguf';
import { GgufFileWriter, GgufKv, layoutGguf } from '../formats/gguf/writer';
import { Imatrix, readImatrix } from '../formats/gguf/imatrix';
import { MetadataValue, ModelFile, TensorInfo } from '../formats/types';
import { f32ToF16 } from '../formats/dtypes';
import { quantizeGgmlInto, QUANTIZABLE } from '../quant/ggml/quantize';
import { dequantizeGgml } from '../quant/ggml/dequant';
import { GgmlTypeName, ggmlTypeByName } from '../quant/ggml/types';
import {
  GGUF_PRESETS, GgufPreset, PlannedTensor, TensorTypeOverride, parseTensorTypeOverride, planGgufTypes,
} from '../quant/ggml/presets';

/** ggml's quantization format version, written to general.quantization_version. */
const GGML_QNT_VERSION = 2;
const SLAB_VALUES = 1 << 24;

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
  impl?: 'auto' | 'ts' | 'wasm';
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

function encodable(to: GgmlTypeName): boolean {
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
  let bytesRead = 0;
  const writer = new GgufFileWriter(output, layout);
  const digests: string[] = [];
  const results: ConvertedGgufTensor[] = [];
  try {
    for (let k = 0; k < plan.length; k++) {
      const pt = plan[k];
      const info = byName.get(pt.name)!;
      const r = await convertTensor(m, info, pt, writer, layout.sizes[k], im, options.impl ?? 'auto', cb.signal);
      writer.endTensor();
      digests.push(r.digest);
      results.push(r.result);
      bytesRead += info.byteLength;
      cb.onProgress?.({ done: k + 1, count: plan.length, tensor: pt.name, bytesRead, bytesTotal });
    }
    writer.finish();
    const t1 = process.hrtime.bigint();
    let verification: ConvertGgufResult['verification'];
    if (options.verify !== false) verification = await verifyWritten(writer.tempPath, output, kvs, plan, digests, cb.signal);
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

function checkCancel(signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) throw new Cancelled();
  // Let an abort (a Cancel click, a signal handler) run between slabs.
  return new Promise((res) => setImmediate(res));
}

function sqnr(rel: number): number {
  return rel > 0 ? -10 * Math.log10(rel) : Infinity;
}

async function convertTensor(
  m: ModelFile, info: TensorInfo, pt: PlannedTensor, writer: GgufFileWriter, outBytes: number,
  im: Imatrix | undefined, impl: 'auto' | 'ts' | 'wasm', signal?: AbortSignal,
): Promise<{ result: ConvertedGgufTensor; digest: string }> {
  const hash = crypto.createHash('sha256');
  const base = { name: pt.name, ne: pt.ne, from: pt.from, to: pt.to, reason: pt.reason, bytes: outBytes };
  if (pt.from === pt.to) {
    // Copied: the digest is over the bytes, which the check reads back the same way.
    const step = 1 << 26;
    for (let off = 0; off < info.byteLength; off += step) {
      await checkCancel(signal);
      const b = m.readBytes(info, off, Math.min(step, info.byteLength - off));
      hash.update(b);
      writer.write(b);
    }
    return { result: { ...base, requantized: false, relMse: 0, sqnrDb: Infinity, importance: false }, digest: hash.digest('hex') };
  }
  const ne0 = pt.ne[0];
  const rowsPerExpert = pt.ne[1] ?? 1;
  const nRows = info.numel / ne0;
  const toInfo = ggmlTypeByName(pt.to)!;
  const rowBytes = (ne0 / toInfo.blockSize) * toInfo.typeSize;
  let qw: Float32Array | undefined;
  let importance = false;
  if (im && toInfo.quantized) {
    const e = im.entries.get(pt.name);
    const nExperts = pt.ne[2] ?? 1;
    if (e) {
      if (e.length === ne0 * nExperts) { qw = e; importance = true; } else if (!/^(per_layer_)?token_embd\.weight$/.test(pt.name)) {
        // llama.cpp refuses this too: most of the model would be quantized without the imatrix.
        throw new Error(`imatrix size ${e.length} differs from tensor size ${ne0 * nExperts} for ${pt.name}`);
      }
    }
  }
  // Slabs of whole rows that never cross an expert boundary (each expert has its own importance).
  const slabRows = Math.max(1, Math.min(rowsPerExpert, Math.floor(SLAB_VALUES / ne0)));
  const bytesBuf = new Uint8Array(slabRows * rowBytes);
  const deq = new Float32Array(slabRows * ne0);
  let errSum = 0, refSum = 0;
  for (let row = 0; row < nRows;) {
    await checkCancel(signal);
    const inExpert = row % rowsPerExpert;
    const n = Math.min(slabRows, rowsPerExpert - inExpert, nRows - row);
    const x = m.readFloat32(info, row * ne0, n * ne0);
    const bytes = bytesBuf.subarray(0, n * rowBytes);
    const out = deq.subarray(0, n * ne0);
    if (pt.to === 'F16') {
      const h = new Uint16Array(bytes.buffer, bytes.byteOffset, n * ne0);
      for (let i = 0; i < h.length; i++) h[i] = f32ToF16(x[i]);
      dequantizeGgml('F16', bytes, out, n * ne0);
    } else if (pt.to === 'F32') {
      new Float32Array(bytes.buffer, bytes.byteOffset, n * ne0).set(x);
      out.set(x);
    } else {
      const expert = Math.floor(row / rowsPerExpert);
      const imp = qw ? qw.subarray(expert * ne0, (expert + 1) * ne0) : undefined;
      quantizeGgmlInto(pt.to, x, 0, bytes, 0, n * ne0, imp ? { importance: imp, rowLength: ne0, impl } : { impl });
      dequantizeGgml(pt.to, bytes, out, n * ne0);
    }
    for (let i = 0; i < out.length; i++) {
      const d = out[i] - x[i];
      errSum += d * d;
      refSum += x[i] * x[i];
    }
    hash.update(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
    writer.write(bytes);
    row += n;
  }
  const relMse = refSum > 0 ? errSum / refSum : errSum > 0 ? Infinity : 0;
  return { result: { ...base, requantized: true, relMse, sqnrDb: sqnr(relMse), importance }, digest: hash.digest('hex') };
}

/** Reopen the written file with our reader: metadata, types, shapes, and every tensor's values as the encoder produced them. */
async function verifyWritten(
  file: string, output: string, kvs: GgufKv[], plan: PlannedTensor[], digests: string[], signal?: AbortSignal,
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
    for (let k = 0; k < plan.length; k++) {
      const t = m.tensors[k], pt = plan[k], raw = h.rawTensors[k];
      if (raw.name !== pt.name || ggmlTypeByName(pt.to)!.id !== raw.type || raw.ne.join() !== pt.ne.join()) {
        fail(`tensor #${k} is ${raw.name} ${raw.type} [${raw.ne.join(', ')}], expected ${pt.name} ${pt.to} [${pt.ne.join(', ')}]`);
      }
      const hash = crypto.createHash('sha256');
      if (pt.from === pt.to) {
        const step = 1 << 26;
        for (let off = 0; off < t.byteLength; off += step) {
          await checkCancel(signal);
          hash.update(m.readBytes(t, off, Math.min(step, t.byteLength - off)));
        }
      } else {
        const step = SLAB_VALUES;
        for (let start = 0; start < t.numel; start += step) {
          await checkCancel(signal);
          const v = m.readFloat32(t, start, Math.min(step, t.numel - start));
          hash.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
        }
      }
      if (hash.digest('hex') !== digests[k]) fail(`tensor ${pt.name} does not dequantize to what the encoder produced`);
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

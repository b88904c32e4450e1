/**
 * Quantized Hugging Face checkpoints seen as their real weights: every group
 * of packed tensors (GPTQ / AWQ qweight+qzeros+scales, compressed-tensors
 * weight_packed+weight_scale, bitsandbytes int8 weight+SCB or 4-bit
 * weight+absmax+quant_state) becomes one logical tensor `<module>.weight`
 * [out, in] whose elements are the dequantized values, dtype `q:<scheme>`.
 * The parts are hidden from the tensor list (they are listed in
 * `quantizedParts` of the model's metadata count and stay readable through
 * the view). The scheme and its settings come from `quantization_config` in
 * the folder's config.json (read here with a small reader of its own), or,
 * without one, from the tensor names and shapes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FormatError, type MetadataValue, type ScalarDType, type TensorInfo } from '../types';
import { decodeToFloat32 } from '../dtypes';
import { LazyModelFile, readPartsRange, type ModelIndex } from '../lazyModelFile';
import { readJsonObject } from '../jsonFile';
import { parseTensorName } from '../naming';
import {
  dequantAwq, dequantBnb4, dequantBnbInt8, dequantGptq, dequantPackQuantized, denestAbsmax, isPackBits, type PackBits,
} from './quantizedLayouts';

export const KNOWN_QUANT_METHODS = ['gptq', 'awq', 'compressed-tensors', 'bitsandbytes'] as const;

/** The folder's config.json, when there is one: its parsed object and path. Malformed JSON is a FormatError naming it. */
export function readHfConfig(dir: string): { file: string; config: Record<string, unknown> } | undefined {
  const file = path.join(dir, 'config.json');
  if (!fs.existsSync(file)) return undefined;
  return { file, config: readJsonObject(file, 'config') };
}

/**
 * The quantization settings of a checkpoint folder: `quantization_config` in
 * config.json, else the files older exporters wrote beside it
 * (AutoGPTQ's quantize_config.json, AutoAWQ's quant_config.json).
 */
function quantizationSettings(dir: string): { file: string; qc?: Record<string, unknown> } | undefined {
  const cfg = readHfConfig(dir);
  const qc = cfg?.config.quantization_config;
  if (cfg && qc !== undefined) {
    if (typeof qc !== 'object' || qc === null || Array.isArray(qc)) throw new FormatError(cfg.file, 'quantization_config', 'is not an object');
    return { file: cfg.file, qc: qc as Record<string, unknown> };
  }
  for (const [name, method] of [['quantize_config.json', 'gptq'], ['quant_config.json', 'awq']] as const) {
    const file = path.join(dir, name);
    if (!fs.existsSync(file)) continue;
    return { file, qc: { quant_method: method, ...readJsonObject(file, 'settings') } };
  }
  return cfg ? { file: cfg.file } : undefined;
}

type Reader = (t: TensorInfo) => Uint8Array;

/**
 * Per-tensor memo: the parts of the tensor being read, decoded once into
 * typed arrays and kept while its chunks are read (only the packed parts,
 * never the float32 matrix).
 */
type Memo = <T>(key: string, make: () => T) => T;

interface View {
  parts: TensorInfo[];
  /** Elements [start, start+count) of the logical [out, in] tensor. */
  decode(read: Reader, memo: Memo, start: number, count: number): Float32Array;
}

/** Row-wise decoders read whole output rows; this cuts the requested elements out of them. */
function byRows(inF: number, rows: (o0: number, o1: number) => Float32Array, start: number, count: number): Float32Array {
  const o0 = Math.floor(start / inF), o1 = Math.ceil((start + count) / inF);
  const r = rows(o0, o1);
  const at = start - o0 * inF;
  return at === 0 && count === r.length ? r : r.slice(at, at + count);
}

function i32(b: Uint8Array): Int32Array {
  const c = b.byteOffset % 4 === 0 ? b : b.slice();
  return new Int32Array(c.buffer, c.byteOffset, c.byteLength / 4);
}

function floats(t: TensorInfo, b: Uint8Array): Float32Array {
  const out = new Float32Array(t.numel);
  decodeToFloat32(t.dtype as ScalarDType, b, t.numel, out);
  return out;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

export interface QuantizedIndex {
  index: ModelIndex;
  views: Map<string, View>;
  scheme: string;
}

/**
 * Finds packed groups among `ix.tensors` and returns the index with logical
 * tensors in their place, or undefined when the checkpoint is not quantized.
 */
export function quantizedIndex(ix: ModelIndex, dir: string): QuantizedIndex | undefined {
  const byName = new Map(ix.tensors.map((t) => [t.name, t]));
  const has = (n: string) => byName.has(n);
  const packedLike = ix.tensors.some((t) => /\.(?:qweight|weight_packed|SCB|weight\.absmax)$/.test(t.name));
  // compressed-tensors' unpacked formats (int8 / fp8 `weight` + `weight_scale`) are told apart by their config alone;
  // other FP8 exporters use the same names, and a checkpoint that only might be one opens as it is if its config is unreadable.
  let unpackedCt = false;
  if (!packedLike) {
    if (!ix.tensors.some((t) => t.name.endsWith('.weight_scale'))) return undefined;
    try { unpackedCt = quantizationSettings(dir)?.qc?.quant_method === 'compressed-tensors'; } catch { return undefined; }
    if (!unpackedCt) return undefined;
  }
  const settings = quantizationSettings(dir);
  const cfgFile = settings?.file;
  const qc = settings?.qc;
  const where = cfgFile ?? path.join(dir, 'config.json');
  let method = typeof qc?.quant_method === 'string' ? qc.quant_method : undefined;
  if (qc && method === undefined) {
    if (qc.load_in_4bit === true || qc.load_in_8bit === true) method = 'bitsandbytes';
    else throw new FormatError(where, 'quantization_config.quant_method', 'missing');
  }
  if (method !== undefined && !(KNOWN_QUANT_METHODS as readonly string[]).includes(method)) {
    throw new FormatError(where, 'quantization_config.quant_method', `unknown method ${JSON.stringify(method)} (QuantScope reads ${KNOWN_QUANT_METHODS.join(', ')})`);
  }
  const views = new Map<string, View>();
  const logical = new Map<string, TensorInfo>();
  const hidden = new Set<string>();
  const need = (n: string, file: string): TensorInfo => {
    const t = byName.get(n);
    if (!t) throw new FormatError(file, `tensor ${n}`, 'missing: the other parts of its quantized group are present');
    return t;
  };
  const add = (prefix: string, dtype: string, out: number, inF: number, parts: TensorInfo[], v: Omit<View, 'parts'>) => {
    const main = parts[0];
    const name = `${prefix}.weight`;
    const bytes = parts.reduce((a, p) => a + p.byteLength, 0);
    logical.set(main.name, {
      name, dtype: `q:${dtype}`, shape: [out, inF], numel: out * inF, byteLength: bytes, location: main.location, source: 'tensor',
      layer: { consumers: [], ...parseTensorName(name), outputChannelAxis: 0 },
    });
    for (const p of parts) hidden.add(p.name);
    views.set(name, { parts, ...v });
  };
  const labels = new Set<string>();

  for (const t of ix.tensors) {
    const file = (t.location as { file?: string }).file ?? ix.path;
    // GPTQ and AWQ share part names; the config (or g_idx) tells them apart.
    if (t.name.endsWith('.qweight')) {
      const p = t.name.slice(0, -'.qweight'.length);
      const qz = need(`${p}.qzeros`, file), sc = need(`${p}.scales`, file);
      const isAwq = method === 'awq' || (method === undefined && !has(`${p}.g_idx`));
      if (t.dtype !== 'i32' || qz.dtype !== 'i32' || t.shape.length !== 2 || sc.shape.length !== 2) throw new FormatError(file, `tensor ${t.name}`, 'qweight and qzeros must be int32 and 2-D');
      if (isAwq) {
        const version = typeof qc?.version === 'string' ? qc.version.toLowerCase() : 'gemm';
        const bits = num(qc?.bits) ?? num(qc?.w_bit) ?? 4;
        if (version !== 'gemm') throw new FormatError(where, 'quantization_config.version', `AWQ ${JSON.stringify(qc?.version)} layout is not read (only GEMM)`);
        if (bits !== 4) throw new FormatError(where, 'quantization_config.bits', `AWQ GEMM with ${bits} bits is not read (only 4)`);
        const inF = t.shape[0], out = t.shape[1] * 8, groups = sc.shape[0];
        if (sc.shape[1] !== out || inF % groups !== 0 || qz.shape[0] !== groups || qz.shape[1] !== t.shape[1]) {
          throw new FormatError(file, `tensor ${t.name}`, `AWQ parts do not fit: qweight [${t.shape}], qzeros [${qz.shape}], scales [${sc.shape}]`);
        }
        const gs = inF / groups;
        labels.add(`AWQ GEMM 4-bit g${gs}`);
        add(p, `awq4-g${gs}`, out, inF, [t, qz, sc], {
          decode: (read, memo, start, count) => byRows(inF, (o0, o1) => dequantAwq(
            memo('q', () => i32(read(t))), memo('z', () => i32(read(qz))), memo('s', () => floats(sc, read(sc))), out, inF, gs, o0, o1), start, count),
        });
      } else {
        const gi = byName.get(`${p}.g_idx`);
        const out = t.shape[1], groups = sc.shape[0];
        // With g_idx the shapes give the bits (GPTQModel's `dynamic` may override the config's per module).
        const cfgBits = num(qc?.bits);
        const inF = gi ? gi.numel : cfgBits ? (t.shape[0] * 32) / cfgBits : NaN;
        const bits = gi ? (t.shape[0] * 32) / inF : cfgBits ?? NaN;
        if (!isPackBits(bits)) throw new FormatError(cfgFile ?? file, `tensor ${t.name}`, `GPTQ with ${bits} bits is not read (2, 4 and 8 are)`);
        if (!Number.isInteger(inF) || t.shape[0] * (32 / bits) !== inF || sc.shape[1] !== out || qz.shape[0] !== groups || qz.shape[1] * (32 / bits) !== out) {
          throw new FormatError(file, `tensor ${t.name}`, `GPTQ ${bits}-bit parts do not fit: qweight [${t.shape}], qzeros [${qz.shape}], scales [${sc.shape}]${gi ? `, g_idx [${gi.shape}]` : ''}`);
        }
        const fmt = typeof qc?.checkpoint_format === 'string' ? qc.checkpoint_format : 'gptq';
        if (fmt !== 'gptq' && fmt !== 'gptq_v2') throw new FormatError(where, 'quantization_config.checkpoint_format', `${JSON.stringify(fmt)} is not read (gptq, gptq_v2)`);
        const v1 = fmt === 'gptq';
        const gs = inF / groups;
        labels.add(`GPTQ ${bits}-bit g${gs}${qc?.desc_act === true ? ' act-order' : ''} (${v1 ? 'v1: zero − 1 stored' : 'v2'})`);
        add(p, `gptq${bits}`, out, inF, gi ? [t, qz, sc, gi] : [t, qz, sc], {
          decode: (read, memo, start, count) => {
            const g = memo('g', () => {
              const x = gi ? i32(read(gi)) : Int32Array.from({ length: inF }, (_, i) => Math.floor(i / gs));
              for (let i = 0; i < inF; i++) if (!(x[i] >= 0 && x[i] < groups)) throw new FormatError(file, `tensor ${p}.g_idx`, `entry ${i} is ${x[i]}, outside 0..${groups - 1}`);
              return x;
            });
            return byRows(inF, (o0, o1) => dequantGptq(
              memo('q', () => i32(read(t))), memo('z', () => i32(read(qz))), memo('s', () => floats(sc, read(sc))), g, out, inF, bits, v1, o0, o1), start, count);
          },
        });
      }
      continue;
    }
    if (t.name.endsWith('.weight_packed')) {
      const p = t.name.slice(0, -'.weight_packed'.length);
      const sc = need(`${p}.weight_scale`, file), ws = need(`${p}.weight_shape`, file);
      const zp = byName.get(`${p}.weight_zero_point`), gi = byName.get(`${p}.weight_g_idx`);
      if (qc && qc.format !== undefined && qc.format !== 'pack-quantized') {
        throw new FormatError(where, 'quantization_config.format', `${JSON.stringify(qc.format)} stores weight_packed? only "pack-quantized" is read`);
      }
      if (ws.numel !== 2) throw new FormatError(file, `tensor ${ws.name}`, `has ${ws.numel} elements, not 2`);
      const dims = new Float32Array(2);
      decodeToFloat32(ws.dtype as ScalarDType, readPart(ix, ws), 2, dims);
      const out = dims[0], inF = dims[1];
      if (t.dtype !== 'i32' || t.shape.length !== 2 || t.shape[0] !== out || sc.shape.length !== 2 || sc.shape[0] !== out) {
        throw new FormatError(file, `tensor ${t.name}`, `pack-quantized parts do not fit weight_shape [${out}, ${inF}]: weight_packed [${t.shape}], weight_scale [${sc.shape}]`);
      }
      const bits = ([8, 4, 2] as PackBits[]).find((b) => Math.ceil(inF / (32 / b)) === t.shape[1]);
      if (!bits) throw new FormatError(file, `tensor ${t.name}`, `${t.shape[1]} words per row do not hold ${inF} codes of 2, 4 or 8 bits`);
      const groups = sc.shape[1];
      const gs = inF / groups;
      if (!gi && !Number.isInteger(gs)) throw new FormatError(file, `tensor ${sc.name}`, `${groups} groups do not divide ${inF} input columns`);
      if (zp && (zp.dtype !== 'i32' || zp.shape[0] !== Math.ceil(out / (32 / bits)) || zp.shape[1] !== groups)) {
        throw new FormatError(file, `tensor ${zp.name}`, `shape [${zp.shape}] is not the packed [${Math.ceil(out / (32 / bits))}, ${groups}] of ${bits}-bit zero points`);
      }
      labels.add(`compressed-tensors pack-quantized W${bits}A16 ${groups === 1 ? 'per channel' : `g${gs}`}${zp ? ' asym' : ' sym'}`);
      const parts = [t, sc, ws, ...(zp ? [zp] : []), ...(gi ? [gi] : [])];
      add(p, `ct${bits}`, out, inF, parts, {
        decode: (read, memo, start, count) => byRows(inF, (o0, o1) => dequantPackQuantized(
          memo('q', () => i32(read(t))), memo('s', () => floats(sc, read(sc))), zp ? memo('z', () => i32(read(zp))) : undefined, gi ? memo('g', () => i32(read(gi))) : undefined,
          out, inF, groups, gs, bits, o0, o1), start, count),
      });
      continue;
    }
    if (unpackedCt && t.name.endsWith('.weight_scale') && has(t.name.slice(0, -'_scale'.length))) {
      const p = t.name.slice(0, -'.weight_scale'.length);
      const w = byName.get(`${p}.weight`)!;
      if (w.dtype !== 'i8' && !w.dtype.startsWith('f8_')) continue; // a float weight beside a scale: not quantized here
      if (w.shape.length !== 2) throw new FormatError(file, `tensor ${w.name}`, `quantized weight of shape [${w.shape}] is not 2-D`);
      const [out, inF] = w.shape;
      const zp = byName.get(`${p}.weight_zero_point`), gi = byName.get(`${p}.weight_g_idx`);
      const fmt = typeof qc?.format === 'string' ? qc.format : 'naive-quantized';
      if (!['naive-quantized', 'int-quantized', 'float-quantized', 'mixed-precision'].includes(fmt)) {
        throw new FormatError(where, 'quantization_config.format', `${JSON.stringify(fmt)} with an unpacked ${w.dtype} weight is not read`);
      }
      // Scale per tensor, per output channel, per group of input columns, or per [b0, b1] block.
      const groupsOf = (shape: number[], numel: number): { rows: number; cols: number } => {
        if (numel === 1) return { rows: 1, cols: 1 };
        const s2 = shape.length === 1 ? [shape[0], 1] : shape;
        if (s2.length === 2 && (s2[0] === out || s2[0] === 1) && inF % s2[1] === 0) return { rows: s2[0], cols: s2[1] };
        const bs = (Object.values((qc?.config_groups ?? {}) as Record<string, { weights?: { block_structure?: unknown } }>).map((g) => g.weights?.block_structure).find(Array.isArray)) as number[] | undefined;
        if (bs && s2.length === 2 && s2[0] === Math.ceil(out / bs[0]) && s2[1] === Math.ceil(inF / bs[1])) return { rows: -bs[0], cols: -bs[1] };
        throw new FormatError(file, `tensor ${t.name}`, `shape [${shape}] is no tensor, channel, group or block layout of the [${out}, ${inF}] weight`);
      };
      const sg = groupsOf(t.shape, t.numel);
      if (zp && (zp.numel !== t.numel)) throw new FormatError(file, `tensor ${zp.name}`, `has ${zp.numel} elements, its weight_scale ${t.numel}`);
      const kind = w.dtype === 'i8' ? 'int8' : 'fp8';
      labels.add(`compressed-tensors ${fmt} ${kind} ${sg.rows < 0 ? `block ${-sg.rows}×${-sg.cols}` : sg.cols === 1 ? (sg.rows === 1 ? 'per tensor' : 'per channel') : `g${inF / sg.cols}`}${zp ? ' with zero points' : ''}`);
      add(p, `ct-${kind}`, out, inF, [w, t, ...(zp ? [zp] : []), ...(gi ? [gi] : [])], {
        decode: (read, memo, start, count) => {
          const q = memo('q', () => floats(w, read(w)));
          const s = memo('s', () => floats(t, read(t)));
          const z = zp ? memo('z', () => floats(zp, read(zp))) : undefined;
          const g = gi ? memo('g', () => i32(read(gi))) : undefined;
          const res = new Float32Array(count);
          for (let n = 0; n < count; n++) {
            const k = start + n, o = Math.floor(k / inF), i = k % inF;
            let at: number;
            if (sg.rows < 0) at = Math.floor(o / -sg.rows) * Math.ceil(inF / -sg.cols) + Math.floor(i / -sg.cols);
            else at = (sg.rows === 1 ? 0 : o * sg.cols) + (g ? g[i] : Math.floor(i / (inF / sg.cols)));
            res[n] = Math.fround((q[k] - (z ? z[at] : 0)) * s[at]);
          }
          return res;
        },
      });
      continue;
    }
    if (t.name.endsWith('.SCB')) {
      const p = t.name.slice(0, -'.SCB'.length);
      const w = need(`${p}.weight`, file);
      if (w.dtype !== 'i8' || w.shape.length !== 2 || t.numel !== w.shape[0]) throw new FormatError(file, `tensor ${w.name}`, `bitsandbytes int8 weight must be int8 [out, in] with SCB [out]; got ${w.dtype} [${w.shape}] and SCB [${t.shape}]`);
      const out = w.shape[0], inF = w.shape[1];
      const extra = byName.get(`${p}.weight_format`);
      labels.add('bitsandbytes LLM.int8');
      add(p, 'bnb-int8', out, inF, extra ? [w, t, extra] : [w, t], {
        decode: (read, memo, start, count) => {
          const b = memo('q', () => read(w));
          return dequantBnbInt8(new Int8Array(b.buffer, b.byteOffset, b.byteLength), memo('s', () => floats(t, read(t))), inF, start, count);
        },
      });
      continue;
    }
    if (t.name.endsWith('.weight.absmax')) {
      const p = t.name.slice(0, -'.weight.absmax'.length);
      const w = need(`${p}.weight`, file), qm = need(`${p}.weight.quant_map`, file);
      const qsName = [`${p}.weight.quant_state.bitsandbytes__nf4`, `${p}.weight.quant_state.bitsandbytes__fp4`].find(has);
      if (!qsName) throw new FormatError(file, `tensor ${p}.weight.quant_state.bitsandbytes__nf4`, 'missing: the other parts of its 4-bit group are present');
      const qs = byName.get(qsName)!;
      let st: Record<string, unknown>;
      try { st = JSON.parse(new TextDecoder().decode(readPart(ix, qs))) as Record<string, unknown>; } catch (e) {
        throw new FormatError(file, `tensor ${qsName}`, `not the JSON bitsandbytes writes: ${(e as Error).message}`);
      }
      const shape = Array.isArray(st.shape) ? (st.shape as number[]) : [];
      const blocksize = num(st.blocksize);
      if (shape.length !== 2 || !blocksize || qm.numel !== 16) throw new FormatError(file, `tensor ${qsName}`, `needs a 2-D shape, a blocksize and a 16-entry quant_map; got shape ${JSON.stringify(st.shape)}, blocksize ${String(st.blocksize)}`);
      const [out, inF] = shape;
      const n = out * inF;
      if (w.byteLength !== Math.ceil(n / 2) || t.numel !== Math.ceil(n / blocksize)) {
        throw new FormatError(file, `tensor ${w.name}`, `${w.byteLength} packed bytes and ${t.numel} absmax for shape [${shape}] in blocks of ${blocksize}`);
      }
      const nested = st.nested_offset !== undefined;
      const nAbs = nested ? need(`${p}.weight.nested_absmax`, file) : undefined;
      const nMap = nested ? need(`${p}.weight.nested_quant_map`, file) : undefined;
      const nBs = num(st.nested_blocksize) ?? 256;
      const offset = num(st.nested_offset) ?? 0;
      const qt = String(st.quant_type ?? qsName.slice(qsName.lastIndexOf('__') + 2));
      labels.add(`bitsandbytes ${qt} blocksize ${blocksize}${nested ? ' double-quant' : ''}`);
      const absmax = (read: Reader, memo: Memo): Float32Array => memo('a', () => nested
        ? denestAbsmax(read(t), floats(nMap!, read(nMap!)), floats(nAbs!, read(nAbs!)), nBs, offset)
        : floats(t, read(t)));
      const parts = [w, t, qm, qs, ...(nested ? [nAbs!, nMap!] : [])];
      add(p, `bnb-${qt}`, out, inF, parts, {
        decode: (read, memo, start, count) => dequantBnb4(memo('q', () => read(w)), absmax(read, memo), memo('m', () => floats(qm, read(qm))), blocksize, start, count),
      });
      continue;
    }
  }
  if (views.size === 0) return undefined;
  const tensors: TensorInfo[] = [];
  for (const t of ix.tensors) {
    const l = logical.get(t.name);
    if (l) tensors.push(l);
    else if (!hidden.has(t.name)) tensors.push(t);
  }
  const scheme = `${[...labels].join('; ')}${qc ? '' : cfgFile ? ' (no quantization_config: read from the tensor names)' : ' (no config.json: read from the tensor names)'}`;
  const metadata: Record<string, MetadataValue> = { ...ix.metadata, 'quantization.scheme': scheme, 'quantization.packed_tensors': hidden.size };
  return { index: { ...ix, tensors, metadata, formatVersion: `${ix.formatVersion}, ${scheme}` }, views, scheme };
}

function readPart(ix: ModelIndex, t: TensorInfo): Uint8Array {
  const m = new LazyModelFile({ ...ix, tensors: [t] });
  try { return m.readBytes(t); } finally { m.close(); }
}

/** A safetensors model whose quantized groups read as dequantized float32 matrices. */
export class DequantizedModelFile extends LazyModelFile {
  readonly quantization: string;
  private readonly views: Map<string, View>;
  /** The packed parts of the tensor last read, decoded: statistics read a tensor chunk by chunk, in order. */
  private memo?: { name: string; values: Map<string, unknown> };

  constructor(q: QuantizedIndex) {
    super(q.index);
    this.views = q.views;
    this.quantization = q.scheme;
  }

  /** The packed tensors behind a logical one (empty for ordinary tensors). */
  partsOf(name: string): readonly TensorInfo[] {
    return this.views.get(name)?.parts ?? [];
  }

  override readBytes(t: TensorInfo, offset = 0, length?: number): Uint8Array {
    const v = this.views.get(t.name);
    if (!v || !t.dtype.startsWith('q:')) return super.readBytes(t, offset, length);
    return readPartsRange(this.path, t, v.parts, offset, length, (p, o, n) => super.readBytes(p, o, n));
  }

  override readFloat32(t: TensorInfo, start = 0, count?: number): Float32Array {
    const v = this.views.get(t.name);
    if (!v || !t.dtype.startsWith('q:')) return super.readFloat32(t, start, count);
    const n = count ?? t.numel - start;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(n) || start < 0 || n < 0 || start + n > t.numel) {
      throw new FormatError(this.path, `tensor ${t.name}`, `element range ${start}+${n} outside its ${t.numel} elements`);
    }
    if (n === 0) return new Float32Array(0);
    if (this.memo?.name !== t.name) this.memo = { name: t.name, values: new Map() };
    const values = this.memo.values;
    const memo: Memo = <T>(key: string, make: () => T): T => {
      if (!values.has(key)) values.set(key, make());
      return values.get(key) as T;
    };
    return v.decode((p) => super.readBytes(p), memo, start, n);
  }

  override close(): void {
    this.memo = undefined;
    super.close();
  }
}

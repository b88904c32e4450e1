/**
 * Calibration data: the one input layer for every feature that runs a model
 * (activation ranges, output-space sensitivity, experiments, verification).
 *
 * Sources, by path:
 * - `.npy`: one array for the model's only input (or the input its file stem names, with every other input given by `fixed`);
 * - `.npz`: arrays keyed by the model's input names (a zip of .npy files, read with fflate; sizes bounded against zip bombs);
 * - `.json`: `{ "<input>": nested arrays }` or a list of such objects (tiny cases);
 * - `.txt` for byte-level models: UTF-8 bytes as token ids, in windows;
 * - a folder of any of these, read in name order.
 * No path: deterministic synthetic inputs from the declared shapes and types, always labelled `synthetic`.
 *
 * A file whose arrays all carry a leading axis the model declares symbolic is
 * cut into samples of batch 1 along it; otherwise the file is one sample.
 * `.npy` object arrays (pickles) are refused, never unpickled.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { unzipSync } from 'fflate';
import { FormatError } from '../formats/types';
import { type ImageOptions, imageHeaderSize, imageTensor, isImageFile, planImageInput, resolveSize } from './calibImages';
import { loadTokenizer, tokenizeText } from './calibText';
import type { DType } from '../formats/types';

/** Element types the data layer feeds (onnxruntime-node's names). */
export type FeedDType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'bool';
export type FeedData = Float32Array | Float64Array | Uint16Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint32Array | BigUint64Array;

export interface FeedTensor {
  dtype: FeedDType;
  dims: number[];
  data: FeedData;
}
/** One sample: a tensor per model input. */
export type Sample = Record<string, FeedTensor>;

export interface CalibSet {
  samples: Sample[];
  /** True when the data was generated from the declared shapes (no user data): every result says so. */
  synthetic: boolean;
  /** What the data came from (a path, or "synthetic (seed 1)"). */
  source: string;
  /** sha256 over every sample's names, types, dims and bytes: part of every cache key. */
  hash: string;
}

/** A model input as the reader declares it. */
export interface InputSpec {
  name: string;
  dtype?: DType;
  shape?: (number | string)[];
}

export interface CalibOptions {
  /** Keep at most this many samples (synthetic: generate this many; default 8). */
  samples?: number;
  /** Synthetic: value of a symbolic dimension by its name (`p2o.DynamicDimension.1`), or per input as a whole shape. */
  dims?: Record<string, number>;
  shapes?: Record<string, number[]>;
  /** Synthetic integer inputs are uniform in [0, intHigh[input]) (default 2); e.g. the vocabulary size for token ids. */
  intHigh?: Record<string, number>;
  /** Inputs fed the same value in every sample (e.g. Silero's `sr`: 16000), for synthetic data and data files alike. */
  fixed?: Record<string, FeedTensor>;
  seed?: number;
  /** Largest uncompressed array accepted, bytes (default 1 GiB). */
  maxBytes?: number;
  /** `.txt` data: tokens per window (default: the input's fixed sequence length, else 64); windows do not overlap. */
  window?: number;
  /** `.txt` data: the model's tokenizer.json; without it the text's UTF-8 bytes are the ids (byte-level models). */
  tokenizer?: string;
  /** PNG/JPEG data: size, normalisation, layout and channel order. */
  image?: ImageOptions;
}

/** Symbolic dimensions default to 1 for the leading (batch) axis and to this elsewhere. */
export const DEFAULT_SYMBOLIC_DIM = 32;
const DEFAULT_MAX_BYTES = 1 << 30;

const DTYPE_OF: Partial<Record<string, FeedDType>> = {
  f32: 'float32', f64: 'float64', f16: 'float16', i64: 'int64', i32: 'int32', i16: 'int16', i8: 'int8', u8: 'uint8',
  u16: 'uint16', u32: 'uint32', u64: 'uint64', bool: 'bool',
};
/** The feed type of a declared input type; undefined when the data layer cannot feed it (strings, bf16, ...). */
export function feedDType(d: DType | undefined): FeedDType | undefined {
  return d ? DTYPE_OF[d] : undefined;
}

const BYTES: Record<FeedDType, number> = {
  float32: 4, float64: 8, float16: 2, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, uint16: 2, uint32: 4, uint64: 8, bool: 1,
};

function allocate(dtype: FeedDType, n: number): FeedData {
  switch (dtype) {
    case 'float32': return new Float32Array(n);
    case 'float64': return new Float64Array(n);
    case 'float16': case 'uint16': return new Uint16Array(n);
    case 'int64': return new BigInt64Array(n);
    case 'uint64': return new BigUint64Array(n);
    case 'int32': return new Int32Array(n);
    case 'uint32': return new Uint32Array(n);
    case 'int16': return new Int16Array(n);
    case 'int8': return new Int8Array(n);
    case 'uint8': case 'bool': return new Uint8Array(n);
  }
}

function numelOf(dims: readonly number[]): number {
  return dims.reduce((a, b) => a * b, 1);
}

// ------------------------------------------------------------------ .npy

/** numpy descr kind+size → feed type. */
const NPY_TYPES: Record<string, FeedDType> = {
  f4: 'float32', f8: 'float64', f2: 'float16', i8: 'int64', i4: 'int32', i2: 'int16', i1: 'int8', u1: 'uint8',
  u2: 'uint16', u4: 'uint32', u8: 'uint64', b1: 'bool',
};

/**
 * Parse one .npy array (format versions 1-3). Object arrays, structured
 * dtypes and anything but plain numbers are refused with the reason.
 */
export function parseNpy(bytes: Uint8Array, file: string): FeedTensor {
  const magic = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
  if (bytes.length < 10 || magic.some((b, i) => bytes[i] !== b)) throw new FormatError(file, 'header', 'not a .npy array (no \\x93NUMPY magic)');
  const major = bytes[6];
  if (major < 1 || major > 3) throw new FormatError(file, 'header', `unsupported .npy format version ${major}.${bytes[7]}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const hlen = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const hstart = major === 1 ? 10 : 12;
  if (hstart + hlen > bytes.length) throw new FormatError(file, 'header', `header of ${hlen} bytes runs past the end of the file`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(hstart, hstart + hlen));
  const descrM = /'descr'\s*:\s*(?:'([^']*)'|(\[))/.exec(header);
  const fortranM = /'fortran_order'\s*:\s*(True|False)/.exec(header);
  const shapeM = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descrM || !fortranM || !shapeM) throw new FormatError(file, 'header', `not a .npy header: ${header.trim().slice(0, 120)}`);
  if (descrM[2]) throw new FormatError(file, 'dtype', 'structured (record) arrays are not calibration data');
  const descr = descrM[1];
  if (descr.includes('O')) throw new FormatError(file, 'dtype', "object array ('O'): refused, pickled Python objects are never loaded; save a numeric array");
  const order = descr[0];
  const code = descr.slice(order === '<' || order === '>' || order === '|' || order === '=' ? 1 : 0);
  const dtype = NPY_TYPES[code];
  if (!dtype) throw new FormatError(file, 'dtype', `numpy dtype '${descr}' is not supported (numbers and bools only)`);
  const dims = shapeM[1].split(',').map((s) => s.trim()).filter((s) => s.length).map((s) => {
    const n = Number(s.replace(/L$/, ''));
    if (!Number.isSafeInteger(n) || n < 0) throw new FormatError(file, 'shape', `bad dimension '${s}'`);
    return n;
  });
  const n = numelOf(dims);
  const size = BYTES[dtype];
  const start = hstart + hlen;
  if (bytes.length - start !== n * size) {
    throw new FormatError(file, 'data', `shape (${dims.join(', ')}) of ${descr} needs ${n * size} bytes, the file holds ${bytes.length - start}`);
  }
  // Copy into an aligned buffer of our own; swap bytes for big-endian data.
  const raw = new Uint8Array(n * size); // never Buffer.slice: that is a view into a shared pool
  raw.set(bytes.subarray(start, start + n * size));
  if (order === '>' && size > 1) {
    for (let i = 0; i < raw.length; i += size) raw.subarray(i, i + size).reverse();
  }
  let data = viewAs(dtype, raw.buffer, n);
  if (fortranM[1] === 'True' && dims.length > 1) data = fortranToC(data, dims, dtype);
  return { dtype, dims, data };
}

function viewAs(dtype: FeedDType, buf: ArrayBufferLike, n: number): FeedData {
  switch (dtype) {
    case 'float32': return new Float32Array(buf, 0, n);
    case 'float64': return new Float64Array(buf, 0, n);
    case 'float16': case 'uint16': return new Uint16Array(buf, 0, n);
    case 'int64': return new BigInt64Array(buf, 0, n);
    case 'uint64': return new BigUint64Array(buf, 0, n);
    case 'int32': return new Int32Array(buf, 0, n);
    case 'uint32': return new Uint32Array(buf, 0, n);
    case 'int16': return new Int16Array(buf, 0, n);
    case 'int8': return new Int8Array(buf, 0, n);
    case 'uint8': case 'bool': return new Uint8Array(buf, 0, n);
  }
}

/** Column-major (fortran_order) to row-major. */
function fortranToC(src: FeedData, dims: number[], dtype: FeedDType): FeedData {
  const n = numelOf(dims);
  const out = allocate(dtype, n) as unknown as { [i: number]: number | bigint };
  const s = src as unknown as { [i: number]: number | bigint };
  const r = dims.length;
  const idx = new Array<number>(r).fill(0);
  for (let c = 0; c < n; c++) {
    // c walks row-major order; its column-major offset is Σ idx[k]·Π_{j<k} dims[j].
    let f = 0;
    for (let k = r - 1; k >= 0; k--) f = f * dims[k] + idx[k];
    out[c] = s[f];
    for (let k = r - 1; k >= 0; k--) { if (++idx[k] < dims[k]) break; idx[k] = 0; }
  }
  return out as unknown as FeedData;
}

/** Write an array as .npy (version 1.0): what tests and `--save-calib` produce. */
export function encodeNpy(t: FeedTensor): Uint8Array {
  const code = Object.entries(NPY_TYPES).find(([, v]) => v === t.dtype)![0];
  const descr = (BYTES[t.dtype] === 1 ? '|' : '<') + code;
  const shape = t.dims.length === 1 ? `(${t.dims[0]},)` : `(${t.dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(pad % 64) + '\n';
  const body = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const out = new Uint8Array(10 + header.length + body.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  out[8] = header.length & 0xff;
  out[9] = header.length >> 8;
  out.set(new TextEncoder().encode(header), 10);
  out.set(body, 10 + header.length);
  return out;
}

// ------------------------------------------------------------------ .npz

/** Arrays of an .npz archive by name (".npy" stripped). Entry sizes are checked before anything is inflated. */
export function parseNpz(bytes: Uint8Array, file: string, maxBytes = DEFAULT_MAX_BYTES): Map<string, FeedTensor> {
  let total = 0;
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes, {
      filter: (f) => {
        if (!f.name.endsWith('.npy')) throw new FormatError(file, f.name, 'an .npz holds only .npy arrays (pickled entries are refused)');
        // A zip bomb declares small and inflates large, or declares a huge size: bound the declared size, and the ratio.
        if (f.originalSize > maxBytes) throw new FormatError(file, f.name, `array of ${f.originalSize} bytes exceeds the ${maxBytes}-byte limit`);
        total += f.originalSize;
        if (total > maxBytes) throw new FormatError(file, f.name, `arrays total more than the ${maxBytes}-byte limit`);
        if (f.compression !== 0 && f.originalSize > 1024 * 1024 && f.originalSize / Math.max(1, f.size) > 1000) {
          throw new FormatError(file, f.name, `compression ratio ${(f.originalSize / Math.max(1, f.size)).toFixed(0)}:1 looks like a zip bomb`);
        }
        return true;
      },
    });
  } catch (e) {
    if (e instanceof FormatError) throw e;
    throw new FormatError(file, 'archive', `not a readable .npz (zip): ${e instanceof Error ? e.message : String(e)}`);
  }
  const out = new Map<string, FeedTensor>();
  for (const [name, data] of Object.entries(entries)) out.set(name.slice(0, -4), parseNpy(data, `${file}:${name}`));
  return out;
}

// ------------------------------------------------------------------ JSON

function jsonArray(v: unknown, dtype: FeedDType, where: string): FeedTensor {
  const dims: number[] = [];
  let cur: unknown = v;
  while (Array.isArray(cur)) { dims.push(cur.length); cur = cur[0]; }
  const flat: unknown[] = dims.length ? (v as unknown[]).flat(dims.length - 1) : [v];
  if (flat.length !== numelOf(dims)) throw new Error(`${where}: ragged nested arrays (not a rectangular tensor)`);
  const data = allocate(dtype, flat.length);
  flat.forEach((x, i) => {
    if (typeof x !== 'number' && typeof x !== 'boolean') throw new Error(`${where}: element ${i} is not a number`);
    if (data instanceof BigInt64Array || data instanceof BigUint64Array) {
      if (!Number.isInteger(x)) throw new Error(`${where}: element ${i} (${String(x)}) is not an integer for ${dtype}`);
      data[i] = BigInt(x as number);
    } else if (dtype === 'float16') {
      throw new Error(`${where}: float16 inputs need .npy data`);
    } else {
      data[i] = Number(x);
    }
  });
  return { dtype, dims, data };
}

// ------------------------------------------------------------------ matching to the model

function describe(dims: readonly (number | string)[]): string {
  return `[${dims.join(', ')}]`;
}

/** Check one array against its input; returns how many samples it can be cut into along axis 0 (0 = not cuttable). */
function checkArray(t: FeedTensor, spec: InputSpec, file: string): number {
  const want = feedDType(spec.dtype);
  if (want && t.dtype !== want) {
    throw new FormatError(file, `input '${spec.name}'`, `dtype ${t.dtype}, the model expects ${want} (convert it, e.g. numpy .astype)`);
  }
  const shape = spec.shape;
  if (!shape) return t.dims.length ? t.dims[0] : 0;
  if (t.dims.length !== shape.length) {
    throw new FormatError(file, `input '${spec.name}'`, `shape ${describe(t.dims)} has rank ${t.dims.length}, the model expects ${describe(shape)}`);
  }
  shape.forEach((d, i) => {
    if (typeof d === 'number' && d > 0 && t.dims[i] !== d) {
      throw new FormatError(file, `input '${spec.name}'`, `shape ${describe(t.dims)} differs from the model's ${describe(shape)} at axis ${i}`);
    }
  });
  return shape.length && typeof shape[0] !== 'number' ? t.dims[0] : 0;
}

function sliceAxis0(t: FeedTensor, i: number): FeedTensor {
  const per = numelOf(t.dims.slice(1));
  return { dtype: t.dtype, dims: [1, ...t.dims.slice(1)], data: t.data.slice(i * per, (i + 1) * per) as FeedData };
}

/** Arrays of one file (by input name) → samples: cut along axis 0 when every array's leading axis is symbolic and of equal length. */
function toSamples(arrays: Map<string, FeedTensor>, inputs: InputSpec[], file: string, fixed: Record<string, FeedTensor>): Sample[] {
  const known = new Set(inputs.map((i) => i.name));
  for (const k of arrays.keys()) {
    if (!known.has(k)) throw new FormatError(file, `array '${k}'`, `names no model input (inputs: ${inputs.map((i) => i.name).join(', ')})`);
  }
  const counts: number[] = [];
  for (const spec of inputs) {
    const t = arrays.get(spec.name);
    if (!t) {
      if (fixed[spec.name]) continue;
      throw new FormatError(file, `input '${spec.name}'`, `missing (the file has: ${[...arrays.keys()].join(', ') || 'nothing'})`);
    }
    counts.push(checkArray(t, spec, file));
  }
  const k = counts[0] ?? 0;
  const cut = k > 1 && counts.every((c) => c === k);
  if (!cut) return [{ ...fixed, ...Object.fromEntries(arrays) }];
  const out: Sample[] = [];
  for (let i = 0; i < k; i++) {
    const s: Sample = { ...fixed };
    for (const [name, t] of arrays) s[name] = sliceAxis0(t, i);
    out.push(s);
  }
  return out;
}

function readFileSamples(file: string, inputs: InputSpec[], opts: CalibOptions): Sample[] {
  const fixed = opts.fixed ?? {};
  const max = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  const size = fs.statSync(file).size;
  const ext = path.extname(file).toLowerCase();
  if (ext === '.npy') {
    if (size > max) throw new FormatError(file, 'size', `${size} bytes exceeds the ${max}-byte limit`);
    const stem = path.basename(file, ext);
    const free = inputs.filter((i) => !fixed[i.name]);
    const target = inputs.find((i) => i.name === stem) ?? (free.length === 1 ? free[0] : undefined);
    if (!target) {
      throw new FormatError(file, 'inputs', `the model has ${inputs.length} inputs (${inputs.map((i) => i.name).join(', ')}): use an .npz with one array per input, or name the .npy after one`);
    }
    return toSamples(new Map([[target.name, parseNpy(fs.readFileSync(file), file)]]), inputs, file, fixed);
  }
  if (ext === '.npz') return toSamples(parseNpz(fs.readFileSync(file), file, max), inputs, file, fixed);
  if (ext === '.txt') return textSamples(file, inputs, opts);
  if (isImageFile(file)) return imageSamples([file], inputs, opts);
  if (ext === '.json') {
    if (size > 64 * 1024 * 1024) throw new FormatError(file, 'size', 'JSON calibration data is for tiny cases (over 64 MiB); use .npy/.npz');
    let v: unknown;
    try { v = JSON.parse(fs.readFileSync(file, 'utf8')); } catch (e) { throw new FormatError(file, 'JSON', e instanceof Error ? e.message : String(e)); }
    const list = Array.isArray(v) ? v : [v];
    return list.flatMap((obj, si) => {
      if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new FormatError(file, `sample ${si}`, 'expected an object { "<input name>": nested arrays }');
      const arrays = new Map<string, FeedTensor>();
      for (const [k, val] of Object.entries(obj as Record<string, unknown>)) {
        const spec = inputs.find((i) => i.name === k);
        if (!spec) throw new FormatError(file, `sample ${si}: '${k}'`, `names no model input (inputs: ${inputs.map((i) => i.name).join(', ')})`);
        const dt = feedDType(spec.dtype) ?? 'float32';
        try { arrays.set(k, jsonArray(val, dt, `input '${k}'`)); } catch (e) { throw new FormatError(file, `sample ${si}`, (e as Error).message); }
      }
      return toSamples(arrays, inputs, file, fixed);
    });
  }
  throw new FormatError(file, 'type', `not calibration data (expected .npy, .npz, .json, .txt, .png, .jpg or a folder of them)`);
}

/** Integer inputs a language model takes beside its token ids, and what each window feeds them. */
const COMPANIONS: Record<string, (n: number, i: number) => number> = {
  attention_mask: () => 1,
  position_ids: (_n, i) => i,
  token_type_ids: () => 0,
};

/**
 * A text file for a token-id model: tokenized with the model's
 * tokenizer.json when one is given (else its UTF-8 bytes are the ids, for
 * byte-level models), cut into non-overlapping windows of [1, window] fed
 * to the ids input; attention_mask, position_ids and token_type_ids, when
 * the model has them, get ones, 0..n-1 and zeros.
 */
function textSamples(file: string, inputs: InputSpec[], opts: CalibOptions): Sample[] {
  const fixed = opts.fixed ?? {};
  const free = inputs.filter((i) => !fixed[i.name]);
  const companions = free.filter((i) => COMPANIONS[i.name] && (feedDType(i.dtype) === 'int64' || feedDType(i.dtype) === 'int32'));
  const ids = free.filter((i) => !companions.includes(i));
  const dt = ids.length === 1 ? feedDType(ids[0].dtype) : undefined;
  if (ids.length !== 1 || (dt !== 'int64' && dt !== 'int32')) {
    throw new FormatError(file, 'inputs', `text data feeds one integer token-id input (with attention_mask, position_ids, token_type_ids beside it); the model has ${inputs.map((i) => `${i.name} (${i.dtype ?? '?'})`).join(', ')}`);
  }
  const spec = ids[0];
  const seqDim = spec.shape?.[1];
  const window = opts.window ?? (typeof seqDim === 'number' && seqDim > 0 ? seqDim : 64);
  const maxWindows = opts.samples ?? Number.MAX_SAFE_INTEGER;
  let tokens: ArrayLike<number>;
  let vocab: number | undefined;
  if (opts.tokenizer) {
    const tok = loadTokenizer(opts.tokenizer);
    tokens = tokenizeText(tok, fs.readFileSync(file, 'utf8'), Math.min(maxWindows * window, 1 << 26));
    vocab = opts.intHigh?.[spec.name];
  } else {
    tokens = fs.readFileSync(file);
  }
  const samples: Sample[] = [];
  for (let o = 0; o + window <= tokens.length && samples.length < maxWindows; o += window) {
    const chunk = Array.from({ length: window }, (_, k) => tokens[o + k]);
    if (vocab !== undefined) {
      const bad = chunk.find((t) => t >= vocab);
      if (bad !== undefined) throw new FormatError(opts.tokenizer!, 'vocabulary', `token id ${bad} is outside the model's embedding table of ${vocab} rows: is this the model's tokenizer?`);
    }
    const toData = (f: (k: number) => number) => (dt === 'int64' ? BigInt64Array.from(chunk, (_, k) => BigInt(f(k))) : Int32Array.from(chunk, (_, k) => f(k)));
    const sample: Sample = { ...fixed, [spec.name]: { dtype: dt, dims: [1, window], data: toData((k) => chunk[k]) } };
    for (const c of companions) {
      const cdt = feedDType(c.dtype) as 'int64' | 'int32';
      const f = (k: number) => COMPANIONS[c.name](window, k);
      sample[c.name] = { dtype: cdt, dims: [1, window], data: cdt === 'int64' ? BigInt64Array.from(chunk, (_, k) => BigInt(f(k))) : Int32Array.from(chunk, (_, k) => f(k)) };
    }
    samples.push(sample);
  }
  if (!samples.length) throw new FormatError(file, 'size', `${tokens.length} ${opts.tokenizer ? 'tokens' : 'bytes'}: shorter than one window of ${window}`);
  return samples;
}

/** Image files → one sample each, every image resized to one size (resolved from the options, the input's dims, or the first image). */
function imageSamples(files: string[], inputs: InputSpec[], opts: CalibOptions): Sample[] {
  const io = opts.image ?? {};
  const fixed = opts.fixed ?? {};
  const plan = planImageInput(inputs, io, new Set(Object.keys(fixed)), files[0]);
  let size: [number, number] | undefined;
  const samples: Sample[] = [];
  for (const f of files) {
    if (!size) {
      const head = imageHeaderSize(fs.readFileSync(f), f);
      size = resolveSize(plan, head);
    }
    const data = imageTensor(f, plan, size, io);
    const dims = plan.layout === 'nchw' ? [1, plan.channels, size[0], size[1]] : [1, size[0], size[1], plan.channels];
    samples.push({ ...fixed, [plan.input.name]: { dtype: 'float32', dims, data } });
    if (opts.samples && samples.length >= opts.samples) break;
  }
  return samples;
}

/** sha256 of samples: names, dtypes, dims and bytes, in order. */
export function hashSamples(samples: readonly Sample[]): string {
  const h = crypto.createHash('sha256');
  for (const s of samples) {
    for (const name of Object.keys(s).sort()) {
      const t = s[name];
      h.update(`${name}\0${t.dtype}\0${t.dims.join(',')}\0`);
      h.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    }
    h.update('\n');
  }
  return h.digest('hex');
}

// ------------------------------------------------------------------ synthetic

/** Deterministic uniform [0, 1) stream (sfc32, seeded from one integer). */
export function prng(seed: number): () => number {
  let a = 0x9e3779b9, b = 0x243f6a88, c = 0xb7e15162, d = seed >>> 0;
  const next = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t;
  };
  for (let i = 0; i < 12; i++) next(); // mix the seed in
  return () => next() / 4294967296;
}

/** The concrete shape synthetic data takes for an input (symbolic dims: `dims[name]`, else 1 on axis 0 and DEFAULT_SYMBOLIC_DIM elsewhere). */
export function syntheticShape(spec: InputSpec, opts: CalibOptions = {}): number[] {
  const given = opts.shapes?.[spec.name];
  if (given) return given.slice();
  return (spec.shape ?? []).map((d, i) => {
    if (typeof d === 'number' && d > 0) return d;
    if (typeof d === 'string' && d && opts.dims?.[d] !== undefined) return opts.dims[d];
    return i === 0 ? 1 : DEFAULT_SYMBOLIC_DIM;
  });
}

/**
 * Synthetic samples: floats standard normal (Box-Muller on a seeded
 * stream), integers uniform in [0, intHigh), bools fair coins. The same
 * inputs and options always give the same bytes.
 */
export function syntheticSamples(inputs: InputSpec[], opts: CalibOptions = {}): CalibSet {
  const seed = opts.seed ?? 1;
  const rnd = prng(seed);
  const n = opts.samples ?? 8;
  const samples: Sample[] = [];
  for (let s = 0; s < n; s++) {
    const sample: Sample = {};
    for (const spec of inputs) {
      if (opts.fixed?.[spec.name]) { sample[spec.name] = opts.fixed[spec.name]; continue; }
      const dtype = feedDType(spec.dtype);
      if (!dtype || dtype === 'float16') throw new Error(`input '${spec.name}': cannot synthesise ${spec.dtype ?? 'an undeclared type'}; give calibration data`);
      const dims = syntheticShape(spec, opts);
      const data = allocate(dtype, numelOf(dims));
      if (data instanceof Float32Array || data instanceof Float64Array) {
        for (let i = 0; i < data.length; i++) data[i] = Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
      } else {
        const hi = dtype === 'bool' ? 2 : Math.max(1, opts.intHigh?.[spec.name] ?? 2);
        for (let i = 0; i < data.length; i++) {
          const v = Math.floor(rnd() * hi);
          if (data instanceof BigInt64Array || data instanceof BigUint64Array) data[i] = BigInt(v); else data[i] = v;
        }
      }
      sample[spec.name] = { dtype, dims, data };
    }
    samples.push(sample);
  }
  return { samples, synthetic: true, source: `synthetic (seed ${seed})`, hash: hashSamples(samples) };
}

/**
 * The calibration set for a model: from `dataPath` (file or folder) when
 * given, else synthetic. Errors name the file and what does not match.
 */
export function loadCalibData(dataPath: string | undefined, inputs: InputSpec[], opts: CalibOptions = {}): CalibSet {
  if (!dataPath) return syntheticSamples(inputs, opts);
  const abs = path.resolve(dataPath);
  if (!fs.existsSync(abs)) throw new Error(`${abs}: calibration data not found`);
  let samples: Sample[];
  if (fs.statSync(abs).isDirectory()) {
    const all = fs.readdirSync(abs).sort();
    const images = all.filter((f) => isImageFile(f));
    const files = all.filter((f) => /\.(npy|npz|json|txt)$/i.test(f));
    if (!files.length && !images.length) throw new Error(`${abs}: no .npy, .npz, .json, .txt, .png or .jpg files in this folder`);
    if (files.length && images.length) throw new Error(`${abs}: holds both images and arrays; keep one kind of data per folder`);
    samples = images.length ? imageSamples(images.map((f) => path.join(abs, f)), inputs, opts) : [];
    for (const f of files) {
      samples.push(...readFileSamples(path.join(abs, f), inputs, opts));
      if (opts.samples && samples.length >= opts.samples) break;
    }
  } else {
    samples = readFileSamples(abs, inputs, opts);
  }
  if (opts.samples) samples = samples.slice(0, opts.samples);
  if (!samples.length) throw new Error(`${abs}: no samples`);
  return { samples, synthetic: false, source: abs, hash: hashSamples(samples) };
}

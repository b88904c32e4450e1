/**
 * One slab of a GGUF conversion: whole rows of one tensor encoded into a ggml
 * type, decoded back, measured against the source, and fingerprinted. Runs on
 * the main thread or in a pool worker (the `ggufSlab` job); the conversion
 * driver writes slabs in order and later checks the written file slab by slab
 * against these fingerprints (`ggufDigest` job / digestGgufRange).
 */
import type { Impl } from '../../kernels/runtime';
import * as crypto from 'node:crypto';
import type { ModelFile, TensorInfo } from '../../formats/types';
import { f16Lookup, f32ToBf16, f32ToF16 } from '../../formats/dtypes';
import { quantizeGgmlInto } from './quantize';
import { dequantizeGgml } from '../../formats/gguf/dequant';
import { GgmlTypeName, ggmlTypeByName } from '../../formats/gguf/ggmlTypes';
import { ropeSourceRow } from '../../formats/hf/archs';
import { Fingerprint, SlabValues, decodeGgmlWasm, encodeSlabGgmlWasm, halvesToF32Wasm } from '../../kernels/ggmlKernels';

export type { SlabValues };

export interface GgufSlabResult {
  /** The encoded rows. */
  bytes: Uint8Array;
  /** sum (decoded - source)^2 and sum source^2 over the slab, float64. */
  errSum: number;
  refSum: number;
  /** Fingerprint (kernels/ggmlKernels.ts) of the decoded values' float32 bits. */
  digest: string;
}

/** Slabs of whole rows, at most `maxValues` each, never crossing an expert (ne[2]) boundary. */
export function slabRanges(numel: number, ne0: number, rowsPerExpert: number, maxValues: number): [number, number][] {
  const nRows = numel / ne0;
  const slabRows = Math.max(1, Math.min(rowsPerExpert, Math.floor(maxValues / ne0)));
  // An empty tensor is one empty slab, so that it is still written (and checked) like the others.
  if (numel === 0) return [[0, 0]];
  const out: [number, number][] = [];
  for (let row = 0; row < nRows;) {
    const n = Math.min(slabRows, rowsPerExpert - (row % rowsPerExpert), nRows - row);
    out.push([row * ne0, n * ne0]);
    row += n;
  }
  return out;
}

const F16 = f16Lookup();

/**
 * Elements [start, start+count) of a source tensor as float32. F16, BF16 and
 * F32 are decoded here through typed-array views (several times faster than
 * the reader's general path, which the conversion otherwise spends a fifth of
 * its time in); other types go through the reader.
 */
export function readSourceSlab(m: ModelFile, t: TensorInfo, start: number, count: number): Float32Array {
  const bpe = t.dtype === 'f16' || t.dtype === 'bf16' ? 2 : t.dtype === 'f32' ? 4 : 0;
  if (!bpe || count === 0) return m.readFloat32(t, start, count);
  const raw = m.readBytes(t, start * bpe, count * bpe);
  // readBytes returns its own buffer; copy once if it is not aligned for a typed view.
  const b = raw.byteOffset % bpe === 0 ? raw : raw.slice();
  if (t.dtype === 'f32') return new Float32Array(b.buffer, b.byteOffset, count).slice();
  const h = new Uint16Array(b.buffer, b.byteOffset, count);
  const out = new Float32Array(count);
  if (halvesToF32Wasm(t.dtype === 'f16' ? 'f16' : 'bf16', h, out)) return out;
  if (t.dtype === 'f16') {
    for (let i = 0; i < count; i++) out[i] = F16[h[i]];
  } else {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < count; i++) u[i] = h[i] << 16;
  }
  return out;
}

/**
 * Like readSourceSlab, but an F16 or BF16 tensor comes back as its raw halves
 * (converted to float32 inside the encoder's WebAssembly module).
 */
export function readSourceValues(m: ModelFile, t: TensorInfo, start: number, count: number): SlabValues {
  if ((t.dtype !== 'f16' && t.dtype !== 'bf16') || count === 0) return readSourceSlab(m, t, start, count);
  const raw = m.readBytes(t, start * 2, count * 2);
  const b = raw.byteOffset % 2 === 0 ? raw : raw.slice();
  return { dtype: t.dtype, bits: new Uint16Array(b.buffer, b.byteOffset, count) };
}

/**
 * Like readSourceValues for a q/k projection stored in Hugging Face's rope
 * order (`nHeads` heads along the rows): rows start/rowLength onwards in
 * llama.cpp's order. The heads covering them are read at once and their rows
 * reordered (formats/hf/archs.ropeSourceRow).
 */
export function readSourceValuesRope(m: ModelFile, t: TensorInfo, start: number, count: number, rowLength: number, nHeads: number): SlabValues {
  const hd = t.shape[0] / nHeads;
  const r0 = start / rowLength, r1 = (start + count) / rowLength;
  if (!Number.isInteger(r0) || !Number.isInteger(r1) || !Number.isInteger(hd)) throw new Error(`${t.name}: a slab of whole rows of ${rowLength} in heads of whole rows is needed (start ${start}, count ${count}, ${nHeads} heads)`);
  const h0 = Math.floor(r0 / hd) * hd, h1 = Math.ceil(r1 / hd) * hd;
  const src = readSourceValues(m, t, h0 * rowLength, (h1 - h0) * rowLength);
  const reorder = <A extends Float32Array | Uint16Array>(from: A, to: A): A => {
    for (let r = r0; r < r1; r++) {
      const s = ropeSourceRow(r, hd) - h0;
      to.set(from.subarray(s * rowLength, (s + 1) * rowLength), (r - r0) * rowLength);
    }
    return to;
  };
  return src instanceof Float32Array ? reorder(src, new Float32Array(count)) : { dtype: src.dtype, bits: reorder(src.bits, new Uint16Array(count)) };
}

/** Slab values as float32 (the halves decoded in the WebAssembly module where it loads, else by table). */
export function slabFloat32(v: SlabValues): Float32Array {
  if (v instanceof Float32Array) return v;
  const out = new Float32Array(v.bits.length);
  if (halvesToF32Wasm(v.dtype, v.bits, out)) return out;
  if (v.dtype === 'f16') {
    for (let i = 0; i < out.length; i++) out[i] = F16[v.bits[i]];
  } else {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < out.length; i++) u[i] = v.bits[i] << 16;
  }
  return out;
}

/**
 * Encode `values` (whole rows of `rowLength`) into `to`; F16, BF16 and F32
 * targets are plain conversions. With impl 'auto' or 'wasm', a type the
 * WebAssembly module both encodes and decodes (Q8_0, Q4_K, Q5_K, Q6_K) runs
 * the whole slab there (encodeSlabGgmlWasm); every output equals the
 * reference path's below.
 */
export function encodeGgufSlab(
  values: SlabValues, to: GgmlTypeName, rowLength: number, importance?: Float32Array, impl: Impl = 'auto',
): GgufSlabResult {
  const n = values instanceof Float32Array ? values.length : values.bits.length;
  const info = ggmlTypeByName(to);
  if (!info) throw new RangeError(`encodeGgufSlab: unknown type ${to}`);
  const bytes = new Uint8Array((n / info.blockSize) * info.typeSize);
  if (impl !== 'ref' && info.quantized && n > 0) {
    const fast = encodeSlabFast(values, n, info.name, bytes, rowLength, importance);
    if (fast) return fast;
  }
  const x = slabFloat32(values);
  const out = new Float32Array(n);
  if (to === 'F16') {
    const h = new Uint16Array(bytes.buffer, 0, n);
    for (let i = 0; i < n; i++) h[i] = f32ToF16(x[i]);
    dequantizeGgml('F16', bytes, out, n);
  } else if (to === 'BF16') {
    const h = new Uint16Array(bytes.buffer, 0, n);
    for (let i = 0; i < n; i++) h[i] = f32ToBf16(x[i]);
    dequantizeGgml('BF16', bytes, out, n);
  } else if (to === 'F32') {
    new Float32Array(bytes.buffer, 0, n).set(x);
    out.set(x);
  } else {
    quantizeGgmlInto(to, x, 0, bytes, 0, n, importance ? { importance, rowLength, impl } : { impl });
    dequantizeGgml(to, bytes, out, n);
  }
  let errSum = 0, refSum = 0;
  for (let i = 0; i < n; i++) {
    const d = out[i] - x[i];
    errSum += d * d;
    refSum += x[i] * x[i];
  }
  return { bytes, errSum, refSum, digest: decodedDigest(to, bytes, out, impl) };
}

function encodeSlabFast(
  values: SlabValues, n: number, to: GgmlTypeName, bytes: Uint8Array, rowLength: number, importance?: Float32Array,
): GgufSlabResult | undefined {
  if (importance) {
    // The same checks quantizeGgmlInto makes; anything unusual takes that path and its messages.
    if (rowLength <= 0 || n % rowLength !== 0 || importance.length < rowLength) return undefined;
    for (let i = 0; i < importance.length; i++) if (!(importance[i] >= 0) || importance[i] === Infinity) return undefined;
  }
  const sums = { err: 0, ref: 0 };
  const h = new Fingerprint();
  const r = encodeSlabGgmlWasm(to, values, n, bytes, sums, h, importance, rowLength);
  if (r === -2) return undefined;
  if (r >= 0) {
    const v = values instanceof Float32Array ? values[r] : values.dtype === 'f16' ? F16[values.bits[r]] : bf16Value(values.bits[r]);
    throw new RangeError(`quantizeGgml: element ${r} is ${v}; ${to} blocks need finite values`);
  }
  return { bytes, errSum: sums.err, refSum: sums.ref, digest: h.hex() };
}

function bf16Value(b: number): number {
  return new Float32Array(new Uint32Array([b << 16]).buffer)[0];
}

/** What a slab's decoded values are checked by: F32's bytes are its values (sha256, as raw ranges are); others a Fingerprint. */
function decodedDigest(to: GgmlTypeName, bytes: Uint8Array, out: Float32Array, impl: Impl): string {
  if (to === 'F32') return crypto.createHash('sha256').update(bytes).digest('hex');
  const fp = new Fingerprint();
  fp.update(out, impl);
  return fp.hex();
}

/**
 * Fingerprint of elements [start, start+count) of a written tensor: its raw
 * bytes' sha256 when `raw` (or F32, whose bytes are its values), else the
 * Fingerprint of its decoded values (as encodeGgufSlab fingerprints what it produced).
 */
export function digestGgufRange(m: ModelFile, t: TensorInfo, start: number, count: number, raw: boolean): string {
  if (raw || t.dtype === 'f32') {
    const bpe = t.byteLength / t.numel;
    return crypto.createHash('sha256').update(m.readBytes(t, start * bpe, count * bpe)).digest('hex');
  }
  const fp = new Fingerprint();
  // K-quants and Q8_0 decode in the WebAssembly module (held equal to the reader's dequantizer by the tests).
  const q = /^gguf:(.+)$/.exec(t.dtype);
  const info = q ? ggmlTypeByName(q[1].toUpperCase() as GgmlTypeName) : undefined;
  const bytes = info && start % info.blockSize === 0 && count % info.blockSize === 0
    ? m.readBytes(t, (start / info.blockSize) * info.typeSize, (count / info.blockSize) * info.typeSize) : undefined;
  if (!info || !bytes || !decodeGgmlWasm(info.name, bytes, count, fp)) fp.update(m.readFloat32(t, start, count));
  return fp.hex();
}

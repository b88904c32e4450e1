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
import { f32ToF16 } from '../../formats/dtypes';
import { quantizeGgmlInto } from './quantize';
import { dequantizeGgml } from '../../formats/gguf/dequant';
import { GgmlTypeName, ggmlTypeByName } from '../../formats/gguf/ggmlTypes';

export interface GgufSlabResult {
  /** The encoded rows. */
  bytes: Uint8Array;
  /** sum (decoded - source)^2 and sum source^2 over the slab, float64. */
  errSum: number;
  refSum: number;
  /** sha256 of the decoded values' float32 bytes. */
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

/** Encode `x` (whole rows of `rowLength`) into `to`; F16 and F32 targets are plain conversions. */
export function encodeGgufSlab(
  x: Float32Array, to: GgmlTypeName, rowLength: number, importance?: Float32Array, impl: Impl = 'auto',
): GgufSlabResult {
  const n = x.length;
  const info = ggmlTypeByName(to);
  if (!info) throw new RangeError(`encodeGgufSlab: unknown type ${to}`);
  const bytes = new Uint8Array((n / info.blockSize) * info.typeSize);
  const out = new Float32Array(n);
  if (to === 'F16') {
    const h = new Uint16Array(bytes.buffer, 0, n);
    for (let i = 0; i < n; i++) h[i] = f32ToF16(x[i]);
    dequantizeGgml('F16', bytes, out, n);
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
  const digest = crypto.createHash('sha256').update(new Uint8Array(out.buffer)).digest('hex');
  return { bytes, errSum, refSum, digest };
}

/** Fingerprint of elements [start, start+count) of a written tensor: decoded values, or raw bytes when `raw`. */
export function digestGgufRange(m: ModelFile, t: TensorInfo, start: number, count: number, raw: boolean): string {
  const h = crypto.createHash('sha256');
  if (raw) {
    const bpe = t.byteLength / t.numel;
    h.update(m.readBytes(t, start * bpe, count * bpe));
  } else {
    const v = m.readFloat32(t, start, count);
    h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  }
  return h.digest('hex');
}

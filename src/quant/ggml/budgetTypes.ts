/**
 * The per-tensor options of a GGUF size budget and their measured error: for
 * one tensor, the ggml types it may take (only those whose blocks divide its
 * rows), their exact bytes, and the weight-space error each gives on a
 * deterministic sample of the tensor's real rows, encoded and decoded by the
 * same encoders the conversion writes with (encodeGgufSlab). Runs in a pool
 * worker as the `ggufTypeErrors` job.
 */
import type { Impl } from '../../kernels/runtime';
import { GgmlTypeName, ggmlTypeByName } from '../../formats/gguf/ggmlTypes';
import { dequantizeGgml } from '../../formats/gguf/dequant';
import { encodeGgufSlab } from './slab';

/** Types a budget chooses among when rows are whole 256-element super-blocks (k-quants), else the 32-element legacy types. */
const K_TYPES: readonly GgmlTypeName[] = ['Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_0'];
const LEGACY_TYPES: readonly GgmlTypeName[] = ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0'];

/** Values sampled per tensor (whole rows; at least MIN_ROWS rows, or all of them). */
export const SAMPLE_VALUES = 1 << 18;
const MIN_ROWS = 16;

/**
 * The ggml types a tensor with rows of `rowLength` may be written as under a
 * budget, besides keeping its source type: k-quants and Q8_0 when the row is
 * whole super-blocks, the legacy 32-blocks otherwise, F16 for an F32 source.
 */
export function ggufBudgetTypes(rowLength: number, from: GgmlTypeName): GgmlTypeName[] {
  const list = rowLength % 256 === 0 ? K_TYPES : rowLength % 32 === 0 ? LEGACY_TYPES : [];
  const out = list.filter((t) => rowLength % ggmlTypeByName(t)!.blockSize === 0 && t !== from);
  if (from === 'F32') out.push('F16');
  return out;
}

/** Exact bytes of a tensor of `numel` values in `type` (whole blocks). */
export function ggufTypeBytes(type: GgmlTypeName, numel: number): number {
  const t = ggmlTypeByName(type);
  if (!t) throw new RangeError(`unknown ggml type ${type}`);
  return (numel / t.blockSize) * t.typeSize;
}

/** Deterministic rows to measure: evenly spread over the tensor, all of them for a small one. */
export function sampleRows(nRows: number, rowLength: number, maxValues = SAMPLE_VALUES): number[] {
  const k = Math.min(nRows, Math.max(MIN_ROWS, Math.floor(maxValues / Math.max(1, rowLength))));
  if (k >= nRows) return Array.from({ length: nRows }, (_, i) => i);
  return Array.from({ length: k }, (_, i) => Math.floor(((i + 0.5) * nRows) / k));
}

export interface GgufTypeError {
  type: GgmlTypeName;
  /** sum (decoded - source)^2 and sum source^2 over the sampled rows, float64. */
  errSum: number;
  refSum: number;
  /** The same sums with each column weighted by its imatrix importance over the row's mean importance (equal to the above without one). */
  weightedErrSum: number;
  weightedRefSum: number;
}

/**
 * Encode and decode the sampled rows `x` (rows.length whole rows, concatenated)
 * into every type and sum their errors. `importance`, an imatrix entry
 * (rowLength values per expert, experts of `rowsPerExpert` rows), is handed to
 * the encoder as the conversion hands it, and weights the error sums.
 */
export function ggufTypeErrors(
  x: Float32Array, rows: readonly number[], rowLength: number, types: readonly GgmlTypeName[],
  o: { importance?: Float32Array; rowsPerExpert?: number; impl?: Impl } = {},
): GgufTypeError[] {
  if (x.length !== rows.length * rowLength) throw new RangeError(`ggufTypeErrors: ${x.length} values for ${rows.length} rows of ${rowLength}`);
  const imp = o.importance;
  const perExpert = o.rowsPerExpert ?? Number.MAX_SAFE_INTEGER;
  return types.map((type) => {
    const r: GgufTypeError = { type, errSum: 0, refSum: 0, weightedErrSum: 0, weightedRefSum: 0 };
    const quantized = ggmlTypeByName(type)!.quantized;
    // Consecutive sampled rows of one expert are encoded together (one importance row for them).
    for (let a = 0; a < rows.length;) {
      const expert = Math.floor(rows[a] / perExpert);
      let b = a + 1;
      while (b < rows.length && Math.floor(rows[b] / perExpert) === expert) b++;
      const w = imp ? imp.subarray(expert * rowLength, (expert + 1) * rowLength) : undefined;
      // The error's column weights are the importance over its mean: the same scale as an unweighted tensor's error.
      let mean = 1;
      if (w) { mean = 0; for (let i = 0; i < rowLength; i++) mean += w[i]; mean = mean / rowLength || 1; }
      const src = x.subarray(a * rowLength, b * rowLength);
      const enc = encodeGgufSlab(src, type, rowLength, quantized ? w : undefined, o.impl);
      const out = decodedOf(enc.bytes, type, src.length);
      for (let i = 0; i < src.length; i++) {
        const d = out[i] - src[i];
        const wi = w ? w[i % rowLength] / mean : 1;
        r.errSum += d * d;
        r.refSum += src[i] * src[i];
        r.weightedErrSum += wi * d * d;
        r.weightedRefSum += wi * src[i] * src[i];
      }
      a = b;
    }
    return r;
  });
}

function decodedOf(bytes: Uint8Array, type: GgmlTypeName, n: number): Float32Array {
  const out = new Float32Array(n);
  dequantizeGgml(type, bytes, out, n);
  return out;
}

/**
 * The ggml tensor type table: id → name, elements per block, bytes per block.
 * Ids follow ggml's `enum ggml_type` (gaps are types ggml removed); every type a
 * GGUF file may carry is listed so files show their tensors by name even when
 * QuantScope cannot dequantize them yet.
 */

export type GgmlTypeName =
  | 'F32' | 'F16' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q8_0' | 'Q8_1'
  | 'Q2_K' | 'Q3_K' | 'Q4_K' | 'Q5_K' | 'Q6_K' | 'Q8_K'
  | 'IQ2_XXS' | 'IQ2_XS' | 'IQ3_XXS' | 'IQ1_S' | 'IQ4_NL' | 'IQ3_S' | 'IQ2_S' | 'IQ4_XS'
  | 'I8' | 'I16' | 'I32' | 'I64' | 'F64' | 'IQ1_M' | 'BF16' | 'TQ1_0' | 'TQ2_0' | 'MXFP4';

export interface GgmlTypeInfo {
  id: number;
  name: GgmlTypeName;
  /** Elements per block (1 for plain scalar types). */
  blockSize: number;
  /** Bytes per block. */
  typeSize: number;
  /** Whether the type is a block-quantized format (shown as dtype `gguf:<name>`). */
  quantized: boolean;
}

/** Elements per super-block of the k-quants. */
export const QK_K = 256;

const rows: [number, GgmlTypeName, number, number][] = [
  [0, 'F32', 1, 4], [1, 'F16', 1, 2], [2, 'Q4_0', 32, 18], [3, 'Q4_1', 32, 20],
  [6, 'Q5_0', 32, 22], [7, 'Q5_1', 32, 24], [8, 'Q8_0', 32, 34], [9, 'Q8_1', 32, 36],
  [10, 'Q2_K', QK_K, 84], [11, 'Q3_K', QK_K, 110], [12, 'Q4_K', QK_K, 144], [13, 'Q5_K', QK_K, 176],
  [14, 'Q6_K', QK_K, 210], [15, 'Q8_K', QK_K, 292],
  [16, 'IQ2_XXS', QK_K, 66], [17, 'IQ2_XS', QK_K, 74], [18, 'IQ3_XXS', QK_K, 98], [19, 'IQ1_S', QK_K, 50],
  [20, 'IQ4_NL', 32, 18], [21, 'IQ3_S', QK_K, 110], [22, 'IQ2_S', QK_K, 82], [23, 'IQ4_XS', QK_K, 136],
  [24, 'I8', 1, 1], [25, 'I16', 1, 2], [26, 'I32', 1, 4], [27, 'I64', 1, 8], [28, 'F64', 1, 8],
  [29, 'IQ1_M', QK_K, 56], [30, 'BF16', 1, 2], [34, 'TQ1_0', QK_K, 54], [35, 'TQ2_0', QK_K, 66],
  [39, 'MXFP4', 32, 17],
];

export const GGML_TYPES: readonly GgmlTypeInfo[] = rows.map(([id, name, blockSize, typeSize]) => ({
  id, name, blockSize, typeSize, quantized: blockSize > 1,
}));

const byId = new Map<number, GgmlTypeInfo>(GGML_TYPES.map((t) => [t.id, t]));
const byName = new Map<string, GgmlTypeInfo>(GGML_TYPES.map((t) => [t.name, t]));

export function ggmlTypeById(id: number): GgmlTypeInfo | undefined {
  return byId.get(id);
}

/** Look up by name, case-insensitive ("q4_k" and "Q4_K" are the same type). */
export function ggmlTypeByName(name: string): GgmlTypeInfo | undefined {
  return byName.get(name.toUpperCase() as GgmlTypeName) ?? byName.get(name as GgmlTypeName);
}

/** Bytes of a row of `n` elements; `n` must be a whole number of blocks. */
export function ggmlRowBytes(t: GgmlTypeInfo, n: number): number {
  return (n / t.blockSize) * t.typeSize;
}

/**
 * The integer layouts of quantized Hugging Face checkpoints, as their loaders
 * read them. A quantized Linear W[out, in] is stored as several tensors:
 *
 * - GPTQ (AutoGPTQ / optimum / GPTQModel, checkpoint_format "gptq"):
 *   `qweight` int32 [in·bits/32, out]: 32/bits codes of consecutive input
 *   rows per word, the lowest bits first; `qzeros` int32 [groups, out·bits/32]
 *   packed the same way along the output dim; `scales` fp16 [groups, out];
 *   `g_idx` int32 [in] (group of each input column). The "gptq" (v1) format
 *   stores zero − 1 (AutoGPTQ's historical offset; a loader adds 1 back),
 *   "gptq_v2" stores the zero itself. w = scale[g][o] · (q − zero).
 * - AWQ GEMM (AutoAWQ): `qweight` int32 [in, out/8], each word 8 output
 *   columns in the interleaved nibble order 0 2 4 6 1 3 5 7; `qzeros` int32
 *   [groups, out/8] in the same order (zero stored as is); `scales` fp16
 *   [groups, out]. 4 bits only.
 * - compressed-tensors "pack-quantized": `weight_packed` int32 [out, ⌈in·bits/32⌉]
 *   of signed codes + 2^(bits−1), consecutive input columns per word, lowest
 *   bits first; `weight_scale` [out, groups]; `weight_zero_point` (asymmetric
 *   only) packed the same way along the output dim, int32 [⌈out·bits/32⌉, groups];
 *   optional `weight_g_idx` [in]; `weight_shape` [2]. w = scale · (q − zp), q and zp signed.
 * - bitsandbytes: int8 `weight` [out, in] with `SCB` [out]: w = q · SCB/127;
 *   4-bit (nf4/fp4) `weight` uint8 of two codes per byte (the first in the
 *   high nibble), `absmax` per block of `blocksize`, `quant_map` [16], a
 *   `quant_state.bitsandbytes__<type>` JSON blob, and with double
 *   quantization absmax stored as uint8 codes into `nested_quant_map` scaled
 *   per `nested_blocksize` block by `nested_absmax`, plus `nested_offset`.
 *
 * Codes here are unsigned (0..2^bits − 1) with an unsigned zero point, the
 * convention of src/quant/algorithms/intGrid.ts; signed layouts subtract
 * 2^(bits−1) from both, which leaves w unchanged.
 */

/** Bit widths whose codes tile an int32 exactly (3 bits crosses word boundaries in GPTQ and is not written here). */
export type PackBits = 2 | 4 | 8;

export function isPackBits(b: number): b is PackBits {
  return b === 2 || b === 4 || b === 8;
}

/** Interleaved position of each output column inside an AWQ GEMM word: nibble k holds column AWQ_ORDER[k]. */
export const AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7] as const;

/**
 * Packs unsigned codes along dim 0 of a [rows, cols] matrix (row-major) into
 * int32 words [⌈rows·bits/32⌉, cols]: word (r, c) holds rows r·k … r·k+k−1 of
 * column c, k = 32/bits, the first in the lowest bits; missing rows are 0.
 */
export function packAlongRows(codes: ArrayLike<number>, rows: number, cols: number, bits: PackBits): Int32Array {
  const per = 32 / bits;
  const mask = (1 << bits) - 1;
  const wr = Math.ceil(rows / per);
  const out = new Int32Array(wr * cols);
  for (let r = 0; r < rows; r++) {
    const shift = bits * (r % per);
    const base = Math.floor(r / per) * cols;
    for (let c = 0; c < cols; c++) out[base + c] |= (codes[r * cols + c] & mask) << shift;
  }
  return out;
}

/** Inverse of packAlongRows: unsigned codes [rows, cols]. */
export function unpackAlongRows(words: Int32Array, rows: number, cols: number, bits: PackBits): Uint8Array {
  const per = 32 / bits;
  const mask = (1 << bits) - 1;
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const shift = bits * (r % per);
    const base = Math.floor(r / per) * cols;
    for (let c = 0; c < cols; c++) out[r * cols + c] = (words[base + c] >>> shift) & mask;
  }
  return out;
}

/** Packs unsigned codes along dim 1 of [rows, cols] into int32 [rows, ⌈cols·bits/32⌉] (consecutive columns per word, lowest bits first). */
export function packAlongCols(codes: ArrayLike<number>, rows: number, cols: number, bits: PackBits): Int32Array {
  const per = 32 / bits;
  const mask = (1 << bits) - 1;
  const wc = Math.ceil(cols / per);
  const out = new Int32Array(rows * wc);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * wc + Math.floor(c / per)] |= (codes[r * cols + c] & mask) << (bits * (c % per));
  }
  return out;
}

/** Inverse of packAlongCols: unsigned codes [rows, cols]. */
export function unpackAlongCols(words: Int32Array, rows: number, cols: number, bits: PackBits): Uint8Array {
  const per = 32 / bits;
  const mask = (1 << bits) - 1;
  const wc = Math.ceil(cols / per);
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * cols + c] = (words[r * wc + Math.floor(c / per)] >>> (bits * (c % per))) & mask;
  }
  return out;
}

/** AWQ GEMM: unsigned 4-bit codes [rows, cols] → int32 [rows, cols/8], nibble k of word j holding column 8j + AWQ_ORDER[k]. */
export function packAwq(codes: ArrayLike<number>, rows: number, cols: number): Int32Array {
  if (cols % 8 !== 0) throw new RangeError(`packAwq: ${cols} columns is not a multiple of 8`);
  const wc = cols / 8;
  const out = new Int32Array(rows * wc);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < wc; j++) {
      let w = 0;
      for (let k = 0; k < 8; k++) w |= (codes[r * cols + 8 * j + AWQ_ORDER[k]] & 15) << (4 * k);
      out[r * wc + j] = w;
    }
  }
  return out;
}

/** Inverse of packAwq: unsigned codes [rows, cols]. */
export function unpackAwq(words: Int32Array, rows: number, cols: number): Uint8Array {
  const wc = cols / 8;
  const out = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < wc; j++) {
      const w = words[r * wc + j];
      for (let k = 0; k < 8; k++) out[r * cols + 8 * j + AWQ_ORDER[k]] = (w >>> (4 * k)) & 15;
    }
  }
  return out;
}

/** The parts of one GPTQ Linear, as written to the file. */
export interface GptqParts {
  qweight: Int32Array; // [in·bits/32, out]
  qzeros: Int32Array; // [groups, out·bits/32]
  scales: Uint16Array | Float32Array; // [groups, out], fp16 bits or float values
  gIdx: Int32Array; // [in]
}

/**
 * GPTQ parts of W[out, in] from unsigned codes (out×in, row-major), zero
 * points and scales (out×groups), and the group of each input column.
 * `v1` stores zero − 1 (checkpoint_format "gptq"); a zero of 0 cannot be
 * stored that way and is refused.
 */
export function packGptq(
  codes: ArrayLike<number>, zeros: ArrayLike<number>, out: number, inF: number, groups: number, gIdx: ArrayLike<number>, bits: PackBits, v1: boolean,
): Omit<GptqParts, 'scales'> {
  // Transpose to the [in, out] orientation the layout packs.
  const t = new Uint8Array(inF * out);
  for (let o = 0; o < out; o++) for (let i = 0; i < inF; i++) t[i * out + o] = codes[o * inF + i];
  const z = new Uint8Array(groups * out);
  for (let o = 0; o < out; o++) {
    for (let g = 0; g < groups; g++) {
      const zero = zeros[o * groups + g];
      if (v1 && zero === 0) throw new RangeError(`zero point 0 (output ${o}, group ${g}) cannot be stored in the GPTQ v1 format, which stores zero − 1`);
      z[g * out + o] = v1 ? zero - 1 : zero;
    }
  }
  return { qweight: packAlongRows(t, inF, out, bits), qzeros: packAlongCols(z, groups, out, bits), gIdx: Int32Array.from(gIdx) };
}

/**
 * Rows [o0, o1) of W[out, in] (row-major float32) from GPTQ parts:
 * w = scale[g][o]·(q − zero), the product taken in float32 of the stored
 * scale's value. Decoded straight from the words, so a caller holding only
 * the packed parts can read any row range.
 */
export function dequantGptq(
  qweight: Int32Array, qzeros: Int32Array, scales: ArrayLike<number>, gIdx: ArrayLike<number>, out: number, inF: number, bits: PackBits, v1: boolean,
  o0 = 0, o1 = out,
): Float32Array {
  const per = 32 / bits, mask = (1 << bits) - 1, zw = out / per, groups = scales.length / out, n = o1 - o0;
  // Each row's zero points and scales by group, then the words in file order (contiguous along the output dim).
  const zr = new Int32Array(n * groups), sr = new Float32Array(n * groups);
  for (let o = o0; o < o1; o++) {
    for (let g = 0; g < groups; g++) {
      // v1 stores zero − 1; loaders add the 1 back without masking (a stored 2^bits − 1 reads as 2^bits).
      zr[(o - o0) * groups + g] = ((qzeros[g * zw + Math.floor(o / per)] >>> (bits * (o % per))) & mask) + (v1 ? 1 : 0);
      sr[(o - o0) * groups + g] = scales[g * out + o];
    }
  }
  const w = new Float32Array(n * inF);
  for (let wi = 0; wi < inF / per; wi++) {
    const base = wi * per;
    for (let o = o0; o < o1; o++) {
      const word = qweight[wi * out + o];
      const dst = (o - o0) * inF + base, zo = (o - o0) * groups;
      for (let j = 0; j < per; j++) {
        const g = gIdx[base + j];
        w[dst + j] = Math.fround(sr[zo + g] * (((word >>> (bits * j)) & mask) - zr[zo + g]));
      }
    }
  }
  return w;
}

/** Rows [o0, o1) of an AWQ GEMM W[out, in]: w = scale[g][o]·(q − zero), groups of `groupSize` consecutive input rows. */
export function dequantAwq(
  qweight: Int32Array, qzeros: Int32Array, scales: ArrayLike<number>, out: number, inF: number, groupSize: number, o0 = 0, o1 = out,
): Float32Array {
  const wc = out / 8;
  const w = new Float32Array((o1 - o0) * inF);
  for (let o = o0; o < o1; o++) {
    const shift = 4 * AWQ_ORDER.indexOf((o % 8) as 0), col = Math.floor(o / 8);
    const row = (o - o0) * inF;
    for (let i = 0; i < inF; i++) {
      const g = Math.floor(i / groupSize);
      const q = (qweight[i * wc + col] >>> shift) & 15;
      const z = (qzeros[g * wc + col] >>> shift) & 15;
      w[row + i] = Math.fround(scales[g * out + o] * (q - z));
    }
  }
  return w;
}

/**
 * Rows [o0, o1) of a compressed-tensors pack-quantized W[out, in] from
 * `weight_packed`, scales [out, groups], optional packed zero points and
 * g_idx: w = scale·(q − zp), q and zp signed (both offset by 2^(bits−1) in storage).
 */
export function dequantPackQuantized(
  packed: Int32Array, scales: ArrayLike<number>, zeroPacked: Int32Array | undefined, gIdx: ArrayLike<number> | undefined,
  out: number, inF: number, groups: number, groupSize: number, bits: PackBits, o0 = 0, o1 = out,
): Float32Array {
  const per = 32 / bits, mask = (1 << bits) - 1, off = 1 << (bits - 1), wc = Math.ceil(inF / per);
  const w = new Float32Array((o1 - o0) * inF);
  for (let o = o0; o < o1; o++) {
    const row = (o - o0) * inF;
    for (let i = 0; i < inF; i++) {
      const g = gIdx ? gIdx[i] : Math.floor(i / groupSize);
      const q = (packed[o * wc + Math.floor(i / per)] >>> (bits * (i % per))) & mask;
      const zero = zeroPacked ? (zeroPacked[Math.floor(o / per) * groups + g] >>> (bits * (o % per))) & mask : off;
      w[row + i] = Math.fround(scales[o * groups + g] * (q - zero));
    }
  }
  return w;
}

/** 1/127 as the float32 constant bitsandbytes multiplies by. */
const INV127 = Math.fround(7.874015718698502e-3);

/** Elements [start, start+count) of a bitsandbytes LLM.int8 W[out, in]: (q · SCB[o]) · (1/127) in float32, in the order its dequantizer multiplies. */
export function dequantBnbInt8(q: Int8Array, scb: ArrayLike<number>, inF: number, start: number, count: number): Float32Array {
  const w = new Float32Array(count);
  for (let n = 0; n < count; n++) {
    const k = start + n;
    w[n] = Math.fround(Math.fround(q[k] * scb[Math.floor(k / inF)]) * INV127);
  }
  return w;
}

export interface Bnb4State {
  quantType: string;
  blocksize: number;
  shape: number[];
  dtype?: string;
  nested?: { blocksize: number; offset: number };
}

/** Elements [start, start+count) of a bitsandbytes 4-bit weight: quant_map[code] · absmax[block] (absmax already de-nested). */
export function dequantBnb4(packed: Uint8Array, absmax: ArrayLike<number>, quantMap: ArrayLike<number>, blocksize: number, start: number, count: number): Float32Array {
  const out = new Float32Array(count);
  for (let n = 0; n < count; n++) {
    const k = start + n;
    const b = packed[k >> 1];
    const code = (k & 1) === 0 ? b >> 4 : b & 15;
    out[n] = Math.fround(quantMap[code] * absmax[Math.floor(k / blocksize)]);
  }
  return out;
}

/** Double-quantized absmax: nested_quant_map[code] · nested_absmax[block] + offset, per bitsandbytes' blockwise dequantization. */
export function denestAbsmax(codes: Uint8Array, nestedMap: ArrayLike<number>, nestedAbsmax: ArrayLike<number>, nestedBlocksize: number, offset: number): Float32Array {
  const out = new Float32Array(codes.length);
  for (let b = 0; b < codes.length; b++) out[b] = Math.fround(Math.fround(nestedMap[codes[b]] * nestedAbsmax[Math.floor(b / nestedBlocksize)]) + offset);
  return out;
}

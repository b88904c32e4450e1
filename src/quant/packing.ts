/**
 * Sub-byte storage as ONNX and ONNX Runtime read it:
 * - int4 / uint4 tensors: two elements per byte, element 2i in the low
 *   nibble, 2i+1 in the high nibble, an odd count padded with a zero nibble;
 * - int2 / uint2: four per byte, element 4i in the lowest two bits;
 * - com.microsoft MatMulNBits: B as uint8 [N, n_blocks_per_col, blob_size]
 *   (each column of the [K, N] weight cut into K-blocks of block_size, codes
 *   packed low bits first), scales [N * n_blocks_per_col], and optional
 *   zero points packed the same way per column, [N * ceil(n_blocks_per_col * bits / 8)];
 *   without zero points the kernel uses 2^(bits-1).
 */
import { quantizeCodes, QuantSpec } from './rtn';
import { CalibratorName, RangeCalibrator } from './calibrators';

/** Pack codes of `bits` (1, 2, 4 or 8) per element, low bits first; signed codes keep their two's-complement low bits. */
export function packBits(codes: ArrayLike<number>, bits: 1 | 2 | 4 | 8): Uint8Array {
  const per = 8 / bits;
  const mask = (1 << bits) - 1;
  const out = new Uint8Array(Math.ceil(codes.length / per));
  for (let i = 0; i < codes.length; i++) {
    out[(i / per) | 0] |= (codes[i] & mask) << ((i % per) * bits);
  }
  return out;
}

/** Unpack `count` codes; `signed` sign-extends from `bits`. */
export function unpackBits(bytes: Uint8Array, count: number, bits: 1 | 2 | 4 | 8, signed: boolean): Int8Array | Uint8Array {
  const per = 8 / bits;
  if (bytes.length * per < count) throw new RangeError(`unpack: ${bytes.length} bytes hold at most ${bytes.length * per} ${bits}-bit codes, ${count} requested`);
  const mask = (1 << bits) - 1;
  const out = signed ? new Int8Array(count) : new Uint8Array(count);
  const shift = 32 - bits;
  for (let i = 0; i < count; i++) {
    const v = (bytes[(i / per) | 0] >> ((i % per) * bits)) & mask;
    out[i] = signed ? (v << shift) >> shift : v;
  }
  return out;
}

/** ONNX int4 / uint4 raw data. */
export function packInt4(codes: ArrayLike<number>): Uint8Array {
  const n = codes.length;
  const out = new Uint8Array((n + 1) >> 1);
  const pairs = n >> 1;
  for (let j = 0; j < pairs; j++) out[j] = (codes[2 * j] & 15) | ((codes[2 * j + 1] & 15) << 4);
  if (n & 1) out[pairs] = codes[n - 1] & 15;
  return out;
}
export function unpackInt4(bytes: Uint8Array, count: number): Int8Array {
  return unpackBits(bytes, count, 4, true) as Int8Array;
}
export function unpackUint4(bytes: Uint8Array, count: number): Uint8Array {
  return unpackBits(bytes, count, 4, false) as Uint8Array;
}
/** ONNX int2 / uint2 raw data. */
export function packInt2(codes: ArrayLike<number>): Uint8Array {
  return packBits(codes, 2);
}
export function unpackInt2(bytes: Uint8Array, count: number): Int8Array {
  return unpackBits(bytes, count, 2, true) as Int8Array;
}
export function unpackUint2(bytes: Uint8Array, count: number): Uint8Array {
  return unpackBits(bytes, count, 2, false) as Uint8Array;
}

// ---------------------------------------------------------------- MatMulNBits

export interface MatMulNBitsOptions {
  bits?: 2 | 4 | 8;
  /** Power of two >= 16, as the contrib op requires. Default 32. */
  blockSize?: number;
  /** Symmetric: no zero-point input (the op's default 2^(bits-1)); asymmetric: per-block uint zero points. Default false. */
  symmetric?: boolean;
  calibrator?: CalibratorName | RangeCalibrator;
}

export interface MatMulNBitsWeights {
  K: number;
  N: number;
  bits: number;
  blockSize: number;
  nBlocksPerCol: number;
  blobSize: number;
  /** uint8 [N, nBlocksPerCol, blobSize]. */
  B: Uint8Array;
  /** float32 [N * nBlocksPerCol]. */
  scales: Float32Array;
  /** uint8 [N * ceil(nBlocksPerCol * bits / 8)], or null when symmetric (the op's default zero point applies). */
  zeroPoints: Uint8Array | null;
  /** What the op computes with: the weight decoded from B / scales / zero points, float32 [K, N] (computed on first access). */
  readonly dequantized: Float32Array;
}

/**
 * Quantize a MatMul weight W (float32 [K, N], ONNX MatMul's B input) for
 * com.microsoft MatMulNBits. Codes are uint with the zero point of each
 * K-block; a ragged last block is padded with the zero-point code.
 */
export function packMatMulNBits(w: Float32Array, K: number, N: number, opts: MatMulNBitsOptions = {}): MatMulNBitsWeights {
  const bits = opts.bits ?? 4;
  const blockSize = opts.blockSize ?? 32;
  if (bits !== 2 && bits !== 4 && bits !== 8) throw new RangeError(`MatMulNBits: bits must be 2, 4 or 8, got ${bits}`);
  if (!(blockSize >= 16 && (blockSize & (blockSize - 1)) === 0)) throw new RangeError(`MatMulNBits: block_size must be a power of two >= 16, got ${blockSize}`);
  if (w.length !== K * N) throw new RangeError(`MatMulNBits: weight has ${w.length} elements, expected K*N = ${K}*${N}`);
  const symmetric = opts.symmetric ?? false;
  // Quantize the transpose [N, K] so each column's K-blocks are contiguous groups.
  const wt = transpose(w, K, N);
  const spec: QuantSpec = {
    format: 'uint', bits, symmetric, range: 'full',
    granularity: { kind: 'group', axis: 1, size: blockSize },
    calibrator: opts.calibrator,
  };
  const q = quantizeCodes(wt, [N, K], spec);
  const nb = Math.ceil(K / blockSize);
  const blobSize = (blockSize * bits) / 8;
  const B = new Uint8Array(N * nb * blobSize);
  const perByte = 8 / bits;
  const zpDefault = 1 << (bits - 1);
  const codes = q.codes;
  if (bits === 4 && K % blockSize === 0) {
    // Whole blocks: B is the [N, K] code matrix packed two per byte, in order.
    for (let j = 0, e = (N * K) >> 1; j < e; j++) B[j] = codes[2 * j] | (codes[2 * j + 1] << 4);
  } else {
    for (let n = 0; n < N; n++) {
      for (let b = 0; b < nb; b++) {
        const zp = q.zeroPoints![n * nb + b];
        const off = (n * nb + b) * blobSize;
        for (let j = 0; j < blockSize; j++) {
          const k = b * blockSize + j;
          const c = k < K ? codes[n * K + k] : zp;
          B[off + ((j / perByte) | 0)] |= c << ((j % perByte) * bits);
        }
      }
    }
  }
  let zeroPoints: Uint8Array | null = null;
  if (!symmetric) {
    const zpBytes = Math.ceil((nb * bits) / 8);
    zeroPoints = new Uint8Array(N * zpBytes);
    for (let n = 0; n < N; n++) {
      for (let b = 0; b < nb; b++) {
        zeroPoints[n * zpBytes + ((b / perByte) | 0)] |= q.zeroPoints![n * nb + b] << ((b % perByte) * bits);
      }
    }
  } else {
    for (let g = 0; g < q.zeroPoints!.length; g++) {
      if (q.zeroPoints![g] !== zpDefault) throw new Error(`MatMulNBits: symmetric zero point ${q.zeroPoints![g]} differs from the op default ${zpDefault}`);
    }
  }
  const out = { K, N, bits, blockSize, nBlocksPerCol: nb, blobSize, B, scales: q.scales, zeroPoints };
  // Dequantized weights are decoded from the packed bytes on first use: a converter rarely needs
  // them, and for a 4096x4096 layer they are 64 MB of fresh memory.
  let deq: Float32Array | undefined;
  return Object.defineProperty(out, 'dequantized', {
    enumerable: true,
    get: () => (deq ??= unpackMatMulNBits(out)),
  }) as MatMulNBitsWeights;
}

/** Dequantize MatMulNBits inputs back to float32 [K, N], reading only the packed bytes (as the op does). */
export function unpackMatMulNBits(
  m: Pick<MatMulNBitsWeights, 'K' | 'N' | 'bits' | 'blockSize' | 'B' | 'scales' | 'zeroPoints'>,
): Float32Array {
  const { K, N, bits, blockSize } = m;
  const nb = Math.ceil(K / blockSize);
  const blobSize = (blockSize * bits) / 8;
  const perByte = 8 / bits;
  const mask = (1 << bits) - 1;
  const zpBytes = Math.ceil((nb * bits) / 8);
  if (m.B.length !== N * nb * blobSize) throw new RangeError(`MatMulNBits: B has ${m.B.length} bytes, expected ${N * nb * blobSize}`);
  if (m.scales.length !== N * nb) throw new RangeError(`MatMulNBits: ${m.scales.length} scales, expected ${N * nb}`);
  if (m.zeroPoints && m.zeroPoints.length !== N * zpBytes) throw new RangeError(`MatMulNBits: ${m.zeroPoints.length} zero-point bytes, expected ${N * zpBytes}`);
  const out = new Float32Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < nb; b++) {
      const s = m.scales[n * nb + b];
      const zp = m.zeroPoints ? (m.zeroPoints[n * zpBytes + ((b / perByte) | 0)] >> ((b % perByte) * bits)) & mask : 1 << (bits - 1);
      const off = (n * nb + b) * blobSize;
      for (let j = 0; j < blockSize; j++) {
        const k = b * blockSize + j;
        if (k >= K) break;
        const c = (m.B[off + ((j / perByte) | 0)] >> ((j % perByte) * bits)) & mask;
        out[k * N + n] = Math.fround((c - zp) * s);
      }
    }
  }
  return out;
}

/** Transpose a row-major [rows, cols] matrix, in 32x32 tiles so both sides stay in cache. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  const T = 32;
  for (let r0 = 0; r0 < rows; r0 += T) {
    const r1 = Math.min(r0 + T, rows);
    for (let c0 = 0; c0 < cols; c0 += T) {
      const c1 = Math.min(c0 + T, cols);
      for (let r = r0; r < r1; r++) {
        const src = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = a[src + c];
      }
    }
  }
  return out;
}

/**
 * How quantized weights are laid out in ONNX files, both ways: packing the
 * engine's integer grids into the tensors ONNX Runtime reads, and decoding
 * those tensors back to float32 (what verification compares with the
 * engine's prediction).
 *
 * - MatMulNBits (com.microsoft): B uint8 [N, nBlocks, blockSize·bits/8],
 *   codes of column n's k-block packed low bits first; scales [N·nBlocks];
 *   zero_points uint8 [N · ceil(nBlocks·bits/8)] packed the same way, absent
 *   for the op's default 2^(bits−1); optional g_idx int32 [K] (group of each
 *   k when act-order reordered them). w[k, n] = scale[n, g(k)]·(code − zp).
 * - DequantizeLinear: int8/uint8 (or int4/uint4, two per byte, low nibble
 *   first) per tensor, per channel on `axis`, or in blocks of `block_size`
 *   along `axis` (opset 21). w = (q − zp)·scale.
 */
import type { GridQuantized } from './algorithms/intGrid';
import { roundHalfEven } from './numberFormats';
import { f32ToF16, f16ToF32 } from '../formats/dtypes';
import { nbitsGeometry } from '../formats/onnx/quantizedLayouts';

// The decoders live with the ONNX reader (formats floor), which shows quantized weights dequantized.
export { unpackNBits, dequantizeDq } from '../formats/onnx/quantizedLayouts';

export interface NBitsTensors {
  K: number; N: number; bits: number; blockSize: number; nBlocks: number;
  B: Uint8Array;
  scales: Float32Array;
  zeroPoints: Uint8Array | null;
  gIdx: Int32Array | null;
}

/**
 * Pack a grid quantized as [N rows, Kp cols] (Kp = K rounded up to whole
 * blocks; columns past K are padding) into MatMulNBits tensors.
 */
export function packNBits(q: GridQuantized, K: number, bits: number, blockSize: number, symmetric: boolean): NBitsTensors {
  const N = q.rows;
  const Kp = q.cols;
  const nBlocks = Math.ceil(K / blockSize);
  if (Kp !== nBlocks * blockSize && !(Kp === K)) throw new RangeError(`packNBits: ${Kp} columns for K=${K}, block ${blockSize}`);
  const blob = (blockSize * bits) / 8;
  const perByte = 8 / bits;
  const B = new Uint8Array(N * nBlocks * blob);
  const reordered = q.groupIndex.some((g, j) => g !== Math.floor(j / blockSize));
  if (q.nGroups !== nBlocks && !reordered) throw new RangeError(`packNBits: ${q.nGroups} groups per row, expected ${nBlocks}`);
  for (let n = 0; n < N; n++) {
    const row = n * Kp;
    const outRow = n * nBlocks * blob;
    if (bits === 8) {
      B.set(q.codes.subarray(row, row + K), outRow);
      // Padding past K: the block's zero point, so the padded weights decode to 0.
      for (let k = K; k < nBlocks * blockSize; k++) B[outRow + k] = q.zeroPoints[n * q.nGroups + q.groupIndex[Math.min(k, Kp - 1)]];
      continue;
    }
    for (let k = 0; k < nBlocks * blockSize; k++) {
      const c = k < K ? q.codes[row + k] : q.zeroPoints[n * q.nGroups + Math.floor(k / blockSize)];
      B[outRow + ((k / perByte) | 0)] |= c << ((k % perByte) * bits);
    }
  }
  let zeroPoints: Uint8Array | null = null;
  if (!symmetric) {
    const zpBytes = Math.ceil((q.nGroups * bits) / 8);
    zeroPoints = new Uint8Array(N * zpBytes);
    for (let n = 0; n < N; n++) {
      for (let g = 0; g < q.nGroups; g++) zeroPoints[n * zpBytes + ((g / perByte) | 0)] |= q.zeroPoints[n * q.nGroups + g] << ((g % perByte) * bits);
    }
  }
  let gIdx: Int32Array | null = null;
  if (reordered) gIdx = Int32Array.from(q.groupIndex.subarray(0, K));
  return { K, N, bits, blockSize, nBlocks, B, scales: q.scales, zeroPoints, gIdx };
}

/**
 * The fingerprint of unpackNBits(t) without building the [K, N] matrix:
 * one block of rows at a time, so verifying a 4096×4096 weight touches a few
 * MB instead of 64.
 */
export function digestNBits(
  t: { K: number; N: number; bits: number; blockSize: number; B: Uint8Array; scales: ArrayLike<number>; zeroPoints: Uint8Array | null },
): string {
  const { K, N, blockSize, bits } = t;
  const { nBlocks, nGroups, blob, perByte, mask, zpBytes } = nbitsGeometry(t);
  if (nGroups !== nBlocks) throw new RangeError(`MatMulNBits has ${t.scales.length} scales, expected ${N * nBlocks}`);
  const tmp = new Float32Array(blockSize * N);
  const d = new Float32Digest();
  for (let b = 0; b < nBlocks; b++) {
    const rows = Math.min(blockSize, K - b * blockSize);
    for (let n = 0; n < N; n++) {
      const s = t.scales[n * nBlocks + b];
      const zp = t.zeroPoints ? (t.zeroPoints[n * zpBytes + ((b / perByte) | 0)] >> ((b % perByte) * bits)) & mask : 1 << (bits - 1);
      const base = n * nBlocks * blob + b * blob;
      for (let j = 0; j < rows; j++) {
        const c = (t.B[base + ((j / perByte) | 0)] >> ((j % perByte) * bits)) & mask;
        tmp[j * N + n] = Math.fround((c - zp) * s);
      }
    }
    d.update(new Uint32Array(tmp.buffer, 0, rows * N));
  }
  return d.value();
}

/** Scales rounded to float16 (for float16 models) and the grid's dequantized values recomputed with them. */
export function roundScalesToF16(q: GridQuantized): void {
  for (let i = 0; i < q.scales.length; i++) q.scales[i] = f16ToF32(f32ToF16(q.scales[i]));
  const g = q.nGroups;
  for (let r = 0; r < q.rows; r++) {
    for (let c = 0; c < q.cols; c++) {
      const gi = r * g + q.groupIndex[c];
      q.dequantized[r * q.cols + c] = Math.fround(q.scales[gi] * (q.codes[r * q.cols + c] - q.zeroPoints[gi]));
    }
  }
}

// ---------------------------------------------------------------- DequantizeLinear layouts

export interface AxisQuantized {
  /** Codes in the weight's own element order: int8 values for signed grids, uint8 for asymmetric. */
  codes: Int8Array | Uint8Array;
  signed: boolean;
  bits: 4 | 8;
  /** Scale tensor values and its dims (scalar, [C] per channel, or the blocked shape). */
  scales: Float32Array;
  scaleDims: number[];
  zeroPoints: Int8Array | Uint8Array;
  /** -1: per tensor. */
  axis: number;
  blockSize: number;
  dequantized: Float32Array;
}

/**
 * Quantize a weight for DequantizeLinear: per tensor (axis -1), per channel
 * on `axis` (blockSize 0), or in blocks of blockSize along `axis`.
 * Symmetric grids are signed with zero point 0 and scale max|w|/(2^(b−1)−1);
 * asymmetric grids are unsigned over a range that contains 0.
 */
export function quantizeForDq(
  w: Float32Array, dims: number[], axis: number, blockSize: number, bits: 4 | 8, symmetric: boolean, f16Scales = false,
): AxisQuantized {
  const rank = dims.length;
  const ax = axis < 0 ? -1 : axis;
  const outer = ax < 0 ? 1 : dims.slice(0, ax).reduce((a, b) => a * b, 1);
  const len = ax < 0 ? w.length : dims[ax];
  const inner = ax < 0 ? 1 : dims.slice(ax + 1).reduce((a, b) => a * b, 1);
  // Groups: per channel = all (outer, inner) for one index on axis; blocked = one (outer, block, inner).
  const perChannel = ax >= 0 && blockSize === 0;
  const nb = blockSize > 0 ? Math.ceil(len / blockSize) : 1;
  const nGroups = ax < 0 ? 1 : perChannel ? len : outer * nb * inner;
  // Group of element (o, k, i): per tensor 0, per channel k, blocked (o·nb + ⌊k/blockSize⌋)·inner + i;
  // `step` is 0 when a row (o, k) is one group, 1 when its elements run through consecutive groups.
  const rowGroup = (o: number, k: number): number => (ax < 0 ? 0 : perChannel ? k : (o * nb + Math.floor(k / blockSize)) * inner);
  const step = ax >= 0 && !perChannel ? 1 : 0;
  const lo = new Float64Array(nGroups);
  const hi = new Float64Array(nGroups);
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < len; k++) {
      const base = (o * len + k) * inner;
      const g0 = rowGroup(o, k);
      if (step === 0) {
        let l = lo[g0], h = hi[g0];
        for (let i = 0; i < inner; i++) {
          const v = w[base + i];
          if (v < l) l = v;
          if (v > h) h = v;
        }
        lo[g0] = l;
        hi[g0] = h;
        continue;
      }
      for (let i = 0; i < inner; i++) {
        const g = g0 + i;
        const v = w[base + i];
        if (v < lo[g]) lo[g] = v;
        if (v > hi[g]) hi[g] = v;
      }
    }
  }
  const signed = symmetric;
  const qmin = signed ? -(1 << (bits - 1)) : 0;
  const qmax = signed ? (1 << (bits - 1)) - 1 : (1 << bits) - 1;
  const scales = new Float32Array(nGroups);
  const zps = signed ? new Int8Array(nGroups) : new Uint8Array(nGroups);
  for (let g = 0; g < nGroups; g++) {
    let s: number;
    let z = 0;
    if (signed) {
      const amax = Math.max(-lo[g], hi[g]);
      s = amax > 0 ? amax / qmax : 1;
    } else {
      s = hi[g] > lo[g] ? (hi[g] - lo[g]) / qmax : 1;
    }
    s = f16Scales ? f16ToF32(f32ToF16(s)) : Math.fround(s);
    if (s === 0) s = f16Scales ? f16ToF32(1) : 1;
    if (!signed) z = Math.min(qmax, Math.max(0, roundHalfEven(-lo[g] / s)));
    scales[g] = s;
    zps[g] = z;
  }
  const codes = signed ? new Int8Array(w.length) : new Uint8Array(w.length);
  const dq = new Float32Array(w.length);
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < len; k++) {
      const base = (o * len + k) * inner;
      const g0 = rowGroup(o, k);
      for (let i = 0; i < inner; i++) {
        const g = g0 + step * i;
        const s = scales[g];
        const z = zps[g];
        let q = roundHalfEven(Math.fround(w[base + i] / s)) + z;
        q = q < qmin ? qmin : q > qmax ? qmax : q;
        codes[base + i] = q;
        dq[base + i] = Math.fround((q - z) * s);
      }
    }
  }
  let scaleDims: number[];
  if (ax < 0) scaleDims = [];
  else if (perChannel) scaleDims = [len];
  else scaleDims = dims.map((d, i) => (i === ax ? nb : d));
  if (rank === 0) scaleDims = [];
  return { codes, signed, bits, scales, scaleDims, zeroPoints: zps, axis: ax, blockSize, dequantized: dq };
}

/** Codes as the bytes of an INT8/UINT8 or INT4/UINT4 tensor (4-bit: two per byte, low nibble first). */
export function dqCodeBytes(codes: Int8Array | Uint8Array, bits: 4 | 8): Uint8Array {
  if (bits === 8) return new Uint8Array(codes.buffer, codes.byteOffset, codes.length);
  const out = new Uint8Array(Math.ceil(codes.length / 2));
  for (let i = 0; i < codes.length; i++) out[i >> 1] |= (codes[i] & 0xf) << ((i & 1) * 4);
  return out;
}

/**
 * A compact fingerprint of a prediction (float32 bit patterns), compared
 * after the write: four interleaved multiplicative hashes (element i feeds
 * lane i mod 4), so a SIMD kernel can fold it in four columns at a time.
 */
export class Float32Digest {
  readonly h = new Int32Array(4).fill(0x811c9dc5 | 0);
  private n = 0;
  update(u: Uint32Array): void {
    const h = this.h;
    let lane = this.n & 3;
    for (let i = 0; i < u.length; i++) {
      h[lane] = Math.imul(h[lane] ^ u[i], 0x01000193);
      lane = (lane + 1) & 3;
    }
    this.n += u.length;
  }
  /** Lanes computed elsewhere (the SIMD kernel) for `count` elements. */
  setState(h: Int32Array, count: number): void {
    this.h.set(h);
    this.n = count;
  }
  value(): string {
    return `${Array.from(this.h, (v) => (v >>> 0).toString(16).padStart(8, '0')).join('')}:${this.n}`;
  }
}

export function float32Digest(a: Float32Array): string {
  const d = new Float32Digest();
  d.update(new Uint32Array(a.buffer, a.byteOffset, a.length));
  return d.value();
}

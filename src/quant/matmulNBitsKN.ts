/**
 * Round-to-nearest MatMulNBits straight from a MatMul weight as ONNX stores
 * it (float32 [K, N], row-major), without transposing it first.
 *
 * The blocks MatMulNBits wants run down the columns (K), so the usual route
 * is transpose → quantize rows → pack. Here each block of `blockSize` rows is
 * walked twice, row by row (contiguous reads): once for every column's range,
 * once to encode, pack into the column's blob and fold the prediction into
 * its fingerprint and error sums. Same grid and rounding as
 * algorithms/intGrid.ts (held equal by test), so the result is the engine's
 * RTN, just laid out for the op directly.
 */
import { roundHalfEven } from './numberFormats';
import { Float32Digest } from './onnxLayouts';

export interface NBitsKNResult {
  /** uint8 [N, nBlocks, blockSize·bits/8]. */
  B: Uint8Array;
  /** [N·nBlocks], column-major by block as the op reads it. */
  scales: Float32Array;
  /** Packed like B's codes, [N · ceil(nBlocks·bits/8)]; null when symmetric. */
  zeroPoints: Uint8Array | null;
  nBlocks: number;
  /** Fingerprint of the dequantized [K, N] weight (float32Digest order). */
  digest: string;
  /** Σw², Σ(w − ŵ)², max|w − ŵ| over the weight. */
  sumSq: number;
  errSq: number;
  maxAbs: number;
}

const FLT_MIN = 1.1754943508222875e-38;

export function quantizeNBitsKN(w: Float32Array, K: number, N: number, bits: 2 | 4 | 8, blockSize: number, symmetric: boolean, out?: Uint8Array): NBitsKNResult {
  if (w.length < K * N) throw new RangeError(`quantizeNBitsKN: ${w.length} values for K×N = ${K}×${N}`);
  const nb = Math.ceil(K / blockSize);
  const blob = (blockSize * bits) / 8;
  const colStride = nb * blob;
  const perByte = 8 / bits;
  const shift = Math.log2(perByte);
  const qmax = (1 << bits) - 1;
  const mid = 1 << (bits - 1);
  const bytes = N * colStride;
  const B = out && out.length >= bytes ? out.subarray(0, bytes) : new Uint8Array(bytes);
  B.fill(0);
  const scales = new Float32Array(N * nb);
  const zpBytes = Math.ceil((nb * bits) / 8);
  const zeroPoints = symmetric ? null : new Uint8Array(N * zpBytes);
  const lo = new Float32Array(N);
  const hi = new Float32Array(N);
  const s = new Float64Array(N);
  const z = new Float64Array(N);
  const row = new Float32Array(N);
  const rowBits = new Uint32Array(row.buffer);
  const digest = new Float32Digest();
  let sumSq = 0, errSq = 0, maxAbs = 0;
  for (let b = 0; b < nb; b++) {
    const k0 = b * blockSize;
    const k1 = Math.min(K, k0 + blockSize);
    lo.fill(0);
    hi.fill(0);
    if (symmetric) {
      for (let k = k0; k < k1; k++) {
        const o = k * N;
        for (let n = 0; n < N; n++) {
          const v = w[o + n];
          const a = v < 0 ? -v : v;
          if (a > hi[n]) hi[n] = a;
        }
      }
      for (let n = 0; n < N; n++) {
        // rtn.ts's rule: a float32 scale, 1 when it would be zero or subnormal.
        const f = Math.fround(hi[n] / (mid - 1));
        const sc = f >= FLT_MIN ? f : 1;
        s[n] = sc;
        z[n] = mid;
        scales[n * nb + b] = sc;
      }
    } else {
      for (let k = k0; k < k1; k++) {
        const o = k * N;
        for (let n = 0; n < N; n++) {
          const v = w[o + n];
          if (v < lo[n]) lo[n] = v;
          if (v > hi[n]) hi[n] = v;
        }
      }
      for (let n = 0; n < N; n++) {
        // rtn.ts's rule (as ORT in float32): the span rounded to float32 before the division, the zero point from the float32 quotient.
        let sc = 1, zp = 0;
        const f = Math.fround(Math.fround(hi[n] - lo[n]) / qmax);
        if (f >= FLT_MIN) {
          sc = f;
          const r = roundHalfEven(Math.fround(-Math.fround(lo[n] / sc)));
          zp = r < 0 ? 0 : r > qmax ? qmax : r;
        }
        s[n] = sc;
        z[n] = zp;
        scales[n * nb + b] = sc;
        zeroPoints![n * zpBytes + ((b / perByte) | 0)] |= zp << ((b % perByte) * bits);
      }
    }
    for (let k = k0; k < k1; k++) {
      const o = k * N;
      const j = k - k0;
      const byteInBlob = b * blob + (j >> shift);
      const sh = (j & (perByte - 1)) * bits;
      for (let n = 0; n < N; n++) {
        const v = w[o + n];
        const sc = s[n];
        let q = roundHalfEven(Math.fround(v / sc)) + z[n];
        q = q < 0 ? 0 : q > qmax ? qmax : q;
        B[n * colStride + byteInBlob] |= q << sh;
        const d = Math.fround(sc * (q - z[n]));
        row[n] = d;
        const e = v - d;
        sumSq += v * v;
        errSq += e * e;
        const ae = e < 0 ? -e : e;
        if (ae > maxAbs) maxAbs = ae;
      }
      digest.update(rowBits);
    }
    // Rows past K in the last block: the zero-point code, so padding decodes to 0.
    for (let j = k1 - k0; j < blockSize; j++) {
      const byteInBlob = b * blob + (j >> shift);
      const sh = (j & (perByte - 1)) * bits;
      for (let n = 0; n < N; n++) B[n * colStride + byteInBlob] |= z[n] << sh;
    }
  }
  return { B, scales, zeroPoints, nBlocks: nb, digest: digest.value(), sumSq, errSq, maxAbs };
}

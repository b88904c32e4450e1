/**
 * Decoding the quantized weight forms ONNX files store, to float32: the
 * MatMulNBits blobs (com.microsoft) and DequantizeLinear codes. The ONNX
 * reader's dequantized view (quantizedView.ts) and verification both decode
 * through these; the packing side is src/quant/onnxLayouts.ts.
 */

/** Sizes of a MatMulNBits weight's parts, checked against the tensors given. */
export function nbitsGeometry(t: { K: number; N: number; bits: number; blockSize: number; B: Uint8Array; scales: ArrayLike<number> }) {
  const nBlocks = Math.ceil(t.K / t.blockSize);
  const blob = (t.blockSize * t.bits) / 8;
  if (t.B.length !== t.N * nBlocks * blob) throw new RangeError(`MatMulNBits B has ${t.B.length} bytes, expected ${t.N * nBlocks * blob}`);
  const nGroups = t.scales.length / t.N;
  return { nBlocks, nGroups, blob, perByte: 8 / t.bits, mask: (1 << t.bits) - 1, zpBytes: Math.ceil((nGroups * t.bits) / 8) };
}

/** Decode MatMulNBits tensors to float32 [K, N] (the op's B as a plain MatMul weight). */
export function unpackNBits(
  t: { K: number; N: number; bits: number; blockSize: number; B: Uint8Array; scales: ArrayLike<number>; zeroPoints: Uint8Array | null; gIdx: Int32Array | null },
): Float32Array {
  const { K, N, bits, blockSize } = t;
  const { nBlocks, nGroups, blob, perByte, mask, zpBytes } = nbitsGeometry(t);
  const out = new Float32Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let k = 0; k < K; k++) {
      const g = t.gIdx ? t.gIdx[k] : Math.floor(k / blockSize);
      const s = t.scales[n * nGroups + g];
      const zp = t.zeroPoints ? (t.zeroPoints[n * zpBytes + ((g / perByte) | 0)] >> ((g % perByte) * bits)) & mask : 1 << (bits - 1);
      const c = (t.B[n * nBlocks * blob + ((k / perByte) | 0)] >> ((k % perByte) * bits)) & mask;
      out[k * N + n] = Math.fround((c - zp) * s);
    }
  }
  return out;
}

/** Decode a DequantizeLinear weight (ONNX semantics, float32 result). */
export function dequantizeDq(
  codes: ArrayLike<number>, dims: number[], scales: ArrayLike<number>, zeroPoints: ArrayLike<number> | null, axis: number, blockSize: number,
): Float32Array {
  const numel = dims.reduce((a, b) => a * b, 1);
  const out = new Float32Array(numel);
  if (scales.length === 1 && axis < 0) {
    const z = zeroPoints ? zeroPoints[0] : 0;
    for (let i = 0; i < numel; i++) out[i] = Math.fround((codes[i] - z) * scales[0]);
    return out;
  }
  const ax = axis < 0 ? axis + dims.length : axis;
  const outer = dims.slice(0, ax).reduce((a, b) => a * b, 1);
  const len = dims[ax];
  const inner = dims.slice(ax + 1).reduce((a, b) => a * b, 1);
  const nb = blockSize > 0 ? Math.ceil(len / blockSize) : 0;
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < len; k++) {
      const base = (o * len + k) * inner;
      for (let i = 0; i < inner; i++) {
        const g = blockSize > 0 ? (o * nb + Math.floor(k / blockSize)) * inner + i : k;
        const z = zeroPoints ? zeroPoints[g] : 0;
        out[base + i] = Math.fround((codes[base + i] - z) * scales[g]);
      }
    }
  }
  return out;
}

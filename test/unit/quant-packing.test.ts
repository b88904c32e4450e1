import * as assert from 'node:assert/strict';
import { packInt4, unpackInt4, unpackUint4, packInt2, unpackInt2, unpackUint2, packBits, unpackBits, packMatMulNBits, unpackMatMulNBits, quantize } from '../../src/quant';
import { rng, randomTensor } from './quant-testUtil';

describe('quant packing', () => {
  it('int4: low nibble first, odd counts padded with a zero nibble (the ONNX spec example layout)', () => {
    // ONNX: [a, b, c] -> byte0 = (b << 4) | (a & 0xF), byte1 = c & 0xF.
    assert.deepEqual(Array.from(packInt4([1, -2, 7])), [((-2 & 0xf) << 4) | 1, 7]);
    assert.deepEqual(Array.from(packInt4([-8, 7, -1, 0])), [0x78, 0x0f]);
    assert.deepEqual(Array.from(unpackInt4(Uint8Array.of(0x78, 0x0f), 4)), [-8, 7, -1, 0]);
    assert.deepEqual(Array.from(unpackUint4(Uint8Array.of(0x78, 0x0f), 3)), [8, 7, 15]);
  });

  it('int4 / int2 / 1-bit round-trips over random codes of every length 0..40', () => {
    const r = rng(1);
    for (let n = 0; n <= 40; n++) {
      for (const [bits, lo, hi] of [[4, -8, 7], [2, -2, 1], [1, 0, 1], [8, -128, 127]] as const) {
        const codes = Array.from({ length: n }, () => lo + Math.floor(r() * (hi - lo + 1)));
        const packed = packBits(codes, bits);
        assert.equal(packed.length, Math.ceil((n * bits) / 8));
        assert.deepEqual(Array.from(unpackBits(packed, n, bits, lo < 0)), codes);
      }
    }
    assert.deepEqual(Array.from(packInt2([1, -1, -2, 0, 1])), [(0 << 6) | (2 << 4) | (3 << 2) | 1, 1]);
    assert.deepEqual(Array.from(unpackInt2(Uint8Array.of(0b00101101), 4)), [1, -1, -2, 0]);
    assert.deepEqual(Array.from(unpackUint2(Uint8Array.of(0b00101101), 4)), [1, 3, 2, 0]);
    assert.throws(() => unpackInt4(new Uint8Array(1), 3), /at most 2/);
  });

  it('MatMulNBits layout: blob bytes, scales and packed zero points read back per the contrib-op docs', () => {
    const K = 70; // 3 blocks of 32, the last ragged
    const N = 5;
    const w = randomTensor(K * N, 4);
    const m = packMatMulNBits(w, K, N, { bits: 4, blockSize: 32 });
    assert.equal(m.nBlocksPerCol, 3);
    assert.equal(m.blobSize, 16);
    assert.equal(m.B.length, N * 3 * 16);
    assert.equal(m.scales.length, N * 3);
    assert.equal(m.zeroPoints!.length, N * 2); // ceil(3 blocks * 4 bits / 8)
    // Independent reference: quantize column n's block b directly, then read the bytes by hand.
    for (let n = 0; n < N; n++) {
      for (let b = 0; b < 3; b++) {
        const len = Math.min(32, K - b * 32);
        const col = new Float32Array(len);
        for (let j = 0; j < len; j++) col[j] = w[(b * 32 + j) * N + n];
        const q = quantize(col, [len], { format: 'uint', bits: 4, symmetric: false, granularity: { kind: 'tensor' } });
        assert.equal(m.scales[n * 3 + b], q.scales[0]);
        const zpByte = m.zeroPoints![n * 2 + (b >> 1)];
        assert.equal(b & 1 ? zpByte >> 4 : zpByte & 15, q.zeroPoints![0]);
        for (let j = 0; j < 32; j++) {
          const byte = m.B[(n * 3 + b) * 16 + (j >> 1)];
          const c = j & 1 ? byte >> 4 : byte & 15;
          assert.equal(c, j < len ? q.codes[j] : q.zeroPoints![0], `n=${n} b=${b} j=${j}`);
        }
      }
    }
    // Decoding the packed inputs gives what blocked quantization of each column gives, for every width and both modes.
    for (const [bitsN, bs, symmetric, KK] of [[4, 32, false, K], [4, 32, true, K], [8, 16, false, K], [2, 16, false, K], [4, 32, false, 96], [4, 16, true, 96]] as const) {
      const ww = randomTensor(KK * N, 9 + KK);
      const p = packMatMulNBits(ww, KK, N, { bits: bitsN, blockSize: bs, symmetric });
      if (symmetric) assert.equal(p.zeroPoints, null);
      const wt = new Float32Array(KK * N);
      for (let k = 0; k < KK; k++) for (let n = 0; n < N; n++) wt[n * KK + k] = ww[k * N + n];
      const ref = quantize(wt, [N, KK], { format: 'uint', bits: bitsN, symmetric, range: 'full', granularity: { kind: 'group', axis: 1, size: bs } }, { impl: 'ref' });
      const dec = unpackMatMulNBits(p);
      for (let k = 0; k < KK; k++) for (let n = 0; n < N; n++) assert.equal(dec[k * N + n], ref.dequantized[n * KK + k], `bits ${bitsN} K ${KK} k=${k} n=${n}`);
      assert.equal(p.dequantized[5], dec[5]);
    }
    assert.throws(() => packMatMulNBits(w, K, N, { blockSize: 24 }), /power of two >= 16/);
    assert.throws(() => packMatMulNBits(w, K, N + 1), /expected K\*N/);
  });
});

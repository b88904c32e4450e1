import * as assert from 'node:assert/strict';
import {
  AWQ_ORDER, dequantAwq, dequantBnb4, dequantBnbInt8, dequantGptq, dequantPackQuantized, denestAbsmax,
  packAlongCols, packAlongRows, packAwq, packGptq, unpackAlongCols, unpackAlongRows, unpackAwq,
} from '../../src/formats/safetensors/quantizedLayouts';

/** A deterministic integer stream in [0, n). */
function ints(count: number, n: number, seed: number): Uint8Array {
  let x = seed >>> 0;
  return Uint8Array.from({ length: count }, () => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 8) % n);
}

/** Bits [shift, shift+bits) of a 32-bit word, read as an unsigned number (the spec's shift-and-mask). */
const field = (word: number, shift: number, bits: number) => Math.floor((word >>> 0) / 2 ** shift) % 2 ** bits;

describe('quantized checkpoint layouts (formats/safetensors/quantizedLayouts)', () => {
  it('hand-computed words: GPTQ qweight and qzeros, compressed-tensors (its docstring example), AWQ order', () => {
    // GPTQ 4-bit: input rows 0..7 of one output column hold 1..8; row 0 in the lowest nibble → 0x87654321.
    const q = packAlongRows([1, 2, 3, 4, 5, 6, 7, 8], 8, 1, 4);
    assert.deepEqual(Array.from(q), [0x87654321 | 0]);
    assert.equal(q[0], -2023406815);
    // Symmetric 4-bit zero point 8 is stored as 7 in the v1 format: eight outputs → 0x77777777.
    const g = packGptq(new Uint8Array(8 * 8).fill(8), new Uint8Array(8).fill(8), 8, 8, 1, new Int32Array(8), 4, true);
    assert.deepEqual(Array.from(g.qzeros), [0x77777777]);
    assert.deepEqual(Array.from(g.qweight), [0x88888888 | 0, 0x88888888 | 0, 0x88888888 | 0, 0x88888888 | 0, 0x88888888 | 0, 0x88888888 | 0, 0x88888888 | 0, 0x88888888 | 0]);
    // compressed-tensors pack_to_int32 docstring: 8-bit [1, 2] → +128 → [129, 130, 0, 0] → 33409.
    assert.deepEqual(Array.from(packAlongCols([1 + 128, 2 + 128], 1, 2, 8)), [33409]);
    // 4-bit signed 0..7 → +8 → 8..15 along the input dim → 0xFEDCBA98.
    assert.deepEqual(Array.from(packAlongCols([8, 9, 10, 11, 12, 13, 14, 15], 1, 8, 4)), [0xfedcba98 | 0]);
    // AWQ: output columns 0..7 holding 0..7; nibble k holds column [0,2,4,6,1,3,5,7][k] → 0x75316420.
    assert.deepEqual(Array.from(packAwq([0, 1, 2, 3, 4, 5, 6, 7], 1, 8)), [0x75316420]);
    assert.deepEqual(Array.from(unpackAwq(Int32Array.of(0x75316420), 1, 8)), [0, 1, 2, 3, 4, 5, 6, 7]);
  });

  it('pack/unpack round trips for 2, 4 and 8 bits along either dim, with padding', () => {
    for (const bits of [2, 4, 8] as const) {
      const rows = 37, cols = 19;
      const c = ints(rows * cols, 2 ** bits, bits);
      assert.deepEqual(unpackAlongRows(packAlongRows(c, rows, cols, bits), rows, cols, bits), c);
      assert.deepEqual(unpackAlongCols(packAlongCols(c, rows, cols, bits), rows, cols, bits), c);
      // Word (r, c) along rows holds element (r·k + j, c) at bits·j, checked against the spec's arithmetic.
      const w = packAlongRows(c, rows, cols, bits);
      const k = 32 / bits;
      for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) assert.equal(field(w[Math.floor(r / k) * cols + j], bits * (r % k), bits), c[r * cols + j]);
    }
    const a = ints(16 * 24, 16, 9);
    assert.deepEqual(unpackAwq(packAwq(a, 16, 24), 16, 24), a);
  });

  it('GPTQ dequantization equals a float64 decode written from the layout (v1 and v2 zeros, act-order g_idx)', () => {
    const out = 16, inF = 64, groups = 4, bits = 4;
    const codes = ints(out * inF, 16, 3);
    const zeros = Uint8Array.from(ints(out * groups, 15, 4), (z) => z + 1);
    const gIdx = Int32Array.from({ length: inF }, (_, i) => ((i * 7) % inF) >> 4); // a permuted assignment, as act-order writes
    const scales = Float32Array.from({ length: groups * out }, (_, i) => (1 + (i % 13)) / 1024);
    for (const v1 of [true, false]) {
      const p = packGptq(codes, zeros, out, inF, groups, gIdx, bits, v1);
      const got = dequantGptq(p.qweight, p.qzeros, scales, p.gIdx, out, inF, bits, v1);
      // A row range decodes to the same rows.
      assert.deepEqual(Array.from(dequantGptq(p.qweight, p.qzeros, scales, p.gIdx, out, inF, bits, v1, 3, 7)), Array.from(got.subarray(3 * inF, 7 * inF)));
      for (let o = 0; o < out; o++) {
        for (let i = 0; i < inF; i++) {
          const q = field(p.qweight[Math.floor(i / 8) * out + o], 4 * (i % 8), 4);
          const g = gIdx[i];
          const z = field(p.qzeros[g * (out / 8) + Math.floor(o / 8)], 4 * (o % 8), 4) + (v1 ? 1 : 0);
          assert.equal(q, codes[o * inF + i]);
          assert.equal(z, zeros[o * groups + g]);
          assert.equal(got[o * inF + i], scales[g * out + o] * (q - z));
        }
      }
    }
    assert.throws(() => packGptq(codes, new Uint8Array(out * groups), out, inF, groups, gIdx, bits, true), /zero point 0 .* v1/);
  });

  it('compressed-tensors, AWQ and bitsandbytes dequantization equal float64 decodes from their specs', () => {
    // pack-quantized, 4-bit asymmetric, 13 outputs (zero points padded along dim 0), groups of 8.
    const out = 13, inF = 32, gs = 8, groups = 4, bits = 4;
    const u = ints(out * inF, 16, 5);
    const z = ints(out * groups, 16, 6);
    const s = Float32Array.from({ length: out * groups }, (_, i) => 0.01 + i / 4096);
    const packed = packAlongCols(u, out, inF, bits);
    const zp = packAlongRows(z, out, groups, bits);
    assert.equal(zp.length, Math.ceil(out / 8) * groups);
    const got = dequantPackQuantized(packed, s, zp, undefined, out, inF, groups, gs, bits);
    for (let o = 0; o < out; o++) {
      for (let i = 0; i < inF; i++) {
        const qs = field(packed[o * (inF / 8) + Math.floor(i / 8)], 4 * (i % 8), 4) - 8; // signed code
        const zs = field(zp[Math.floor(o / 8) * groups + Math.floor(i / gs)], 4 * (o % 8), 4) - 8;
        assert.equal(got[o * inF + i], Math.fround(s[o * groups + Math.floor(i / gs)] * (qs - zs)));
      }
    }
    // Symmetric: no zero point, signed code × scale.
    const sym = dequantPackQuantized(packed, s, undefined, undefined, out, inF, groups, gs, bits);
    assert.equal(sym[5], Math.fround(s[0] * (u[5] - 8)));
    assert.deepEqual(Array.from(dequantPackQuantized(packed, s, zp, undefined, out, inF, groups, gs, bits, 9, 13)), Array.from(got.subarray(9 * inF)));

    // AWQ GEMM [in=32, out=16], groups of 8.
    const ai = 32, ao = 16, ag = 8;
    const aq = ints(ai * ao, 16, 7), az = ints((ai / ag) * ao, 16, 8);
    const as = Float32Array.from({ length: (ai / ag) * ao }, (_, i) => 1 / (64 + i));
    const aw = dequantAwq(packAwq(aq, ai, ao), packAwq(az, ai / ag, ao), as, ao, ai, ag);
    const pw = packAwq(aq, ai, ao);
    assert.deepEqual(Array.from(dequantAwq(pw, packAwq(az, ai / ag, ao), as, ao, ai, ag, 5, 6)), Array.from(aw.subarray(5 * ai, 6 * ai)));
    for (let i = 0; i < ai; i++) {
      for (let o = 0; o < ao; o++) {
        const nib = AWQ_ORDER.indexOf(o % 8 as 0);
        const q = field(pw[i * (ao / 8) + Math.floor(o / 8)], 4 * nib, 4);
        assert.equal(q, aq[i * ao + o]);
        assert.equal(aw[o * ai + i], Math.fround(as[Math.floor(i / ag) * ao + o] * (q - az[Math.floor(i / ag) * ao + o])));
      }
    }

    // LLM.int8: q · SCB/127 (bitsandbytes: (q·SCB)·float32(1/127)); ±127 decodes to ±SCB within one float32 rounding.
    const q8 = Int8Array.of(-127, 0, 5, 127, -3, 64);
    const scb = Float32Array.of(2.5, 0.75);
    const w8 = dequantBnbInt8(q8, scb, 3, 0, 6);
    assert.deepEqual(Array.from(dequantBnbInt8(q8, scb, 3, 2, 3)), Array.from(w8.subarray(2, 5)));
    const inv = Math.fround(1 / 127);
    assert.deepEqual(Array.from(w8), Array.from(q8).map((v, k) => Math.fround(Math.fround(v * scb[Math.floor(k / 3)]) * inv)));
    assert.ok(Math.abs(w8[0] + 2.5) < 1e-6 && Math.abs(w8[3] - 0.75) < 1e-6);

    // 4-bit: first element in the high nibble; absmax per block; double quantization.
    const map = Float32Array.from({ length: 16 }, (_, i) => (i - 7.5) / 7.5);
    const bytes = Uint8Array.of(0x1f, 0x80, 0x7e, 0x03);
    const w4 = dequantBnb4(bytes, Float32Array.of(2, 0.5), map, 4, 0, 8);
    assert.deepEqual(Array.from(w4), [1, 15, 8, 0, 7, 14, 0, 3].map((c, k) => Math.fround(map[c] * (k < 4 ? 2 : 0.5))));
    assert.deepEqual(Array.from(dequantBnb4(bytes, Float32Array.of(2, 0.5), map, 4, 3, 3)), Array.from(w4.subarray(3, 6)));
    const nmap = Float32Array.from({ length: 256 }, (_, i) => i / 255);
    const dn = denestAbsmax(Uint8Array.of(255, 51, 0), nmap, Float32Array.of(4, 8), 2, 0.25);
    assert.deepEqual(Array.from(dn), [Math.fround(4 + 0.25), Math.fround(Math.fround((51 / 255) * 4) + 0.25), Math.fround(0 + 0.25)]);
  });
});

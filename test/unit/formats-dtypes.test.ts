/** Element decoders and encoders against values from the format specs. */
import * as assert from 'node:assert/strict';
import {
  F8_E4M3FN, F8_E4M3FNUZ, F8_E5M2, F8_E5M2FNUZ, bf16ToF32, decodeToFloat32, f16ToF32, f32ToBf16, f32ToF16, scalarByteLength,
} from '../../src/formats/dtypes';

describe('dtypes: binary16 / bfloat16', () => {
  it('decodes binary16 codes from the IEEE 754 table', () => {
    const cases: [number, number][] = [
      [0x0000, 0], [0x3c00, 1], [0xc000, -2], [0x7bff, 65504], [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24],
      [0x0400, 2 ** -14], [0x3555, 0.333251953125], [0x7c00, Infinity], [0xfc00, -Infinity],
    ];
    for (const [h, v] of cases) assert.equal(f16ToF32(h), v, h.toString(16));
    assert.ok(Object.is(f16ToF32(0x8000), -0));
    assert.ok(Number.isNaN(f16ToF32(0x7e00)));
  });
  it('encodes float32 to binary16 with round-to-nearest-even', () => {
    assert.equal(f32ToF16(1), 0x3c00);
    assert.equal(f32ToF16(65504), 0x7bff);
    assert.equal(f32ToF16(65520), 0x7c00); // halfway to the next binade rounds to Inf
    assert.equal(f32ToF16(65519), 0x7bff);
    assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // tie → even (down)
    assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
    assert.equal(f32ToF16(2 ** -25), 0x0000); // tie between 0 and the smallest subnormal → 0
    assert.equal(f32ToF16(3 * 2 ** -25), 0x0002);
    assert.equal(f32ToF16(2 ** -24), 0x0001);
    assert.equal(f32ToF16(-0), 0x8000);
    assert.equal(f32ToF16(0.1), 0x2e66);
    assert.equal(f32ToF16(2 ** -14 - 2 ** -25), 0x0400); // rounds up out of the subnormals
    assert.equal(f32ToF16(-Infinity), 0xfc00);
    assert.equal(f32ToF16(NaN) & 0x7e00, 0x7e00);
    for (let h = 0; h < 0x7c00; h += 7) assert.equal(f32ToF16(f16ToF32(h)), h); // every value round-trips
  });
  it('bfloat16 is the top half of float32, rounded to nearest even', () => {
    assert.equal(bf16ToF32(0x3f80), 1);
    assert.equal(bf16ToF32(0xc049), -3.140625);
    assert.equal(f32ToBf16(1), 0x3f80);
    assert.equal(f32ToBf16(0.1), 0x3dcd);
    assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // tie → even
    assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82);
    assert.equal(f32ToBf16(Infinity), 0x7f80);
    assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
  });
});

describe('dtypes: float8', () => {
  it('E4M3FN: bias 7, max 448, NaN only at S.1111.111, no infinities', () => {
    assert.equal(F8_E4M3FN[0x38], 1);
    assert.equal(F8_E4M3FN[0x7e], 448);
    assert.equal(F8_E4M3FN[0x01], 2 ** -9);
    assert.equal(F8_E4M3FN[0x08], 2 ** -6);
    assert.ok(Number.isNaN(F8_E4M3FN[0x7f]) && Number.isNaN(F8_E4M3FN[0xff]));
    assert.equal(F8_E4M3FN[0x78], 256);
    assert.ok(Object.is(F8_E4M3FN[0x80], -0));
  });
  it('E4M3FNUZ: bias 8, max 240, 0x80 is the only NaN', () => {
    assert.equal(F8_E4M3FNUZ[0x40], 1);
    assert.equal(F8_E4M3FNUZ[0x7f], 240);
    assert.equal(F8_E4M3FNUZ[0x01], 2 ** -10);
    assert.ok(Number.isNaN(F8_E4M3FNUZ[0x80]));
    assert.equal(F8_E4M3FNUZ[0xff], -240);
  });
  it('E5M2: binary16 truncated to its top byte', () => {
    for (let c = 0; c < 256; c++) {
      const v = f16ToF32(c << 8);
      if (Number.isNaN(v)) assert.ok(Number.isNaN(F8_E5M2[c]));
      else assert.equal(F8_E5M2[c], v, c.toString(16));
    }
    assert.equal(F8_E5M2[0x7b], 57344);
  });
  it('E5M2FNUZ: bias 16, max 57344, 0x80 NaN, no infinities', () => {
    assert.equal(F8_E5M2FNUZ[0x40], 1);
    assert.equal(F8_E5M2FNUZ[0x7f], 57344);
    assert.equal(F8_E5M2FNUZ[0x01], 2 ** -17);
    assert.ok(Number.isNaN(F8_E5M2FNUZ[0x80]));
  });
});

describe('dtypes: bulk decode', () => {
  it('int4/uint4: two per byte, low nibble first, sign-extended for int4', () => {
    const src = Uint8Array.from([0x78, 0x0f, 0x03]);
    const out = new Float32Array(5);
    decodeToFloat32('i4', src, 5, out);
    assert.deepEqual(Array.from(out), [-8, 7, -1, 0, 3]);
    decodeToFloat32('u4', src, 5, out);
    assert.deepEqual(Array.from(out), [8, 7, 15, 0, 3]);
    const odd = new Float32Array(2);
    decodeToFloat32('i4', src, 2, odd, 0, 1); // start at the high nibble of byte 0
    assert.deepEqual(Array.from(odd), [7, -1]);
    assert.equal(scalarByteLength('i4', 5), 3);
  });
  it('integers, bool and f64 by their little-endian layout', () => {
    const b = new Uint8Array(16);
    const dv = new DataView(b.buffer);
    dv.setBigInt64(0, -5n, true); dv.setFloat64(8, 0.1, true);
    const out = new Float32Array(2);
    decodeToFloat32('i64', b, 1, out);
    decodeToFloat32('f64', b.subarray(8), 1, out, 1);
    assert.deepEqual(Array.from(out), [-5, Math.fround(0.1)]);
    decodeToFloat32('bool', Uint8Array.from([0, 2]), 2, out);
    assert.deepEqual(Array.from(out), [0, 1]);
    assert.throws(() => decodeToFloat32('f32', new Uint8Array(7), 2, out), RangeError);
  });
});

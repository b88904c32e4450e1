import * as assert from 'node:assert/strict';
import {
  roundHalfEven, intGrid, quantizeLinearScalar, pow2Ceil, NF4_LEVELS, encodeNf4, MINIFLOATS, MINIFLOAT_DECODE,
  encodeMinifloat, decodeMinifloat, mxSharedScale, encodeE8M0, decodeE8M0,
} from '../../src/quant';
import { rng } from './quant-testUtil';
import { F8_E4M3FN, F8_E5M2 } from '../../src/formats/dtypes';

/** Round half to even written the slow, obvious way. */
function rneRef(v: number): number {
  const f = Math.floor(v);
  const d = v - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

describe('quant number formats', () => {
  it('roundHalfEven equals the reference on ties, near-ties and random values', () => {
    const r = rng(1);
    const vals = [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5, -3.5, 1e15 + 0.5, -(2 ** 50) - 0.5, 2 ** 52 + 1, 0.49999999999999994, -0.49999999999999994];
    for (let i = 0; i < 20000; i++) vals.push((r() - 0.5) * 2 ** (r() * 40));
    for (let k = -300; k <= 300; k++) vals.push(k + 0.5);
    for (const v of vals) assert.equal(roundHalfEven(v), rneRef(v), `v=${v}`);
    assert.ok(Object.is(roundHalfEven(-0.25), -0) || roundHalfEven(-0.25) === 0);
  });

  it('integer grids: signed / unsigned, restricted / full, 2..8 bits; bad widths rejected', () => {
    for (let b = 2; b <= 8; b++) {
      assert.deepEqual([intGrid(b, true).qmin, intGrid(b, true).qmax], [-(2 ** (b - 1)), 2 ** (b - 1) - 1]);
      assert.deepEqual([intGrid(b, true, true).qmin, intGrid(b, true, true).qmax], [-(2 ** (b - 1) - 1), 2 ** (b - 1) - 1]);
      assert.deepEqual([intGrid(b, false).qmin, intGrid(b, false).qmax], [0, 2 ** b - 1]);
    }
    assert.throws(() => intGrid(1, true), /2\.\.8 bits/);
    assert.throws(() => intGrid(9, false), /2\.\.8 bits/);
  });

  it('quantizeLinearScalar divides in float32 before rounding (a double quotient would round differently)', () => {
    // Search for x, s where x/s in double is below k+0.5 but the float32 quotient is exactly k+0.5.
    const r = rng(2);
    let found = 0;
    for (let i = 0; i < 200000 && found < 5; i++) {
      const s = Math.fround(0.001 + r());
      const k = Math.floor(r() * 100);
      const x = Math.fround((k + 0.5) * s);
      const dbl = x / s;
      if (dbl !== k + 0.5 && Math.fround(dbl) === k + 0.5) {
        found++;
        assert.equal(quantizeLinearScalar(x, s, 0, -1000, 1000), rneRef(k + 0.5));
      }
    }
    assert.ok(found > 0, 'no float32-tie case found');
    assert.equal(quantizeLinearScalar(1e9, 1, 0, -128, 127), 127);
    assert.equal(quantizeLinearScalar(-1e9, 1, 3, 0, 255), 0);
  });

  it('pow2Ceil is the smallest power of two not below s', () => {
    const r = rng(3);
    for (let i = 0; i < 5000; i++) {
      const s = 2 ** ((r() - 0.5) * 60) * (1 + r());
      const p = pow2Ceil(s);
      assert.ok(p >= s && p / 2 < s, `s=${s} p=${p}`);
      assert.ok(Number.isInteger(Math.log2(p)));
    }
    assert.equal(pow2Ceil(0.25), 0.25);
    assert.equal(pow2Ceil(1), 1);
  });

  it('NF4: levels are the QLoRA code book, every level encodes to itself, nearest level elsewhere, ties go down', () => {
    assert.equal(NF4_LEVELS.length, 16);
    assert.equal(NF4_LEVELS[7], 0);
    assert.equal(NF4_LEVELS[0], -1);
    assert.equal(NF4_LEVELS[15], 1);
    for (let c = 0; c < 16; c++) assert.equal(encodeNf4(NF4_LEVELS[c]), c);
    const r = rng(4);
    for (let i = 0; i < 20000; i++) {
      const v = Math.fround((r() - 0.5) * 2.2);
      const c = encodeNf4(v);
      const best = Math.min(...Array.from(NF4_LEVELS, (l) => Math.abs(l - Math.max(-1, Math.min(1, v)))));
      assert.ok(Math.abs(NF4_LEVELS[c] - Math.max(-1, Math.min(1, v))) <= best + 1e-7, `v=${v} code ${c}`);
    }
    for (let c = 0; c < 15; c++) {
      const t = Math.fround((NF4_LEVELS[c] + NF4_LEVELS[c + 1]) / 2);
      assert.equal(encodeNf4(t), c, `threshold ${c}`);
    }
  });

  for (const name of ['fp8_e4m3', 'fp8_e5m2'] as const) {
    it(`${name}: all 256 codes decode and re-encode to themselves; NaN and Inf per the ONNX saturate table`, () => {
      const f = MINIFLOATS[name];
      for (let c = 0; c < 256; c++) {
        const v = MINIFLOAT_DECODE[name][c];
        if (Number.isNaN(v)) {
          assert.ok(Number.isNaN(MINIFLOAT_DECODE[name][encodeMinifloat(v, f)]), `NaN code ${c}`);
          continue;
        }
        if (!Number.isFinite(v)) {
          // E5M2 ±Inf: saturate=1 maps infinities to ±max.
          assert.equal(encodeMinifloat(v, f), v > 0 ? f.maxCode : f.maxCode | 0x80);
          continue;
        }
        assert.equal(encodeMinifloat(v, f), c, `code ${c} value ${v}`);
      }
      assert.equal(MINIFLOAT_DECODE[name][f.maxCode], f.max);
      assert.equal(encodeMinifloat(f.max * 4, f), f.maxCode);
      assert.equal(encodeMinifloat(-Infinity, f), f.maxCode | 0x80);
      // Canonical layouts.
      if (name === 'fp8_e4m3') {
        assert.equal(f.max, 448);
        assert.equal(MINIFLOAT_DECODE[name][0x01], 2 ** -9);
        assert.ok(Number.isNaN(MINIFLOAT_DECODE[name][0xff]));
        assert.equal(MINIFLOAT_DECODE[name][0x38], 1);
      } else {
        assert.equal(f.max, 57344);
        assert.equal(MINIFLOAT_DECODE[name][0x01], 2 ** -16);
        assert.equal(MINIFLOAT_DECODE[name][0x7c], Infinity);
        assert.equal(MINIFLOAT_DECODE[name][0x3c], 1);
      }
    });

    it(`${name}: random values round to the nearest representable, ties to the even code`, () => {
      const f = MINIFLOATS[name];
      const finite = Array.from({ length: f.maxCode + 1 }, (_, c) => decodeMinifloat(c, f));
      const r = rng(9);
      for (let i = 0; i < 20000; i++) {
        const a = Math.fround(r() * f.max * 2 ** (-18 * r()));
        const c = encodeMinifloat(a, f);
        const got = finite[c];
        let best = Infinity;
        for (const v of finite) best = Math.min(best, Math.abs(v - a));
        assert.equal(Math.abs(got - a), best, `a=${a}`);
        if (Math.abs(got - a) === best && finite.filter((v) => Math.abs(v - a) === best).length === 2) assert.equal(c % 2, 0);
        assert.equal(encodeMinifloat(-a, f), c | 0x80);
      }
    });
  }

  it('FP4 E2M1: the eight magnitudes 0, 0.5, 1, 1.5, 2, 3, 4, 6; ties to even; saturation at 6', () => {
    const f = MINIFLOATS.fp4_e2m1;
    assert.deepEqual(Array.from(MINIFLOAT_DECODE.fp4_e2m1.subarray(0, 8)), [0, 0.5, 1, 1.5, 2, 3, 4, 6]);
    assert.deepEqual(Array.from(MINIFLOAT_DECODE.fp4_e2m1.subarray(8)), [-0, -0.5, -1, -1.5, -2, -3, -4, -6]);
    for (let c = 0; c < 16; c++) assert.equal(encodeMinifloat(MINIFLOAT_DECODE.fp4_e2m1[c], f), c);
    // Ties: 0.25 -> 0 (code 0), 0.75 -> 1 (code 2), 1.25 -> 1 (code 2), 1.75 -> 2 (code 4), 2.5 -> 2 (code 4), 3.5 -> 4 (code 6), 5 -> 4 (code 6).
    const ties: [number, number][] = [[0.25, 0], [0.75, 2], [1.25, 2], [1.75, 4], [2.5, 4], [3.5, 6], [5, 6]];
    for (const [v, c] of ties) assert.equal(encodeMinifloat(v, f), c, `tie ${v}`);
    assert.equal(encodeMinifloat(100, f), 7);
    assert.equal(encodeMinifloat(-100, f), 15);
  });

  it('E8M0 / MX shared scale: power of two with floor(log2 amax) - 2 for FP4', () => {
    const f = MINIFLOATS.fp4_e2m1;
    const r = rng(6);
    for (let i = 0; i < 2000; i++) {
      const amax = 2 ** ((r() - 0.5) * 80) * (1 + r());
      const s = mxSharedScale(amax, f);
      assert.equal(s, 2 ** (Math.floor(Math.log2(amax) + 1e-12) - 2));
      assert.ok(amax / s >= 4 && amax / s < 8);
      assert.equal(decodeE8M0(encodeE8M0(s)), s);
    }
    assert.equal(encodeE8M0(1), 127);
    assert.ok(Number.isNaN(decodeE8M0(0xff)));
    assert.throws(() => encodeE8M0(3), /power of two/);
  });

  it('FP8 decode tables agree with the model readers\' independent decoders (src/formats/dtypes.ts)', () => {
    for (const [name, other] of [['fp8_e4m3', F8_E4M3FN], ['fp8_e5m2', F8_E5M2]] as const) {
      for (let c = 0; c < 256; c++) {
        const a = MINIFLOAT_DECODE[name][c];
        const b = other[c];
        assert.ok(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)), `${name} code ${c}: ${a} vs ${b}`);
      }
    }
  });
});

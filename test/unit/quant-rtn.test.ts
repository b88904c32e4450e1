import * as assert from 'node:assert/strict';
import { quantize, fakeQuantize, dequantize, QuantSpec, mxfp4Spec, groupLayout, newRun, MINIFLOAT_DECODE, NF4_LEVELS, paramsFromRange, quantizeWithRanges } from '../../src/quant';
import { randomTensor, rng } from './quant-testUtil';

/** Group index of every element, computed from coordinates (independent of the layout's run addressing). */
function groupOf(shape: number[], g: QuantSpec['granularity']): Int32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Int32Array(n);
  const rank = shape.length;
  const coords = new Array<number>(rank).fill(0);
  for (let i = 0; i < n; i++) {
    let rem = i;
    for (let d = rank - 1; d >= 0; d--) {
      coords[d] = rem % shape[d];
      rem = Math.floor(rem / shape[d]);
    }
    if (g.kind === 'tensor') out[i] = 0;
    else if (g.kind === 'channel') out[i] = coords[(g.axis + rank) % rank];
    else {
      const axis = g.kind === 'token' ? rank - 1 : (g.axis + rank) % rank;
      const size = g.kind === 'token' ? shape[rank - 1] : g.size;
      const sshape = shape.slice();
      sshape[axis] = Math.ceil(shape[axis] / size);
      const sc = coords.slice();
      sc[axis] = Math.floor(coords[axis] / size);
      let gi = 0;
      for (let d = 0; d < rank; d++) gi = gi * sshape[d] + sc[d];
      out[i] = gi;
    }
  }
  return out;
}

const granularities: { shape: number[]; g: QuantSpec['granularity'] }[] = [
  { shape: [7, 33], g: { kind: 'tensor' } },
  { shape: [7, 33], g: { kind: 'channel', axis: 0 } },
  { shape: [7, 33], g: { kind: 'channel', axis: 1 } },
  { shape: [3, 4, 5, 6], g: { kind: 'channel', axis: 1 } },
  { shape: [3, 4, 5, 6], g: { kind: 'channel', axis: -1 } },
  { shape: [6, 96], g: { kind: 'group', axis: 1, size: 32 } },
  { shape: [6, 100], g: { kind: 'group', axis: 1, size: 32 } }, // ragged last block
  { shape: [64, 5], g: { kind: 'group', axis: 0, size: 16 } },
  { shape: [2, 40, 3], g: { kind: 'group', axis: 1, size: 8 } },
  { shape: [2, 3, 10], g: { kind: 'token' } },
];

describe('quant round-to-nearest', () => {
  it('group layouts enumerate every element exactly once, in the group the coordinates say', () => {
    for (const { shape, g } of granularities) {
      const layout = groupLayout(shape, g);
      const expected = groupOf(shape, g);
      const seen = new Int32Array(layout.numel).fill(-1);
      const run = newRun();
      for (let gi = 0; gi < layout.groups; gi++) {
        layout.run(gi, run);
        for (let a = 0; a < run.countA; a++) {
          for (let b = 0; b < run.countB; b++) {
            const j = run.base + a * run.strideA + b * run.strideB;
            assert.equal(seen[j], -1, `element ${j} visited twice (${JSON.stringify(g)})`);
            seen[j] = gi;
          }
        }
      }
      assert.deepEqual(Array.from(seen), Array.from(expected), JSON.stringify({ shape, g }));
      assert.equal(layout.groups, layout.scaleShape.reduce((a, b) => a * b, 1));
    }
  });

  it('integer formats, every granularity: in-range values round-trip within half a step; scales follow the range rule; zero exact', () => {
    let seed = 100;
    for (const { shape, g } of granularities) {
      for (const format of ['int', 'uint'] as const) {
        for (const bits of [2, 3, 4, 8]) {
          for (const symmetric of [true, false]) {
            for (const range of ['restricted', 'full'] as const) {
              const n = shape.reduce((a, b) => a * b, 1);
              const x = randomTensor(n, seed++, 1 + (seed % 5));
              x[0] = 0;
              const spec: QuantSpec = { format, bits, symmetric, range, granularity: g };
              const r = quantize(x, shape, spec);
              const grp = groupOf(shape, g);
              const qmin = format === 'int' ? (symmetric && range === 'restricted' ? -(2 ** (bits - 1) - 1) : -(2 ** (bits - 1))) : symmetric && range === 'restricted' ? 1 : 0;
              const qmax = format === 'int' ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
              // Float64 reference of each group's range.
              const lo = new Float64Array(r.scales.length).fill(0);
              const hi = new Float64Array(r.scales.length).fill(0);
              for (let i = 0; i < n; i++) {
                lo[grp[i]] = Math.min(lo[grp[i]], x[i]);
                hi[grp[i]] = Math.max(hi[grp[i]], x[i]);
              }
              for (let k = 0; k < r.scales.length; k++) {
                const zp = r.zeroPoints![k];
                const s = r.scales[k];
                const a = Math.max(-lo[k], hi[k]);
                let expect: number;
                if (symmetric) expect = range === 'restricted' ? a / (qmax - (format === 'int' ? 0 : 2 ** (bits - 1))) : (2 * a) / (qmax - qmin);
                else expect = (hi[k] - lo[k]) / (qmax - qmin);
                if (expect === 0) expect = 1;
                assert.ok(Math.abs(s - expect) <= 1e-6 * expect, `scale ${s} vs ${expect}`);
                assert.ok(zp >= qmin && zp <= qmax);
                if (symmetric) assert.equal(zp, format === 'int' ? 0 : 2 ** (bits - 1));
              }
              for (let i = 0; i < n; i++) {
                const k = grp[i];
                const s = r.scales[k];
                const zp = r.zeroPoints![k];
                const c = r.codes[i];
                assert.ok(c >= qmin && c <= qmax, `code ${c} outside [${qmin}, ${qmax}]`);
                assert.equal(r.dequantized[i], Math.fround((c - zp) * s));
                const inRange = x[i] >= (qmin - zp) * s && x[i] <= (qmax - zp) * s;
                // Half a step, plus the float32 rounding of the quotient and of the dequantized product.
                const tol = s / 2 + Math.abs(x[i]) * 2 ** -21;
                if (inRange) assert.ok(Math.abs(r.dequantized[i] - x[i]) <= tol, `|err| ${Math.abs(r.dequantized[i] - x[i])} > step/2 ${s / 2}`);
                if (x[i] === 0) assert.equal(r.dequantized[i], 0);
              }
              // Asymmetric min-max grids cover the whole range to within half a step at each end.
              if (!symmetric) {
                for (let i = 0; i < n; i++) assert.ok(Math.abs(r.dequantized[i] - x[i]) <= r.scales[grp[i]] + Math.abs(x[i]) * 2 ** -21);
              }
              assert.deepEqual(Array.from(dequantize(r)), Array.from(r.dequantized));
            }
          }
        }
      }
    }
  });

  it('crafted ties and saturation on the integer path: half to even, clamp at qmin/qmax', () => {
    // Per-tensor symmetric int8 restricted: absmax 127 gives scale 1, so x is its own quotient.
    const x = Float32Array.from([127, -127, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -126.5, 3.4999, 3.5001]);
    const r = quantize(x, [x.length], { format: 'int', bits: 8, granularity: { kind: 'tensor' } });
    assert.equal(r.scales[0], 1);
    assert.deepEqual(Array.from(r.codes), [127, -127, 0, 2, 2, 0, -2, -2, 126, -126, 3, 4]);
    // Saturation: an explicit range narrower than the data clamps.
    const sat = quantizeWithRanges(Float32Array.from([-10, -1, 0, 1, 10]), [5], { format: 'int', bits: 4, range: 'full', granularity: { kind: 'tensor' } }, [{ lo: -1, hi: 1 }]);
    // scale = fround(2/15) is a hair above 2/15, so ±1 divide to ±7.4999995 (not a tie) and round to ±7; ±10 saturate.
    assert.equal(sat.scales[0], Math.fround(2 / 15));
    assert.deepEqual(Array.from(sat.codes), [-8, -7, 0, 7, 7]);
  });

  it('power-of-two scales are powers of two, at least the float scale, and keep the round-trip bound', () => {
    const x = randomTensor(8 * 64, 77, 3);
    const f = quantize(x, [8, 64], { format: 'int', bits: 4, granularity: { kind: 'group', axis: 1, size: 32 } });
    const p = quantize(x, [8, 64], { format: 'int', bits: 4, scale: 'pow2', granularity: { kind: 'group', axis: 1, size: 32 } });
    for (let k = 0; k < p.scales.length; k++) {
      assert.ok(Number.isInteger(Math.log2(p.scales[k])));
      assert.ok(p.scales[k] >= f.scales[k] && p.scales[k] < 2 * f.scales[k]);
    }
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(p.dequantized[i] - x[i]) <= p.scales[Math.floor(i / 32)] / 2 + Math.abs(x[i]) * 2 ** -21);
  });

  it('NF4 per block of 64: scale = block absmax, dequantized = level × absmax, nearest level', () => {
    const x = randomTensor(4 * 128, 5);
    const r = quantize(x, [4, 128], { format: 'nf4', granularity: { kind: 'group', axis: 1, size: 64 } });
    for (let b = 0; b < 8; b++) {
      let a = 0;
      for (let j = 0; j < 64; j++) a = Math.max(a, Math.abs(x[b * 64 + j]));
      assert.equal(r.scales[b], Math.fround(a));
      for (let j = 0; j < 64; j++) {
        const i = b * 64 + j;
        const v = x[i] / a;
        const dist = Array.from(NF4_LEVELS, (l) => Math.abs(l - v));
        assert.ok(Math.abs(dist[r.codes[i]] - Math.min(...dist)) < 1e-6);
        assert.equal(r.dequantized[i], Math.fround(NF4_LEVELS[r.codes[i]] * r.scales[b]));
      }
    }
    assert.throws(() => quantize(x, [4, 128], { format: 'nf4', symmetric: false, granularity: { kind: 'tensor' } }), /symmetric only/);
  });

  it('FP8 per-channel: scale = amax / max, codes decode to the dequantized values, relative error <= 2^-(m+1)', () => {
    for (const [format, m] of [['fp8_e4m3', 3], ['fp8_e5m2', 2]] as const) {
      const x = randomTensor(6 * 50, 8);
      const r = quantize(x, [6, 50], { format, granularity: { kind: 'channel', axis: 0 } });
      for (let i = 0; i < x.length; i++) {
        const s = r.scales[Math.floor(i / 50)];
        assert.equal(r.dequantized[i], Math.fround(MINIFLOAT_DECODE[format][r.codes[i]] * s));
        const v = x[i] / s;
        // Normal range: relative error bounded by half an ulp of the significand.
        if (Math.abs(v) >= (format === 'fp8_e4m3' ? 2 ** -6 : 2 ** -14)) assert.ok(Math.abs(r.dequantized[i] - x[i]) <= Math.abs(x[i]) * 2 ** -(m + 1) * 1.0001);
      }
    }
  });

  it('MXFP4: E8M0 scale per 32, codes are FP4 nibbles, values saturate at 6·scale', () => {
    const x = randomTensor(4 * 64, 12, 2);
    const r = quantize(x, [4, 64], mxfp4Spec());
    assert.deepEqual(r.scaleShape, [4, 2]);
    for (let b = 0; b < 8; b++) {
      let a = 0;
      for (let j = 0; j < 32; j++) a = Math.max(a, Math.abs(x[b * 32 + j]));
      const s = r.scales[b];
      assert.equal(s, 2 ** (Math.floor(Math.log2(a)) - 2));
      for (let j = 0; j < 32; j++) {
        const i = b * 32 + j;
        assert.ok(r.codes[i] < 16);
        assert.equal(r.dequantized[i], Math.fround(MINIFLOAT_DECODE.fp4_e2m1[r.codes[i]] * s));
        assert.ok(Math.abs(r.dequantized[i]) <= 6 * s);
      }
    }
  });

  it('binary and ternary: absmean scale, codes in {-1, 1} / {-1, 0, 1}', () => {
    const x = randomTensor(3 * 40, 21);
    const b = quantize(x, [3, 40], { format: 'binary', granularity: { kind: 'channel', axis: 0 } });
    const t = quantize(x, [3, 40], { format: 'ternary', granularity: { kind: 'channel', axis: 0 } });
    for (let c = 0; c < 3; c++) {
      let m = 0;
      for (let j = 0; j < 40; j++) m += Math.abs(x[c * 40 + j]);
      m /= 40;
      assert.ok(Math.abs(b.scales[c] - m) <= 1e-6 * m);
      assert.equal(t.scales[c], b.scales[c]);
      for (let j = 0; j < 40; j++) {
        const i = c * 40 + j;
        assert.equal(b.codes[i], x[i] < 0 ? -1 : 1);
        const q = Math.max(-1, Math.min(1, Math.round(x[i] / t.scales[c])));
        assert.equal(t.codes[i], q === 0 ? 0 : q);
      }
    }
  });

  it('fakeQuantize returns the dequantized tensor; bad inputs get clear errors', () => {
    const x = randomTensor(64, 3);
    const spec: QuantSpec = { format: 'int', bits: 8, granularity: { kind: 'group', axis: 0, size: 16 } };
    assert.deepEqual(Array.from(fakeQuantize(x, [64], spec)), Array.from(quantize(x, [64], spec).dequantized));
    assert.throws(() => quantize(x, [65], spec), /65 elements/);
    assert.throws(() => quantize(x, [64], { ...spec, granularity: { kind: 'group', axis: 0, size: 48, ragged: 'reject' } }), /not a multiple of block size 48/);
    assert.throws(() => quantize(x, [8, 8], { ...spec, granularity: { kind: 'channel', axis: 2 } }), /axis 2 is out of range/);
    assert.throws(() => quantize(x, [64], { ...spec, bits: 9 }), /2\.\.8 bits/);
    const bad = x.slice();
    bad[17] = NaN;
    assert.throws(() => quantize(bad, [64], spec), /element 17 is NaN/);
    const zeros = quantize(new Float32Array(16), [16], { format: 'uint', bits: 8, symmetric: false, granularity: { kind: 'tensor' } });
    assert.equal(zeros.scales[0], 1);
    assert.deepEqual(Array.from(zeros.dequantized), new Array(16).fill(0));
  });

  it('paramsFromRange follows the float32 ORT formula for asymmetric uint8', () => {
    const r = rng(4);
    for (let i = 0; i < 1000; i++) {
      const lo = -r() * 5;
      const hi = r() * 5;
      const p = paramsFromRange({ format: 'uint', bits: 8, symmetric: false, granularity: { kind: 'tensor' } }, lo, hi);
      const s = Math.fround(Math.fround(hi - lo) / 255); // float32 span, float32 division (as ORT)
      assert.equal(p.scale, s);
      const z = 0 - lo / s;
      assert.ok(Math.abs(p.zeroPoint - z) <= 0.5 + 1e-9);
    }
  });
});

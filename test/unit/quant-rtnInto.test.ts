/**
 * quantizeCodesInto / quantizePacked4Into: caller-owned, reusable outputs.
 * They must give the same codes, scales and zero points as the TypeScript
 * reference for every spec (WebAssembly path and fallback alike), across the
 * kernel's 64K-element chunk seams, with odd sizes and tails, and leave no
 * trace of what a reused output held before.
 */
import * as assert from 'node:assert/strict';
import {
  quantize, quantizeCodesInto, quantizePacked4Into, quantOutputSizes, QuantSpec, MseCalibrator,
} from '../../src/quant';
import { randomTensor, rng } from './quant-testUtil';

function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

function firstDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Outputs for a spec, filled with garbage so stale contents would show. */
function outputsFor(shape: number[], spec: QuantSpec) {
  const z = quantOutputSizes(shape, spec);
  const codes = z.signedCodes ? new Int8Array(z.numel) : new Uint8Array(z.numel);
  codes.fill(0x5a);
  const scales = new Float32Array(z.groups).fill(-3.5);
  const zeroPoints = z.hasZeroPoints ? new Int32Array(z.groups).fill(-77) : null;
  return { codes, scales, zeroPoints };
}

/** Float64 restatement of the symmetric restricted int8 rule (ORT's QuantizeLinear with scale = amax / 127). */
function int8RowReference(x: Float32Array, rows: number, cols: number): { codes: Int8Array; scales: Float32Array } {
  const codes = new Int8Array(rows * cols);
  const scales = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let a = 0;
    for (let c = 0; c < cols; c++) a = Math.max(a, Math.abs(x[r * cols + c]));
    let s = Math.fround(a / 127);
    if (!(s >= 1.1754943508222875e-38)) s = 1;
    scales[r] = s;
    for (let c = 0; c < cols; c++) {
      const v = Math.fround(x[r * cols + c] / s);
      const f = Math.floor(v);
      const d = v - f;
      let q = d > 0.5 || (d === 0.5 && f % 2 !== 0) ? f + 1 : f;
      q = Math.min(127, Math.max(-127, q));
      codes[r * cols + c] = q;
    }
  }
  return { codes, scales };
}

describe('quant RTN into caller-owned outputs', () => {
  it('int8 per channel equals a float64 restatement of ORT\'s rule, across chunk seams and odd row lengths', function () {
    this.timeout(10000);
    // Rows of 1777 (odd, 36 rows per 64K chunk, tail of 1 after 16-wide blocks), 70001 (one row larger than a chunk).
    for (const [rows, cols] of [[41, 1777], [3, 70001], [7, 5]]) {
      const x = randomTensor(rows * cols, rows * 31 + cols, 0.05);
      // Exact ties at a power-of-two scale: the row max 127 * 2^-7 makes s = 2^-7, so k/2 * s are ties.
      for (let r = 0; r < rows; r++) {
        x[r * cols] = 127 / 128;
        for (let c = 1; c < cols; c += 97) x[r * cols + c] = ((c % 9) - 4.5) / 128;
      }
      const spec: QuantSpec = { format: 'int', bits: 8, granularity: { kind: 'channel', axis: 0 } };
      const out = outputsFor([rows, cols], spec);
      const { impl } = quantizeCodesInto(x, [rows, cols], spec, out);
      assert.equal(impl, 'wasm');
      const ref = int8RowReference(x, rows, cols);
      assert.equal(firstDiff(out.codes, ref.codes), -1, `codes ${rows}x${cols}`);
      assert.ok(sameBits(out.scales, ref.scales), `scales ${rows}x${cols}`);
      assert.equal(firstDiff(out.zeroPoints!, new Int32Array(rows)), -1, 'zero points of a symmetric int grid are 0');
    }
  });

  it('equals quantize() for int/uint, symmetric/asymmetric, min-max/MSE, every granularity, reusing dirty outputs', () => {
    const r = rng(11);
    const cases: { shape: number[]; g: QuantSpec['granularity'] }[] = [
      { shape: [200, 333], g: { kind: 'channel', axis: 0 } }, // 196 rows per chunk: a seam inside the tensor
      { shape: [2, 40000], g: { kind: 'channel', axis: 0 } }, // two rows per chunk fit one call
      { shape: [700, 96], g: { kind: 'group', axis: 1, size: 32 } }, // 2100 groups, 2048 per chunk
      { shape: [9, 3, 13], g: { kind: 'group', axis: -1, size: 13 } }, // odd groups shorter than one SIMD block
      { shape: [5, 4, 36], g: { kind: 'token' } },
      { shape: [12, 7], g: { kind: 'channel', axis: 1 } }, // strided: reference fallback
    ];
    let n = 0;
    for (const { shape, g } of cases) {
      const numel = shape.reduce((a, b) => a * b, 1);
      for (const [format, symmetric, bits, calibrator] of [
        ['int', true, 8, 'minmax'], ['int', true, 4, 'minmax'], ['int', true, 4, new MseCalibrator(4, 0.3)],
        ['int', true, 3, new MseCalibrator(4, 1e-6)], // tiny clip ratios: x / s far outside the grid before the clamp
        ['uint', true, 8, 'minmax'], ['uint', false, 4, 'minmax'], ['int', false, 8, 'minmax'],
      ] as const) {
        const spec: QuantSpec = { format, symmetric, bits, range: symmetric ? 'restricted' : 'full', granularity: g, calibrator };
        const out = outputsFor(shape, spec);
        // Two tensors through the same outputs (the MSE reference is slow: one).
        for (const seed of calibrator === 'minmax' ? [1, 2] : [1]) {
          const x = randomTensor(numel, Math.floor(r() * 1e9), 0.2 + seed);
          if (!symmetric) for (let i = 0; i < numel; i += 4) x[i] = Math.abs(x[i]) + 0.05;
          for (let i = 0; i < 40; i++) x[Math.floor(r() * numel)] = -1e-7; // rounds to -0 before the zero point
          quantizeCodesInto(x, shape, spec, out);
          const ref = quantize(x, shape, spec, { impl: 'ref' });
          const what = JSON.stringify({ shape, g, format, symmetric, bits, calibrator, seed });
          assert.equal(firstDiff(out.codes, ref.codes), -1, `codes ${what}`);
          assert.ok(sameBits(out.scales, ref.scales), `scales ${what}`);
          assert.equal(firstDiff(out.zeroPoints!, ref.zeroPoints!), -1, `zero points ${what}`);
          n++;
        }
      }
    }
    assert.equal(n, 72);
  });

  it('falls back to the reference for specs without a kernel and still fills the given arrays', () => {
    const shape = [16, 40];
    const x = randomTensor(640, 9);
    for (const spec of [
      { format: 'fp8_e4m3', granularity: { kind: 'channel', axis: 0 } },
      { format: 'nf4', granularity: { kind: 'group', axis: 1, size: 8 } },
      { format: 'int', bits: 8, scale: 'pow2', granularity: { kind: 'channel', axis: 0 } },
      { format: 'int', bits: 8, granularity: { kind: 'channel', axis: 0 }, calibrator: 'percentile' },
    ] as QuantSpec[]) {
      const out = outputsFor(shape, spec);
      assert.equal(quantizeCodesInto(x, shape, spec, out).impl, 'ref', spec.format);
      const ref = quantize(x, shape, spec);
      assert.equal(firstDiff(out.codes, ref.codes), -1, `codes ${spec.format}`);
      assert.ok(sameBits(out.scales, ref.scales), `scales ${spec.format}`);
      if (out.zeroPoints) assert.equal(firstDiff(out.zeroPoints, ref.zeroPoints!), -1);
    }
    // The reference kernel on request, for a spec the fast path covers.
    const spec: QuantSpec = { format: 'int', bits: 8, granularity: { kind: 'channel', axis: 0 } };
    const out = outputsFor(shape, spec);
    assert.equal(quantizeCodesInto(x, shape, spec, out, { impl: 'ref' }).impl, 'ref');
    assert.equal(firstDiff(out.codes, quantize(x, shape, spec).codes), -1);
  });

  it('packs 4-bit codes two per byte, low nibble first, as the codes of quantize() say', function () {
    this.timeout(10000);
    const cases: { shape: number[]; spec: QuantSpec; impl: 'wasm' | 'ref' }[] = [
      { shape: [640, 256], spec: { format: 'int', bits: 4, granularity: { kind: 'group', axis: 1, size: 128 } }, impl: 'wasm' },
      { shape: [33, 70], spec: { format: 'int', bits: 4, granularity: { kind: 'channel', axis: 0 } }, impl: 'wasm' },
      { shape: [3, 70002], spec: { format: 'uint', bits: 4, symmetric: false, granularity: { kind: 'channel', axis: 0 } }, impl: 'wasm' },
      { shape: [2000, 34], spec: { format: 'uint', bits: 4, granularity: { kind: 'group', axis: 1, size: 34 } }, impl: 'wasm' },
      // Odd group length (and odd element count): nibbles straddle groups, packed outside the module.
      { shape: [11, 7], spec: { format: 'int', bits: 4, granularity: { kind: 'channel', axis: 0 } }, impl: 'ref' },
    ];
    for (const { shape, spec, impl } of cases) {
      const numel = shape[0] * shape[1];
      const x = randomTensor(numel, numel, 0.3);
      const z = quantOutputSizes(shape, spec);
      const out = { packed: new Uint8Array((numel + 1) >> 1).fill(0xa5), scales: new Float32Array(z.groups), zeroPoints: new Int32Array(z.groups) };
      const got = quantizePacked4Into(x, shape, spec, out).impl;
      if (impl === 'wasm') assert.equal(got, 'wasm', JSON.stringify(shape));
      const ref = quantize(x, shape, spec, { impl: 'ref' });
      for (let i = 0; i < numel; i++) {
        const nib = (out.packed[i >> 1] >> ((i & 1) * 4)) & 15;
        const code = spec.format === 'int' ? (nib ^ 8) - 8 : nib;
        if (code !== ref.codes[i]) assert.fail(`${JSON.stringify(shape)} element ${i}: nibble ${nib} decodes to ${code}, reference code ${ref.codes[i]}`);
      }
      if (numel & 1) assert.equal(out.packed[out.packed.length - 1] >> 4, 0, 'the unused high nibble of an odd count is 0');
      assert.ok(sameBits(out.scales, ref.scales));
      assert.equal(firstDiff(out.zeroPoints, ref.zeroPoints!), -1);
    }
  });

  it('rejects outputs of the wrong type or size, and non-finite input, with clear messages', () => {
    const spec: QuantSpec = { format: 'int', bits: 8, granularity: { kind: 'channel', axis: 0 } };
    const x = randomTensor(4 * 64, 3);
    assert.throws(() => quantizeCodesInto(x, [4, 64], spec, { codes: new Uint8Array(256), scales: new Float32Array(4) }), /out\.codes must be an Int8Array of 256 elements for int/);
    assert.throws(() => quantizeCodesInto(x, [4, 64], spec, { codes: new Int8Array(255), scales: new Float32Array(4) }), /Int8Array of 256 elements/);
    assert.throws(() => quantizeCodesInto(x, [4, 64], spec, { codes: new Int8Array(256), scales: new Float32Array(3) }), /out\.scales must be a Float32Array of 4 elements/);
    assert.throws(() => quantizeCodesInto(x, [4, 64], spec, { codes: new Int8Array(256), scales: new Float32Array(4), zeroPoints: new Int32Array(2) }), /out\.zeroPoints must be an Int32Array of 4/);
    assert.throws(() => quantizeCodesInto(x, [4, 65], spec, { codes: new Int8Array(260), scales: new Float32Array(4) }), /shape \[4, 65\] has 260 elements but the data has 256/);
    assert.throws(() => quantizePacked4Into(x, [4, 64], spec, { packed: new Uint8Array(128), scales: new Float32Array(4) }), /needs a 4-bit int or uint spec/);
    const s4: QuantSpec = { ...spec, bits: 4 };
    assert.throws(() => quantizePacked4Into(x, [4, 64], s4, { packed: new Uint8Array(256), scales: new Float32Array(4) }), /Uint8Array of 128 bytes/);
    x[130] = NaN;
    assert.throws(() => quantizeCodesInto(x, [4, 64], spec, { codes: new Int8Array(256), scales: new Float32Array(4) }), /element 130 is NaN/);
    assert.throws(() => quantizePacked4Into(x, [4, 64], s4, { packed: new Uint8Array(128), scales: new Float32Array(4) }), /element 130 is NaN/);
  });
});

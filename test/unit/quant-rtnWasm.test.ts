/**
 * The WebAssembly SIMD kernel must be bit-identical to the TypeScript
 * reference: codes, scales and dequantized values (including the sign of zero).
 */
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { quantize, quantizeCodes, QuantSpec, MseCalibrator } from '../../src/quant';
import { wasmAvailable } from '../../src/kernels/rtnKernels';
import { RTN_KERNELS_SOURCE_SHA256 } from '../../src/kernels/rtnKernels.generated';
import { randomTensor, rng } from './quant-testUtil';

/** Index of the first differing element (bitwise for floats, so -0 ≠ +0), or -1. */
function firstDiff(a: Float32Array | Int8Array | Uint8Array, b: Float32Array | Int8Array | Uint8Array): number {
  if (a.length !== b.length) return 0;
  const ua = a instanceof Float32Array ? new Uint32Array(a.buffer, a.byteOffset, a.length) : a;
  const ub = b instanceof Float32Array ? new Uint32Array(b.buffer, b.byteOffset, b.length) : b;
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

describe('quant RTN WebAssembly kernel', () => {
  it('is available in Node 20 and built from the current source', () => {
    assert.ok(wasmAvailable(), 'WebAssembly SIMD kernel failed to load');
    const src = readFileSync(path.join(__dirname, '../../../src/kernels/rtnKernels.as'));
    assert.equal(createHash('sha256').update(src).digest('hex'), RTN_KERNELS_SOURCE_SHA256, 'rtnKernels.as changed: run node src/kernels/build.mjs');
  });

  it('equals the TypeScript reference bit for bit over shapes, widths, ranges and granularities (ties, tails, zero groups)', () => {
    const r = rng(5);
    const cases: { shape: number[]; g: QuantSpec['granularity'] }[] = [
      { shape: [37, 53], g: { kind: 'channel', axis: 0 } },
      { shape: [1, 5, 19], g: { kind: 'channel', axis: 1 } },
      { shape: [9, 256], g: { kind: 'group', axis: 1, size: 128 } },
      { shape: [5, 96], g: { kind: 'group', axis: -1, size: 32 } },
      { shape: [3, 4, 36], g: { kind: 'token' } },
      { shape: [1000], g: { kind: 'tensor' } },
    ];
    let checked = 0;
    let clipped = 0;
    for (const { shape, g } of cases) {
      const n = shape.reduce((a, b) => a * b, 1);
      for (const bitsN of [2, 3, 4, 8]) {
        for (const [format, symmetric, range] of [
          ['int', true, 'restricted'], ['int', true, 'full'], ['uint', true, 'restricted'], ['uint', true, 'full'],
          ['uint', false, 'full'], ['int', false, 'full'],
        ] as const) {
          const x = randomTensor(n, Math.floor(r() * 1e9), 0.1 + r());
          // Exact ties: multiples of a half step of a power-of-two scale, and small negatives that round to -0.
          for (let i = 0; i < Math.min(n, 200); i++) x[Math.floor(r() * n)] = (Math.floor(r() * 9) - 4) * 0.0625;
          for (let i = 0; i < Math.min(n, 50); i++) x[Math.floor(r() * n)] = -1e-6;
          if (g.kind === 'channel' && shape[0] > 2) x.fill(0, 0, n / shape[0]); // an all-zero channel
          if (!symmetric) for (let i = 0; i < n; i += 3) x[i] = Math.abs(x[i]) + 0.01; // skewed groups: zero points away from the middle
          for (const calibrator of ['minmax', 'mse', new MseCalibrator(7, 0.2)] as const) {
            const spec: QuantSpec = { format, symmetric, bits: bitsN, range, granularity: g, calibrator };
            const fast = quantize(x, shape, spec);
            const ref = quantize(x, shape, spec, { impl: 'ref' });
            const what = JSON.stringify({ shape, g, format, symmetric, bitsN, range, calibrator });
            assert.equal(firstDiff(Int8Array.from(fast.zeroPoints!), Int8Array.from(ref.zeroPoints!)), -1, `zero points ${what}`);
            assert.equal(firstDiff(fast.codes, ref.codes), -1, `codes ${what}`);
            assert.equal(firstDiff(fast.scales, ref.scales), -1, `scales ${what}`);
            assert.equal(firstDiff(fast.dequantized, ref.dequantized), -1, `dequantized ${what}`);
            assert.equal(firstDiff(quantizeCodes(x, shape, spec).codes, ref.codes), -1, `quantizeCodes ${what}`);
            if (calibrator !== 'minmax' && format === 'int' && symmetric) {
              const mm = quantize(x, shape, { ...spec, calibrator: 'minmax' }, { impl: 'ref' });
              clipped += fast.scales.filter((v, i) => v < mm.scales[i]).length;
            }
            checked++;
          }
        }
      }
    }
    assert.equal(checked, 432);
    assert.ok(clipped > 100, `the MSE search must actually clip some groups (clipped ${clipped})`);
  });

  it('splits tensors over many kernel calls (64K-element chunks; rows longer than a chunk) without seams', function () {
    this.timeout(10000);
    const shape = [3, 400000];
    const x = randomTensor(shape[0] * shape[1], 77);
    const spec: QuantSpec = { format: 'int', bits: 8, granularity: { kind: 'channel', axis: 0 } };
    const fast = quantize(x, shape, spec);
    const ref = quantize(x, shape, spec, { impl: 'ref' });
    assert.equal(firstDiff(fast.codes, ref.codes), -1);
    assert.equal(firstDiff(fast.dequantized, ref.dequantized), -1);
    const g = quantize(x, [x.length / 32, 32], { ...spec, granularity: { kind: 'group', axis: 1, size: 32 } });
    const gr = quantize(x, [x.length / 32, 32], { ...spec, granularity: { kind: 'group', axis: 1, size: 32 } }, { impl: 'ref' });
    assert.equal(firstDiff(g.codes, gr.codes), -1);
    assert.equal(firstDiff(g.scales, gr.scales), -1);
  });

  it('reports non-finite input with the element index, like the reference', () => {
    const x = randomTensor(4 * 64, 3);
    x[130] = Infinity;
    assert.throws(() => quantize(x, [4, 64], { format: 'int', bits: 8, granularity: { kind: 'channel', axis: 0 } }), /element 130 is Infinity/);
  });
});

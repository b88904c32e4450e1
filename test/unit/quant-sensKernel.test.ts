/**
 * The weight-space sensitivity kernel: the WebAssembly SIMD module and its
 * TypeScript twin give the same per-group error sums bit for bit, and the
 * table built on them equals the one from quantizing in full (quantize() with
 * the reference codecs, then the squared error in float64) to float rounding.
 */
import * as assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { tensorSensitivity } from '../../src/analysis/sensitivity';
import { SensFormat, SensLines, sensGroupErrorsRef, sensGroupErrorsWasm, sensWasmAvailable } from '../../src/kernels/sensKernel';
import { SENS_KERNEL_SOURCE_SHA256 } from '../../src/kernels/sensKernel.generated';
import { e4m3MagRef } from '../../src/kernels/sensKernelRef';
import {
  CONFIGS, Granularity, MINIFLOATS, MINIFLOAT_DECODE, NF4_LEVELS, NF4_THRESHOLDS, QuantSpec, encodeMinifloat, gather, groupLayout,
  newRun, quantize, specFor, weightLayout,
} from '../../src/quant';
import { groupLines, rtnErrorSums, sensFormatOf } from '../../src/quant/rtnErrors';
import { rng } from '../random';

const FORMATS: [string, SensFormat][] = [
  ['int8 asym', sensFormatOf({ format: 'int', bits: 8, symmetric: false, granularity: { kind: 'tensor' } })!],
  ['int4 asym', sensFormatOf({ format: 'int', bits: 4, symmetric: false, granularity: { kind: 'tensor' } })!],
  ['int3 asym', sensFormatOf({ format: 'int', bits: 3, symmetric: false, granularity: { kind: 'tensor' } })!],
  ['int2 asym', sensFormatOf({ format: 'int', bits: 2, symmetric: false, granularity: { kind: 'tensor' } })!],
  ['uint4 asym', sensFormatOf({ format: 'uint', bits: 4, symmetric: false, granularity: { kind: 'tensor' } })!],
  ['int8 sym', sensFormatOf({ format: 'int', bits: 8, symmetric: true, granularity: { kind: 'tensor' } })!],
  ['int4 sym full', sensFormatOf({ format: 'int', bits: 4, symmetric: true, range: 'full', granularity: { kind: 'tensor' } })!],
  ['uint4 sym', sensFormatOf({ format: 'uint', bits: 4, symmetric: true, granularity: { kind: 'tensor' } })!],
  ['nf4', sensFormatOf({ format: 'nf4', granularity: { kind: 'tensor' } })!],
  ['fp8 e4m3', sensFormatOf({ format: 'fp8_e4m3', granularity: { kind: 'tensor' } })!],
];

/** Weight-like values: a bell with rare outliers, scaled. */
function weights(n: number, r: () => number, scale = 0.02): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r() + r() + r() + r() - 2;
    a[i] = (r() < 0.01 ? u * 20 : u) * scale;
  }
  return a;
}

/** Edge inputs, each a Float32Array laid out as lines. */
function edgeCases(): [string, Float32Array][] {
  const r = rng(11);
  const nf4At = new Float32Array(64);
  // Exactly on NF4 thresholds and levels once normalised by the group's max |x| (1 here).
  for (let i = 0; i < 15; i++) { nf4At[i] = NF4_THRESHOLDS[i]; nf4At[16 + i] = NF4_LEVELS[i]; }
  nf4At[40] = 1;
  const fp8Ties = new Float32Array(64);
  // max |x| = 448 makes the scale 1: values on E4M3 midpoints (ties to even), subnormals, and the subnormal/normal edge.
  const t = MINIFLOAT_DECODE.fp8_e4m3;
  for (let i = 0; i < 60; i++) { const c = 1 + ((i * 7) % 120); fp8Ties[i] = (i & 1 ? -1 : 1) * Math.fround((t[c] + t[c + 1]) / 2); }
  fp8Ties[60] = 448; fp8Ties[61] = 7.5 * 2 ** -9; fp8Ties[62] = 2 ** -6; fp8Ties[63] = -(2 ** -10);
  const intTies = new Float32Array(64);
  for (let i = 0; i < 64; i++) intTies[i] = (i - 32) + 0.5; // x / s lands on .5 for scales that are powers of two
  const lopsided = weights(64, r);
  for (let i = 0; i < 64; i++) lopsided[i] = Math.abs(lopsided[i]) + 0.1;
  return [
    ['zeros', new Float32Array(64)],
    ['constant', new Float32Array(64).fill(0.37)],
    ['negative constant', new Float32Array(64).fill(-2.5)],
    ['all positive', lopsided],
    ['all negative', lopsided.map((v) => -v)],
    ['denormals', Float32Array.from({ length: 64 }, (_, i) => (i - 30) * 1e-41)],
    ['tiny normals', Float32Array.from({ length: 64 }, (_, i) => (i - 30) * 1e-37)],
    ['huge', Float32Array.from({ length: 64 }, (_, i) => (i % 2 ? -1 : 1) * 3e38 * ((i + 1) / 64))],
    ['one outlier', (() => { const a = weights(64, r); a[17] = 50; return a; })()],
    ['NF4 thresholds', nf4At],
    ['FP8 ties', fp8Ties],
    ['integer ties', intTies],
  ];
}

function sameBits(a: Float64Array, b: Float64Array, what: string): void {
  assert.equal(a.length, b.length, what);
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) assert.fail(`${what}: group ${i >> 1} ${i & 1 ? 'clipped' : 'min-max'}: wasm ${a[i]} vs ref ${b[i]}`);
  }
}

/** Σ(x − x̂)² in float64 over quantize()'s dequantized tensor (the reference codecs, no kernel). */
function sseByQuantize(x: Float32Array, shape: number[], spec: QuantSpec): number {
  const d = quantize(x, shape, spec, { impl: 'ref' }).dequantized;
  let s = 0;
  for (let i = 0; i < x.length; i++) s += (x[i] - d[i]) ** 2;
  return s;
}

describe('quant: weight-space sensitivity kernel', function () {
  this.timeout(60000);

  it('loads here and is built from the current source', () => {
    assert.ok(sensWasmAvailable(), 'WebAssembly SIMD sensitivity kernel failed to load');
    const src = readFileSync(path.join(__dirname, '../../../src/kernels/sensKernel.as'));
    assert.equal(createHash('sha256').update(src).digest('hex'), SENS_KERNEL_SOURCE_SHA256, 'sensKernel.as changed: run node src/kernels/build.mjs sensKernel');
  });

  it('equals its TypeScript twin bit for bit on random weights (group sizes, ragged lines, tails, clip grids)', () => {
    const r = rng(21);
    const shapes: [number, number, number][] = [[5, 256, 128], [7, 300, 128], [4, 96, 32], [3, 130, 64], [9, 37, 37], [2, 7, 3], [6, 5, 1], [1, 4099, 4099], [3, 1000, 1000]];
    let groups = 0;
    for (const [name, fmt] of FORMATS) {
      for (const [rows, rowLen, groupSize] of shapes) {
        for (const clip of [{ steps: 20, minRatio: 0.5 }, { steps: 1, minRatio: 0.5 }, { steps: 7, minRatio: 0.2 }]) {
          const lines: SensLines = { data: weights(rows * rowLen, r, 0.01 + r()), rows, rowLen, groupSize };
          const w = sensGroupErrorsWasm(lines, fmt, clip)!;
          sameBits(w, sensGroupErrorsRef(lines, fmt, clip), `${name} ${rows}x${rowLen}/${groupSize} steps ${clip.steps}`);
          groups += w.length / 2;
        }
      }
    }
    assert.equal(groups, 3 * FORMATS.length * 101);
  });

  it('equals its twin on edge inputs: zeros, constants, one sign, denormals, huge values, outliers, exact NF4 thresholds, FP8 and integer ties', () => {
    for (const [what, data] of edgeCases()) {
      for (const [name, fmt] of FORMATS) {
        for (const groupSize of [64, 16, 5, 1]) {
          const lines: SensLines = { data, rows: 1, rowLen: data.length, groupSize };
          const clip = { steps: 20, minRatio: 0.5 };
          sameBits(sensGroupErrorsWasm(lines, fmt, clip)!, sensGroupErrorsRef(lines, fmt, clip), `${what}, ${name}, groups of ${groupSize}`);
        }
      }
    }
  });

  it('rounds to FP8 E4M3 as the engine encoder does, on every float32 near each code and midpoint', () => {
    const f = MINIFLOATS.fp8_e4m3;
    const t = MINIFLOAT_DECODE.fp8_e4m3;
    const probe = new Float32Array(1);
    const u = new Uint32Array(probe.buffer);
    let n = 0;
    for (let c = 0; c <= f.maxCode; c++) {
      const edges = [t[c], c < f.maxCode ? (t[c] + t[c + 1]) / 2 : 600];
      for (const e of edges) {
        probe[0] = e;
        const b0 = u[0];
        for (let d = -3; d <= 3; d++) {
          u[0] = b0 + d;
          const a = probe[0];
          if (!(a >= 0)) continue;
          assert.equal(e4m3MagRef(a), t[encodeMinifloat(a, f)], `|y| = ${a}`);
          n++;
        }
      }
    }
    assert.equal(e4m3MagRef(Infinity), 448);
    assert.ok(n > 1000);
  });

  it('lines visit each scale group in the order quantize() does', () => {
    const r = rng(3);
    const cases: [number[], Granularity][] = [
      [[6, 10], { kind: 'channel', axis: 0 }], [[6, 10], { kind: 'channel', axis: 1 }], [[4, 3, 5], { kind: 'channel', axis: 1 }],
      [[6, 10], { kind: 'group', axis: 1, size: 4 }], [[10, 6], { kind: 'group', axis: 0, size: 4 }], [[3, 9, 2], { kind: 'group', axis: 1, size: 4 }],
      [[17], { kind: 'tensor' }], [[17], { kind: 'group', axis: 0, size: 8 }],
    ];
    for (const [shape, g] of cases) {
      const x = weights(shape.reduce((a, b) => a * b, 1), r);
      const layout = groupLayout(shape, g);
      const want = new Map<string, number>();
      const run = newRun();
      const buf = new Float32Array(layout.maxGroupSize);
      for (let k = 0; k < layout.groups; k++) {
        layout.run(k, run);
        const key = Array.from(buf.subarray(0, gather(x, run, buf))).join();
        want.set(key, (want.get(key) ?? 0) + 1);
      }
      const l = groupLines(x, shape, g);
      assert.equal(l.rows * l.rowLen, x.length);
      let groups = 0;
      for (let row = 0; row < l.rows; row++) {
        for (let g0 = 0; g0 < l.rowLen; g0 += l.groupSize) {
          const key = Array.from(l.data.subarray(row * l.rowLen + g0, row * l.rowLen + Math.min(g0 + l.groupSize, l.rowLen))).join();
          const left = want.get(key);
          assert.ok(left, `${JSON.stringify(g)} on [${shape}]: a line group is no scale group of quantize()`);
          want.set(key, left - 1);
          groups++;
        }
      }
      assert.equal(groups, layout.groups, `${JSON.stringify(g)} on [${shape}]`);
    }
  });

  it('error sums equal quantize() with the reference codecs, for every catalogue config, both calibrators and every layout', () => {
    const r = rng(8);
    const cases: [number[], number | undefined][] = [[[64, 300], 0], [[300, 64], 1], [[16, 3, 3, 3], 0], [[8, 6, 3, 3], 1], [[37], undefined], [[128, 256], 0]];
    for (const [shape, axis] of cases) {
      const x = weights(shape.reduce((a, b) => a * b, 1), r);
      const layout = weightLayout(shape, axis);
      for (const cfg of CONFIGS) {
        const spec = specFor(cfg, layout);
        for (const impl of ['wasm', 'ref'] as const) {
          const sums = rtnErrorSums(x, layout.shape, spec, { impl });
          assert.ok(sums, `${cfg.id}: no kernel`);
          for (const cal of ['minmax', 'mse'] as const) {
            const want = sseByQuantize(x, layout.shape, { ...spec, calibrator: cal });
            const got = sums[cal];
            assert.ok(Math.abs(got - want) <= 1e-10 * want, `${cfg.id} ${cal} on [${shape}] axis ${axis} (${impl}): ${got} vs ${want}`);
          }
        }
      }
    }
  });

  it('the sensitivity table is the same from the kernel, its twin and full quantization', () => {
    const r = rng(13);
    for (const [shape, axis] of [[[96, 384], 0], [[200, 48], 1]] as const) {
      const x = weights(shape[0] * shape[1], r);
      const wasm = tensorSensitivity(x, shape, shape, axis, { impl: 'wasm' });
      const ref = tensorSensitivity(x, shape, shape, axis, { impl: 'ref' });
      assert.deepEqual(wasm, ref);
      let energy = 0;
      for (const v of x) energy += v * v;
      const layout = weightLayout(shape, axis);
      for (const c of wasm.configs) {
        const spec = specFor(CONFIGS.find((k) => k.id === c.config)!, layout);
        for (const cal of ['minmax', 'mse'] as const) {
          const mse = sseByQuantize(x, layout.shape, { ...spec, calibrator: cal }) / x.length;
          assert.ok(Math.abs(c.tried[cal] - mse) <= 1e-10 * mse, `${c.config} ${cal}: ${c.tried[cal]} vs ${mse}`);
        }
        const sse = c.mse * x.length;
        assert.ok(Math.abs(c.sqnrDb - 10 * Math.log10(energy / sse)) < 1e-8, c.config);
        assert.ok(Math.abs(c.relError - Math.sqrt(sse / energy)) < 1e-10, c.config);
        // MSE clipping searches a grid that starts at the min-max range, so it never loses.
        assert.ok(c.tried.mse <= c.tried.minmax, c.config);
      }
    }
  });

  it('has no kernel view of specs it does not cover (MXFP4), so callers quantize those in full', () => {
    const spec: QuantSpec = { format: 'fp4_e2m1', scale: 'pow2', granularity: { kind: 'group', axis: 1, size: 32 } };
    assert.equal(sensFormatOf(spec), null);
    assert.equal(rtnErrorSums(new Float32Array(64), [2, 32], spec), null);
  });

  it('names a non-finite element instead of summing it', () => {
    const x = new Float32Array(64);
    x[37] = NaN;
    const spec = specFor(CONFIGS[2], weightLayout([2, 32], 0));
    assert.throws(() => rtnErrorSums(x, [2, 32], spec), /element 37 is NaN/);
    x[37] = -Infinity;
    assert.throws(() => rtnErrorSums(x, [2, 32], spec), /element 37 is -Infinity/);
  });
});

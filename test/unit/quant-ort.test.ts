/**
 * ONNX Runtime is the reference here: the engine's codes must equal what
 * QuantizeLinear computes bit for bit (ties, saturation, FP8 rounding), and
 * MatMulNBits must compute with the weights the packer says it does.
 */
import * as assert from 'node:assert/strict';
import { quantize, quantizeLinearScalar, packMatMulNBits, unpackMatMulNBits, MINIFLOATS, encodeMinifloat, packInt4 } from '../../src/quant';
import { onnxModel, ONNX, f32Bytes, runOrt, randomTensor, rng } from './quant-testUtil';

/** Inputs that stress rounding: exact ties k+0.5 (after the float32 division), saturation, zero, denormals. */
function craftedInputs(scale: number, span: number): Float32Array {
  const v: number[] = [0, -0, 1e-40, -1e-40];
  for (let k = -span; k <= span; k++) {
    v.push(Math.fround((k + 0.5) * scale), Math.fround(k * scale), Math.fround((k + 0.4999) * scale), Math.fround((k + 0.5001) * scale));
  }
  v.push(1e6, -1e6, 3.4e38, -3.4e38);
  return Float32Array.from(v);
}

describe('quant engine vs ONNX Runtime', function () {
  this.timeout(20000);

  it('QuantizeLinear int8 / uint8 per-tensor: ties to even and saturation, bit for bit', async () => {
    for (const [dt, zp, lo, hi] of [[ONNX.INT8, -3, -128, 127], [ONNX.UINT8, 131, 0, 255]] as const) {
      const scale = Math.fround(0.0371);
      const x = Float32Array.from([...craftedInputs(scale, 140), ...randomTensor(500, 7, 3)]);
      const model = onnxModel({
        opsets: [{ domain: '', version: 13 }],
        inputs: [{ name: 'x', elemType: ONNX.FLOAT, dims: [x.length] }],
        outputs: [{ name: 'y', elemType: dt, dims: [x.length] }],
        initializers: [
          { name: 's', dataType: ONNX.FLOAT, dims: [], raw: f32Bytes([scale]) },
          { name: 'z', dataType: dt, dims: [], raw: Uint8Array.of(zp & 0xff) },
        ],
        nodes: [{ opType: 'QuantizeLinear', inputs: ['x', 's', 'z'], outputs: ['y'] }],
      });
      const [y] = await runOrt(model, { x: { data: x, dims: [x.length] } });
      let ties = 0;
      for (let i = 0; i < x.length; i++) {
        const q = quantizeLinearScalar(x[i], scale, zp, lo, hi);
        assert.equal(q, Number(y.data[i]), `x=${x[i]} (index ${i}): engine ${q}, ORT ${y.data[i]}`);
        const t = Math.fround(x[i] / scale);
        if (Math.abs(t - Math.trunc(t)) === 0.5) ties++;
      }
      assert.ok(ties > 100, `the crafted inputs must contain exact ties (found ${ties})`);
    }
  });

  it('asymmetric uint8 per tensor equals DynamicQuantizeLinear: scale, zero point and codes, over 60 tensors', async () => {
    for (let t = 0; t < 60; t++) {
      const n = 97;
      const x = t === 0 ? new Float32Array(n) : randomTensor(n, 1000 + t, 0.1 + t * 0.05);
      for (let i = 0; i < n; i += 5) x[i] += (t % 3) * 0.7; // some all-positive-leaning tensors
      const model = onnxModel({
        opsets: [{ domain: '', version: 13 }],
        inputs: [{ name: 'x', elemType: ONNX.FLOAT, dims: [n] }],
        outputs: [{ name: 'y', elemType: ONNX.UINT8, dims: [n] }, { name: 's', elemType: ONNX.FLOAT, dims: [] }, { name: 'z', elemType: ONNX.UINT8, dims: [] }],
        initializers: [],
        nodes: [{ opType: 'DynamicQuantizeLinear', inputs: ['x'], outputs: ['y', 's', 'z'] }],
      });
      const [y, s, z] = await runOrt(model, { x: { data: x, dims: [n] } });
      for (const impl of ['auto', 'ref'] as const) {
        const r = quantize(x, [n], { format: 'uint', bits: 8, symmetric: false, granularity: { kind: 'tensor' } }, { impl });
        if (t > 0) assert.equal(r.scales[0], Number(s.data[0]), `tensor ${t} scale (${impl})`);
        assert.equal(r.zeroPoints![0], Number(z.data[0]), `tensor ${t} zero point (${impl})`);
        assert.deepEqual(Array.from(r.codes), Array.from(y.data as Uint8Array), `tensor ${t} codes (${impl})`);
      }
    }
  });

  it('per-channel asymmetric uint8: engine scales/zero points fed to ORT reproduce the engine codes', async () => {
    const rows = 6;
    const cols = 50;
    const x = randomTensor(rows * cols, 11, 2);
    for (let i = 0; i < cols; i++) x[3 * cols + i] = Math.abs(x[3 * cols + i]) + 0.5; // an all-positive channel
    const r = quantize(x, [rows, cols], { format: 'uint', bits: 8, symmetric: false, granularity: { kind: 'channel', axis: 0 } });
    const model = onnxModel({
      opsets: [{ domain: '', version: 13 }],
      inputs: [{ name: 'x', elemType: ONNX.FLOAT, dims: [rows, cols] }],
      outputs: [{ name: 'y', elemType: ONNX.UINT8, dims: [rows, cols] }, { name: 'd', elemType: ONNX.FLOAT, dims: [rows, cols] }],
      initializers: [
        { name: 's', dataType: ONNX.FLOAT, dims: [rows], raw: f32Bytes(r.scales) },
        { name: 'z', dataType: ONNX.UINT8, dims: [rows], raw: Uint8Array.from(r.zeroPoints!) },
      ],
      nodes: [
        { opType: 'QuantizeLinear', inputs: ['x', 's', 'z'], outputs: ['y'], attrs: { axis: 0 } },
        { opType: 'DequantizeLinear', inputs: ['y', 's', 'z'], outputs: ['d'], attrs: { axis: 0 } },
      ],
    });
    const [y, d] = await runOrt(model, { x: { data: x, dims: [rows, cols] } });
    assert.deepEqual(Array.from(r.codes), Array.from(y.data as Uint8Array));
    assert.deepEqual(Array.from(r.dequantized), Array.from(d.data as Float32Array));
  });

  it('symmetric int8 per-channel through the WebAssembly fast path: ORT reproduces codes and dequantized values', async () => {
    const rows = 8;
    const cols = 77; // not a multiple of 16: exercises the kernel's scalar tail
    const x = randomTensor(rows * cols, 13, 0.7);
    for (let i = 0; i < 40; i++) x[i * 7] = (i - 20) * 0.125; // exact ties for power-of-two-ish scales
    const r = quantize(x, [rows, cols], { format: 'int', bits: 8, granularity: { kind: 'channel', axis: 0 } });
    const model = onnxModel({
      opsets: [{ domain: '', version: 13 }],
      inputs: [{ name: 'x', elemType: ONNX.FLOAT, dims: [rows, cols] }],
      outputs: [{ name: 'y', elemType: ONNX.INT8, dims: [rows, cols] }, { name: 'd', elemType: ONNX.FLOAT, dims: [rows, cols] }],
      initializers: [
        { name: 's', dataType: ONNX.FLOAT, dims: [rows], raw: f32Bytes(r.scales) },
        { name: 'z', dataType: ONNX.INT8, dims: [rows], raw: new Uint8Array(rows) },
      ],
      nodes: [
        { opType: 'QuantizeLinear', inputs: ['x', 's', 'z'], outputs: ['y'], attrs: { axis: 0 } },
        { opType: 'DequantizeLinear', inputs: ['y', 's', 'z'], outputs: ['d'], attrs: { axis: 0 } },
      ],
    });
    const [y, d] = await runOrt(model, { x: { data: x, dims: [rows, cols] } });
    assert.deepEqual(Array.from(r.codes), Array.from(y.data as Int8Array));
    assert.deepEqual(Array.from(r.dequantized), Array.from(d.data as Float32Array));
  });

  it('blocked int4 (opset 21, block 16 along axis 1, ragged last block): codes and dequantized values match ORT', async () => {
    const rows = 5;
    const cols = 40; // blocks of 16: 16, 16, 8
    const x = randomTensor(rows * cols, 23, 1);
    const r = quantize(x, [rows, cols], { format: 'int', bits: 4, symmetric: true, range: 'full', granularity: { kind: 'group', axis: 1, size: 16 } });
    assert.deepEqual(r.scaleShape, [rows, 3]);
    const model = onnxModel({
      opsets: [{ domain: '', version: 21 }],
      inputs: [{ name: 'x', elemType: ONNX.FLOAT, dims: [rows, cols] }],
      outputs: [{ name: 'd', elemType: ONNX.FLOAT, dims: [rows, cols] }],
      initializers: [
        { name: 's', dataType: ONNX.FLOAT, dims: r.scaleShape, raw: f32Bytes(r.scales) },
        { name: 'z', dataType: ONNX.INT4, dims: r.scaleShape, raw: packInt4(r.zeroPoints!) },
      ],
      nodes: [
        { opType: 'QuantizeLinear', inputs: ['x', 's', 'z'], outputs: ['y'], attrs: { axis: 1, block_size: 16 } },
        { opType: 'DequantizeLinear', inputs: ['y', 's', 'z'], outputs: ['d'], attrs: { axis: 1, block_size: 16 } },
      ],
    });
    const [d] = await runOrt(model, { x: { data: x, dims: [rows, cols] } });
    assert.deepEqual(Array.from(r.dequantized), Array.from(d.data as Float32Array));
  });

  for (const [name, dt] of [['fp8_e4m3', ONNX.FLOAT8E4M3FN], ['fp8_e5m2', ONNX.FLOAT8E5M2]] as const) {
    it(`QuantizeLinear to ${name} (saturate=1): every code equals ORT's, including ties, subnormals and overflow`, async () => {
      const f = MINIFLOATS[name];
      // All midpoints between neighbouring codes (ties), the codes themselves, values beyond max, ±Inf, NaN.
      const vals: number[] = [];
      for (let c = 0; c < f.maxCode; c++) {
        const a = (decode(c) + decode(c + 1)) / 2;
        vals.push(a, -a, decode(c), -decode(c), Math.fround(a * (1 + 2 ** -20)), Math.fround(a * (1 - 2 ** -20)));
      }
      vals.push(f.max * 1.03, -f.max * 1.03, f.max * 1.1, 1e30, -1e30, Infinity, -Infinity, NaN, -NaN);
      const r = rng(5);
      for (let i = 0; i < 2000; i++) vals.push(Math.fround((r() - 0.5) * 2 * f.max * 2 ** (-20 * r())));
      const x = Float32Array.from(vals);
      const model = onnxModel({
        opsets: [{ domain: '', version: 19 }],
        inputs: [{ name: 'x', elemType: ONNX.FLOAT, dims: [x.length] }],
        // The Node binding cannot return float8 tensors, so the codes come back through DequantizeLinear (exact for scale 1).
        outputs: [{ name: 'd', elemType: ONNX.FLOAT, dims: [x.length] }],
        initializers: [
          { name: 's', dataType: ONNX.FLOAT, dims: [], raw: f32Bytes([1]) },
          { name: 'z', dataType: dt, dims: [], raw: Uint8Array.of(0) },
        ],
        nodes: [
          { opType: 'QuantizeLinear', inputs: ['x', 's', 'z'], outputs: ['y'] },
          { opType: 'DequantizeLinear', inputs: ['y', 's'], outputs: ['d'] },
        ],
      });
      const [d] = await runOrt(model, { x: { data: x, dims: [x.length] } });
      for (let i = 0; i < x.length; i++) {
        const mine = decode(encodeMinifloat(x[i], f));
        const theirs = (d.data as Float32Array)[i];
        assert.ok(Object.is(mine, theirs) || (mine === 0 && theirs === 0), `x=${x[i]}: engine ${mine}, ORT ${theirs}`);
      }
      function decode(c: number): number {
        // Independent of the encoder: fields to value.
        const e = (c >> f.manBits) & ((1 << f.expBits) - 1);
        const m = c & ((1 << f.manBits) - 1);
        const sign = c & 0x80 ? -1 : 1;
        if (f.name === 'fp8_e4m3' && (c & 0x7f) === 0x7f) return NaN;
        if (f.name === 'fp8_e5m2' && e === 31) return m === 0 ? sign * Infinity : NaN;
        return sign * (e === 0 ? m * 2 ** (1 - f.bias - f.manBits) : (1 + m / 2 ** f.manBits) * 2 ** (e - f.bias));
      }
    });
  }

  it('per-channel FP8 (E4M3FN, E5M2): engine scales fed to ORT QuantizeLinear/DequantizeLinear reproduce the engine values', async () => {
    const rows = 4;
    const cols = 64;
    const x = randomTensor(rows * cols, 41, 3);
    for (const [format, dt] of [['fp8_e4m3', ONNX.FLOAT8E4M3FN], ['fp8_e5m2', ONNX.FLOAT8E5M2]] as const) {
      const r = quantize(x, [rows, cols], { format, granularity: { kind: 'channel', axis: 0 } });
      const model = onnxModel({
        opsets: [{ domain: '', version: 19 }],
        inputs: [{ name: 'x', elemType: ONNX.FLOAT, dims: [rows, cols] }],
        outputs: [{ name: 'd', elemType: ONNX.FLOAT, dims: [rows, cols] }],
        initializers: [
          { name: 's', dataType: ONNX.FLOAT, dims: [rows], raw: f32Bytes(r.scales) },
          { name: 'z', dataType: dt, dims: [rows], raw: new Uint8Array(rows) },
        ],
        nodes: [
          { opType: 'QuantizeLinear', inputs: ['x', 's', 'z'], outputs: ['y'], attrs: { axis: 0 } },
          { opType: 'DequantizeLinear', inputs: ['y', 's', 'z'], outputs: ['d'], attrs: { axis: 0 } },
        ],
      });
      const [d] = await runOrt(model, { x: { data: x, dims: [rows, cols] } });
      assert.deepEqual(Array.from(r.dequantized), Array.from(d.data as Float32Array), format);
    }
  });

  it('MatMulNBits (2/4/8-bit, block 32, with and without zero points, K not a multiple of the block): ORT output equals A · dequantized weights', async () => {
    const N = 12;
    const M = 3;
    // K = 80 leaves a ragged last block (TypeScript path); K = 96 is whole blocks (WebAssembly path).
    for (const [K, bitsN, symmetric] of [[80, 4, false], [80, 4, true], [80, 8, false], [80, 8, true], [80, 2, false], [96, 4, false], [96, 4, true]] as const) {
      const w = randomTensor(K * N, 31 + K, 0.5);
      const a = randomTensor(M * K, 37, 1);
      const q = packMatMulNBits(w, K, N, { bits: bitsN, blockSize: 32, symmetric });
      // The packed bytes alone decode to the weights the engine reports.
      assert.deepEqual(Array.from(unpackMatMulNBits(q)), Array.from(q.dequantized));
      const inits = [
        { name: 'B', dataType: ONNX.UINT8, dims: [N, q.nBlocksPerCol, q.blobSize], raw: q.B },
        { name: 'scales', dataType: ONNX.FLOAT, dims: [N * q.nBlocksPerCol], raw: f32Bytes(q.scales) },
      ];
      const inputs = ['A', 'B', 'scales'];
      if (q.zeroPoints) {
        inits.push({ name: 'zp', dataType: ONNX.UINT8, dims: [q.zeroPoints.length], raw: q.zeroPoints });
        inputs.push('zp');
      }
      const model = onnxModel({
        opsets: [{ domain: '', version: 17 }, { domain: 'com.microsoft', version: 1 }],
        inputs: [{ name: 'A', elemType: ONNX.FLOAT, dims: [M, K] }],
        outputs: [{ name: 'Y', elemType: ONNX.FLOAT, dims: [M, N] }],
        initializers: inits,
        nodes: [{ opType: 'MatMulNBits', domain: 'com.microsoft', inputs, outputs: ['Y'], attrs: { K, N, bits: bitsN, block_size: 32 } }],
      });
      const [y] = await runOrt(model, { A: { data: a, dims: [M, K] } });
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          let ref = 0;
          let mag = 0;
          for (let k = 0; k < K; k++) {
            ref += a[m * K + k] * q.dequantized[k * N + n];
            mag += Math.abs(a[m * K + k] * q.dequantized[k * N + n]);
          }
          const got = Number(y.data[m * N + n]);
          assert.ok(Math.abs(got - ref) <= 1e-5 * mag + 1e-6, `bits=${bitsN} symmetric=${symmetric} Y[${m},${n}]: ORT ${got}, reference ${ref}`);
        }
      }
    }
  });
});

/**
 * onnx-int4 / onnx-qdq / onnx-dynamic on small built models: ONNX Runtime
 * runs every output, and its results equal a float64 matmul with the
 * weights our reader decodes from the written file (which verification
 * checks equal the engine's prediction bit for bit).
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertOnnx, ConvertOnnxResult } from '../../src/pipelines/convertOnnx';
import { verifyOnnx, decodeStored } from '../../src/pipelines/verifyOnnx';
import { openOnnx } from '../../src/formats/onnx/reader';
import { runOnnxInWorker } from '../../src/runtime/ortRun';
import { randomTensor } from './quant-testUtil';
import { f32Tensor, matmulModel, node, vi, writeModel } from './onnx-testModels';
import { quantizeNBitsKN } from '../../src/quant/matmulNBitsKN';
import { rtnQuantize } from '../../src/quant/algorithms/intGrid';
import { packNBits, float32Digest, Float32Digest } from '../../src/quant/onnxLayouts';
import { nbitsKNInput, runNbitsKN, runNbitsKNStreamed } from '../../src/kernels/nbitsKnWasm';
import { NBITS_KN_SOURCE_SHA256 } from '../../src/kernels/nbitsKn.generated';
import { createHash } from 'node:crypto';

/** y = x·W in float64 for x [M, K], W [K, N]. */
function matmul64(x: Float32Array, w: Float32Array, M: number, K: number, N: number): Float64Array {
  const y = new Float64Array(M * N);
  for (let m = 0; m < M; m++) for (let k = 0; k < K; k++) { const a = x[m * K + k]; for (let n = 0; n < N; n++) y[m * N + n] += a * w[k * N + n]; }
  return y;
}

function storedWeight(r: ConvertOnnxResult, name: string): Float32Array {
  const t = r.tensors.find((x) => x.name === name);
  assert.ok(t, `${name} was not quantized: ${JSON.stringify(r.skipped)}`);
  const m = openOnnx(r.output);
  try { return decodeStored(m, t.stored); } finally { m.close(); }
}

function assertClose(got: ArrayLike<number>, want: Float64Array, what: string): void {
  let scale = 0;
  for (const v of want) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= 2e-5 * scale + 1e-6, `${what}: element ${i}: ORT ${got[i]}, float64 reference ${want[i]} (scale ${scale})`);
  }
}

describe('ONNX conversion: built models through ONNX Runtime', function () {
  this.timeout(120000);
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-onnxc-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the embedded nbitsKn WebAssembly module is built from the current nbitsKn.as', () => {
    const src = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'src', 'kernels', 'nbitsKn.as'));
    assert.equal(createHash('sha256').update(src).digest('hex'), NBITS_KN_SOURCE_SHA256, 'nbitsKn.as changed: run node src/kernels/build.mjs nbitsKn');
  });

  it('the [K, N] RTN kernel equals the reference grid (intGrid rtnQuantize of the transpose, then packNBits), bytes and prediction', () => {
    let wasmChecked = 0;
    for (const [K, N, bits, bs, sym] of [[96, 24, 4, 32, true], [200, 7, 4, 128, false], [64, 33, 8, 16, false], [130, 5, 2, 64, true], [256, 40, 4, 64, false], [200, 12, 4, 128, true], [200, 12, 8, 128, false], [130, 8, 2, 64, false],
      // The kernel's 16×16 transposed packing (N ≥ 16, blob a multiple of 16) for every width, with a scalar edge and a ragged last block.
      [64, 48, 8, 16, false], [200, 32, 2, 64, true], [300, 20, 4, 128, true], [256, 36, 4, 128, false]] as const) {
      const w = randomTensor(K * N, K * 31 + N, 0.7);
      for (let i = 0; i < 20; i++) w[(i * 37) % w.length] = 0.05 * Math.round(w[(i * 37) % w.length] / 0.05); // some exact grid points
      if (K === 200 && N === 12) {
        // Multiples of 1/16: many quotients w / scale land on or within float32 rounding of k + 0.5,
        // where the float32 quotient can round onto a tie the exact one is not on. The kernel must
        // then decide with the f64 quotient (without that fallback this case fails).
        for (let i = 0; i < w.length; i++) w[i] = Math.round(w[i] * 8) / 16;
        for (let n = 0; n < N; n++) for (let b = 0; b < K; b += bs) w[b * N + n] = 0.875;
      }
      const fast = quantizeNBitsKN(w, K, N, bits, bs, sym);
      const Kp = Math.ceil(K / bs) * bs;
      const wt = new Float32Array(N * Kp);
      for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) wt[n * Kp + k] = w[k * N + n];
      const q = rtnQuantize(wt, N, Kp, { bits, symmetric: sym, groupSize: bs });
      const ref = packNBits(q, K, bits, bs, sym);
      const tag = `K=${K} N=${N} int${bits} block ${bs} ${sym ? 'sym' : 'asym'}`;
      assert.ok(Buffer.from(fast.B).equals(Buffer.from(ref.B)), `${tag}: B`);
      assert.deepEqual(Array.from(fast.scales), Array.from(ref.scales), `${tag}: scales`);
      assert.deepEqual(fast.zeroPoints && Array.from(fast.zeroPoints), ref.zeroPoints && Array.from(ref.zeroPoints), `${tag}: zero points`);
      const pred = new Float32Array(K * N);
      for (let k = 0; k < K; k++) for (let n = 0; n < N; n++) pred[k * N + n] = q.dequantized[n * Kp + k];
      assert.equal(fast.digest, float32Digest(pred), `${tag}: prediction`);
      if (N % 4 === 0) {
        // The WebAssembly twin: same bytes, same fingerprint.
        const { view, layout } = nbitsKNInput(K, N, bits, bs);
        view.set(new Uint8Array(w.buffer));
        const r = runNbitsKN(layout, sym);
        assert.ok(Buffer.from(r.B).equals(Buffer.from(ref.B)), `${tag}: wasm B`);
        assert.deepEqual(Array.from(r.scales), Array.from(ref.scales), `${tag}: wasm scales`);
        assert.deepEqual(r.zeroPoints && Array.from(r.zeroPoints), ref.zeroPoints && Array.from(ref.zeroPoints), `${tag}: wasm zero points`);
        const d = new Float32Digest();
        d.setState(r.h, K * N);
        assert.equal(d.value(), fast.digest, `${tag}: wasm prediction`);
        // Streamed a block of rows at a time (the pool workers' way): the same bytes and fingerprint.
        const wb = new Uint8Array(w.buffer, w.byteOffset, w.byteLength);
        const st = runNbitsKNStreamed(K, N, bits, bs, sym, (dst, k0, rows) => dst.set(wb.subarray(k0 * N * 4, (k0 + rows) * N * 4))).r;
        assert.ok(Buffer.from(st.B).equals(Buffer.from(ref.B)), `${tag}: streamed B`);
        assert.deepEqual(Array.from(st.scales), Array.from(ref.scales), `${tag}: streamed scales`);
        assert.deepEqual(st.zeroPoints && Array.from(st.zeroPoints), ref.zeroPoints && Array.from(ref.zeroPoints), `${tag}: streamed zero points`);
        assert.deepEqual(Array.from(st.h), Array.from(r.h), `${tag}: streamed prediction`);
        assert.deepEqual([st.sumSq, st.errSq, st.maxAbs], [r.sumSq, r.errSq, r.maxAbs], `${tag}: streamed error sums`);
        wasmChecked++;
      }
    }
    assert.ok(wasmChecked >= 3, 'the WebAssembly kernel was exercised');
  });

  const M = 5;
  const cases: { bits: 2 | 4 | 8; symmetric: boolean; blockSize: number; K: number; N: number }[] = [
    { bits: 4, symmetric: true, blockSize: 32, K: 96, N: 24 },
    { bits: 4, symmetric: false, blockSize: 16, K: 64, N: 17 },
    { bits: 4, symmetric: true, blockSize: 128, K: 200, N: 8 }, // ragged last block
    { bits: 4, symmetric: false, blockSize: 64, K: 256, N: 33 },
    { bits: 8, symmetric: true, blockSize: 32, K: 96, N: 24 },
    { bits: 8, symmetric: false, blockSize: 128, K: 300, N: 12 },
    { bits: 8, symmetric: false, blockSize: 16, K: 48, N: 40 },
  ];
  for (const c of cases) {
    it(`MatMulNBits int${c.bits} ${c.symmetric ? 'sym' : 'asym'} block ${c.blockSize}, K=${c.K} N=${c.N}: ORT equals float64 x·dequant(W)`, async () => {
      const src = path.join(dir, `mm-${c.bits}-${c.symmetric}-${c.blockSize}.onnx`);
      const out = src.replace('.onnx', '.int.onnx');
      matmulModel(src, c.K, c.N, c.K + c.N);
      const r = await convertOnnx(src, out, { target: 'onnx-int4', bits: c.bits, blockSize: c.blockSize, symmetric: c.symmetric });
      assert.equal(r.tensors.length, 1);
      const wq = storedWeight(r, 'W');
      const x = randomTensor(M * c.K, 7);
      const [[q]] = await runOnnxInWorker([{ model: out, feeds: [{ x: { data: x, dims: [M, c.K] } }], optimization: 'disabled' }]);
      assertClose(q[0].data as Float32Array, matmul64(x, wq, M, c.K, c.N), 'output');
      const v = await verifyOnnx(r, { feeds: [{ x: { data: x, dims: [M, c.K] } }] });
      assert.deepEqual(v.weights.mismatched, []);
      assert.ok(v.outputs[0].cosine > (c.bits === 8 ? 0.9999 : 0.98), `cosine ${v.outputs[0].cosine}`);
      // The node is the one ORT's own quantizer writes.
      const m = openOnnx(out);
      const n = m.graph!.nodes.find((x) => x.opType === 'MatMulNBits')!;
      m.close();
      assert.equal(n.domain, 'com.microsoft');
      assert.deepEqual(n.inputs, c.symmetric ? ['x', 'W_Q' + c.bits, 'W_scales'] : ['x', 'W_Q' + c.bits, 'W_scales', 'W_zero_points']);
      assert.deepEqual([n.attributes.K, n.attributes.N, n.attributes.bits, n.attributes.block_size], [c.K, c.N, c.bits, c.blockSize]);
    });
  }

  it('int2: ORT 1.30 CPU MatMulNBits with bits=2 computes x·dequant(W), or the limitation is recorded', async () => {
    const src = path.join(dir, 'mm2.onnx');
    matmulModel(src, 64, 16, 3);
    const out = path.join(dir, 'mm2.int2.onnx');
    const r = await convertOnnx(src, out, { target: 'onnx-int4', bits: 2, blockSize: 32 });
    const x = randomTensor(M * 64, 9);
    const run = runOnnxInWorker([{ model: out, feeds: [{ x: { data: x, dims: [M, 64] } }], optimization: 'disabled' }]);
    const [[q]] = await run;
    assertClose(q[0].data as Float32Array, matmul64(x, storedWeight(r, 'W'), M, 64, 16), 'int2 output');
  });

  it('Gemm transB=1 with bias, a weight shared by two MatMuls, a Constant-node weight, weight as input A, and a weight inside If branches', async () => {
    const K = 64, N = 32;
    const wg = randomTensor(N * K, 1, 0.3); // Gemm B [N, K] with transB=1
    const ws = randomTensor(N * N, 2, 0.3); // shared by two MatMuls
    const wc = randomTensor(N * N, 3, 0.3); // Constant node
    const wa = randomTensor(4 * K, 4, 0.3); // MatMul input A (constant [4, K] · x^T-ish)
    const wi = randomTensor(N * N, 5, 0.3); // inside both If branches (defined in the main graph)
    const bias = randomTensor(N, 6, 0.1);
    const branch = (name: string, op: string): import('../../src/formats/onnx/writer').GraphMsg => ({
      name, node: [node('MatMul', ['h3', 'Wif'], [`${name}_mm`]), node(op, [`${name}_mm`], [`${name}_out`])], output: [vi(`${name}_out`, 1, [M, N])],
    });
    const src = path.join(dir, 'forms.onnx');
    writeModel(src, {
      name: 'g',
      node: [
        node('Constant', [], ['Wc'], {}, { attribute: [{ name: 'value', type: 4, t: f32Tensor('', [N, N], wc) }] }),
        node('Gemm', ['x', 'Wg', 'bias'], ['h1'], { transB: 1 }),
        node('MatMul', ['h1', 'Ws'], ['h2a']),
        node('Sigmoid', ['h1'], ['h1s']),
        node('MatMul', ['h1s', 'Ws'], ['h2b']),
        node('Add', ['h2a', 'h2b'], ['h2']),
        node('MatMul', ['h2', 'Wc'], ['h3']),
        node('MatMul', ['Wa', 'xt'], ['ya']),
        node('ReduceSum', ['h3'], ['s'], { keepdims: 0 }),
        node('Greater', ['s', 'zero'], ['cond']),
        { ...node('If', ['cond'], ['y']), attribute: [{ name: 'then_branch', type: 5, g: branch('then', 'Relu') }, { name: 'else_branch', type: 5, g: branch('else', 'Neg') }] },
      ],
      initializer: [f32Tensor('Wg', [N, K], wg), f32Tensor('Ws', [N, N], ws), f32Tensor('Wa', [4, K], wa), f32Tensor('Wif', [N, N], wi), f32Tensor('bias', [N], bias), f32Tensor('zero', [], Float32Array.of(-1e9))],
      input: [vi('x', 1, [M, K]), vi('xt', 1, [K, 3])],
      output: [vi('y', 1, [M, N]), vi('ya', 1, [4, 3])],
    });
    const out = path.join(dir, 'forms.int4.onnx');
    const r = await convertOnnx(src, out, { target: 'onnx-int4', blockSize: 16 });
    assert.deepEqual(r.tensors.map((t) => t.name).sort(), ['Wc', 'Wg', 'Wif', 'Ws']);
    assert.match(r.skipped.find((s) => s.name === 'Wa')!.reason, /input A/);
    assert.match(r.skipped.find((s) => s.name === 'bias')!.reason, /bias/);
    assert.equal(r.tensors.find((t) => t.name === 'Ws')!.nodes.length, 2, 'one quantized copy serves both consumers');
    const x = randomTensor(M * K, 11);
    const xt = randomTensor(K * 3, 12);
    const v = await verifyOnnx(r, { feeds: [{ x: { data: x, dims: [M, K] }, xt: { data: xt, dims: [K, 3] } }] });
    assert.deepEqual(v.weights.mismatched, []);
    assert.ok(v.outputs[0].cosine > 0.97, `y cosine ${v.outputs[0].cosine}`);
    assert.equal(v.outputs[1].maxAbs, 0, 'the input-A MatMul is untouched');
    // Float64 reference of the whole graph with the decoded weights.
    const dg = storedWeight(r, 'Wg'); // decoded as [K, N]
    const h1 = matmul64(x, dg, M, K, N).map((v2, i) => v2 + bias[i % N]);
    const ds = storedWeight(r, 'Ws');
    const h2a = matmul64(Float32Array.from(h1), ds, M, N, N);
    const h2b = matmul64(Float32Array.from(h1, (v2) => 1 / (1 + Math.exp(-v2))), ds, M, N, N);
    const h2 = Float32Array.from(h2a, (v2, i) => v2 + h2b[i]);
    const h3 = matmul64(h2, storedWeight(r, 'Wc'), M, N, N);
    const yRef = matmul64(Float32Array.from(h3), storedWeight(r, 'Wif'), M, N, N).map((v2) => Math.max(0, v2));
    const [[o]] = await runOnnxInWorker([{ model: out, feeds: [{ x: { data: x, dims: [M, K] }, xt: { data: xt, dims: [K, 3] } }], optimization: 'disabled' }]);
    let scale = 0;
    for (const v2 of yRef) scale = Math.max(scale, Math.abs(v2));
    const y = o[0].data as Float32Array;
    for (let i = 0; i < yRef.length; i++) assert.ok(Math.abs(y[i] - yRef[i]) <= 1e-4 * scale, `y[${i}] ${y[i]} vs ${yRef[i]}`);
  });

  it('onnx-qdq int8 and onnx-dynamic on the same graph run in ORT, close to the float model', async () => {
    const src = path.join(dir, 'forms.onnx');
    for (const [target, min] of [['onnx-qdq', 0.999], ['onnx-dynamic', 0.99]] as const) {
      const out = path.join(dir, `forms.${target}.onnx`);
      const r = await convertOnnx(src, out, { target });
      assert.ok(r.tensors.length >= 4, `${target}: ${r.tensors.length} tensors`);
      const x = randomTensor(M * 64, 11);
      const xt = randomTensor(64 * 3, 12);
      const v = await verifyOnnx(r, { feeds: [{ x: { data: x, dims: [M, 64] }, xt: { data: xt, dims: [64, 3] } }] });
      assert.deepEqual(v.weights.mismatched, []);
      for (const o of v.outputs) assert.ok(o.cosine > min, `${target} ${o.name} cosine ${o.cosine}`);
      const m = openOnnx(out);
      const ops = new Set(m.graph!.nodes.map((n) => n.opType));
      m.close();
      if (target === 'onnx-dynamic') for (const op of ['DynamicQuantizeLinear', 'MatMulInteger']) assert.ok(ops.has(op), `${op} in the graph`);
      else assert.ok(ops.has('DequantizeLinear'));
    }
  });

  it('accuracy_level 4 and external-data output: ORT loads the written files and stays close to x·dequant(W)', async () => {
    const K = 128, N = 64;
    const src = path.join(dir, 'acc.onnx');
    matmulModel(src, K, N, 17);
    const x = randomTensor(M * K, 18);
    for (const [tag, opts] of [['acc4', { accuracyLevel: 4 }], ['ext', { externalData: true }]] as const) {
      const out = path.join(dir, `acc.${tag}.onnx`);
      const r = await convertOnnx(src, out, { target: 'onnx-int4', blockSize: 32, ...opts });
      if (tag === 'ext') assert.ok(r.externalData && fs.existsSync(r.externalData), 'external data file written');
      const v = await verifyOnnx(r, { feeds: [{ x: { data: x, dims: [M, K] } }] });
      assert.deepEqual(v.weights.mismatched, []);
      const [[q]] = await runOnnxInWorker([{ model: out, feeds: [{ x: { data: x, dims: [M, K] } }] }]);
      const want = matmul64(x, storedWeight(r, 'W'), M, K, N);
      let err = 0, ref = 0;
      for (let i = 0; i < want.length; i++) { err += (q[0].data[i] as number - want[i]) ** 2; ref += want[i] ** 2; }
      // accuracy_level 4 quantizes the activations to int8 inside the op: close, not exact.
      assert.ok(Math.sqrt(err / ref) < (tag === 'acc4' ? 0.02 : 1e-5), `${tag}: relative error ${Math.sqrt(err / ref)}`);
    }
  });

  it('verification catches a stored weight that differs from the prediction (one flipped code, int4 and QDQ)', async () => {
    const src = path.join(dir, 'flip.onnx');
    matmulModel(src, 64, 32, 19);
    for (const [target, field] of [['onnx-int4', 'B'], ['onnx-qdq', 'codes']] as const) {
      const out = path.join(dir, `flip.${target}.onnx`);
      const r = await convertOnnx(src, out, { target, blockSize: 32 });
      assert.deepEqual((await verifyOnnx(r, { skipRuntime: true })).weights.mismatched, []);
      const stored = r.tensors[0].stored as unknown as Record<string, string>;
      const m = openOnnx(out);
      const t = m.tensors.find((x) => x.name === stored[field])!;
      m.close();
      assert.equal(t.location.kind, 'disk');
      const fd = fs.openSync(out, 'r+');
      const b = Buffer.alloc(1);
      const at = (t.location as { offset: number }).offset + 5;
      fs.readSync(fd, b, 0, 1, at);
      b[0] ^= 0x01;
      fs.writeSync(fd, b, 0, 1, at);
      fs.closeSync(fd);
      assert.deepEqual((await verifyOnnx(r, { skipRuntime: true })).weights.mismatched, ['W'], `${target}: the flipped code is detected`);
    }
  });

  it('a cancelled conversion leaves no file; the source is refused as output', async () => {
    const src = path.join(dir, 'cancel-src.onnx');
    matmulModel(src, 64, 64, 5);
    const sub = fs.mkdtempSync(path.join(dir, 'cancel-'));
    const ac = new AbortController();
    await assert.rejects(convertOnnx(src, path.join(sub, 'out.onnx'), { target: 'onnx-int4' }, { signal: ac.signal, onProgress: (p) => { if (p.phase === 'quantize') ac.abort(); } }));
    const ac2 = new AbortController();
    await assert.rejects(convertOnnx(src, path.join(sub, 'out.onnx'), { target: 'onnx-int4' }, { signal: ac2.signal, onProgress: (p) => { if (p.phase === 'write' && p.done > 0) ac2.abort(); } }));
    assert.deepEqual(fs.readdirSync(sub), []);
    await assert.rejects(convertOnnx(src, src, { target: 'onnx-int4' }), /source/);
  });
});

/**
 * onnx-int4 with pool workers writing the MatMulNBits tensors straight into
 * the output (writeOnnxFilled): the file is byte for byte the one the
 * single-thread path writes (tensors built in memory, serialized by
 * writeOnnx), for symmetric and asymmetric grids and with a tensor the
 * workers do not take (a transB Gemm) in between; a cancel during the
 * write leaves no file behind.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertOnnx } from '../../src/pipelines/convertOnnx';
import { verifyOnnx } from '../../src/pipelines/verifyOnnx';
import { randomTensor } from './quant-testUtil';
import { f32Tensor, node, vi, writeModel } from './onnx-testModels';

describe('ONNX conversion: MatMulNBits written by pool workers', function () {
  this.timeout(120000);
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-onnxw-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** x → MatMul W0 → Gemm(transB) G1 → MatMul W2 → MatMul W3 → y, all 128 wide. */
  function stack(file: string): void {
    const D = 128;
    writeModel(file, {
      name: 'g',
      node: [
        node('MatMul', ['x', 'W0'], ['h0']),
        node('Gemm', ['h0', 'G1'], ['h1'], { transB: 1 }),
        node('MatMul', ['h1', 'W2'], ['h2']),
        node('MatMul', ['h2', 'W3'], ['y']),
      ],
      initializer: ['W0', 'G1', 'W2', 'W3'].map((n, i) => f32Tensor(n, [D, D], randomTensor(D * D, 40 + i, 0.2))),
      input: [vi('x', 1, ['batch', D])], output: [vi('y', 1, ['batch', D])],
    });
  }

  for (const symmetric of [true, false]) {
    it(`${symmetric ? 'sym' : 'asym'}: the workers' file equals the single-thread file, and reads back as predicted`, async () => {
      const src = path.join(dir, `stack-${symmetric}.onnx`);
      stack(src);
      const one = path.join(dir, `one-${symmetric}.onnx`);
      const two = path.join(dir, `two-${symmetric}.onnx`);
      const r1 = await convertOnnx(src, one, { target: 'onnx-int4', blockSize: 32, symmetric, threads: 1 });
      const r2 = await convertOnnx(src, two, { target: 'onnx-int4', blockSize: 32, symmetric, threads: 2 });
      assert.equal(r2.tensors.length, 4);
      assert.ok(fs.readFileSync(one).equals(fs.readFileSync(two)), 'same bytes');
      assert.deepEqual(r2.tensors.map((t) => [t.name, t.stored.digest, t.predicted]), r1.tensors.map((t) => [t.name, t.stored.digest, t.predicted]));
      const v = await verifyOnnx(r2, { skipRuntime: true });
      assert.deepEqual(v.weights.mismatched, []);
    });
  }

  it('a cancel while the workers write leaves no file', async () => {
    const src = path.join(dir, 'stack-cancel.onnx');
    stack(src);
    const out = path.join(dir, 'cancel', 'out.onnx');
    fs.mkdirSync(path.dirname(out));
    const ac = new AbortController();
    await assert.rejects(convertOnnx(src, out, { target: 'onnx-int4', threads: 2 }, {
      signal: ac.signal, onProgress: (p) => { if (p.phase === 'write') ac.abort(); },
    }), (e: Error) => e.name === 'AbortError');
    assert.deepEqual(fs.readdirSync(path.dirname(out)), []);
  });
});

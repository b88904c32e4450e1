/**
 * A q/k projection read by a pool worker in llama.cpp's rope order
 * (readSourceValuesRope) equals the same rows of the whole tensor reordered
 * on the main thread (gatherTensor), for every slab of whole rows, aligned to
 * the heads or not, in F32 and BF16.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openSafetensors } from '../../src/formats/safetensors/reader';
import { gatherTensor } from '../../src/formats/hf/archs';
import { readSourceSlab, readSourceValuesRope, slabFloat32 } from '../../src/quant/ggml/slab';
import { StDtype, writeSafetensors } from './hfFixtures';

describe('HF → GGUF: rope-ordered slabs read in the worker', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-rope-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const nHeads = 4, headRows = 6, cols = 5, rows = nHeads * headRows;
  // Every value names its row and column, so a misplaced row cannot go unseen.
  const data = Float32Array.from({ length: rows * cols }, (_, i) => Math.floor(i / cols) + (i % cols) / 8);
  for (const dtype of ['F32', 'BF16'] as StDtype[]) {
    it(`${dtype}: every slab of whole rows`, () => {
      const file = path.join(dir, `q-${dtype}.safetensors`);
      writeSafetensors(file, [{ name: 'q_proj.weight', shape: [rows, cols], data }], dtype);
      const m = openSafetensors(file);
      try {
        const info = m.tensors[0];
        const whole = gatherTensor({ name: 'blk.0.attn_q.weight', ne: [cols, rows], srcType: dtype, source: { kind: 'hf', name: info.name, info, reshape: { permuteHeads: nHeads } } },
          (t, s, c) => readSourceSlab(m, t, s, c));
        // The first head's first rows, by hand: HF rows 0, 3, 1, 4, 2, 5 (pairs (i, i + 3) made adjacent).
        assert.deepEqual(Array.from({ length: headRows }, (_, r) => whole[r * cols]), [0, 3, 1, 4, 2, 5]);
        for (let r0 = 0; r0 < rows; r0++) {
          for (let r1 = r0 + 1; r1 <= rows; r1++) {
            const got = slabFloat32(readSourceValuesRope(m, info, r0 * cols, (r1 - r0) * cols, cols, nHeads));
            assert.deepEqual(Array.from(got), Array.from(whole.subarray(r0 * cols, r1 * cols)), `rows ${r0}..${r1}`);
          }
        }
        assert.throws(() => readSourceValuesRope(m, info, 1, cols, cols, nHeads), /whole rows/);
      } finally {
        m.close();
      }
    });
  }
});

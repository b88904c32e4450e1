import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { quantizeGgml, quantizeGgmlInto, ggmlQuantizedSize, canQuantizeGgml } from '../../src/quant/ggml/quantize';
import { dequantizeGgml } from '../../src/formats/gguf/dequant';
import { f16ToF32 } from '../../src/formats/dtypes';
import { GgmlTypeName } from '../../src/formats/gguf/ggmlTypes';
import { gauss, rng } from '../random';
import { GGML_FIXTURES, firstDiff, readGgmlF32 } from './ggmlFixtures';

// Fixtures are produced by the real ggml library (test/fixtures/ggml/gen_reference.py).
const FIX = GGML_FIXTURES;

const TYPES: [GgmlTypeName, string, boolean][] = [
  ['Q4_0', 'q4_0', true], ['Q4_1', 'q4_1', true], ['Q5_0', 'q5_0', true], ['Q5_1', 'q5_1', true],
  ['Q8_0', 'q8_0', false], ['Q2_K', 'q2_k', true], ['Q3_K', 'q3_k', true], ['Q4_K', 'q4_k', true],
  ['Q5_K', 'q5_k', true], ['Q6_K', 'q6_k', true], ['Q8_K', 'q8_k', false],
];

describe('GGUF block encoders: byte-exact against ggml', () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(FIX, 'manifest.json'), 'utf8')) as { rows: number; perRow: number };
  const input = readGgmlF32('input.f32');
  const imatrix = readGgmlF32('imatrix.f32');
  const n = manifest.rows * manifest.perRow;
  assert.equal(input.length, n);

  for (const [type, file, imat] of TYPES) {
    it(`${type} equals quantize_row_${file}_ref`, () => {
      const want = new Uint8Array(fs.readFileSync(path.join(FIX, `${file}.bin`)));
      const got = quantizeGgml(type, input, n);
      const at = firstDiff(got, want);
      assert.equal(at, -1, `${type}: first differing byte ${at} (block ${Math.floor(at / (got.length / (n / (type.endsWith('_K') ? 256 : 32))))})`);
    });
    if (imat) {
      it(`${type} with importance weights equals ggml's imatrix path`, () => {
        const want = new Uint8Array(fs.readFileSync(path.join(FIX, `${file}.imat.bin`)));
        const got = quantizeGgml(type, input, n, { importance: imatrix });
        const at = firstDiff(got, want);
        assert.equal(at, -1, `${type}+imatrix: first differing byte ${at}`);
      });
    }
  }
});

describe('GGUF block encoders: hand-computed blocks', () => {
  it('Q8_0: amax 127 gives d = 1 and roundf rounds halves away from zero', () => {
    const x = new Float32Array(32);
    x.set([127, -3.5, 2.5, 0.5, -0.5, -127, 0.49, 3.51]);
    const y = quantizeGgml('Q8_0', x, 32);
    assert.equal(y.length, 34);
    assert.deepEqual([...y.subarray(0, 2)], [0x00, 0x3c]); // fp16 1.0, little-endian
    assert.deepEqual([...new Int8Array(y.buffer, 2, 8)], [127, -4, 3, 1, -1, -127, 0, 4]);
    assert.ok(new Int8Array(y.buffer, 10, 24).every((v) => v === 0));
  });

  it('Q4_0: the signed absmax maps to code 0, halves round up, +8 clamps to 15', () => {
    const x = new Float32Array(32);
    x[0] = -8; x[1] = 7; x[2] = 0.5; x[3] = -0.5; x[16] = 3; x[17] = 8; x[18] = -7.6;
    const y = quantizeGgml('Q4_0', x, 32);
    assert.deepEqual([...y.subarray(0, 2)], [0x00, 0x3c]); // d = max / -8 = 1
    // byte j = code(x[j]) | code(x[j+16]) << 4; code = min(15, trunc(x/d + 8.5))
    assert.equal(y[2], 0 | (11 << 4));
    assert.equal(y[3], 15 | (15 << 4));
    assert.equal(y[4], 9 | (0 << 4)); // 0.5 + 8.5 = 9; -7.6 + 8.5 = 0.9 -> 0
    assert.equal(y[5], 8 | (8 << 4));
  });

  it('Q4_1: d = (max-min)/15 and m = min', () => {
    const x = new Float32Array(32);
    for (let j = 0; j < 32; j++) x[j] = 2 + (j % 16); // min 2, max 17, d = 1
    const y = quantizeGgml('Q4_1', x, 32);
    assert.equal(f16ToF32(y[0] | (y[1] << 8)), 1);
    assert.equal(f16ToF32(y[2] | (y[3] << 8)), 2);
    for (let j = 0; j < 16; j++) assert.equal(y[4 + j], j | (j << 4));
  });

  it('Q5_0: fifth bits land in qh, element j at bit j', () => {
    const x = new Float32Array(32);
    x[0] = -16; // d = 1, code 0
    x[1] = 15; // code 31: low nibble 15, high bit set
    x[17] = 0; // code 16: high bit only
    const y = quantizeGgml('Q5_0', x, 32);
    assert.deepEqual([...y.subarray(0, 2)], [0x00, 0x3c]);
    const qh = y[2] | (y[3] << 8) | (y[4] << 16) | (y[5] << 24);
    // every zero element has code 16, so its high bit is set; element 0 (code 0) is the only clear one
    assert.equal(qh >>> 0, 0xfffffffe);
    assert.equal(y[6 + 0], 0 | (0 << 4));
    assert.equal(y[6 + 1], 15 | (0 << 4));
  });

  it('all-zero input encodes to all-zero blocks for every type', () => {
    const x = new Float32Array(512);
    for (const [type] of TYPES) {
      const y = quantizeGgml(type, x, 512);
      assert.equal(y.length, ggmlQuantizedSize(type, 512));
      if (type === 'Q4_0' || type === 'Q5_0') continue; // zero codes sit at the midpoint (8, 16), not 0
      assert.ok(y.every((b) => b === 0), `${type} zero block`);
    }
    // Q4_0: d = 0 / -8 is negative zero (fp16 0x8000) and every nibble is the midpoint 8.
    const q4 = quantizeGgml('Q4_0', new Float32Array(32), 32);
    assert.deepEqual([...q4], [0x00, 0x80, ...new Array(16).fill(0x88)]);
  });
});

describe('GGUF block encoders: encode -> ggml dequantizer round trip', () => {
  // Relative RMS error bounds on Gaussian data: loose enough for every correct
  // encoder, far below what a wrong layout or scale produces (~1).
  const bound: Record<string, number> = {
    Q8_0: 0.008, Q6_K: 0.02, Q5_0: 0.05, Q5_1: 0.05, Q5_K: 0.04, Q4_0: 0.11, Q4_1: 0.1, Q4_K: 0.08,
    Q3_K: 0.2, Q2_K: 0.4, Q8_K: 0.015,
  };
  const r = rng(7);
  const n = 4096;
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = gauss(r) * (1 + 3 * (i % 300 === 0 ? 1 : 0));
  for (const [type] of TYPES) {
    it(`${type} decodes back within its error`, () => {
      const q = quantizeGgml(type, x, n);
      const back = new Float32Array(n);
      dequantizeGgml(type, q, back, n);
      let e2 = 0, s2 = 0;
      for (let i = 0; i < n; i++) { e2 += (x[i] - back[i]) ** 2; s2 += x[i] ** 2; }
      const rel = Math.sqrt(e2 / s2);
      assert.ok(rel < bound[type], `${type}: relative RMS error ${rel}`);
      assert.ok(rel > 0, `${type}: lossless on Gaussian data is impossible`);
    });
  }

  it('Q8_0 per-element error is at most half a step plus the fp16 scale rounding', () => {
    const q = quantizeGgml('Q8_0', x, n);
    const back = new Float32Array(n);
    dequantizeGgml('Q8_0', q, back, n);
    for (let b = 0; b < n / 32; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
      const tol = amax * (0.5 / 127 + 2 ** -11) * (1 + 1e-6);
      for (let j = 0; j < 32; j++) assert.ok(Math.abs(x[b * 32 + j] - back[b * 32 + j]) <= tol);
    }
  });

  it('importance weights lower the weighted error where they are large', () => {
    const rows = 16, row = 512;
    const w = new Float32Array(row);
    for (let j = 0; j < row; j++) w[j] = j % 7 === 0 ? 50 : 0.1;
    const data = new Float32Array(rows * row);
    for (let i = 0; i < data.length; i++) data[i] = gauss(r);
    for (const type of ['Q4_K', 'Q3_K', 'Q4_0'] as const) {
      const err = (q: Uint8Array) => {
        const back = new Float32Array(data.length);
        dequantizeGgml(type, q, back, data.length);
        let e = 0;
        for (let i = 0; i < data.length; i++) e += w[i % row] * (data[i] - back[i]) ** 2;
        return e;
      };
      const plain = err(quantizeGgml(type, data, data.length));
      const weighted = err(quantizeGgml(type, data, data.length, { importance: w }));
      assert.ok(weighted < plain, `${type}: weighted ${weighted} vs plain ${plain}`);
    }
  });
});

describe('GGUF block encoders: API', () => {
  it('rejects partial blocks, unknown types and short buffers with a clear message', () => {
    assert.throws(() => quantizeGgml('Q4_K', new Float32Array(100), 100), /whole number of Q4_K blocks/);
    assert.throws(() => quantizeGgml('IQ2_XXS', new Float32Array(256), 256), /no encoder for GGUF type IQ2_XXS/);
    assert.throws(() => quantizeGgml('Q9_9', new Float32Array(32), 32), /unknown GGUF type/);
    assert.throws(() => quantizeGgmlInto('Q8_0', new Float32Array(64), 0, new Uint8Array(40), 0, 64), /needs 68 bytes/);
    assert.throws(() => quantizeGgml('Q4_K', new Float32Array(512), 512, { importance: new Float32Array(200) }), /row length 200/);
    const bad = new Float32Array(64);
    bad[40] = NaN;
    assert.throws(() => quantizeGgml('Q8_0', bad, 64), /element 40 is NaN/);
    bad[40] = -Infinity;
    assert.throws(() => quantizeGgml('Q4_0', bad, 64), /element 40 is -Infinity/);
    assert.throws(() => quantizeGgml('Q4_0', new Float32Array(64), 64, { importance: new Float32Array(32).fill(-1) }), /importance\[0\] is -1/);
  });

  it('accepts ids and lower-case names; encodes into an offset slice', () => {
    assert.ok(canQuantizeGgml(12) && canQuantizeGgml('q6_k') && !canQuantizeGgml('F16'));
    const x = new Float32Array(64).map((_, i) => Math.sin(i));
    const whole = quantizeGgml(8, x, 64);
    const dst = new Uint8Array(100);
    assert.equal(quantizeGgmlInto('q8_0', x, 32, dst, 10, 32), 34);
    assert.deepEqual([...dst.subarray(10, 44)], [...whole.subarray(34, 68)]);
  });
});

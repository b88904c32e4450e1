import * as assert from 'node:assert/strict';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { quantizeGgml, quantizeGgmlInto } from '../../src/quant/ggml/quantize';
import { GGML_WASM_IMPORTANCE_TYPES, GGML_WASM_TYPES, ggmlWasmAvailable } from '../../src/kernels/ggmlKernels';
import { GGML_KERNELS_SOURCE_SHA256 } from '../../src/kernels/ggmlKernels.generated';
import { GgmlTypeName, ggmlTypeByName } from '../../src/formats/gguf/ggmlTypes';
import { gauss, rng } from '../random';
import { GGML_FIXTURES, firstDiff, readGgmlF32 } from './ggmlFixtures';

// The WebAssembly kernels must give the TypeScript reference's bytes (which equal ggml's) everywhere.
const FIX = GGML_FIXTURES;
const SRC = path.resolve(__dirname, '../../../src/kernels/ggmlKernels.as');

/** Inputs that stress the decisions: ties, zeros of both signs, repeated extremes, huge and tiny magnitudes. */
const DISTRIBUTIONS: [string, (r: () => number, i: number) => number][] = [
  ['gaussian', (r) => gauss(r) * 0.02],
  ['uniform', (r) => r() * 2 - 1],
  ['heavy-tailed', (r) => gauss(r) / (r() + 0.01)],
  ['half-integers (ties)', (r) => (Math.floor(r() * 33) - 16) / 2],
  ['small integers, some blocks all zero', (r, i) => (((i >> 8) % 5) === 0 ? 0 : Math.floor(r() * 17) - 8)],
  ['signed zeros and one value', (r) => (r() < 0.9 ? (r() < 0.5 ? -0 : 0) : (r() < 0.5 ? -1.5 : 1.5))],
  ['all positive', (r) => r() * 3 + 0.5],
  ['all negative', (r) => -(r() * 3 + 0.5)],
  ['±amax pairs', (r, i) => (i % 32 === 3 ? 7 : i % 32 === 20 ? -7 : gauss(r))],
  ['huge', (r) => gauss(r) * 1e36],
  ['tiny (subnormal)', (r) => gauss(r) * 1e-39],
  ['mixed scales per block', (r, i) => gauss(r) * Math.pow(10, ((i >> 5) % 13) - 6)],
  ['near fp16 overflow', (r) => gauss(r) * 60000 * 127],
  ['constant', () => 0.3],
];

const TYPES = [...GGML_WASM_TYPES];

describe('GGUF WebAssembly kernels', function () {
  this.timeout(20000);

  it('the embedded module was built from the current ggmlKernels.as', () => {
    const sha = crypto.createHash('sha256').update(fs.readFileSync(SRC)).digest('hex');
    assert.equal(GGML_KERNELS_SOURCE_SHA256, sha, 'run node src/kernels/build.mjs');
  });

  it('loads on this Node (WebAssembly SIMD)', () => {
    assert.equal(ggmlWasmAvailable(), true);
  });

  const manifest = JSON.parse(fs.readFileSync(path.join(FIX, 'manifest.json'), 'utf8')) as { rows: number; perRow: number };
  const input = readGgmlF32('input.f32');
  const n = manifest.rows * manifest.perRow;

  for (const type of TYPES) {
    it(`${type} equals ggml's reference bytes (test/fixtures/ggml)`, () => {
      const want = new Uint8Array(fs.readFileSync(path.join(FIX, `${type.toLowerCase()}.bin`)));
      const got = quantizeGgml(type, input, n, { impl: 'wasm' });
      assert.equal(firstDiff(got, want), -1);
    });
  }

  const imatrix = readGgmlF32('imatrix.f32');
  for (const type of GGML_WASM_IMPORTANCE_TYPES) {
    it(`${type} with importance weights equals ggml's imatrix bytes`, () => {
      const want = new Uint8Array(fs.readFileSync(path.join(FIX, `${type.toLowerCase()}.imat.bin`)));
      const got = quantizeGgml(type, input, n, { impl: 'wasm', importance: imatrix });
      assert.equal(firstDiff(got, want), -1);
    });
  }

  for (const type of GGML_WASM_IMPORTANCE_TYPES) {
    it(`${type} with importance weights equals the TypeScript reference on ${DISTRIBUTIONS.length} distributions`, () => {
      // 11 blocks of 32 per row leave three lanes of the second 8-block pass empty.
      const row = ggmlTypeByName(type)!.blockSize === 32 ? 352 : 512;
      for (let d = 0; d < DISTRIBUTIONS.length; d++) {
        const [name, gen] = DISTRIBUTIONS[d];
        const r = rng(5000 + d * 131);
        const x = new Float32Array(3 * row);
        for (let i = 0; i < x.length; i++) x[i] = gen(r, i);
        // Importance with exact zeros, ties and a wide range, as real imatrix files have.
        const qw = new Float32Array(row);
        for (let i = 0; i < row; i++) qw[i] = i % 17 === 0 ? 0 : i % 5 === 0 ? 1 : Math.exp(gauss(r) * 3);
        const want = quantizeGgml(type, x, x.length, { impl: 'ref', importance: qw });
        const got = quantizeGgml(type, x, x.length, { impl: 'wasm', importance: qw });
        const at = firstDiff(got, want);
        assert.equal(at, -1, `${type}+imatrix ${name}: first differing byte ${at} (block ${Math.floor(at / ggmlTypeByName(type)!.typeSize)})`);
      }
    });
  }

  for (const type of TYPES) {
    it(`${type} equals the TypeScript reference on ${DISTRIBUTIONS.length} distributions`, () => {
      const bs = ggmlTypeByName(type)!.blockSize;
      const blocks = bs === 32 ? 96 : 12;
      for (let d = 0; d < DISTRIBUTIONS.length; d++) {
        const [name, gen] = DISTRIBUTIONS[d];
        const r = rng(1000 + d * 7919 + type.length);
        const x = new Float32Array(blocks * bs);
        for (let i = 0; i < x.length; i++) x[i] = gen(r, i);
        const want = quantizeGgml(type, x, x.length, { impl: 'ref' });
        const got = quantizeGgml(type, x, x.length, { impl: 'wasm' });
        const at = firstDiff(got, want);
        const tsize = ggmlTypeByName(type)!.typeSize;
        assert.equal(at, -1, `${type} ${name}: first differing byte ${at} (block ${Math.floor(at / tsize)})`);
      }
    });
  }

  it('a fit far from the range (an unweighted outlier) takes the exact integer rounding path and equals the reference', () => {
    // With importance 0 on a huge outlier, the least-squares min lands near the other values, so
    // |iscale·(x − min)| passes 2^21 and the qkx search must round as ggml's wrapping nearest_int.
    const r = rng(99);
    for (const type of ['Q4_K', 'Q5_K', 'Q2_K', 'Q3_K', 'Q4_1', 'Q5_1'] as GgmlTypeName[]) {
      const row = 512;
      const x = new Float32Array(2 * row), qw = new Float32Array(row);
      for (let i = 0; i < x.length; i++) x[i] = 1 + gauss(r) * 1e-4;
      for (let i = 0; i < row; i++) qw[i] = i % 32 === 5 ? 0 : 1 + r();
      for (let i = 5; i < x.length; i += 32) x[i] = -1e7 * (1 + r());
      const want = quantizeGgml(type, x, x.length, { impl: 'ref', importance: qw });
      const got = quantizeGgml(type, x, x.length, { impl: 'wasm', importance: qw });
      assert.equal(firstDiff(got, want), -1, `${type}`);
      const want2 = quantizeGgml(type, x, x.length, { impl: 'ref' });
      assert.equal(firstDiff(quantizeGgml(type, x, x.length, { impl: 'wasm' }), want2), -1, `${type} without importance`);
    }
  });

  it('crosses chunk boundaries and writes at offsets like the reference', () => {
    const r = rng(42);
    const nEl = 342 * 768; // more than one call into the module (2^18 values each)
    const x = new Float32Array(nEl + 64);
    for (let i = 0; i < x.length; i++) x[i] = gauss(r);
    // 342 rows of 768: the importance path restarts the weights at each row, and the
    // second call into the module starts on a row boundary.
    const row = 768;
    const qw = new Float32Array(row);
    for (let i = 0; i < row; i++) qw[i] = 0.1 + r() * (i % 3);
    for (const [type, importance] of [['Q8_0', undefined], ['Q6_K', undefined], ['Q6_K', qw]] as [GgmlTypeName, Float32Array | undefined][]) {
      const info = ggmlTypeByName(type)!;
      const bytes = (nEl / info.blockSize) * info.typeSize;
      const a = new Uint8Array(bytes + 10).fill(0xee);
      const b = new Uint8Array(bytes + 10).fill(0xee);
      assert.equal(quantizeGgmlInto(type, x, 64, a, 7, nEl, { impl: 'wasm', importance }), bytes);
      assert.equal(quantizeGgmlInto(type, x, 64, b, 7, nEl, { impl: 'ref', importance }), bytes);
      assert.equal(firstDiff(a, b), -1, `${type}${importance ? '+imatrix' : ''}`);
      assert.equal(a[6], 0xee);
      assert.equal(a[bytes + 7], 0xee);
    }
  });

  it('names the first non-finite element, as the reference does', () => {
    const x = new Float32Array(512).fill(0.5);
    x[300] = NaN;
    x[400] = Infinity;
    for (const impl of ['wasm', 'ref'] as const) {
      assert.throws(() => quantizeGgml('Q4_K', x, 512, { impl }), /element 300 is NaN/);
    }
    const y = new Float32Array(64).fill(1);
    y[33] = -Infinity;
    assert.throws(() => quantizeGgml('Q8_0', y, 64, { impl: 'wasm' }), /element 33 is -Infinity/);
  });

  it("impl 'wasm' refuses types and options without a kernel", () => {
    const x = new Float32Array(256);
    assert.throws(() => quantizeGgml('Q8_K', x, 256, { impl: 'wasm' }), /no WebAssembly kernel for Q8_K/);
    // Importance rows must fit one call into the module (2^18 values); longer ones take the reference.
    const long = new Float32Array((1 << 18) + 256);
    assert.throws(() => quantizeGgml('Q4_K', long, long.length, { impl: 'wasm', importance: new Float32Array(long.length).fill(1) }), /with importance weights/);
  });
});

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { encodeGgufSlab, digestGgufRange, slabFloat32, SlabValues } from '../../src/quant/ggml/slab';
import { quantizeGgml } from '../../src/quant/ggml/quantize';
import { dequantizeGgml } from '../../src/formats/gguf/dequant';
import { Fingerprint, GGML_WASM_DECODE_TYPES, decodeGgmlWasm, fingerprintRef, halvesToF32Wasm } from '../../src/kernels/ggmlKernels';
import { GgmlTypeName, ggmlTypeByName } from '../../src/formats/gguf/ggmlTypes';
import { f16Lookup, f32ToBf16, f32ToF16 } from '../../src/formats/dtypes';
import type { ModelFile, TensorInfo } from '../../src/formats/types';
import { gauss, rng } from '../random';
import { GGML_FIXTURES } from './ggmlFixtures';

// The whole-slab WebAssembly path (halves in, bytes + decoded values + error sums out)
// must give exactly what the reference path gives: quantizeGgml 'ref', dequantizeGgml,
// the float64 loop and the sha256 of the decoded values.
const FIX = GGML_FIXTURES;

const GEN: [string, (r: () => number, i: number) => number][] = [
  ['gaussian', (r) => gauss(r) * 0.02],
  ['heavy-tailed', (r) => gauss(r) / (r() + 0.01)],
  ['some blocks all zero', (r, i) => (((i >> 8) % 5) === 0 ? 0 : Math.floor(r() * 17) - 8)],
  ['signed zeros and one value', (r) => (r() < 0.9 ? (r() < 0.5 ? -0 : 0) : (r() < 0.5 ? -1.5 : 1.5))],
  ['fp16 subnormals', (r) => gauss(r) * 3e-6],
  ['mixed scales per block', (r, i) => gauss(r) * Math.pow(10, ((i >> 5) % 13) - 6)],
  ['near fp16 overflow', (r) => gauss(r) * 20000],
];

const TYPES = [...GGML_WASM_DECODE_TYPES];

function sameResult(type: GgmlTypeName, got: ReturnType<typeof encodeGgufSlab>, want: ReturnType<typeof encodeGgufSlab>, what: string): void {
  assert.equal(Buffer.compare(Buffer.from(got.bytes), Buffer.from(want.bytes)), 0, `${type} ${what}: bytes`);
  assert.equal(got.digest, want.digest, `${type} ${what}: decoded values`);
  assert.equal(got.errSum, want.errSum, `${type} ${what}: error sum`);
  assert.equal(got.refSum, want.refSum, `${type} ${what}: reference sum`);
}

describe('GGUF conversion slab in WebAssembly', function () {
  this.timeout(60000);

  it('the fingerprint equals its TypeScript twin, split or whole, and sees any single changed value', () => {
    const r = rng(3);
    const n = (1 << 18) + 4096 + 7; // more than one chunk, and a tail of 3 past whole stripes
    const v = new Float32Array(n);
    for (let i = 0; i < n; i++) v[i] = gauss(r);
    const whole = new Fingerprint();
    whole.update(v, 'wasm');
    // An independent scalar computation of the definition: word k to lane k % 4, xxHash32's round.
    const acc = [0x24234428, 0x85ebca77, 0, 0x61c8864f];
    const w = new Uint32Array(v.buffer);
    for (let k = 0; k < n; k++) {
      const x = Number((BigInt(acc[k % 4]) + BigInt(w[k]) * 0x85ebca77n) & 0xffffffffn);
      const rot = Number(((BigInt(x) << 13n) | (BigInt(x) >> 19n)) & 0xffffffffn);
      acc[k % 4] = Number((BigInt(rot) * 0x9e3779b1n) & 0xffffffffn);
    }
    assert.equal(whole.hex(), `${n.toString(16)}:${acc.map((a) => a.toString(16).padStart(8, '0')).join('')}`);
    const ref = new Fingerprint();
    fingerprintRef(ref, w);
    assert.equal(ref.hex(), whole.hex());
    // Split at odd places: parts not a multiple of 4 continue the lanes in stream order.
    const parts = new Fingerprint();
    for (const [a, b] of [[0, 5], [5, 4101], [4101, 4104], [4104, n]]) parts.update(v.subarray(a, b));
    assert.equal(parts.hex(), whole.hex());
    for (const i of [0, 1, 2, 3, 4, 1000, n - 1]) {
      const c = v.slice();
      c[i] = i % 2 ? -c[i] : c[i] * 1.0000001;
      const f = new Fingerprint();
      f.update(c);
      assert.notEqual(f.hex(), whole.hex(), `value ${i} changed`);
    }
  });

  it('fp16 and bf16 halves → float32 equal the table / bit shift for all 65536 patterns', () => {
    const bits = new Uint16Array(65536);
    for (let i = 0; i < bits.length; i++) bits[i] = i;
    const out = new Float32Array(65536);
    assert.ok(halvesToF32Wasm('f16', bits, out));
    const F16 = f16Lookup();
    const a = new Uint32Array(out.buffer), b = new Uint32Array(F16.buffer);
    // NaN payloads: a JavaScript table may hold any NaN, so only NaN-ness is compared there.
    for (let i = 0; i < 65536; i++) {
      if (Number.isNaN(F16[i])) assert.ok(Number.isNaN(out[i]), `f16 0x${i.toString(16)}`);
      else assert.equal(a[i], b[i], `f16 0x${i.toString(16)}`);
    }
    assert.ok(halvesToF32Wasm('bf16', bits, out));
    for (let i = 0; i < 65536; i++) assert.equal(a[i], (i << 16) >>> 0, `bf16 0x${i.toString(16)}`);
  });

  for (const type of TYPES) {
    it(`${type}: the decoder equals dequantizeGgml on ggml's own bytes and on random codes`, () => {
      const info = ggmlTypeByName(type)!;
      const fromGgml = new Uint8Array(fs.readFileSync(path.join(FIX, `${type.toLowerCase()}.bin`)));
      const r = rng(77 + type.length);
      const random = new Uint8Array(info.typeSize * 40);
      for (let i = 0; i < random.length; i++) random[i] = Math.floor(r() * 256);
      // Keep the fp16 scales finite in the random blocks (a NaN scale decodes to NaNs of any payload).
      for (const bytes of [fromGgml, random]) {
        const n = (bytes.length / info.typeSize) * info.blockSize;
        if (bytes === random) {
          const offs = type === 'Q6_K' ? [208] : type === 'Q8_0' ? [0] : [0, 2];
          for (let blk = 0; blk < bytes.length / info.typeSize; blk++) for (const o of offs) bytes[blk * info.typeSize + o + 1] &= 0x3b;
        }
        const want = new Float32Array(n);
        dequantizeGgml(type, bytes, want, n);
        const got = new Float32Array(n);
        let at = 0;
        assert.ok(decodeGgmlWasm(type, bytes, n, (v) => { got.set(v, at); at += v.length; }));
        assert.equal(at, n);
        const a = new Uint32Array(got.buffer), b = new Uint32Array(want.buffer);
        for (let i = 0; i < n; i++) if (a[i] !== b[i]) assert.fail(`${type} element ${i}: ${got[i]} vs ${want[i]}`);
      }
    });

    it(`${type}: a slab from float32, fp16 and bf16 sources equals the reference path`, () => {
      const info = ggmlTypeByName(type)!;
      const row = 512;
      for (let d = 0; d < GEN.length; d++) {
        const [name, gen] = GEN[d];
        const r = rng(900 + d * 31 + type.length);
        const n = row * 6;
        const x = new Float32Array(n);
        // Within fp16's range, so that every source kind holds finite values.
        for (let i = 0; i < n; i++) x[i] = Math.max(-65000, Math.min(65000, gen(r, i)));
        const f16 = new Uint16Array(n), bf16 = new Uint16Array(n);
        for (let i = 0; i < n; i++) { f16[i] = f32ToF16(x[i]); bf16[i] = f32ToBf16(x[i]); }
        const sources: [string, SlabValues][] = [['f32', x], ['f16', { dtype: 'f16', bits: f16 }], ['bf16', { dtype: 'bf16', bits: bf16 }]];
        for (const [kind, v] of sources) {
          const want = encodeGgufSlab(slabFloat32(v), type, row, undefined, 'ref');
          sameResult(type, encodeGgufSlab(v, type, row, undefined, 'auto'), want, `${name} from ${kind}`);
          // And the reference bytes are the quantizer's (which the other tests hold to ggml's).
          assert.deepEqual(want.bytes, quantizeGgml(type, slabFloat32(v), n, { impl: 'ref' }));
        }
        if (info.name !== 'Q8_0') {
          const qw = new Float32Array(row);
          for (let i = 0; i < row; i++) qw[i] = i % 17 === 0 ? 0 : Math.exp(gauss(r) * 3);
          const v: SlabValues = { dtype: 'f16', bits: f16 };
          sameResult(type, encodeGgufSlab(v, type, row, qw, 'auto'), encodeGgufSlab(slabFloat32(v), type, row, qw, 'ref'), `${name} with importance`);
        }
      }
    });
  }

  it('crosses the module\'s chunk boundary (2^18 values) with the sums carried in order', () => {
    const r = rng(5);
    const n = 4096 * 100; // 1.56 chunks
    const f16 = new Uint16Array(n);
    for (let i = 0; i < n; i++) f16[i] = f32ToF16(gauss(r) * 0.02);
    const v: SlabValues = { dtype: 'f16', bits: f16 };
    for (const type of ['Q4_K', 'Q6_K'] as GgmlTypeName[]) {
      sameResult(type, encodeGgufSlab(v, type, 4096, undefined, 'auto'), encodeGgufSlab(slabFloat32(v), type, 4096, undefined, 'ref'), 'two chunks');
    }
  });

  it('names the first non-finite source value, as the reference does', () => {
    const f16 = new Uint16Array(1024).fill(f32ToF16(0.5));
    f16[700] = 0x7c00; // +Inf
    assert.throws(() => encodeGgufSlab({ dtype: 'f16', bits: f16 }, 'Q4_K', 1024), /element 700 is Infinity; Q4_K blocks need finite values/);
    assert.throws(() => encodeGgufSlab({ dtype: 'f16', bits: f16 }, 'Q4_K', 1024, undefined, 'ref'), /element 700 is Infinity; Q4_K blocks need finite values/);
  });

  it('fingerprints a written K-quant range as the reader decodes it', () => {
    const r = rng(11);
    const n = 256 * 24;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = gauss(r);
    for (const type of TYPES) {
      const info = ggmlTypeByName(type)!;
      const bytes = quantizeGgml(type, x, n);
      const t = { name: 'w', dtype: `gguf:${type.toLowerCase()}`, numel: n } as unknown as TensorInfo;
      const m = {
        readBytes: (_t: TensorInfo, off = 0, len = bytes.length) => bytes.slice(off, off + len),
        readFloat32: (_t: TensorInfo, start: number, count: number) => {
          const all = new Float32Array(n);
          dequantizeGgml(type, bytes, all, n);
          return all.slice(start, start + count);
        },
      } as unknown as ModelFile;
      const start = info.blockSize * 8, count = n - start - info.blockSize * 4;
      const want = new Float32Array(n);
      dequantizeGgml(type, bytes, want, n);
      const fp = new Fingerprint();
      fp.update(want.subarray(start, start + count), 'ref');
      assert.equal(digestGgufRange(m, t, start, count, false), fp.hex(), type);
    }
  });
});

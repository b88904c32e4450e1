/**
 * ggml block dequantizers against blocks built here from integer codes:
 * each builder packs codes by the layout in ggml-common.h and computes the
 * expected value from the codes by the formula in ggml-quants.c, rounding to
 * float32 wherever ggml's float arithmetic does.
 */
import * as assert from 'node:assert/strict';
import { dequantizeGgml } from '../../src/formats/gguf/dequant';
import { GGML_TYPES, ggmlTypeById, ggmlTypeByName } from '../../src/formats/gguf/ggmlTypes';
import { FormatError } from '../../src/formats/types';

const fr = Math.fround;

// xorshift32: reproducible codes.
let seed = 12345;
function rnd(): number {
  seed ^= seed << 13; seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5; seed >>>= 0;
  return seed;
}
const ri = (lo: number, hi: number): number => lo + (rnd() % (hi - lo + 1));
/** binary16 value from its definition. */
function h2f(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}
/** fp16 scale codes: mostly normal, sometimes subnormal or negative, to exercise the conversion. */
function scale(): number {
  const r = rnd() % 8;
  if (r === 0) return ri(1, 1023); // subnormal
  if (r === 1) return 0x8000 | ri(0x1000, 0x4400); // negative
  return ri(0x1000, 0x5000);
}

interface Block { bytes: Uint8Array; expect: number[] }
type Builder = () => Block;

const builders: Record<string, Builder> = {
  Q4_0() {
    const d = scale(), q = Array.from({ length: 32 }, () => ri(0, 15));
    const b = Buffer.alloc(18); b.writeUInt16LE(d, 0);
    for (let j = 0; j < 16; j++) b[2 + j] = q[j] | (q[j + 16] << 4);
    return { bytes: b, expect: q.map((v) => fr((v - 8) * h2f(d))) };
  },
  Q4_1() {
    const d = scale(), m = scale(), q = Array.from({ length: 32 }, () => ri(0, 15));
    const b = Buffer.alloc(20); b.writeUInt16LE(d, 0); b.writeUInt16LE(m, 2);
    for (let j = 0; j < 16; j++) b[4 + j] = q[j] | (q[j + 16] << 4);
    return { bytes: b, expect: q.map((v) => fr(fr(v * h2f(d)) + h2f(m))) };
  },
  Q5_0() {
    const d = scale(), q = Array.from({ length: 32 }, () => ri(0, 31));
    const b = Buffer.alloc(22); b.writeUInt16LE(d, 0);
    let qh = 0;
    q.forEach((v, i) => { if (v & 16) qh |= 1 << i; });
    b.writeUInt32LE(qh >>> 0, 2);
    for (let j = 0; j < 16; j++) b[6 + j] = (q[j] & 15) | ((q[j + 16] & 15) << 4);
    return { bytes: b, expect: q.map((v) => fr((v - 16) * h2f(d))) };
  },
  Q5_1() {
    const d = scale(), m = scale(), q = Array.from({ length: 32 }, () => ri(0, 31));
    const b = Buffer.alloc(24); b.writeUInt16LE(d, 0); b.writeUInt16LE(m, 2);
    let qh = 0;
    q.forEach((v, i) => { if (v & 16) qh |= 1 << i; });
    b.writeUInt32LE(qh >>> 0, 4);
    for (let j = 0; j < 16; j++) b[8 + j] = (q[j] & 15) | ((q[j + 16] & 15) << 4);
    return { bytes: b, expect: q.map((v) => fr(fr(v * h2f(d)) + h2f(m))) };
  },
  Q8_0() {
    const d = scale(), q = Array.from({ length: 32 }, () => ri(0, 255) - 128);
    const b = Buffer.alloc(34); b.writeUInt16LE(d, 0);
    q.forEach((v, i) => b.writeInt8(v, 2 + i));
    return { bytes: b, expect: q.map((v) => fr(v * h2f(d))) };
  },
  Q2_K() {
    const d = scale(), dmin = scale();
    const sc = Array.from({ length: 16 }, () => ri(0, 15)), mn = Array.from({ length: 16 }, () => ri(0, 15));
    const q = Array.from({ length: 256 }, () => ri(0, 3));
    const b = Buffer.alloc(84);
    for (let k = 0; k < 16; k++) b[k] = sc[k] | (mn[k] << 4);
    // Element e: 2-bit field ((e % 128) >> 5) of qs byte (e >> 7) * 32 + e % 32; group e >> 4.
    q.forEach((v, e) => { b[16 + (e >> 7) * 32 + (e % 32)] |= v << (2 * ((e % 128) >> 5)); });
    b.writeUInt16LE(d, 80); b.writeUInt16LE(dmin, 82);
    return { bytes: b, expect: q.map((v, e) => fr(fr(fr(h2f(d) * sc[e >> 4]) * v) - fr(h2f(dmin) * mn[e >> 4]))) };
  },
  Q3_K() {
    const d = scale(), sc = Array.from({ length: 16 }, () => ri(0, 63)), q = Array.from({ length: 256 }, () => ri(0, 7));
    const b = Buffer.alloc(110);
    q.forEach((v, e) => {
      b[32 + (e >> 7) * 32 + (e % 32)] |= (v & 3) << (2 * ((e % 128) >> 5));
      if (v & 4) b[e % 32] |= 1 << (e >> 5); // hmask bit set means "no -4"
    });
    for (let k = 0; k < 16; k++) {
      if (k < 8) b[96 + k] |= sc[k] & 15; else b[96 + k - 8] |= (sc[k] & 15) << 4;
      b[96 + 8 + (k & 3)] |= (sc[k] >> 4) << (2 * (k >> 2));
    }
    b.writeUInt16LE(d, 108);
    return { bytes: b, expect: q.map((v, e) => fr(fr(h2f(d) * (sc[e >> 4] - 32)) * (v - 4))) };
  },
  Q4_K() {
    const d = scale(), dmin = scale();
    const sc = Array.from({ length: 8 }, () => ri(0, 63)), mn = Array.from({ length: 8 }, () => ri(0, 63));
    const q = Array.from({ length: 256 }, () => ri(0, 15));
    const b = Buffer.alloc(144); b.writeUInt16LE(d, 0); b.writeUInt16LE(dmin, 2);
    packScaleMin(b, 4, sc, mn);
    for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) b[16 + c * 32 + l] = q[c * 64 + l] | (q[c * 64 + 32 + l] << 4);
    return { bytes: b, expect: q.map((v, e) => fr(fr(fr(h2f(d) * sc[e >> 5]) * v) - fr(h2f(dmin) * mn[e >> 5]))) };
  },
  Q5_K() {
    const d = scale(), dmin = scale();
    const sc = Array.from({ length: 8 }, () => ri(0, 63)), mn = Array.from({ length: 8 }, () => ri(0, 63));
    const q = Array.from({ length: 256 }, () => ri(0, 31));
    const b = Buffer.alloc(176); b.writeUInt16LE(d, 0); b.writeUInt16LE(dmin, 2);
    packScaleMin(b, 4, sc, mn);
    for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) b[48 + c * 32 + l] = (q[c * 64 + l] & 15) | ((q[c * 64 + 32 + l] & 15) << 4);
    q.forEach((v, e) => { if (v & 16) b[16 + (e % 32)] |= 1 << (e >> 5); });
    return { bytes: b, expect: q.map((v, e) => fr(fr(fr(h2f(d) * sc[e >> 5]) * v) - fr(h2f(dmin) * mn[e >> 5]))) };
  },
  Q6_K() {
    const d = scale(), sc = Array.from({ length: 16 }, () => ri(0, 255) - 128), q = Array.from({ length: 256 }, () => ri(0, 63));
    const b = Buffer.alloc(210);
    // Within each half of 128: quarter g = (e % 128) >> 5 and lane l = e % 32.
    // Low nibbles: quarters 0/1 in the low nibble of ql[l] / ql[32 + l], quarters 2/3 in the high nibble.
    // High 2 bits: qh[l] at bit 2g.
    q.forEach((v, e) => {
      const n = e >> 7, g = (e % 128) >> 5, l = e % 32;
      b[n * 64 + (g & 1) * 32 + l] |= (v & 15) << (g >> 1 ? 4 : 0);
      b[128 + n * 32 + l] |= (v >> 4) << (2 * g);
    });
    sc.forEach((v, i) => b.writeInt8(v, 192 + i));
    b.writeUInt16LE(d, 208);
    return { bytes: b, expect: q.map((v, e) => fr(fr(h2f(d) * sc[e >> 4]) * (v - 32))) };
  },
  Q8_K() {
    const d = (rnd() / 2 ** 32 - 0.5) * 1e-2, q = Array.from({ length: 256 }, () => ri(0, 255) - 128);
    const b = Buffer.alloc(292); b.writeFloatLE(d, 0);
    q.forEach((v, i) => b.writeInt8(v, 4 + i));
    for (let k = 0; k < 16; k++) b.writeInt16LE(ri(0, 65535) - 32768, 260 + 2 * k); // bsums: unused by dequantization
    return { bytes: b, expect: q.map((v) => fr(v * fr(d))) };
  },
};

/** Q4_K/Q5_K 12-byte packing of eight 6-bit scales and mins. */
function packScaleMin(b: Buffer, at: number, sc: number[], mn: number[]): void {
  for (let j = 0; j < 4; j++) {
    b[at + j] = sc[j] | ((sc[j + 4] >> 4) << 6);
    b[at + 4 + j] = mn[j] | ((mn[j + 4] >> 4) << 6);
    b[at + 8 + j] = (sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4);
  }
}

function sameBits(actual: Float32Array, expect: number[], what: string): void {
  assert.equal(actual.length, expect.length, `${what}: length`);
  for (let i = 0; i < expect.length; i++) {
    if (!Object.is(actual[i], fr(expect[i]))) assert.fail(`${what}[${i}]: got ${actual[i]}, expected ${fr(expect[i])}`);
  }
}

describe('ggml dequantizers', () => {
  for (const [name, build] of Object.entries(builders)) {
    it(`${name}: matches the layout formula on random blocks, bit for bit`, () => {
      const info = ggmlTypeByName(name)!;
      const blocks = Array.from({ length: 6 }, build);
      const src = Buffer.concat(blocks.map((b) => b.bytes));
      assert.equal(blocks[0].bytes.length, info.typeSize);
      const dst = new Float32Array(blocks.length * info.blockSize);
      dequantizeGgml(info.id, src, dst, dst.length);
      sameBits(dst, blocks.flatMap((b) => b.expect), name);
      // The name and the id select the same decoder; a sub-array source at an odd offset works.
      const shifted = new Uint8Array(src.length + 3);
      shifted.set(src, 3);
      const dst2 = new Float32Array(dst.length);
      dequantizeGgml(info.name, shifted.subarray(3), dst2, dst2.length);
      assert.deepEqual(dst2, dst);
    });
  }

  it('Q4_0: a block worked by hand', () => {
    const b = new Uint8Array(18);
    b[0] = 0x00; b[1] = 0x3c; // d = 1.0
    b.fill(0x9f, 2); // low nibble 15 → 7, high nibble 9 → 1
    const y = new Float32Array(32);
    dequantizeGgml('Q4_0', b, y, 32);
    assert.deepEqual(Array.from(y), [...Array(16).fill(7), ...Array(16).fill(1)]);
  });

  it('Q8_0: d = 0.5 (0x3800), qs = -128..', () => {
    const b = new Uint8Array(34);
    b[1] = 0x38;
    for (let i = 0; i < 32; i++) b[2 + i] = (i * 8) & 0xff;
    const y = new Float32Array(32);
    dequantizeGgml('Q8_0', b, y, 32);
    assert.deepEqual(Array.from(y), Array.from({ length: 32 }, (_, i) => ((((i * 8) & 0xff) << 24) >> 24) * 0.5));
  });

  it('Q4_1: float32 rounding of q*d + m is applied (not float64)', () => {
    // d = 1 + 2^-10 (0x3C01), m = 2^-14 * (1 + 1023/1024) ... chosen so that the float64 sum is not a float32.
    const b = new Uint8Array(20);
    new DataView(b.buffer).setUint16(0, 0x3c01, true);
    new DataView(b.buffer).setUint16(2, 0x0001, true); // m = 2^-24
    b.fill(0xff, 4); // q = 15
    const y = new Float32Array(32);
    dequantizeGgml('Q4_1', b, y, 32);
    const exact = 15 * (1 + 2 ** -10) + 2 ** -24;
    assert.notEqual(exact, fr(exact)); // the case is meaningful
    assert.equal(y[0], fr(fr(15 * (1 + 2 ** -10)) + 2 ** -24));
  });

  it('lists every IQ/TQ/MXFP4 type by name and refuses to read them', () => {
    for (const n of ['IQ2_XXS', 'IQ2_XS', 'IQ3_XXS', 'IQ1_S', 'IQ4_NL', 'IQ3_S', 'IQ2_S', 'IQ4_XS', 'IQ1_M', 'TQ1_0', 'TQ2_0', 'MXFP4']) {
      const t = ggmlTypeByName(n);
      assert.ok(t, n);
      assert.equal(ggmlTypeById(t.id)?.name, n);
      assert.throws(() => dequantizeGgml(t.id, new Uint8Array(t.typeSize), new Float32Array(t.blockSize), t.blockSize),
        (e: unknown) => e instanceof FormatError && e.message.includes(`unsupported GGUF type ${n}`));
    }
  });

  it('type table sizes follow the block structs', () => {
    // Sizes from the struct definitions: fp16 fields are 2 bytes, QK_K = 256.
    const expect: Record<string, [number, number]> = {
      Q4_0: [32, 2 + 16], Q4_1: [32, 4 + 16], Q5_0: [32, 2 + 4 + 16], Q5_1: [32, 4 + 4 + 16], Q8_0: [32, 2 + 32],
      Q2_K: [256, 16 + 64 + 4], Q3_K: [256, 32 + 64 + 12 + 2], Q4_K: [256, 4 + 12 + 128], Q5_K: [256, 4 + 12 + 32 + 128],
      Q6_K: [256, 128 + 64 + 16 + 2], Q8_K: [256, 4 + 256 + 32], IQ4_NL: [32, 18], MXFP4: [32, 17],
    };
    for (const [n, [bs, ts]] of Object.entries(expect)) {
      const t = ggmlTypeByName(n)!;
      assert.deepEqual([t.blockSize, t.typeSize], [bs, ts], n);
    }
    assert.equal(new Set(GGML_TYPES.map((t) => t.id)).size, GGML_TYPES.length);
  });

  it('rejects a partial block and a short source', () => {
    assert.throws(() => dequantizeGgml('Q8_0', new Uint8Array(34), new Float32Array(31), 31), RangeError);
    assert.throws(() => dequantizeGgml('Q8_0', new Uint8Array(33), new Float32Array(32), 32), RangeError);
  });
});

// AssemblyScript source of the WebAssembly SIMD fast path for the GGUF block
// encoders (loaded by ggmlWasm.ts). Not compiled by tsc (AssemblyScript
// types); rebuild the embedded binary with
//   node src/quant/ggml/wasm/buildGgmlKernels.mjs
// after editing.
//
// Twin of the TypeScript reference in ../quantize.ts, which matches ggml's
// reference quantizers byte for byte; the tests hold this module equal to it.
// WebAssembly f32 arithmetic is IEEE single precision without fused
// multiply-add, i.e. what ggml computes, so no rounding emulation is needed.
// What has to be kept is ggml's ORDER of operations wherever a sum feeds a
// decision. The K-quant searches therefore run one sub-block per SIMD lane:
// every lane performs exactly the scalar sequence of its own sub-block, only
// several sub-blocks advance together. Max/min reductions are
// order-independent except for which zero (+0 or -0) survives, and the code
// below says where that matters.

const GROUP_MAX_EPS: f32 = 1e-15;
const TENTH: f32 = 0.1;

export function heapBase(): usize {
  return __heap_base;
}

// ggml's nearest_int: 1.5·2^23 added in float32, mantissa read back
// (round half to even for |v| < 2^22, its own wrap-around beyond).
@inline
function nearestInt(v: f32): i32 {
  return (reinterpret<i32>(v + <f32>12582912.0) & 0x007fffff) - 0x00400000;
}

@inline
function nearestV(v: v128): v128 {
  return i32x4.sub(v128.and(f32x4.add(v, f32x4.splat(12582912.0)), i32x4.splat(0x007fffff)), i32x4.splat(0x00400000));
}

// float32 → IEEE half, round to nearest even: the same algorithm as f32ToF16 in src/formats/dtypes.ts.
function toHalf(x: f32): u32 {
  const bits = reinterpret<u32>(x);
  const sign = (bits >>> 16) & 0x8000;
  const exp = <i32>((bits >>> 23) & 0xff);
  let man = bits & 0x7fffff;
  if (exp == 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    man |= 0x800000;
    const shift = <u32>(14 - e);
    const half: u32 = 1 << (shift - 1);
    const rest = man & ((<u32>1 << shift) - 1);
    let q = man >>> shift;
    if (rest > half || (rest == half && (q & 1) != 0)) q++;
    return sign | q;
  }
  const rest = man & 0x1fff;
  let q = (<u32>e << 10) | (man >>> 13);
  if (rest > 0x1000 || (rest == 0x1000 && (q & 1) != 0)) q++;
  return sign | q;
}

// Exact half → float32 (every half is a float32).
function f16ToF32(h: u32): f32 {
  const s = (h & 0x8000) << 16;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e == 0) {
    const v = <f32>m * reinterpret<f32>(0x33800000); // m · 2^-24, exact
    return s ? -v : v;
  }
  if (e == 31) return reinterpret<f32>(s | 0x7f800000 | (m << 13));
  return reinterpret<f32>(s | ((e + 112) << 23) | (m << 13));
}

// Stores the half of v and returns it decoded, as ggml reads its scales back.
@inline
function putF16(p: usize, v: f32): f32 {
  const h = toHalf(v);
  store<u16>(p, <u16>h);
  return f16ToF32(h);
}

@inline
function hmax(v: v128): f32 {
  return max(max(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)), max(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)));
}

@inline
function hmin(v: v128): f32 {
  return min(min(f32x4.extract_lane(v, 0), f32x4.extract_lane(v, 1)), min(f32x4.extract_lane(v, 2), f32x4.extract_lane(v, 3)));
}

// Max |x| of a 32-block, found on the float bits: for non-negative floats the
// integer order is the float order, and NaN/Inf sort above every finite value,
// so the same reduction flags a non-finite block (result >= 0x7f800000).
// `signedMax` receives the value first reaching it (ggml: `if (amax < fabsf(v))`,
// so the first occurrence wins and an all-zero block gives +0).
let signedMax: f32 = 0;
@inline
function blockAbsMaxBits(p: usize, withSigned: bool): i32 {
  const A = i32x4.splat(0x7fffffff);
  const a0 = v128.and(v128.load(p), A), a1 = v128.and(v128.load(p, 16), A);
  const a2 = v128.and(v128.load(p, 32), A), a3 = v128.and(v128.load(p, 48), A);
  const a4 = v128.and(v128.load(p, 64), A), a5 = v128.and(v128.load(p, 80), A);
  const a6 = v128.and(v128.load(p, 96), A), a7 = v128.and(v128.load(p, 112), A);
  let m = i32x4.max_s(i32x4.max_s(i32x4.max_s(a0, a1), i32x4.max_s(a2, a3)), i32x4.max_s(i32x4.max_s(a4, a5), i32x4.max_s(a6, a7)));
  m = i32x4.max_s(m, i8x16.shuffle(m, m, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7));
  m = i32x4.max_s(m, i8x16.shuffle(m, m, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11));
  const bits = i32x4.extract_lane(m, 0);
  if (withSigned) {
    if (bits == 0 || bits >= 0x7f800000) {
      signedMax = 0;
    } else {
      const M = i32x4.splat(bits);
      const mask = i32x4.bitmask(i32x4.eq(a0, M)) | (i32x4.bitmask(i32x4.eq(a1, M)) << 4) |
        (i32x4.bitmask(i32x4.eq(a2, M)) << 8) | (i32x4.bitmask(i32x4.eq(a3, M)) << 12) |
        (i32x4.bitmask(i32x4.eq(a4, M)) << 16) | (i32x4.bitmask(i32x4.eq(a5, M)) << 20) |
        (i32x4.bitmask(i32x4.eq(a6, M)) << 24) | (i32x4.bitmask(i32x4.eq(a7, M)) << 28);
      signedMax = load<f32>(p + (<usize>ctz(mask) << 2));
    }
  }
  return bits;
}

// min and max of a 32-block as ggml's sequential `if (v < min)` / `if (v > max)` scan
// finds them. SIMD gets the value; only for a zero result does the sign of the
// first zero matter (it reaches the stored bytes), so that case rescans in order.
let blockMinV: f32 = 0;
let blockMaxV: f32 = 0;
@inline
function blockMinMax(p: usize): void {
  let lo = v128.load(p);
  let hi = lo;
  for (let k = 1; k < 8; k++) {
    const v = v128.load(p + (<usize>k << 4));
    lo = f32x4.min(lo, v);
    hi = f32x4.max(hi, v);
  }
  let mn = hmin(lo), mx = hmax(hi);
  if (mn == 0 || mx == 0) {
    mn = 3.4028234663852886e38; mx = -3.4028234663852886e38;
    for (let j = 0; j < 32; j++) {
      const v = load<f32>(p + (<usize>j << 2));
      if (v < mn) mn = v;
      if (v > mx) mx = v;
    }
  }
  blockMinV = mn; blockMaxV = mx;
}

// float → int32 as ggml's casts run on x86 (cvttss2si): ±Inf and NaN become
// 0x80000000, whose low byte is 0. Reached only when a subnormal scale makes
// 1/d overflow; the TypeScript reference stores 0 there too.
@inline
function truncX86(v: v128): v128 {
  return v128.andnot(i32x4.trunc_sat_f32x4_s(v), f32x4.eq(f32x4.abs(v), f32x4.splat(Infinity)));
}

// Four i32x4 code vectors (16 codes, each 0..255) → 16 bytes.
@inline
function narrow16(a: v128, b: v128, c: v128, d: v128): v128 {
  return i8x16.narrow_i16x8_u(i16x8.narrow_i32x4_u(a, b), i16x8.narrow_i32x4_u(c, d));
}

// Index of the first non-finite float among n at p, or -1.
export function firstNonFinite(p: usize, n: i32): i32 {
  const E = i32x4.splat(0x7f800000);
  let acc = i32x4.splat(0);
  const n4 = n & ~3;
  for (let i = 0; i < n4; i += 4) acc = v128.or(acc, i32x4.eq(v128.and(v128.load(p + (<usize>i << 2)), E), E));
  if (!v128.any_true(acc) && n4 == n) return -1;
  for (let i = 0; i < n; i++) {
    if ((load<u32>(p + (<usize>i << 2)) & 0x7f800000) == 0x7f800000) return i;
  }
  return -1;
}

// ---------------------------------------------------------------------------
// 32-element blocks

// block_q8_0 { half d; int8 qs[32]; }, codes roundf(x/d) (half away from zero).
// Returns the first block holding a non-finite value (earlier blocks written), or -1.
export function q8_0(x: usize, y: usize, nb: i32): i32 {
  // roundf(v) == trunc(v + copysign(0.5 - 2^-25, v)) for finite |v| < 2^23: the sum is
  // exact or rounds onto the right side of every integer, and ties (k + 1/2) reach k + 1
  // (with 0.5 itself v + 0.5 would carry 0.5 - 2^-25 up to 1).
  const H = f32x4.splat(reinterpret<f32>(0x3effffff));
  const SIGN = i32x4.splat(0x80000000);
  for (let i = 0; i < nb; i++) {
    const b = x + (<usize>i << 7), o = y + <usize>i * 34;
    const bits = blockAbsMaxBits(b, false);
    if (bits >= 0x7f800000) return i;
    const d: f32 = reinterpret<f32>(bits) / 127;
    const id: f32 = d != 0 ? <f32>1 / d : 0;
    store<u16>(o, <u16>toHalf(d));
    const ID = f32x4.splat(id);
    if (id == Infinity) {
      // A subnormal d: x·id overflows, and ggml's x86 cast turns ±Inf into byte 0.
      for (let h = 0; h < 2; h++) {
        const p = b + (<usize>h << 6);
        v128.store(o + 2 + (<usize>h << 4), i8x16.narrow_i16x8_s(
          i16x8.narrow_i32x4_s(truncX86(roundAway(f32x4.mul(v128.load(p), ID), H, SIGN)), truncX86(roundAway(f32x4.mul(v128.load(p, 16), ID), H, SIGN))),
          i16x8.narrow_i32x4_s(truncX86(roundAway(f32x4.mul(v128.load(p, 32), ID), H, SIGN)), truncX86(roundAway(f32x4.mul(v128.load(p, 48), ID), H, SIGN)))));
      }
      continue;
    }
    for (let h = 0; h < 2; h++) {
      const p = b + (<usize>h << 6);
      v128.store(o + 2 + (<usize>h << 4), i8x16.narrow_i16x8_s(
        i16x8.narrow_i32x4_s(
          i32x4.trunc_sat_f32x4_s(roundAway(f32x4.mul(v128.load(p), ID), H, SIGN)),
          i32x4.trunc_sat_f32x4_s(roundAway(f32x4.mul(v128.load(p, 16), ID), H, SIGN))),
        i16x8.narrow_i32x4_s(
          i32x4.trunc_sat_f32x4_s(roundAway(f32x4.mul(v128.load(p, 32), ID), H, SIGN)),
          i32x4.trunc_sat_f32x4_s(roundAway(f32x4.mul(v128.load(p, 48), ID), H, SIGN)))));
    }
  }
  return -1;
}

@inline
function roundAway(v: v128, H: v128, SIGN: v128): v128 {
  return f32x4.add(v, v128.or(H, v128.and(v, SIGN)));
}

// Codes of 16 elements at p: min(top, trunc(f32(f32((x - sub) * id) + add))), as i8x16.
// With id = Inf (a subnormal d) the products are ±Inf or NaN, which ggml's x86 cast
// turns into code 0 (truncX86; the TypeScript reference's castInt8X86 says why).
@inline
function codes16(p: usize, ID: v128, SUB: v128, ADD: v128, TOP: v128, useSub: bool, infId: bool): v128 {
  let v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
  if (useSub) { v0 = f32x4.sub(v0, SUB); v1 = f32x4.sub(v1, SUB); v2 = f32x4.sub(v2, SUB); v3 = f32x4.sub(v3, SUB); }
  v0 = f32x4.add(f32x4.mul(v0, ID), ADD); v1 = f32x4.add(f32x4.mul(v1, ID), ADD);
  v2 = f32x4.add(f32x4.mul(v2, ID), ADD); v3 = f32x4.add(f32x4.mul(v3, ID), ADD);
  if (infId) {
    return narrow16(i32x4.min_s(truncX86(v0), TOP), i32x4.min_s(truncX86(v1), TOP),
      i32x4.min_s(truncX86(v2), TOP), i32x4.min_s(truncX86(v3), TOP));
  }
  return narrow16(
    i32x4.min_s(i32x4.trunc_sat_f32x4_s(v0), TOP), i32x4.min_s(i32x4.trunc_sat_f32x4_s(v1), TOP),
    i32x4.min_s(i32x4.trunc_sat_f32x4_s(v2), TOP), i32x4.min_s(i32x4.trunc_sat_f32x4_s(v3), TOP));
}

// Nibbles of elements j (low) and j+16 (high) in byte j.
@inline
function packNibbles(lo: v128, hi: v128): v128 {
  return v128.or(lo, i8x16.shl(hi, 4));
}

// q5 layout: 16 nibble bytes as above, 4 bytes qh with the fifth bit of element j at bit j.
@inline
function packQ5(qh: usize, qs: usize, lo: v128, hi: v128): void {
  const M = i8x16.splat(0x0f);
  v128.store(qs, v128.or(v128.and(lo, M), i8x16.shl(v128.and(hi, M), 4)));
  store<u32>(qh, <u32>i8x16.bitmask(i8x16.shl(lo, 3)) | (<u32>i8x16.bitmask(i8x16.shl(hi, 3)) << 16));
}

// block_q4_0 { half d; uint8 qs[16]; }
export function q4_0(x: usize, y: usize, nb: i32): i32 {
  const ADD = f32x4.splat(8.5), TOP = i32x4.splat(15), Z = f32x4.splat(0);
  for (let i = 0; i < nb; i++) {
    const b = x + (<usize>i << 7), o = y + <usize>i * 18;
    if (blockAbsMaxBits(b, true) >= 0x7f800000) return i;
    const d: f32 = signedMax / -8;
    const id: f32 = d != 0 ? <f32>1 / d : 0;
    store<u16>(o, <u16>toHalf(d));
    const ID = f32x4.splat(id);
    const inf = abs<f32>(id) == Infinity;
    v128.store(o + 2, packNibbles(codes16(b, ID, Z, ADD, TOP, false, inf), codes16(b + 64, ID, Z, ADD, TOP, false, inf)));
  }
  return -1;
}

// block_q4_1 { half d; half m; uint8 qs[16]; }
export function q4_1(x: usize, y: usize, nb: i32): void {
  const ADD = f32x4.splat(0.5), TOP = i32x4.splat(15);
  for (let i = 0; i < nb; i++) {
    const b = x + (<usize>i << 7), o = y + <usize>i * 20;
    blockMinMax(b);
    const mn = blockMinV;
    const d: f32 = (blockMaxV - mn) / 15;
    const id: f32 = d != 0 ? <f32>1 / d : 0;
    store<u16>(o, <u16>toHalf(d));
    store<u16>(o + 2, <u16>toHalf(mn));
    const ID = f32x4.splat(id), SUB = f32x4.splat(mn);
    const inf = abs<f32>(id) == Infinity;
    v128.store(o + 4, packNibbles(codes16(b, ID, SUB, ADD, TOP, true, inf), codes16(b + 64, ID, SUB, ADD, TOP, true, inf)));
  }
}

// block_q5_0 { half d; uint8 qh[4]; uint8 qs[16]; }
export function q5_0(x: usize, y: usize, nb: i32): i32 {
  const ADD = f32x4.splat(16.5), TOP = i32x4.splat(31), Z = f32x4.splat(0);
  for (let i = 0; i < nb; i++) {
    const b = x + (<usize>i << 7), o = y + <usize>i * 22;
    if (blockAbsMaxBits(b, true) >= 0x7f800000) return i;
    const d: f32 = signedMax / -16;
    const id: f32 = d != 0 ? <f32>1 / d : 0;
    store<u16>(o, <u16>toHalf(d));
    const ID = f32x4.splat(id);
    const inf = abs<f32>(id) == Infinity;
    packQ5(o + 2, o + 6, codes16(b, ID, Z, ADD, TOP, false, inf), codes16(b + 64, ID, Z, ADD, TOP, false, inf));
  }
  return -1;
}

// block_q5_1 { half d; half m; uint8 qh[4]; uint8 qs[16]; }; ggml does not clamp here,
// the code is the low byte of the truncated value.
export function q5_1(x: usize, y: usize, nb: i32): void {
  const ADD = f32x4.splat(0.5), TOP = i32x4.splat(0x7fffffff);
  for (let i = 0; i < nb; i++) {
    const b = x + (<usize>i << 7), o = y + <usize>i * 24;
    blockMinMax(b);
    const mn = blockMinV;
    const d: f32 = (blockMaxV - mn) / 31;
    const id: f32 = d != 0 ? <f32>1 / d : 0;
    store<u16>(o, <u16>toHalf(d));
    store<u16>(o + 2, <u16>toHalf(mn));
    const ID = f32x4.splat(id), SUB = f32x4.splat(mn);
    // narrow_u saturates, so take the low byte before narrowing.
    const B = i32x4.splat(0xff);
    const lo = codesLowByte16(b, ID, SUB, ADD, B);
    const hi = codesLowByte16(b + 64, ID, SUB, ADD, B);
    packQ5(o + 4, o + 8, lo, hi);
  }
}

@inline
function codesLowByte16(p: usize, ID: v128, SUB: v128, ADD: v128, B: v128): v128 {
  return narrow16(
    v128.and(truncX86(f32x4.add(f32x4.mul(f32x4.sub(v128.load(p), SUB), ID), ADD)), B),
    v128.and(truncX86(f32x4.add(f32x4.mul(f32x4.sub(v128.load(p, 16), SUB), ID), ADD)), B),
    v128.and(truncX86(f32x4.add(f32x4.mul(f32x4.sub(v128.load(p, 32), SUB), ID), ADD)), B),
    v128.and(truncX86(f32x4.add(f32x4.mul(f32x4.sub(v128.load(p, 48), SUB), ID), ADD)), B));
}

// ---------------------------------------------------------------------------
// Lane-parallel K-quant searches. A super-block of 256 is transposed so that
// element i of sub-block j sits at T[i*S + j] (S = number of sub-blocks); a
// v128 at T + 4*(i*S + g) then holds element i of sub-blocks g..g+3.

const T = memory.data(256 * 4, 16);   // transposed x
const TW = memory.data(256 * 4, 16);  // transposed weights
const TL = memory.data(256 * 4, 16);  // transposed codes (i32) of the best candidate
const TA = memory.data(256 * 4, 16);  // transposed codes (i32) of the current candidate
const SC = memory.data(16 * 4, 16);   // per-sub-block scale
const MN = memory.data(16 * 4, 16);   // per-sub-block min (as ggml's positive offset)
const LU = memory.data(256, 16);      // final codes, natural order
const LS = memory.data(16, 16);       // sub-block scale codes (Q2_K, Q4_K, Q5_K)
const LM = memory.data(16, 16);       // sub-block min codes (Q2_K, Q4_K, Q5_K)
const LS8 = memory.data(16, 16);      // int8 sub-block scales (Q6_K)

@inline
function transpose(b: usize, S: i32, n: i32): void {
  for (let j = 0; j < S; j++) {
    for (let i = 0; i < n; i++) store<f32>(T + (<usize>(i * S + j) << 2), load<f32>(b + (<usize>(j * n + i) << 2)));
  }
}

// make_qkx2_quants (x3 false) / make_qkx3_quants (x3 true) for sub-blocks g..g+7,
// n elements each, stride S floats in T/TW/TL/TA. Writes scale to SC[g..], -min to MN[g..].
// One call per flag combination, so that the flags are constants inside qkx4.
function qkxLanes(
  g: i32, S: i32, n: i32, nmax: i32, rmin: f32, rdelta: f32, nstep: i32, useMad: bool, x3: bool,
): void {
  if (x3) qkxX3(g, S, n, nmax, rmin, rdelta, nstep);
  else if (useMad) qkxMad(g, S, n, nmax, rmin, rdelta, nstep);
  else qkxSq(g, S, n, nmax, rmin, rdelta, nstep);
}
function qkxX3(g: i32, S: i32, n: i32, nmax: i32, rmin: f32, rdelta: f32, nstep: i32): void {
  qkx4(g, S, n, nmax, rmin, rdelta, nstep, false, true);
  qkx4(g + 4, S, n, nmax, rmin, rdelta, nstep, false, true);
}
function qkxMad(g: i32, S: i32, n: i32, nmax: i32, rmin: f32, rdelta: f32, nstep: i32): void {
  qkx4(g, S, n, nmax, rmin, rdelta, nstep, true, false);
  qkx4(g + 4, S, n, nmax, rmin, rdelta, nstep, true, false);
}
function qkxSq(g: i32, S: i32, n: i32, nmax: i32, rmin: f32, rdelta: f32, nstep: i32): void {
  qkx4(g, S, n, nmax, rmin, rdelta, nstep, false, false);
  qkx4(g + 4, S, n, nmax, rmin, rdelta, nstep, false, false);
}

// One vector of four sub-blocks (g..g+3), every lane doing exactly ggml's scalar sequence.
// A single vector keeps every live value in registers (two interleaved vectors spilled).
// TA holds the current candidate's codes as floats (they feed the error pass as floats).
@inline
function qkx4(
  g: i32, S: i32, n: i32, nmax: i32, rmin: f32, rdelta: f32, nstep: i32, useMad: bool, x3: bool,
): void {
  const st = <usize>S << 2;
  const g4 = <usize>g << 2;
  const xp = T + g4, wp = TW + g4, lp = TL + g4, ap = TA + g4;
  const end = xp + <usize>n * st;
  const NMAXF = f32x4.splat(<f32>nmax);
  const NMAXI = i32x4.splat(nmax);
  const ZI = i32x4.splat(0);
  const Z = f32x4.splat(0);
  let mn = v128.load(xp), mx = mn;
  let sumW = v128.load(wp);
  let sumX = f32x4.mul(sumW, mn);
  for (let q: usize = st; q < <usize>n * st; q += st) {
    const x = v128.load(xp + q), w = v128.load(wp + q);
    mn = f32x4.pmin(mn, x); // xi < mn ? xi : mn, as ggml's scan
    mx = f32x4.pmax(mx, x);
    sumW = f32x4.add(sumW, w);
    sumX = f32x4.add(sumX, f32x4.mul(w, x));
  }
  const xmin = mn;
  mn = v128.bitselect(Z, mn, f32x4.gt(mn, Z));
  const dead = x3 ? f32x4.le(mx, mn) : f32x4.eq(mx, mn);
  let iscale = f32x4.div(NMAXF, f32x4.sub(mx, mn));
  let scale = f32x4.div(f32x4.splat(1), iscale);
  let best = Z;
  for (let q: usize = 0; q < <usize>n * st; q += st) {
    const x = v128.load(xp + q);
    const l = i32x4.min_s(i32x4.max_s(nearestV(f32x4.mul(iscale, f32x4.sub(x, mn))), ZI), NMAXI);
    v128.store(lp + q, l);
    let d = f32x4.sub(f32x4.add(f32x4.mul(scale, f32x4.convert_i32x4_s(l)), mn), x);
    d = useMad ? f32x4.abs(d) : f32x4.mul(d, d);
    best = f32x4.add(best, f32x4.mul(v128.load(wp + q), d));
  }
  const MAGIC = f32x4.splat(12582912.0);
  for (let is = 0; is <= nstep && nstep >= 1; is++) {
    iscale = f32x4.div(f32x4.add(f32x4.splat(rmin + rdelta * <f32>is), NMAXF), f32x4.sub(mx, mn));
    let sL = Z, sL2 = Z, sXL = Z;
    let xq = xp, wq = wp, aq = ap;
    // Every |v| below is at most |iscale|·max(|mx − mn|, |xmin − mn|) (float rounding is monotonic).
    // Below 2^21 in every live lane, nearest-then-clamp equals clamp in float after rounding
    // by (v + 1.5·2^23) − 1.5·2^23, which saves the integer round trip; otherwise (huge or
    // degenerate ranges, where ggml's nearest_int wraps around) the exact integer path runs.
    const bound = f32x4.mul(f32x4.abs(iscale), f32x4.max(f32x4.abs(f32x4.sub(mx, mn)), f32x4.abs(f32x4.sub(xmin, mn))));
    if (i32x4.all_true(v128.or(f32x4.lt(bound, f32x4.splat(2097152.0)), dead))) {
      while (xq < end) {
        const x = v128.load(xq);
        const v = f32x4.mul(iscale, f32x4.sub(x, mn));
        let f: v128;
        if (x3) f = v128.and(f32x4.sub(f32x4.add(f32x4.pmin(NMAXF, v), MAGIC), MAGIC), f32x4.gt(v, Z));
        else f = f32x4.pmin(NMAXF, f32x4.pmax(Z, f32x4.sub(f32x4.add(v, MAGIC), MAGIC)));
        v128.store(aq, f);
        const wl = f32x4.mul(v128.load(wq), f);
        sL = f32x4.add(sL, wl);
        sL2 = f32x4.add(sL2, f32x4.mul(wl, f));
        sXL = f32x4.add(sXL, f32x4.mul(wl, x));
        xq += st; wq += st; aq += st;
      }
    } else {
      while (xq < end) {
        const x = v128.load(xq);
        const v = f32x4.mul(iscale, f32x4.sub(x, mn));
        let l: v128;
        if (x3) l = v128.and(nearestV(f32x4.pmin(NMAXF, v)), f32x4.gt(v, Z));
        else l = i32x4.min_s(i32x4.max_s(nearestV(v), ZI), NMAXI);
        const f = f32x4.convert_i32x4_s(l);
        v128.store(aq, f);
        const wl = f32x4.mul(v128.load(wq), f);
        sL = f32x4.add(sL, wl);
        sL2 = f32x4.add(sL2, f32x4.mul(wl, f));
        sXL = f32x4.add(sXL, f32x4.mul(wl, x));
        xq += st; wq += st; aq += st;
      }
    }
    const D = f32x4.sub(f32x4.mul(sumW, sL2), f32x4.mul(sL, sL));
    // Degenerate lanes compute garbage here; they must not adopt it.
    const ok = v128.andnot(f32x4.gt(D, Z), dead);
    if (!v128.any_true(ok)) continue;
    let ts = f32x4.div(f32x4.sub(f32x4.mul(sumW, sXL), f32x4.mul(sumX, sL)), D);
    let tm = f32x4.div(f32x4.sub(f32x4.mul(sL2, sumX), f32x4.mul(sL, sXL)), D);
    const pos = f32x4.gt(tm, Z);
    tm = v128.bitselect(Z, tm, pos);
    ts = v128.bitselect(f32x4.div(sXL, sL2), ts, pos);
    let e = Z;
    xq = xp; wq = wp; aq = ap;
    while (xq < end) {
      let d = f32x4.sub(f32x4.add(f32x4.mul(ts, v128.load(aq)), tm), v128.load(xq));
      d = useMad ? f32x4.abs(d) : f32x4.mul(d, d);
      e = f32x4.add(e, f32x4.mul(v128.load(wq), d));
      xq += st; wq += st; aq += st;
    }
    const better = v128.and(ok, f32x4.lt(e, best));
    if (!v128.any_true(better)) continue;
    for (let q: usize = 0; q < <usize>n * st; q += st) {
      v128.store(lp + q, v128.bitselect(i32x4.trunc_sat_f32x4_s(v128.load(ap + q)), v128.load(lp + q), better));
    }
    best = v128.bitselect(e, best, better);
    scale = v128.bitselect(ts, scale, better);
    mn = v128.bitselect(tm, mn, better);
  }
  // Degenerate sub-blocks: codes 0, scale 0, min as found.
  if (v128.any_true(dead)) {
    for (let q: usize = 0; q < <usize>n * st; q += st) v128.store(lp + q, v128.andnot(v128.load(lp + q), dead));
    scale = v128.bitselect(Z, scale, dead);
  }
  v128.store(SC + g4, scale);
  v128.store(MN + g4, f32x4.neg(mn));
}

// make_qx_quants (rmse_type 1) for sub-blocks g..g+3 of n elements, weights x² or TW when useW.
// Codes (0 .. 2·nmax-1, or 0 for a negligible sub-block) go to TL, scales to SC.
function qxLanes(g: i32, S: i32, n: i32, nmax: i32, useW: bool): void {
  if (useW) qxW(g, S, n, nmax);
  else qxX2(g, S, n, nmax);
}
function qxW(g: i32, S: i32, n: i32, nmax: i32): void {
  qx4(g, S, n, nmax, true);
}
function qxX2(g: i32, S: i32, n: i32, nmax: i32): void {
  qx4(g, S, n, nmax, false);
}

const QW = memory.data(256 * 4, 16);  // w of the lanes being searched, at T's stride
const QWX = memory.data(256 * 4, 16); // w·x (ggml's w*x[i], the first product of w*x[i]*l)

@inline
function qx4(g: i32, S: i32, n: i32, nmax: i32, useW: bool): void {
  const st = <usize>S << 2;
  const g4 = <usize>g << 2;
  const xp = T + g4, wp = TW + g4, lp = TL + g4;
  const len = <usize>n * st;
  const Z = f32x4.splat(0);
  const LO = i32x4.splat(-nmax), HI = i32x4.splat(nmax - 1), NM = i32x4.splat(nmax);
  let amax = Z, mx = Z;
  for (let q: usize = 0; q < len; q += st) {
    const xi = v128.load(xp + q);
    const ax = f32x4.abs(xi);
    const gt = f32x4.gt(ax, amax);
    amax = v128.bitselect(ax, amax, gt);
    mx = v128.bitselect(xi, mx, gt);
    // The weights and w·x do not change between candidates: computed once.
    const w = useW ? v128.load(wp + q) : f32x4.mul(xi, xi);
    v128.store(QW + q, w);
    v128.store(QWX + q, f32x4.mul(w, xi));
  }
  const dead = f32x4.lt(amax, f32x4.splat(GROUP_MAX_EPS));
  let iscale = f32x4.div(f32x4.splat(<f32>-nmax), mx);
  let sumlx = Z, suml2 = Z;
  for (let q: usize = 0; q < len; q += st) {
    const l = f32x4.convert_i32x4_s(i32x4.min_s(i32x4.max_s(nearestV(f32x4.mul(iscale, v128.load(xp + q))), LO), HI));
    sumlx = f32x4.add(sumlx, f32x4.mul(v128.load(QWX + q), l));
    suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(v128.load(QW + q), l), l));
  }
  let scale = v128.bitselect(f32x4.div(sumlx, suml2), Z, f32x4.ne(suml2, Z));
  let best = f32x4.mul(scale, sumlx);
  let bestIscale = iscale;
  for (let is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = f32x4.div(f32x4.neg(f32x4.splat(<f32>nmax + TENTH * <f32>is)), mx);
    sumlx = Z; suml2 = Z;
    for (let q: usize = 0; q < len; q += st) {
      const l = f32x4.convert_i32x4_s(i32x4.min_s(i32x4.max_s(nearestV(f32x4.mul(iscale, v128.load(xp + q))), LO), HI));
      sumlx = f32x4.add(sumlx, f32x4.mul(v128.load(QWX + q), l));
      suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(v128.load(QW + q), l), l));
    }
    const take = v128.and(f32x4.gt(suml2, Z), f32x4.gt(f32x4.mul(sumlx, sumlx), f32x4.mul(best, suml2)));
    if (!v128.any_true(take)) continue;
    scale = v128.bitselect(f32x4.div(sumlx, suml2), scale, take);
    best = v128.bitselect(f32x4.mul(scale, sumlx), best, take);
    bestIscale = v128.bitselect(iscale, bestIscale, take);
  }
  // The codes ggml keeps are those of the last accepted candidate, a function of its iscale.
  for (let q: usize = 0; q < len; q += st) {
    const l = i32x4.add(i32x4.min_s(i32x4.max_s(nearestV(f32x4.mul(bestIscale, v128.load(xp + q))), LO), HI), NM);
    v128.store(lp + q, v128.andnot(l, dead));
  }
  v128.store(SC + g4, v128.bitselect(Z, scale, dead));
}

// TL (transposed, S sub-blocks of n) → LU bytes in natural order.
@inline
function untransposeCodes(S: i32, n: i32): void {
  for (let j = 0; j < S; j++) {
    for (let i = 0; i < n; i++) store<u8>(LU + j * n + i, <u8>load<i32>(TL + (<usize>(i * S + j) << 2)));
  }
}

const SW = memory.data(16 * 4, 16);   // per-sub-block sum of importance weights

// Importance weights of one super-block (S sub-blocks of n): TW (transposed) gets
// qw·sqrt(sigma² + x²) with sigma² = f·(sum of x² in element order)/256 (f = 2, Q2_K 1), SW the
// per-sub-block sums in element order. T must already hold the transposed block.
function importanceWeightsT(b: usize, qwp: usize, S: i32, n: i32, sigmaFactor: f32): void {
  let sumx2: f32 = 0;
  for (let l = 0; l < 256; l++) {
    const v = load<f32>(b + (<usize>l << 2));
    sumx2 += v * v;
  }
  const sigma2: f32 = (sigmaFactor * sumx2) / 256;
  for (let j = 0; j < S; j++) {
    for (let l = 0; l < n; l++) {
      const e = <usize>(j * n + l) << 2;
      const v = load<f32>(b + e);
      store<f32>(TW + (<usize>(l * S + j) << 2), load<f32>(qwp + e) * sqrt<f32>(sigma2 + v * v));
    }
  }
  for (let g = 0; g < S; g += 4) {
    let sw = f32x4.splat(0);
    for (let l = 0; l < n; l++) sw = f32x4.add(sw, v128.load(TW + (<usize>(l * S + g) << 2)));
    v128.store(SW + (<usize>g << 2), sw);
  }
}

// ggml make_qp_quants: codes (u8, as ggml's uint8 array wraps them) for n
// non-negative values at xs with weights ws; returns the scale.
function makeQpQuants(n: i32, nmax: i32, xs: usize, L: usize, ws: usize): f32 {
  let mx: f32 = 0;
  for (let i = 0; i < n; i++) {
    const v = load<f32>(xs + (<usize>i << 2));
    mx = mx > v ? mx : v;
  }
  if (mx < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) store<u8>(L + i, 0);
    return 0;
  }
  let iscale: f32 = <f32>nmax / mx;
  for (let i = 0; i < n; i++) store<u8>(L + i, <u8>nearestInt(iscale * load<f32>(xs + (<usize>i << 2))));
  const scale: f32 = <f32>1 / iscale;
  let bestMse: f32 = 0;
  for (let i = 0; i < n; i++) {
    const xi = load<f32>(xs + (<usize>i << 2));
    const diff: f32 = xi - scale * <f32>load<u8>(L + i);
    bestMse += (load<f32>(ws + (<usize>i << 2)) * diff) * diff;
  }
  for (let is = -4; is <= 4; is++) {
    if (is == 0) continue;
    const iscaleIs: f32 = (TENTH * <f32>is + <f32>nmax) / mx;
    const scaleIs: f32 = <f32>1 / iscaleIs;
    let mse: f32 = 0;
    for (let i = 0; i < n; i++) {
      const xi = load<f32>(xs + (<usize>i << 2));
      const l = min<i32>(nmax, nearestInt(iscaleIs * xi));
      const diff: f32 = xi - scaleIs * <f32>l;
      mse += (load<f32>(ws + (<usize>i << 2)) * diff) * diff;
    }
    if (mse < bestMse) { bestMse = mse; iscale = iscaleIs; }
  }
  let sumlx: f32 = 0, suml2: f32 = 0;
  for (let i = 0; i < n; i++) {
    const xi = load<f32>(xs + (<usize>i << 2));
    store<u8>(L + i, <u8>min<i32>(nmax, nearestInt(iscale * xi)));
    const w = load<f32>(ws + (<usize>i << 2));
    const li = <f32>load<u8>(L + i);
    sumlx += (w * xi) * li;
    suml2 += (w * li) * li;
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = 0;
    for (let i = 0; i < n; i++) {
      const xi = load<f32>(xs + (<usize>i << 2));
      const w = load<f32>(ws + (<usize>i << 2));
      const li = <i32>load<u8>(L + i);
      let slx: f32 = sumlx - (w * xi) * <f32>li;
      let sl2: f32 = suml2 - (w * <f32>li) * <f32>li;
      if (slx > 0 && sl2 > 0) {
        const nl = min<i32>(nmax, nearestInt((xi * sl2) / slx));
        if (nl != li) {
          slx += (w * xi) * <f32>nl;
          sl2 += (w * <f32>nl) * <f32>nl;
          if ((slx * slx) * suml2 > (sumlx * sumlx) * sl2) {
            store<u8>(L + i, <u8>nl);
            sumlx = slx; suml2 = sl2;
            changed++;
          }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0 ? sumlx / suml2 : 0;
}

// Four 2-bit codes per byte: byte l of each 32-byte run holds elements l, l+32, l+64, l+96 of a 128 run.
@inline
function pack2bit(q: usize): void {
  for (let j = 0; j < 256; j += 128) {
    for (let h = 0; h < 32; h += 16) {
      const p = LU + j + h;
      v128.store(q + (j >> 2) + h, v128.or(
        v128.or(v128.load(p), i8x16.shl(v128.load(p, 32), 2)),
        v128.or(i8x16.shl(v128.load(p, 64), 4), i8x16.shl(v128.load(p, 96), 6))));
    }
  }
}

// block_q2_K { uint8 scales[16]; uint8 qs[64]; half d; half dmin; }: 4-bit scale | 4-bit min per 16.
export function q2_k(x: usize, y: usize, nb: i32, qw: usize, bpr: i32): void {
  for (let i = 0; i < nb; i++) {
    const b = x + (<usize>i << 10), o = y + <usize>i * 84;
    transpose(b, 16, 16);
    let dAll: f32, mAll: f32;
    if (qw == 0) {
      for (let q: usize = 0; q < 1024; q += 16) v128.store(TW + q, f32x4.abs(v128.load(T + q)));
      qkxLanes(0, 16, 16, 3, -0.5, TENTH, 15, true, false);
      qkxLanes(8, 16, 16, 3, -0.5, TENTH, 15, true, false);
      let maxScale: f32 = 0, maxMin: f32 = 0;
      for (let j = 0; j < 16; j++) {
        const s = load<f32>(SC + (<usize>j << 2)), m = load<f32>(MN + (<usize>j << 2));
        if (s > maxScale) maxScale = s;
        if (m > maxMin) maxMin = m;
      }
      if (maxScale > 0) {
        const iscale: f32 = <f32>15 / maxScale;
        for (let j = 0; j < 16; j++) store<u8>(o + j, <u8>nearestInt(iscale * load<f32>(SC + (<usize>j << 2))));
        dAll = putF16(o + 80, maxScale / 15);
      } else {
        for (let j = 0; j < 16; j++) store<u8>(o + j, 0);
        dAll = putF16(o + 80, 0);
      }
      if (maxMin > 0) {
        const iscale: f32 = <f32>15 / maxMin;
        for (let j = 0; j < 16; j++) {
          store<u8>(o + j, <u8>(<i32>load<u8>(o + j) | (nearestInt(iscale * load<f32>(MN + (<usize>j << 2))) << 4)));
        }
        mAll = putF16(o + 82, maxMin / 15);
      } else {
        mAll = putF16(o + 82, 0);
      }
    } else {
      importanceWeightsT(b, qw + (<usize>(i % bpr) << 10), 16, 16, 1);
      qkxLanes(0, 16, 16, 3, -0.9, 0.05, 36, false, true);
      qkxLanes(8, 16, 16, 3, -0.9, 0.05, 36, false, true);
      const dm = makeQpQuants(16, 15, SC, LS, SW);
      const mm = makeQpQuants(16, 15, MN, LM, SW);
      dAll = putF16(o + 80, dm);
      mAll = putF16(o + 82, mm);
      for (let j = 0; j < 16; j++) store<u8>(o + j, <u8>(<u32>load<u8>(LS + j) | (<u32>load<u8>(LM + j) << 4)));
    }
    untransposeCodes(16, 16);
    const ZI = i32x4.splat(0), TOP = i32x4.splat(3);
    for (let j = 0; j < 16; j++) {
      const sc = <u32>load<u8>(o + j);
      const d: f32 = dAll * <f32>(sc & 0xf);
      if (d == 0) continue; // C's `!d`: a NaN d is not skipped
      const DM = f32x4.splat(mAll * <f32>(sc >> 4)), D = f32x4.splat(d);
      const p = b + (<usize>j << 6);
      v128.store(LU + (<usize>j << 4), narrow16(
        i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(f32x4.add(v128.load(p), DM), D)), ZI), TOP),
        i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(f32x4.add(v128.load(p, 16), DM), D)), ZI), TOP),
        i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(f32x4.add(v128.load(p, 32), DM), D)), ZI), TOP),
        i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(f32x4.add(v128.load(p, 48), DM), D)), ZI), TOP)));
    }
    pack2bit(o + 16);
  }
}

// make_q3_quants with do_rmse (x²-weighted coordinate descent) for sub-blocks g..g+3
// of n elements (stride S in T). Lanes that have converged rerun their last pass
// unchanged, which is what stopping would have left. Codes + nmax (or 0 for a
// negligible sub-block) go to TL, scales to SC.
function q3Lanes(g: i32, S: i32, n: i32, nmax: i32): void {
  const st = <usize>S << 2;
  const g4 = <usize>g << 2;
  const xp = T + g4, lp = TL + g4;
  const Z = f32x4.splat(0);
  const LO = i32x4.splat(-nmax), HI = i32x4.splat(nmax - 1);
  let amax = Z, mx = Z;
  for (let i = 0; i < n; i++) {
    const xi = v128.load(xp + <usize>i * st);
    const ax = f32x4.abs(xi);
    const gt = f32x4.gt(ax, amax);
    amax = v128.bitselect(ax, amax, gt);
    mx = v128.bitselect(xi, mx, gt);
  }
  const dead = f32x4.lt(amax, f32x4.splat(GROUP_MAX_EPS));
  const iscale = f32x4.div(f32x4.splat(<f32>-nmax), mx);
  let sumlx = Z, suml2 = Z;
  for (let i = 0; i < n; i++) {
    const xi = v128.load(xp + <usize>i * st);
    const li = i32x4.min_s(i32x4.max_s(nearestV(f32x4.mul(iscale, xi)), LO), HI);
    v128.store(lp + <usize>i * st, li);
    const l = f32x4.convert_i32x4_s(li);
    const w = f32x4.mul(xi, xi);
    sumlx = f32x4.add(sumlx, f32x4.mul(f32x4.mul(w, xi), l));
    suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(w, l), l));
  }
  for (let itry = 0; itry < 5; itry++) {
    let changed = i32x4.splat(0);
    for (let i = 0; i < n; i++) {
      const q = lp + <usize>i * st;
      const xi = v128.load(xp + <usize>i * st);
      const w = f32x4.mul(xi, xi);
      const li = v128.load(q);
      const lf = f32x4.convert_i32x4_s(li);
      const wx = f32x4.mul(w, xi);
      let slx = f32x4.sub(sumlx, f32x4.mul(wx, lf));
      const okX = f32x4.gt(slx, Z);
      let sl2 = f32x4.sub(suml2, f32x4.mul(f32x4.mul(w, lf), lf));
      const nl = i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(f32x4.mul(xi, sl2), slx)), LO), HI);
      const nf = f32x4.convert_i32x4_s(nl);
      slx = f32x4.add(slx, f32x4.mul(wx, nf));
      sl2 = f32x4.add(sl2, f32x4.mul(f32x4.mul(w, nf), nf));
      const take = v128.and(v128.and(okX, v128.not(i32x4.eq(nl, li))), v128.and(f32x4.gt(sl2, Z),
        f32x4.gt(f32x4.mul(f32x4.mul(slx, slx), suml2), f32x4.mul(f32x4.mul(sumlx, sumlx), sl2))));
      if (!v128.any_true(take)) continue;
      v128.store(q, v128.bitselect(nl, li, take));
      sumlx = v128.bitselect(slx, sumlx, take);
      suml2 = v128.bitselect(sl2, suml2, take);
      changed = v128.or(changed, take);
    }
    if (!v128.any_true(changed)) break;
  }
  const NM = i32x4.splat(nmax);
  for (let i = 0; i < n; i++) {
    const q = lp + <usize>i * st;
    v128.store(q, v128.andnot(i32x4.add(v128.load(q), NM), dead));
  }
  v128.store(SC + g4, v128.bitselect(Z, v128.bitselect(f32x4.div(sumlx, suml2), Z, f32x4.gt(suml2, Z)), dead));
}

// ggml make_qx_quants (rmse_type 1) on n values at xs with weights ws, one lane:
// Q3_K's importance path codes its 16 sub-block scales with it. Codes to L as int8.
function makeQxQuantsScalar(n: i32, nmax: i32, xs: usize, L: usize, ws: usize): f32 {
  let mx: f32 = 0, amax: f32 = 0;
  for (let i = 0; i < n; i++) {
    const v = load<f32>(xs + (<usize>i << 2));
    if (abs(v) > amax) { amax = abs(v); mx = v; }
  }
  if (amax < GROUP_MAX_EPS) {
    for (let i = 0; i < n; i++) store<i8>(L + i, 0);
    return 0;
  }
  let iscale: f32 = <f32>-nmax / mx;
  let sumlx: f32 = 0, suml2: f32 = 0;
  for (let i = 0; i < n; i++) {
    const xi = load<f32>(xs + (<usize>i << 2));
    const l = min<i32>(max<i32>(nearestInt(iscale * xi), -nmax), nmax - 1);
    store<i8>(L + i, <i8>(l + nmax));
    const w = load<f32>(ws + (<usize>i << 2));
    sumlx += (w * xi) * <f32>l;
    suml2 += (w * <f32>l) * <f32>l;
  }
  let scale: f32 = suml2 != 0 ? sumlx / suml2 : 0;
  let best: f32 = scale * sumlx;
  for (let is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = -(<f32>nmax + TENTH * <f32>is) / mx;
    sumlx = 0; suml2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = load<f32>(xs + (<usize>i << 2));
      const l = <f32>min<i32>(max<i32>(nearestInt(iscale * xi), -nmax), nmax - 1);
      const w = load<f32>(ws + (<usize>i << 2));
      sumlx += (w * xi) * l;
      suml2 += (w * l) * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (let i = 0; i < n; i++) {
        store<i8>(L + i, <i8>(nmax + min<i32>(max<i32>(nearestInt(iscale * load<f32>(xs + (<usize>i << 2))), -nmax), nmax - 1)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

@inline
function packQ3Scale(so: usize, j: i32, l: u32): void {
  if (j < 8) store<u8>(so + j, <u8>(l & 0xf));
  else store<u8>(so + j - 8, <u8>(<u32>load<u8>(so + j - 8) | ((l & 0xf) << 4)));
  const k = so + 8 + (j & 3);
  store<u8>(k, <u8>(<u32>load<u8>(k) | ((l >> 4) << (2 * (j >> 2)))));
}

@inline
function q3Scale(so: usize, j: i32): i32 {
  const lo = j < 8 ? <i32>load<u8>(so + j) & 0xf : <i32>load<u8>(so + j - 8) >> 4;
  return (lo | (((<i32>load<u8>(so + 8 + (j & 3)) >> (2 * (j >> 2))) & 3) << 4)) - 32;
}

// block_q3_K { uint8 hmask[32]; uint8 qs[64]; uint8 scales[12]; half d; }
export function q3_k(x: usize, y: usize, nb: i32, qw: usize, bpr: i32): void {
  for (let i = 0; i < nb; i++) {
    const b = x + (<usize>i << 10), o = y + <usize>i * 110, so = o + 96;
    memory.fill(so, 0, 12);
    transpose(b, 16, 16);
    let dAll: f32;
    if (qw == 0) {
      for (let g = 0; g < 16; g += 4) q3Lanes(g, 16, 16, 4);
      let maxScale: f32 = 0, amax: f32 = 0;
      for (let j = 0; j < 16; j++) {
        const s = load<f32>(SC + (<usize>j << 2));
        if (abs(s) > amax) { amax = abs(s); maxScale = s; }
      }
      if (maxScale != 0) {
        const iscale: f32 = <f32>-32 / maxScale;
        for (let j = 0; j < 16; j++) {
          const l8 = <i32><i8>nearestInt(iscale * load<f32>(SC + (<usize>j << 2))); // ggml keeps it in an int8 first
          packQ3Scale(so, j, <u32>(min<i32>(max<i32>(l8, -32), 31) + 32));
        }
        dAll = putF16(o + 108, <f32>1 / iscale);
      } else {
        dAll = putF16(o + 108, 0);
      }
    } else {
      importanceWeightsT(b, qw + (<usize>(i % bpr) << 10), 16, 16, 2);
      for (let g = 0; g < 16; g += 4) qxLanes(g, 16, 16, 4, true);
      const dBlock = makeQxQuantsScalar(16, 32, SC, LS8, SW);
      for (let j = 0; j < 16; j++) packQ3Scale(so, j, <u32><u8>load<i8>(LS8 + j));
      dAll = putF16(o + 108, dBlock);
    }
    untransposeCodes(16, 16);
    const LOI = i32x4.splat(-4), HII = i32x4.splat(3), OFF = i32x4.splat(4);
    for (let j = 0; j < 16; j++) {
      const d: f32 = dAll * <f32>q3Scale(so, j);
      if (d == 0) continue; // C's `!d`: a NaN d is not skipped
      const D = f32x4.splat(d);
      const p = b + (<usize>j << 6);
      v128.store(LU + (<usize>j << 4), narrow16(
        i32x4.add(i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(v128.load(p), D)), LOI), HII), OFF),
        i32x4.add(i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(v128.load(p, 16), D)), LOI), HII), OFF),
        i32x4.add(i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(v128.load(p, 32), D)), LOI), HII), OFF),
        i32x4.add(i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(v128.load(p, 48), D)), LOI), HII), OFF)));
    }
    // High bit (value 4) of element j goes to byte j % 32, bit j / 32; the low two bits are packed as Q2_K's.
    const FOUR = i8x16.splat(4);
    let h0 = i8x16.splat(0), h1 = i8x16.splat(0);
    for (let k = 0; k < 8; k++) {
      const p = LU + (<usize>k << 5);
      const a0 = v128.load(p), a1 = v128.load(p, 16);
      h0 = v128.or(h0, i8x16.shl(i8x16.shr_u(v128.and(a0, FOUR), 2), k));
      h1 = v128.or(h1, i8x16.shl(i8x16.shr_u(v128.and(a1, FOUR), 2), k));
      v128.store(p, v128.andnot(a0, FOUR));
      v128.store(p, v128.andnot(a1, FOUR), 16);
    }
    v128.store(o, h0);
    v128.store(o, h1, 16);
    pack2bit(o + 32);
  }
}

// Q4_0 / Q5_0 / Q4_1 / Q5_1 with importance (ggml's quantize_row_q*_impl): weights
// qw·sqrt(sigma² + x²) with sigma² the mean square of the whole row (summed in
// element order), then make_qx_quants (Q4_0, Q5_0) or make_qkx3_quants (Q4_1, Q5_1)
// per block. Eight blocks of a row share one lane pass; lanes past the row's end
// hold zeros (a negligible block) and are not written.
function legacyImportance(type: i32, x: usize, y: usize, nb: i32, qw: usize, bpr: i32): void {
  const size: usize = type == 2 ? 18 : type == 3 ? 20 : type == 6 ? 22 : 24;
  const rowLen = bpr << 5;
  for (let r0 = 0; r0 < nb; r0 += bpr) {
    const xr = x + (<usize>r0 << 7);
    let s: f32 = 0;
    for (let j = 0; j < rowLen; j++) {
      const v = load<f32>(xr + (<usize>j << 2));
      s += v * v;
    }
    const sigma2: f32 = s / <f32>rowLen;
    for (let ib0 = 0; ib0 < bpr; ib0 += 8) {
      const cnt = min<i32>(8, bpr - ib0);
      for (let j = 0; j < 8; j++) {
        for (let l = 0; l < 32; l++) {
          const t = <usize>(l * 8 + j) << 2;
          if (j < cnt) {
            const e = <usize>(((ib0 + j) << 5) + l) << 2;
            const v = load<f32>(xr + e);
            store<f32>(T + t, v);
            store<f32>(TW + t, load<f32>(qw + e) * sqrt<f32>(sigma2 + v * v));
          } else {
            store<f32>(T + t, 0);
            store<f32>(TW + t, 0);
          }
        }
      }
      if (type == 2 || type == 6) {
        const nmax = type == 2 ? 8 : 16;
        qxLanes(0, 8, 32, nmax, true);
        qxLanes(4, 8, 32, nmax, true);
      } else {
        qkxLanes(0, 8, 32, type == 3 ? 15 : 31, -0.9, 0.05, 36, false, true);
      }
      untransposeCodes(8, 32);
      for (let j = 0; j < cnt; j++) {
        const o = y + <usize>(r0 + ib0 + j) * size;
        const lo = v128.load(LU + (<usize>j << 5)), hi = v128.load(LU + (<usize>j << 5), 16);
        const d = load<f32>(SC + (<usize>j << 2));
        store<u16>(o, <u16>toHalf(d));
        if (type == 2) {
          v128.store(o + 2, packNibbles(lo, hi));
        } else if (type == 6) {
          packQ5(o + 2, o + 6, lo, hi);
        } else {
          store<u16>(o + 2, <u16>toHalf(-load<f32>(MN + (<usize>j << 2)))); // the min itself
          if (type == 3) v128.store(o + 4, packNibbles(lo, hi));
          else packQ5(o + 4, o + 8, lo, hi);
        }
      }
    }
  }
}

// block_q4_K { half d; half dmin; uint8 scales[12]; uint8 qs[128]; }
// block_q5_K { half d; half dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]; }
function q45_k(x: usize, y: usize, nb: i32, nmax: i32, qw: usize, bpr: i32): void {
  const size: usize = nmax == 15 ? 144 : 176;
  for (let i = 0; i < nb; i++) {
    const b = x + (<usize>i << 10), o = y + <usize>i * size, so = o + 4;
    transpose(b, 8, 32);
    let dAll: f32, mAll: f32;
    if (qw == 0) {
      // Weights avx + |x| with avx = sqrt(sum x² / 32), sum in element order per sub-block.
      for (let g = 0; g < 8; g += 4) {
        let s2 = f32x4.splat(0);
        for (let l = 0; l < 32; l++) {
          const v = v128.load(T + (<usize>(l * 8 + g) << 2));
          s2 = f32x4.add(s2, f32x4.mul(v, v));
        }
        const avx = f32x4.sqrt(f32x4.div(s2, f32x4.splat(32)));
        for (let l = 0; l < 32; l++) {
          const q = <usize>(l * 8 + g) << 2;
          v128.store(TW + q, f32x4.add(avx, f32x4.abs(v128.load(T + q))));
        }
      }
      if (nmax == 15) qkxLanes(0, 8, 32, 15, -1, TENTH, 20, false, false);
      else qkxLanes(0, 8, 32, 31, -0.5, TENTH, 15, false, false);
      let maxScale: f32 = 0, maxMin: f32 = 0;
      for (let j = 0; j < 8; j++) {
        const s = load<f32>(SC + (<usize>j << 2)), m = load<f32>(MN + (<usize>j << 2));
        if (s > maxScale) maxScale = s;
        if (m > maxMin) maxMin = m;
      }
      const invScale: f32 = maxScale > 0 ? <f32>63 / maxScale : 0;
      const invMin: f32 = maxMin > 0 ? <f32>63 / maxMin : 0;
      for (let j = 0; j < 8; j++) {
        store<u8>(LS + j, <u8>min<i32>(63, nearestInt(invScale * load<f32>(SC + (<usize>j << 2))) & 0xff));
        store<u8>(LM + j, <u8>min<i32>(63, nearestInt(invMin * load<f32>(MN + (<usize>j << 2))) & 0xff));
      }
      dAll = putF16(o, maxScale / 63);
      mAll = putF16(o + 2, maxMin / 63);
    } else {
      // ggml's importance path: weights qw·sqrt(sigma² + x²), sigma² from the super-block's
      // sum of squares in element order; scales and mins coded by make_qp_quants.
      importanceWeightsT(b, qw + (<usize>(i % bpr) << 10), 8, 32, 2);
      if (nmax == 15) qkxLanes(0, 8, 32, 15, -0.9, 0.05, 36, false, true);
      else qkxLanes(0, 8, 32, 31, -0.9, 0.05, 36, false, true);
      const dBlock = makeQpQuants(8, 63, SC, LS, SW);
      const mBlock = makeQpQuants(8, 63, MN, LM, SW);
      for (let j = 0; j < 8; j++) {
        store<u8>(LS + j, min<u8>(63, load<u8>(LS + j)));
        store<u8>(LM + j, min<u8>(63, load<u8>(LM + j)));
      }
      dAll = putF16(o, dBlock);
      mAll = putF16(o + 2, mBlock);
    }
    untransposeCodes(8, 32);
    for (let k = 0; k < 12; k++) store<u8>(so + k, 0);
    for (let j = 0; j < 8; j++) {
      const ls = <u32>load<u8>(LS + j), lm = <u32>load<u8>(LM + j);
      if (j < 4) {
        store<u8>(so + j, <u8>ls);
        store<u8>(so + j + 4, <u8>lm);
      } else {
        store<u8>(so + j + 4, <u8>((ls & 0xf) | ((lm & 0xf) << 4)));
        store<u8>(so + j - 4, <u8>(<u32>load<u8>(so + j - 4) | ((ls >> 4) << 6)));
        store<u8>(so + j, <u8>(<u32>load<u8>(so + j) | ((lm >> 4) << 6)));
      }
    }
    const ZI = i32x4.splat(0), NM = i32x4.splat(nmax);
    for (let j = 0; j < 8; j++) {
      // LS/LM hold exactly the 6-bit values packed above.
      const d: f32 = dAll * <f32>load<u8>(LS + j);
      if (d == 0) continue;
      const dm: f32 = mAll * <f32>load<u8>(LM + j);
      const D = f32x4.splat(d), DM = f32x4.splat(dm);
      const p = b + (<usize>j << 7);
      const q0 = i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(f32x4.add(v128.load(p), DM), D)), ZI), NM);
      const q1 = i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(f32x4.add(v128.load(p, 16), DM), D)), ZI), NM);
      const q2 = i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(f32x4.add(v128.load(p, 32), DM), D)), ZI), NM);
      const q3 = i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(f32x4.add(v128.load(p, 48), DM), D)), ZI), NM);
      const q4 = i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(f32x4.add(v128.load(p, 64), DM), D)), ZI), NM);
      const q5 = i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(f32x4.add(v128.load(p, 80), DM), D)), ZI), NM);
      const q6 = i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(f32x4.add(v128.load(p, 96), DM), D)), ZI), NM);
      const q7 = i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(f32x4.add(v128.load(p, 112), DM), D)), ZI), NM);
      v128.store(LU + (<usize>j << 5), narrow16(q0, q1, q2, q3));
      v128.store(LU + (<usize>j << 5) + 16, narrow16(q4, q5, q6, q7));
    }
    if (nmax == 15) {
      const q = o + 16;
      for (let j = 0; j < 256; j += 64) {
        const base = LU + j;
        v128.store(q + (j >> 1), packNibbles(v128.load(base), v128.load(base + 32)));
        v128.store(q + (j >> 1) + 16, packNibbles(v128.load(base + 16), v128.load(base + 48)));
      }
    } else {
      const qh = o + 16, ql = o + 48;
      const M = i8x16.splat(0x0f);
      let h0 = i8x16.splat(0), h1 = i8x16.splat(0);
      for (let n = 0; n < 256; n += 64) {
        const sh = n >> 5; // bit of l1 in qh: 2·(n/64), l2 the next one
        const a0 = v128.load(LU + n), a1 = v128.load(LU + n + 16);
        const c0 = v128.load(LU + n + 32), c1 = v128.load(LU + n + 48);
        v128.store(ql + (n >> 1), v128.or(v128.and(a0, M), i8x16.shl(v128.and(c0, M), 4)));
        v128.store(ql + (n >> 1) + 16, v128.or(v128.and(a1, M), i8x16.shl(v128.and(c1, M), 4)));
        // Fifth bit (value 16) of each code moved to bit sh / sh+1.
        h0 = v128.or(h0, v128.or(i8x16.shl(i8x16.shr_u(a0, 4), sh), i8x16.shl(i8x16.shr_u(c0, 4), sh + 1)));
        h1 = v128.or(h1, v128.or(i8x16.shl(i8x16.shr_u(a1, 4), sh), i8x16.shl(i8x16.shr_u(c1, 4), sh + 1)));
      }
      v128.store(qh, h0);
      v128.store(qh + 16, h1);
    }
  }
}

export function q4_k(x: usize, y: usize, nb: i32, qw: usize, bpr: i32): void {
  q45_k(x, y, nb, 15, qw, bpr);
}

export function q5_k(x: usize, y: usize, nb: i32, qw: usize, bpr: i32): void {
  q45_k(x, y, nb, 31, qw, bpr);
}

// block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d; }
export function q6_k(x: usize, y: usize, nb: i32, qw: usize, bpr: i32): void {
  for (let i = 0; i < nb; i++) {
    const b = x + (<usize>i << 10), o = y + <usize>i * 210;
    transpose(b, 16, 16);
    if (qw != 0) {
      // ggml weighs the fit by the importance values themselves here.
      const qwp = qw + (<usize>(i % bpr) << 10);
      for (let j = 0; j < 16; j++) {
        for (let l = 0; l < 16; l++) store<f32>(TW + (<usize>(l * 16 + j) << 2), load<f32>(qwp + (<usize>(j * 16 + l) << 2)));
      }
      for (let g = 0; g < 16; g += 4) qxLanes(g, 16, 16, 32, true);
    } else {
      for (let g = 0; g < 16; g += 4) qxLanes(g, 16, 16, 32, false);
    }
    let maxScale: f32 = 0, maxAbs: f32 = 0;
    for (let ib = 0; ib < 16; ib++) {
      const s = load<f32>(SC + (<usize>ib << 2));
      if (abs(s) > maxAbs) { maxAbs = abs(s); maxScale = s; }
    }
    if (maxAbs < GROUP_MAX_EPS) {
      memory.fill(o, 0, 210);
      continue;
    }
    untransposeCodes(16, 16);
    const iscale: f32 = <f32>-128 / maxScale;
    const dAll = putF16(o + 208, <f32>1 / iscale);
    for (let ib = 0; ib < 16; ib++) {
      const l = min<i32>(127, nearestInt(iscale * load<f32>(SC + (<usize>ib << 2))));
      store<i8>(LS8 + ib, <i8>l);
      store<i8>(o + 192 + ib, <i8>l);
    }
    const LOI = i32x4.splat(-32), HII = i32x4.splat(31), OFF = i32x4.splat(32);
    for (let j = 0; j < 16; j++) {
      const d: f32 = dAll * <f32>load<i8>(LS8 + j);
      if (d == 0) continue;
      const D = f32x4.splat(d);
      const p = b + (<usize>j << 6);
      const q0 = i32x4.add(i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(v128.load(p), D)), LOI), HII), OFF);
      const q1 = i32x4.add(i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(v128.load(p, 16), D)), LOI), HII), OFF);
      const q2 = i32x4.add(i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(v128.load(p, 32), D)), LOI), HII), OFF);
      const q3 = i32x4.add(i32x4.min_s(i32x4.max_s(nearestV(f32x4.div(v128.load(p, 48), D)), LOI), HII), OFF);
      v128.store(LU + (<usize>j << 4), narrow16(q0, q1, q2, q3));
    }
    const M = i8x16.splat(0x0f);
    for (let j = 0; j < 256; j += 128) {
      const ql = o + (j >> 1), qh = o + 128 + (j >> 2);
      for (let h = 0; h < 32; h += 16) {
        const a = v128.load(LU + j + h), c = v128.load(LU + j + h + 32);
        const e = v128.load(LU + j + h + 64), gg = v128.load(LU + j + h + 96);
        v128.store(ql + h, v128.or(v128.and(a, M), i8x16.shl(v128.and(e, M), 4)));
        v128.store(ql + h + 32, v128.or(v128.and(c, M), i8x16.shl(v128.and(gg, M), 4)));
        v128.store(qh + h, v128.or(v128.or(i8x16.shr_u(a, 4), i8x16.shl(i8x16.shr_u(c, 4), 2)),
          v128.or(i8x16.shl(i8x16.shr_u(e, 4), 4), i8x16.shl(i8x16.shr_u(gg, 4), 6))));
      }
    }
  }
}

// One entry point for the host: type codes are ggml's type ids. Returns the
// index of the first non-finite input (nothing written), -1 when done, -3 for an unknown type.
// qw: importance values of one row (0 for none), bpr: blocks per row.
export function encode(type: i32, x: usize, n: i32, y: usize, qw: usize, bpr: i32): i32 {
  // Q8_0, Q4_0 and Q5_0 find non-finite blocks in their own max reduction.
  let blk = -1;
  if (qw != 0 && (type == 2 || type == 3 || type == 6 || type == 7)) {
    const bad = firstNonFinite(x, n);
    if (bad >= 0) return bad;
    legacyImportance(type, x, y, n >> 5, qw, bpr);
    return -1;
  }
  switch (type) {
    case 8: blk = q8_0(x, y, n >> 5); break;
    case 2: blk = q4_0(x, y, n >> 5); break;
    case 6: blk = q5_0(x, y, n >> 5); break;
    default: {
      const bad = firstNonFinite(x, n);
      if (bad >= 0) return bad;
    }
  }
  if (blk >= 0) return (blk << 5) + firstNonFinite(x + (<usize>blk << 7), 32);
  switch (type) {
    case 8: case 2: case 6: break;
    case 3: q4_1(x, y, n >> 5); break;
    case 7: q5_1(x, y, n >> 5); break;
    case 10: q2_k(x, y, n >> 8, qw, bpr); break;
    case 11: q3_k(x, y, n >> 8, qw, bpr); break;
    case 12: q4_k(x, y, n >> 8, qw, bpr); break;
    case 13: q5_k(x, y, n >> 8, qw, bpr); break;
    case 14: q6_k(x, y, n >> 8, qw, bpr); break;
    default: return -3;
  }
  return -1;
}

// ---------------------------------------------------------------------------
// The rest of a conversion slab, so that the values never leave the module:
// source halves (fp16, bf16) → float32 in, decoded values and the error sums out.

// n fp16 values at src → float32 at dst (n a multiple of 8). Exact, as f16ToF32:
// the magnitude bits shifted into a float32's place are the value times 2^-112
// (subnormal halves included), so one exact multiply by 2^112 scales them back;
// Inf/NaN (exponent 31) get float32's all-ones exponent with the payload kept.
export function f16ToF32s(src: usize, dst: usize, n: i32): void {
  const MAG = i32x4.splat(0x7fff), EXP = i32x4.splat(0x7c00), SIGN = i32x4.splat(0x8000);
  const TOP = i32x4.splat(0x7f800000), SCALE = f32x4.splat(reinterpret<f32>(0x77800000)); // 2^112
  for (let i = 0; i < n; i += 8) {
    const h = v128.load(src + (<usize>i << 1));
    for (let half = 0; half < 2; half++) {
      const w = half == 0 ? i32x4.extend_low_i16x8_u(h) : i32x4.extend_high_i16x8_u(h);
      const mag = i32x4.shl(v128.and(w, MAG), 13);
      const fin = f32x4.mul(mag, SCALE);
      const inf = i32x4.eq(v128.and(w, EXP), EXP);
      const v = v128.or(v128.bitselect(v128.or(mag, TOP), fin, inf), i32x4.shl(v128.and(w, SIGN), 16));
      v128.store(dst + (<usize>(i + (half << 2)) << 2), v);
    }
  }
}

// n bf16 values at src → float32 at dst (n a multiple of 8): the bits moved up.
export function bf16ToF32s(src: usize, dst: usize, n: i32): void {
  for (let i = 0; i < n; i += 8) {
    const h = v128.load(src + (<usize>i << 1));
    v128.store(dst + (<usize>i << 2), i32x4.shl(i32x4.extend_low_i16x8_u(h), 16));
    v128.store(dst + (<usize>i << 2), i32x4.shl(i32x4.extend_high_i16x8_u(h), 16), 16);
  }
}

// 16 bytes → four f32x4 of their unsigned values, stored at o.
@inline
function storeU8AsF32(o: usize, b: v128): void {
  const lo = i16x8.extend_low_i8x16_u(b), hi = i16x8.extend_high_i8x16_u(b);
  v128.store(o, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(lo)));
  v128.store(o, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(lo)), 16);
  v128.store(o, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_u(hi)), 32);
  v128.store(o, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_u(hi)), 48);
}

// 16 signed bytes → their values as float32 at o.
@inline
function storeI8AsF32(o: usize, b: v128): void {
  const lo = i16x8.extend_low_i8x16_s(b), hi = i16x8.extend_high_i8x16_s(b);
  v128.store(o, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(lo)));
  v128.store(o, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(lo)), 16);
  v128.store(o, f32x4.convert_i32x4_s(i32x4.extend_low_i16x8_s(hi)), 32);
  v128.store(o, f32x4.convert_i32x4_s(i32x4.extend_high_i16x8_s(hi)), 48);
}

// o[0..n) = f32(f32(d · o[i]) − m) in place: ggml's `d * q - m` (no fused multiply-add).
@inline
function scaleSub(o: usize, n: i32, d: f32, m: f32): void {
  const D = f32x4.splat(d), M = f32x4.splat(m);
  for (let k = 0; k < n; k += 4) {
    const p = o + (<usize>k << 2);
    v128.store(p, f32x4.sub(f32x4.mul(D, v128.load(p)), M));
  }
}

const QB = memory.data(256, 16); // one super-block's codes, unpacked

// ggml's get_scale_min_k4 for sub-block j of the 12 scale bytes at q.
@inline
function scaleK4(q: usize, j: i32): u32 {
  return j < 4 ? <u32>load<u8>(q + j) & 63 : (<u32>load<u8>(q + j + 4) & 0xf) | ((<u32>load<u8>(q + j - 4) >> 6) << 4);
}
@inline
function minK4(q: usize, j: i32): u32 {
  return j < 4 ? <u32>load<u8>(q + j + 4) & 63 : (<u32>load<u8>(q + j + 4) >> 4) | ((<u32>load<u8>(q + j) >> 6) << 4);
}

// Decode n values (whole blocks) of type at y into float32 at out, equal bit for bit to
// ggml's dequantize_row_* (and the TypeScript reference in src/formats/gguf/dequant.ts).
// Returns -1, or -3 for a type without a decoder here.
export function decode(type: i32, y: usize, n: i32, out: usize): i32 {
  const M = i8x16.splat(0x0f);
  switch (type) {
    case 8: {
      for (let i = 0; i < n >> 5; i++) {
        const b = y + <usize>i * 34, o = out + (<usize>i << 7);
        storeI8AsF32(o, v128.load(b + 2));
        storeI8AsF32(o + 64, v128.load(b + 18));
        scaleSub(o, 32, f16ToF32(<u32>load<u16>(b)), 0);
      }
      return -1;
    }
    case 12: case 13: {
      const q5 = type == 13;
      const size: usize = q5 ? 176 : 144;
      for (let i = 0; i < n >> 8; i++) {
        const b = y + <usize>i * size, o = out + (<usize>i << 10);
        const d = f16ToF32(<u32>load<u16>(b)), mn = f16ToF32(<u32>load<u16>(b + 2));
        const qs = b + (q5 ? 48 : 16);
        for (let k = 0; k < 4; k++) {
          // Bytes qs[32k .. 32k+32): low nibbles are sub-block 2k, high nibbles 2k+1.
          for (let h = 0; h < 32; h += 16) {
            const v = v128.load(qs + (k << 5) + h);
            let lo = v128.and(v, M), hi = v128.and(i8x16.shr_u(v, 4), M);
            if (q5) {
              const qh = v128.load(b + 16 + h);
              const B1 = i8x16.splat(<i8>(<i8>1 << <i8>(2 * k))), B2 = i8x16.splat(<i8>(<i8>2 << <i8>(2 * k)));
              lo = v128.or(lo, v128.and(i8x16.ne(v128.and(qh, B1), i8x16.splat(0)), i8x16.splat(16)));
              hi = v128.or(hi, v128.and(i8x16.ne(v128.and(qh, B2), i8x16.splat(0)), i8x16.splat(16)));
            }
            storeU8AsF32(o + (<usize>(k << 6) << 2) + (<usize>h << 2), lo);
            storeU8AsF32(o + (<usize>((k << 6) + 32) << 2) + (<usize>h << 2), hi);
          }
          const j = k << 1;
          scaleSub(o + (<usize>(k << 6) << 2), 32, d * <f32>scaleK4(b + 4, j), mn * <f32>minK4(b + 4, j));
          scaleSub(o + (<usize>((k << 6) + 32) << 2), 32, d * <f32>scaleK4(b + 4, j + 1), mn * <f32>minK4(b + 4, j + 1));
        }
      }
      return -1;
    }
    case 14: {
      const THREE = i8x16.splat(3), OFF = i8x16.splat(32);
      for (let i = 0; i < n >> 8; i++) {
        const b = y + <usize>i * 210, o = out + (<usize>i << 10);
        const d = f16ToF32(<u32>load<u16>(b + 208));
        for (let half = 0; half < 2; half++) {
          const ql = b + (half << 6), qh = b + 128 + (half << 5);
          for (let h = 0; h < 32; h += 16) {
            const a = v128.load(ql + h), c = v128.load(ql + 32 + h), hb = v128.load(qh + h);
            const q1 = i8x16.sub(v128.or(v128.and(a, M), i8x16.shl(v128.and(hb, THREE), 4)), OFF);
            const q2 = i8x16.sub(v128.or(v128.and(c, M), i8x16.shl(v128.and(i8x16.shr_u(hb, 2), THREE), 4)), OFF);
            const q3 = i8x16.sub(v128.or(i8x16.shr_u(a, 4), i8x16.shl(v128.and(i8x16.shr_u(hb, 4), THREE), 4)), OFF);
            const q4 = i8x16.sub(v128.or(i8x16.shr_u(c, 4), i8x16.shl(i8x16.shr_u(hb, 6), 4)), OFF);
            const base = o + (<usize>(half << 7) << 2) + (<usize>h << 2);
            storeI8AsF32(QB, q1); storeI8AsF32(QB + 64, q2); storeI8AsF32(QB + 128, q3); storeI8AsF32(QB + 192, q4);
            // Element l (0..31) of quarter k uses scale is + 2k with is = l / 16.
            const is = (half << 3) + (h >> 4);
            for (let k = 0; k < 4; k++) {
              const D = f32x4.splat(d * <f32>load<i8>(b + 192 + is + (k << 1)));
              const src = QB + (<usize>k << 6), dst = base + (<usize>(k << 5) << 2);
              v128.store(dst, f32x4.mul(D, v128.load(src)));
              v128.store(dst, f32x4.mul(D, v128.load(src, 16)), 16);
              v128.store(dst, f32x4.mul(D, v128.load(src, 32)), 32);
              v128.store(dst, f32x4.mul(D, v128.load(src, 48)), 48);
            }
          }
        }
      }
      return -1;
    }
    default: return -3;
  }
}

const SUMS = memory.data(16, 16); // float64 sum (decoded − source)² and sum source², carried across calls

export function sumsPtr(): usize {
  return SUMS;
}

// Adds to SUMS, in element order and in float64, what the TypeScript slab loop adds.
export function errorSums(x: usize, dec: usize, n: i32): void {
  let e = load<f64>(SUMS), r = load<f64>(SUMS, 8);
  for (let i = 0; i < n; i++) {
    const xi = <f64>load<f32>(x + (<usize>i << 2));
    const dd = <f64>load<f32>(dec + (<usize>i << 2)) - xi;
    e += dd * dd;
    r += xi * xi;
  }
  store<f64>(SUMS, e);
  store<f64>(SUMS, r, 8);
}

// Fingerprint of a stream of float32 values (their bits), carried across calls in FP:
// four lanes, lane j taking words j, j+4, j+8, … with xxHash32's round
// acc = rotl(acc + word·P2, 13)·P1 (a bijection of acc and of the word, so any change
// of a single word changes the fingerprint). Twin: fingerprintRef in ggmlKernels.ts.
const FP = memory.data(16, 16);

export function fpPtr(): usize {
  return FP;
}

export function fingerprint(p: usize, n: i32): void {
  const P1 = i32x4.splat(<i32>0x9e3779b1), P2 = i32x4.splat(<i32>0x85ebca77);
  let acc = v128.load(FP);
  const n4 = n & ~3;
  for (let i = 0; i < n4; i += 4) {
    const v = i32x4.add(acc, i32x4.mul(v128.load(p + (<usize>i << 2)), P2));
    acc = i32x4.mul(v128.or(i32x4.shl(v, 13), i32x4.shr_u(v, 19)), P1);
  }
  v128.store(FP, acc);
  for (let i = n4; i < n; i++) {
    const a = FP + (<usize>(i & 3) << 2);
    const v = load<u32>(a) + load<u32>(p + (<usize>i << 2)) * 0x85ebca77;
    store<u32>(a, rotl<u32>(v, 13) * 0x9e3779b1);
  }
}

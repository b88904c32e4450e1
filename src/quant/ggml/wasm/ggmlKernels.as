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

// Index of the first element of a 32-block (at p) with |x| == a.
@inline
function firstAbsEq(p: usize, a: f32): i32 {
  const A = f32x4.splat(a);
  let bits = 0;
  for (let k = 0; k < 8; k++) bits |= i32x4.bitmask(f32x4.eq(f32x4.abs(v128.load(p + (<usize>k << 4))), A)) << (k << 2);
  return ctz(bits);
}

// Max |x| of a 32-block and the signed value first reaching it (ggml: `if (amax < fabsf(v))`,
// so the first occurrence wins and an all-zero block gives +0).
let signedMax: f32 = 0;
@inline
function blockAbsMax(p: usize): f32 {
  let m = f32x4.abs(v128.load(p));
  for (let k = 1; k < 8; k++) m = f32x4.max(m, f32x4.abs(v128.load(p + (<usize>k << 4))));
  const a = hmax(m);
  signedMax = a > 0 ? load<f32>(p + (<usize>firstAbsEq(p, a) << 2)) : 0;
  return a;
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
export function q8_0(x: usize, y: usize, nb: i32): void {
  const HALF = f32x4.splat(0.5);
  const ONE = f32x4.splat(1);
  const SIGN = i32x4.splat(0x80000000);
  for (let i = 0; i < nb; i++) {
    const b = x + (<usize>i << 7), o = y + <usize>i * 34;
    let m = f32x4.abs(v128.load(b));
    for (let k = 1; k < 8; k++) m = f32x4.max(m, f32x4.abs(v128.load(b + (<usize>k << 4))));
    const d: f32 = hmax(m) / 127;
    const id: f32 = d != 0 ? <f32>1 / d : 0;
    store<u16>(o, <u16>toHalf(d));
    const ID = f32x4.splat(id);
    for (let h = 0; h < 2; h++) {
      const p = b + (<usize>h << 6);
      // roundf: trunc, then one step away from zero when the dropped part is >= 1/2
      // (v - trunc(v) is exact, so the comparison sees the true fraction).
      const v0 = f32x4.mul(v128.load(p), ID), v1 = f32x4.mul(v128.load(p, 16), ID);
      const v2 = f32x4.mul(v128.load(p, 32), ID), v3 = f32x4.mul(v128.load(p, 48), ID);
      const t0 = f32x4.trunc(v0), t1 = f32x4.trunc(v1), t2 = f32x4.trunc(v2), t3 = f32x4.trunc(v3);
      const r0 = f32x4.add(t0, v128.and(v128.or(ONE, v128.and(v0, SIGN)), f32x4.ge(f32x4.abs(f32x4.sub(v0, t0)), HALF)));
      const r1 = f32x4.add(t1, v128.and(v128.or(ONE, v128.and(v1, SIGN)), f32x4.ge(f32x4.abs(f32x4.sub(v1, t1)), HALF)));
      const r2 = f32x4.add(t2, v128.and(v128.or(ONE, v128.and(v2, SIGN)), f32x4.ge(f32x4.abs(f32x4.sub(v2, t2)), HALF)));
      const r3 = f32x4.add(t3, v128.and(v128.or(ONE, v128.and(v3, SIGN)), f32x4.ge(f32x4.abs(f32x4.sub(v3, t3)), HALF)));
      v128.store(o + 2 + (<usize>h << 4), i8x16.narrow_i16x8_s(
        i16x8.narrow_i32x4_s(i32x4.trunc_sat_f32x4_s(r0), i32x4.trunc_sat_f32x4_s(r1)),
        i16x8.narrow_i32x4_s(i32x4.trunc_sat_f32x4_s(r2), i32x4.trunc_sat_f32x4_s(r3))));
    }
  }
}

// Codes of 16 elements at p: min(top, trunc(f32(f32((x - sub) * id) + add))), as i8x16.
@inline
function codes16(p: usize, ID: v128, SUB: v128, ADD: v128, TOP: v128, useSub: bool): v128 {
  let v0 = v128.load(p), v1 = v128.load(p, 16), v2 = v128.load(p, 32), v3 = v128.load(p, 48);
  if (useSub) { v0 = f32x4.sub(v0, SUB); v1 = f32x4.sub(v1, SUB); v2 = f32x4.sub(v2, SUB); v3 = f32x4.sub(v3, SUB); }
  return narrow16(
    i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.add(f32x4.mul(v0, ID), ADD)), TOP),
    i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.add(f32x4.mul(v1, ID), ADD)), TOP),
    i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.add(f32x4.mul(v2, ID), ADD)), TOP),
    i32x4.min_s(i32x4.trunc_sat_f32x4_s(f32x4.add(f32x4.mul(v3, ID), ADD)), TOP));
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
export function q4_0(x: usize, y: usize, nb: i32): void {
  const ADD = f32x4.splat(8.5), TOP = i32x4.splat(15), Z = f32x4.splat(0);
  for (let i = 0; i < nb; i++) {
    const b = x + (<usize>i << 7), o = y + <usize>i * 18;
    blockAbsMax(b);
    const d: f32 = signedMax / -8;
    const id: f32 = d != 0 ? <f32>1 / d : 0;
    store<u16>(o, <u16>toHalf(d));
    const ID = f32x4.splat(id);
    v128.store(o + 2, packNibbles(codes16(b, ID, Z, ADD, TOP, false), codes16(b + 64, ID, Z, ADD, TOP, false)));
  }
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
    v128.store(o + 4, packNibbles(codes16(b, ID, SUB, ADD, TOP, true), codes16(b + 64, ID, SUB, ADD, TOP, true)));
  }
}

// block_q5_0 { half d; uint8 qh[4]; uint8 qs[16]; }
export function q5_0(x: usize, y: usize, nb: i32): void {
  const ADD = f32x4.splat(16.5), TOP = i32x4.splat(31), Z = f32x4.splat(0);
  for (let i = 0; i < nb; i++) {
    const b = x + (<usize>i << 7), o = y + <usize>i * 22;
    blockAbsMax(b);
    const d: f32 = signedMax / -16;
    const id: f32 = d != 0 ? <f32>1 / d : 0;
    store<u16>(o, <u16>toHalf(d));
    const ID = f32x4.splat(id);
    packQ5(o + 2, o + 6, codes16(b, ID, Z, ADD, TOP, false), codes16(b + 64, ID, Z, ADD, TOP, false));
  }
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
    v128.and(i32x4.trunc_sat_f32x4_s(f32x4.add(f32x4.mul(f32x4.sub(v128.load(p), SUB), ID), ADD)), B),
    v128.and(i32x4.trunc_sat_f32x4_s(f32x4.add(f32x4.mul(f32x4.sub(v128.load(p, 16), SUB), ID), ADD)), B),
    v128.and(i32x4.trunc_sat_f32x4_s(f32x4.add(f32x4.mul(f32x4.sub(v128.load(p, 32), SUB), ID), ADD)), B),
    v128.and(i32x4.trunc_sat_f32x4_s(f32x4.add(f32x4.mul(f32x4.sub(v128.load(p, 48), SUB), ID), ADD)), B));
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
const LS = memory.data(16, 16);       // 6-bit sub-block scales (Q4_K/Q5_K)
const LM = memory.data(16, 16);       // 6-bit sub-block mins (Q4_K/Q5_K)
const LS8 = memory.data(16, 16);      // int8 sub-block scales (Q6_K)

@inline
function transpose(b: usize, S: i32, n: i32): void {
  for (let j = 0; j < S; j++) {
    for (let i = 0; i < n; i++) store<f32>(T + (<usize>(i * S + j) << 2), load<f32>(b + (<usize>(j * n + i) << 2)));
  }
}

// make_qkx2_quants (x3 false) / make_qkx3_quants (x3 true) for sub-blocks g..g+3,
// n elements each, stride S floats in T/TW/TL/TA. Writes scale to SC[g..], -min to MN[g..].
function qkxLanes(
  g: i32, S: i32, n: i32, nmax: i32, rmin: f32, rdelta: f32, nstep: i32, useMad: bool, x3: bool,
): void {
  const st = <usize>S << 2;
  const g4 = <usize>g << 2;
  const xp = T + g4, wp = TW + g4, lp = TL + g4, ap = TA + g4;
  const NMAXF = f32x4.splat(<f32>nmax);
  const NMAXI = i32x4.splat(nmax);
  const ZI = i32x4.splat(0);
  const Z = f32x4.splat(0);
  let mn = v128.load(xp), mx = mn;
  let sumW = v128.load(wp);
  let sumX = f32x4.mul(sumW, mn);
  for (let i = 1; i < n; i++) {
    const xi = v128.load(xp + <usize>i * st);
    const wi = v128.load(wp + <usize>i * st);
    mn = f32x4.pmin(mn, xi); // xi < mn ? xi : mn, as ggml's scan
    mx = f32x4.pmax(mx, xi);
    sumW = f32x4.add(sumW, wi);
    sumX = f32x4.add(sumX, f32x4.mul(wi, xi));
  }
  mn = v128.bitselect(Z, mn, f32x4.gt(mn, Z));
  const dead = x3 ? f32x4.le(mx, mn) : f32x4.eq(mx, mn);
  let iscale = f32x4.div(NMAXF, f32x4.sub(mx, mn));
  let scale = f32x4.div(f32x4.splat(1), iscale);
  let bestErr = Z;
  for (let i = 0; i < n; i++) {
    const xi = v128.load(xp + <usize>i * st);
    const l = i32x4.min_s(i32x4.max_s(nearestV(f32x4.mul(iscale, f32x4.sub(xi, mn))), ZI), NMAXI);
    v128.store(lp + <usize>i * st, l);
    let diff = f32x4.sub(f32x4.add(f32x4.mul(scale, f32x4.convert_i32x4_s(l)), mn), xi);
    diff = useMad ? f32x4.abs(diff) : f32x4.mul(diff, diff);
    bestErr = f32x4.add(bestErr, f32x4.mul(v128.load(wp + <usize>i * st), diff));
  }
  if (nstep >= 1) {
    for (let is = 0; is <= nstep; is++) {
      iscale = f32x4.div(f32x4.add(f32x4.splat(rmin + rdelta * <f32>is), NMAXF), f32x4.sub(mx, mn));
      let sumL = Z, sumL2 = Z, sumXL = Z;
      for (let i = 0; i < n; i++) {
        const xi = v128.load(xp + <usize>i * st);
        const v = f32x4.mul(iscale, f32x4.sub(xi, mn));
        let l: v128;
        if (x3) l = v128.and(nearestV(f32x4.pmin(NMAXF, v)), f32x4.gt(v, Z));
        else l = i32x4.min_s(i32x4.max_s(nearestV(v), ZI), NMAXI);
        v128.store(ap + <usize>i * st, l);
        const wl = f32x4.mul(v128.load(wp + <usize>i * st), f32x4.convert_i32x4_s(l));
        sumL = f32x4.add(sumL, wl);
        sumL2 = f32x4.add(sumL2, f32x4.mul(wl, f32x4.convert_i32x4_s(l)));
        sumXL = f32x4.add(sumXL, f32x4.mul(wl, xi));
      }
      const D = f32x4.sub(f32x4.mul(sumW, sumL2), f32x4.mul(sumL, sumL));
      const okD = f32x4.gt(D, Z);
      if (!v128.any_true(okD)) continue;
      let thisScale = f32x4.div(f32x4.sub(f32x4.mul(sumW, sumXL), f32x4.mul(sumX, sumL)), D);
      let thisMin = f32x4.div(f32x4.sub(f32x4.mul(sumL2, sumX), f32x4.mul(sumL, sumXL)), D);
      const pos = f32x4.gt(thisMin, Z);
      thisMin = v128.bitselect(Z, thisMin, pos);
      thisScale = v128.bitselect(f32x4.div(sumXL, sumL2), thisScale, pos);
      let err = Z;
      for (let i = 0; i < n; i++) {
        const xi = v128.load(xp + <usize>i * st);
        let diff = f32x4.sub(f32x4.add(f32x4.mul(thisScale, f32x4.convert_i32x4_s(v128.load(ap + <usize>i * st))), thisMin), xi);
        diff = useMad ? f32x4.abs(diff) : f32x4.mul(diff, diff);
        err = f32x4.add(err, f32x4.mul(v128.load(wp + <usize>i * st), diff));
      }
      // Degenerate lanes compute garbage here; they must not adopt it.
      const better = v128.andnot(v128.and(okD, f32x4.lt(err, bestErr)), dead);
      if (!v128.any_true(better)) continue;
      for (let i = 0; i < n; i++) {
        const q = lp + <usize>i * st;
        v128.store(q, v128.bitselect(v128.load(ap + <usize>i * st), v128.load(q), better));
      }
      bestErr = v128.bitselect(err, bestErr, better);
      scale = v128.bitselect(thisScale, scale, better);
      mn = v128.bitselect(thisMin, mn, better);
    }
  }
  // Degenerate sub-blocks: codes 0, scale 0, min as found.
  if (v128.any_true(dead)) {
    for (let i = 0; i < n; i++) {
      const q = lp + <usize>i * st;
      v128.store(q, v128.andnot(v128.load(q), dead));
    }
    scale = v128.bitselect(Z, scale, dead);
  }
  v128.store(SC + g4, scale);
  v128.store(MN + g4, f32x4.neg(mn));
}

// make_qx_quants (rmse_type 1) for sub-blocks g..g+3 of n elements, weights x² or TW when useW.
// Codes (0 .. 2·nmax-1, or 0 for a negligible sub-block) go to TL, scales to SC.
function qxLanes(g: i32, S: i32, n: i32, nmax: i32, useW: bool): void {
  const st = <usize>S << 2;
  const g4 = <usize>g << 2;
  const xp = T + g4, wp = TW + g4, lp = TL + g4;
  const Z = f32x4.splat(0);
  const LO = i32x4.splat(-nmax), HI = i32x4.splat(nmax - 1), NM = i32x4.splat(nmax);
  let amax = Z, mx = Z;
  for (let i = 0; i < n; i++) {
    const xi = v128.load(xp + <usize>i * st);
    const ax = f32x4.abs(xi);
    const gt = f32x4.gt(ax, amax);
    amax = v128.bitselect(ax, amax, gt);
    mx = v128.bitselect(xi, mx, gt);
  }
  const dead = f32x4.lt(amax, f32x4.splat(GROUP_MAX_EPS));
  let iscale = f32x4.div(f32x4.splat(<f32>-nmax), mx);
  let sumlx = Z, suml2 = Z;
  for (let i = 0; i < n; i++) {
    const xi = v128.load(xp + <usize>i * st);
    const l = f32x4.convert_i32x4_s(i32x4.min_s(i32x4.max_s(nearestV(f32x4.mul(iscale, xi)), LO), HI));
    const w = useW ? v128.load(wp + <usize>i * st) : f32x4.mul(xi, xi);
    sumlx = f32x4.add(sumlx, f32x4.mul(f32x4.mul(w, xi), l));
    suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(w, l), l));
  }
  let scale = v128.bitselect(f32x4.div(sumlx, suml2), Z, f32x4.ne(suml2, Z));
  let best = f32x4.mul(scale, sumlx);
  let bestIscale = iscale;
  for (let is = -9; is <= 9; is++) {
    if (is == 0) continue;
    iscale = f32x4.div(f32x4.neg(f32x4.splat(<f32>nmax + TENTH * <f32>is)), mx);
    sumlx = Z; suml2 = Z;
    for (let i = 0; i < n; i++) {
      const xi = v128.load(xp + <usize>i * st);
      const l = f32x4.convert_i32x4_s(i32x4.min_s(i32x4.max_s(nearestV(f32x4.mul(iscale, xi)), LO), HI));
      const w = useW ? v128.load(wp + <usize>i * st) : f32x4.mul(xi, xi);
      sumlx = f32x4.add(sumlx, f32x4.mul(f32x4.mul(w, xi), l));
      suml2 = f32x4.add(suml2, f32x4.mul(f32x4.mul(w, l), l));
    }
    const take = v128.and(f32x4.gt(suml2, Z), f32x4.gt(f32x4.mul(sumlx, sumlx), f32x4.mul(best, suml2)));
    if (!v128.any_true(take)) continue;
    scale = v128.bitselect(f32x4.div(sumlx, suml2), scale, take);
    best = v128.bitselect(f32x4.mul(scale, sumlx), best, take);
    bestIscale = v128.bitselect(iscale, bestIscale, take);
  }
  // The codes ggml keeps are those of the last accepted candidate, a function of its iscale.
  for (let i = 0; i < n; i++) {
    const xi = v128.load(xp + <usize>i * st);
    const l = i32x4.add(i32x4.min_s(i32x4.max_s(nearestV(f32x4.mul(bestIscale, xi)), LO), HI), NM);
    v128.store(lp + <usize>i * st, v128.andnot(l, dead));
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

// block_q4_K { half d; half dmin; uint8 scales[12]; uint8 qs[128]; }
// block_q5_K { half d; half dmin; uint8 scales[12]; uint8 qh[32]; uint8 qs[128]; }
function q45_k(x: usize, y: usize, nb: i32, nmax: i32): void {
  const size: usize = nmax == 15 ? 144 : 176;
  for (let i = 0; i < nb; i++) {
    const b = x + (<usize>i << 10), o = y + <usize>i * size, so = o + 4;
    transpose(b, 8, 32);
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
    for (let g = 0; g < 8; g += 4) {
      if (nmax == 15) qkxLanes(g, 8, 32, 15, -1, TENTH, 20, false, false);
      else qkxLanes(g, 8, 32, 31, -0.5, TENTH, 15, false, false);
    }
    untransposeCodes(8, 32);
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
    const dAll = putF16(o, maxScale / 63);
    const mAll = putF16(o + 2, maxMin / 63);
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

export function q4_k(x: usize, y: usize, nb: i32): void {
  q45_k(x, y, nb, 15);
}

export function q5_k(x: usize, y: usize, nb: i32): void {
  q45_k(x, y, nb, 31);
}

// block_q6_K { uint8 ql[128]; uint8 qh[64]; int8 scales[16]; half d; }
export function q6_k(x: usize, y: usize, nb: i32): void {
  for (let i = 0; i < nb; i++) {
    const b = x + (<usize>i << 10), o = y + <usize>i * 210;
    transpose(b, 16, 16);
    for (let g = 0; g < 16; g += 4) qxLanes(g, 16, 16, 32, false);
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
export function encode(type: i32, x: usize, n: i32, y: usize): i32 {
  const bad = firstNonFinite(x, n);
  if (bad >= 0) return bad;
  switch (type) {
    case 8: q8_0(x, y, n >> 5); break;
    case 2: q4_0(x, y, n >> 5); break;
    case 3: q4_1(x, y, n >> 5); break;
    case 6: q5_0(x, y, n >> 5); break;
    case 7: q5_1(x, y, n >> 5); break;
    case 12: q4_k(x, y, n >> 8); break;
    case 13: q5_k(x, y, n >> 8); break;
    case 14: q6_k(x, y, n >> 8); break;
    default: return -3;
  }
  return -1;
}

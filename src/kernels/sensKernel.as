// AssemblyScript source of the WebAssembly SIMD kernel of weight-space
// sensitivity (src/kernels/sensKernel.ts loads it; its TypeScript twin is
// src/kernels/sensKernelRef.ts). Rebuild the embedded binary with
// `node src/kernels/build.mjs sensKernel` after editing.
//
// Input: `rows` lines of `rowLen` floats at x, each line cut into groups of
// `g` (the last one of a line shorter when g does not divide rowLen). For
// each group, in line order, two float64 go to `out`:
//   out[2k]     squared round-trip error with the range of the group's min-max
//   out[2k + 1] least squared error over the clip ratios
//               r_j = 1 - j(1 - minRatio)/(steps - 1), j = 0..steps-1, first minimum kept
// (MseCalibrator's search; r_0 = 1, so out[2k] is its first candidate). No
// codes or dequantized values are written: the sensitivity table needs errors only.
//
// The rules are those of the reference codecs in src/quant/rtn.ts, and every
// error is summed as there: float64 over four interleaved lanes (element i of
// the group into lane i & 3), total (l0 + l1) + (l2 + l3).
// Inputs are finite (the caller checks), so pmin/pmax clamp exactly; adding
// 1.5·2^23 rounds half to even when |v| <= 2^22 (values are clamped to that first).

const MAGIC: f32 = 12582912.0; // 1.5 * 2^23
const BIG: f32 = 4194304.0; // 2^22
const FLT_MIN: f32 = 1.1754943508222875e-38;

@inline
function ratioOf(j: i32, steps: i32, minRatio: f64): f64 {
  return steps == 1 ? 1.0 : 1 - (<f64>j * (1 - minRatio)) / <f64>(steps - 1);
}

// Lane sums: the two f64x2 accumulators hold lanes (0, 1) and (2, 3).
@inline
function accumulate(acc: v128, d: v128, v: v128): v128 {
  const r = f64x2.sub(f64x2.promote_low_f32x4(d), f64x2.promote_low_f32x4(v));
  return f64x2.add(acc, f64x2.mul(r, r));
}

@inline
function high(v: v128): v128 {
  return i8x16.shuffle(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
}

// min and max of a group (finite values).
@inline
function minMax(xb: usize, n: i32, out: usize): void {
  let mn = f32x4.splat(Infinity);
  let mx = f32x4.splat(-Infinity);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(xb + (<usize>i << 2));
    mn = f32x4.pmin(mn, v);
    mx = f32x4.pmax(mx, v);
  }
  let lo: f32 = min(min(f32x4.extract_lane(mn, 0), f32x4.extract_lane(mn, 1)), min(f32x4.extract_lane(mn, 2), f32x4.extract_lane(mn, 3)));
  let hi: f32 = max(max(f32x4.extract_lane(mx, 0), f32x4.extract_lane(mx, 1)), max(f32x4.extract_lane(mx, 2), f32x4.extract_lane(mx, 3)));
  for (; i < n; i++) {
    const v = load<f32>(xb + (<usize>i << 2));
    lo = min(lo, v);
    hi = max(hi, v);
  }
  store<f32>(out, lo);
  store<f32>(out, hi, 4);
}

// ---------------------------------------------------------------- integer grids

// Squared error of one group on an integer grid: q = clamp(nearest(f32(v / s)) + zp), d = f32((q - zp) * s).
@inline
function sseInt(xb: usize, n: i32, s: f32, zp: f32, qmin: f32, qmax: f32): f64 {
  const sv = f32x4.splat(s);
  const zv = f32x4.splat(zp);
  const lov = f32x4.splat(qmin);
  const hiv = f32x4.splat(qmax);
  const mv = f32x4.splat(MAGIC);
  const bigLo = f32x4.splat(-BIG);
  const bigHi = f32x4.splat(BIG);
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(xb + (<usize>i << 2));
    const t = f32x4.pmin(f32x4.pmax(f32x4.div(v, sv), bigLo), bigHi);
    const q = f32x4.pmin(f32x4.pmax(f32x4.add(f32x4.sub(f32x4.add(t, mv), mv), zv), lov), hiv);
    const d = f32x4.mul(f32x4.sub(q, zv), sv);
    acc01 = accumulate(acc01, d, v);
    acc23 = accumulate(acc23, high(d), high(v));
  }
  let l0 = f64x2.extract_lane(acc01, 0);
  let l1 = f64x2.extract_lane(acc01, 1);
  let l2 = f64x2.extract_lane(acc23, 0);
  const l3 = f64x2.extract_lane(acc23, 1);
  for (let lane = 0; i < n; i++, lane++) {
    const v = load<f32>(xb + (<usize>i << 2));
    const q: f32 = min(max(nearest(v / s) + zp, qmin), qmax);
    const r = <f64>((q - zp) * s) - <f64>v;
    if (lane == 0) l0 += r * r;
    else if (lane == 1) l1 += r * r;
    else l2 += r * r;
  }
  return (l0 + l1) + (l2 + l3);
}

// Integer grids (intCodec of rtn.ts): asymmetric (asym 1) from the clipped
// min/max widened to include 0, s = f32(f32(hi - lo) / (qmax - qmin)),
// zp = clamp(nearest(f32(qmin - f32(lo / s)))); symmetric from max|x|,
// s = f32(a * num / den), zp = mid. A scale below FLT_MIN becomes 1 (zp the grid value nearest 0 when asymmetric).
export function sensInt(x: usize, rows: i32, rowLen: i32, g: i32, out: usize, steps: i32, minRatio: f64,
                        qmin: f32, qmax: f32, asym: i32, mid: f32, num: f64, den: f64, scratch: usize): void {
  let k: usize = 0;
  for (let row = 0; row < rows; row++) {
    for (let g0 = 0; g0 < rowLen; g0 += g) {
      const n = min(g, rowLen - g0);
      const xb = x + ((<usize>row * <usize>rowLen + <usize>g0) << 2);
      minMax(xb, n, scratch);
      const lo0 = <f64>load<f32>(scratch);
      const hi0 = <f64>load<f32>(scratch, 4);
      const a0 = max(-lo0, hi0);
      let first: f64 = 0;
      let best: f64 = Infinity;
      for (let j = 0; j < steps; j++) {
        const r = ratioOf(j, steps, minRatio);
        let s: f32;
        let zp: f32;
        if (asym) {
          let lo = lo0 * r;
          let hi = hi0 * r;
          if (lo > 0) lo = 0;
          if (hi < 0) hi = 0;
          s = <f32>(<f64><f32>(hi - lo) / <f64>(qmax - qmin));
          if (!(s >= FLT_MIN)) {
            s = 1;
            zp = qmin > 0 ? qmin : qmax < 0 ? qmax : 0;
          } else {
            zp = min(max(nearest(<f32>(<f64>qmin - <f64><f32>(lo / <f64>s))), qmin), qmax);
          }
        } else {
          s = <f32>((a0 * r * num) / den);
          if (!(s >= FLT_MIN)) s = 1;
          zp = mid;
        }
        const e = sseInt(xb, n, s, zp, qmin, qmax);
        if (j == 0) first = e;
        if (e < best) best = e;
      }
      store<f64>(out + (k << 4), first);
      store<f64>(out + (k << 4), best, 8);
      k++;
    }
  }
}

// ---------------------------------------------------------------- NF4

// Squared error of one group in NF4 with scale s: y = f32(v * f32(1 / s)) takes
// code c = the number of thresholds y lies strictly above, d = f32(level[c] * s).
// tables: 16 levels (f32), 15 thresholds (f32) at +64, and at +128 the levels
// as four 16-byte planes (plane b holds byte b of each level) for i8x16.swizzle.
@inline
function sseNf4(xb: usize, n: i32, s: f32, tables: usize): f64 {
  const inv: f32 = <f32>1.0 / s;
  const iv = f32x4.splat(inv);
  const sv = f32x4.splat(s);
  const t = tables + 64;
  const T0 = v128.load32_splat(t), T1 = v128.load32_splat(t, 4), T2 = v128.load32_splat(t, 8), T3 = v128.load32_splat(t, 12);
  const T4 = v128.load32_splat(t, 16), T5 = v128.load32_splat(t, 20), T6 = v128.load32_splat(t, 24), T7 = v128.load32_splat(t, 28);
  const T8 = v128.load32_splat(t, 32), T9 = v128.load32_splat(t, 36), T10 = v128.load32_splat(t, 40), T11 = v128.load32_splat(t, 44);
  const T12 = v128.load32_splat(t, 48), T13 = v128.load32_splat(t, 52), T14 = v128.load32_splat(t, 56);
  const P0 = v128.load(tables + 128), P1 = v128.load(tables + 144), P2 = v128.load(tables + 160), P3 = v128.load(tables + 176);
  const B0 = i32x4.splat(0xff), B1 = i32x4.splat(0xff00), B2 = i32x4.splat(0xff0000), B3 = i32x4.splat(<i32>0xff000000);
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(xb + (<usize>i << 2));
    const y = f32x4.mul(v, iv);
    // A comparison is -1 where true: the sum of the fifteen is minus the code.
    const c0 = i32x4.add(i32x4.add(f32x4.gt(y, T0), f32x4.gt(y, T1)), i32x4.add(f32x4.gt(y, T2), f32x4.gt(y, T3)));
    const c1 = i32x4.add(i32x4.add(f32x4.gt(y, T4), f32x4.gt(y, T5)), i32x4.add(f32x4.gt(y, T6), f32x4.gt(y, T7)));
    const c2 = i32x4.add(i32x4.add(f32x4.gt(y, T8), f32x4.gt(y, T9)), i32x4.add(f32x4.gt(y, T10), f32x4.gt(y, T11)));
    const c3 = i32x4.add(i32x4.add(f32x4.gt(y, T12), f32x4.gt(y, T13)), f32x4.gt(y, T14));
    const code = i32x4.neg(i32x4.add(i32x4.add(c0, c1), i32x4.add(c2, c3)));
    // The code (0..15) spread to every byte of its lane; each byte of the level looked up in its plane.
    const idx = i8x16.swizzle(code, v128(0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12));
    const l = v128.or(v128.or(v128.and(i8x16.swizzle(P0, idx), B0), v128.and(i8x16.swizzle(P1, idx), B1)),
                      v128.or(v128.and(i8x16.swizzle(P2, idx), B2), v128.and(i8x16.swizzle(P3, idx), B3)));
    const d = f32x4.mul(l, sv);
    acc01 = accumulate(acc01, d, v);
    acc23 = accumulate(acc23, high(d), high(v));
  }
  let l0 = f64x2.extract_lane(acc01, 0);
  let l1 = f64x2.extract_lane(acc01, 1);
  let l2 = f64x2.extract_lane(acc23, 0);
  const l3 = f64x2.extract_lane(acc23, 1);
  for (let lane = 0; i < n; i++, lane++) {
    const v = load<f32>(xb + (<usize>i << 2));
    const y = v * inv;
    let c = 0;
    for (let k = 0; k < 15; k++) if (y > load<f32>(t + (<usize>k << 2))) c = k + 1;
    const r = <f64>(load<f32>(tables + (<usize>c << 2)) * s) - <f64>v;
    if (lane == 0) l0 += r * r;
    else if (lane == 1) l1 += r * r;
    else l2 += r * r;
  }
  return (l0 + l1) + (l2 + l3);
}

// NF4 (nf4Codec of rtn.ts): s = f32(max|x| · r), 1 when not positive.
export function sensNf4(x: usize, rows: i32, rowLen: i32, g: i32, out: usize, steps: i32, minRatio: f64, tables: usize, scratch: usize): void {
  for (let c = 0; c < 16; c++) {
    for (let b = 0; b < 4; b++) store<u8>(tables + 128 + (<usize>b << 4) + <usize>c, load<u8>(tables + (<usize>c << 2) + <usize>b));
  }
  let k: usize = 0;
  for (let row = 0; row < rows; row++) {
    for (let g0 = 0; g0 < rowLen; g0 += g) {
      const n = min(g, rowLen - g0);
      const xb = x + ((<usize>row * <usize>rowLen + <usize>g0) << 2);
      minMax(xb, n, scratch);
      const a0 = max(max(-<f64>load<f32>(scratch), <f64>load<f32>(scratch, 4)), 0);
      let first: f64 = 0;
      let best: f64 = Infinity;
      for (let j = 0; j < steps; j++) {
        let s = <f32>(a0 * ratioOf(j, steps, minRatio));
        if (!(s > 0)) s = 1;
        const e = sseNf4(xb, n, s, tables);
        if (j == 0) first = e;
        if (e < best) best = e;
      }
      store<f64>(out + (k << 4), first);
      store<f64>(out + (k << 4), best, 8);
      k++;
    }
  }
}

// ---------------------------------------------------------------- FP8 E4M3

// |y| rounded to E4M3 (half to even, saturating at 448): below 2^-6 to a
// multiple of 2^-9 (adding 2^14 leaves exactly that ulp), above it to three
// mantissa bits (the usual round-to-nearest-even on the bit pattern).
@inline
function e4m3Mag(a: v128): v128 {
  const c = f32x4.splat(16384.0);
  const sub = f32x4.sub(f32x4.add(a, c), c);
  const odd = v128.and(i32x4.shr_u(a, 20), i32x4.splat(1));
  const nrm = v128.and(i32x4.add(i32x4.add(a, i32x4.splat(0x7ffff)), odd), i32x4.splat(<i32>0xfff00000));
  const m = v128.bitselect(sub, nrm, f32x4.lt(a, f32x4.splat(0.015625)));
  return f32x4.pmin(m, f32x4.splat(448.0));
}

@inline
function e4m3MagScalar(a: f32): f32 {
  if (a < 0.015625) return (a + 16384.0) - 16384.0;
  const b = reinterpret<u32>(a);
  const m = reinterpret<f32>((b + 0x7ffff + ((b >> 20) & 1)) & 0xfff00000);
  return min(m, <f32>448.0);
}

@inline
function sseFp8(xb: usize, n: i32, s: f32): f64 {
  const sv = f32x4.splat(s);
  const absMask = i32x4.splat(0x7fffffff);
  const signMask = i32x4.splat(<i32>0x80000000);
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const v = v128.load(xb + (<usize>i << 2));
    const y = f32x4.div(v, sv);
    const m = e4m3Mag(v128.and(y, absMask));
    const d = f32x4.mul(v128.or(m, v128.and(y, signMask)), sv);
    acc01 = accumulate(acc01, d, v);
    acc23 = accumulate(acc23, high(d), high(v));
  }
  let l0 = f64x2.extract_lane(acc01, 0);
  let l1 = f64x2.extract_lane(acc01, 1);
  let l2 = f64x2.extract_lane(acc23, 0);
  const l3 = f64x2.extract_lane(acc23, 1);
  for (let lane = 0; i < n; i++, lane++) {
    const v = load<f32>(xb + (<usize>i << 2));
    const y = v / s;
    const r = <f64>(copysign<f32>(e4m3MagScalar(abs(y)), y) * s) - <f64>v;
    if (lane == 0) l0 += r * r;
    else if (lane == 1) l1 += r * r;
    else l2 += r * r;
  }
  return (l0 + l1) + (l2 + l3);
}

// FP8 E4M3 with a float scale (minifloatCodec of rtn.ts): s = f32(max|x| · r / 448), 1 when not positive.
export function sensFp8e4m3(x: usize, rows: i32, rowLen: i32, g: i32, out: usize, steps: i32, minRatio: f64, scratch: usize): void {
  let k: usize = 0;
  for (let row = 0; row < rows; row++) {
    for (let g0 = 0; g0 < rowLen; g0 += g) {
      const n = min(g, rowLen - g0);
      const xb = x + ((<usize>row * <usize>rowLen + <usize>g0) << 2);
      minMax(xb, n, scratch);
      const a0 = max(max(-<f64>load<f32>(scratch), <f64>load<f32>(scratch, 4)), 0);
      let first: f64 = 0;
      let best: f64 = Infinity;
      for (let j = 0; j < steps; j++) {
        let s = <f32>((a0 * ratioOf(j, steps, minRatio)) / 448.0);
        if (!(s > 0)) s = 1;
        const e = sseFp8(xb, n, s);
        if (j == 0) first = e;
        if (e < best) best = e;
      }
      store<f64>(out + (k << 4), first);
      store<f64>(out + (k << 4), best, 8);
      k++;
    }
  }
}

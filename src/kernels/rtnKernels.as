// AssemblyScript source of the WebAssembly SIMD fast path for symmetric
// signed-integer round-to-nearest (src/kernels/rtnKernels.ts loads it).
// Not compiled by tsc (AssemblyScript types); rebuild the embedded binary
// with `node src/kernels/build.mjs rtnKernels` after editing.
//
// Bit-exact twin of the TypeScript reference in src/quant/rtn.ts:
//   scale = f32((a * num) / den) in f64 (a = max |x| of the group), 1 if below FLT_MIN
//   q     = clamp(nearest(f32(x / scale)), qmin, qmax)    (f32x4.div is IEEE single division;
//                                                           half to even, see MAGIC below)
//   deq   = f32(q * scale)

// Why the hot loops avoid f32x4.min/max/nearest and i32x4.trunc_sat: their
// wasm semantics (NaN propagation, -0 < +0, saturation) cost V8 several x86
// instructions each and made this kernel run at ~2 GB/s. Inputs reaching the
// encoders are finite (absMax rejects NaN/Inf first) and scales are positive
// and finite, so pmin/pmax (one minps/maxps each) clamp exactly, and adding
// 1.5·2^23 rounds half to even with the integer landing in the low mantissa
// bits (|v| <= 2^22 here), which replaces nearest + trunc_sat. Clamping before
// rounding gives the same integer as after, because the bounds are integers.
const MAGIC: f32 = 12582912.0; // 1.5 * 2^23
const MAGIC_BITS: i32 = 0x4B400000;

// Codes of 4 lanes: clamp(round_half_even(f32(x / s)), lo, hi) as i32.
@inline
function codes4(v: v128, sv: v128, lov: v128, hiv: v128, mv: v128, mbits: v128): v128 {
  return i32x4.sub(f32x4.add(f32x4.pmin(f32x4.pmax(f32x4.div(v, sv), lov), hiv), mv), mbits);
}

// Encode one group of g floats at xb with scale s into int8 codes at cb and,
// when db is not 0, float32 dequantized values at db.
@inline
function encodeGroup(xb: usize, g: i32, s: f32, cb: usize, db: usize, qmin: f32, qmax: f32): void {
  const sv = f32x4.splat(s);
  const lov = f32x4.splat(qmin);
  const hiv = f32x4.splat(qmax);
  const mv = f32x4.splat(MAGIC);
  const mbits = i32x4.splat(MAGIC_BITS);
  let i = 0;
  if (db == 0) {
    for (; i + 16 <= g; i += 16) {
      const p = xb + (<usize>i << 2);
      const i0 = codes4(v128.load(p), sv, lov, hiv, mv, mbits);
      const i1 = codes4(v128.load(p, 16), sv, lov, hiv, mv, mbits);
      const i2 = codes4(v128.load(p, 32), sv, lov, hiv, mv, mbits);
      const i3 = codes4(v128.load(p, 48), sv, lov, hiv, mv, mbits);
      v128.store(cb + i, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(i0, i1), i16x8.narrow_i32x4_s(i2, i3)));
    }
  } else {
    for (; i + 16 <= g; i += 16) {
      const p = xb + (<usize>i << 2);
      const i0 = codes4(v128.load(p), sv, lov, hiv, mv, mbits);
      const i1 = codes4(v128.load(p, 16), sv, lov, hiv, mv, mbits);
      const i2 = codes4(v128.load(p, 32), sv, lov, hiv, mv, mbits);
      const i3 = codes4(v128.load(p, 48), sv, lov, hiv, mv, mbits);
      // Dequantize from the integers: a code 0 from a small negative x must give +0, as ORT does.
      const d = db + (<usize>i << 2);
      v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i0), sv));
      v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i1), sv), 16);
      v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i2), sv), 32);
      v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i3), sv), 48);
      v128.store(cb + i, i8x16.narrow_i16x8_s(i16x8.narrow_i32x4_s(i0, i1), i16x8.narrow_i32x4_s(i2, i3)));
    }
  }
  for (; i < g; i++) {
    const q = <i32>min(max(nearest(load<f32>(xb + (<usize>i << 2)) / s), qmin), qmax);
    store<i8>(cb + i, <i8>q);
    if (db != 0) store<f32>(db + (<usize>i << 2), <f32>q * s);
  }
}

// max |x| over one group; NaN if the group holds a NaN, Inf if it holds ±Inf.
// Compared as integers: with the sign bit cleared, the bit patterns of
// non-negative floats order like their values, NaN patterns lie above +Inf,
// and u32 max is one instruction where f32x4.max is several.
@inline
function absMax(xb: usize, g: i32): f32 {
  const mask = i32x4.splat(0x7fffffff);
  let m0 = i32x4.splat(0);
  let m1 = m0;
  let m2 = m0;
  let m3 = m0;
  let i = 0;
  for (; i + 16 <= g; i += 16) {
    const p = xb + (<usize>i << 2);
    m0 = i32x4.max_u(m0, v128.and(v128.load(p), mask));
    m1 = i32x4.max_u(m1, v128.and(v128.load(p, 16), mask));
    m2 = i32x4.max_u(m2, v128.and(v128.load(p, 32), mask));
    m3 = i32x4.max_u(m3, v128.and(v128.load(p, 48), mask));
  }
  const m = i32x4.max_u(i32x4.max_u(m0, m1), i32x4.max_u(m2, m3));
  let a: u32 = max(max(<u32>i32x4.extract_lane(m, 0), <u32>i32x4.extract_lane(m, 1)),
                   max(<u32>i32x4.extract_lane(m, 2), <u32>i32x4.extract_lane(m, 3)));
  for (; i < g; i++) a = max(a, load<u32>(xb + (<usize>i << 2)) & 0x7fffffff);
  return reinterpret<f32>(a);
}

@inline
function scaleOf(a: f64, num: f64, den: f64): f32 {
  const s = <f32>((a * num) / den);
  return s >= <f32>1.1754943508222875e-38 ? s : 1;
}

// Sum of squared round-trip errors of one group with scale s, in f64, over
// four interleaved lanes (element i adds to lane i & 3), total (l0 + l1) + (l2 + l3):
// the order the TypeScript reference (sseInt in rtn.ts) uses, so sums agree bit for bit.
@inline
function sseGroup(xb: usize, g: i32, s: f32, qmin: f32, qmax: f32): f64 {
  const sv = f32x4.splat(s);
  const lov = f32x4.splat(qmin);
  const hiv = f32x4.splat(qmax);
  const mv = f32x4.splat(MAGIC);
  let acc01 = f64x2.splat(0);
  let acc23 = f64x2.splat(0);
  let i = 0;
  for (; i + 4 <= g; i += 4) {
    const v = v128.load(xb + (<usize>i << 2));
    const q = f32x4.sub(f32x4.add(f32x4.pmin(f32x4.pmax(f32x4.div(v, sv), lov), hiv), mv), mv);
    const d = f32x4.mul(q, sv);
    const vhi = i8x16.shuffle(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    const dhi = i8x16.shuffle(d, d, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
    const r01 = f64x2.sub(f64x2.promote_low_f32x4(d), f64x2.promote_low_f32x4(v));
    const r23 = f64x2.sub(f64x2.promote_low_f32x4(dhi), f64x2.promote_low_f32x4(vhi));
    acc01 = f64x2.add(acc01, f64x2.mul(r01, r01));
    acc23 = f64x2.add(acc23, f64x2.mul(r23, r23));
  }
  let l0 = f64x2.extract_lane(acc01, 0);
  let l1 = f64x2.extract_lane(acc01, 1);
  let l2 = f64x2.extract_lane(acc23, 0);
  const l3 = f64x2.extract_lane(acc23, 1);
  for (let lane = 0; i < g; i++, lane++) {
    const v = load<f32>(xb + (<usize>i << 2));
    const q = min(max(nearest(v / s), qmin), qmax);
    const r = <f64>(q * s) - <f64>v;
    if (lane == 0) l0 += r * r;
    else if (lane == 1) l1 += r * r;
    else l2 += r * r;
  }
  return (l0 + l1) + (l2 + l3);
}

// Quantize `n` floats at `x` in contiguous groups of `g` (n a multiple of g).
// Writes int8 codes at `codes`, float32 dequantized values at `deq` (none
// when deq is 0), one float32 scale per group at `scales`. Returns -1 on success, or the index of
// the first group holding NaN or ±Inf (nothing after it is written).
export function quantSymInt(x: usize, n: i32, g: i32, codes: usize, deq: usize, scales: usize,
                            num: f64, den: f64, qmin: f32, qmax: f32): i32 {
  const groups = n / g;
  for (let k = 0; k < groups; k++) {
    const off = <usize>k * <usize>g;
    const xb = x + (off << 2);
    const a = absMax(xb, g);
    if (!(a - a == 0)) return k;
    const s = scaleOf(<f64>a, num, den);
    store<f32>(scales + (<usize>k << 2), s);
    encodeGroup(xb, g, s, codes + off, deq == 0 ? <usize>0 : deq + (off << 2), qmin, qmax);
  }
  return -1;
}

// As quantSymInt, but each group's range is clipped to the ratio r_k of its
// max |x| (r_k = 1 - k(1 - minRatio)/(steps - 1), k = 0..steps-1) with the
// least squared error, first minimum kept: MseCalibrator's search.
export function quantSymIntMse(x: usize, n: i32, g: i32, codes: usize, deq: usize, scales: usize,
                               num: f64, den: f64, qmin: f32, qmax: f32, steps: i32, minRatio: f64): i32 {
  const groups = n / g;
  for (let k = 0; k < groups; k++) {
    const off = <usize>k * <usize>g;
    const xb = x + (off << 2);
    const a = absMax(xb, g);
    if (!(a - a == 0)) return k;
    let best = Infinity;
    let bestS: f32 = 1;
    for (let j = 0; j < steps; j++) {
      const r = steps == 1 ? 1.0 : 1 - (<f64>j * (1 - minRatio)) / <f64>(steps - 1);
      const s = scaleOf(<f64>a * r, num, den);
      const e = sseGroup(xb, g, s, qmin, qmax);
      if (e < best) {
        best = e;
        bestS = s;
      }
    }
    store<f32>(scales + (<usize>k << 2), bestS);
    encodeGroup(xb, g, bestS, codes + off, deq == 0 ? <usize>0 : deq + (off << 2), qmin, qmax);
  }
  return -1;
}

// Integer RTN with a zero point, for the cases quantSymInt does not cover:
// unsigned symmetric grids (zero point `mid`) and asymmetric grids (integer
// zero point per group from the group's min/max, both widened to include 0),
// signed or unsigned codes. Same rules as intCodec in rtn.ts:
//   asymmetric: s = (hi - lo) / (qmax - qmin) and zp = clamp(nearest(qmin - lo / s)), all in f32
//               (s below FLT_MIN: s = 1, zp = the grid value nearest 0)
//   symmetric:  s = f32(max|x| * num / den), zp = mid
//   q = clamp(nearest(f32(x / s)) + zp), deq = f32((q - zp) * s)
// Zero points go to `zps` (i32 per group); deq 0 skips the dequantized values. Returns -1, or the first group with NaN/Inf.
export function quantIntZp(x: usize, n: i32, g: i32, codes: usize, deq: usize, scales: usize, zps: usize,
                           num: f64, den: f64, qmin: f32, qmax: f32, asym: i32, mid: f32, unsignedCodes: i32): i32 {
  const groups = n / g;
  const lov = f32x4.splat(qmin);
  const hiv = f32x4.splat(qmax);
  for (let k = 0; k < groups; k++) {
    const off = <usize>k * <usize>g;
    const xb = x + (off << 2);
    let s: f32;
    let zp: f32;
    if (asym) {
      let mn = f32x4.splat(0);
      let mx = f32x4.splat(0);
      let i = 0;
      for (; i + 4 <= g; i += 4) {
        const v = v128.load(xb + (<usize>i << 2));
        mn = f32x4.min(mn, v);
        mx = f32x4.max(mx, v);
      }
      let lo: f32 = min(min(f32x4.extract_lane(mn, 0), f32x4.extract_lane(mn, 1)), min(f32x4.extract_lane(mn, 2), f32x4.extract_lane(mn, 3)));
      let hi: f32 = max(max(f32x4.extract_lane(mx, 0), f32x4.extract_lane(mx, 1)), max(f32x4.extract_lane(mx, 2), f32x4.extract_lane(mx, 3)));
      for (; i < g; i++) {
        const v = load<f32>(xb + (<usize>i << 2));
        lo = min(lo, v);
        hi = max(hi, v);
      }
      const span: f32 = hi - lo;
      if (!(span - span == 0)) return k;
      s = span / (qmax - qmin);
      if (!(s >= <f32>1.1754943508222875e-38)) {
        s = 1;
        zp = qmin > 0 ? qmin : qmax < 0 ? qmax : 0;
      } else {
        zp = min(max(nearest(qmin - lo / s), qmin), qmax);
      }
    } else {
      const a = absMax(xb, g);
      if (!(a - a == 0)) return k;
      s = scaleOf(<f64>a, num, den);
      zp = mid;
    }
    store<f32>(scales + (<usize>k << 2), s);
    store<i32>(zps + (<usize>k << 2), <i32>zp);
    const sv = f32x4.splat(s);
    const zv = f32x4.splat(zp);
    const zi = i32x4.splat(<i32>zp);
    const mv = f32x4.splat(MAGIC);
    const mbits = i32x4.splat(MAGIC_BITS);
    // |x / s| stays far below 2^22 with these scales, but clamp to ±2^22 anyway so the
    // magic-number rounding is exact whatever the input; the final clamp to the grid absorbs it.
    const bigLo = f32x4.splat(-4194304.0);
    const bigHi = f32x4.splat(4194304.0);
    const cb = codes + off;
    const db: usize = deq == 0 ? 0 : deq + (off << 2);
    let i = 0;
    for (; i + 16 <= g; i += 16) {
      const p = xb + (<usize>i << 2);
      // nearest(x / s) + zp, then clamp: the zero point is added after rounding, as in the reference.
      const i0 = i32x4.sub(f32x4.add(f32x4.pmin(f32x4.pmax(f32x4.add(f32x4.sub(f32x4.add(f32x4.pmin(f32x4.pmax(f32x4.div(v128.load(p), sv), bigLo), bigHi), mv), mv), zv), lov), hiv), mv), mbits);
      const i1 = i32x4.sub(f32x4.add(f32x4.pmin(f32x4.pmax(f32x4.add(f32x4.sub(f32x4.add(f32x4.pmin(f32x4.pmax(f32x4.div(v128.load(p, 16), sv), bigLo), bigHi), mv), mv), zv), lov), hiv), mv), mbits);
      const i2 = i32x4.sub(f32x4.add(f32x4.pmin(f32x4.pmax(f32x4.add(f32x4.sub(f32x4.add(f32x4.pmin(f32x4.pmax(f32x4.div(v128.load(p, 32), sv), bigLo), bigHi), mv), mv), zv), lov), hiv), mv), mbits);
      const i3 = i32x4.sub(f32x4.add(f32x4.pmin(f32x4.pmax(f32x4.add(f32x4.sub(f32x4.add(f32x4.pmin(f32x4.pmax(f32x4.div(v128.load(p, 48), sv), bigLo), bigHi), mv), mv), zv), lov), hiv), mv), mbits);
      if (db != 0) {
        const d = db + (<usize>i << 2);
        v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i0, zi)), sv));
        v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i1, zi)), sv), 16);
        v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i2, zi)), sv), 32);
        v128.store(d, f32x4.mul(f32x4.convert_i32x4_s(i32x4.sub(i3, zi)), sv), 48);
      }
      const lo16 = i16x8.narrow_i32x4_s(i0, i1);
      const hi16 = i16x8.narrow_i32x4_s(i2, i3);
      v128.store(cb + i, unsignedCodes ? i8x16.narrow_i16x8_u(lo16, hi16) : i8x16.narrow_i16x8_s(lo16, hi16));
    }
    for (; i < g; i++) {
      const q = <i32>min(max(nearest(load<f32>(xb + (<usize>i << 2)) / s) + zp, qmin), qmax);
      store<i8>(cb + i, <i8>q);
      if (db != 0) store<f32>(db + (<usize>i << 2), <f32>(q - <i32>zp) * s);
    }
  }
  return -1;
}

// Pack n codes (n even) at `codes` two per byte, low nibble first (ONNX
// int4/uint4), in place: byte j goes to codes + j. The writes trail the reads,
// so one buffer serves both and the packed bytes leave the module in one copy.
export function pack4(codes: usize, n: i32): void {
  const low = i16x8.splat(0x0f0f);
  const byteMask = i16x8.splat(0x00ff);
  let i = 0;
  for (; i + 32 <= n; i += 32) {
    const p = codes + <usize>i;
    // Each 16-bit lane holds codes (c0, c1); c0 | c1 << 4 is its low byte after w | w >> 4.
    const w0 = v128.and(v128.load(p), low);
    const w1 = v128.and(v128.load(p, 16), low);
    const r0 = v128.and(v128.or(w0, i16x8.shr_u(w0, 4)), byteMask);
    const r1 = v128.and(v128.or(w1, i16x8.shr_u(w1, 4)), byteMask);
    v128.store(codes + (<usize>i >> 1), i8x16.narrow_i16x8_u(r0, r1));
  }
  for (; i < n; i += 2) {
    store<u8>(codes + (<usize>i >> 1), (load<u8>(codes + <usize>i) & 15) | ((load<u8>(codes + <usize>i + 1) & 15) << 4));
  }
}

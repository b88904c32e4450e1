// Hot loops of the statistics pass, compiled with AssemblyScript to WASM SIMD.
// Every function works on raw pointers into linear memory laid out by the
// TypeScript host (src/analysis/kernels.ts); nothing here allocates.
// src/analysis/kernelsTs.ts is the plain TypeScript twin: both must produce
// bit-identical results, so accumulation orders here are part of the contract:
// f64 sums keep four lane accumulators (element i goes to lane i % 4) and are
// combined as (s0 + s1) + (s2 + s3) by the host.

export function heapBase(): usize {
  return __heap_base;
}

// One pass over a chunk. out (f64[16]): 0 finite, 2 zeros, 3 nearZeros,
// 4 min, 5 max, 8..9 sum(d), 10..11 sum(d^2), 12..13 sum(d^3), 14..15 sum(d^4)
// (two f64 lanes each), where d = (x - shift) * scale over finite x; the host
// picks the power-of-two scale that keeps d^4 clear of float32 overflow and
// underflow, and divides it out exactly. It also counts
// every x in keys (u32[65536]) under its top 16 bits (sign, exponent, 7
// mantissa bits): the buckets the host derives the log histogram and the
// percentile ranks from; keys with an all-ones exponent (NaN, ±Inf) are
// dropped by the host. NaN is not counted here: the host counts it in the rare
// chunks where finite < n.
// Powers are summed in float32 over blocks of 64 elements (16 per f32x4 lane,
// each lane sequential), and each block's four lanes go into the two f64
// lanes as (l0 + l2, l1 + l3). The host picks a float32 shift near the mean
// (and redoes a chunk whose mean is far from it), so the block sums stay free
// of cancellation; the error bound is in docs/statistics-engine.md. Non-finite
// lanes are replaced by the shift itself, which makes their d exactly 0.
// Elements past the last whole group of four are summed the same way, lane
// i & 3, in the final block.
// momentsFast assumes every element is finite (no masking, twice as fast):
// the host checks its min, max and sums, and runs `moments` on the rare
// chunk that holds NaN or ±Inf. Both give identical results on finite data.
export function moments(p: usize, n: i32, eps: f32, shift: f32, scale: f32, out: usize, keys: usize): void {
  momentsImpl(p, n, eps, shift, scale, out, keys, true);
}
export function momentsFast(p: usize, n: i32, eps: f32, shift: f32, scale: f32, out: usize, keys: usize): void {
  momentsImpl(p, n, eps, shift, scale, out, keys, false);
}

// @ts-ignore: decorator
@inline
function momentsImpl(p: usize, n: i32, eps: f32, shift: f32, scale: f32, out: usize, keys: usize, masked: bool): void {
  const SC = f32x4.splat(scale);
  const ABS = i32x4.splat(0x7fffffff);
  const INFB = i32x4.splat(0x7f800000);
  const EPS = f32x4.splat(eps);
  const ZERO = f32x4.splat(0);
  const SH = f32x4.splat(shift);
  let cnt = i32x4.splat(0);
  let zer = i32x4.splat(0);
  let nz = i32x4.splat(0);
  let mn = f32x4.splat(Infinity);
  let mx = f32x4.splat(-Infinity);
  let A1 = f64x2.splat(0), A2 = f64x2.splat(0), A3 = f64x2.splat(0), A4 = f64x2.splat(0);
  const n4 = n & ~3;
  let i = 0;
  while (i < n) {
    let s1 = f32x4.splat(0), s2 = f32x4.splat(0), s3 = f32x4.splat(0), s4 = f32x4.splat(0);
    const bend = i + 64 < n4 ? i + 64 : n4;
    for (; i < bend; i += 4) {
      const x = v128.load(p + (<usize>i << 2));
      const a = v128.and(x, ABS);
      zer = i32x4.sub(zer, f32x4.eq(x, ZERO));
      nz = i32x4.sub(nz, f32x4.lt(a, EPS));
      const kk = i32x4.shr_u(x, 16);
      let ka: usize = keys + (<usize>i32x4.extract_lane(kk, 0) << 2);
      store<u32>(ka, load<u32>(ka) + 1);
      ka = keys + (<usize>i32x4.extract_lane(kk, 1) << 2);
      store<u32>(ka, load<u32>(ka) + 1);
      ka = keys + (<usize>i32x4.extract_lane(kk, 2) << 2);
      store<u32>(ka, load<u32>(ka) + 1);
      ka = keys + (<usize>i32x4.extract_lane(kk, 3) << 2);
      store<u32>(ka, load<u32>(ka) + 1);
      let d: v128;
      if (masked) {
        const fin = i32x4.lt_s(a, INFB);
        cnt = i32x4.sub(cnt, fin);
        mn = f32x4.pmin(mn, v128.bitselect(x, mn, fin));
        mx = f32x4.pmax(mx, v128.bitselect(x, mx, fin));
        d = f32x4.mul(f32x4.sub(v128.bitselect(x, SH, fin), SH), SC);
      } else {
        mn = f32x4.pmin(mn, x);
        mx = f32x4.pmax(mx, x);
        d = f32x4.mul(f32x4.sub(x, SH), SC);
      }
      const d2 = f32x4.mul(d, d);
      s1 = f32x4.add(s1, d);
      s2 = f32x4.add(s2, d2);
      s3 = f32x4.add(s3, f32x4.mul(d2, d));
      s4 = f32x4.add(s4, f32x4.mul(d2, d2));
    }
    if (i == n4 && n4 < n) {
      // The last partial group: lane j takes element n4 + j (absent lanes add 0).
      for (let j = 0; j < n - n4; j++) {
        const x = load<f32>(p + (<usize>(n4 + j) << 2));
        const ka: usize = keys + (<usize>(reinterpret<u32>(x) >>> 16) << 2);
        store<u32>(ka, load<u32>(ka) + 1);
      }
      const x = tailVector(p + (<usize>n4 << 2), n - n4, shift);
      const a = v128.and(x, ABS);
      const fin = i32x4.lt_s(a, INFB);
      const real = tailMask(n - n4);
      const ok = v128.and(fin, real);
      cnt = i32x4.sub(cnt, ok);
      zer = i32x4.sub(zer, v128.and(f32x4.eq(x, ZERO), real));
      nz = i32x4.sub(nz, v128.and(f32x4.lt(a, EPS), real));
      mn = f32x4.pmin(mn, v128.bitselect(x, mn, ok));
      mx = f32x4.pmax(mx, v128.bitselect(x, mx, ok));
      const d = f32x4.mul(f32x4.sub(v128.bitselect(x, SH, ok), SH), SC);
      const d2 = f32x4.mul(d, d);
      s1 = f32x4.add(s1, d);
      s2 = f32x4.add(s2, d2);
      s3 = f32x4.add(s3, f32x4.mul(d2, d));
      s4 = f32x4.add(s4, f32x4.mul(d2, d2));
      i = n;
    }
    A1 = f64x2.add(A1, f64x2.add(f64x2.promote_low_f32x4(s1), f64x2.promote_low_f32x4(i32x4.shuffle(s1, s1, 2, 3, 0, 1))));
    A2 = f64x2.add(A2, f64x2.add(f64x2.promote_low_f32x4(s2), f64x2.promote_low_f32x4(i32x4.shuffle(s2, s2, 2, 3, 0, 1))));
    A3 = f64x2.add(A3, f64x2.add(f64x2.promote_low_f32x4(s3), f64x2.promote_low_f32x4(i32x4.shuffle(s3, s3, 2, 3, 0, 1))));
    A4 = f64x2.add(A4, f64x2.add(f64x2.promote_low_f32x4(s4), f64x2.promote_low_f32x4(i32x4.shuffle(s4, s4, 2, 3, 0, 1))));
  }
  if (!masked) cnt = i32x4.add(cnt, i32x4.splat(n4 >> 2));
  const c: i32 = i32x4.extract_lane(cnt, 0) + i32x4.extract_lane(cnt, 1) + i32x4.extract_lane(cnt, 2) + i32x4.extract_lane(cnt, 3);
  const ze: i32 = i32x4.extract_lane(zer, 0) + i32x4.extract_lane(zer, 1) + i32x4.extract_lane(zer, 2) + i32x4.extract_lane(zer, 3);
  const ne: i32 = i32x4.extract_lane(nz, 0) + i32x4.extract_lane(nz, 1) + i32x4.extract_lane(nz, 2) + i32x4.extract_lane(nz, 3);
  // pmin/pmax (a plain compare-and-select) are one instruction on x86, unlike IEEE min/max;
  // the sign of a zero extreme is therefore order-dependent and the host canonicalises it.
  const fmin: f32 = pmin32(pmin32(f32x4.extract_lane(mn, 0), f32x4.extract_lane(mn, 1)), pmin32(f32x4.extract_lane(mn, 2), f32x4.extract_lane(mn, 3)));
  const fmax: f32 = pmax32(pmax32(f32x4.extract_lane(mx, 0), f32x4.extract_lane(mx, 1)), pmax32(f32x4.extract_lane(mx, 2), f32x4.extract_lane(mx, 3)));
  store<f64>(out, <f64>c, 0);
  store<f64>(out, <f64>ze, 16);
  store<f64>(out, <f64>ne, 24);
  store<f64>(out, <f64>fmin, 32);
  store<f64>(out, <f64>fmax, 40);
  v128.store(out, A1, 64);
  v128.store(out, A2, 80);
  v128.store(out, A3, 96);
  v128.store(out, A4, 112);
}

// The last 1-3 elements of a chunk as a vector; lanes past the end hold `fill`.
// @ts-ignore: decorator
@inline
function tailVector(q: usize, m: i32, fill: f32): v128 {
  let v = f32x4.splat(fill);
  v = f32x4.replace_lane(v, 0, load<f32>(q));
  if (m > 1) v = f32x4.replace_lane(v, 1, load<f32>(q, 4));
  if (m > 2) v = f32x4.replace_lane(v, 2, load<f32>(q, 8));
  return v;
}

// All-ones in lanes 0..m-1.
// @ts-ignore: decorator
@inline
function tailMask(m: i32): v128 {
  return i32x4.lt_s(i32x4(0, 1, 2, 3), i32x4.splat(m));
}

// @ts-ignore: decorator
@inline
function pmin32(a: f32, b: f32): f32 { return b < a ? b : a; }
// @ts-ignore: decorator
@inline
function pmax32(a: f32, b: f32): f32 { return a < b ? b : a; }

// Linear histogram (4 interleaved copies of 2049 u32; bin 2048 catches
// non-finite values), the count of finite x with x > hi or x < lo, and the
// percentile refinement: kp holds up to 8 top-16-bit keys (-1 = unused; the
// host only passes keys of finite values, so NaN/Inf never match); an x whose
// key is slot s's counts its low 16 bits in sub[s * 65536 + low], which pins
// down the exact float32 value of every element in those buckets.
// histFast is hist for tensors without NaN/±Inf (the host knows from pass 1).
export function hist(p: usize, n: i32, lo0: f32, scale: f32, olo: f32, ohi: f32, h: usize, kp: usize, sub: usize): i32 {
  return histImpl(p, n, lo0, scale, olo, ohi, h, kp, sub, true);
}
export function histFast(p: usize, n: i32, lo0: f32, scale: f32, olo: f32, ohi: f32, h: usize, kp: usize, sub: usize): i32 {
  return histImpl(p, n, lo0, scale, olo, ohi, h, kp, sub, false);
}

// @ts-ignore: decorator
@inline
function histImpl(p: usize, n: i32, lo0: f32, scale: f32, olo: f32, ohi: f32, h: usize, kp: usize, sub: usize, masked: bool): i32 {
  const INF = f32x4.splat(Infinity);
  const MIN = f32x4.splat(lo0);
  const SC = f32x4.splat(scale);
  const OLO = f32x4.splat(olo);
  const OHI = f32x4.splat(ohi);
  const TOP = i32x4.splat(2047);
  const BOT = i32x4.splat(0);
  const TRASH = i32x4.splat(2048);
  const K0 = i32x4.splat(load<i32>(kp, 0)), K1 = i32x4.splat(load<i32>(kp, 4));
  const K2 = i32x4.splat(load<i32>(kp, 8)), K3 = i32x4.splat(load<i32>(kp, 12));
  const K4 = i32x4.splat(load<i32>(kp, 16)), K5 = i32x4.splat(load<i32>(kp, 20));
  const K6 = i32x4.splat(load<i32>(kp, 24)), K7 = i32x4.splat(load<i32>(kp, 28));
  const C: usize = 2049 * 4;
  let out = i32x4.splat(0);
  // Two vectors per step: their top 16 bits packed into one i16x8 halve the key compares.
  const Q0 = i16x8.splat(<i16>load<i32>(kp, 0)), Q1 = i16x8.splat(<i16>load<i32>(kp, 4));
  const Q2 = i16x8.splat(<i16>load<i32>(kp, 8)), Q3 = i16x8.splat(<i16>load<i32>(kp, 12));
  const Q4 = i16x8.splat(<i16>load<i32>(kp, 16)), Q5 = i16x8.splat(<i16>load<i32>(kp, 20));
  const Q6 = i16x8.splat(<i16>load<i32>(kp, 24)), Q7 = i16x8.splat(<i16>load<i32>(kp, 28));
  const n8 = n & ~7;
  for (let i = 0; i < n8; i += 8) {
    const x = v128.load(p + (<usize>i << 2));
    const y = v128.load(p + (<usize>i << 2), 16);
    out = i32x4.sub(out, histLanes(x, h, INF, MIN, SC, OLO, OHI, TOP, BOT, TRASH, masked));
    out = i32x4.sub(out, histLanes(y, h, INF, MIN, SC, OLO, OHI, TOP, BOT, TRASH, masked));
    const key = i8x16.shuffle(x, y, 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
    const hit = v128.or(
      v128.or(v128.or(i16x8.eq(key, Q0), i16x8.eq(key, Q1)), v128.or(i16x8.eq(key, Q2), i16x8.eq(key, Q3))),
      v128.or(v128.or(i16x8.eq(key, Q4), i16x8.eq(key, Q5)), v128.or(i16x8.eq(key, Q6), i16x8.eq(key, Q7))));
    let lanes = i16x8.bitmask(hit);
    // Only the lanes that matched; an unused slot (-1) also matches key 0xffff (a NaN
    // pattern), and refineKey compares all 32 bits.
    while (lanes != 0) {
      const j = ctz<i32>(lanes);
      lanes &= lanes - 1;
      refineKey(load<i32>(p + (<usize>(i + j) << 2)), kp, sub);
    }
  }
  const n4 = n & ~3;
  for (let i = n8; i < n4; i += 4) {
    const x = v128.load(p + (<usize>i << 2));
    out = i32x4.sub(out, histLanes(x, h, INF, MIN, SC, OLO, OHI, TOP, BOT, TRASH, masked));
    const key = i32x4.shr_u(x, 16);
    const hit = v128.or(
      v128.or(v128.or(i32x4.eq(key, K0), i32x4.eq(key, K1)), v128.or(i32x4.eq(key, K2), i32x4.eq(key, K3))),
      v128.or(v128.or(i32x4.eq(key, K4), i32x4.eq(key, K5)), v128.or(i32x4.eq(key, K6), i32x4.eq(key, K7))));
    if (!v128.any_true(hit)) continue;
    refineKey(i32x4.extract_lane(x, 0), kp, sub);
    refineKey(i32x4.extract_lane(x, 1), kp, sub);
    refineKey(i32x4.extract_lane(x, 2), kp, sub);
    refineKey(i32x4.extract_lane(x, 3), kp, sub);
  }
  let o: i32 = i32x4.extract_lane(out, 0) + i32x4.extract_lane(out, 1) + i32x4.extract_lane(out, 2) + i32x4.extract_lane(out, 3);
  for (let i = n4; i < n; i++) {
    const x = load<f32>(p + (<usize>i << 2));
    const j: usize = <usize>(i & 3);
    let b: i32 = 2048;
    if (abs<f32>(x) < Infinity) {
      b = min(max(<i32>i32x4.extract_lane(i32x4.trunc_sat_f32x4_s(f32x4.splat((x - lo0) * scale)), 0), 0), 2047);
      if (x > ohi || x < olo) o++;
    }
    const a = h + j * C + (<usize>b << 2);
    store<u32>(a, load<u32>(a) + 1);
    refineKey(reinterpret<i32>(x), kp, sub);
  }
  return o;
}

// Bins four lanes into the four interleaved histogram copies (lane j to copy j)
// and returns the lanes' outlier mask (finite and outside [olo, ohi]).
// @ts-ignore: decorator
@inline
function histLanes(x: v128, h: usize, INF: v128, MIN: v128, SC: v128, OLO: v128, OHI: v128, TOP: v128, BOT: v128, TRASH: v128, masked: bool): v128 {
  const C: usize = 2049 * 4;
  let b = i32x4.trunc_sat_f32x4_s(f32x4.mul(f32x4.sub(x, MIN), SC));
  b = i32x4.max_s(i32x4.min_s(b, TOP), BOT);
  let fin = i32x4.splat(-1);
  if (masked) {
    fin = f32x4.lt(f32x4.abs(x), INF);
    b = v128.bitselect(b, TRASH, fin);
  }
  let a: usize = h + (<usize>i32x4.extract_lane(b, 0) << 2);
  store<u32>(a, load<u32>(a) + 1);
  a = h + C + (<usize>i32x4.extract_lane(b, 1) << 2);
  store<u32>(a, load<u32>(a) + 1);
  a = h + 2 * C + (<usize>i32x4.extract_lane(b, 2) << 2);
  store<u32>(a, load<u32>(a) + 1);
  a = h + 3 * C + (<usize>i32x4.extract_lane(b, 3) << 2);
  store<u32>(a, load<u32>(a) + 1);
  const o = v128.or(f32x4.gt(x, OHI), f32x4.lt(x, OLO));
  return masked ? v128.and(o, fin) : o;
}

// @ts-ignore: decorator
@inline
function refineKey(bits: i32, kp: usize, sub: usize): void {
  const key = <i32>(<u32>bits >>> 16);
  for (let s = 0; s < 8; s++) {
    if (load<i32>(kp + (<usize>s << 2)) == key) {
      const a = sub + (<usize>s << 18) + (<usize>(bits & 0xffff) << 2);
      store<u32>(a, load<u32>(a) + 1);
      return;
    }
  }
}

// Positions i of finite x with |x| > thr, written to idx (i32); returns how
// many. The top-k scan then only looks at these instead of the whole chunk.
export function above(p: usize, n: i32, thr: f32, idx: usize): i32 {
  const INF = f32x4.splat(Infinity);
  const T = f32x4.splat(thr);
  let m = 0;
  const n4 = n & ~3;
  for (let i = 0; i < n4; i += 4) {
    const a = f32x4.abs(v128.load(p + (<usize>i << 2)));
    if (!v128.any_true(v128.and(f32x4.gt(a, T), f32x4.lt(a, INF)))) continue;
    for (let j = i; j < i + 4; j++) {
      const v = abs<f32>(load<f32>(p + (<usize>j << 2)));
      if (v > thr && v < Infinity) { store<i32>(idx + (<usize>m << 2), j); m++; }
    }
  }
  for (let j = n4; j < n; j++) {
    const v = abs<f32>(load<f32>(p + (<usize>j << 2)));
    if (v > thr && v < Infinity) { store<i32>(idx + (<usize>m << 2), j); m++; }
  }
  return m;
}

// Per-output-channel accumulation. The chunk's first element belongs to
// channel c0 at offset off0 within its run of `inner` consecutive elements.
// ch holds six f64 arrays of length C: count, min, max, shift, sum(d), sum(d^2)
// with d = x - shift and shift = the first finite value the channel saw (a
// sample of the channel keeps the shifted sums free of cancellation).
// Within a run, once the shift is known, whole groups of four go through
// f32x4 lanes (element k of a group to lane k), summed in float32 over blocks
// of 64 elements and in float64 across blocks (lanes added as l0 + l2 and
// l1 + l3, then the two together into the running sums); the rest of the run
// is scalar in float64. The TS twin keeps exactly this order.
// kind: 0 float32 input at p, 1 float16 codes, 2 bfloat16 codes (decoded on
// the fly). `masked` handles NaN/±Inf; the host passes false for float32
// chunks it knows are all finite.
export function channels(p: usize, n: i32, c0: i32, off0: i32, inner: i32, C: i32, ch: usize): void {
  channelsImpl(p, n, c0, off0, inner, C, ch, 0, true);
}
export function channelsFast(p: usize, n: i32, c0: i32, off0: i32, inner: i32, C: i32, ch: usize): void {
  channelsImpl(p, n, c0, off0, inner, C, ch, 0, false);
}
export function channelsF16(p: usize, n: i32, c0: i32, off0: i32, inner: i32, C: i32, ch: usize, masked: bool): void {
  if (masked) channelsImpl(p, n, c0, off0, inner, C, ch, 1, true);
  else channelsImpl(p, n, c0, off0, inner, C, ch, 1, false);
}
export function channelsBF16(p: usize, n: i32, c0: i32, off0: i32, inner: i32, C: i32, ch: usize, masked: bool): void {
  if (masked) channelsImpl(p, n, c0, off0, inner, C, ch, 2, true);
  else channelsImpl(p, n, c0, off0, inner, C, ch, 2, false);
}

// @ts-ignore: decorator
@inline
function loadLanes(p: usize, k: i32, kind: i32, masked: bool, EM: v128, SIGN: v128, MAGIC: v128, INFH: v128, EXPF: v128): v128 {
  if (kind == 0) return v128.load(p + (<usize>k << 2));
  const q = v128.load64_zero(p + (<usize>k << 1));
  if (kind == 2) return i32x4.shl(i32x4.extend_low_i16x8_u(q), 16);
  if (!masked) return halfFinite(i32x4.extend_low_i16x8_s(q), MAGIC);
  return halfLanes(i32x4.extend_low_i16x8_u(q), EM, SIGN, MAGIC, INFH, EXPF);
}

// float16 lanes known to be finite, sign-extended to i32: shifting by 13 puts
// exponent and mantissa in float32 position and the sign in bit 31 (bits
// 28-30, copies of the sign, are masked off), and the multiply by 2^112
// rebiases the exponent, subnormals included, keeping the sign. Four
// operations instead of halfLanes' nine; the same values for finite codes.
// @ts-ignore: decorator
@inline
function halfFinite(hs: v128, MAGIC: v128): v128 {
  return f32x4.mul(v128.and(i32x4.shl(hs, 13), i32x4.splat(0x8fffe000)), MAGIC);
}

// @ts-ignore: decorator
@inline
function loadOne(p: usize, k: i32, kind: i32): f32 {
  if (kind == 0) return load<f32>(p + (<usize>k << 2));
  const h = <i32>load<u16>(p + (<usize>k << 1));
  if (kind == 2) return reinterpret<f32>(h << 16);
  return half1(h);
}

// @ts-ignore: decorator
@inline
function half1(h: i32): f32 {
  const em = h & 0x7fff;
  let bits = reinterpret<i32>(reinterpret<f32>(em << 13) * <f32>5.192296858534828e33);
  if (em >= 0x7c00) bits |= 0x7f800000;
  return reinterpret<f32>(bits | ((h & 0x8000) << 16));
}

// @ts-ignore: decorator
@inline
function channelsImpl(p: usize, n: i32, c0: i32, off0: i32, inner: i32, C: i32, ch: usize, kind: i32, masked: bool): void {
  const S: usize = <usize>C << 3;
  const ABS = i32x4.splat(0x7fffffff);
  const INFB = i32x4.splat(0x7f800000);
  const EM = i32x4.splat(0x7fff), SIGN = i32x4.splat(0x8000), MAGIC = f32x4.splat(5.192296858534828e33), INFH = i32x4.splat(0x7c00);
  let i = 0;
  let c = c0;
  let off = off0;
  while (i < n) {
    let run = inner - off;
    if (run > n - i) run = n - i;
    const base = ch + (<usize>c << 3);
    let cnt = load<f64>(base);
    let mn = load<f64>(base + S);
    let mx = load<f64>(base + 2 * S);
    let sh = load<f64>(base + 3 * S);
    let s1 = load<f64>(base + 4 * S);
    let s2 = load<f64>(base + 5 * S);
    const end = i + run;
    let k = i;
    if (cnt == 0) {
      while (k < end) {
        const x = <f64>loadOne(p, k, kind);
        k++;
        if (abs<f64>(x) < Infinity) { sh = x; cnt = 1; mn = x; mx = x; break; }
      }
    }
    const vend = k + ((end - k) & ~3);
    if (k < vend) {
      // Non-finite lanes are replaced by the shift: d = 0, and min/max already cover it.
      const SHF = f32x4.splat(<f32>sh);
      let vc = i32x4.splat(0);
      let vmn = f32x4.splat(<f32>mn);
      let vmx = f32x4.splat(<f32>mx);
      let A1 = f64x2.splat(0), A2 = f64x2.splat(0);
      const kv = k;
      while (k < vend) {
        const bend = k + 64 < vend ? k + 64 : vend;
        let l1 = f32x4.splat(0), l2 = f32x4.splat(0);
        if (kind == 1 && !masked) {
          // Finite float16: eight codes per load, the two halves added in element order.
          for (; k + 8 <= bend; k += 8) {
            const q = v128.load(p + (<usize>k << 1));
            const xa = halfFinite(i32x4.extend_low_i16x8_s(q), MAGIC);
            const xb = halfFinite(i32x4.extend_high_i16x8_s(q), MAGIC);
            vmn = f32x4.pmin(vmn, f32x4.pmin(xa, xb));
            vmx = f32x4.pmax(vmx, f32x4.pmax(xa, xb));
            const da = f32x4.sub(xa, SHF), db = f32x4.sub(xb, SHF);
            l1 = f32x4.add(f32x4.add(l1, da), db);
            l2 = f32x4.add(f32x4.add(l2, f32x4.mul(da, da)), f32x4.mul(db, db));
          }
        }
        for (; k < bend; k += 4) {
          let xs = loadLanes(p, k, kind, masked, EM, SIGN, MAGIC, INFH, INFB);
          if (masked) {
            const fin = i32x4.lt_s(v128.and(xs, ABS), INFB);
            vc = i32x4.sub(vc, fin);
            xs = v128.bitselect(xs, SHF, fin);
          }
          vmn = f32x4.pmin(vmn, xs);
          vmx = f32x4.pmax(vmx, xs);
          const d = f32x4.sub(xs, SHF);
          l1 = f32x4.add(l1, d);
          l2 = f32x4.add(l2, f32x4.mul(d, d));
        }
        A1 = f64x2.add(A1, f64x2.add(f64x2.promote_low_f32x4(l1), f64x2.promote_low_f32x4(i32x4.shuffle(l1, l1, 2, 3, 0, 1))));
        A2 = f64x2.add(A2, f64x2.add(f64x2.promote_low_f32x4(l2), f64x2.promote_low_f32x4(i32x4.shuffle(l2, l2, 2, 3, 0, 1))));
      }
      if (masked) cnt += <f64>(i32x4.extract_lane(vc, 0) + i32x4.extract_lane(vc, 1) + i32x4.extract_lane(vc, 2) + i32x4.extract_lane(vc, 3));
      else cnt += <f64>(vend - kv);
      mn = <f64>pmin32(pmin32(f32x4.extract_lane(vmn, 0), f32x4.extract_lane(vmn, 1)), pmin32(f32x4.extract_lane(vmn, 2), f32x4.extract_lane(vmn, 3)));
      mx = <f64>pmax32(pmax32(f32x4.extract_lane(vmx, 0), f32x4.extract_lane(vmx, 1)), pmax32(f32x4.extract_lane(vmx, 2), f32x4.extract_lane(vmx, 3)));
      s1 += f64x2.extract_lane(A1, 0) + f64x2.extract_lane(A1, 1);
      s2 += f64x2.extract_lane(A2, 0) + f64x2.extract_lane(A2, 1);
    }
    for (; k < end; k++) {
      const x = <f64>loadOne(p, k, kind);
      if (!(abs<f64>(x) < Infinity)) continue;
      if (cnt == 0) sh = x;
      cnt += 1;
      if (x < mn) mn = x;
      if (x > mx) mx = x;
      const d = x - sh;
      s1 += d;
      s2 += d * d;
    }
    store<f64>(base, cnt);
    store<f64>(base + S, mn);
    store<f64>(base + 2 * S, mx);
    store<f64>(base + 3 * S, sh);
    store<f64>(base + 4 * S, s1);
    store<f64>(base + 5 * S, s2);
    i = end;
    off = 0;
    c++;
    if (c == C) c = 0;
  }
}

// Per-channel accumulation when the channel axis is the last one (each run is
// one element): element i of the chunk belongs to channel (c0 + i) mod C.
// State at st, for C channels: f64 count, s1, s2; f32 min, max, shift, l1, l2;
// then an i32 count of channels that have their shift (first finite value).
// l1/l2 are float32 partial sums of d = x - shift and d^2 since the last flush
// into s1/s2; a flush follows every 16·C elements of a call and its end, so no
// partial sum holds more than 17 terms. Once every channel has its shift,
// finite chunks (masked = false) go four channels per vector; everything else
// is the scalar path with the same float32 steps. The TS twin matches it.
export function channelsLast(p: usize, n: i32, c0: i32, C: i32, st: usize, masked: bool): void {
  const S: usize = <usize>C << 3, F: usize = <usize>C << 2;
  const CNT = st, S1 = st + S, S2 = st + 2 * S;
  const MN = st + 3 * S, MX = MN + F, SH = MN + 2 * F, L1 = MN + 3 * F, L2 = MN + 4 * F;
  const STARTED = MN + 5 * F;
  const ONE = f64x2.splat(1);
  let started = load<i32>(STARTED);
  let i = 0, c = c0, since = 0;
  while (i < n) {
    const segEnd = i + (C - c < n - i ? C - c : n - i);
    let k = i, cc = c;
    if (started == C && !masked) {
      for (; k + 4 <= segEnd; k += 4, cc += 4) {
        const x = v128.load(p + (<usize>k << 2));
        const o = <usize>cc << 2;
        v128.store(MN + o, f32x4.pmin(v128.load(MN + o), x));
        v128.store(MX + o, f32x4.pmax(v128.load(MX + o), x));
        const d = f32x4.sub(x, v128.load(SH + o));
        v128.store(L1 + o, f32x4.add(v128.load(L1 + o), d));
        v128.store(L2 + o, f32x4.add(v128.load(L2 + o), f32x4.mul(d, d)));
        const q = <usize>cc << 3;
        v128.store(CNT + q, f64x2.add(v128.load(CNT + q), ONE));
        v128.store(CNT + q, f64x2.add(v128.load(CNT + q, 16), ONE), 16);
      }
    }
    for (; k < segEnd; k++, cc++) {
      const x = load<f32>(p + (<usize>k << 2));
      if (!(abs<f32>(x) < Infinity)) continue;
      const o = <usize>cc << 2, q = <usize>cc << 3;
      const cnt = load<f64>(CNT + q);
      if (cnt == 0) {
        store<f32>(SH + o, x); store<f32>(MN + o, x); store<f32>(MX + o, x);
        store<f64>(CNT + q, 1);
        started++;
        continue;
      }
      store<f64>(CNT + q, cnt + 1);
      if (x < load<f32>(MN + o)) store<f32>(MN + o, x);
      if (load<f32>(MX + o) < x) store<f32>(MX + o, x);
      const d = x - load<f32>(SH + o);
      store<f32>(L1 + o, load<f32>(L1 + o) + d);
      store<f32>(L2 + o, load<f32>(L2 + o) + d * d);
    }
    since += segEnd - i;
    if (since >= 16 * C) { flushLast(C, S1, S2, L1, L2); since = 0; }
    i = segEnd;
    c = 0;
  }
  flushLast(C, S1, S2, L1, L2);
  store<i32>(STARTED, started);
}

// @ts-ignore: decorator
@inline
function flushLast(C: i32, S1: usize, S2: usize, L1: usize, L2: usize): void {
  for (let c = 0; c < C; c++) {
    const o = <usize>c << 2, q = <usize>c << 3;
    store<f64>(S1 + q, load<f64>(S1 + q) + <f64>load<f32>(L1 + o));
    store<f64>(S2 + q, load<f64>(S2 + q) + <f64>load<f32>(L2 + o));
    store<f32>(L1 + o, 0);
    store<f32>(L2 + o, 0);
  }
}

// IEEE binary16 -> binary32: move exponent+mantissa into place and rescale by
// 2^112, which handles normals and subnormals alike; Inf/NaN get an all-ones exponent.
export function f16ToF32(src: usize, dst: usize, n: i32): void {
  const EM = i32x4.splat(0x7fff);
  const SIGN = i32x4.splat(0x8000);
  const MAGIC = f32x4.splat(5.192296858534828e33); // 2^112
  const INFH = i32x4.splat(0x7c00);
  const EXPF = i32x4.splat(0x7f800000);
  const n8 = n & ~7;
  for (let i = 0; i < n8; i += 8) {
    const h = v128.load(src + (<usize>i << 1));
    const lo = i32x4.extend_low_i16x8_u(h);
    const hi = i32x4.extend_high_i16x8_u(h);
    v128.store(dst + (<usize>i << 2), halfLanes(lo, EM, SIGN, MAGIC, INFH, EXPF));
    v128.store(dst + (<usize>i << 2), halfLanes(hi, EM, SIGN, MAGIC, INFH, EXPF), 16);
  }
  for (let i = n8; i < n; i++) store<f32>(dst + (<usize>i << 2), half1(<i32>load<u16>(src + (<usize>i << 1))));
}

// @ts-ignore: decorator
@inline
function halfLanes(h: v128, EM: v128, SIGN: v128, MAGIC: v128, INFH: v128, EXPF: v128): v128 {
  const em = v128.and(h, EM);
  let f = f32x4.mul(i32x4.shl(em, 13), MAGIC);
  f = v128.or(f, v128.and(i32x4.ge_s(em, INFH), EXPF));
  return v128.or(f, i32x4.shl(v128.and(h, SIGN), 16));
}

export function bf16ToF32(src: usize, dst: usize, n: i32): void {
  const n8 = n & ~7;
  for (let i = 0; i < n8; i += 8) {
    const h = v128.load(src + (<usize>i << 1));
    v128.store(dst + (<usize>i << 2), i32x4.shl(i32x4.extend_low_i16x8_u(h), 16));
    v128.store(dst + (<usize>i << 2), i32x4.shl(i32x4.extend_high_i16x8_u(h), 16), 16);
  }
  for (let i = n8; i < n; i++) {
    store<u32>(dst + (<usize>i << 2), <u32>load<u16>(src + (<usize>i << 1)) << 16);
  }
}

// Counts every 16-bit code of a float16/bfloat16 chunk in one table of 65536
// u32 at h. (Two interleaved tables, against consecutive equal codes
// serialising on one counter, measured 13 % slower on weights here and no
// faster on all-zero chunks: this CPU forwards a store to the next load of
// the same address, and one table leaves half the cache.) Nothing else
// happens per code: what the host needs to know about a chunk (NaN/±Inf in
// it, values above the top-k floor) it reads from the table with sumCodes
// and topCode, which cost a few thousand entries instead of a vector max per
// eight codes (17 % of this loop).
// The counters are bumped from two 64-bit loads per eight codes: cheaper than
// eight lane extracts.
export function count16(src: usize, n: i32, h: usize): void {
  const n8 = n & ~7;
  for (let i = 0; i < n8; i += 8) {
    const w = load<u64>(src + (<usize>i << 1));
    const z = load<u64>(src + (<usize>i << 1), 8);
    let a = h + (<usize>(w & 0xffff) << 2);
    store<u32>(a, load<u32>(a) + 1);
    a = h + (<usize>((w >>> 16) & 0xffff) << 2);
    store<u32>(a, load<u32>(a) + 1);
    a = h + (<usize>((w >>> 32) & 0xffff) << 2);
    store<u32>(a, load<u32>(a) + 1);
    a = h + (<usize>(w >>> 48) << 2);
    store<u32>(a, load<u32>(a) + 1);
    a = h + (<usize>(z & 0xffff) << 2);
    store<u32>(a, load<u32>(a) + 1);
    a = h + (<usize>((z >>> 16) & 0xffff) << 2);
    store<u32>(a, load<u32>(a) + 1);
    a = h + (<usize>((z >>> 32) & 0xffff) << 2);
    store<u32>(a, load<u32>(a) + 1);
    a = h + (<usize>(z >>> 48) << 2);
    store<u32>(a, load<u32>(a) + 1);
  }
  for (let i = n8; i < n; i++) {
    const a = h + (<usize>load<u16>(src + (<usize>i << 1)) << 2);
    store<u32>(a, load<u32>(a) + 1);
  }
}

// Sum of the u32 counters of magnitudes from..to (0 ≤ from ≤ to ≤ 0x8000) of
// both signs: h[from..to) plus h[0x8000 + from..0x8000 + to). Summed in u32
// lanes, so the table's total must stay below 2^32 (the host flushes its
// table into float64 every 2^31 codes); plain adds make a scan of the tens of
// thousands of empty counters above a tensor's largest code cost about 2 µs.
export function sumCodes(h: usize, from: i32, to: i32): f64 {
  let a = i32x4.splat(0), b = i32x4.splat(0);
  let i = from;
  const neg: usize = 0x8000 << 2;
  for (; i + 4 <= to; i += 4) {
    const q = h + (<usize>i << 2);
    a = i32x4.add(a, v128.load(q));
    b = i32x4.add(b, v128.load(q + neg));
  }
  a = i32x4.add(a, b);
  let s: u32 = <u32>(i32x4.extract_lane(a, 0) + i32x4.extract_lane(a, 1) + i32x4.extract_lane(a, 2) + i32x4.extract_lane(a, 3));
  for (; i < to; i++) s += load<u32>(h + (<usize>i << 2)) + load<u32>(h + (<usize>i << 2) + neg);
  return <f64>s;
}

// The largest magnitude m < below with a non-zero counter for +m or -m (codes
// m and 0x8000 | m), or -1.
export function topCode(h: usize, below: i32): i32 {
  for (let m = below - 1; m >= 0; m--) {
    if ((load<u32>(h + (<usize>m << 2)) | load<u32>(h + (<usize>(m | 0x8000) << 2))) != 0) return m;
  }
  return -1;
}

// Positions i of the finite 16-bit codes of a chunk whose magnitude
// (code & 0x7fff) is at least from and below infCode (the ±Inf magnitude),
// written to idx (i32); returns how many. The float16/bfloat16 top-k scan
// uses it on the raw codes, so chunks need no decoding for it.
export function above16(src: usize, n: i32, from: i32, infCode: i32, idx: usize): i32 {
  const MAG = i16x8.splat(0x7fff);
  const F = i16x8.splat(<i16>from);
  const INF = i16x8.splat(<i16>infCode);
  let m = 0;
  const n8 = n & ~7;
  for (let i = 0; i < n8; i += 8) {
    const g = v128.and(v128.load(src + (<usize>i << 1)), MAG);
    if (!v128.any_true(v128.and(i16x8.ge_u(g, F), i16x8.lt_u(g, INF)))) continue;
    for (let j = i; j < i + 8; j++) {
      const c = <i32>load<u16>(src + (<usize>j << 1)) & 0x7fff;
      if (c >= from && c < infCode) { store<i32>(idx + (<usize>m << 2), j); m++; }
    }
  }
  for (let j = n8; j < n; j++) {
    const c = <i32>load<u16>(src + (<usize>j << 1)) & 0x7fff;
    if (c >= from && c < infCode) { store<i32>(idx + (<usize>m << 2), j); m++; }
  }
  return m;
}

// Plain read-bandwidth probe: sum of float32 with four independent vector accumulators.
export function sumF32(p: usize, n: i32): f32 {
  let a = f32x4.splat(0), b = f32x4.splat(0), c = f32x4.splat(0), d = f32x4.splat(0);
  const n16 = n & ~15;
  for (let i = 0; i < n16; i += 16) {
    const q = p + (<usize>i << 2);
    a = f32x4.add(a, v128.load(q));
    b = f32x4.add(b, v128.load(q, 16));
    c = f32x4.add(c, v128.load(q, 32));
    d = f32x4.add(d, v128.load(q, 48));
  }
  const s = f32x4.add(f32x4.add(a, b), f32x4.add(c, d));
  let r = f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1) + f32x4.extract_lane(s, 2) + f32x4.extract_lane(s, 3);
  for (let i = n16; i < n; i++) r += load<f32>(p + (<usize>i << 2));
  return r;
}

// The non-zero entries of n u32 counters: their indices to idx (i32) and
// counts to cnt (f64); returns how many, and zeroes them, so the table is
// clean again without a 256 KiB fill. Lets the host copy out a sparse
// 65536-entry table without a per-element JS loop.
export function compactU32(src: usize, n: i32, idx: usize, cnt: usize): i32 {
  let m = 0;
  for (let i = 0; i < n; i++) {
    const c = load<u32>(src + (<usize>i << 2));
    if (c == 0) continue;
    store<i32>(idx + (<usize>m << 2), i);
    store<f64>(cnt + (<usize>m << 3), <f64>c);
    store<u32>(src + (<usize>i << 2), 0);
    m++;
  }
  return m;
}

// AssemblyScript source of the WebAssembly SIMD fast path for activation
// histograms (src/kernels/histKernel.ts loads it). Not compiled by tsc;
// rebuild the embedded binary with `node src/kernels/build.mjs histKernel`.
//
// Twin of src/kernels/histKernelRef.ts; tests hold the two identical:
//   scan: non-finite count, min and max of the finite x, and per-channel
//         max |x| (NaN never raises it, ±Inf does), channel of element i
//         being ((pos0 + i) / inner + c0) mod channels;
//   bin:  counts[floor(x / w) + B] += 1 (clamped to [0, 2B)) for finite x,
//         into four tables (element i into table i mod 4) so that runs of
//         equal bins do not wait on each other's stores.
// pmin/pmax are one x86 instruction each (IEEE min/max are several in V8);
// with non-finite lanes replaced by ±Inf they give the exact extremes, only
// the sign of a zero extreme depends on order, and the host canonicalises it.

// @ts-ignore: decorator
@inline
function hmin(v: v128): f32 {
  const a = f32x4.extract_lane(v, 0), b = f32x4.extract_lane(v, 1);
  const c = f32x4.extract_lane(v, 2), d = f32x4.extract_lane(v, 3);
  const ab: f32 = b < a ? b : a;
  const cd: f32 = d < c ? d : c;
  return cd < ab ? cd : ab;
}

// @ts-ignore: decorator
@inline
function hmax(v: v128): f32 {
  const a = f32x4.extract_lane(v, 0), b = f32x4.extract_lane(v, 1);
  const c = f32x4.extract_lane(v, 2), d = f32x4.extract_lane(v, 3);
  const ab: f32 = a < b ? b : a;
  const cd: f32 = c < d ? d : c;
  return ab < cd ? cd : ab;
}

/**
 * Scans x[0..n): writes to `out` (f64) the non-finite count, the finite
 * minimum and maximum (+Inf / -Inf when none) and raises cm[c] (f32) to the
 * largest |x| of channel c. channels = 0 skips the channel maxima.
 */
export function scan(x: usize, n: i32, channels: i32, inner: i32, c0: i32, pos0: i32, cm: usize, out: usize): void {
  const INF = f32x4.splat(Infinity);
  const NINF = f32x4.splat(-Infinity);
  let mn = INF, mx = NINF;
  let bad = i32x4.splat(0);
  let smn: f32 = Infinity, smx: f32 = -Infinity;
  let sbad: i32 = 0;
  if (channels == 0 || inner >= 4) {
    // Whole segments of one channel (or no channels): SIMD along the segment.
    let i = 0, c = c0, pos = pos0;
    const seg0 = channels == 0 ? n : inner;
    while (i < n) {
      let seg = seg0 - pos;
      if (seg > n - i) seg = n - i;
      let vcm = f32x4.splat(0);
      let scm: f32 = 0;
      const p = x + (<usize>i << 2);
      let j = 0;
      for (; j + 4 <= seg; j += 4) {
        const v = v128.load(p + (<usize>j << 2));
        const a = f32x4.abs(v);
        const fin = f32x4.lt(a, INF);
        bad = i32x4.sub(bad, v128.not(fin));
        mn = f32x4.pmin(mn, v128.bitselect(v, INF, fin));
        mx = f32x4.pmax(mx, v128.bitselect(v, NINF, fin));
        vcm = f32x4.pmax(vcm, a);
      }
      for (; j < seg; j++) {
        const v = load<f32>(p + (<usize>j << 2));
        const a = abs<f32>(v);
        if (a < Infinity) {
          if (v < smn) smn = v;
          if (v > smx) smx = v;
        } else sbad++;
        if (a > scm) scm = a;
      }
      if (channels != 0) {
        const q = cm + (<usize>c << 2);
        let m = load<f32>(q);
        const l = hmax(vcm);
        if (l > m) m = l;
        if (scm > m) m = scm;
        store<f32>(q, m);
      }
      i += seg;
      pos += seg;
      if (pos == seg0) {
        pos = 0;
        c++;
        if (c == channels) c = 0;
      }
    }
  } else {
    // Short segments (channels along the last axes): element i is channel (c0 + (pos0 + i) / inner) mod channels.
    let c = c0, pos = pos0;
    let i = 0;
    if (inner == 1 && channels >= 4) {
      // Channels contiguous: scalar up to a row start, then SIMD across the channels of each row.
      for (; i < n && c != 0; i++) {
        const v = load<f32>(x + (<usize>i << 2));
        const a = abs<f32>(v);
        if (a < Infinity) {
          if (v < smn) smn = v;
          if (v > smx) smx = v;
        } else sbad++;
        const q = cm + (<usize>c << 2);
        if (a > load<f32>(q)) store<f32>(q, a);
        c++;
        if (c == channels) c = 0;
      }
      for (; i + channels <= n; i += channels) {
        const p = x + (<usize>i << 2);
        let j = 0;
        for (; j + 4 <= channels; j += 4) {
          const v = v128.load(p + (<usize>j << 2));
          const a = f32x4.abs(v);
          const fin = f32x4.lt(a, INF);
          bad = i32x4.sub(bad, v128.not(fin));
          mn = f32x4.pmin(mn, v128.bitselect(v, INF, fin));
          mx = f32x4.pmax(mx, v128.bitselect(v, NINF, fin));
          const q = cm + (<usize>j << 2);
          v128.store(q, f32x4.pmax(v128.load(q), a));
        }
        for (; j < channels; j++) {
          const v = load<f32>(p + (<usize>j << 2));
          const a = abs<f32>(v);
          if (a < Infinity) {
            if (v < smn) smn = v;
            if (v > smx) smx = v;
          } else sbad++;
          const q = cm + (<usize>j << 2);
          if (a > load<f32>(q)) store<f32>(q, a);
        }
      }
    }
    for (; i < n; i++) {
      const v = load<f32>(x + (<usize>i << 2));
      const a = abs<f32>(v);
      if (a < Infinity) {
        if (v < smn) smn = v;
        if (v > smx) smx = v;
      } else sbad++;
      const q = cm + (<usize>c << 2);
      if (a > load<f32>(q)) store<f32>(q, a);
      pos++;
      if (pos == inner) {
        pos = 0;
        c++;
        if (c == channels) c = 0;
      }
    }
  }
  let fmn = hmin(mn), fmx = hmax(mx);
  if (smn < fmn) fmn = smn;
  if (smx > fmx) fmx = smx;
  const nb = i32x4.extract_lane(bad, 0) + i32x4.extract_lane(bad, 1) + i32x4.extract_lane(bad, 2) + i32x4.extract_lane(bad, 3) + sbad;
  store<f64>(out, <f64>nb, 0);
  store<f64>(out, <f64>fmn, 8);
  store<f64>(out, <f64>fmx, 16);
}

// @ts-ignore: decorator
@inline
function bump(tab: usize, b: i32): void {
  const q = tab + (<usize>b << 2);
  store<u32>(q, load<u32>(q) + 1);
}

// 1.5·2^23: adding it to an integer-valued float32 of magnitude below 2^22
// puts that integer in the low mantissa bits (the bit pattern minus MAGIC_BITS).
const MAGIC: f32 = 12582912.0;
const MAGIC_BITS: i32 = 0x4B400000;

/**
 * Adds finite x[0..n) to four tables of 2·B u32 counters at tab (table k at
 * tab + k·8·B bytes): bin floor(x / w) + B, clamped to [0, 2B). `mode` says
 * how x / w is computed, all giving the float64 quotient's floor exactly:
 * 0 float64 division; 1 x·(1/w) in float64 (w a power of two); 2 x·(1/w) in
 * float32 (w a power of two, 1 <= 1/w <= 2^127, B <= 2^21: scaling a float32
 * up by a power of two is exact and the quotient stays below 2^22).
 * `finiteOnly` promises that every x is finite (the SIMD loops); otherwise
 * non-finite x are skipped one by one.
 */
export function bin(x: usize, n: i32, w: f64, mode: i32, B: i32, tab: usize, finiteOnly: i32): void {
  const top = 2 * B - 1;
  const stride: usize = <usize>(8 * B);
  const t1 = tab + stride, t2 = tab + 2 * stride, t3 = tab + 3 * stride;
  const inv: f64 = 1.0 / w;
  let i = 0;
  if (finiteOnly && mode == 2) {
    const IV = f32x4.splat(<f32>inv);
    const LO = f32x4.splat(<f32>-B);
    const HI = f32x4.splat(<f32>(B - 1));
    const MV = f32x4.splat(MAGIC + <f32>B);
    const MB = i32x4.splat(MAGIC_BITS);
    for (; i + 4 <= n; i += 4) {
      const v = v128.load(x + (<usize>i << 2));
      const q = f32x4.pmin(f32x4.pmax(f32x4.floor(f32x4.mul(v, IV)), LO), HI);
      const k = i32x4.sub(f32x4.add(q, MV), MB);
      bump(tab, i32x4.extract_lane(k, 0));
      bump(t1, i32x4.extract_lane(k, 1));
      bump(t2, i32x4.extract_lane(k, 2));
      bump(t3, i32x4.extract_lane(k, 3));
    }
  } else if (finiteOnly) {
    const IV = f64x2.splat(inv);
    const WV = f64x2.splat(w);
    const BV = i32x4.splat(B);
    const ZV = i32x4.splat(0);
    const TV = i32x4.splat(top);
    for (; i + 4 <= n; i += 4) {
      const v = v128.load(x + (<usize>i << 2));
      const lo = f64x2.promote_low_f32x4(v);
      const hi = f64x2.promote_low_f32x4(i32x4.shuffle(v, v, 2, 3, 0, 1));
      const qlo = f64x2.floor(mode ? f64x2.mul(lo, IV) : f64x2.div(lo, WV));
      const qhi = f64x2.floor(mode ? f64x2.mul(hi, IV) : f64x2.div(hi, WV));
      let k = i32x4.shuffle(i32x4.trunc_sat_f64x2_s_zero(qlo), i32x4.trunc_sat_f64x2_s_zero(qhi), 0, 1, 4, 5);
      k = i32x4.min_s(i32x4.max_s(i32x4.add(k, BV), ZV), TV);
      bump(tab, i32x4.extract_lane(k, 0));
      bump(t1, i32x4.extract_lane(k, 1));
      bump(t2, i32x4.extract_lane(k, 2));
      bump(t3, i32x4.extract_lane(k, 3));
    }
  }
  for (; i < n; i++) {
    const v = <f64>load<f32>(x + (<usize>i << 2));
    if (!(abs<f64>(v) < Infinity)) continue;
    let b = Math.floor(mode ? v * inv : v / w) + <f64>B;
    if (b < 0) b = 0;
    else if (b > <f64>top) b = <f64>top;
    bump(tab + <usize>(i & 3) * stride, <i32>b);
  }
}

/** Sums the four tables of 2·B counters into dst (f64, 2·B) and zeroes them. */
export function flush(tab: usize, B: i32, dst: usize): void {
  const m = 2 * B;
  const stride: usize = <usize>(8 * B);
  for (let b = 0; b < m; b++) {
    const q = tab + (<usize>b << 2);
    const s = load<u32>(q) + load<u32>(q + stride) + load<u32>(q + 2 * stride) + load<u32>(q + 3 * stride);
    store<f64>(dst + (<usize>b << 3), <f64>s);
    store<u32>(q, 0);
    store<u32>(q + stride, 0);
    store<u32>(q + 2 * stride, 0);
    store<u32>(q + 3 * stride, 0);
  }
}

// MatMulNBits round-to-nearest straight from a MatMul weight stored [K, N]
// row-major (AssemblyScript, SIMD). Twin of src/quant/matmulNBitsKN.ts, held
// byte-identical to it by test: the same grid (intGrid.ts), the same f64
// rounding (f64 quotient, half to even), the same 4-lane fingerprint.
//
// Per block of `bs` rows: pass 1 walks the rows keeping every column's range
// in accLo/accHi (f32 [N]); the scale and zero point of each column come from
// them in f64 scalar code; pass 2 walks the rows again, four columns per
// vector, encoding in f32x4, folding the dequantized values into the error
// sums and fingerprint, and narrowing the codes sixteen at a time into
// `codes` (u8 [bs, N], row-major like x); then the codes are packed (2 or 4
// rows per byte) and transposed 16×16 bytes at a time in registers into
// each column's blob of B (scalar only for a ragged edge).
//
// Memory (all offsets 16-byte aligned, N a multiple of 4):
//   x f32 [K, N] | accLo, accHi f32 [N] | sArr, zArr f64 [N] | codes u8 [bs * N]
//   B u8 [N * nb * blob] | scales f32 [N * nb] | zps u8 [N * zpBytes] (zeroed by the caller)
//   stats: sumSq @0, errSq @16 (f64x2 partial sums), maxAbs @32 (f32x4), fingerprint lanes i32x4 @48
//   rowC i32 [N] (one row's codes) | tr u8 [512] (transpose scratch)
// Blocks b0..b1-1 only: a caller streaming the weight passes x so that
// x + k·N·4 addresses row k of the rows it placed (wrapping arithmetic), and
// calls block after block in order (the fingerprint and sums carry over in stats).
// accLo/accHi hold the ranges in pass 1 and the f32 scales / zero points in pass 2.
// pmin/pmax (a < b ? b : a, accumulator first) skip NaN as the reference's
// comparisons do, and cost one instruction where min/max's NaN and -0 rules take several.

const P1: i32 = 0x01000193;

export function quantNbitsKN(
  x: usize, K: i32, N: i32, bits: i32, bs: i32, asym: i32,
  accLo: usize, accHi: usize, sArr: usize, zArr: usize, codes: usize,
  B: usize, scales: usize, zps: usize, stats: usize, rowC: usize, tr: usize, b0: i32, b1: i32,
): void {
  const nb = (K + bs - 1) / bs;
  const perByte = 8 / bits;
  const blob = bs / perByte;
  const colStride = <usize>(nb * blob);
  const qmax: f64 = <f64>((1 << bits) - 1);
  const mid: f64 = <f64>(1 << (bits - 1));
  const zpBytes = (nb * bits + 7) / 8;
  const rowBytes = <usize>N << 2;
  let ss = v128.load(stats, 0);
  let ee = v128.load(stats, 16);
  let mx = v128.load(stats, 32);
  let h1 = v128.load(stats, 48);
  const p1 = i32x4.splat(P1);
  const zero4 = f32x4.splat(0);
  const qmax4 = f32x4.splat(<f32>qmax);
  const sArr32 = accLo;
  const zArr32 = accHi;
  for (let b = b0; b < min(b1, nb); b++) {
    const k0 = b * bs;
    const k1 = min(K, k0 + bs);
    for (let n = 0; n < N; n += 4) {
      v128.store(accLo + (<usize>n << 2), zero4);
      v128.store(accHi + (<usize>n << 2), zero4);
    }
    for (let k = k0; k < k1; k++) {
      const row = x + <usize>k * rowBytes;
      if (asym) {
        for (let n = 0; n < N; n += 4) {
          const o = <usize>n << 2;
          const v = v128.load(row + o);
          v128.store(accLo + o, f32x4.pmin(v128.load(accLo + o), v));
          v128.store(accHi + o, f32x4.pmax(v128.load(accHi + o), v));
        }
      } else {
        for (let n = 0; n < N; n += 4) {
          const o = <usize>n << 2;
          v128.store(accHi + o, f32x4.pmax(v128.load(accHi + o), f32x4.abs(v128.load(row + o))));
        }
      }
    }
    for (let n = 0; n < N; n++) {
      let sc: f64 = 1;
      let zp: f64 = 0;
      const hi = <f64>load<f32>(accHi + (<usize>n << 2));
      if (asym) {
        const lo = <f64>load<f32>(accLo + (<usize>n << 2));
        // rtn.ts's rule: the span rounded to float32, then the float32 quotient; scale 1 when zero or subnormal.
        const f = <f64><f32>(<f64><f32>(hi - lo) / qmax);
        if (f >= 1.1754943508222875e-38) {
          sc = f;
          zp = min(qmax, max(0.0, nearest(<f64><f32>(-<f64><f32>(lo / sc)))));
        }
        const at = zps + <usize>(n * zpBytes + b / perByte);
        store<u8>(at, load<u8>(at) | (<i32>zp << ((b % perByte) * bits)));
      } else {
        zp = mid;
        const f = <f64><f32>(hi / (mid - 1));
        if (f >= 1.1754943508222875e-38) sc = f;
      }
      store<f64>(sArr + (<usize>n << 3), sc);
      store<f64>(zArr + (<usize>n << 3), zp);
      store<f32>(sArr32 + (<usize>n << 2), <f32>sc);
      store<f32>(zArr32 + (<usize>n << 2), <f32>zp);
      store<f32>(scales + (<usize>(n * nb + b) << 2), <f32>sc);
    }
    for (let k = k0; k < k1; k++) {
      const row = x + <usize>k * rowBytes;
      let ssr = zero4;
      let eer = zero4;
      for (let n = 0; n < N; n += 4) {
        const o = <usize>n << 2;
        const v = v128.load(row + o);
        const sv = v128.load(sArr32 + o);
        const zv = v128.load(zArr32 + o);
        // The float32 quotient rounded half to even, as rtn.ts and ONNX QuantizeLinear (an f32 division is
        // the exact quotient rounded once to float32, the same as Math.fround of the f64 quotient).
        const r = f32x4.nearest(f32x4.div(v, sv));
        const q = f32x4.pmin(f32x4.pmax(f32x4.add(r, zv), zero4), qmax4);
        const dq = f32x4.mul(sv, f32x4.sub(q, zv));
        const e = f32x4.sub(v, dq);
        ssr = f32x4.add(ssr, f32x4.mul(v, v));
        eer = f32x4.add(eer, f32x4.mul(e, e));
        mx = f32x4.pmax(mx, f32x4.abs(e));
        h1 = i32x4.mul(v128.xor(h1, dq), p1);
        v128.store(rowC + o, i32x4.trunc_sat_f32x4_s(q));
      }
      // Row sums in f32 (a few thousand terms), carried in f64 across rows.
      ss = f64x2.add(ss, f64x2.add(f64x2.promote_low_f32x4(ssr), f64x2.promote_low_f32x4(i8x16.shuffle(ssr, ssr, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7))));
      ee = f64x2.add(ee, f64x2.add(f64x2.promote_low_f32x4(eer), f64x2.promote_low_f32x4(i8x16.shuffle(eer, eer, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7))));
      narrowRow(rowC, codes + <usize>(k - k0) * <usize>N, N);
    }
    // Rows past K in the last block hold the zero point, so the padding decodes to 0.
    for (let j = k1 - k0; j < bs; j++) {
      for (let n = 0; n < N; n++) store<u8>(codes + <usize>j * <usize>N + <usize>n, <u8>load<f64>(zArr + (<usize>n << 3)));
    }
    packBlock(codes, N, bits, blob, B + <usize>(b * blob), colStride, tr);
  }
  v128.store(stats, ss, 0);
  v128.store(stats, ee, 16);
  v128.store(stats, mx, 32);
  v128.store(stats, h1, 48);
}

/** Codes 0..255 of one row, i32 [N], narrowed to bytes. */
// @ts-ignore: decorator
@inline
function narrowRow(src: usize, dst: usize, N: i32): void {
  let n = 0;
  for (; n + 16 <= N; n += 16) {
    const o = <usize>n << 2;
    const a = i16x8.narrow_i32x4_u(v128.load(src + o), v128.load(src + o + 16));
    const b = i16x8.narrow_i32x4_u(v128.load(src + o + 32), v128.load(src + o + 48));
    v128.store(dst + <usize>n, i8x16.narrow_i16x8_u(a, b));
  }
  for (; n < N; n += 4) {
    const c = v128.load(src + (<usize>n << 2));
    const a = i16x8.narrow_i32x4_u(c, c);
    store<i32>(dst + <usize>n, i32x4.extract_lane(i8x16.narrow_i16x8_u(a, a), 0));
  }
}

/** Blob row i of columns n..n+15: its `perByte` code rows packed into one byte per column. */
// @ts-ignore: decorator
@inline
function packedRow(codes: usize, N: i32, bits: i32, i: i32, n: i32): v128 {
  const stride = <usize>N;
  const at = codes + <usize>n;
  if (bits == 8) return v128.load(at + <usize>i * stride);
  if (bits == 4) {
    const r = at + <usize>(2 * i) * stride;
    return v128.or(v128.load(r), i8x16.shl(v128.load(r + stride), 4));
  }
  const r = at + <usize>(4 * i) * stride;
  return v128.or(
    v128.or(v128.load(r), i8x16.shl(v128.load(r + stride), 2)),
    v128.or(i8x16.shl(v128.load(r + 2 * stride), 4), i8x16.shl(v128.load(r + 3 * stride), 6)),
  );
}

/**
 * The block's codes (u8 [bs, N]) packed into every column's blob: dst + n·colStride.
 * Sixteen columns × sixteen blob bytes go through a 4-stage byte transpose
 * (interleave 1, 2, 4, 8 bytes): afterwards vector j holds column bitreverse4(j).
 */
function packBlock(codes: usize, N: i32, bits: i32, blob: i32, dst: usize, colStride: usize, tr: usize): void {
  const perByte = 8 / bits;
  const N16 = blob % 16 == 0 ? N & ~15 : 0;
  const t0 = tr;
  const t1 = tr + 256;
  for (let n = 0; n < N16; n += 16) {
    for (let i0 = 0; i0 < blob; i0 += 16) {
      for (let j = 0; j < 8; j++) {
        const a = packedRow(codes, N, bits, i0 + 2 * j, n);
        const b = packedRow(codes, N, bits, i0 + 2 * j + 1, n);
        v128.store(t0 + <usize>(16 * j), i8x16.shuffle(a, b, 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23));
        v128.store(t0 + <usize>(16 * j + 128), i8x16.shuffle(a, b, 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31));
      }
      for (let j = 0; j < 8; j++) {
        const a = v128.load(t0 + <usize>(32 * j));
        const b = v128.load(t0 + <usize>(32 * j + 16));
        v128.store(t1 + <usize>(16 * j), i8x16.shuffle(a, b, 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23));
        v128.store(t1 + <usize>(16 * j + 128), i8x16.shuffle(a, b, 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31));
      }
      for (let j = 0; j < 8; j++) {
        const a = v128.load(t1 + <usize>(32 * j));
        const b = v128.load(t1 + <usize>(32 * j + 16));
        v128.store(t0 + <usize>(16 * j), i8x16.shuffle(a, b, 0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23));
        v128.store(t0 + <usize>(16 * j + 128), i8x16.shuffle(a, b, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31));
      }
      for (let j = 0; j < 8; j++) {
        const a = v128.load(t0 + <usize>(32 * j));
        const b = v128.load(t0 + <usize>(32 * j + 16));
        const lo = i8x16.shuffle(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
        const hi = i8x16.shuffle(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
        const cLo = bitrev4(j);
        const cHi = bitrev4(j + 8);
        v128.store(dst + <usize>(n + cLo) * colStride + <usize>i0, lo);
        v128.store(dst + <usize>(n + cHi) * colStride + <usize>i0, hi);
      }
    }
  }
  for (let n = N16; n < N; n++) {
    const out = dst + <usize>n * colStride;
    for (let i = 0; i < blob; i++) {
      let v = 0;
      for (let p = 0; p < perByte; p++) v |= <i32>load<u8>(codes + <usize>(i * perByte + p) * <usize>N + <usize>n) << (p * bits);
      store<u8>(out + <usize>i, <u8>v);
    }
  }
}

// @ts-ignore: decorator
@inline
function bitrev4(j: i32): i32 {
  return ((j & 1) << 3) | ((j & 2) << 1) | ((j & 4) >> 1) | ((j & 8) >> 3);
}

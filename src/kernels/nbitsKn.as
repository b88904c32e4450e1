// MatMulNBits round-to-nearest straight from a MatMul weight stored [K, N]
// row-major (AssemblyScript, SIMD). Twin of src/quant/matmulNBitsKN.ts, held
// byte-identical to it by test: the same grid (intGrid.ts), the same f64
// rounding (f64 quotient, half to even), the same 4-lane fingerprint.
//
// Per block of `bs` rows: pass 1 walks the rows keeping every column's range
// in accLo/accHi (f32 [N]); the scale and zero point of each column come from
// them in f64 scalar code; pass 2 walks the rows again, four columns per
// vector, encoding in f32x4 (f64 only where a tie needs it), collecting codes column-major in `codes`
// (u8 [N, bs]) and folding the dequantized values into the error sums and
// fingerprint; then each column's codes are packed into its blob of B.
//
// Memory (all offsets 16-byte aligned, N a multiple of 4):
//   x f32 [K, N] | accLo, accHi f32 [N] | sArr, zArr f64 [N] | codes u8 [N * bs]
//   B u8 [N * nb * blob] | scales f32 [N * nb] | zps u8 [N * zpBytes] (zeroed by the caller)
//   stats: sumSq @0, errSq @16 (f64x2 partial sums), maxAbs @32 (f32x4), fingerprint lanes i32x4 @48
// accLo/accHi hold the ranges in pass 1 and the f32 scales / zero points in pass 2.

const P1: i32 = 0x01000193;

export function quantNbitsKN(
  x: usize, K: i32, N: i32, bits: i32, bs: i32, asym: i32,
  accLo: usize, accHi: usize, sArr: usize, zArr: usize, codes: usize,
  B: usize, scales: usize, zps: usize, stats: usize,
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
  for (let b = 0; b < nb; b++) {
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
          v128.store(accLo + o, f32x4.min(v128.load(accLo + o), v));
          v128.store(accHi + o, f32x4.max(v128.load(accHi + o), v));
        }
      } else {
        for (let n = 0; n < N; n += 4) {
          const o = <usize>n << 2;
          v128.store(accHi + o, f32x4.max(v128.load(accHi + o), f32x4.abs(v128.load(row + o))));
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
      const cj = codes + <usize>(k - k0);
      let ssr = zero4;
      let eer = zero4;
      for (let n = 0; n < N; n += 4) {
        const v = v128.load(row + (<usize>n << 2));
        const sv = v128.load(sArr32 + (<usize>n << 2));
        const zv = v128.load(zArr32 + (<usize>n << 2));
        // The float32 quotient rounded half to even, as rtn.ts and ONNX QuantizeLinear (an f32 division is
        // the exact quotient rounded once to float32, the same as Math.fround of the f64 quotient).
        const r = f32x4.nearest(f32x4.div(v, sv));
        const q = f32x4.min(f32x4.max(f32x4.add(r, zv), zero4), qmax4);
        const dq = f32x4.mul(sv, f32x4.sub(q, zv));
        const e = f32x4.sub(v, dq);
        ssr = f32x4.add(ssr, f32x4.mul(v, v));
        eer = f32x4.add(eer, f32x4.mul(e, e));
        mx = f32x4.max(mx, f32x4.abs(e));
        h1 = i32x4.mul(v128.xor(h1, dq), p1);
        const c = i32x4.trunc_sat_f32x4_s(q);
        const cn = cj + <usize>n * <usize>bs;
        store<u8>(cn, <u8>i32x4.extract_lane(c, 0));
        store<u8>(cn + <usize>bs, <u8>i32x4.extract_lane(c, 1));
        store<u8>(cn + 2 * <usize>bs, <u8>i32x4.extract_lane(c, 2));
        store<u8>(cn + 3 * <usize>bs, <u8>i32x4.extract_lane(c, 3));
      }
      // Row sums in f32 (a few thousand terms), carried in f64 across rows.
      ss = f64x2.add(ss, f64x2.add(f64x2.promote_low_f32x4(ssr), f64x2.promote_low_f32x4(i8x16.shuffle(ssr, ssr, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7))));
      ee = f64x2.add(ee, f64x2.add(f64x2.promote_low_f32x4(eer), f64x2.promote_low_f32x4(i8x16.shuffle(eer, eer, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7))));
    }
    // Rows past K in the last block hold the zero point, so the padding decodes to 0.
    for (let j = k1 - k0; j < bs; j++) {
      for (let n = 0; n < N; n++) store<u8>(codes + <usize>(n * bs + j), <u8>load<f64>(zArr + (<usize>n << 3)));
    }
    for (let n = 0; n < N; n++) {
      const src = codes + <usize>(n * bs);
      const dst = B + <usize>n * colStride + <usize>(b * blob);
      if (bits == 8) {
        memory.copy(dst, src, <usize>bs);
      } else if (bits == 4) {
        for (let i = 0; i < blob; i++) {
          store<u8>(dst + <usize>i, load<u8>(src + <usize>(2 * i)) | (load<u8>(src + <usize>(2 * i + 1)) << 4));
        }
      } else {
        for (let i = 0; i < blob; i++) {
          const c = src + <usize>(4 * i);
          store<u8>(dst + <usize>i, load<u8>(c) | (load<u8>(c + 1) << 2) | (load<u8>(c + 2) << 4) | (load<u8>(c + 3) << 6));
        }
      }
    }
  }
  v128.store(stats, ss, 0);
  v128.store(stats, ee, 16);
  v128.store(stats, mx, 32);
  v128.store(stats, h1, 48);
}

/**
 * TypeScript twin of the weight-space sensitivity kernel (sensKernel.as):
 * per scale group, the squared round-trip error with the group's min-max
 * range and the least one over MseCalibrator's clip ratios, summed in the
 * kernel's order (four interleaved float64 lanes). Same float32 steps as the
 * kernel and as the codecs of src/quant/rtn.ts; tests hold the two kernels
 * bit-identical and the table equal to quantize + weightErrorReport.
 */

/** Lines of a tensor, each cut into scale groups: `rows` lines of `rowLen` floats, groups of `groupSize` (the last of a line shorter when it does not divide rowLen). */
export interface SensLines {
  data: Float32Array;
  rows: number;
  rowLen: number;
  groupSize: number;
}

/** The number format of a config, as the kernel takes it. */
export type SensFormat =
  /** Integer grid: asymmetric (zero point per group from the clipped min/max) or symmetric (zero point `mid`, scale f32(max|x|·num/den)). */
  | { kind: 'int'; qmin: number; qmax: number; asym: boolean; mid: number; num: number; den: number }
  /** NF4: the 16 levels and the 15 decision thresholds (float32, ascending). */
  | { kind: 'nf4'; levels: Float32Array; thresholds: Float32Array }
  /** FP8 E4M3 with a float scale max|x|/448, saturating. */
  | { kind: 'fp8_e4m3' };

/** MseCalibrator's grid: `steps` ratios from 1 down to `minRatio`. */
export interface ClipSearch {
  steps: number;
  minRatio: number;
}

const FLT_MIN = 1.1754943508222875e-38;
const RNE = 6755399441055744; // 1.5·2^52: adding and subtracting it rounds a double half to even
const f32 = Math.fround;

export function groupCount(lines: SensLines): number {
  return lines.rows * Math.ceil(lines.rowLen / lines.groupSize);
}

function ratioOf(j: number, c: ClipSearch): number {
  return c.steps === 1 ? 1 : 1 - (j * (1 - c.minRatio)) / (c.steps - 1);
}

/** Sum of r(i)² over i < n, element i into lane i & 3, total (l0 + l1) + (l2 + l3). */
function laneSum(n: number, r: (i: number) => number): number {
  let l0 = 0, l1 = 0, l2 = 0, l3 = 0;
  let i = 0;
  for (; i + 4 <= n; i += 4) {
    const a = r(i), b = r(i + 1), c = r(i + 2), d = r(i + 3);
    l0 += a * a;
    l1 += b * b;
    l2 += c * c;
    l3 += d * d;
  }
  for (let lane = 0; i < n; i++, lane++) {
    const e = r(i);
    if (lane === 0) l0 += e * e;
    else if (lane === 1) l1 += e * e;
    else l2 += e * e;
  }
  return (l0 + l1) + (l2 + l3);
}

/** |y| rounded to E4M3, half to even, saturating at 448 (the kernel's e4m3Mag). */
const bits = new Uint32Array(1);
const asF32 = new Float32Array(bits.buffer);
export function e4m3MagRef(a: number): number {
  if (a < 0.015625) return f32(f32(a + 16384) - 16384);
  asF32[0] = a;
  const b = bits[0];
  bits[0] = ((b + 0x7ffff + ((b >>> 20) & 1)) & 0xfff00000) >>> 0;
  return Math.min(asF32[0], 448);
}

/** Squared errors of one group [o, o + n) of x for each candidate scale. */
function groupErrors(x: Float32Array, o: number, n: number, fmt: SensFormat, clip: ClipSearch): [number, number] {
  let lo0 = Infinity, hi0 = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = x[o + i];
    if (v < lo0) lo0 = v;
    if (v > hi0) hi0 = v;
  }
  let first = 0, best = Infinity;
  for (let j = 0; j < clip.steps; j++) {
    const r = ratioOf(j, clip);
    let e: number;
    if (fmt.kind === 'int') {
      const { qmin, qmax } = fmt;
      let s: number, zp: number;
      if (fmt.asym) {
        let lo = lo0 * r, hi = hi0 * r;
        if (lo > 0) lo = 0;
        if (hi < 0) hi = 0;
        s = f32(f32(hi - lo) / (qmax - qmin));
        if (!(s >= FLT_MIN)) {
          s = 1;
          zp = qmin > 0 ? qmin : qmax < 0 ? qmax : 0;
        } else {
          zp = Math.min(Math.max((f32(qmin - f32(lo / s)) + RNE) - RNE, qmin), qmax);
        }
      } else {
        s = f32((Math.max(-lo0, hi0) * r * fmt.num) / fmt.den);
        if (!(s >= FLT_MIN)) s = 1;
        zp = fmt.mid;
      }
      e = laneSum(n, (i) => {
        const v = x[o + i];
        const q = Math.min(Math.max(((f32(v / s) + RNE) - RNE) + zp, qmin), qmax);
        return f32((q - zp) * s) - v;
      });
    } else if (fmt.kind === 'nf4') {
      let s = f32(Math.max(-lo0, hi0, 0) * r);
      if (!(s > 0)) s = 1;
      const inv = f32(1 / s);
      const { levels, thresholds } = fmt;
      e = laneSum(n, (i) => {
        const v = x[o + i];
        const y = f32(v * inv);
        let c = 0;
        for (let t = 0; t < 15; t++) if (y > thresholds[t]) c = t + 1;
        return f32(levels[c] * s) - v;
      });
    } else {
      let s = f32((Math.max(-lo0, hi0, 0) * r) / 448);
      if (!(s > 0)) s = 1;
      e = laneSum(n, (i) => {
        const v = x[o + i];
        const y = f32(v / s);
        const m = e4m3MagRef(Math.abs(y));
        return f32((y < 0 ? -m : m) * s) - v;
      });
    }
    if (j === 0) first = e;
    if (e < best) best = e;
  }
  return [first, best];
}

/**
 * Per group, in line order: [min-max error, least clipped error] as
 * out[2k], out[2k + 1] (sums of squared round-trip errors; inputs finite).
 */
export function sensGroupErrorsRef(lines: SensLines, fmt: SensFormat, clip: ClipSearch): Float64Array {
  const { data, rows, rowLen, groupSize } = lines;
  const out = new Float64Array(2 * groupCount(lines));
  let k = 0;
  for (let row = 0; row < rows; row++) {
    for (let g0 = 0; g0 < rowLen; g0 += groupSize) {
      const [a, b] = groupErrors(data, row * rowLen + g0, Math.min(groupSize, rowLen - g0), fmt, clip);
      out[2 * k] = a;
      out[2 * k + 1] = b;
      k++;
    }
  }
  return out;
}

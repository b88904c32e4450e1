/**
 * Which elements share one scale (and zero point). Every granularity is
 * described the same way: the tensor is viewed as [outer, axisLen, inner]
 * around one axis, and each scale group is a 2-D strided run of elements.
 * The scale tensor is laid out as ONNX expects it: [shape[axis]] for
 * per-channel, and the input shape with the axis replaced by the number of
 * blocks for blocked (DequantizeLinear opset 21 `block_size`) quantization.
 */

export type Granularity =
  | { kind: 'tensor' }
  | { kind: 'channel'; axis: number }
  /**
   * Blocks of `size` consecutive elements along `axis` (the reduction axis of
   * the consuming MatMul/Conv). A last block shorter than `size` is kept
   * (ONNX blocked quantization allows it) unless `ragged: 'reject'`.
   */
  | { kind: 'group'; axis: number; size: number; ragged?: 'allow' | 'reject' }
  /** One scale per vector along the last axis (per-token activations: [..., tokens, hidden]). */
  | { kind: 'token' };

/** A scale group: elements base + a*strideA + b*strideB, a < countA, b < countB. */
export interface GroupRun {
  base: number;
  countA: number;
  strideA: number;
  countB: number;
  strideB: number;
}

export interface GroupLayout {
  readonly shape: readonly number[];
  readonly numel: number;
  /** Number of scale groups. */
  readonly groups: number;
  /** Shape of the scale / zero-point tensors. */
  readonly scaleShape: number[];
  /** Largest number of elements in one group (scratch size). */
  readonly maxGroupSize: number;
  /** Fill `run` with the addressing of group g (no allocation). */
  run(g: number, run: GroupRun): void;
}

function normAxis(axis: number, rank: number, what: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) throw new RangeError(`${what}: axis ${axis} is out of range for a rank-${rank} tensor`);
  return a;
}

export function groupLayout(shape: readonly number[], g: Granularity): GroupLayout {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new RangeError(`bad tensor shape [${shape.join(', ')}]`);
  }
  const numel = shape.reduce((a, b) => a * b, 1);
  const rank = shape.length;
  switch (g.kind) {
    case 'tensor':
      return {
        shape, numel, groups: 1, scaleShape: [], maxGroupSize: numel,
        run(_g, r) { r.base = 0; r.countA = 1; r.strideA = 0; r.countB = numel; r.strideB = 1; },
      };
    case 'channel': {
      const axis = normAxis(g.axis, rank, 'per-channel quantization');
      const L = shape[axis];
      const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
      const outer = shape.slice(0, axis).reduce((a, b) => a * b, 1);
      return {
        shape, numel, groups: L, scaleShape: [L], maxGroupSize: outer * inner,
        run(c, r) { r.base = c * inner; r.countA = outer; r.strideA = L * inner; r.countB = inner; r.strideB = 1; },
      };
    }
    case 'token':
    case 'group': {
      if (rank === 0) throw new RangeError(`${g.kind} quantization needs a tensor of rank >= 1`);
      const axis = g.kind === 'token' ? rank - 1 : normAxis(g.axis, rank, 'blocked quantization');
      const L = shape[axis];
      const size = g.kind === 'token' ? Math.max(L, 1) : g.size;
      if (!Number.isInteger(size) || size < 1) throw new RangeError(`blocked quantization: block size ${size} must be a positive integer`);
      if (g.kind === 'group' && g.ragged === 'reject' && L % size !== 0) {
        throw new RangeError(`blocked quantization: axis ${axis} has length ${L}, not a multiple of block size ${size}`);
      }
      const nb = Math.ceil(L / size);
      const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
      const scaleShape = shape.slice();
      scaleShape[axis] = nb;
      const groups = scaleShape.reduce((a, b) => a * b, 1);
      return {
        shape, numel, groups, scaleShape, maxGroupSize: Math.min(size, L),
        run(gi, r) {
          // gi = (o * nb + kb) * inner + i, matching the row-major scale tensor.
          const i = gi % inner;
          const t = (gi - i) / inner;
          const kb = t % nb;
          const o = (t - kb) / nb;
          const k0 = kb * size;
          r.base = o * L * inner + k0 * inner + i;
          r.countA = 1;
          r.strideA = 0;
          r.countB = Math.min(size, L - k0);
          r.strideB = inner;
        },
      };
    }
    default:
      throw new RangeError(`unknown granularity ${(g as { kind: string }).kind}`);
  }
}

export function newRun(): GroupRun {
  return { base: 0, countA: 0, strideA: 0, countB: 0, strideB: 0 };
}

/** Copy a group's elements into `out` (in run order); returns the count. */
export function gather(src: Float32Array, r: GroupRun, out: Float32Array): number {
  let n = 0;
  for (let a = 0; a < r.countA; a++) {
    const base = r.base + a * r.strideA;
    if (r.strideB === 1) {
      out.set(src.subarray(base, base + r.countB), n);
      n += r.countB;
    } else {
      for (let b = 0, j = base; b < r.countB; b++, j += r.strideB) out[n++] = src[j];
    }
  }
  return n;
}

/** Write a group's values back from `vals` (run order) into `dst`. */
export function scatter<T extends Float32Array | Int8Array | Uint8Array>(vals: T, r: GroupRun, dst: T): void {
  let n = 0;
  for (let a = 0; a < r.countA; a++) {
    const base = r.base + a * r.strideA;
    if (r.strideB === 1) {
      dst.set(vals.subarray(n, n + r.countB) as never, base);
      n += r.countB;
    } else {
      for (let b = 0, j = base; b < r.countB; b++, j += r.strideB) dst[j] = vals[n++];
    }
  }
}

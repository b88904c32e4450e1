/**
 * The weights of two models side by side. A model's "logical weights" are
 * what its layers compute with, as float32: plain float tensors, the
 * reader's dequantized views (GGUF block types; ONNX MatMulNBits and
 * DequantizeLinear weights and packed safetensors checkpoints as `q:`
 * tensors named after the float weight they replaced, so they pair with the
 * original), and the weight an ONNX MatMulInteger node (onnx-dynamic)
 * reconstructs from its codes, scale and zero point. Pairs are made by exact name,
 * then through the naming map (block + role: `model.layers.3.self_attn.q_proj.weight`
 * ↔ `blk.3.attn_q.weight`) where that key is unique on both sides.
 */
import type { ModelFile, TensorInfo } from '../formats/types';
import { parseTensorName } from '../formats/naming';
import { dequantizeDq } from '../quant/onnxLayouts';
import { cosineSimilarity, maxAbsError, mse, sqnrDb } from '../quant/metrics';
import { isAnalysable } from './tensorSource';

/** How to rebuild a logical weight from the file (plain data, so it crosses to a pool worker). */
export type WeightSource =
  | { kind: 'tensor'; tensor: string; graph?: string }
  | { kind: 'dq'; graph: string; codes: string; scales: string; zeroPoints?: string; axis: number; blockSize: number };

export interface LogicalWeight {
  name: string;
  /** The stored type as a user reads it: `f16`, `gguf:Q4_K`, `MatMulNBits int4 g32`, `DequantizeLinear int8 per-channel axis 1`, `int8 (MatMulInteger, per-channel)`. */
  type: string;
  shape: number[];
  numel: number;
  /** Bytes on disk of everything stored for it (codes + scales + zero points). */
  bytes: number;
  source: WeightSource;
}

type Lookup = (name: string, graph: string) => TensorInfo | undefined;

function lookupOf(m: ModelFile): Lookup {
  const by = new Map<string, TensorInfo>();
  for (const t of m.tensors) by.set(`${t.graph ?? 'main'}\u0000${t.name}`, t);
  return (name, graph) => by.get(`${graph}\u0000${name}`);
}

const BITS: Record<string, number> = { i8: 8, u8: 8, i4: 4, u4: 4, i16: 16, u16: 16 };

/** Every weight of the model a layer computes with, dequantized forms included (see the file comment). */
export function logicalWeights(m: ModelFile): LogicalWeight[] {
  const find = lookupOf(m);
  const out: LogicalWeight[] = [];
  const used = new Set<TensorInfo>();
  const take = (...ts: (TensorInfo | undefined)[]) => { let b = 0; for (const t of ts) if (t) { used.add(t); b += t.byteLength; } return b; };
  for (const n of m.graph?.nodes ?? []) {
    if (n.opType !== 'MatMulInteger') continue;
    // onnx-dynamic: codes `<W>_quantized` as input B, scale `<W>_scale`, zero point as input 3.
    const Q = find(n.inputs[1], n.graph);
    if (!Q) continue; // an activation, not a stored weight
    const name = Q.name.replace(/_quantized$/, '');
    const S = find(`${name}_scale`, n.graph);
    const Z = n.inputs[3] ? find(n.inputs[3], n.graph) : undefined;
    if (!S) continue;
    const perTensor = S.numel === 1;
    out.push({
      name, type: `${Q.dtype.startsWith('u') ? 'uint' : 'int'}${BITS[Q.dtype] ?? '?'} (MatMulInteger, ${perTensor ? 'per-tensor' : 'per-channel'})`, shape: [...Q.shape], numel: Q.numel, bytes: take(Q, S, Z),
      source: { kind: 'dq', graph: n.graph, codes: Q.name, scales: S.name, zeroPoints: Z?.name, axis: perTensor ? -1 : 1, blockSize: 0 },
    });
  }
  for (const t of m.tensors) {
    if (used.has(t) || !isAnalysable(t)) continue;
    out.push({ name: t.name, type: t.dtype.startsWith('q:') ? t.dtype.slice(2) : t.dtype, shape: [...t.shape], numel: t.numel, bytes: t.byteLength, source: { kind: 'tensor', tensor: t.name, graph: t.graph } });
  }
  return out;
}

/** The weight as float32, decoded from what the file stores. */
export function readLogical(m: ModelFile, s: WeightSource): Float32Array {
  const find = lookupOf(m);
  const need = (name: string, graph: string): TensorInfo => {
    const t = find(name, graph);
    if (!t) throw new Error(`${m.path}: tensor ${name} (graph ${graph}) is missing`);
    return t;
  };
  if (s.kind === 'tensor') {
    const t = need(s.tensor, s.graph ?? 'main');
    const v = m.readFloat32(t);
    return v.length === t.numel ? v : v.slice(0, t.numel);
  }
  const codes = need(s.codes, s.graph);
  return dequantizeDq(m.readFloat32(codes), codes.shape, m.readFloat32(need(s.scales, s.graph)), s.zeroPoints ? m.readFloat32(need(s.zeroPoints, s.graph)) : null, s.axis, s.blockSize);
}

export interface WeightPair {
  a: LogicalWeight;
  b: LogicalWeight;
  matchedBy: 'name' | 'naming-map';
}

export interface Pairing {
  pairs: WeightPair[];
  onlyA: LogicalWeight[];
  onlyB: LogicalWeight[];
}

/** Block + role + weight/bias: the same layer under the Hugging Face and the GGUF naming. */
export function layerKey(name: string): string | undefined {
  const info = parseTensorName(name);
  if (!info.role) return undefined;
  const suffix = /\.(weight|bias)$/.exec(name)?.[1] ?? '';
  return `${info.block ?? '-'}:${info.role}:${suffix}`;
}

export function pairWeights(a: readonly LogicalWeight[], b: readonly LogicalWeight[]): Pairing {
  const pairs: WeightPair[] = [];
  const byName = new Map(b.map((w) => [w.name, w]));
  const leftA: LogicalWeight[] = [];
  const taken = new Set<LogicalWeight>();
  for (const w of a) {
    const o = byName.get(w.name);
    if (o && !taken.has(o)) { pairs.push({ a: w, b: o, matchedBy: 'name' }); taken.add(o); } else leftA.push(w);
  }
  const leftB = b.filter((w) => !taken.has(w));
  const keyed = (ws: LogicalWeight[]) => {
    const m = new Map<string, LogicalWeight | null>();
    for (const w of ws) { const k = layerKey(w.name); if (k) m.set(k, m.has(k) ? null : w); }
    return m;
  };
  const ka = keyed(leftA), kb = keyed(leftB);
  const onlyA: LogicalWeight[] = [];
  for (const w of leftA) {
    const k = layerKey(w.name);
    const o = k !== undefined && ka.get(k) === w ? kb.get(k) : undefined;
    if (o) { pairs.push({ a: w, b: o, matchedBy: 'naming-map' }); taken.add(o); } else onlyA.push(w);
  }
  return { pairs, onlyA, onlyB: leftB.filter((w) => !taken.has(w)) };
}

export interface WeightDiff {
  numel: number;
  sqnrDb: number;
  cosine: number;
  maxAbs: number;
  mse: number;
  /** Both tensors binned over their common range. */
  histogram: { min: number; max: number; a: number[]; b: number[] };
}

/** SQNR (A as the reference), cosine, max |A−B|, MSE (quant/metrics, float64 sums) and a shared-range histogram. */
export function diffWeights(a: Float32Array, b: Float32Array, bins = 64): WeightDiff {
  if (a.length !== b.length) throw new RangeError(`element counts differ (${a.length} vs ${b.length})`);
  let lo = Infinity, hi = -Infinity;
  for (const v of [a, b]) for (let i = 0; i < v.length; i++) { const x = v[i]; if (x < lo) lo = x; if (x > hi) hi = x; }
  const ha = new Array<number>(bins).fill(0), hb = new Array<number>(bins).fill(0);
  if (a.length && Number.isFinite(lo) && Number.isFinite(hi)) {
    const w = hi > lo ? (hi - lo) / bins : 1;
    const bin = (v: number) => Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / w)));
    for (let i = 0; i < a.length; i++) {
      if (Number.isFinite(a[i])) ha[bin(a[i])]++;
      if (Number.isFinite(b[i])) hb[bin(b[i])]++;
    }
  }
  return {
    numel: a.length, sqnrDb: sqnrDb(a, b), cosine: cosineSimilarity(a, b), maxAbs: maxAbsError(a, b), mse: mse(a, b),
    histogram: { min: Number.isFinite(lo) ? lo : 0, max: Number.isFinite(hi) ? hi : 0, a: ha, b: hb },
  };
}

/** 2-D B stored transposed relative to A ([r, c] vs [c, r]): B's values in A's order. */
export function transpose2d(v: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(v.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = v[r * cols + c];
  return out;
}

/**
 * llama.cpp's Hugging Face → GGUF conversion of LLaMA-family models reorders
 * the rows of attn_q and attn_k within each head (the two rotary halves
 * interleaved: GGUF row h·d + 2i + j holds HF row h·d + j·d/2 + i). For such
 * a pair this says which side is the GGUF one and how many heads it has, so
 * its rows can be put back in Hugging Face order before comparing.
 */
export function ropeReorder(ma: ModelFile, mb: ModelFile, p: WeightPair): { side: 'a' | 'b'; heads: number } | undefined {
  if (p.matchedBy !== 'naming-map') return undefined;
  const side = ma.format === 'gguf' && mb.format === 'safetensors' ? 'a' : mb.format === 'gguf' && ma.format === 'safetensors' ? 'b' : undefined;
  if (!side) return undefined;
  const g = side === 'a' ? ma : mb;
  const w = side === 'a' ? p.a : p.b;
  if (g.metadata['general.architecture'] !== 'llama' || w.shape.length !== 2) return undefined;
  const role = parseTensorName(w.name).role;
  const num = (k: string) => { const v = g.metadata[`llama.attention.${k}`]; return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : undefined; };
  const nHead = num('head_count');
  const heads = role === 'q' ? nHead : role === 'k' ? num('head_count_kv') ?? nHead : undefined;
  if (!heads || w.shape[0] % (2 * heads) !== 0) return undefined;
  return { side, heads };
}

/** Rows of a GGUF attn_q / attn_k [rows, cols] back in Hugging Face order (see ropeReorder). */
export function unpermuteRope(v: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const d = rows / heads, half = d / 2;
  const out = new Float32Array(v.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const src = (h * d + 2 * i + j) * cols, dst = (h * d + j * half + i) * cols;
        out.set(v.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

/**
 * Quantized ONNX weights seen as their real values: each weight a
 * com.microsoft MatMulNBits node or a DequantizeLinear node rebuilds from
 * stored codes becomes one logical tensor whose elements are the
 * dequantized float32 values, with dtype `q:<scheme>` (as the safetensors
 * side does for packed checkpoints, safetensors/quantizedView.ts):
 * - MatMulNBits: named after the float weight it replaced (B's name less its
 *   `_Q<bits>` suffix, as ONNX Runtime's quantizer and ours name it), shape
 *   [K, N] (the MatMul weight), dtype e.g. `q:MatMulNBits int4 g128`, with
 *   ` asym` when zero points are stored and ` g_idx` when act-order reordered;
 * - DequantizeLinear on a stored integer tensor: named after the node's
 *   output (or the Cast to float16 right after it), the codes' shape, dtype
 *   e.g. `q:DequantizeLinear int8 per-channel axis 0`, `… int4 block 32 axis 1`.
 *   A float16 output (float16 scales, or that Cast) is rounded to float16.
 * The stored parts (codes; scales and zero points used by nothing else) are
 * hidden from the tensor list; metadata counts them. Activation
 * DequantizeLinear nodes (their input is computed, not stored) are left alone.
 */
import { FormatError, type ConsumerRef, type GraphNode, type MetadataValue, type ModelFile, type TensorInfo } from '../types';
import { LazyModelFile, readPartsRange, type ModelIndex } from '../lazyModelFile';
import { f16ToF32, f32ToF16 } from '../dtypes';
import { openOnnx } from './reader';
import { dequantizeDq, unpackNBits } from './quantizedLayouts';

/** How a logical weight is rebuilt from its parts (all read whole: a decode needs every block of B, every scale). */
interface View {
  parts: TensorInfo[];
  decode(read: (t: TensorInfo) => Uint8Array, floats: (t: TensorInfo) => Float32Array): Float32Array;
}

const CODE_BITS: Record<string, number> = { i8: 8, u8: 8, i4: 4, u4: 4, i16: 16, u16: 16 };

const key = (graph: string | undefined, name: string) => `${graph ?? 'main'}\u0000${name}`;

function intAttr(n: GraphNode, name: string, dflt: number): number {
  const v = n.attributes[name];
  return typeof v === 'number' ? v : typeof v === 'bigint' ? Number(v) : dflt;
}

function roundToF16(a: Float32Array): Float32Array {
  for (let i = 0; i < a.length; i++) a[i] = f16ToF32(f32ToF16(a[i]));
  return a;
}

/** Output-channel axis of a weight of rank `rank` fed to input `i` of node `n` (the reader's rule for these ops). */
function channelAxis(n: GraphNode, i: number, rank: number): number | undefined {
  switch (n.opType) {
    case 'Conv': return i === 1 ? 0 : undefined;
    case 'ConvTranspose': return i === 1 && rank >= 2 ? 1 : undefined;
    case 'MatMul': return i === 1 ? (rank >= 2 ? rank - 1 : 0) : undefined;
    case 'Gemm': return i === 1 ? (intAttr(n, 'transB', 0) ? 0 : 1) : undefined;
    case 'Gather': return i === 0 ? 0 : undefined;
    default: return undefined;
  }
}

export interface OnnxQuantizedIndex { index: ModelIndex; views: Map<string, View>; scheme: string }

/** The logical index of an opened ONNX model, or undefined when it stores no quantized weight. */
export function onnxQuantizedIndex(m: ModelFile): OnnxQuantizedIndex | undefined {
  const nodes = m.graph?.nodes ?? [];
  const byKey = new Map<string, TensorInfo>();
  for (const t of m.tensors) byKey.set(key(t.graph, t.name), t);
  // Stored tensors resolve in their graph or an enclosing one (subgraphs read outer initializers).
  const find = (name: string | undefined, graph: string): TensorInfo | undefined => {
    if (!name) return undefined;
    for (let g = graph; ; g = g.slice(0, g.lastIndexOf('/'))) {
      const t = byKey.get(key(g, name));
      if (t || !g.includes('/')) return t;
    }
  };
  const consumers = new Map<string, { n: GraphNode; i: number }[]>();
  for (const n of nodes) n.inputs.forEach((x, i) => { if (x) { const k = key(n.graph, x); consumers.set(k, [...(consumers.get(k) ?? []), { n, i }]); } });

  const views = new Map<string, View>();
  const logical = new Map<TensorInfo, TensorInfo>(); // first part -> logical tensor
  const parts = new Set<TensorInfo>();
  const viewNodes = new Set<GraphNode>();
  const optional = new Set<TensorInfo>(); // scales / zero points: hidden only if nothing else reads them
  const labels = new Set<string>();
  const add = (n: GraphNode, main: TensorInfo, info: Omit<TensorInfo, 'byteLength' | 'location' | 'source' | 'graph'>, all: (TensorInfo | undefined)[], v: Omit<View, 'parts'>) => {
    const ps = all.filter((p): p is TensorInfo => !!p);
    if (ps.some((p) => parts.has(p) && p !== main && !optional.has(p))) return;
    if (views.has(key(n.graph, info.name)) || logical.has(main)) return;
    const bytes = ps.reduce((s, p) => s + p.byteLength, 0);
    logical.set(main, { ...info, byteLength: bytes, location: main.location, source: main.source, graph: main.graph ?? n.graph });
    views.set(key(main.graph ?? n.graph, info.name), { parts: ps, ...v });
    viewNodes.add(n);
    parts.add(main);
    for (const p of ps) if (p !== main) { parts.add(p); optional.add(p); }
    labels.add(info.dtype.slice(2).replace(/ axis \d+$/, ''));
  };

  for (const n of nodes) {
    if (n.opType === 'MatMulNBits') {
      const B = find(n.inputs[1], n.graph), S = find(n.inputs[2], n.graph);
      const Z = find(n.inputs[3], n.graph), G = find(n.inputs[4], n.graph);
      if (!B || !S || B.dtype !== 'u8') continue;
      if (n.inputs[3] && !Z) continue; // zero points computed at run time: not a stored weight
      const K = intAttr(n, 'K', 0), N = intAttr(n, 'N', 0), bits = intAttr(n, 'bits', 4), blockSize = intAttr(n, 'block_size', 0);
      const nBlocks = blockSize > 0 ? Math.ceil(K / blockSize) : 0;
      if (!(K > 0 && N > 0 && [2, 3, 4, 5, 6, 7, 8].includes(bits) && blockSize >= 16) || B.byteLength !== N * nBlocks * Math.ceil((blockSize * bits) / 8) || S.numel !== N * nBlocks) {
        throw new FormatError(m.path, `MatMulNBits ${n.name}`, `K=${K} N=${N} bits=${bits} block_size=${blockSize} do not match B [${B.shape}] (${B.byteLength} bytes) and ${S.numel} scales`);
      }
      if (Z && Z.dtype !== 'u8') continue; // float zero points (a form ORT also accepts) are not decoded here
      if (Z && Z.byteLength !== N * Math.ceil((nBlocks * bits) / 8)) throw new FormatError(m.path, `MatMulNBits ${n.name}`, `zero points ${Z.name} hold ${Z.byteLength} bytes, expected ${N * Math.ceil((nBlocks * bits) / 8)}`);
      if (G && G.numel !== K) throw new FormatError(m.path, `MatMulNBits ${n.name}`, `g_idx ${G.name} has ${G.numel} entries for K=${K}`);
      const name = B.name.replace(/_Q\d+$/, '') || B.name;
      const dtype = `q:MatMulNBits int${bits} g${blockSize}${Z ? ' asym' : ''}${G ? ' g_idx' : ''}` as const;
      add(n, B, {
        name, dtype, shape: [K, N], numel: K * N,
        layer: { ...B.layer, consumers: [{ node: n.name, opType: n.opType, inputIndex: 1, graph: n.graph }], opType: 'MatMulNBits', outputChannelAxis: 1 },
      }, [B, S, Z, G], {
        decode: (read, floats) => unpackNBits({
          K, N, bits, blockSize, B: read(B), scales: floats(S), zeroPoints: Z ? read(Z) : null,
          gIdx: G ? Int32Array.from(floats(G)) : null,
        }),
      });
    } else if (n.opType === 'DequantizeLinear') {
      const Q = find(n.inputs[0], n.graph);
      if (!Q || !(Q.dtype in CODE_BITS)) continue; // an activation, or a form (float8) not shown dequantized here
      const S = find(n.inputs[1], n.graph), Z = find(n.inputs[2], n.graph);
      if (!S || (n.inputs[2] && !Z)) continue;
      const rank = Q.shape.length;
      const perTensor = S.numel === 1;
      const blockSize = intAttr(n, 'block_size', 0);
      const rawAxis = intAttr(n, 'axis', 1);
      const axis = perTensor ? -1 : rawAxis < 0 ? rawAxis + rank : rawAxis;
      if (!perTensor && !(axis >= 0 && axis < rank)) throw new FormatError(m.path, `DequantizeLinear ${n.name}`, `axis ${rawAxis} is outside the rank-${rank} input ${Q.name}`);
      const expected = perTensor ? 1 : blockSize > 0 ? (Q.numel / Q.shape[axis]) * Math.ceil(Q.shape[axis] / blockSize) : Q.shape[axis];
      if (S.numel !== expected) throw new FormatError(m.path, `DequantizeLinear ${n.name}`, `${S.numel} scales for ${Q.name} [${Q.shape}] (${perTensor ? 'per tensor' : blockSize > 0 ? `blocks of ${blockSize} on axis ${axis}` : `per channel on axis ${axis}`}: ${expected})`);
      if (Z && Z.numel !== S.numel) throw new FormatError(m.path, `DequantizeLinear ${n.name}`, `${Z.numel} zero points for ${S.numel} scales`);
      // The weight's name and users: the node's output, or the Cast to float16 right after it.
      const out = n.outputs[0];
      const next = consumers.get(key(n.graph, out)) ?? [];
      const cast = next.length === 1 && next[0].n.opType === 'Cast' && intAttr(next[0].n, 'to', 0) === 10 ? next[0].n : undefined;
      const name = cast ? cast.outputs[0] : out;
      const users = cast ? consumers.get(key(n.graph, name)) ?? [] : next;
      const half = S.dtype === 'f16' || !!cast;
      const gran = perTensor ? 'per-tensor' : blockSize > 0 ? `block ${blockSize} axis ${axis}` : `per-channel axis ${axis}`;
      const dtype = `q:DequantizeLinear ${Q.dtype.startsWith('u') ? 'uint' : 'int'}${CODE_BITS[Q.dtype]} ${gran}` as const;
      const refs: ConsumerRef[] = users.map((u) => ({ node: u.n.name, opType: u.n.opType, inputIndex: u.i, graph: u.n.graph }));
      const first = users[0];
      const chAxis = (first && channelAxis(first.n, first.i, rank)) ?? (perTensor ? undefined : blockSize > 0 ? (rank === 2 ? 1 - axis : undefined) : axis);
      add(n, Q, {
        name, dtype, shape: [...Q.shape], numel: Q.numel,
        layer: { ...Q.layer, consumers: refs.length ? refs : Q.layer.consumers, opType: first?.n.opType ?? 'DequantizeLinear', outputChannelAxis: chAxis, layerName: first?.n.name ?? n.name },
      }, [Q, S, Z], {
        decode: (_read, floats) => {
          const v = dequantizeDq(floats(Q), Q.shape, floats(S), Z ? floats(Z) : null, axis, blockSize);
          return half ? roundToF16(v) : v;
        },
      });
    }
  }
  if (!views.size) return undefined;
  // Scales and zero points shared with anything else (an activation's QuantizeLinear) stay listed.
  for (const p of optional) {
    const users = consumers.get(key(p.graph, p.name)) ?? [];
    if (users.some((u) => !viewNodes.has(u.n))) parts.delete(p);
  }
  const tensors: TensorInfo[] = [];
  for (const t of m.tensors) {
    const l = logical.get(t);
    if (l) tensors.push(l);
    else if (!parts.has(t)) tensors.push(t);
  }
  const scheme = [...labels].sort().join('; ');
  const metadata: Record<string, MetadataValue> = { ...m.metadata, 'quantization.scheme': scheme, 'quantization.packed_tensors': parts.size };
  const index: ModelIndex = {
    path: m.path, format: 'onnx', formatVersion: m.formatVersion, files: [...m.files], sizeOnDisk: m.sizeOnDisk, metadata, tensors, graph: m.graph,
  };
  return { index, views, scheme };
}

/** An ONNX model whose quantized weights read as their dequantized float32 values. */
export class DequantizedOnnxFile extends LazyModelFile {
  readonly quantization: string;
  private readonly views: Map<string, View>;
  /** The last logical tensor decoded: statistics read a tensor chunk by chunk, in order. */
  private last?: { key: string; values: Float32Array };

  constructor(q: OnnxQuantizedIndex) {
    super(q.index);
    this.views = q.views;
    this.quantization = q.scheme;
  }

  private viewOf(t: TensorInfo): View | undefined {
    return t.dtype.startsWith('q:') ? this.views.get(key(t.graph, t.name)) : undefined;
  }

  /** The stored tensors behind a logical one (empty for ordinary tensors). */
  partsOf(t: TensorInfo): readonly TensorInfo[] {
    return this.viewOf(t)?.parts ?? [];
  }

  override readBytes(t: TensorInfo, offset = 0, length?: number): Uint8Array {
    const v = this.viewOf(t);
    if (!v) return super.readBytes(t, offset, length);
    return readPartsRange(this.path, t, v.parts, offset, length, (p, o, n) => super.readBytes(p, o, n));
  }

  override readFloat32(t: TensorInfo, start = 0, count?: number): Float32Array {
    const v = this.viewOf(t);
    if (!v) return super.readFloat32(t, start, count);
    const n = count ?? t.numel - start;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(n) || start < 0 || n < 0 || start + n > t.numel) {
      throw new FormatError(this.path, `tensor ${t.name}`, `element range ${start}+${n} outside its ${t.numel} elements`);
    }
    const k = key(t.graph, t.name);
    if (this.last?.key !== k) {
      this.last = undefined; // the previous tensor's values go before the next are built
      const values = v.decode((p) => super.readBytes(p), (p) => super.readFloat32(p));
      this.last = { key: k, values };
    }
    const values = this.last.values;
    return start === 0 && n === values.length ? values.slice() : values.slice(start, start + n);
  }

  override close(): void {
    this.last = undefined;
    super.close();
  }
}

/** Open an ONNX model with its quantized weights shown dequantized (the plain reader's model when it has none). */
export function openOnnxDequantized(file: string): ModelFile {
  const raw = openOnnx(file);
  const q = onnxQuantizedIndex(raw);
  if (!q) return raw;
  raw.close();
  return new DequantizedOnnxFile(q);
}

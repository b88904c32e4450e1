/**
 * Test helpers for the quantization engine: a seeded PRNG (tests must be
 * reproducible) and a minimal ONNX model writer so ONNX Runtime itself can
 * be the reference for QuantizeLinear / DequantizeLinear / MatMulNBits.
 */
import * as protobuf from 'protobufjs/minimal';
import { rng } from '../random';

export { rng };

export function gaussian(r: () => number): () => number {
  return () => {
    const u = Math.max(r(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  };
}

export function randomTensor(n: number, seed: number, scale = 1): Float32Array {
  const g = gaussian(rng(seed));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = g() * scale;
  return out;
}

// ---------------------------------------------------------------- ONNX writer (just enough for one-node models)

export const ONNX = { FLOAT: 1, UINT8: 2, INT8: 3, FLOAT8E4M3FN: 17, FLOAT8E5M2: 19, UINT4: 21, INT4: 22 } as const;

export interface OnnxTensor {
  name: string;
  dataType: number;
  dims: number[];
  raw: Uint8Array;
}
export interface OnnxValue {
  name: string;
  elemType: number;
  dims: number[];
}
export interface OnnxNode {
  opType: string;
  domain?: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, number | { f: number }>;
}

function msg(w: protobuf.Writer, field: number, body: (w: protobuf.Writer) => void): void {
  w.uint32((field << 3) | 2).fork();
  body(w);
  w.ldelim();
}

export function onnxModel(opts: {
  nodes: OnnxNode[];
  inputs: OnnxValue[];
  outputs: OnnxValue[];
  initializers: OnnxTensor[];
  opsets: { domain: string; version: number }[];
  irVersion?: number;
}): Uint8Array {
  const w = protobuf.Writer.create();
  w.uint32((1 << 3) | 0).int64(opts.irVersion ?? 10);
  for (const o of opts.opsets) {
    msg(w, 8, (m) => {
      m.uint32((1 << 3) | 2).string(o.domain);
      m.uint32((2 << 3) | 0).int64(o.version);
    });
  }
  const valueInfo = (m: protobuf.Writer, field: number, v: OnnxValue) =>
    msg(m, field, (vi) => {
      vi.uint32((1 << 3) | 2).string(v.name);
      msg(vi, 2, (tp) => msg(tp, 1, (tt) => {
        tt.uint32((1 << 3) | 0).int32(v.elemType);
        msg(tt, 2, (sh) => {
          for (const d of v.dims) msg(sh, 1, (dim) => dim.uint32((1 << 3) | 0).int64(d));
        });
      }));
    });
  msg(w, 7, (g) => {
    opts.nodes.forEach((n, k) => msg(g, 1, (nd) => {
      for (const i of n.inputs) nd.uint32((1 << 3) | 2).string(i);
      for (const o of n.outputs) nd.uint32((2 << 3) | 2).string(o);
      nd.uint32((3 << 3) | 2).string(`node${k}`);
      nd.uint32((4 << 3) | 2).string(n.opType);
      if (n.domain) nd.uint32((7 << 3) | 2).string(n.domain);
      for (const [name, v] of Object.entries(n.attrs ?? {})) {
        msg(nd, 5, (a) => {
          a.uint32((1 << 3) | 2).string(name);
          if (typeof v === 'number') {
            a.uint32((3 << 3) | 0).int64(v);
            a.uint32((20 << 3) | 0).int32(2);
          } else {
            a.uint32((2 << 3) | 5).float(v.f);
            a.uint32((20 << 3) | 0).int32(1);
          }
        });
      }
    }));
    g.uint32((2 << 3) | 2).string('g');
    for (const t of opts.initializers) {
      msg(g, 5, (tp) => {
        for (const d of t.dims) tp.uint32((1 << 3) | 0).int64(d);
        tp.uint32((2 << 3) | 0).int32(t.dataType);
        tp.uint32((8 << 3) | 2).string(t.name);
        tp.uint32((9 << 3) | 2).bytes(t.raw);
      });
    }
    for (const i of opts.inputs) valueInfo(g, 11, i);
    for (const o of opts.outputs) valueInfo(g, 12, o);
  });
  return w.finish();
}

export function f32Bytes(a: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(a).buffer);
}

/** Run a model with ONNX Runtime on one float input; returns the first output's data. */
export async function runOrt(model: Uint8Array, feeds: Record<string, { data: Float32Array; dims: number[] }>): Promise<{ data: ArrayLike<number>; type: string }[]> {
   
  const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');
  const s = await ort.InferenceSession.create(model, { graphOptimizationLevel: 'disabled' });
  const f: Record<string, InstanceType<typeof ort.Tensor>> = {};
  for (const [k, v] of Object.entries(feeds)) f[k] = new ort.Tensor('float32', v.data, v.dims);
  const out = await s.run(f);
  const res = s.outputNames.map((n) => ({ data: out[n].data as ArrayLike<number>, type: out[n].type }));
  await s.release();
  return res;
}

/**
 * Small ONNX models for the conversion tests, built as plain ModelProto
 * objects and written with the project's writer (so they can hold Constant
 * nodes, Gemm attributes and If subgraphs the one-node helper cannot).
 */
import { EditableOnnx, GraphMsg, ModelMsg, NodeMsg, TensorMsg, ValueInfoMsg, writeOnnx } from '../../src/formats/onnx/writer';
import * as assert from 'node:assert/strict';
import { randomTensor } from './quant-testUtil';
import { openOnnx } from '../../src/formats/onnx/reader';
import type { ConvertOnnxResult } from '../../src/pipelines/convertOnnx';

export function vi(name: string, elemType: number, dims: (number | string)[]): ValueInfoMsg {
  return { name, type: { tensor_type: { elem_type: elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } } };
}

export function f32Tensor(name: string, dims: number[], values: Float32Array): TensorMsg {
  return { name, data_type: 1, dims, raw_data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) };
}

export function node(op: string, inputs: string[], outputs: string[], attrs: Record<string, number> = {}, extra: Partial<NodeMsg> = {}): NodeMsg {
  return {
    op_type: op, input: inputs, output: outputs, name: `${op}_${outputs[0]}`,
    attribute: Object.entries(attrs).map(([name, v]) => (Number.isInteger(v) ? { name, type: 2, i: v } : { name, type: 1, f: v })),
    ...extra,
  };
}

export function writeModel(file: string, graph: GraphMsg, opset = 17, extraOpsets: { domain: string; version: number }[] = []): void {
  const model: ModelMsg = { ir_version: 8, opset_import: [{ domain: '', version: opset }, ...extraOpsets], producer_name: 'quantscope-test', graph };
  writeOnnx(new EditableOnnx(`${file}.in-memory`, model, []), file);
}

/** One MatMul: y = x·W with W [K, N] an initializer. */
export function matmulModel(file: string, K: number, N: number, seed: number): Float32Array {
  const w = randomTensor(K * N, seed, 0.5);
  writeModel(file, {
    name: 'g', node: [node('MatMul', ['x', 'W'], ['y'])], initializer: [f32Tensor('W', [K, N], w)],
    input: [vi('x', 1, ['batch', K])], output: [vi('y', 1, ['batch', N])],
  });
  return w;
}

/** Every tensor the conversion left alone has the same bytes in the output. */
export function assertUntouchedIdentical(r: ConvertOnnxResult): number {
  const a = openOnnx(r.source);
  const b = openOnnx(r.output);
  let n = 0;
  try {
    for (const s of r.skipped) {
      const ta = a.tensors.find((t) => t.name === s.name && t.graph === s.graph)!;
      const tb = b.tensors.find((t) => t.name === s.name && t.graph === s.graph);
      assert.ok(tb, `skipped tensor ${s.name} (${s.reason}) is missing from the output`);
      assert.deepEqual(tb.shape, ta.shape);
      assert.ok(Buffer.from(b.readBytes(tb)).equals(Buffer.from(a.readBytes(ta))), `skipped tensor ${s.name}: bytes differ`);
      n++;
    }
  } finally {
    a.close();
    b.close();
  }
  return n;
}


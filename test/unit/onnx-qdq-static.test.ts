/**
 * Static activation QDQ (`--target onnx-qdq --calib`): the written model's
 * QuantizeLinear/DequantizeLinear pairs carry the scale and zero point that
 * an independent measurement of the same activations gives (the runtime's
 * activation collector, another graph rewrite and session), every consumer
 * reads the dequantized tensor, and ONNX Runtime runs it.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadCalibData } from '../../src/runtime/calibData';
import { collectActivations } from '../../src/runtime/activations';
import { decodeModel, tensorData } from '../../src/runtime/graph';
import { EXACT } from '../../src/runtime/session';
import { runCli } from './cli-spawn';

const ROOT = path.resolve(__dirname, '../../..');
const TINY_DIR = path.join(ROOT, 'test', 'fixtures', 'tiny-transformer');
const TINY = path.join(TINY_DIR, 'tiny-transformer.onnx');
const CLS = path.join(ROOT, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_ppocr_mobile_v2.0_cls_infer.onnx');

interface Act { name: string; lo: number; hi: number; scale: number; zeroPoint: number }

describe('onnx-qdq with calibration data: static uint8 activations', function () {
  this.timeout(300_000);
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-qdqs-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('writes Q/DQ pairs with the ranges an independent measurement gives; consumers read the dequantized tensors; ONNX Runtime runs it', async () => {
    const out = path.join(dir, 'tiny.qdq.onnx');
    const calib = path.join(TINY_DIR, 'calibration.txt');
    const r = await runCli(['quantize', TINY, '-o', out, '--target', 'onnx-qdq', '--calib', calib, '--samples', '8', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout.toString('utf8')) as { activations: { calibrator: string; samples: number; tensors: Act[] }; verification: { runtime?: { data: string; outputs: { cosine?: number }[] } } };
    assert.equal(rep.activations.calibrator, 'minmax');
    assert.equal(rep.activations.samples, 8);
    assert.ok(rep.activations.tensors.length >= 9 * 2 - 2, `${rep.activations.tensors.length} activations`);
    assert.equal(rep.verification.runtime?.data, 'calibration');
    assert.ok((rep.verification.runtime?.outputs[0].cosine ?? 0) > 0.99);

    // The written graph, decoded independently of the writer's own structures.
    const m = decodeModel(fs.readFileSync(out), out);
    const g = m.graph!;
    const nodes = g.node ?? [];
    const inits = new Map((g.initializer ?? []).map((t) => [t.name ?? '', t]));
    const qs = nodes.filter((n) => n.op_type === 'QuantizeLinear');
    assert.equal(qs.length, rep.activations.tensors.length);
    // The same 8 windows of 64 bytes the CLI used, through the runtime's own activation collector (unoptimized, as the converter runs it).
    const set = loadCalibData(calib, [{ name: 'input_ids', dtype: 'i64', shape: ['b', 64] }], { samples: 8 });
    const col = await collectActivations(TINY, set.samples, { names: rep.activations.tensors.map((t) => t.name), session: EXACT });
    for (const t of rep.activations.tensors) {
      const h = col.histogram(t.name)!;
      assert.ok(h, `${t.name} measured`);
      assert.equal(t.lo, h.min, `${t.name}: min`);
      assert.equal(t.hi, h.max, `${t.name}: max`);
      const rmin = Math.min(h.min, 0), rmax = Math.max(h.max, 0);
      const scale = Math.fround((rmax - rmin) / 255);
      const zp = Math.round(-rmin / scale);
      const q = qs.find((n) => n.input?.[0] === t.name)!;
      assert.ok(q, `a QuantizeLinear reads ${t.name}`);
      const s = tensorData(inits.get(q.input![1])!, 'scale').data as Float32Array;
      const zt = inits.get(q.input![2])!;
      assert.equal(zt.data_type, 2, 'zero point is uint8 (TensorProto UINT8)');
      const zraw = zt.raw_data as Uint8Array | undefined;
      const z = { data: zraw && zraw.length ? zraw : Uint8Array.from(((zt as { int32_data?: number[] }).int32_data ?? [])) };
      assert.equal(s[0], scale, `${t.name}: scale`);
      assert.equal((z.data as Uint8Array)[0], zp, `${t.name}: zero point`);
      // Nothing but the QuantizeLinear reads the float tensor any more.
      const dq = nodes.find((n) => n.op_type === 'DequantizeLinear' && n.input?.[0] === q.output![0])!;
      const readers = nodes.filter((n) => (n.input ?? []).includes(t.name));
      assert.deepEqual(readers, [q], `${t.name}: read by ${readers.map((n) => n.op_type).join(', ')}`);
      assert.ok(nodes.some((n) => n !== dq && (n.input ?? []).includes(dq.output![0])), `${t.name}: the dequantized tensor feeds its consumers`);
      assert.ok(nodes.indexOf(dq) > nodes.indexOf(q));
    }
  });

  it('--calibrator percentile clips where min-max does not; --calibrator without --calib is a usage error', async () => {
    const calib = path.join(TINY_DIR, 'calibration.txt');
    const run = async (cal: string) => {
      const r = await runCli(['quantize', TINY, '-o', path.join(dir, `tiny.${cal}.onnx`), '--target', 'onnx-qdq', '--calib', calib, '--samples', '8', '--calibrator', cal, '--json', '--no-runtime-check']);
      assert.equal(r.code, 0, r.stderr);
      return new Map((JSON.parse(r.stdout.toString('utf8')).activations.tensors as Act[]).map((t) => [t.name, t]));
    };
    const mm = await run('minmax');
    const pc = await run('percentile');
    assert.deepEqual([...pc.keys()], [...mm.keys()]);
    let narrower = 0;
    for (const [n, t] of pc) {
      assert.ok(t.hi <= mm.get(n)!.hi + 1e-6 && t.lo >= mm.get(n)!.lo - 1e-6, `${n}: percentile range outside min-max`);
      if (t.hi - t.lo < mm.get(n)!.hi - mm.get(n)!.lo - 1e-6) narrower++;
    }
    assert.ok(narrower > 0, 'percentile clipped nothing');
    const bad = await runCli(['quantize', TINY, '-o', path.join(dir, 'x.onnx'), '--target', 'onnx-qdq', '--calibrator', 'mse']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--calibrator sets the static activation ranges of --target onnx-qdq with --calib/);
  });

  it('an opset-9 model whose ops changed meaning by opset 13 is refused with the reason (exit 1), nothing written', async () => {
    const out = path.join(dir, 'cls.qdq.onnx');
    const r = await runCli(['quantize', CLS, '-o', out, '--target', 'onnx-qdq', '--calib', path.join(ROOT, 'test/fixtures/calib/x.npy')]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /cls_infer\.onnx: opset: static activation quantization needs opset 13 .* this model is opset 9 and uses Clip/);
    assert.ok(!fs.existsSync(out));
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('.cls')), []);
  });
});

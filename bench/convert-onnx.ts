/**
 * ONNX conversion: `npm run bench -- convert [--json] [--layers 24] [--keep DIR]`.
 *
 * - convert_onnx_int4_GBps: end to end (open, read, quantize, pack, write,
 *   fsync, rename) `onnx-int4` RTN block 128 on a generated float32 ONNX
 *   stack of 4096×4096 MatMuls (24 layers = 1.5 GiB), in GB/s of float32
 *   input. The file is generated first (distinct weights per layer) and is
 *   in the page cache when the conversion reads it, as right after a download.
 * - convert_onnx_int4_weights_verify_s: reopening the output and checking
 *   every stored weight against the engine's prediction.
 * - convert_ppocr_rec_qdq_s: `onnx-qdq` of PP-OCRv4 rec including the whole
 *   verification (weights and both models run in ONNX Runtime).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { EditableOnnx, ModelMsg, TensorMsg, writeOnnx } from '../src/formats/onnx/writer';
import { convertOnnx } from '../src/pipelines/convertOnnx';
import { verifyOnnx } from '../src/pipelines/verifyOnnx';

const D = 4096;

function arg(argv: string[], name: string, dflt: string): string {
  const i = argv.indexOf(name);
  return i >= 0 && argv[i + 1] ? argv[i + 1] : dflt;
}

/** Weights of about N(0, 0.02²) shape from a fast LCG (sum of two uniforms), different per seed. */
function weights(seed: number): Float32Array {
  const w = new Float32Array(D * D);
  let s = (seed * 2654435761) >>> 0;
  for (let i = 0; i < w.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const a = s / 4294967296;
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    w[i] = (a + s / 4294967296 - 1) * 0.05;
  }
  return w;
}

function generateStack(file: string, layers: number): void {
  const distinct = Array.from({ length: Math.min(layers, 4) }, (_, i) => weights(i + 1));
  const node = [];
  const initializer: TensorMsg[] = [];
  const ed = new EditableOnnx(`${file}.in-memory`, {} as ModelMsg, []);
  for (let l = 0; l < layers; l++) {
    const w = distinct[l % distinct.length];
    // Layers sharing a buffer still differ: flip the sign of one layer in two.
    const bytes = new Uint8Array(w.buffer.slice(0));
    if (l >= distinct.length && (l / distinct.length) % 2 >= 1) new Float32Array(bytes.buffer).forEach((v, i, a) => { a[i] = -v; });
    const t: TensorMsg = { name: `W${l}`, data_type: 1, dims: [D, D] };
    ed.setPayload(t, bytes);
    initializer.push(t);
    node.push({ op_type: 'MatMul', name: `mm${l}`, input: [l ? `h${l - 1}` : 'x', `W${l}`], output: [l === layers - 1 ? 'y' : `h${l}`] });
  }
  const dim = (d: number | string) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d });
  const vi = (name: string) => ({ name, type: { tensor_type: { elem_type: 1, shape: { dim: [dim('batch'), dim(D)] } } } });
  Object.assign(ed.model, { ir_version: 8, opset_import: [{ domain: '', version: 17 }], graph: { name: 'stack', node, initializer, input: [vi('x')], output: [vi('y')] } });
  writeOnnx(ed, file);
}

export async function run(argv: string[]): Promise<Record<string, number | string>> {
  const layers = Number(arg(argv, '--layers', '24'));
  const keep = arg(argv, '--keep', '');
  const dir = keep || fs.mkdtempSync(path.join(os.tmpdir(), 'qs-bench-convert-'));
  const figures: Record<string, number | string> = {};
  try {
    const src = path.join(dir, `stack-${layers}x${D}.onnx`);
    if (!fs.existsSync(src)) generateStack(src, layers);
    const out = path.join(dir, 'stack.int4.onnx');
    const bytes = fs.statSync(src).size;
    // Warm the page cache the way a freshly written file is (generation already did, unless --keep reused one).
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const r = await convertOnnx(src, out, { target: 'onnx-int4', bits: 4, blockSize: 128 });
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    figures.convert_onnx_int4_GBps = +(bytes / 1e9 / secs).toFixed(3);
    figures.convert_onnx_int4_s = +secs.toFixed(3);
    figures.convert_onnx_int4_cpu_s = +((cpu.user + cpu.system) / 1e6).toFixed(3);
    figures.convert_onnx_int4_input_bytes = bytes;
    figures.convert_onnx_int4_output_bytes = r.totals.fileBytesAfter;
    figures.convert_onnx_int4_phases_ms = JSON.stringify({ plan: Math.round(r.timings.planMs), quantize: Math.round(r.timings.quantizeMs), write: Math.round(r.timings.writeMs) });
    const tv = performance.now();
    const v = await verifyOnnx(r, { skipRuntime: true });
    figures.convert_onnx_int4_weights_verify_s = +((performance.now() - tv) / 1000).toFixed(3);
    if (v.weights.mismatched.length) figures.convert_onnx_int4_weights_mismatched = v.weights.mismatched.length;
    fs.rmSync(out, { force: true });

    const rec = path.join(__dirname, '..', '..', 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx');
    const recOut = path.join(dir, 'rec.qdq.onnx');
    await convertOnnx(rec, recOut, { target: 'onnx-qdq' }); // warm-up: ORT and the modules load once
    const tr = performance.now();
    const rr = await convertOnnx(rec, recOut, { target: 'onnx-qdq' });
    const vr = await verifyOnnx(rr, { symbolicDims: { 'p2o.DynamicDimension.1': 160 } });
    figures.convert_ppocr_rec_qdq_s = +((performance.now() - tr) / 1000).toFixed(3);
    figures.convert_ppocr_rec_qdq_convert_s = +(rr.timings.totalMs / 1000).toFixed(3);
    figures.convert_ppocr_rec_qdq_verify_s = +(vr.ms / 1000).toFixed(3);
    figures.convert_ppocr_rec_qdq_cosine = +vr.outputs[0].cosine.toFixed(5);
  } finally {
    if (!keep) fs.rmSync(dir, { recursive: true, force: true });
  }
  return figures;
}

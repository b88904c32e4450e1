/**
 * The Experiment view: one panel per model file. The user ticks configs from
 * the catalogue, weight-range calibrators and algorithms (RTN; GPTQ and AWQ
 * once real data is chosen); the run drives the same pipeline as
 * `quantscope experiment` (pipelines/evaluate.ts runExperiment, whole model
 * quantized per config and algorithm, run on the data in the host pool) plus
 * the weight-space error per layer (analyseSensitivity). Results are cached
 * by file identity + data + settings (algorithms included), and the last
 * selection per file is remembered, so reopening shows them at once.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { workspacePath } from '../workspacePaths';
import { webviewHtml, webviewOptions } from '../webviewHtml';
import { log } from '../log';
import { saveFile } from '../saveFile';
import { type HostPool, runtimeProvider, warnProvider } from '../workerPool';
import { pngBytes } from '../../shared/protocol/common';
import {
  EXPERIMENT_ALGORITHM_IDS, algorithmLabel, experimentCsv, experimentMarkdown, experimentRuns, parseFromExperiment,
  type ExperimentAlgorithmId, type ExperimentAlgorithmOption, type ExperimentConfigOption, type ExperimentResult, type ExperimentRow, type ExperimentState, type ToExperiment,
} from '../../shared/protocol/experiment';
import { CONFIGS } from '../../quant/configs';
import type { CalibratorName } from '../../quant/calibrators';
import { writeFileAtomicSync } from '../../formats/atomicWrite';

export const EXPERIMENT_VIEW_TYPE = 'quantscope.experiment';
const CALIBRATORS = ['minmax', 'mse'];
const DEFAULT_CONFIGS = ['int8-channel', 'int4-g128', 'int4-g32', 'nf4-g64'];

/** The catalogue as the view offers it, each config with the algorithms the engine applies to it. */
function configOptions(): ExperimentConfigOption[] {
  const { calibratedGrid } = require('../../pipelines/evaluate') as typeof import('../../pipelines/evaluate');
  return CONFIGS.map((c) => ({
    id: c.id, label: c.label, format: c.format, granularity: c.granularity === 'group' ? `group ${c.groupSize}` : c.granularity, bits: c.bits,
    algorithms: EXPERIMENT_ALGORITHM_IDS.filter((a) => {
      if (a === 'rtn') return true;
      try { calibratedGrid(c.id, a); return true; } catch { return false; }
    }),
  }));
}

/** RTN always; GPTQ and AWQ with the calibrators the engine runs them with (real data assumed: the view offers them only then). */
function algorithmOptions(): ExperimentAlgorithmOption[] {
  const { experimentRunRefusal } = require('../../pipelines/evaluate') as typeof import('../../pipelines/evaluate');
  return EXPERIMENT_ALGORITHM_IDS.map((id) => ({
    id, label: algorithmLabel(id), needsData: id !== 'rtn',
    ...(id === 'rtn' ? {} : { calibrators: CALIBRATORS.filter((k) => !experimentRunRefusal({ config: 'int4-g128', algorithm: id }, 'real', k as CalibratorName)) }),
  }));
}

export class ExperimentPanel {
  static readonly open = new Map<string, ExperimentPanel>();
  state: ExperimentState;
  private running: AbortController | undefined;

  private constructor(private readonly context: vscode.ExtensionContext, private readonly panel: vscode.WebviewPanel, private readonly pool: HostPool, private readonly file: string) {
    const remembered = context.workspaceState.get<{ configs: string[]; calibrators: string[]; algorithms?: ExperimentAlgorithmId[]; activations?: boolean; data?: string }>(`quantscope.experiment:${file}`);
    const trusted = vscode.workspace.isTrusted;
    const isOnnx = file.toLowerCase().endsWith('.onnx');
    this.state = {
      file, fileName: path.basename(file), phase: 'setup',
      configs: configOptions(),
      calibrators: CALIBRATORS,
      algorithms: algorithmOptions(),
      selection: { configs: remembered?.configs ?? DEFAULT_CONFIGS, calibrators: remembered?.calibrators ?? ['minmax'], algorithms: remembered?.algorithms ?? ['rtn'], activations: remembered?.activations ?? false },
      data: remembered?.data,
      unavailable: !isOnnx ? 'experiments run the model in ONNX Runtime: open an .onnx file' : !trusted ? 'the workspace is not trusted: models are not run' : undefined,
    };
    ExperimentPanel.open.set(file, this);
    panel.onDidDispose(() => { this.running?.abort(); if (ExperimentPanel.open.get(file) === this) ExperimentPanel.open.delete(file); });
    panel.webview.onDidReceiveMessage((raw: unknown) => this.onMessage(raw));
    panel.onDidChangeViewState(() => panel.visible && this.post());
    // Reopen instantly: the remembered selection's results, if cached.
    if (!this.state.unavailable) {
      const hit = this.cached();
      if (hit) this.state = { ...this.state, phase: 'done', result: hit };
    }
  }

  /** Reopens experiment panels after a window reload (the view keeps its file in setState). */
  static registerSerializer(context: vscode.ExtensionContext, pool: HostPool): void {
    context.subscriptions.push(vscode.window.registerWebviewPanelSerializer(EXPERIMENT_VIEW_TYPE, {
      deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown): Promise<void> {
        // The path comes from the page's saved state: only a file inside the workspace is reopened.
        const file = workspacePath((state as { file?: unknown } | undefined)?.file);
        if (file && !ExperimentPanel.open.has(file)) {
          panel.webview.options = webviewOptions(context.extensionUri);
          panel.webview.html = webviewHtml(panel.webview, context.extensionUri, 'experiment', 'Experiment');
          new ExperimentPanel(context, panel, pool, file);
        } else panel.dispose();
        return Promise.resolve();
      },
    }));
  }

  static show(context: vscode.ExtensionContext, pool: HostPool, uri: vscode.Uri): ExperimentPanel {
    const existing = ExperimentPanel.open.get(uri.fsPath);
    if (existing) { existing.panel.reveal(); return existing; }
    const panel = vscode.window.createWebviewPanel(EXPERIMENT_VIEW_TYPE, `Experiment: ${path.basename(uri.fsPath)}`, vscode.ViewColumn.Active, webviewOptions(context.extensionUri));
    panel.webview.html = webviewHtml(panel.webview, context.extensionUri, 'experiment', 'Experiment');
    return new ExperimentPanel(context, panel, pool, uri.fsPath);
  }

  private post(): void {
    // JSON has no ±Infinity: SQNR of an exact layer goes as a string and is revived in the view.
    const state = JSON.parse(JSON.stringify(this.state, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v))) as ExperimentState;
    void this.panel.webview.postMessage({ type: 'experimentState', state } satisfies ToExperiment);
  }

  private set(s: Partial<ExperimentState>): void {
    this.state = { ...this.state, ...s };
    this.post();
  }

  private cacheDir(): string { return path.join(this.context.globalStorageUri.fsPath, 'experiment-cache'); }

  /** File identity (path, size, mtime) of the model and of the data (a file, or a folder's files), plus the selection. */
  private cacheKey(): string {
    const { fileIdentity } = require('../../pipelines/statsCache') as typeof import('../../pipelines/statsCache');
    const sel = this.state.selection;
    const d = this.state.data;
    const data = d === undefined ? null : fs.statSync(d).isDirectory() ? fileIdentity(fs.readdirSync(d).sort().map((f) => path.join(d, f))) : fileIdentity([d]);
    return crypto.createHash('sha256').update(JSON.stringify({ v: 2, files: fileIdentity([this.file]), data, configs: sel.configs, calibrators: sel.calibrators, algorithms: sel.algorithms, activations: !!sel.activations })).digest('hex');
  }

  /** The cached result of the current selection, if any. */
  private cached(): ExperimentResult | undefined {
    try {
      const f = path.join(this.cacheDir(), `${this.cacheKey()}.json`);
      const r = JSON.parse(fs.readFileSync(f, 'utf8'), (_k, v: unknown) => (v === 'Infinity' ? Infinity : v === '-Infinity' ? -Infinity : v)) as ExperimentResult;
      return { ...r, cached: true };
    } catch {
      return undefined;
    }
  }

  private last: Promise<void> = Promise.resolve();

  /** Runs one at a time: a Run while another is running (or still stopping after Cancel) stops it and waits for it first. */
  run(configs: string[], calibrators: string[], algorithms: ExperimentAlgorithmId[] = ['rtn'], activations = false): Promise<void> {
    this.running?.abort();
    this.last = this.last.then(() => this.runNow(configs, calibrators, algorithms, activations)).catch((e: unknown) => {
      const msg = e instanceof Error ? e.message : String(e);
      log().error(`Experiment on ${this.file}: ${msg}`);
      this.set({ phase: 'error', error: msg, progress: undefined });
    });
    return this.last;
  }

  private async runNow(configs: string[], calibrators: string[], algorithms: ExperimentAlgorithmId[], activations: boolean): Promise<void> {
    if (this.state.unavailable) return;
    const known = new Set(CONFIGS.map((c) => c.id));
    const bad = [...configs.filter((c) => !known.has(c)), ...calibrators.filter((c) => !CALIBRATORS.includes(c))];
    if (bad.length) { log().warn(`Experiment view asked for unknown ${bad.join(', ')}`); return; }
    const needData = algorithms.filter((a) => this.state.algorithms.find((o) => o.id === a)?.needsData);
    if (needData.length && !this.state.data) {
      this.set({ phase: 'error', error: `${needData.map(algorithmLabel).join(' and ')} need calibration data: choose data first (with synthetic inputs they would fit the weights to noise)`, progress: undefined });
      return;
    }
    this.state.selection = { configs, calibrators, algorithms, activations };
    await this.context.workspaceState.update(`quantscope.experiment:${this.file}`, { configs, calibrators, algorithms, activations, data: this.state.data });
    const hit = this.cached();
    if (hit) { this.set({ phase: 'done', result: hit, progress: undefined, error: undefined }); return; }
    const ctl = new AbortController();
    this.running = ctl;
    const opts = this.state.configs.filter((c) => configs.includes(c.id));
    const algos = this.state.algorithms.filter((a) => algorithms.includes(a.id));
    const runs = experimentRuns(opts, calibrators, algos);
    const notRun: string[] = [];
    for (const k of calibrators) {
      for (const c of opts) {
        for (const a of algos) {
          if (runs.some((r) => r.config === c && r.calibrator === k && r.algorithm === a)) continue;
          notRun.push(!c.algorithms.includes(a.id) ? `${c.id} × ${a.label}: ${a.label} quantizes onto integer grids (per channel or group)` : `${c.id} × ${k} × ${a.label}: ${a.label} sets each group's scale from its min/max (the ${k} calibrator is for RTN)`);
        }
      }
    }
    this.set({ phase: 'running', result: undefined, error: undefined, progress: { done: 0, total: runs.length + 1 + (activations ? 1 : 0), what: 'loading the data' } });
    const { openModel } = require('../../formats') as typeof import('../../formats');
    const { runExperiment, modelCalib, runtimeWeights, modelActivations, activationRanges } = require('../../pipelines/evaluate') as typeof import('../../pipelines/evaluate');
    const { rangeTarget } = require('../../quant/rtn') as typeof import('../../quant/rtn');
    const { analyseSensitivity } = require('../../pipelines/analyseSensitivity') as typeof import('../../pipelines/analyseSensitivity');
    const model = openModel(this.file);
    const t0 = Date.now();
    try {
      const set = modelCalib(model, this.state.data, { samples: 16 });
      const pool = this.pool.get();
      const nWeights = runtimeWeights(model).length;
      // The engine's steps per calibrator: one per run, and for GPTQ / AWQ one recording plus one per weight and run.
      const perCalibrator = calibrators.map((k) => {
        const mine = runs.filter((r) => r.calibrator === k);
        const calibrated = mine.filter((r) => r.algorithm.id !== 'rtn').length;
        return { calibrator: k, runs: mine, steps: mine.length + (calibrated ? 1 + calibrated * nWeights : 0) };
      }).filter((p) => p.runs.length);
      const total = perCalibrator.reduce((s, p) => s + p.steps, 0) + 1 + (activations ? 1 : 0);
      let base = 0;
      const rows: ExperimentRow[] = [];
      for (const { calibrator, runs: mine, steps } of perCalibrator) {
        const e = await runExperiment(model, set, {
          pool, runs: mine.map((r) => ({ config: r.config.id, algorithm: r.algorithm.id })), calibrator: calibrator as 'minmax' | 'mse', signal: ctl.signal, provider: runtimeProvider(),
          onProgress: (d, _t, what) => this.set({ progress: { done: base + d, total, what: `${calibrator}: ${what ?? `${d} of ${steps}`}` } }),
        });
        if (calibrator === perCalibrator[0].calibrator) warnProvider(e.providerNote);
        base += steps;
        for (const r of e.results) {
          rows.push({
            config: r.config, calibrator, algorithm: r.algorithm, bytes: r.bytes, floatBytes: r.floatBytes, effect: r.effect, seconds: r.seconds,
            outputs: r.outputs.map((o) => ({ output: o.output, kl: o.kl, sqnrDb: o.sqnrDb, cosine: o.cosine, maxAbs: o.maxAbs })),
            ...(r.calibrated ? { calibrated: { weights: r.calibrated.weights.length, roundedToNearest: r.calibrated.roundedToNearest } } : {}),
          });
        }
      }
      this.set({ progress: { done: base, total, what: 'weight-space error per layer' } });
      const weights = runtimeWeights(model);
      const names = new Set(weights.map((w) => w.name));
      const sens = await analyseSensitivity(model, { pool, signal: ctl.signal, options: { configs }, filter: (t) => names.has(t.name) });
      const layers = sens.tensors.map((t) => t.name);
      const layerSqnr: Record<string, number[]> = {};
      for (const c of configs) layerSqnr[c] = sens.tensors.map((t) => t.sensitivity.configs.find((x) => x.config === c)?.sqnrDb ?? NaN);
      const result: ExperimentResult = { data: set.synthetic ? 'synthetic' : 'real', dataSource: set.source, samples: set.samples.length, rows, layers, layerSqnr, seconds: 0, cached: false, ...(notRun.length ? { notRun } : {}) };
      if (activations) {
        this.set({ progress: { done: total - 1, total, what: 'activation ranges per calibrator' } });
        // Every activation becomes an output: a few samples are enough for ranges and keep memory bounded.
        const few = { ...set, samples: set.samples.slice(0, 4) };
        const acts = await modelActivations(model, few, { pool, signal: ctl.signal, provider: runtimeProvider() });
        const methods = ['minmax', 'percentile', 'mse', 'entropy'] as const;
        const ranges = activationRanges(acts.states, [...methods], rangeTarget({ format: 'uint', bits: 8, symmetric: false, granularity: { kind: 'tensor' } }));
        const width = (n: string) => ranges[n].minmax.hi - ranges[n].minmax.lo;
        const names = Object.keys(ranges).filter((n) => Number.isFinite(width(n))).sort((x, y) => width(y) - width(x)).slice(0, 24);
        result.activations = { target: 'uint8 per-tensor, asymmetric', samples: few.samples.length, names, ranges: Object.fromEntries(methods.map((m) => [m, names.map((n) => [ranges[n][m].lo, ranges[n][m].hi] as [number, number])])) };
      }
      result.seconds = (Date.now() - t0) / 1000;
      try {
        fs.mkdirSync(this.cacheDir(), { recursive: true });
        writeFileAtomicSync(path.join(this.cacheDir(), `${this.cacheKey()}.json`), JSON.stringify(result, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)), { overwrite: true });
      } catch (e) {
        log().warn(`Experiment cache not written: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (this.running === ctl) this.set({ phase: 'done', result, progress: undefined });
    } catch (e) {
      if (ctl.signal.aborted) this.set({ phase: 'cancelled', progress: undefined });
      else {
        const msg = e instanceof Error ? e.message : String(e);
        log().error(`Experiment on ${this.file}: ${msg}`);
        this.set({ phase: 'error', error: msg, progress: undefined });
      }
    } finally {
      model.close();
      if (this.running === ctl) this.running = undefined;
    }
  }

  private async save(ext: string, filter: string, data: Uint8Array | string, suffix: string): Promise<void> {
    const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(path.join(path.dirname(this.file), `${path.parse(this.file).name}-experiment${suffix}.${ext}`)), filters: { [filter]: [ext] } });
    if (target) await saveFile(target, data);
  }

  private async onMessage(raw: unknown): Promise<void> {
    const msg = parseFromExperiment(raw);
    if (!msg) { log().warn('Ignored a malformed message from the Experiment view'); return; }
    const r = this.state.result;
    switch (msg.type) {
      case 'ready': this.post(); break;
      case 'log': log()[msg.level](`[experiment] ${msg.message}`); break;
      case 'run': void this.run(msg.configs, msg.calibrators, msg.algorithms, msg.activations); break;
      case 'cancel': this.running?.abort(); break;
      case 'chooseData': {
        const picked = await vscode.window.showOpenDialog({ title: 'Data for the experiment (.npy, .npz, .json, .txt, or a folder)', canSelectFiles: true, canSelectFolders: true, canSelectMany: false });
        if (picked?.[0]) this.set({ data: picked[0].fsPath, phase: 'setup', result: undefined });
        break;
      }
      case 'clearData': this.set({ data: undefined, phase: 'setup', result: undefined }); break;
      case 'exportCsv': if (r) await this.save('csv', 'CSV', experimentCsv(r), ''); break;
      case 'exportMarkdown': if (r) await this.save('md', 'Markdown', experimentMarkdown(this.state.fileName, r), ''); break;
      case 'exportPng': await this.save('png', 'PNG', pngBytes(msg.dataUrl), `-${msg.chart}`); break;
    }
  }
}

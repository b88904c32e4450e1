/**
 * The Quantize wizard (a webview beside the inspector), one per model: it
 * owns the state the webview shows (target, data, the plan problem and its
 * frontier, the user's edits, the run and its result), keeps the settings per
 * model in workspaceState, measures the weight-space sensitivity and solves
 * the frontier in the worker pool, and drives src/pipelines/convert.ts with
 * progress per tensor and Cancel. When the model runs (ONNX), the plan's
 * errors are the output-space effects of the Sensitivity panel's measurement
 * (the same settings and cache, src/pipelines/evaluate.ts), once measured for
 * every weight and config; otherwise the whole plan stays weight-space.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ConvertReport, ConvertRequest, ConvertTarget } from '../../pipelines/convert';
import type { Plan } from '../../quant/plan';
import type { PlanLayer } from '../../analysis/planFrontier';
import type { ModelFile } from '../../formats/types';
import type { RuntimeSensitivity } from '../../pipelines/evaluate';
import { metricLabel, parseFromWizard, pointAtBudget, type ExportFormat, type FromWizard, type ToWizard, type WizardLayer, type WizardResult, type WizardState } from '../../shared/protocol/wizard';
import { webviewHtml, webviewOptions } from '../webviewHtml';
import { MODEL_EDITOR_VIEW_TYPE } from '../inspector/provider';
import { type HostPool, runtimeProvider, warnProvider } from '../workerPool';
import { runtimeCacheDir } from '../panels/sensitivityView';
import { saveFile } from '../saveFile';
import { log } from '../log';

const GGUF_PRESETS = ['Q4_K_M', 'Q5_K_M', 'Q6_K', 'Q8_0', 'Q4_K_S', 'Q5_K_S', 'Q3_K_M', 'Q3_K_S', 'Q2_K', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1'];

/** What is remembered per model (workspaceState). */
interface Saved {
  target?: string;
  preset?: string;
  dataPath?: string;
  edits?: WizardState['edits'];
  /** Bytes of the chosen plan: a budget, re-picked on the frontier when the wizard comes back. */
  chosenBytes?: number;
  uniformMode?: boolean;
  algorithm?: WizardState['algorithm'];
  preferOutput?: boolean;
}

const stateKey = (file: string) => `quantscope.wizard:${file}`;

export class WizardPanel {
  static readonly viewType = 'quantscope.wizard';
  private static readonly open = new Map<string, WizardPanel>();
  private state: WizardState;
  /** Sensitivity per weight for the current target (the frontier's input), in the plan's metric. */
  private layers: PlanLayer[] = [];
  /** The same problem with weight-space errors, and what the table shows of it. */
  private weightLayers: PlanLayer[] = [];
  private weightView: WizardLayer[] = [];
  /** The output-space measurement for the current target and data (from the cache or run here). */
  private effects: RuntimeSensitivity | undefined;
  private measuring: AbortController | undefined;
  /** Current assignment: option index per layer (a frontier point, or a preloaded plan). */
  private assignment: number[] = [];
  private run: AbortController | undefined;
  private analysis: AbortController | undefined;
  private report: ConvertReport | undefined;
  private preload: Plan | undefined;
  /** A preloaded plan for a target without a frontier (gguf), passed to the converter as is. */
  private fixedPlan: Plan | undefined;

  /** Open (or reveal) the wizard of a model; a plan, when given, is preloaded. */
  static show(context: vscode.ExtensionContext, pool: HostPool, uri: vscode.Uri, plan?: Plan): WizardPanel {
    const file = uri.fsPath;
    let w = WizardPanel.open.get(file);
    if (w) {
      w.panel.reveal(w.panel.viewColumn);
      if (plan) w.loadPlan(plan);
      return w;
    }
    const panel = vscode.window.createWebviewPanel(WizardPanel.viewType, `Quantize ${path.basename(file)}`, vscode.ViewColumn.Beside, {
      ...webviewOptions(context.extensionUri),
      // The plan table and the frontier stay as they are while the tab is hidden.
      retainContextWhenHidden: true,
    });
    w = new WizardPanel(context, pool, panel, uri, plan);
    WizardPanel.open.set(file, w);
    return w;
  }

  /** What the wizard of a model shows (scripts and tests; undefined when none is open). */
  static stateOf(file: string): WizardState | undefined {
    const w = WizardPanel.open.get(file);
    return w ? { ...w.state, assignment: w.assignment } : undefined;
  }

  /** A wizard panel VS Code brings back after a reload (the webview saved the model's path with setState). */
  static restore(context: vscode.ExtensionContext, pool: HostPool, panel: vscode.WebviewPanel, uri: vscode.Uri): WizardPanel {
    panel.webview.options = { ...webviewOptions(context.extensionUri) };
    const w = new WizardPanel(context, pool, panel, uri);
    WizardPanel.open.set(uri.fsPath, w);
    return w;
  }

  private constructor(private readonly context: vscode.ExtensionContext, private readonly pool: HostPool, readonly panel: vscode.WebviewPanel, readonly uri: vscode.Uri, plan?: Plan) {
    const file = uri.fsPath;
    this.preload = plan;
    this.state = {
      file, fileName: path.basename(file), format: '', phase: 'loading', targets: [], presets: GGUF_PRESETS,
      data: { kind: 'synthetic', label: 'None: weight-space sensitivity; the written model is checked on synthetic inputs' },
      metric: { kind: 'weight', label: metricLabel({ kind: 'weight' }) }, preferOutput: true, outputEffect: { state: 'none' },
      layers: [], plannable: false, edits: { pinned: [], forced: {}, tied: [] }, selected: -1, assignment: [], uniformMode: false,
      algorithm: { algo: 'rtn', bits: 4, groupSize: 128, symmetric: true },
    };
    panel.webview.html = webviewHtml(panel.webview, context.extensionUri, 'wizard', `Quantize ${path.basename(file)}`);
    panel.onDidDispose(() => {
      WizardPanel.open.delete(file);
      this.run?.abort();
      this.analysis?.abort();
      this.measuring?.abort();
    });
    panel.webview.onDidReceiveMessage((raw: unknown) => {
      const msg = parseFromWizard(raw);
      if (!msg) {
        log().warn('Ignored a malformed message from the Quantize wizard');
        return;
      }
      this.handle(msg).catch((e: unknown) => this.fail(e));
    });
  }

  private saved(): Saved {
    return this.context.workspaceState.get<Saved>(stateKey(this.state.file)) ?? {};
  }

  private remember(): void {
    const s = this.state;
    const bytes = this.assignment.length ? this.layers.reduce((a, l, i) => a + l.options[this.assignment[i]].bytes, 0) : undefined;
    const saved: Saved = { target: s.target, preset: s.preset, dataPath: s.data.path, edits: s.edits, chosenBytes: bytes, uniformMode: s.uniformMode, algorithm: s.algorithm, preferOutput: s.preferOutput };
    void this.context.workspaceState.update(stateKey(s.file), saved);
  }

  private post(msg: ToWizard): void {
    void this.panel.webview.postMessage(msg);
  }

  private send(): void {
    this.post({ type: 'state', state: { ...this.state, assignment: this.assignment } });
  }

  private fail(e: unknown): void {
    const message = e instanceof Error ? e.message : String(e);
    log().error(`Quantize wizard (${this.state.fileName}): ${message}`);
    this.state.error = message;
    this.send();
  }

  private async handle(msg: FromWizard): Promise<void> {
    const s = this.state;
    if (msg.type !== 'ready' && msg.type !== 'log') s.error = undefined;
    switch (msg.type) {
      case 'ready':
        if (s.phase === 'loading' && !s.format) await this.init();
        else this.send();
        return;
      case 'log':
        log()[msg.level](`[wizard] ${msg.message}`);
        return;
      case 'setTarget':
        if (!s.targets.some((t) => t.id === msg.target) || s.phase === 'running') return;
        s.target = msg.target;
        s.edits = { pinned: [], forced: {}, tied: [] };
        this.remember();
        await this.analyse();
        return;
      case 'setPreset':
        if (!GGUF_PRESETS.includes(msg.preset)) return;
        s.preset = msg.preset;
        break;
      case 'pickData': {
        const picked = await vscode.window.showOpenDialog({
          title: 'Calibration data: .npy, .npz, .json, .txt byte windows, or a folder of them', canSelectFiles: true, canSelectFolders: true, canSelectMany: false,
          defaultUri: vscode.Uri.file(path.dirname(s.file)),
        });
        if (!picked?.length) return;
        this.setData(picked[0].fsPath);
        this.remember();
        await this.refreshOutput();
        return;
      }
      case 'loadPlan': {
        const picked = await vscode.window.showOpenDialog({ title: 'Load a plan (quantscope/plan/v1 JSON)', canSelectMany: false, filters: { 'QuantScope plan': ['json'] }, defaultUri: vscode.Uri.file(path.dirname(s.file)) });
        if (!picked?.length) return;
        const { parsePlan } = require('../../quant/plan') as typeof import('../../quant/plan');
        const { openModel } = require('../../formats') as typeof import('../../formats');
        const m = openModel(s.file);
        const names = new Set(m.tensors.map((t) => t.name));
        m.close();
        const file = picked[0].fsPath;
        let raw: unknown;
        try {
          raw = JSON.parse(fs.readFileSync(file, 'utf8'));
        } catch (e) {
          throw new Error(`${file}: ${e instanceof Error ? e.message : String(e)}`);
        }
        this.loadPlan(parsePlan(raw, file, names));
        return;
      }
      case 'clearData':
        this.setData(undefined);
        this.remember();
        await this.refreshOutput();
        return;
      case 'measureOutput':
        await this.measureOutput();
        return;
      case 'cancelMeasure':
        this.measuring?.abort();
        return;
      case 'setMetric':
        s.preferOutput = msg.metric === 'output';
        this.remember();
        this.applyMetric();
        await this.solve();
        return;
      case 'select': {
        const f = s.frontier;
        if (!f || msg.point >= f.points.length) return;
        s.selected = msg.point;
        this.assignment = Array.from(f.choices.slice(msg.point * this.layers.length, (msg.point + 1) * this.layers.length));
        break;
      }
      case 'pin': {
        if (!this.layers.some((l) => l.name === msg.name)) return;
        const p = new Set(s.edits.pinned);
        if (msg.pinned) p.add(msg.name); else p.delete(msg.name);
        s.edits.pinned = [...p];
        if (msg.pinned) delete s.edits.forced[msg.name];
        await this.solve();
        return;
      }
      case 'force': {
        const l = this.layers.find((x) => x.name === msg.name);
        if (!l) return;
        if (msg.config === null) delete s.edits.forced[msg.name];
        else {
          if (!l.options.some((o) => o.label === msg.config)) return;
          s.edits.forced[msg.name] = msg.config;
          s.edits.pinned = s.edits.pinned.filter((n) => n !== msg.name);
        }
        await this.solve();
        return;
      }
      case 'tie': {
        const names = new Set(this.layers.map((l) => l.name));
        if (!msg.names.every((n) => names.has(n))) return;
        s.edits.tied = [...s.edits.tied.filter((g) => !g.some((n) => msg.names.includes(n))), msg.names];
        await this.solve();
        return;
      }
      case 'untie':
        s.edits.tied = s.edits.tied.filter((g) => !g.includes(msg.name));
        await this.solve();
        return;
      case 'tieQkv': {
        const groups = new Map<string, string[]>();
        for (const l of this.state.layers) {
          if (l.block === undefined || (l.role !== 'q' && l.role !== 'k' && l.role !== 'v')) continue;
          const g = groups.get(String(l.block)) ?? [];
          g.push(l.name);
          groups.set(String(l.block), g);
        }
        const tied = [...groups.values()].filter((g) => g.length > 1);
        if (!tied.length) {
          s.notice = 'No q/k/v projections found by name (blocks and roles come from the tensor or node names).';
          break;
        }
        const inTied = new Set(tied.flat());
        s.edits.tied = [...s.edits.tied.filter((g) => !g.some((n) => inTied.has(n))), ...tied];
        s.notice = `Tied q/k/v in ${tied.length} block(s).`;
        await this.solve();
        return;
      }
      case 'setUniform':
        s.uniformMode = msg.uniform;
        break;
      case 'setAlgorithm':
        if ((msg.algo === 'gptq' || msg.algo === 'awq') && !s.data.path) {
          s.error = `${msg.algo.toUpperCase()} needs calibration data: choose it in step 2.`;
          break;
        }
        s.algorithm = { algo: msg.algo, bits: msg.bits, groupSize: msg.groupSize, symmetric: msg.symmetric };
        break;
      case 'quantize':
        await this.quantize();
        return;
      case 'cancel':
        this.run?.abort();
        return;
      case 'back':
        if (s.phase === 'done' || s.phase === 'error') s.phase = s.layers.length || s.target ? 'plan' : s.phase;
        break;
      case 'openOutput':
        if (s.result && fs.existsSync(s.result.output)) {
          // Beside the wizard, not over it: the result page stays in view.
          await vscode.commands.executeCommand('vscode.openWith', vscode.Uri.file(s.result.output), MODEL_EDITOR_VIEW_TYPE, this.panel.viewColumn === vscode.ViewColumn.One ? vscode.ViewColumn.Beside : vscode.ViewColumn.One);
        }
        return;
      case 'compare':
        if (s.result) await vscode.commands.executeCommand('quantscope.compareModels', this.uri, vscode.Uri.file(s.result.output));
        return;
      case 'exportPlan':
        await this.exportPlan(msg.format);
        return;
    }
    this.remember();
    this.send();
  }

  private setData(p: string | undefined): void {
    const s = this.state;
    if (!p) {
      s.data = { kind: 'synthetic', label: 'None: weight-space sensitivity; the written model is checked on synthetic inputs' };
      if (s.algorithm.algo !== 'rtn') s.algorithm = { ...s.algorithm, algo: 'rtn' };
      return;
    }
    s.data = { path: p, kind: 'real', label: `${path.basename(p)}: used by GPTQ/AWQ and to compare the written model's outputs with the original's` };
  }

  /** Open the model, list the targets that fit it, restore the remembered settings. */
  private async init(): Promise<void> {
    const s = this.state;
    const { openModel } = require('../../formats') as typeof import('../../formats');
    const { targetsFor } = require('../../pipelines/convert') as typeof import('../../pipelines/convert');
    let m: ModelFile;
    try {
      m = openModel(s.file);
    } catch (e) {
      s.phase = 'error';
      s.error = `${s.fileName} cannot be opened: ${e instanceof Error ? e.message : String(e)}`;
      this.send();
      return;
    }
    s.format = m.format;
    m.close();
    // The GPTQ and compressed-tensors folders are written by `quantscope quantize` (their output is a folder, not a file the wizard names).
    const { isHfCheckpoint } = require('../../formats/hf/checkpoint') as typeof import('../../formats/hf/checkpoint');
    const checkpoint = m.format !== 'safetensors' || isHfCheckpoint(s.file);
    s.targets = checkpoint ? targetsFor(m.format).filter((t) => !t.id.startsWith('safetensors-')).map((t) => ({ id: t.id, label: t.label, loadedBy: t.loadedBy })) : [];
    if (!s.targets.length) {
      s.phase = 'error';
      s.noTargets = m.format === 'safetensors'
        ? `${s.fileName} has no target here: it is not part of a Hugging Face checkpoint (no config.json beside it). A checkpoint folder converts to GGUF here; GPTQ and compressed-tensors folders are written by \`quantscope quantize --target safetensors-gptq|safetensors-compressed\`.`
        : `No conversion target takes ${m.format} models.`;
      this.send();
      return;
    }
    const saved = this.saved();
    if (saved.dataPath && fs.existsSync(saved.dataPath)) this.setData(saved.dataPath);
    if (saved.algorithm) s.algorithm = saved.algorithm;
    if (saved.uniformMode !== undefined) s.uniformMode = saved.uniformMode;
    if (saved.preferOutput !== undefined) s.preferOutput = saved.preferOutput;
    s.preset = saved.preset ?? 'Q4_K_M';
    if (this.preload && !s.targets.some((t) => t.id === this.preload!.target)) {
      s.error = `The plan is for ${this.preload.target}, which ${s.fileName} (${s.format}) cannot be converted to; it was not loaded.`;
      this.preload = undefined;
    }
    const want = this.preload?.target ?? saved.target;
    s.target = s.targets.some((t) => t.id === want) ? want : s.targets[0].id;
    if (saved.edits && saved.target === s.target && !this.preload) s.edits = saved.edits;
    await this.analyse(this.preload ? undefined : saved.chosenBytes);
  }

  /** Measure the sensitivity of the target's weights (in the pool), then solve the frontier. */
  private async analyse(chosenBytes?: number): Promise<void> {
    const s = this.state;
    this.analysis?.abort();
    const ac = new AbortController();
    this.analysis = ac;
    const { openModel } = require('../../formats') as typeof import('../../formats');
    const { candidates } = require('../../pipelines/convert') as typeof import('../../pipelines/convert');
    const { configsFor, targetBytes } = require('../../quant/plan') as typeof import('../../quant/plan');
    const { analyseSensitivity } = require('../../pipelines/analyseSensitivity') as typeof import('../../pipelines/analyseSensitivity');
    const target = s.target as ConvertTarget;
    const ids = configsFor(target).map((c) => c.id);
    s.plannable = ids.length > 0 || target === 'gguf';
    s.phase = 'plan';
    s.frontier = undefined;
    s.selected = -1;
    this.layers = [];
    this.weightLayers = [];
    this.weightView = [];
    this.assignment = [];
    s.layers = [];
    this.measuring?.abort();
    this.effects = undefined;
    s.outputEffect = { state: 'none' };
    s.metric = { kind: 'weight', label: metricLabel({ kind: 'weight' }) };
    if (!s.plannable) {
      s.analysing = undefined;
      this.send();
      return;
    }
    if (target === 'gguf') {
      await this.analyseGguf(ac, chosenBytes);
      return;
    }
    const m = openModel(s.file);
    try {
      const todo = candidates(m, target);
      if (!todo.length) {
        s.notice = `${s.fileName} has no weight ${target} converts (MatMul/Gemm${target === 'onnx-qdq' ? '/Conv' : ''} with a constant float weight).`;
        this.send();
        return;
      }
      s.analysing = { done: 0, total: todo.length };
      this.send();
      const want = new Set(todo.map((t) => t.name));
      let last = 0;
      const sens = await analyseSensitivity(m, {
        pool: this.pool.get(), signal: ac.signal, options: { configs: ids }, filter: (t) => want.has(t.name),
        onTensor: (_n, _s, done, total) => {
          s.analysing = { done, total };
          if (Date.now() - last > 200) {
            last = Date.now();
            this.send();
          }
        },
      });
      if (ac.signal.aborted) return;
      const byName = new Map(m.tensors.map((t) => [t.name, t]));
      const layers: PlanLayer[] = [];
      const view: WizardLayer[] = [];
      for (const x of sens.tensors) {
        const t = byName.get(x.name)!;
        const cfgs = x.sensitivity.configs.filter((c) => ids.includes(c.config));
        const options = [{ label: 'keep', bytes: t.byteLength, error: 0 }, ...cfgs.map((c) => ({ label: c.config, bytes: targetBytes(target, c.config, t.shape, t.layer.outputChannelAxis, t.dtype), error: c.mse * x.sensitivity.numel }))];
        layers.push({ name: x.name, params: x.sensitivity.numel, options });
        view.push({
          name: x.name, params: x.sensitivity.numel, op: t.layer.layerName ?? t.layer.opType, block: t.layer.block, role: t.layer.role,
          options: options.map((o, i) => ({ ...o, sqnrDb: i === 0 ? undefined : cfgs[i - 1].sqnrDb })),
        });
      }
      this.weightLayers = layers;
      this.weightView = view;
      this.layers = layers;
      s.layers = view;
      s.analysing = undefined;
      if (sens.failed.length) s.notice = `${sens.failed.length} weight(s) could not be measured and are left as they are (first: ${sens.failed[0].name}: ${sens.failed[0].error}).`;
      if (!layers.length) {
        s.notice = `${s.fileName}: none of its weights could be measured for ${target}.`;
        this.send();
        return;
      }
    } catch (e) {
      if (ac.signal.aborted) return;
      s.analysing = undefined;
      throw e;
    } finally {
      m.close();
    }
    await this.lookupOutput();
    if (ac.signal.aborted) return;
    this.applyMetric();
    await this.solve(chosenBytes);
  }

  /**
   * GGUF (a GGUF file or a Hugging Face checkpoint): each tensor llama.cpp may quantize is offered
   * its source type ("keep") and the ggml types its rows take, their error measured by encoding and
   * decoding sampled rows with the conversion's own encoders (the CLI's --budget path), in the pool.
   */
  private async analyseGguf(ac: AbortController, chosenBytes?: number): Promise<void> {
    const s = this.state;
    const { measureGgufChoices, ggufSourceBudgetInput, hfBudgetInput } = require('../../pipelines/ggufBudget') as typeof import('../../pipelines/ggufBudget');
    const { GGUF_PRESETS: PRESETS, isGgufPreset } = require('../../quant/ggml/presets') as typeof import('../../quant/ggml/presets');
    const { isHfCheckpoint } = require('../../formats/hf/checkpoint') as typeof import('../../formats/hf/checkpoint');
    const preset = (s.preset ?? 'Q4_K_M').toUpperCase();
    const ftype = isGgufPreset(preset) ? PRESETS[preset].ftype : 0;
    const input = isHfCheckpoint(s.file) ? hfBudgetInput(s.file, ftype) : ggufSourceBudgetInput(s.file, ftype);
    try {
      s.outputEffect = { state: 'unavailable', why: 'a GGUF model runs in llama.cpp, not in ONNX Runtime; the plan uses the error of the ggml encoders on sampled rows of the real weights' };
      s.analysing = { done: 0, total: input.tensors.length };
      this.send();
      let last = 0;
      const g = await measureGgufChoices(input, {
        pool: this.pool.get(), signal: ac.signal,
        onTensor: (done, total) => {
          s.analysing = { done, total };
          if (Date.now() - last > 200) { last = Date.now(); this.send(); }
        },
      });
      if (ac.signal.aborted) return;
      const layers: PlanLayer[] = g.choices.map((c) => ({ name: c.name, params: c.params ?? 0, options: c.options.map((o) => ({ label: o.label, bytes: o.bytes, error: o.error })) }));
      const view: WizardLayer[] = g.choices.map((c, i) => {
        const b = /^blk\.(\d+)\.(.+)\.weight$/.exec(c.name);
        return { name: c.name, params: c.params ?? 0, op: 'ggml', block: b ? Number(b[1]) : undefined, role: b ? b[2] : c.name.replace(/\.weight$/, ''), options: layers[i].options.map((o, j) => ({ ...o, sqnrDb: j === 0 ? undefined : g.sqnrDb[i][j] })) };
      });
      this.weightLayers = layers;
      this.weightView = view;
      this.layers = layers;
      s.layers = view;
      s.analysing = undefined;
    } catch (e) {
      if (ac.signal.aborted) return;
      s.analysing = undefined;
      throw e;
    } finally {
      if ('close' in input && typeof input.close === 'function') input.close();
    }
    this.applyMetric();
    await this.solve(chosenBytes);
  }

  /** The model, the target's planned weights and the data the output-space measurement runs with (the Sensitivity panel's settings). */
  private outputRequest(m: ModelFile) {
    const { candidates } = require('../../pipelines/convert') as typeof import('../../pipelines/convert');
    const { configsFor } = require('../../quant/plan') as typeof import('../../quant/plan');
    const { planEffectSettings, modelCalib, PLAN_EFFECT_SAMPLES } = require('../../pipelines/evaluate') as typeof import('../../pipelines/evaluate');
    const target = this.state.target as ConvertTarget;
    const settings = planEffectSettings(m, new Set(candidates(m, target).map((t) => t.name)), configsFor(target).map((c) => c.id));
    return { settings, set: () => modelCalib(m, this.state.data.path, { samples: PLAN_EFFECT_SAMPLES }) };
  }

  /** Why the output-space effect cannot be measured here (undefined when it can). */
  private outputWhy(m: ModelFile): string | undefined {
    if (m.format !== 'onnx') return `only ONNX models run here (this is ${m.format})`;
    if (!vscode.workspace.isTrusted) return 'the workspace is not trusted: models are not run';
    if (!this.outputRequest(m).settings.weights.length) return `no float32 weight of ${this.state.target} runs in the runtime's measurement`;
    return undefined;
  }

  /** A cached measurement for this model, target and data: used at once (nothing runs). */
  private async lookupOutput(): Promise<void> {
    const s = this.state;
    this.effects = undefined;
    if (!this.weightLayers.length) return;
    const { openModel } = require('../../formats') as typeof import('../../formats');
    const { cachedRuntimeSensitivity } = require('../../pipelines/evaluate') as typeof import('../../pipelines/evaluate');
    const m = openModel(s.file);
    try {
      const why = this.outputWhy(m);
      if (why) {
        s.outputEffect = { state: 'unavailable', why };
        return;
      }
      const req = this.outputRequest(m);
      const hit = await cachedRuntimeSensitivity(m, req.set(), { cacheDir: runtimeCacheDir(this.context), provider: runtimeProvider(), ...req.settings });
      this.setEffects(hit);
    } catch (e) {
      s.outputEffect = { state: 'error', error: e instanceof Error ? e.message : String(e) };
    } finally {
      m.close();
    }
  }

  private setEffects(r: RuntimeSensitivity | undefined): void {
    this.effects = r;
    const first = r?.weights[0]?.configs[0]?.outputs[0];
    this.state.outputEffect = r
      ? { state: 'done', data: r.data, dataSource: r.dataSource, samples: r.samples, cached: !!r.cached, output: first?.output ?? '', outputKind: first?.kind ?? 'values' }
      : { state: 'none' };
  }

  /** The data changed: another measurement (cached or not) applies. */
  private async refreshOutput(): Promise<void> {
    this.measuring?.abort();
    await this.lookupOutput();
    this.applyMetric();
    await this.solve();
  }

  /**
   * The plan's errors: output-space when measured for every weight and config
   * the plan offers and the user has not asked for weight-space; otherwise
   * weight-space for the whole plan, with a note saying why.
   */
  private applyMetric(): void {
    const s = this.state;
    const { withOutputEffects } = require('../../analysis/planFrontier') as typeof import('../../analysis/planFrontier');
    const weight = () => {
      this.layers = this.weightLayers;
      s.layers = this.weightView;
    };
    const r = this.effects;
    if (!r || !this.weightLayers.length) {
      weight();
      s.metric = { kind: 'weight', label: metricLabel({ kind: 'weight' }) };
      return;
    }
    const effects = new Map(r.weights.map((w) => [w.name, new Map(w.configs.map((c) => [c.config, c.effect]))]));
    const out = withOutputEffects(this.weightLayers, effects);
    const label = metricLabel({ kind: 'output', data: r.data, samples: r.samples });
    if (!out.layers) {
      weight();
      s.metric = { kind: 'weight', label: metricLabel({ kind: 'weight' }), note: `Weight-space for the whole plan: ${out.missing.length} weight/config pair(s) have no measured output effect (first: ${out.missing[0]}), and the two metrics are not summed together.` };
      return;
    }
    if (!s.preferOutput) {
      weight();
      s.metric = { kind: 'weight', label: metricLabel({ kind: 'weight' }), note: `Weight-space by choice; ${label} is available.` };
      return;
    }
    this.layers = out.layers;
    s.layers = this.weightView.map((v, i) => ({ ...v, options: v.options.map((o, j) => ({ ...o, error: out.layers[i].options[j].error })) }));
    s.metric = { kind: 'output', label };
  }

  /** Run the model: the output-space effect of every planned weight under every config, in the pool, with progress and Cancel. */
  private async measureOutput(): Promise<void> {
    const s = this.state;
    if (this.measuring || !this.weightLayers.length || s.phase === 'running') return;
    const { openModel } = require('../../formats') as typeof import('../../formats');
    const { runtimeSensitivity } = require('../../pipelines/evaluate') as typeof import('../../pipelines/evaluate');
    const ac = new AbortController();
    this.measuring = ac;
    const m = openModel(s.file);
    const target = s.target;
    const dataPath = s.data.path;
    try {
      const why = this.outputWhy(m);
      if (why) {
        s.outputEffect = { state: 'unavailable', why };
        this.send();
        return;
      }
      const req = this.outputRequest(m);
      s.outputEffect = { state: 'running', done: 0, total: req.settings.weights.length * req.settings.configs.length };
      this.send();
      let last = 0;
      const r = await runtimeSensitivity(m, req.set(), {
        pool: this.pool.get(), signal: ac.signal, cacheDir: runtimeCacheDir(this.context), provider: runtimeProvider(), ...req.settings,
        onProgress: (done, total) => {
          if (ac.signal.aborted) return;
          s.outputEffect = { state: 'running', done, total };
          if (Date.now() - last > 200) {
            last = Date.now();
            this.send();
          }
        },
      });
      // The target or the data changed while it ran: that result is cached for later, not this plan's.
      if (ac.signal.aborted || s.target !== target || s.data.path !== dataPath) return;
      warnProvider(r.providerNote);
      this.setEffects(r);
      s.preferOutput = true;
      this.applyMetric();
      log().info(`Quantize wizard: output-space effects of ${r.weights.length} weights × ${r.configs.length} configs on ${r.samples} ${r.data} samples in ${r.seconds.toFixed(1)} s`);
    } catch (e) {
      if (s.target !== target || s.data.path !== dataPath) return;
      if (ac.signal.aborted || (e instanceof Error && e.name === 'CancelledError')) {
        s.outputEffect = { state: 'none' };
        s.notice = 'Output-space measurement cancelled; the plan stays weight-space.';
      } else {
        s.outputEffect = { state: 'error', error: e instanceof Error ? e.message : String(e) };
        log().error(`Quantize wizard ${s.file}: output-space measurement: ${s.outputEffect.error}`);
      }
    } finally {
      m.close();
      if (this.measuring === ac) this.measuring = undefined;
    }
    this.remember();
    await this.solve();
  }

  /** Solve the frontier (pool job) and re-pick the plan at the same size, or load the preloaded plan. */
  private async solve(chosenBytes?: number): Promise<void> {
    const s = this.state;
    if (!this.layers.length) {
      this.send();
      return;
    }
    const keepBytes = chosenBytes ?? (this.assignment.length ? this.layers.reduce((a, l, i) => a + l.options[this.assignment[i]].bytes, 0) : undefined);
    const t0 = performance.now();
    let f;
    try {
      f = await this.pool.get().run({ kind: 'planFrontier', layers: this.layers, edits: s.edits });
    } catch (e) {
      // An edit the problem cannot satisfy (ties across a pin): undo nothing, say why.
      s.error = e instanceof Error ? e.message : String(e);
      this.send();
      return;
    }
    s.frontier = { points: f.points, choices: Array.from(f.choices), uniform: f.uniform, method: f.method, exact: f.exact, ms: performance.now() - t0 };
    if (this.preload) {
      this.loadPlan(this.preload);
      return;
    }
    // Default: the plan at the size of uniform INT4 g128 (or the middle of the frontier).
    const params = this.layers.reduce((a, l) => a + l.params, 0);
    const ref = f.uniform.find((u) => u.config === 'int4-g128')?.bytes ?? (4.5 * params) / 8;
    const k = pointAtBudget(f.points, keepBytes ?? ref);
    this.select(k >= 0 ? k : 0);
    this.remember();
    this.send();
  }

  private select(k: number): void {
    const n = this.layers.length;
    this.state.selected = k;
    this.assignment = Array.from(this.state.frontier!.choices.slice(k * n, (k + 1) * n));
  }

  /** A plan from elsewhere (the sensitivity panel): its choices become the assignment, shown as "preloaded". */
  private loadPlan(plan: Plan): void {
    const s = this.state;
    if (s.phase === 'running') return;
    if (!s.targets.some((t) => t.id === plan.target)) {
      this.preload = undefined;
      s.error = `The plan is for ${plan.target}, which ${s.fileName} (${s.format || 'this model'}) cannot be converted to; it was not loaded.`;
      this.send();
      return;
    }
    if (plan.target !== s.target) {
      this.preload = plan;
      s.target = plan.target;
      s.edits = { pinned: [], forced: {}, tied: [] };
      void this.analyse().catch((e: unknown) => this.fail(e));
      return;
    }
    if (!s.plannable) {
      // gguf: per-tensor ggml types are passed through as they are.
      this.preload = undefined;
      this.fixedPlan = plan;
      s.notice = `Preloaded plan: ${Object.keys(plan.tensors).length} per-tensor choice(s), applied on top of the preset.`;
      this.send();
      return;
    }
    if (!this.layers.length || !s.frontier) {
      // Still measuring: applied once the frontier is solved.
      this.preload = plan;
      return;
    }
    this.preload = undefined;
    const missing: string[] = [];
    this.assignment = this.layers.map((l) => {
      const c = plan.tensors[l.name] ?? plan.default ?? 'keep';
      const j = l.options.findIndex((o) => o.label === c);
      if (j < 0) missing.push(`${l.name}: ${c}`);
      return Math.max(0, j);
    });
    s.selected = -1;
    s.uniformMode = false;
    s.phase = 'plan';
    s.notice = `Preloaded plan: ${Object.keys(plan.tensors).length} weight(s) chosen${missing.length ? `; ${missing.length} choice(s) the target cannot write were kept as they are (first: ${missing[0]})` : ''}. Move the slider or click a point to replace it.`;
    this.remember();
    this.send();
  }

  private currentPlan(): Plan {
    const { planOf } = require('../../analysis/planFrontier') as typeof import('../../analysis/planFrontier');
    const s = this.state;
    if (!s.plannable && this.fixedPlan && this.fixedPlan.target === s.target) return this.fixedPlan;
    if (!s.plannable || !this.assignment.length) {
      const { PLAN_SCHEMA } = require('../../quant/plan') as typeof import('../../quant/plan');
      return { schema: PLAN_SCHEMA, target: s.target as ConvertTarget, model: s.fileName, tensors: {} };
    }
    const { OUTPUT_SPACE_ERROR } = require('../../analysis/budgetMarks') as typeof import('../../analysis/budgetMarks');
    const { WEIGHT_SPACE_ERROR } = require('../../analysis/budgetPlan') as typeof import('../../analysis/budgetPlan');
    const { GGUF_BUDGET_ERROR } = require('../../pipelines/ggufBudget') as typeof import('../../pipelines/ggufBudget');
    const kind = s.metric.kind === 'output' ? `${OUTPUT_SPACE_ERROR}; ${s.metric.label}` : s.target === 'gguf' ? GGUF_BUDGET_ERROR : WEIGHT_SPACE_ERROR;
    return planOf(s.target as ConvertTarget, this.layers, this.assignment, s.fileName, undefined, kind);
  }

  private async quantize(): Promise<void> {
    const s = this.state;
    if (s.phase === 'running' || !s.target) return;
    if (!vscode.workspace.isTrusted) {
      s.error = 'Quantizing runs the model to verify the output; trust this workspace first.';
      this.send();
      return;
    }
    const { convert, defaultOutputPath, loadCalibration, VerificationError } = require('../../pipelines/convert') as typeof import('../../pipelines/convert');
    const target = s.target as ConvertTarget;
    const a = s.algorithm;
    const usePlan = s.plannable && !s.uniformMode && this.assignment.length > 0;
    const bits = target === 'onnx-qdq' ? (a.bits === 4 ? 4 : 8) : a.bits;
    const planned = usePlan && target === 'gguf' ? this.currentPlan().predicted : undefined;
    const params = this.layers.reduce((n, l) => n + l.params, 0);
    const label = planned && params ? `mixed-${((8 * planned.bytes) / params).toFixed(2)}bpw` : undefined;
    const output = defaultOutputPath(s.file, target, { bits: usePlan ? undefined : bits, preset: s.preset, label });
    const req: ConvertRequest = { source: s.file, output, target, pool: this.pool.get() };
    if (fs.existsSync(output)) {
      const ok = await vscode.window.showWarningMessage(`${path.basename(output)} exists. Replace it?`, { modal: true }, 'Replace');
      if (ok !== 'Replace') return;
      req.overwrite = true;
    }
    if (target === 'gguf') {
      // The preset decides what the plan does not name; a plan from the frontier names every tensor it measured.
      req.preset = s.preset;
      if (usePlan) {
        req.plan = this.currentPlan();
        req.planOut = `${output}.plan.json`;
      } else if (this.fixedPlan?.target === 'gguf') req.plan = this.fixedPlan;
    }
    else if (usePlan) {
      req.plan = this.currentPlan();
      req.planOut = `${output}.plan.json`;
    } else if (target !== 'onnx-dynamic') Object.assign(req, { bits, blockSize: a.groupSize, symmetric: a.symmetric });
    if (target === 'onnx-int4') req.algo = a.algo;
    s.phase = 'running';
    s.output = output;
    s.progress = { phase: 'start', done: 0, total: 0 };
    s.result = undefined;
    this.send();
    const ac = new AbortController();
    this.run = ac;
    log().info(`Quantize wizard: ${s.file} → ${output} (${target}${usePlan ? ', plan' : ''})`);
    try {
      if (s.data.path) req.calibration = loadCalibration(s.file, s.data.path, 32);
      let last = 0;
      const report = await convert(req, {
        signal: ac.signal,
        onProgress: (p) => {
          s.progress = { phase: p.phase, done: p.done, total: p.total, tensor: p.tensor };
          if (Date.now() - last > 100 || p.done === p.total) {
            last = Date.now();
            this.post({ type: 'progress', progress: s.progress });
          }
        },
      });
      if (usePlan) {
        const { writeFileAtomicSync } = require('../../formats/atomicWrite') as typeof import('../../formats/atomicWrite');
        writeFileAtomicSync(req.planOut!, JSON.stringify(req.plan, null, 2) + '\n', { overwrite: true });
        report.plan = { file: req.planOut, tensors: Object.keys((req.plan as Plan).tensors).length, predicted: (req.plan as Plan).predicted };
      }
      this.report = report;
      s.result = this.resultOf(report);
      s.phase = 'done';
      log().info(`Quantize wizard: wrote ${output}`);
    } catch (e) {
      const cancelled = ac.signal.aborted || (e instanceof Error && e.name === 'CancelledError');
      s.phase = 'plan';
      s.error = cancelled ? 'Cancelled; nothing was written.' : e instanceof VerificationError ? `Verification failed, nothing was kept: ${e.message}` : e instanceof Error ? e.message : String(e);
      log()[cancelled ? 'info' : 'error'](`Quantize wizard ${s.file}: ${s.error}`);
    } finally {
      this.run = undefined;
      s.progress = undefined;
    }
    this.remember();
    this.send();
  }

  private resultOf(r: ConvertReport): WizardResult {
    const planned = new Map<string, number | undefined>();
    this.layers.forEach((l, i) => planned.set(l.name, this.state.layers[i].options[this.assignment[i]]?.sqnrDb));
    return {
      output: r.output, outputName: path.basename(r.output), fileBytesBefore: r.totals.fileBytesBefore, fileBytesAfter: r.totals.fileBytesAfter,
      tensorsQuantized: r.totals.tensorsQuantized, tensorsKept: r.totals.tensorsKept, planFile: r.plan?.file,
      perLayer: r.tensors.map((t) => ({ name: t.name, choice: t.choice, plannedDb: this.state.uniformMode ? undefined : planned.get(t.name), writtenDb: t.predicted.sqnrDb })),
      runtime: r.verification.runtime, runtimeSkipped: r.verification.runtimeSkipped, predicted: this.predictedOf(r), seconds: r.seconds.total,
    };
  }

  /** The plan's predicted total in its metric; output-space: next to the same effect of the written model's output (KL for classifiers, else noise-to-signal). */
  private predictedOf(r: ConvertReport): WizardResult['predicted'] {
    const s = this.state;
    if (s.uniformMode || !s.plannable || !this.assignment.length) return undefined;
    const error = this.layers.reduce((a, l, i) => a + l.options[this.assignment[i]].error, 0);
    const p: NonNullable<WizardResult['predicted']> = { metric: s.metric.kind, label: s.metric.label, error };
    const e = s.outputEffect;
    if (s.metric.kind === 'output' && e.state === 'done') {
      p.output = e.output;
      const o = r.verification.runtime?.outputs.find((x) => x.name === e.output);
      if (o && e.outputKind === 'values' && o.sqnrDb !== undefined && Number.isFinite(o.sqnrDb)) {
        p.measured = 10 ** (-o.sqnrDb / 10);
        p.measuredWhat = 'noise-to-signal power ratio';
      } else if (o && e.outputKind !== 'values' && o.meanKl !== undefined) {
        p.measured = o.meanKl;
        p.measuredWhat = 'mean KL';
      } else if (o && o.sqnrDb === Infinity) {
        p.measured = 0;
        p.measuredWhat = 'identical outputs';
      }
    }
    return p;
  }

  private async exportPlan(format: ExportFormat): Promise<void> {
    const s = this.state;
    const { exportPlan } = require('../../quant/planExport') as typeof import('../../quant/planExport');
    const plan = this.currentPlan();
    let consumers: ((t: string) => string[]) | undefined;
    if (format === 'ort') {
      const { openModel } = require('../../formats') as typeof import('../../formats');
      const m = openModel(s.file);
      try {
        const map = new Map(m.tensors.map((t) => [t.name, t.layer.consumers.map((c) => c.node)]));
        consumers = (t) => map.get(t) ?? [];
      } finally {
        m.close();
      }
    }
    const out = exportPlan(plan, format, {
      consumers,
      llama: { source: s.fileName, output: s.result?.outputName ?? s.fileName.replace(/\.gguf$/i, `-${s.preset ?? 'Q4_K_M'}.gguf`), preset: s.preset ?? 'Q4_K_M' },
    });
    const base = s.file.replace(/\.(onnx|gguf|safetensors)$/i, '');
    const uri = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(base + out.suffix), title: `Export plan (${format})` });
    if (!uri) return;
    await saveFile(uri, out.content);
    s.notice = `Plan exported to ${uri.fsPath}`;
    this.send();
  }
}

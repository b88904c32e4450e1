/**
 * The Sensitivity panel's state per model: the metric (weight-space, or
 * output-space once the model has been run), the conversion target and the
 * budget of the slider, and the output-space measurement (runs in the host
 * pool, cancellable, cached by file identity + data + settings). `decorate`
 * turns the inspector's ranking into what the panel shows: rows ranked by
 * the chosen metric, each marked with the knapsack's choice.
 */
import * as vscode from 'vscode';
import type { ModelDocument } from '../inspector/document';
import { type HostPool, runtimeProvider, warnProvider } from '../workerPool';
import type { SensitivityPanelData } from '../../shared/protocol/sensitivity';
import type { OutputEffects } from '../../shared/protocol/inspector';
import type { PlanTarget, Plan } from '../../quant/plan';
import type { RuntimeSensitivity } from '../../pipelines/evaluate';
import { log } from '../log';

interface FileState {
  metric: 'weight' | 'output';
  target?: PlanTarget;
  bitsPerWeight?: number;
  output?: RuntimeSensitivity;
  running?: { abort: AbortController; done: number; total: number };
  outputError?: string;
  plan?: Plan;
}

/** The config the output-space ranking is by, per target (the INT4 reference where the target writes it). */
function rankConfig(target: PlanTarget, measured: readonly string[]): string | undefined {
  return ['int4-g128', 'int8-channel', ...measured].find((c) => measured.includes(c));
}

/** What the inspector's table shows of a measurement: each weight's effect at one config. */
export function outputEffects(r: RuntimeSensitivity, config: string | undefined): OutputEffects | undefined {
  if (!config) return undefined;
  const j = r.configs.indexOf(config);
  if (j < 0) return undefined;
  const first = r.weights.find((w) => w.configs[j]?.outputs.length)?.configs[j].outputs[0];
  return {
    config, data: r.data, dataSource: r.dataSource, samples: r.samples,
    metric: first?.kl !== undefined ? `KL of ${first.output}` : `noise-to-signal of ${first?.output ?? 'the first output'}`,
    effects: Object.fromEntries(r.weights.map((w) => [w.name, w.configs[j].effect])),
  };
}

export class SensitivityBudget {
  private readonly files = new Map<string, FileState>();

  constructor(private readonly pool: HostPool, private readonly cacheDir: string | undefined, private readonly changed: () => void) {}

  private stateOf(file: string): FileState {
    let s = this.files.get(file);
    if (!s) this.files.set(file, (s = { metric: 'weight' }));
    return s;
  }

  private targetsOf(doc: ModelDocument): PlanTarget[] {
    const model = doc.model;
    if (!model || model.format !== 'onnx') return [];
    const { candidates } = require('../../pipelines/convert') as typeof import('../../pipelines/convert');
    // The target that plans the most weights first (MatMulNBits for transformers, QDQ for conv nets).
    const n = new Map((['onnx-int4', 'onnx-qdq'] as const).map((t) => [t, candidates(model, t).length]));
    return [...n.keys()].filter((t) => n.get(t)! > 0).sort((a, b) => n.get(b)! - n.get(a)!);
  }

  /** The plan the slider shows now (for "Quantize with this plan"). */
  planFor(file: string): Plan | undefined {
    return this.files.get(file)?.plan;
  }

  setMetric(file: string, metric: 'weight' | 'output'): void { this.stateOf(file).metric = metric; }

  /** True when the change dropped the output-space measurement (it was for another target's configs). */
  setBudget(file: string, bitsPerWeight: number, target?: string): boolean {
    const s = this.stateOf(file);
    s.bitsPerWeight = bitsPerWeight;
    if (target && target !== s.target) {
      s.target = target as PlanTarget;
      // Output-space effects were measured for the old target's configs.
      if (s.output && !s.output.configs.some((c) => c === (target === 'onnx-qdq' ? 'int8-channel' : 'int4-g128'))) { s.output = undefined; s.metric = 'weight'; return true; }
    }
    return false;
  }

  cancel(file: string): void { this.files.get(file)?.running?.abort.abort(); }

  /** Run the model: output-space effect of each planned weight under the target's configs, on synthetic data (labelled). */
  async measure(file: string, doc: ModelDocument): Promise<void> {
    const s = this.stateOf(file);
    const model = doc.model;
    if (!model || s.running) return;
    const target = s.target ?? this.targetsOf(doc)[0];
    if (!target) return;
    const { candidates } = require('../../pipelines/convert') as typeof import('../../pipelines/convert');
    const { runtimeSensitivity, planEffectSettings, modelCalib, PLAN_EFFECT_SAMPLES } = require('../../pipelines/evaluate') as typeof import('../../pipelines/evaluate');
    const { configsFor } = require('../../quant/plan') as typeof import('../../quant/plan');
    const want = new Set(candidates(model, target).map((t) => t.name));
    const abort = new AbortController();
    s.running = { abort, done: 0, total: 0 };
    s.outputError = undefined;
    this.changed();
    try {
      const set = modelCalib(model, undefined, { samples: PLAN_EFFECT_SAMPLES });
      s.output = await runtimeSensitivity(model, set, {
        pool: this.pool.get(), signal: abort.signal, cacheDir: this.cacheDir, provider: runtimeProvider(),
        ...planEffectSettings(model, want, configsFor(target).map((c) => c.id)),
        onProgress: (done, total) => { if (s.running) { s.running.done = done; s.running.total = total; this.changed(); } },
      });
      s.metric = 'output';
      warnProvider(s.output.providerNote);
      doc.setOutput(outputEffects(s.output, rankConfig(target, s.output.configs)));
    } catch (e) {
      if (!abort.signal.aborted) {
        s.outputError = e instanceof Error ? e.message : String(e);
        log().error(`Output-space sensitivity of ${file}: ${s.outputError}`);
      }
    } finally {
      s.running = undefined;
      this.changed();
    }
  }

  decorate(base: SensitivityPanelData, doc: ModelDocument): SensitivityPanelData {
    const s = this.stateOf(base.file);
    const model = doc.model;
    const d: SensitivityPanelData = { ...base, metric: 'weight' };
    if (!model) return d;
    const targets = this.targetsOf(doc);
    if (model.format !== 'onnx') d.outputWhy = `only ONNX models run here (this is ${model.format})`;
    else if (!vscode.workspace.isTrusted) d.outputWhy = 'the workspace is not trusted: models are not run';
    else if (!targets.length) d.outputWhy = 'no MatMul, Gemm or Conv weight to plan';
    else {
      d.output = s.running ? { state: 'running', done: s.running.done, total: s.running.total }
        : s.output ? { state: 'done', data: s.output.data, dataSource: s.output.dataSource, samples: s.output.samples }
          : s.outputError ? { state: 'error', error: s.outputError } : { state: 'none' };
    }
    // Output-space: rank by the measured effect at the reference config.
    let effects: Map<string, Map<string, number>> | undefined;
    if (s.output) {
      effects = new Map(s.output.weights.map((w) => [w.name, new Map(w.configs.map((c) => [c.config, c.effect]))]));
      const rc = rankConfig(s.target ?? targets[0], s.output.configs);
      if (d.output && rc) d.output.config = rc;
      // A model reopened in a new inspector gets the measurement made before.
      const measured = doc.output ? undefined : outputEffects(s.output, rc);
      if (measured) doc.setOutput(measured);
      if (s.metric === 'output' && rc) {
        d.metric = 'output';
        const rows = base.rows.filter((r) => effects!.get(r.name)?.has(rc)).map((r) => ({ ...r, effect: effects!.get(r.name)!.get(rc)! }));
        rows.sort((a, b) => b.effect - a.effect || a.name.localeCompare(b.name));
        d.rows = rows;
      }
    }
    if (!targets.length) {
      d.budgetWhy = model.format === 'onnx' ? 'no MatMul, Gemm or Conv weight to plan' : `the budget plans ONNX conversions (${model.format} models: use Quantize Model…)`;
      return d;
    }
    const target = s.target && targets.includes(s.target) ? s.target : targets[0];
    s.target = target;
    try {
      const { candidates } = require('../../pipelines/convert') as typeof import('../../pipelines/convert');
      const { budgetMarks } = require('../../analysis/budgetMarks') as typeof import('../../analysis/budgetMarks');
      const cands = candidates(model, target);
      const probe = budgetMarks(target, cands, doc.sens, 64, d.metric, effects, model.path.split(/[\\/]/).pop());
      const bpw = s.bitsPerWeight ?? probe.minBits + 0.25 * (probe.maxBits - probe.minBits);
      const m = budgetMarks(target, cands, doc.sens, bpw, d.metric, effects, model.path.split(/[\\/]/).pop());
      s.plan = m.plan;
      d.budget = { target, targets, bitsPerWeight: m.bitsPerWeight, minBits: m.minBits, maxBits: m.maxBits, lowered: m.lowered, kept: m.kept, bytes: m.bytes, error: m.error, errorKind: m.errorKind };
      d.rows = d.rows.map((r) => (m.marks[r.name] !== undefined ? { ...r, mark: m.marks[r.name] } : r));
    } catch (e) {
      s.plan = undefined;
      d.budgetWhy = e instanceof Error ? e.message : String(e);
    }
    return d;
  }
}

/**
 * One opened model and its analysis (the document of the custom editor).
 * Several panels may show the same document; the analysis runs once per
 * document and every panel gets its results.
 */
import * as vscode from 'vscode';
import type { ModelFile } from '../../formats/types';
import type { TensorStats } from '../../analysis/weightStats';
import type { TensorSensitivity } from '../../analysis/sensitivity';
import type { WorkerPool } from '../../jobs/pool';
import { configInfos, configResults, statsSummary } from '../../analysis/viewData';
import type { AnalysisProgress, MixedSummary, ModelOverview, OutputEffects, SensSummary, StatsSummary, TensorRow, ToInspector } from '../../shared/protocol/inspector';
import type { Row } from '../../shared/tableModel';
import { log } from '../log';

/** What an analysis run needs from the host. */
export interface AnalysisRun {
  pool: WorkerPool;
  /** Where statistics are cached by file identity and engine version; none in tests that opt out. */
  cacheDir?: string;
  /** Results or state changed (the Sensitivity panel refreshes). */
  onChange(): void;
}

type AnalysisState = 'idle' | 'running' | 'complete' | 'cancelled' | 'failed';

/**
 * One opened model and its analysis. Several panels may show the same
 * document; the analysis runs once per document and every panel gets its results.
 */
export class ModelDocument implements vscode.CustomDocument {
  model: ModelFile | undefined;
  error: string | undefined;
  built: { overview: ModelOverview; tensors: TensorRow[] } | undefined;
  readonly stats = new Map<string, TensorStats>();
  readonly sens = new Map<string, TensorSensitivity>();
  mixed: MixedSummary | undefined;
  /** The statistics came from the results cache rather than a pass over the file. */
  statsFromCache = false;
  state: AnalysisState = 'idle';
  stateMessage: string | undefined;
  failedTensors = 0;
  firstFailure: string | undefined;
  progress: AnalysisProgress | undefined;
  abort: AbortController | undefined;
  /** The Activations view's runs (made when a panel first shows, for ONNX models that can run). */
  activations: import('./activations').ModelActivationsView | undefined;
  /** The Sensitivity panel's output-space measurement of this model, when one exists (the table's effect column). */
  output: OutputEffects | undefined;
  readonly panels = new Set<(m: ToInspector) => void>();
  constructor(readonly uri: vscode.Uri) {}

  broadcast(m: ToInspector): void {
    for (const p of this.panels) p(m);
  }

  /** An output-space measurement arrived (or was dropped): the table's effect column and the overview follow it. */
  setOutput(output: OutputEffects | undefined): void {
    this.output = output;
    this.broadcast({ type: 'outputEffects', output: output ?? null });
  }

  rows(): Row[] {
    return (this.built?.tensors ?? []).map((t) => {
      const r: Row = { ...t };
      const s = this.stats.get(t.name);
      if (s) r.stats = statsSummary(t.name, s);
      const c = this.sens.get(t.name);
      if (c) r.configs = configResults(c);
      const e = this.output?.effects[t.name];
      if (e !== undefined) r.effect = e;
      return r;
    });
  }

  dispose(): void {
    this.abort?.abort();
    this.activations?.dispose();
    this.model?.close();
    this.model = undefined;
  }

  /** Statistics first (cheap, fills the table), then weight-space error per candidate config. */
  async analyse(run: AnalysisRun): Promise<void> {
    const model = this.model;
    if (!model || this.state === 'running') return;
    const { analyseModel } = require('../../pipelines/analyseModel') as typeof import('../../pipelines/analyseModel');
    const { analyseSensitivity } = require('../../pipelines/analyseSensitivity') as typeof import('../../pipelines/analyseSensitivity');
    const { CancelledError } = require('../../jobs/pool') as typeof import('../../jobs/pool');
    const abort = new AbortController();
    this.abort = abort;
    this.state = 'running';
    this.failedTensors = 0;
    this.firstFailure = undefined;
    const pool = run.pool;
    const t0 = performance.now();
    // Results are batched so a 10,000-tensor model does not post 10,000 messages.
    let statsBuf: StatsSummary[] = [];
    let sensBuf: SensSummary[] = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
      timer = undefined;
      if (statsBuf.length) this.broadcast({ type: 'stats', items: statsBuf });
      if (sensBuf.length) {
        this.broadcast({ type: 'sensitivity', items: sensBuf });
        run.onChange();
      }
      // Jobs in flight when the user cancelled may still finish: never report progress after the end.
      if (this.progress && this.state === 'running' && !abort.signal.aborted) this.broadcast({ type: 'progress', progress: this.progress });
      statsBuf = [];
      sensBuf = [];
    };
    let finished = false;
    const soon = () => { if (!finished) timer ??= setTimeout(flush, 100); };
    const quantizable = (this.built?.tensors ?? []).filter((t) => t.analysable && t.shape.length >= 2).length;
    const { StatsCache } = require('../../pipelines/statsCache') as typeof import('../../pipelines/statsCache');
    const cache = run.cacheDir ? new StatsCache(run.cacheDir) : undefined;
    // Reopening a model shows its statistics at once.
    if (cache && this.stats.size === 0) {
      const hit = cache.load(model.files, {});
      if (hit && hit.failed.length === 0) {
        for (const e of hit.tensors) {
          this.stats.set(e.name, e.stats);
          statsBuf.push(statsSummary(e.name, e.stats));
        }
        this.statsFromCache = true;
        log().info(`${model.path}: statistics of ${hit.tensors.length} tensors from the cache`);
        soon();
      }
    }
    try {
      const skip = new Set([...this.stats.keys()]);
      const stats = await analyseModel(model, {
        pool, signal: abort.signal,
        filter: (t) => !skip.has(t.name),
        onTensor: (e) => {
          if (abort.signal.aborted) return; // finished after the cancel: the resumed run redoes it
          this.stats.set(e.name, e.stats);
          statsBuf.push(statsSummary(e.name, e.stats));
          soon();
        },
        onProgress: (p) => {
          this.progress = { phase: 'statistics', tensorsDone: p.tensorsDone, tensorsTotal: p.tensorsTotal, fraction: p.workTotal > 0 ? p.workDone / p.workTotal : 1 };
          soon();
        },
      });
      // Only a complete, fresh pass is cached (a resumed one lacks the tensors done before).
      if (cache && skip.size === 0 && stats.failed.length === 0) {
        try {
          cache.store(model.files, {}, stats);
        } catch (e) {
          log().warn(`Could not cache the statistics of ${model.path}: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      this.failedTensors += stats.failed.length;
      if (stats.failed.length) this.firstFailure = `${stats.failed[0].name}: ${stats.failed[0].error}`;
      const sensSkip = new Set([...this.sens.keys()]);
      const todo = quantizable - sensSkip.size;
      this.progress = { phase: 'sensitivity', tensorsDone: 0, tensorsTotal: todo, fraction: 0 };
      soon();
      const sens = await analyseSensitivity(model, {
        pool, signal: abort.signal,
        filter: (t) => t.shape.length >= 2 && !sensSkip.has(t.name),
        onTensor: (name, s, done, total) => {
          if (abort.signal.aborted) return;
          this.sens.set(name, s);
          sensBuf.push({ name, configs: configResults(s) });
          this.progress = { phase: 'sensitivity', tensorsDone: done, tensorsTotal: total, fraction: total > 0 ? done / total : 1 };
          soon();
        },
      });
      this.failedTensors += sens.failed.length;
      if (sens.failed.length) this.firstFailure ??= `${sens.failed[0].name}: ${sens.failed[0].error}`;
      for (const f of [...stats.failed, ...sens.failed]) log().warn(`${model.path}: ${f.name}: ${f.error}`);
      this.state = 'complete';
      this.stateMessage = undefined;
      this.mixed = this.mixedFor();
      if (this.mixed) this.broadcast({ type: 'mixed', mixed: this.mixed });
      log().info(`Analysed ${model.path}: ${this.stats.size} tensors, ${this.sens.size} measured in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      const cancelled = e instanceof CancelledError || abort.signal.aborted;
      this.state = cancelled ? 'cancelled' : 'failed';
      this.stateMessage = cancelled ? undefined : e instanceof Error ? e.message : String(e);
      if (!cancelled) log().error(`Analysis of ${model.path} failed: ${this.stateMessage}`);
    } finally {
      if (timer) clearTimeout(timer);
      flush();
      finished = true;
      if (this.abort === abort) this.abort = undefined;
      this.broadcast(this.doneMessage());
      run.onChange();
    }
  }

  /** The overview's mixed-precision size, once every weight has its sensitivity. */
  private mixedFor(): MixedSummary | undefined {
    const model = this.model;
    if (!model) return undefined;
    const { mixedAssignment } = require('../../analysis/mixedSummary') as typeof import('../../analysis/mixedSummary');
    const layers = model.tensors.filter((t) => this.sens.has(t.name)).map((t) => ({ name: t.name, bytes: t.byteLength, sens: this.sens.get(t.name)! }));
    const kept = model.sizeOnDisk - layers.reduce((a, l) => a + l.bytes, 0);
    try {
      return mixedAssignment(layers, kept);
    } catch (e) {
      log().warn(`${model.path}: mixed-precision search: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
  }

  doneMessage(): ToInspector {
    const state = this.state === 'complete' || this.state === 'cancelled' || this.state === 'failed' ? this.state : 'failed';
    const m: ToInspector = { type: 'analysisDone', state, failed: this.failedTensors };
    if (this.stateMessage) m.message = this.stateMessage;
    if (this.firstFailure) m.firstFailure = this.firstFailure;
    return m;
  }

  /** Everything a (re)created webview needs: the index, then the results known so far. */
  sendAll(post: (m: ToInspector) => void): void {
    if (!this.built) {
      post({ type: 'error', message: this.error ?? 'unknown error' });
      return;
    }
    post({ type: 'overview', ...this.built, configs: configInfos() });
    const stats = [...this.stats].map(([n, s]) => statsSummary(n, s));
    if (stats.length) post({ type: 'stats', items: stats });
    const sens = [...this.sens].map(([name, s]) => ({ name, configs: configResults(s) }));
    if (sens.length) post({ type: 'sensitivity', items: sens });
    if (this.mixed) post({ type: 'mixed', mixed: this.mixed });
    if (this.output) post({ type: 'outputEffects', output: this.output });
    if (this.activations) post(this.activations.message());
    if (this.state === 'running') {
      if (this.progress) post({ type: 'progress', progress: this.progress });
    } else if (this.state !== 'idle') post(this.doneMessage());
  }
}

import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelFile } from '../../formats/types';
import type { TensorStats } from '../../analysis/weightStats';
import type { TensorSensitivity } from '../../analysis/sensitivity';
import type { WorkerPool } from '../../jobs/pool';
import { buildOverview } from '../../analysis/overview';
import { configInfos, configResults, readinessReport, statsSummary, tensorDetail } from '../../analysis/viewData';
import { referenceConfig } from '../../quant/configs';
import { pngBytes } from '../../shared/protocol/common';
import type { SensitivityPanelData } from '../../shared/protocol/sensitivity';
import { parseFromInspector, parseTableView, type AnalysisProgress, type MixedSummary, type ModelOverview, type SensSummary, type StatsSummary, type TableView, type TensorRow, type ToInspector } from '../../shared/protocol/inspector';
import { referenceSqnr, riskOf, sqnrOf, toCsv, type Row } from '../../shared/tableModel';
import { webviewHtml, webviewOptions } from '../webviewHtml';
import { log } from '../log';

export const MODEL_EDITOR_VIEW_TYPE = 'quantscope.modelEditor';


type AnalysisState = 'idle' | 'running' | 'complete' | 'cancelled' | 'failed';

/**
 * One opened model and its analysis. Several panels may show the same
 * document; the analysis runs once per document and every panel gets its results.
 */
class ModelDocument implements vscode.CustomDocument {
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
  readonly panels = new Set<(m: ToInspector) => void>();
  constructor(readonly uri: vscode.Uri) {}

  broadcast(m: ToInspector): void {
    for (const p of this.panels) p(m);
  }

  rows(): Row[] {
    return (this.built?.tensors ?? []).map((t) => {
      const r: Row = { ...t };
      const s = this.stats.get(t.name);
      if (s) r.stats = statsSummary(t.name, s);
      const c = this.sens.get(t.name);
      if (c) r.configs = configResults(c);
      return r;
    });
  }

  dispose(): void {
    this.abort?.abort();
    this.model?.close();
    this.model = undefined;
  }
}

/** Read-only custom editor for .onnx / .safetensors / .gguf: the model inspector. */
export class ModelEditorProvider implements vscode.CustomReadonlyEditorProvider<ModelDocument> {
  /** Open inspectors by file path, with what they show (used by commands and tests). */
  readonly open = new Map<string, { overview?: ModelOverview; error?: string; panel: vscode.WebviewPanel; document: ModelDocument }>();
  /** Fires when what the Sensitivity panel shows may have changed (results, the active inspector). */
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChangeSensitivity = this.changed.event;
  /** The inspector the user looked at last. */
  private lastActive: string | undefined;
  private pool: WorkerPool | undefined;

  constructor(
    private readonly extensionUri: vscode.Uri,
    /** Where statistics are cached by file identity (path, size, mtime) and engine version; none in tests that opt out. */
    private readonly cacheDir?: string,
  ) {}

  static register(context: vscode.ExtensionContext): ModelEditorProvider {
    const provider = new ModelEditorProvider(context.extensionUri, vscode.Uri.joinPath(context.globalStorageUri, 'stats-cache').fsPath);
    context.subscriptions.push(
      vscode.window.registerCustomEditorProvider(MODEL_EDITOR_VIEW_TYPE, provider, {
        // State survives hiding through setState in the webview and a re-send from here.
        webviewOptions: { retainContextWhenHidden: false },
        supportsMultipleEditorsPerDocument: true,
      }),
      { dispose: () => void provider.pool?.close() },
      // Scriptable exports, for tests and automation: (model file, target path[, table view]).
      vscode.commands.registerCommand('quantscope.inspector.exportCsv', (file: unknown, target: unknown, view?: unknown) => provider.exportCsvTo(file, target, view)),
      vscode.commands.registerCommand('quantscope.inspector.analysisState', (file: unknown) => {
        const d = provider.documentFor(file);
        return d && { state: d.state, analysed: d.stats.size, measured: d.sens.size, failed: d.failedTensors, fromCache: d.statsFromCache };
      }),
    );
    return provider;
  }

  async openCustomDocument(uri: vscode.Uri): Promise<ModelDocument> {
    const doc = new ModelDocument(uri);
    const t0 = performance.now();
    try {
      // Loaded on first use so activation stays fast.
      const { openModel } = require('../../formats') as typeof import('../../formats');
      const model = openModel(uri.fsPath);
      doc.model = model;
      doc.built = buildOverview(model);
      log().info(`Indexed ${uri.fsPath}: ${model.format}, ${model.tensors.length} tensors in ${(performance.now() - t0).toFixed(1)} ms`);
    } catch (e) {
      doc.error = e instanceof Error ? e.message : String(e);
      log().error(`Could not open ${uri.fsPath}: ${doc.error}`);
    }
    return doc;
  }

  private documentFor(file: unknown): ModelDocument | undefined {
    const p = file instanceof vscode.Uri ? file.fsPath : typeof file === 'string' ? file : undefined;
    if (p !== undefined) return this.open.get(p)?.document;
    return [...this.open.values()].find((e) => e.panel.active)?.document;
  }

  private getPool(): WorkerPool {
    if (!this.pool) {
      const { WorkerPool } = require('../../jobs/pool') as typeof import('../../jobs/pool');
      const threads = vscode.workspace.getConfiguration('quantscope').get<number>('workers.threads', 0);
      this.pool = new WorkerPool({ workerScript: path.join(this.extensionUri.fsPath, 'dist', 'worker.js'), ...(threads > 0 ? { size: threads } : {}) });
    }
    return this.pool;
  }

  /** Statistics first (cheap, fills the table), then weight-space error per candidate config. */
  private async analyse(doc: ModelDocument): Promise<void> {
    const model = doc.model;
    if (!model || doc.state === 'running') return;
    const { analyseModel, analyseSensitivity } = require('../../pipelines/analyseModel') as typeof import('../../pipelines/analyseModel');
    const { CancelledError } = require('../../jobs/pool') as typeof import('../../jobs/pool');
    const abort = new AbortController();
    doc.abort = abort;
    doc.state = 'running';
    doc.failedTensors = 0;
    doc.firstFailure = undefined;
    const pool = this.getPool();
    const t0 = performance.now();
    // Results are batched so a 10,000-tensor model does not post 10,000 messages.
    let statsBuf: StatsSummary[] = [];
    let sensBuf: SensSummary[] = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = () => {
      timer = undefined;
      if (statsBuf.length) doc.broadcast({ type: 'stats', items: statsBuf });
      if (sensBuf.length) {
        doc.broadcast({ type: 'sensitivity', items: sensBuf });
        this.changed.fire();
      }
      // Jobs in flight when the user cancelled may still finish: never report progress after the end.
      if (doc.progress && doc.state === 'running' && !abort.signal.aborted) doc.broadcast({ type: 'progress', progress: doc.progress });
      statsBuf = [];
      sensBuf = [];
    };
    let finished = false;
    const soon = () => { if (!finished) timer ??= setTimeout(flush, 100); };
    const quantizable = (doc.built?.tensors ?? []).filter((t) => t.analysable && t.shape.length >= 2).length;
    const { StatsCache } = require('../../pipelines/statsCache') as typeof import('../../pipelines/statsCache');
    const cache = this.cacheDir ? new StatsCache(this.cacheDir) : undefined;
    // Reopening a model shows its statistics at once.
    if (cache && doc.stats.size === 0) {
      const hit = cache.load(model.files, {});
      if (hit && hit.failed.length === 0) {
        for (const e of hit.tensors) {
          doc.stats.set(e.name, e.stats);
          statsBuf.push(statsSummary(e.name, e.stats));
        }
        doc.statsFromCache = true;
        log().info(`${model.path}: statistics of ${hit.tensors.length} tensors from the cache`);
        soon();
      }
    }
    try {
      const skip = new Set([...doc.stats.keys()]);
      const stats = await analyseModel(model, {
        pool, signal: abort.signal,
        filter: (t) => !skip.has(t.name),
        onTensor: (e) => {
          if (abort.signal.aborted) return; // finished after the cancel: the resumed run redoes it
          doc.stats.set(e.name, e.stats);
          statsBuf.push(statsSummary(e.name, e.stats));
          soon();
        },
        onProgress: (p) => {
          doc.progress = { phase: 'statistics', tensorsDone: p.tensorsDone, tensorsTotal: p.tensorsTotal, fraction: p.workTotal > 0 ? p.workDone / p.workTotal : 1 };
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
      doc.failedTensors += stats.failed.length;
      if (stats.failed.length) doc.firstFailure = `${stats.failed[0].name}: ${stats.failed[0].error}`;
      const sensSkip = new Set([...doc.sens.keys()]);
      const todo = quantizable - sensSkip.size;
      doc.progress = { phase: 'sensitivity', tensorsDone: 0, tensorsTotal: todo, fraction: 0 };
      soon();
      const sens = await analyseSensitivity(model, {
        pool, signal: abort.signal,
        filter: (t) => t.shape.length >= 2 && !sensSkip.has(t.name),
        onTensor: (name, s, done, total) => {
          if (abort.signal.aborted) return;
          doc.sens.set(name, s);
          sensBuf.push({ name, configs: configResults(s) });
          doc.progress = { phase: 'sensitivity', tensorsDone: done, tensorsTotal: total, fraction: total > 0 ? done / total : 1 };
          soon();
        },
      });
      doc.failedTensors += sens.failed.length;
      if (sens.failed.length) doc.firstFailure ??= `${sens.failed[0].name}: ${sens.failed[0].error}`;
      for (const f of [...stats.failed, ...sens.failed]) log().warn(`${model.path}: ${f.name}: ${f.error}`);
      doc.state = 'complete';
      doc.stateMessage = undefined;
      doc.mixed = this.mixedFor(doc);
      if (doc.mixed) doc.broadcast({ type: 'mixed', mixed: doc.mixed });
      log().info(`Analysed ${model.path}: ${doc.stats.size} tensors, ${doc.sens.size} measured in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    } catch (e) {
      const cancelled = e instanceof CancelledError || abort.signal.aborted;
      doc.state = cancelled ? 'cancelled' : 'failed';
      doc.stateMessage = cancelled ? undefined : e instanceof Error ? e.message : String(e);
      if (!cancelled) log().error(`Analysis of ${model.path} failed: ${doc.stateMessage}`);
    } finally {
      if (timer) clearTimeout(timer);
      flush();
      finished = true;
      if (doc.abort === abort) doc.abort = undefined;
      doc.broadcast(this.doneMessage(doc));
      this.changed.fire();
    }
  }

  /** The overview's mixed-precision size, once every weight has its sensitivity. */
  private mixedFor(doc: ModelDocument): MixedSummary | undefined {
    const model = doc.model;
    if (!model) return undefined;
    const { mixedAssignment } = require('../../analysis/mixedSummary') as typeof import('../../analysis/mixedSummary');
    const layers = model.tensors.filter((t) => doc.sens.has(t.name)).map((t) => ({ name: t.name, bytes: t.byteLength, sens: doc.sens.get(t.name)! }));
    const kept = model.sizeOnDisk - layers.reduce((a, l) => a + l.bytes, 0);
    try {
      return mixedAssignment(layers, kept);
    } catch (e) {
      log().warn(`${model.path}: mixed-precision search: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
  }

  /** The last active inspector's weights, least INT4 SQNR first (the Sensitivity panel's content). */
  sensitivityPanelData(limit = 25): SensitivityPanelData | null {
    const key = this.lastActive && this.open.has(this.lastActive) ? this.lastActive : [...this.open.keys()].pop();
    const doc = key ? this.open.get(key)?.document : undefined;
    if (!key || !doc?.built) return null;
    const int4 = referenceConfig('int4').id;
    const rows = doc.rows().filter((r) => sqnrOf(r, int4) !== undefined);
    rows.sort((a, b) => sqnrOf(a, int4)! - sqnrOf(b, int4)! || a.name.localeCompare(b.name));
    return {
      file: key,
      fileName: path.basename(key),
      config: int4,
      measured: rows.length,
      quantizable: doc.built.tensors.filter((t) => t.quantizable).length,
      rows: rows.slice(0, limit).map((r) => {
        const out: SensitivityPanelData['rows'][number] = { name: r.name, layer: r.layer, opType: r.opType, params: r.params, sqnrDb: sqnrOf(r, int4)! };
        const s8 = referenceSqnr(r, 'int8');
        if (s8 !== undefined) out.sqnrInt8 = s8;
        const risk = riskOf(r, int4);
        if (risk) out.risk = risk;
        return out;
      }),
    };
  }

  /** Bring an inspector forward with one tensor selected (from the Sensitivity panel). */
  reveal(file: string, name: string): boolean {
    const e = this.open.get(file);
    if (!e || !e.document.built?.tensors.some((t) => t.name === name)) return false;
    e.panel.reveal(e.panel.viewColumn, false);
    void e.panel.webview.postMessage({ type: 'reveal', name } satisfies ToInspector);
    return true;
  }

  private doneMessage(doc: ModelDocument): ToInspector {
    const state = doc.state === 'complete' || doc.state === 'cancelled' || doc.state === 'failed' ? doc.state : 'failed';
    const m: ToInspector = { type: 'analysisDone', state, failed: doc.failedTensors };
    if (doc.stateMessage) m.message = doc.stateMessage;
    if (doc.firstFailure) m.firstFailure = doc.firstFailure;
    return m;
  }

  /** Everything a (re)created webview needs: the index, then the results known so far. */
  private sendAll(doc: ModelDocument, post: (m: ToInspector) => void): void {
    if (!doc.built) {
      post({ type: 'error', message: doc.error ?? 'unknown error' });
      return;
    }
    post({ type: 'overview', ...doc.built, configs: configInfos() });
    const stats = [...doc.stats].map(([n, s]) => statsSummary(n, s));
    if (stats.length) post({ type: 'stats', items: stats });
    const sens = [...doc.sens].map(([name, s]) => ({ name, configs: configResults(s) }));
    if (sens.length) post({ type: 'sensitivity', items: sens });
    if (doc.mixed) post({ type: 'mixed', mixed: doc.mixed });
    if (doc.state === 'running') {
      if (doc.progress) post({ type: 'progress', progress: doc.progress });
    } else if (doc.state !== 'idle') post(this.doneMessage(doc));
  }

  resolveCustomEditor(document: ModelDocument, panel: vscode.WebviewPanel): void {
    const key = document.uri.fsPath;
    panel.webview.options = webviewOptions(this.extensionUri);
    panel.webview.html = webviewHtml(panel.webview, this.extensionUri, 'inspector', path.basename(key));
    const entry = { panel, document } as { overview?: ModelOverview; error?: string; panel: vscode.WebviewPanel; document: ModelDocument };
    this.open.set(key, entry);
    const post = (m: ToInspector) => void panel.webview.postMessage(m);
    document.panels.add(post);
    this.lastActive = key;
    panel.onDidChangeViewState(() => {
      if (panel.active && this.lastActive !== key) {
        this.lastActive = key;
        this.changed.fire();
      }
    });
    panel.webview.onDidReceiveMessage(async (raw: unknown) => {
      const msg = parseFromInspector(raw);
      if (!msg) {
        log().warn(`Ignored a malformed message from the inspector webview for ${key}`);
        return;
      }
      try {
        switch (msg.type) {
          case 'ready':
            if (document.built) entry.overview = document.built.overview;
            else entry.error = document.error ?? 'unknown error';
            this.sendAll(document, post);
            if (document.state === 'idle') void this.analyse(document);
            break;
          case 'log':
            log()[msg.level](`[webview] ${msg.message}`);
            break;
          case 'command':
            void vscode.commands.executeCommand(msg.command === 'quantize' ? 'quantscope.quantizeModel' : 'quantscope.exportReport', document.uri);
            break;
          case 'cancelAnalysis':
            document.abort?.abort();
            break;
          case 'restartAnalysis':
            if (document.state !== 'running') void this.analyse(document);
            break;
          case 'selectTensor': {
            const t = document.built?.tensors.find((x) => x.name === msg.name);
            if (!t) {
              log().warn(`Inspector asked for an unknown tensor '${msg.name}' of ${key}`);
              return;
            }
            post({ type: 'detail', detail: tensorDetail(t.name, t.shape, document.stats.get(t.name), document.sens.get(t.name)) });
            break;
          }
          case 'exportCsv': {
            const target = await vscode.window.showSaveDialog({
              title: 'Export the tensor table as CSV',
              defaultUri: vscode.Uri.file(path.join(path.dirname(key), `${path.basename(key)}.tensors.csv`)),
              filters: { CSV: ['csv'] },
            });
            if (!target) return;
            this.writeCsv(document, target.fsPath, msg.view);
            post({ type: 'exported', what: 'csv', path: target.fsPath });
            break;
          }
          case 'exportPng': {
            const bytes = pngBytes(msg.dataUrl);
            const target = await vscode.window.showSaveDialog({
              title: 'Export the chart as PNG',
              defaultUri: vscode.Uri.file(path.join(path.dirname(key), `${path.basename(key)}.${msg.chart}.png`)),
              filters: { PNG: ['png'] },
            });
            if (!target) return;
            await vscode.workspace.fs.writeFile(target, bytes);
            log().info(`Exported chart ${msg.chart} to ${target.fsPath}`);
            post({ type: 'exported', what: 'png', path: target.fsPath });
            break;
          }
        }
      } catch (e) {
        const message = e instanceof Error ? e.message : String(e);
        log().error(`Inspector (${key}): ${message}`);
        void vscode.window.showErrorMessage(`QuantScope: ${message}`);
      }
    });
    panel.onDidDispose(() => {
      document.panels.delete(post);
      if (this.open.get(key) === entry) this.open.delete(key);
      this.changed.fire();
    });
  }

  private writeCsv(doc: ModelDocument, target: string, view: TableView): void {
    fs.writeFileSync(target, toCsv(doc.rows(), view));
    log().info(`Exported the tensor table of ${doc.uri.fsPath} to ${target}`);
  }

  private exportCsvTo(file: unknown, target: unknown, view?: unknown): string {
    const doc = this.documentFor(file);
    if (!doc) throw new Error('quantscope.inspector.exportCsv: no open inspector for that model');
    if (typeof target !== 'string' || !path.isAbsolute(target)) throw new Error('quantscope.inspector.exportCsv: the target must be an absolute path');
    const v: TableView | undefined = view === undefined ? { sort: 'name', descending: false, filter: '', group: 'none', config: referenceConfig('int8').id } : parseTableView(view);
    if (!v) throw new Error('quantscope.inspector.exportCsv: malformed table view');
    this.writeCsv(doc, target, v);
    return target;
  }

  /** The Markdown readiness report of an open model (undefined if it is not open in an inspector). */
  reportFor(file: vscode.Uri | string | undefined): { markdown: string; path: string } | undefined {
    const doc = this.documentFor(file);
    if (!doc?.built) return undefined;
    return { markdown: readinessReport(doc.built.overview, doc.rows(), { complete: doc.state === 'complete', generated: new Date() }), path: doc.uri.fsPath };
  }
}

/**
 * The Compare view: one webview panel per pair of files. The comparison runs
 * in the host's worker pool (pipelines/compare.ts) with progress and Cancel;
 * the panel keeps the last state and re-sends it when the webview comes back
 * (hidden, moved, reloaded), and a serializer reopens it after a window reload.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import { workspacePath } from '../workspacePaths';
import { webviewHtml, webviewOptions } from '../webviewHtml';
import { log } from '../log';
import { saveFile } from '../saveFile';
import type { HostPool } from '../workerPool';
import { compareCsv, parseFromCompare, toWire, type CompareState, type ToCompare } from '../../shared/protocol/compare';
import { pngBytes } from '../../shared/protocol/common';
import type { ModelComparison } from '../../pipelines/compare';

export const COMPARE_VIEW_TYPE = 'quantscope.compare';

/** What the webview keeps across reloads (setState): enough to run the comparison again. */
interface Persisted { fileA: string; fileB: string; data?: string }

export class ComparePanel {
  /** Every open comparison (for scripts and tests: quantscope.compare.shown). */
  static readonly open = new Set<ComparePanel>();
  state: CompareState;
  private running: AbortController | undefined;

  private constructor(
    private readonly panel: vscode.WebviewPanel,
    private readonly pool: HostPool,
    private fileA: string,
    private fileB: string,
    private data?: string,
  ) {
    this.state = { phase: 'running', nameA: path.basename(fileA), nameB: path.basename(fileB) };
    ComparePanel.open.add(this);
    panel.onDidDispose(() => {
      this.running?.abort();
      ComparePanel.open.delete(this);
    });
    panel.webview.onDidReceiveMessage((raw: unknown) => this.onMessage(raw));
    panel.onDidChangeViewState(() => panel.visible && this.post());
  }

  static create(context: vscode.ExtensionContext, pool: HostPool, a: vscode.Uri, b: vscode.Uri): ComparePanel {
    const panel = vscode.window.createWebviewPanel(COMPARE_VIEW_TYPE, ComparePanel.title(a.fsPath, b.fsPath), vscode.ViewColumn.Active, webviewOptions(context.extensionUri));
    return ComparePanel.attach(context, pool, panel, { fileA: a.fsPath, fileB: b.fsPath });
  }

  static attach(context: vscode.ExtensionContext, pool: HostPool, panel: vscode.WebviewPanel, p: Persisted): ComparePanel {
    panel.webview.options = webviewOptions(context.extensionUri);
    panel.webview.html = webviewHtml(panel.webview, context.extensionUri, 'compare', 'Compare');
    const c = new ComparePanel(panel, pool, p.fileA, p.fileB, p.data);
    void c.run();
    return c;
  }

  static title(a: string, b: string): string {
    return `Compare ${path.basename(a)} ↔ ${path.basename(b)}`;
  }

  private post(): void {
    const persisted: Persisted = { fileA: this.fileA, fileB: this.fileB, data: this.data };
    void this.panel.webview.postMessage({ type: 'compareState', state: toWire(this.state), persist: persisted } satisfies ToCompare);
  }

  private set(s: Partial<CompareState>): void {
    this.state = { ...this.state, ...s };
    this.post();
  }

  async run(): Promise<void> {
    this.running?.abort();
    const ctl = new AbortController();
    this.running = ctl;
    this.state = { phase: 'running', nameA: path.basename(this.fileA), nameB: path.basename(this.fileB), data: this.data, progress: { done: 0, total: 0, what: 'opening the models' } };
    this.post();
    const { openModel } = require('../../formats') as typeof import('../../formats');
    const { compareModels } = require('../../pipelines/compare') as typeof import('../../pipelines/compare');
    const opened: { close(): void }[] = [];
    try {
      const a = openModel(this.fileA);
      opened.push(a);
      const b = openModel(this.fileB);
      opened.push(b);
      // Running a model executes native code on the file's contents: only in a trusted workspace.
      const trusted = vscode.workspace.isTrusted;
      let last = 0;
      const result: ModelComparison = await compareModels(a, b, {
        pool: this.pool.get(), signal: ctl.signal, data: this.data, outputs: trusted,
        onProgress: (done, total, what) => {
          const now = Date.now();
          if (now - last < 100 && done < total) return;
          last = now;
          if (!ctl.signal.aborted) this.set({ progress: { done, total, what } });
        },
      });
      if (!trusted && a.format === 'onnx' && b.format === 'onnx') result.outputsSkipped = 'the workspace is not trusted: models are not run (weights only)';
      if (this.running === ctl) this.set({ phase: 'done', result, progress: undefined });
    } catch (e) {
      if (this.running !== ctl) return;
      if (ctl.signal.aborted) this.set({ phase: 'cancelled', progress: undefined });
      else {
        const msg = e instanceof Error ? e.message : String(e);
        log().error(`Compare ${this.fileA} with ${this.fileB}: ${msg}`);
        this.set({ phase: 'error', error: msg, progress: undefined });
      }
    } finally {
      for (const m of opened) m.close();
      if (this.running === ctl) this.running = undefined;
    }
  }

  private async onMessage(raw: unknown): Promise<void> {
    const msg = parseFromCompare(raw);
    if (!msg) {
      log().warn('Ignored a malformed message from the Compare view');
      return;
    }
    switch (msg.type) {
      case 'ready': this.post(); break;
      case 'log': log()[msg.level](`[compare] ${msg.message}`); break;
      case 'cancel': this.running?.abort(); break;
      case 'rerun': void this.run(); break;
      case 'swap':
        [this.fileA, this.fileB] = [this.fileB, this.fileA];
        this.panel.title = ComparePanel.title(this.fileA, this.fileB);
        void this.run();
        break;
      case 'chooseData': {
        const picked = await vscode.window.showOpenDialog({
          title: 'Inputs for the output comparison (.npy, .npz, .json, .txt, or a folder)', canSelectFiles: true, canSelectFolders: true, canSelectMany: false,
        });
        if (picked?.[0]) { this.data = picked[0].fsPath; void this.run(); }
        break;
      }
      case 'exportCsv': {
        if (!this.state.result) break;
        const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(path.join(path.dirname(this.fileB), `${path.parse(this.fileA).name}-vs-${path.parse(this.fileB).name}.csv`)), filters: { CSV: ['csv'] } });
        if (target) await saveFile(target, compareCsv(this.state.result));
        break;
      }
      case 'exportPng': {
        const target = await vscode.window.showSaveDialog({ defaultUri: vscode.Uri.file(path.join(path.dirname(this.fileB), `${msg.chart}.png`)), filters: { PNG: ['png'] } });
        if (target) await saveFile(target, pngBytes(msg.dataUrl));
        break;
      }
    }
  }
}

/** Reopens comparisons after a window reload from the state the webview kept. */
export function registerCompareSerializer(context: vscode.ExtensionContext, pool: HostPool): void {
  context.subscriptions.push(vscode.window.registerWebviewPanelSerializer(COMPARE_VIEW_TYPE, {
    deserializeWebviewPanel(panel: vscode.WebviewPanel, state: unknown): Promise<void> {
      // The paths come from the page's saved state: only files inside the workspace are reopened.
      const s = (state as { persist?: Partial<Persisted> } | undefined)?.persist;
      const fileA = workspacePath(s?.fileA), fileB = workspacePath(s?.fileB);
      if (fileA && fileB) {
        ComparePanel.attach(context, pool, panel, { fileA, fileB, data: workspacePath(s?.data) });
      } else panel.dispose();
      return Promise.resolve();
    },
  }));
}

/**
 * The custom editor's VS Code glue: opens a model as a ModelDocument, gives
 * each panel the inspector webview, and routes its messages. What is open
 * lives in the registry; the data and the analysis in the document.
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { buildOverview } from '../../analysis/overview';
import { tensorDetail } from '../../analysis/viewData';
import { pngBytes } from '../../shared/protocol/common';
import { parseFromInspector, type ToInspector } from '../../shared/protocol/inspector';
import { webviewHtml, webviewOptions } from '../webviewHtml';
import type { HostPool } from '../workerPool';
import { ModelDocument } from './document';
import type { InspectorRegistry, OpenInspector } from './registry';
import { log } from '../log';
import { saveFile } from '../saveFile';

export const MODEL_EDITOR_VIEW_TYPE = 'quantscope.modelEditor';

/** Read-only custom editor for .onnx / .safetensors / .gguf: the model inspector. */
export class ModelEditorProvider implements vscode.CustomReadonlyEditorProvider<ModelDocument> {
  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly registry: InspectorRegistry,
    private readonly pool: HostPool,
    /** Where statistics are cached by file identity (path, size, mtime) and engine version; none in tests that opt out. */
    private readonly cacheDir?: string,
    /** Where run results (activations) are cached, and where the data chosen per model is remembered. */
    private readonly runtimeCacheDir?: string,
    private readonly memento?: vscode.Memento,
  ) {}

  static register(context: vscode.ExtensionContext, registry: InspectorRegistry, pool: HostPool): ModelEditorProvider {
    const provider = new ModelEditorProvider(context.extensionUri, registry, pool, vscode.Uri.joinPath(context.globalStorageUri, 'stats-cache').fsPath,
      vscode.Uri.joinPath(context.globalStorageUri, 'runtime-cache').fsPath, context.workspaceState);
    context.subscriptions.push(
      vscode.window.registerCustomEditorProvider(MODEL_EDITOR_VIEW_TYPE, provider, {
        // State survives hiding through setState in the webview and a re-send from here.
        webviewOptions: { retainContextWhenHidden: false },
        supportsMultipleEditorsPerDocument: true,
      }),
      // Scriptable exports, for tests and automation: (model file, target path[, table view]).
      vscode.commands.registerCommand('quantscope.inspector.exportCsv', (file: unknown, target: unknown, view?: unknown) => registry.exportCsvTo(file, target, view)),
      vscode.commands.registerCommand('quantscope.inspector.analysisState', (file: unknown) => {
        const d = registry.documentFor(file);
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

  private analyse(document: ModelDocument): Promise<void> {
    return document.analyse({ pool: this.pool.get(), cacheDir: this.cacheDir, onChange: () => this.registry.fireChanged() });
  }

  resolveCustomEditor(document: ModelDocument, panel: vscode.WebviewPanel): void {
    const key = document.uri.fsPath;
    panel.webview.options = webviewOptions(this.extensionUri);
    panel.webview.html = webviewHtml(panel.webview, this.extensionUri, 'inspector', path.basename(key));
    const entry: OpenInspector = { panel, document };
    this.registry.add(key, entry);
    const post = (m: ToInspector) => void panel.webview.postMessage(m);
    document.panels.add(post);
    panel.onDidChangeViewState(() => {
      if (panel.active) this.registry.setActive(key);
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
            if (!document.activations && document.model) {
              const { ModelActivationsView } = require('./activations') as typeof import('./activations');
              document.activations = new ModelActivationsView(document, this.pool, this.runtimeCacheDir, this.memento);
              void document.activations.showCached();
            }
            document.sendAll(post);
            if (document.state === 'idle') void this.analyse(document);
            break;
          case 'activationsRun':
            void document.activations?.run(msg.samples);
            break;
          case 'activationsCancel':
            document.activations?.cancel();
            break;
          case 'activationsChooseData':
            await document.activations?.chooseData();
            break;
          case 'activationsSynthetic':
            await document.activations?.setData(undefined);
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
            this.registry.writeCsv(document, target.fsPath, msg.view);
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
            await saveFile(target, bytes);
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
      this.registry.remove(key, entry);
    });
  }
}

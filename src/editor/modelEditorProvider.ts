import * as vscode from 'vscode';
import * as path from 'node:path';
import type { ModelFile } from '../formats/types';
import { buildOverview } from './overview';
import { parseFromWebview, type ToWebview, type ModelOverview } from '../shared/protocol';
import { webviewHtml, webviewOptions } from './webviewHtml';
import { log } from '../log';

export const MODEL_EDITOR_VIEW_TYPE = 'quantscope.modelEditor';

class ModelDocument implements vscode.CustomDocument {
  model: ModelFile | undefined;
  error: string | undefined;
  constructor(readonly uri: vscode.Uri) {}
  dispose(): void {
    this.model?.close();
    this.model = undefined;
  }
}

/** Read-only custom editor for .onnx / .safetensors / .gguf: the model inspector. */
export class ModelEditorProvider implements vscode.CustomReadonlyEditorProvider<ModelDocument> {
  /** Open inspectors by file path, with what they show (used by commands and tests). */
  readonly open = new Map<string, { overview?: ModelOverview; error?: string; panel: vscode.WebviewPanel }>();

  constructor(private readonly extensionUri: vscode.Uri) {}

  static register(context: vscode.ExtensionContext): ModelEditorProvider {
    const provider = new ModelEditorProvider(context.extensionUri);
    context.subscriptions.push(
      vscode.window.registerCustomEditorProvider(MODEL_EDITOR_VIEW_TYPE, provider, {
        webviewOptions: { retainContextWhenHidden: false },
        supportsMultipleEditorsPerDocument: true,
      }),
    );
    return provider;
  }

  async openCustomDocument(uri: vscode.Uri): Promise<ModelDocument> {
    const doc = new ModelDocument(uri);
    const t0 = performance.now();
    try {
      // Loaded on first use so activation stays fast.
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const { openModel } = require('../formats') as typeof import('../formats');
      const model = openModel(uri.fsPath);
      doc.model = model;
      log().info(`Indexed ${uri.fsPath}: ${model.format}, ${model.tensors.length} tensors in ${(performance.now() - t0).toFixed(1)} ms`);
    } catch (e) {
      doc.error = e instanceof Error ? e.message : String(e);
      log().error(`Could not open ${uri.fsPath}: ${doc.error}`);
    }
    return doc;
  }

  resolveCustomEditor(document: ModelDocument, panel: vscode.WebviewPanel): void {
    const key = document.uri.fsPath;
    panel.webview.options = webviewOptions(this.extensionUri);
    panel.webview.html = webviewHtml(panel.webview, this.extensionUri, 'inspector', path.basename(key));
    const entry: { overview?: ModelOverview; error?: string; panel: vscode.WebviewPanel } = { panel };
    this.open.set(key, entry);
    const post = (m: ToWebview) => void panel.webview.postMessage(m);
    panel.webview.onDidReceiveMessage((raw: unknown) => {
      const msg = parseFromWebview(raw);
      if (!msg) {
        log().warn(`Ignored a malformed message from the inspector webview for ${key}`);
        return;
      }
      switch (msg.type) {
        case 'ready':
          if (document.model) {
            const built = buildOverview(document.model);
            entry.overview = built.overview;
            post({ type: 'overview', ...built });
          } else {
            entry.error = document.error ?? 'unknown error';
            post({ type: 'error', message: entry.error });
          }
          break;
        case 'log':
          log()[msg.level](`[webview] ${msg.message}`);
          break;
        case 'command':
          void vscode.commands.executeCommand(msg.command === 'quantize' ? 'quantscope.quantizeModel' : 'quantscope.exportReport', document.uri);
          break;
      }
    });
    panel.onDidDispose(() => {
      if (this.open.get(key) === entry) this.open.delete(key);
    });
  }
}

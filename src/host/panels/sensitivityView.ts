import * as vscode from 'vscode';
import { webviewHtml, webviewOptions } from '../webviewHtml';
import type { InspectorRegistry } from '../inspector/registry';
import { parseFromSensitivity, type SensitivityPanelData, type ToSensitivity } from '../../shared/protocol/sensitivity';
import { log } from '../log';

/**
 * The "Sensitivity" view in the QuantScope panel: the weights of the inspector
 * the user looked at last, least INT4 SQNR first; a click reveals the tensor there.
 */
export class SensitivityViewProvider implements vscode.WebviewViewProvider {
  static readonly viewId = 'quantscope.sensitivityView';
  /** What the view was last sent (for scripts and tests). */
  lastSent: SensitivityPanelData | null = null;
  private view: vscode.WebviewView | undefined;
  private pending: NodeJS.Timeout | undefined;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly editors: InspectorRegistry,
  ) {}

  static register(context: vscode.ExtensionContext, editors: InspectorRegistry): SensitivityViewProvider {
    const p = new SensitivityViewProvider(context.extensionUri, editors);
    context.subscriptions.push(
      vscode.window.registerWebviewViewProvider(SensitivityViewProvider.viewId, p),
      // Results stream in many batches a second: refresh the list at most every 250 ms.
      editors.onDidChange(() => {
        p.pending ??= setTimeout(() => {
          p.pending = undefined;
          p.update();
        }, 250);
      }),
      vscode.commands.registerCommand('quantscope.sensitivity.shown', () => p.lastSent),
    );
    return p;
  }

  private update(): void {
    if (!this.view) return;
    this.lastSent = this.editors.sensitivityPanelData();
    void this.view.webview.postMessage({ type: 'sensitivityPanel', data: this.lastSent } satisfies ToSensitivity);
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    view.webview.options = webviewOptions(this.extensionUri);
    view.webview.html = webviewHtml(view.webview, this.extensionUri, 'sensitivity', 'Sensitivity');
    view.onDidDispose(() => {
      if (this.view === view) this.view = undefined;
    });
    view.onDidChangeVisibility(() => view.visible && this.update());
    view.webview.onDidReceiveMessage((raw: unknown) => {
      const msg = parseFromSensitivity(raw);
      if (!msg) {
        log().warn('Ignored a malformed message from the Sensitivity view');
        return;
      }
      if (msg.type === 'ready') this.update();
      else if (msg.type === 'revealTensor') {
        if (!this.editors.reveal(msg.file, msg.name)) log().warn(`Sensitivity view: ${msg.name} is not in an open inspector of ${msg.file}`);
      } else if (msg.type === 'log') log()[msg.level](`[sensitivity] ${msg.message}`);
    });
  }
}

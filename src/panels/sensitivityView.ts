import * as vscode from 'vscode';
import { webviewHtml, webviewOptions } from '../editor/webviewHtml';
import { parseFromWebview } from '../shared/protocol';
import { log } from '../log';

/** The "Sensitivity" view in the QuantScope panel. */
export class SensitivityViewProvider implements vscode.WebviewViewProvider {
  static readonly viewId = 'quantscope.sensitivityView';
  constructor(private readonly extensionUri: vscode.Uri) {}

  static register(context: vscode.ExtensionContext): void {
    context.subscriptions.push(vscode.window.registerWebviewViewProvider(SensitivityViewProvider.viewId, new SensitivityViewProvider(context.extensionUri)));
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    view.webview.options = webviewOptions(this.extensionUri);
    view.webview.html = webviewHtml(view.webview, this.extensionUri, 'sensitivity', 'Sensitivity');
    view.webview.onDidReceiveMessage((raw: unknown) => {
      const msg = parseFromWebview(raw);
      if (msg?.type === 'log') log()[msg.level](`[sensitivity] ${msg.message}`);
    });
  }
}

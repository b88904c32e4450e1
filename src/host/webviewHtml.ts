import * as vscode from 'vscode';
import { randomBytes } from 'node:crypto';

/** HTML shell for a QuantScope webview: strict CSP with a nonce, local resources only. */
export function webviewHtml(webview: vscode.Webview, extensionUri: vscode.Uri, entry: 'inspector' | 'sensitivity' | 'compare' | 'experiment' | 'wizard', title: string): string {
  const nonce = randomBytes(16).toString('base64');
  const dist = vscode.Uri.joinPath(extensionUri, 'dist');
  // One bundle per view (scripts/build.mjs).
  const script = webview.asWebviewUri(vscode.Uri.joinPath(dist, `${entry}.js`));
  const style = webview.asWebviewUri(vscode.Uri.joinPath(dist, 'webview.css'));
  const codicons = webview.asWebviewUri(vscode.Uri.joinPath(dist, 'codicons', 'codicon.css'));
  const csp = [
    "default-src 'none'",
    `img-src ${webview.cspSource} data:`,
    `style-src ${webview.cspSource}`,
    `font-src ${webview.cspSource}`,
    `script-src 'nonce-${nonce}'`,
  ].join('; ');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link href="${codicons}" rel="stylesheet">
<link href="${style}" rel="stylesheet">
<title>${title.replace(/[<>&"]/g, '')}</title>
</head>
<body data-entry="${entry}">
<main id="app" aria-live="polite"><p class="qs-muted">Loading…</p></main>
<script nonce="${nonce}" src="${script}"></script>
</body>
</html>`;
}

/** Webview options: scripts on, resources only from the extension's dist/ and media/. */
export function webviewOptions(extensionUri: vscode.Uri): vscode.WebviewOptions {
  return {
    enableScripts: true,
    localResourceRoots: [vscode.Uri.joinPath(extensionUri, 'dist'), vscode.Uri.joinPath(extensionUri, 'media')],
  };
}

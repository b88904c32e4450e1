import * as vscode from 'vscode';

let channel: vscode.LogOutputChannel | undefined;

/** The extension's one output channel ("QuantScope"). */
export function log(): vscode.LogOutputChannel {
  if (!channel) channel = vscode.window.createOutputChannel('QuantScope', { log: true });
  return channel;
}

/** Which model a command means, and what a command says when its feature has not landed. */
import * as vscode from 'vscode';
import { MODEL_EDITOR_VIEW_TYPE } from '../inspector/provider';

const MODEL_EXTENSIONS = ['.onnx', '.safetensors', '.gguf'];

export function isModelUri(uri: vscode.Uri | undefined): uri is vscode.Uri {
  if (!uri) return false;
  const p = uri.path.toLowerCase();
  return MODEL_EXTENSIONS.some((e) => p.endsWith(e)) || p.endsWith('.safetensors.index.json');
}

/** The model the user means: the Explorer selection, the active inspector, or the active text editor's file. */
export function targetModel(arg: unknown): vscode.Uri | undefined {
  if (arg instanceof vscode.Uri && isModelUri(arg)) return arg;
  const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
  if (tab?.input instanceof vscode.TabInputCustom && tab.input.viewType === MODEL_EDITOR_VIEW_TYPE) return tab.input.uri;
  const editorUri = vscode.window.activeTextEditor?.document.uri;
  return isModelUri(editorUri) ? editorUri : undefined;
}

export async function pickModel(arg: unknown, title: string): Promise<vscode.Uri | undefined> {
  const known = targetModel(arg);
  if (known) return known;
  const picked = await vscode.window.showOpenDialog({
    title,
    canSelectMany: false,
    filters: { 'Model files': ['onnx', 'safetensors', 'gguf', 'json'] },
  });
  return picked?.[0];
}

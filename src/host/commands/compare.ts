import * as vscode from 'vscode';
import type { HostPool } from '../workerPool';
import { ComparePanel, registerCompareSerializer } from '../compare/comparePanel';
import { isModelUri } from './modelTarget';

const FILTERS = { 'Model files': ['onnx', 'safetensors', 'gguf', 'json'] };

/** The two files a call means: (uriA, uriB), the Explorer's (clicked, selection[]), or picked in dialogs. */
async function twoModels(a: unknown, b: unknown): Promise<[vscode.Uri, vscode.Uri] | undefined> {
  if (Array.isArray(b)) {
    const sel = b.filter((u): u is vscode.Uri => u instanceof vscode.Uri);
    if (sel.length === 2) return [sel[0], sel[1]];
    if (sel.length > 2) {
      void vscode.window.showWarningMessage(`QuantScope: Compare Selected takes two model files, ${sel.length} are selected.`);
      return undefined;
    }
  }
  if (a instanceof vscode.Uri && b instanceof vscode.Uri) return [a, b];
  if (typeof a === 'string' && typeof b === 'string') return [vscode.Uri.file(a), vscode.Uri.file(b)];
  let first = a instanceof vscode.Uri && isModelUri(a) ? a : undefined;
  if (!first) {
    const picked = await vscode.window.showOpenDialog({ title: 'Compare Two Models: the reference model (A), or both', canSelectMany: true, filters: FILTERS });
    if (!picked?.length) return undefined;
    if (picked.length >= 2) return [picked[0], picked[1]];
    first = picked[0];
  }
  const second = await vscode.window.showOpenDialog({ title: `Compare with ${first.path.split('/').pop()}: the other model (B)`, canSelectMany: false, filters: FILTERS });
  return second?.[0] ? [first, second[0]] : undefined;
}

/** Compare Two Models… (palette, Explorer "Compare Selected", or executeCommand('quantscope.compareModels', uriA, uriB)). */
export function registerCompare(context: vscode.ExtensionContext, pool: HostPool): void {
  registerCompareSerializer(context, pool);
  const compare = async (a?: unknown, b?: unknown): Promise<{ available: true; a: string; b: string } | undefined> => {
    const pair = await twoModels(a, b);
    if (!pair) return undefined;
    ComparePanel.create(context, pool, pair[0], pair[1]);
    return { available: true, a: pair[0].fsPath, b: pair[1].fsPath };
  };
  context.subscriptions.push(
    vscode.commands.registerCommand('quantscope.compareModels', compare),
    vscode.commands.registerCommand('quantscope.compareSelected', compare),
    // Scriptable: the state of every open comparison (tests read the numbers the view was sent).
    vscode.commands.registerCommand('quantscope.compare.shown', () => [...ComparePanel.open].map((p) => p.state)),
  );
}

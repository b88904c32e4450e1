import * as vscode from 'vscode';
import * as path from 'node:path';
import { buildOverview } from '../../analysis/overview';
import { MODEL_EDITOR_VIEW_TYPE, type ModelEditorProvider } from '../inspector/provider';
import type { ModelOverview } from '../../shared/protocol/inspector';
import { log } from '../log';

const MODEL_EXTENSIONS = ['.onnx', '.safetensors', '.gguf'];

function isModelUri(uri: vscode.Uri | undefined): uri is vscode.Uri {
  if (!uri) return false;
  const p = uri.path.toLowerCase();
  return MODEL_EXTENSIONS.some((e) => p.endsWith(e)) || p.endsWith('.safetensors.index.json');
}

/** The model the user means: the Explorer selection, the active inspector, or the active text editor's file. */
function targetModel(arg: unknown): vscode.Uri | undefined {
  if (arg instanceof vscode.Uri && isModelUri(arg)) return arg;
  const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
  if (tab?.input instanceof vscode.TabInputCustom && tab.input.viewType === MODEL_EDITOR_VIEW_TYPE) return tab.input.uri;
  const editorUri = vscode.window.activeTextEditor?.document.uri;
  return isModelUri(editorUri) ? editorUri : undefined;
}

async function pickModel(arg: unknown, title: string): Promise<vscode.Uri | undefined> {
  const known = targetModel(arg);
  if (known) return known;
  const picked = await vscode.window.showOpenDialog({
    title,
    canSelectMany: false,
    filters: { 'Model files': ['onnx', 'safetensors', 'gguf', 'json'] },
  });
  return picked?.[0];
}

/** Result of a command whose feature has not landed: said to the user, and returned for scripts and tests. */
export interface NotAvailable {
  available: false;
  feature: string;
  message: string;
}

function notYet(feature: string, detail: string): NotAvailable {
  const message = `QuantScope: ${feature} is not available in this version yet. ${detail}`;
  void vscode.window.showInformationMessage(message);
  log().info(message);
  return { available: false, feature, message };
}

export function registerCommands(context: vscode.ExtensionContext, editors: ModelEditorProvider): void {
  const reg = (id: string, fn: (...args: unknown[]) => unknown) => context.subscriptions.push(vscode.commands.registerCommand(id, fn));

  reg('quantscope.openInspector', async (arg: unknown) => {
    const uri = await pickModel(arg, 'Open a model in the QuantScope inspector');
    if (!uri) return undefined;
    await vscode.commands.executeCommand('vscode.openWith', uri, MODEL_EDITOR_VIEW_TYPE);
    return uri.fsPath;
  });

  reg('quantscope.showSensitivity', async () => {
    await vscode.commands.executeCommand('quantscope.sensitivityView.focus');
    return true;
  });

  reg('quantscope.quantizeModel', async (arg: unknown) => {
    const uri = targetModel(arg);
    return notYet('Quantize Model…', `Conversion to INT8/INT4 files is under construction${uri ? ` (asked for ${path.basename(uri.fsPath)})` : ''}; use the inspector to study the model meanwhile.`);
  });
  reg('quantscope.runExperiment', async () => notYet('Run Quantization Experiment…', 'Experiments with charts come with the quantization engine.'));
  reg('quantscope.compareModels', async () => notYet('Compare Two Models…', 'Model comparison is planned after conversion.'));
  // (model, target path) skips the dialogs, for tests and automation; returns the written path.
  reg('quantscope.exportReport', async (arg: unknown, target?: unknown) => {
    const uri = targetModel(arg) ?? (typeof arg === 'string' ? vscode.Uri.file(arg) : undefined);
    const report = editors.reportFor(uri);
    if (!report) {
      const message = 'QuantScope: open the model in the inspector first; the report is built from its statistics.';
      void vscode.window.showWarningMessage(message);
      return undefined;
    }
    let dest: vscode.Uri | undefined;
    if (typeof target === 'string' && path.isAbsolute(target)) dest = vscode.Uri.file(target);
    else {
      dest = await vscode.window.showSaveDialog({
        title: 'Export the quantization readiness report',
        defaultUri: vscode.Uri.file(`${report.path}.quantization-report.md`),
        filters: { Markdown: ['md'] },
      });
    }
    if (!dest) return undefined;
    await vscode.workspace.fs.writeFile(dest, new TextEncoder().encode(report.markdown));
    log().info(`Exported the quantization report of ${report.path} to ${dest.fsPath}`);
    if (typeof target !== 'string') void vscode.window.showInformationMessage(`QuantScope: report written to ${dest.fsPath}`);
    return dest.fsPath;
  });
  reg('quantscope.showLog', () => log().show(true));

  // Scriptable: the index summary of a model file (used by tests and other extensions).
  reg('quantscope.getModelSummary', async (arg: unknown): Promise<ModelOverview> => {
    const uri = arg instanceof vscode.Uri ? arg : typeof arg === 'string' ? vscode.Uri.file(arg) : targetModel(undefined);
    if (!uri) throw new Error('quantscope.getModelSummary needs a model file URI');
    // Loaded on first use so activation stays fast.
     
    const { openModel } = require('../../formats') as typeof import('../../formats');
    const model = openModel(uri.fsPath);
    try {
      return buildOverview(model).overview;
    } finally {
      model.close();
    }
  });
  // Scriptable: what the open inspectors show.
  reg('quantscope.getOpenInspectors', () =>
    [...editors.open.entries()].map(([file, e]) => ({ file, overview: e.overview, error: e.error, visible: e.panel.visible })),
  );
}

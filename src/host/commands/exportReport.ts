import * as vscode from 'vscode';
import * as path from 'node:path';
import type { InspectorRegistry } from '../inspector/registry';
import { targetModel } from './modelTarget';
import { log } from '../log';
import { saveFile } from '../saveFile';

/** Export Report…: the open model's Markdown quantization-readiness report. */
export function registerExportReport(context: vscode.ExtensionContext, registry: InspectorRegistry): void {
  // (model, target path) skips the dialogs, for tests and automation; returns the written path.
  context.subscriptions.push(vscode.commands.registerCommand('quantscope.exportReport', async (arg: unknown, target?: unknown) => {
    const uri = targetModel(arg) ?? (typeof arg === 'string' ? vscode.Uri.file(arg) : undefined);
    const report = registry.reportFor(uri);
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
    await saveFile(dest, report.markdown);
    log().info(`Exported the quantization report of ${report.path} to ${dest.fsPath}`);
    if (typeof target !== 'string') void vscode.window.showInformationMessage(`QuantScope: report written to ${dest.fsPath}`);
    return dest.fsPath;
  }));
}

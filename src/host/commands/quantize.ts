import * as vscode from 'vscode';
import * as path from 'node:path';
import { notYet, targetModel } from './modelTarget';

/** Quantize Model… (Explorer context menu, editor title, palette). */
export function registerQuantize(context: vscode.ExtensionContext): void {
  context.subscriptions.push(vscode.commands.registerCommand('quantscope.quantizeModel', async (arg: unknown) => {
    const uri = targetModel(arg);
    return notYet('Quantize Model…', `Conversion to INT8/INT4 files is under construction${uri ? ` (asked for ${path.basename(uri.fsPath)})` : ''}; use the inspector to study the model meanwhile.`);
  }));
}

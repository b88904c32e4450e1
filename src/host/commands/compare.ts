import * as vscode from 'vscode';
import { notYet } from './modelTarget';

/** Compare Two Models… */
export function registerCompare(context: vscode.ExtensionContext): void {
  context.subscriptions.push(vscode.commands.registerCommand('quantscope.compareModels', async () => notYet('Compare Two Models…', 'Model comparison is planned after conversion.')));
}

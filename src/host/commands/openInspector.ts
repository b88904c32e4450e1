import * as vscode from 'vscode';
import { MODEL_EDITOR_VIEW_TYPE } from '../inspector/provider';
import { pickModel } from './modelTarget';

/** Open Model Inspector: the Explorer selection, the active model, or a file the user picks. */
export function registerOpenInspector(context: vscode.ExtensionContext): void {
  context.subscriptions.push(vscode.commands.registerCommand('quantscope.openInspector', async (arg: unknown) => {
    const uri = await pickModel(arg, 'Open a model in the QuantScope inspector');
    if (!uri) return undefined;
    await vscode.commands.executeCommand('vscode.openWith', uri, MODEL_EDITOR_VIEW_TYPE);
    return uri.fsPath;
  }));
}

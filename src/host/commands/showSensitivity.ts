import * as vscode from 'vscode';

/** Show Sensitivity Panel: focuses the Sensitivity view in the QuantScope panel. */
export function registerShowSensitivity(context: vscode.ExtensionContext): void {
  context.subscriptions.push(vscode.commands.registerCommand('quantscope.showSensitivity', async () => {
    await vscode.commands.executeCommand('quantscope.sensitivityView.focus');
    // A view restored with the window may hold what it showed before any model was open: send it the active one now.
    await vscode.commands.executeCommand('quantscope.sensitivity.refresh');
    return true;
  }));
}

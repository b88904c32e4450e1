import * as vscode from 'vscode';
import { notYet } from './modelTarget';

/** Run Quantization Experiment… */
export function registerExperiment(context: vscode.ExtensionContext): void {
  context.subscriptions.push(vscode.commands.registerCommand('quantscope.runExperiment', async () => notYet('Run Quantization Experiment…', 'Experiments with charts come with the quantization engine.')));
}

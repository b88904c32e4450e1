import * as vscode from 'vscode';
import type { HostPool } from '../workerPool';
import { ExperimentPanel } from '../experiment/experimentPanel';
import { pickModel } from './modelTarget';

/** Run Quantization Experiment… (palette, or executeCommand('quantscope.runExperiment', uri)). */
export function registerExperiment(context: vscode.ExtensionContext, pool: HostPool): void {
  ExperimentPanel.registerSerializer(context, pool);
  context.subscriptions.push(
    vscode.commands.registerCommand('quantscope.runExperiment', async (arg?: unknown) => {
      const uri = await pickModel(typeof arg === 'string' ? vscode.Uri.file(arg) : arg, 'Choose an ONNX model to experiment on');
      if (!uri) return undefined;
      ExperimentPanel.show(context, pool, uri);
      return { available: true, file: uri.fsPath };
    }),
    // Scriptable: what every open experiment shows (tests read the numbers the view was sent).
    vscode.commands.registerCommand('quantscope.experiment.shown', () => [...ExperimentPanel.open.values()].map((p) => p.state)),
  );
}

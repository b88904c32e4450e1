import * as vscode from 'vscode';
import { ModelEditorProvider } from './editor/modelEditorProvider';
import { SensitivityViewProvider } from './panels/sensitivityView';
import { registerCommands } from './commands';
import { log } from './log';

export interface QuantScopeApi {
  activationMs: number;
}

// Set by the bundle's first line (see scripts/build.mjs), so module loading counts too.
declare const globalThis: { __quantscopeLoadStart?: number };

export function activate(context: vscode.ExtensionContext): QuantScopeApi {
  const t0 = globalThis.__quantscopeLoadStart ?? performance.now();
  const editors = ModelEditorProvider.register(context);
  SensitivityViewProvider.register(context);
  registerCommands(context, editors);
  const activationMs = performance.now() - t0;
  log().info(`QuantScope ${context.extension.packageJSON.version} activated in ${activationMs.toFixed(1)} ms (VS Code ${vscode.version})`);
  return { activationMs };
}

export function deactivate(): void {}

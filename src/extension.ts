import * as vscode from 'vscode';
import { ModelEditorProvider } from './host/inspector/provider';
import { InspectorRegistry } from './host/inspector/registry';
import { HostPool } from './host/workerPool';
import { SensitivityViewProvider } from './host/panels/sensitivityView';
import { registerCommands } from './host/commands';
import { log } from './host/log';

export interface QuantScopeApi {
  activationMs: number;
}

// Set by the bundle's first line (see scripts/build.mjs), so module loading counts too.
declare const globalThis: { __quantscopeLoadStart?: number };

export function activate(context: vscode.ExtensionContext): QuantScopeApi {
  const tActivate = performance.now();
  const t0 = globalThis.__quantscopeLoadStart ?? tActivate;
  const registry = new InspectorRegistry();
  const pool = new HostPool(context.extensionUri);
  context.subscriptions.push(registry, pool);
  ModelEditorProvider.register(context, registry, pool);
  SensitivityViewProvider.register(context, registry, pool);
  registerCommands(context, { registry, pool });
  const activationMs = performance.now() - t0;
  log().info(
    `QuantScope ${context.extension.packageJSON.version} activated in ${activationMs.toFixed(1)} ms ` +
      `(bundle load to activate() ${(tActivate - t0).toFixed(1)} ms, activate() ${(performance.now() - tActivate).toFixed(1)} ms; VS Code ${vscode.version})`,
  );
  return { activationMs };
}

export function deactivate(): void {}

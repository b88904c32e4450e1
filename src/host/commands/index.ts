/** Every command, one file each; this registers them all. */
import type * as vscode from 'vscode';
import type { InspectorRegistry } from '../inspector/registry';
import type { HostPool } from '../workerPool';
import { registerCompare } from './compare';
import { registerExperiment } from './experiment';
import { registerExportReport } from './exportReport';
import { registerOpenInspector } from './openInspector';
import { registerQuantize } from './quantize';
import { registerScripting } from './scripting';
import { registerShowLog } from './showLog';
import { registerShowSensitivity } from './showSensitivity';

export interface CommandDeps {
  registry: InspectorRegistry;
  pool: HostPool;
}

export function registerCommands(context: vscode.ExtensionContext, deps: CommandDeps): void {
  registerOpenInspector(context);
  registerShowSensitivity(context);
  registerQuantize(context, deps.pool);
  registerExperiment(context, deps.pool);
  registerCompare(context, deps.pool);
  registerExportReport(context, deps.registry);
  registerShowLog(context);
  registerScripting(context, deps.registry, deps.pool);
}

import * as vscode from 'vscode';
import { buildOverview } from '../../analysis/overview';
import type { ModelOverview } from '../../shared/protocol/inspector';
import type { InspectorRegistry } from '../inspector/registry';
import type { HostPool } from '../workerPool';
import { targetModel } from './modelTarget';

/** Commands for scripts, tests and other extensions (not in the palette). */
export function registerScripting(context: vscode.ExtensionContext, registry: InspectorRegistry, pool: HostPool): void {
  // Scriptable: what the extension holds now (open inspectors, the pool's workers and jobs, this process's memory), for load tests and diagnostics.
  context.subscriptions.push(vscode.commands.registerCommand('quantscope.getResourceState', () => {
    const m = process.memoryUsage();
    return { inspectors: registry.open.size, pool: pool.state(), heapUsed: m.heapUsed, rss: m.rss, external: m.external, arrayBuffers: m.arrayBuffers };
  }));
  // Scriptable: the index summary of a model file (used by tests and other extensions).
  context.subscriptions.push(vscode.commands.registerCommand('quantscope.getModelSummary', async (arg: unknown): Promise<ModelOverview> => {
    const uri = arg instanceof vscode.Uri ? arg : typeof arg === 'string' ? vscode.Uri.file(arg) : targetModel(undefined);
    if (!uri) throw new Error('quantscope.getModelSummary needs a model file URI');
    // Loaded on first use so activation stays fast.
     
    const { openModel } = require('../../formats') as typeof import('../../formats');
    const model = openModel(uri.fsPath);
    try {
      return buildOverview(model).overview;
    } finally {
      model.close();
    }
  }));
  // Scriptable: what the open inspectors show.
  context.subscriptions.push(vscode.commands.registerCommand('quantscope.getOpenInspectors', () =>
    [...registry.open.entries()].map(([file, e]) => ({ file, overview: e.overview, error: e.error, visible: e.panel.visible })),
  ));
}

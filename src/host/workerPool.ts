import * as vscode from 'vscode';
import * as path from 'node:path';
import type { WorkerPool } from '../jobs/pool';

/**
 * The extension's one worker pool (dist/worker.js), made on first use so
 * activation stays fast, sized by `quantscope.workers.threads`, closed on
 * deactivation. The inspector's analyses and conversions share it.
 */
export class HostPool implements vscode.Disposable {
  private pool: WorkerPool | undefined;
  constructor(private readonly extensionUri: vscode.Uri) {}

  get(): WorkerPool {
    if (!this.pool) {
      const { WorkerPool } = require('../jobs/pool') as typeof import('../jobs/pool');
      const threads = vscode.workspace.getConfiguration('quantscope').get<number>('workers.threads', 0);
      this.pool = new WorkerPool({ workerScript: path.join(this.extensionUri.fsPath, 'dist', 'worker.js'), ...(threads > 0 ? { size: threads } : {}) });
    }
    return this.pool;
  }

  /** The pool's workers and jobs (none before first use). */
  state(): { workers: number; running: number; queued: number } {
    return this.pool?.state() ?? { workers: 0, running: 0, queued: 0 };
  }

  dispose(): void {
    void this.pool?.close();
    this.pool = undefined;
  }
}

/** The onnxruntime-node execution provider of `quantscope.runtime.executionProvider` (CPU when unset; one that cannot start falls back to CPU and the result says so). */
export function runtimeProvider(): string {
  return vscode.workspace.getConfiguration('quantscope').get<string>('runtime.executionProvider', 'cpu') || 'cpu';
}

/** Tell the user once per run when the chosen provider could not start (the result carries the same note). */
export function warnProvider(note: string | undefined): void {
  if (note) void vscode.window.showWarningMessage(`QuantScope: ${note}`);
}

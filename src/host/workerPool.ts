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

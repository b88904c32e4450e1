import * as vscode from 'vscode';
import { webviewHtml, webviewOptions } from '../webviewHtml';
import type { InspectorRegistry } from '../inspector/registry';
import { parseFromSensitivity, type FromSensitivity, type SensitivityPanelData, type ToSensitivity } from '../../shared/protocol/sensitivity';
import { log } from '../log';
import type { HostPool } from '../workerPool';
import { SensitivityBudget } from './sensitivityBudget';

/** Where output-space measurements are cached (the Sensitivity panel and the Quantize wizard share it). */
export function runtimeCacheDir(context: vscode.ExtensionContext): string {
  return vscode.Uri.joinPath(context.globalStorageUri, 'runtime-cache').fsPath;
}

/**
 * The "Sensitivity" view in the QuantScope panel: the weights of the inspector
 * the user looked at last, least INT4 SQNR first (or largest measured output
 * effect); a click reveals the tensor there. A budget slider marks which
 * weights the knapsack lowers or keeps, and "Quantize with this plan" hands
 * that plan to Quantize Model….
 */
export class SensitivityViewProvider implements vscode.WebviewViewProvider {
  static readonly viewId = 'quantscope.sensitivityView';
  /** What the view was last sent (for scripts and tests). */
  lastSent: SensitivityPanelData | null = null;
  private view: vscode.WebviewView | undefined;
  private pending: NodeJS.Timeout | undefined;
  private readonly budget: SensitivityBudget;

  constructor(
    private readonly extensionUri: vscode.Uri,
    private readonly editors: InspectorRegistry,
    pool: HostPool,
    cacheDir?: string,
  ) {
    this.budget = new SensitivityBudget(pool, cacheDir, () => this.schedule());
  }

  private schedule(): void {
    this.pending ??= setTimeout(() => {
      this.pending = undefined;
      this.update();
    }, 250);
  }

  static register(context: vscode.ExtensionContext, editors: InspectorRegistry, pool: HostPool): SensitivityViewProvider {
    const p = new SensitivityViewProvider(context.extensionUri, editors, pool, runtimeCacheDir(context));
    context.subscriptions.push(
      vscode.window.registerWebviewViewProvider(SensitivityViewProvider.viewId, p),
      // Results stream in many batches a second: refresh the list at most every 250 ms.
      editors.onDidChange(() => p.schedule()),
      vscode.commands.registerCommand('quantscope.sensitivity.shown', () => p.lastSent),
      vscode.commands.registerCommand('quantscope.sensitivity.refresh', () => p.update()),
    );
    return p;
  }

  update(): void {
    if (!this.view) return;
    const base = this.editors.sensitivityPanelData(500);
    const doc = base ? this.editors.open.get(base.file)?.document : undefined;
    try {
      this.lastSent = base && doc ? this.budget.decorate(base, doc) : base;
    } catch (e) {
      // The ranking still shows when the budget part fails; the reason goes to the log and the panel.
      log().error(`Sensitivity view: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      this.lastSent = base && { ...base, budgetWhy: `could not be computed (${e instanceof Error ? e.message : String(e)})` };
    }
    void this.view.webview.postMessage({ type: 'sensitivityPanel', data: this.lastSent } satisfies ToSensitivity);
  }

  /** The panel's own actions, on the model it shows. */
  private act(msg: Exclude<FromSensitivity, { type: 'ready' | 'log' | 'revealTensor' }>): void {
    const file = this.lastSent?.file;
    const doc = file ? this.editors.open.get(file)?.document : undefined;
    if (!file || !doc) return;
    switch (msg.type) {
      case 'setMetric': this.budget.setMetric(file, msg.metric); this.update(); break;
      case 'setBudget': if (this.budget.setBudget(file, msg.bitsPerWeight, msg.target)) doc.setOutput(undefined); this.update(); break;
      case 'measureOutput': void this.budget.measure(file, doc); break;
      case 'cancelOutput': this.budget.cancel(file); break;
      case 'quantizeWithPlan': {
        const plan = this.budget.planFor(file);
        if (plan) void vscode.commands.executeCommand('quantscope.quantizeModel', vscode.Uri.file(file), { plan });
        break;
      }
    }
  }

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    view.webview.options = webviewOptions(this.extensionUri);
    view.webview.html = webviewHtml(view.webview, this.extensionUri, 'sensitivity', 'Sensitivity');
    view.onDidDispose(() => {
      if (this.view === view) this.view = undefined;
    });
    view.onDidChangeVisibility(() => view.visible && this.update());
    view.webview.onDidReceiveMessage((raw: unknown) => {
      const msg = parseFromSensitivity(raw);
      if (!msg) {
        log().warn('Ignored a malformed message from the Sensitivity view');
        return;
      }
      if (msg.type === 'ready') this.update();
      else if (msg.type === 'revealTensor') {
        if (!this.editors.reveal(msg.file, msg.name)) log().warn(`Sensitivity view: ${msg.name} is not in an open inspector of ${msg.file}`);
      } else if (msg.type === 'log') log()[msg.level](`[sensitivity] ${msg.message}`);
      else this.act(msg);
    });
  }
}

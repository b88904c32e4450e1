/**
 * Quantize Model… (Explorer context menu, editor title, palette): opens the
 * Quantize wizard beside the inspector (src/host/wizard/). Scripts and tests
 * pass `(uri, { target, ... })` to convert without the wizard and get the
 * report back; `(uri, { plan })` opens the wizard with that plan preloaded
 * (the Sensitivity panel's "Quantize with this plan").
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ConvertReport, ConvertRequest, ConvertTarget } from '../../pipelines/convert';
import type { HostPool } from '../workerPool';
import { WizardPanel } from '../wizard/panel';
import type { Plan } from '../../quant/plan';
import { pickModel } from './modelTarget';
import { log } from '../log';

/** What a script may pass instead of answering the pickers. */
export interface QuantizeOptions {
  target: ConvertTarget;
  output?: string;
  bits?: 2 | 4 | 8;
  blockSize?: number;
  preset?: string;
  budgetBitsPerWeight?: number;
  overwrite?: boolean;
  skipRuntime?: boolean;
}

/** `{ plan }` without a target: open the wizard with the plan preloaded. */
export interface WizardOptions { plan: unknown }

function isScripted(v: unknown): v is QuantizeOptions {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as { target?: unknown }).target === 'string';
}

/** One line a person reads: size, predicted and measured. */
export function resultSummary(r: ConvertReport): string {
  const ratio = (100 * r.totals.fileBytesAfter) / Math.max(1, r.totals.fileBytesBefore);
  const worst = r.tensors.reduce((m, t) => Math.min(m, t.predicted.sqnrDb), Infinity);
  const rt = r.verification.runtime;
  const measured = rt
    ? rt.outputs.map((o) => (o.meanKl !== undefined ? `KL ${o.meanKl.toPrecision(3)}` : `cosine ${o.cosine?.toFixed(4)}`)).slice(0, 2).join(', ') + ` on ${rt.data} inputs (${rt.runtime})`
    : `not run (${r.verification.runtimeSkipped})`;
  return `${path.basename(r.output)}: ${ratio.toFixed(1)}% of the original, ${r.totals.tensorsQuantized} tensors quantized. Predicted: worst weight SQNR ${Number.isFinite(worst) ? worst.toFixed(1) : '∞'} dB. Measured: ${measured}.`;
}

export function registerQuantize(context: vscode.ExtensionContext, pool: HostPool): void {
  context.subscriptions.push(vscode.window.registerWebviewPanelSerializer(WizardPanel.viewType, {
    // A wizard left open comes back after a reload, for the same model (its settings are in workspaceState).
    async deserializeWebviewPanel(panel, state: unknown) {
      const file = typeof state === 'object' && state !== null && typeof (state as { file?: unknown }).file === 'string' ? (state as { file: string }).file : undefined;
      if (!file || !fs.existsSync(file)) { panel.dispose(); return; }
      WizardPanel.restore(context, pool, panel, vscode.Uri.file(file));
    },
  }));
  // Scriptable: what the wizard of a model shows (its state, as sent to the webview).
  context.subscriptions.push(vscode.commands.registerCommand('quantscope.wizard.state', (arg: unknown) => {
    const file = arg instanceof vscode.Uri ? arg.fsPath : typeof arg === 'string' ? arg : undefined;
    return file ? WizardPanel.stateOf(file) : undefined;
  }));
  context.subscriptions.push(vscode.commands.registerCommand('quantscope.quantizeModel', async (arg: unknown, second?: unknown) => {
    // The Explorer passes the selection (an array of URIs) second; scripts pass options with a target.
    const scripted = isScripted(second) ? second : undefined;
    const uri = await pickModel(arg, 'Choose a model to quantize');
    if (!uri) return undefined;
    if (!scripted) {
      let plan: Plan | undefined;
      const given = typeof second === 'object' && second !== null && !Array.isArray(second) ? (second as Partial<WizardOptions>).plan : undefined;
      if (given !== undefined) {
        const { parsePlan } = require('../../quant/plan') as typeof import('../../quant/plan');
        try {
          plan = parsePlan(given, 'the plan passed to Quantize Model…');
        } catch (e) {
          void vscode.window.showErrorMessage(`QuantScope: ${e instanceof Error ? e.message : String(e)}`);
          return undefined;
        }
      }
      WizardPanel.show(context, pool, uri, plan);
      return undefined;
    }
    if (!vscode.workspace.isTrusted) {
      void vscode.window.showWarningMessage('QuantScope: quantizing runs the model to verify the output; trust this workspace first.');
      return undefined;
    }
    const source = uri.fsPath;
    const { openModel } = require('../../formats') as typeof import('../../formats');
    const { targetsFor, defaultOutputPath, convert, VerificationError } = require('../../pipelines/convert') as typeof import('../../pipelines/convert');
    let format: 'onnx' | 'safetensors' | 'gguf';
    try {
      const m = openModel(source);
      format = m.format;
      m.close();
    } catch (e) {
      void vscode.window.showErrorMessage(`QuantScope: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
    const targets = targetsFor(format);
    if (!targets.length) {
      void vscode.window.showInformationMessage(`QuantScope: ${path.basename(source)} is a ${format} file; conversion writes ONNX (from ONNX) and GGUF (from GGUF and Hugging Face checkpoints).`);
      return undefined;
    }
    const full: ConvertRequest = {
      source, target: scripted.target, bits: scripted.bits, blockSize: scripted.blockSize, preset: scripted.preset, overwrite: scripted.overwrite, skipRuntime: scripted.skipRuntime,
      output: scripted.output ?? defaultOutputPath(source, scripted.target, { bits: scripted.bits, preset: scripted.preset }),
    };
    if (scripted.budgetBitsPerWeight) full.budget = { bitsPerWeight: scripted.budgetBitsPerWeight };
    log().info(`Quantizing ${source} → ${full.output} (${full.target})`);
    try {
      const report = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: `Quantizing ${path.basename(source)}`, cancellable: true }, async (progress, token) => {
        const ac = new AbortController();
        token.onCancellationRequested(() => ac.abort());
        let lastFraction = 0;
        return convert({ ...full, pool: pool.get() }, {
          signal: ac.signal,
          onProgress: (p) => {
            const fraction = p.phase === 'verify' ? 0.95 : p.total > 0 ? 0.9 * (p.done / p.total) : 0;
            const increment = Math.max(0, fraction - lastFraction) * 100;
            lastFraction = Math.max(lastFraction, fraction);
            progress.report({ message: `${p.phase}${p.total ? ` ${p.done}/${p.total}` : ''}${p.tensor ? `: ${p.tensor}` : ''}`, increment });
          },
        });
      });
      const summary = resultSummary(report);
      log().info(`Quantized: ${summary}`);
      return report;
    } catch (e) {
      const cancelled = e instanceof Error && e.name === 'CancelledError';
      const message = cancelled ? 'cancelled; nothing was written' : e instanceof VerificationError ? `verification failed, nothing was kept: ${e.message}` : e instanceof Error ? e.message : String(e);
      log()[cancelled ? 'info' : 'error'](`Quantize ${source}: ${message}`);
      throw e;
    }
  }));
}

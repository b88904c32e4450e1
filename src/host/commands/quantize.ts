/**
 * Quantize Model… (Explorer context menu, editor title, palette): a short
 * flow until the wizard lands. Target (only those that fit the model's
 * format, each with who loads it), then its settings or a size budget, an
 * output next to the source, progress per tensor with Cancel, and a result
 * that says what was predicted and what was measured, with Open and Show
 * Report. `(uri, options)` skips the pickers, for tests and automation.
 */
import * as vscode from 'vscode';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ConvertReport, ConvertRequest, ConvertTarget } from '../../pipelines/convert';
import type { HostPool } from '../workerPool';
import { MODEL_EDITOR_VIEW_TYPE } from '../inspector/provider';
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

interface Choice extends vscode.QuickPickItem { apply: Partial<ConvertRequest> | 'budget' }

function isScripted(v: unknown): v is QuantizeOptions {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && typeof (v as { target?: unknown }).target === 'string';
}

function settingsFor(target: ConvertTarget): Choice[] {
  switch (target) {
    case 'onnx-int4':
      return [
        { label: 'INT4, blocks of 128', description: 'symmetric, RTN', detail: 'About 4.3 bits per weight; the default of ONNX Runtime\'s quantizer.', apply: { bits: 4, blockSize: 128 } },
        { label: 'INT4, blocks of 32', description: 'symmetric, RTN', detail: 'Finer scales: lower error, about 5 bits per weight.', apply: { bits: 4, blockSize: 32 } },
        { label: 'INT8, blocks of 128', description: 'symmetric, RTN', detail: 'About 8.3 bits per weight; nearly lossless on most weights.', apply: { bits: 8, blockSize: 128 } },
        { label: 'Mixed precision under a budget…', description: 'knapsack search', detail: 'Per weight: keep, INT8 or INT4, chosen by the measured weight-space error to fit a bits-per-weight budget.', apply: 'budget' },
      ];
    case 'onnx-qdq':
      return [
        { label: 'INT8 per output channel', description: 'weight-only QDQ', detail: 'DequantizeLinear on int8 weights of Conv, ConvTranspose, MatMul and Gemm.', apply: { bits: 8 } },
        { label: 'INT4 in blocks of 128', description: 'weight-only QDQ, opset 21', detail: 'Blocked DequantizeLinear (opset 21) on int4 weights.', apply: { bits: 4 } },
      ];
    case 'onnx-dynamic':
      return [{ label: 'Dynamic INT8', description: 'MatMul/Gemm', detail: 'Weights int8 per channel, activations quantized at run time.', apply: {} }];
    case 'gguf':
      return ['Q4_K_M', 'Q5_K_M', 'Q6_K', 'Q8_0', 'Q4_K_S', 'Q5_K_S', 'Q3_K_M', 'Q3_K_S', 'Q2_K', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1'].map((p) => ({
        label: p, description: p === 'Q4_K_M' ? 'llama.cpp\'s usual choice' : undefined, detail: undefined, apply: { preset: p },
      }));
    case 'safetensors-gptq':
    case 'safetensors-compressed':
      return [
        { label: 'INT4, groups of 128', description: 'symmetric, RTN', detail: 'W4A16: the usual GPTQ / vLLM setting, about 4.1 bits per weight.', apply: { bits: 4, blockSize: 128 } },
        { label: 'INT4, groups of 32', description: 'symmetric, RTN', detail: 'Finer scales: lower error, about 4.5 bits per weight.', apply: { bits: 4, blockSize: 32 } },
        { label: 'INT8, groups of 128', description: 'symmetric, RTN', detail: 'W8A16: nearly lossless on most weights.', apply: { bits: 8, blockSize: 128 } },
      ];
  }
}

function reportMarkdown(r: ConvertReport): string {
  const L = [`# Quantization report: ${path.basename(r.output)}`, '', `- Source: \`${r.source}\``, `- Output: \`${r.output}\``, `- Target: ${r.target}`,
    `- Tensors: ${r.totals.tensorsQuantized} quantized, ${r.totals.tensorsKept} kept as they were`,
    `- File: ${r.totals.fileBytesBefore} → ${r.totals.fileBytesAfter} bytes (${((100 * r.totals.fileBytesAfter) / Math.max(1, r.totals.fileBytesBefore)).toFixed(1)} %)`,
    `- Read back: ${r.verification.readBack.checked} tensors decode to the predicted values`, ''];
  const rt = r.verification.runtime;
  L.push('## Measured on the runtime', '');
  if (rt) {
    L.push(`On ${rt.runtime}, ${rt.data} inputs: ${rt.inputs.join('; ')}.`, '', '| output | cosine | SQNR (dB) | max abs error | top-1 agreement | mean KL (nats) |', '|---|---|---|---|---|---|');
    for (const o of rt.outputs) L.push(`| ${o.name} | ${o.cosine?.toFixed(6) ?? '—'} | ${o.sqnrDb?.toFixed(1) ?? '—'} | ${o.maxAbs?.toPrecision(3) ?? '—'} | ${o.top1Agreement !== undefined ? (100 * o.top1Agreement).toFixed(1) + ' %' : '—'} | ${o.meanKl?.toPrecision(3) ?? '—'} |`);
  } else L.push(`Not run: ${r.verification.runtimeSkipped ?? 'unknown reason'}.`);
  L.push('', '## Predicted weight error per tensor (weight space, from the written codes)', '', '| tensor | choice | SQNR (dB) | bytes before | bytes after |', '|---|---|---|---|---|');
  for (const t of [...r.tensors].sort((a, b) => a.predicted.sqnrDb - b.predicted.sqnrDb)) L.push(`| \`${t.name}\` | ${t.choice} | ${t.predicted.sqnrDb.toFixed(1)} | ${t.bytesBefore} | ${t.bytesAfter} |`);
  if (r.kept.length) {
    L.push('', '## Kept as they were', '');
    for (const k of r.kept) L.push(`- \`${k.name}\`: ${k.reason}`);
  }
  return L.join('\n') + '\n';
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
  context.subscriptions.push(vscode.commands.registerCommand('quantscope.quantizeModel', async (arg: unknown, second?: unknown) => {
    // The Explorer passes the selection (an array of URIs) second; scripts pass options with a target.
    const scripted = isScripted(second) ? second : undefined;
    const uri = await pickModel(arg, 'Choose a model to quantize');
    if (!uri) return undefined;
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
    const req: Partial<ConvertRequest> = { source };
    if (scripted) {
      Object.assign(req, { target: scripted.target, bits: scripted.bits, blockSize: scripted.blockSize, preset: scripted.preset, overwrite: scripted.overwrite, skipRuntime: scripted.skipRuntime });
      if (scripted.budgetBitsPerWeight) req.budget = { bitsPerWeight: scripted.budgetBitsPerWeight };
      req.output = scripted.output ?? defaultOutputPath(source, scripted.target, { bits: scripted.bits, preset: scripted.preset });
    } else {
      const t = await vscode.window.showQuickPick(targets.map((x) => ({ label: x.id, description: x.label, detail: `Loaded by ${x.loadedBy}`, target: x.id })), {
        title: `Quantize ${path.basename(source)}: target`, placeHolder: 'Which runtime will load the output?',
      });
      if (!t) return undefined;
      req.target = t.target;
      const s = await vscode.window.showQuickPick(settingsFor(t.target), { title: `Quantize ${path.basename(source)}: ${t.target} settings` });
      if (!s) return undefined;
      if (s.apply === 'budget') {
        const v = await vscode.window.showInputBox({
          title: 'Average bits per weight over the converted weights', value: '5',
          prompt: 'Between about 4.3 (all INT4) and 8.3 (all INT8); the knapsack keeps the weights that hurt most at higher precision.',
          validateInput: (x) => (Number(x) > 0 && Number(x) <= 32 ? undefined : 'a number of bits per weight, e.g. 5'),
        });
        if (!v) return undefined;
        req.budget = { bitsPerWeight: Number(v) };
      } else Object.assign(req, s.apply);
      req.output = defaultOutputPath(source, t.target, { bits: req.bits, preset: req.preset });
      if (fs.existsSync(req.output)) {
        const ok = await vscode.window.showWarningMessage(`${path.basename(req.output)} exists. Replace it?`, { modal: true }, 'Replace');
        if (ok !== 'Replace') return undefined;
        req.overwrite = true;
      }
    }
    const full = req as ConvertRequest;
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
      if (!scripted) {
        void vscode.window.showInformationMessage(`QuantScope: ${summary}`, 'Open', 'Show Report').then(async (b) => {
          if (b === 'Open') await vscode.commands.executeCommand('vscode.openWith', vscode.Uri.file(report.files.find((f) => /\.(?:onnx|gguf|safetensors)$/.test(f)) ?? report.output), MODEL_EDITOR_VIEW_TYPE);
          if (b === 'Show Report') await vscode.window.showTextDocument(await vscode.workspace.openTextDocument({ language: 'markdown', content: reportMarkdown(report) }));
        });
      }
      return report;
    } catch (e) {
      const cancelled = e instanceof Error && e.name === 'CancelledError';
      const message = cancelled ? 'cancelled; nothing was written' : e instanceof VerificationError ? `verification failed, nothing was kept: ${e.message}` : e instanceof Error ? e.message : String(e);
      log()[cancelled ? 'info' : 'error'](`Quantize ${source}: ${message}`);
      if (!scripted) void (cancelled ? vscode.window.showInformationMessage(`QuantScope: ${message}`) : vscode.window.showErrorMessage(`QuantScope: ${message}`));
      if (scripted) throw e;
      return undefined;
    }
  }));
}

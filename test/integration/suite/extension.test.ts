import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { waitFor, workspaceFile } from './helpers';
import { suiteLog } from './log';

const EXTENSION_ID = 'quantscope.quantscope';



describe('QuantScope extension', () => {
  before(async () => {
    suiteLog(`VS Code ${vscode.version} (${vscode.env.appName}, ${vscode.env.appHost}), extension host Node ${process.version}`);
    const ext = vscode.extensions.getExtension(EXTENSION_ID);
    assert.ok(ext, `${EXTENSION_ID} is installed`);
    const api = (await ext.activate()) as { activationMs: number };
    suiteLog(`QuantScope activation took ${api.activationMs.toFixed(1)} ms`);
  });

  it('registers every contributed command', async () => {
    const ext = vscode.extensions.getExtension(EXTENSION_ID)!;
    const contributed = (ext.packageJSON.contributes.commands as { command: string }[]).map((c) => c.command);
    const all = new Set(await vscode.commands.getCommands(true));
    for (const c of contributed) assert.ok(all.has(c), `command ${c} is registered`);
    assert.ok(contributed.length >= 6);
  });

  it('summarises a real ONNX model through a command (PP-OCRv4 rec)', async () => {
    const uri = workspaceFile('ppocr/ch_PP-OCRv4_rec_infer.onnx');
    const summary = (await vscode.commands.executeCommand('quantscope.getModelSummary', uri)) as {
      fileName: string; format: string; sizeOnDisk: number; tensorCount: number; parameterCount: number;
    };
    assert.equal(summary.fileName, 'ch_PP-OCRv4_rec_infer.onnx');
    assert.equal(summary.format, 'onnx');
    assert.equal(summary.sizeOnDisk, fs.statSync(uri.fsPath).size);
    // Published facts about this export: every weight sits in one of 325 Constant nodes, 2,690,312 values in all.
    assert.equal(summary.tensorCount, 325);
    assert.equal(summary.parameterCount, 2_690_312);
  });

  it('opens a model in the custom editor and its webview asks for and receives the overview', async () => {
    const uri = workspaceFile('silero/silero_vad_legacy.onnx');
    const opened = await vscode.commands.executeCommand('quantscope.openInspector', uri);
    assert.equal(opened, uri.fsPath);
    const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
    assert.ok(tab?.input instanceof vscode.TabInputCustom, 'the active tab is a custom editor');
    assert.equal((tab.input as vscode.TabInputCustom).viewType, 'quantscope.modelEditor');
    const shown = await waitFor('the inspector to receive its overview', async () => {
      const open = (await vscode.commands.executeCommand('quantscope.getOpenInspectors')) as { file: string; overview?: { tensorCount: number; sizeOnDisk: number } }[];
      return open.find((o) => o.file === uri.fsPath && o.overview)?.overview;
    });
    assert.equal(shown.sizeOnDisk, fs.statSync(uri.fsPath).size);
    assert.ok(shown.tensorCount > 0);
  });

  it('compareModels(uriA, uriB) opens a comparison; a model against itself: every weight identical, outputs equal', async () => {
    const uri = workspaceFile('ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx');
    const r = (await vscode.commands.executeCommand('quantscope.compareModels', uri, uri)) as { available: boolean; a: string; b: string };
    assert.equal(r.available, true);
    type Shown = { phase: string; error?: string; result?: { tensors: { sqnrDb?: number; maxAbs?: number }[]; outputs?: { outputs: { maxAbs: number }[] } } };
    const done = await waitFor('the comparison to finish', async () => {
      const shown = (await vscode.commands.executeCommand('quantscope.compare.shown')) as Shown[];
      return shown.find((s) => s.phase === 'done' || s.phase === 'error');
    });
    assert.equal(done.phase, 'done', done.error);
    assert.ok(done.result!.tensors.length > 50);
    assert.ok(done.result!.tensors.every((t) => t.sqnrDb === Infinity && t.maxAbs === 0));
    assert.ok(done.result!.outputs!.outputs.every((o) => o.maxAbs === 0));
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
  });

  it('reports a corrupt model with an error naming the file', async () => {
    const bad = path.join(os.tmpdir(), `qs-corrupt-${process.pid}.safetensors`);
    const buf = Buffer.alloc(16);
    buf.writeBigUInt64LE(1n << 40n, 0); // header length far past the end
    fs.writeFileSync(bad, buf);
    try {
      await assert.rejects(() => Promise.resolve(vscode.commands.executeCommand('quantscope.getModelSummary', vscode.Uri.file(bad))), (e: Error) => e.message.includes(path.basename(bad)));
    } finally {
      fs.rmSync(bad, { force: true });
    }
  });
});

/**
 * In a window that does not trust the workspace (Restricted Mode, started by
 * the runner with QUANTSCOPE_UNTRUSTED=1), QuantScope reads models but runs
 * none: package.json declares `untrustedWorkspaces: limited`, and every
 * command that would execute a model refuses. Skipped in the trusted run.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { waitFor, workspaceFile } from './helpers';

const inUntrustedRun = process.env.QUANTSCOPE_UNTRUSTED === '1';

(inUntrustedRun ? describe : describe.skip)('untrusted window (Restricted Mode)', function () {
  this.timeout(180_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-untrusted-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('the workspace is not trusted, and the extension still activates and declares limited support', () => {
    assert.equal(vscode.workspace.isTrusted, false);
    const ext = vscode.extensions.all.find((e) => e.packageJSON?.name === 'quantscope');
    assert.ok(ext, 'the extension is installed');
    assert.equal(ext.packageJSON.capabilities.untrustedWorkspaces.supported, 'limited');
  });

  it('reading is allowed: a model opens in the inspector and its statistics complete', async () => {
    const uri = workspaceFile('ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx');
    await vscode.commands.executeCommand('vscode.openWith', uri, 'quantscope.modelEditor');
    const st = await waitFor('the analysis', async () => {
      const s = (await vscode.commands.executeCommand('quantscope.inspector.analysisState', uri)) as { state: string; analysed: number } | undefined;
      return s && s.state !== 'idle' && s.state !== 'running' ? s : undefined;
    }, 120_000);
    assert.equal(st.state, 'complete');
    assert.ok(st.analysed > 0);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  });

  it('running is not: Quantize Model… (scripted) writes nothing and starts no job', async () => {
    const src = workspaceFile('ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx').fsPath;
    const out = path.join(dir, 'never.onnx');
    const before = (await vscode.commands.executeCommand('quantscope.getResourceState')) as { pool: { running: number; queued: number } };
    const r = await vscode.commands.executeCommand('quantscope.quantizeModel', vscode.Uri.file(src), { target: 'onnx-int4', output: out, overwrite: true });
    assert.equal(r, undefined);
    assert.ok(!fs.existsSync(out), 'no output written');
    assert.deepEqual(fs.readdirSync(dir), []);
    const after = (await vscode.commands.executeCommand('quantscope.getResourceState')) as { pool: { running: number; queued: number } };
    assert.equal(after.pool.running + after.pool.queued, before.pool.running + before.pool.queued);
  });
});

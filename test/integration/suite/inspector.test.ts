import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { waitFor, workspaceFile } from './helpers';
import { openModel } from '../../../src/formats';
import { isAnalysable } from '../../../src/analysis/tensorSource';
import { parseCsv } from '../../../src/shared/tableModel';



describe('model inspector exports', () => {
  const uri = workspaceFile('ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-inspector-'));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('analyses an opened model and exports its CSV table and Markdown readiness report', async () => {
    const m = openModel(uri.fsPath);
    const names = m.tensors.map((t) => t.name);
    const analysable = m.tensors.filter((t) => isAnalysable(t));
    const quantizable = analysable.filter((t) => t.shape.length >= 2 && ['f32', 'f16', 'bf16', 'f64'].includes(t.dtype));
    m.close();

    await vscode.commands.executeCommand('vscode.openWith', uri, 'quantscope.modelEditor');
    const st = await waitFor('the analysis to finish', async () => {
      const s = (await vscode.commands.executeCommand('quantscope.inspector.analysisState', uri)) as { state: string; analysed: number; measured: number; failed: number } | undefined;
      return s && (s.state === 'complete' || s.state === 'failed') ? s : undefined;
    }, 120_000);
    assert.equal(st.state, 'complete');
    assert.equal(st.failed, 0);
    assert.equal(st.analysed, analysable.length);
    assert.equal(st.measured, analysable.filter((t) => t.shape.length >= 2).length);

    const csvPath = path.join(dir, 'table.csv');
    await vscode.commands.executeCommand('quantscope.inspector.exportCsv', uri, csvPath, { sort: 'sqnr4', descending: false, filter: '', group: 'none', config: 'int4-g128' });
    const csv = parseCsv(fs.readFileSync(csvPath, 'utf8'));
    const h = csv[0];
    const cName = h.indexOf('Tensor'), c4 = h.indexOf('SQNR int4-g128 (dB)');
    assert.ok(cName >= 0 && c4 >= 0, h.join(','));
    assert.deepEqual(csv.slice(1).map((r) => r[cName]).sort(), [...names].sort());
    const int4 = csv.slice(1).filter((r) => r[c4] !== '').map((r) => Number(r[c4]));
    assert.equal(int4.length, st.measured);
    // Sorted ascending by INT4 SQNR, as asked.
    for (let i = 1; i < int4.length; i++) assert.ok(int4[i - 1] <= int4[i]);

    const mdPath = path.join(dir, 'report.md');
    const written = await vscode.commands.executeCommand('quantscope.exportReport', uri, mdPath);
    assert.equal(written, mdPath);
    const md = fs.readFileSync(mdPath, 'utf8');
    assert.match(md, /^# Quantization readiness: ch_ppocr_mobile_v2\.0_cls_infer\.onnx/);
    assert.ok(md.includes(`| Tensors | ${names.length} (${quantizable.length} quantizable weight matrices) |`), md.slice(0, 800));
    assert.ok(!md.includes('Analysis incomplete'));
    // The report's worst INT4 tensor is the first row of the table sorted by INT4 SQNR.
    const worst = csv[1][cName];
    assert.match(md, new RegExp(`\\| int4-g128 \\| [0-9.]+ dB \\| ${int4[0].toFixed(1)} dB \\| \`${worst.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\``));
  });

  it('reopening the model shows its statistics from the cache, equal to the first pass', async () => {
    const csvFirst = path.join(dir, 'table.csv');
    const view = { sort: 'name', descending: false, filter: '', group: 'none', config: 'int4-g128' };
    await vscode.commands.executeCommand('quantscope.inspector.exportCsv', uri, csvFirst, view);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    await waitFor('the inspector to close', async () => ((await vscode.commands.executeCommand('quantscope.inspector.analysisState', uri)) === undefined ? true : undefined), 20_000);
    await vscode.commands.executeCommand('vscode.openWith', uri, 'quantscope.modelEditor');
    const st = await waitFor('the reopened analysis to finish', async () => {
      const s = (await vscode.commands.executeCommand('quantscope.inspector.analysisState', uri)) as { state: string; fromCache: boolean } | undefined;
      return s && (s.state === 'complete' || s.state === 'failed') ? s : undefined;
    }, 120_000);
    assert.equal(st.state, 'complete');
    assert.equal(st.fromCache, true);
    const csvAgain = path.join(dir, 'table-again.csv');
    await vscode.commands.executeCommand('quantscope.inspector.exportCsv', uri, csvAgain, view);
    assert.equal(fs.readFileSync(csvAgain, 'utf8'), fs.readFileSync(csvFirst, 'utf8'));
  });

  it('the Sensitivity panel lists the open model\'s weights, least INT4 SQNR first', async () => {
    await vscode.commands.executeCommand('quantscope.showSensitivity');
    type Shown = { file: string; measured: number; rows: { name: string; sqnrDb: number }[] } | null;
    const shown = await waitFor('the Sensitivity panel to list the model', async () => {
      const d = (await vscode.commands.executeCommand('quantscope.sensitivity.shown')) as Shown;
      return d && d.file === uri.fsPath && d.rows.length > 0 ? d : undefined;
    }, 30_000);
    // Independent of the panel: the table's CSV, from the same results through another path.
    const csvPath = path.join(dir, 'by-int4.csv');
    await vscode.commands.executeCommand('quantscope.inspector.exportCsv', uri, csvPath, { sort: 'sqnr4', descending: false, filter: '', group: 'none', config: 'int4-g128' });
    const csv = parseCsv(fs.readFileSync(csvPath, 'utf8'));
    const cName = csv[0].indexOf('Tensor'), c4 = csv[0].indexOf('SQNR int4-g128 (dB)');
    const int4 = new Map(csv.slice(1).filter((r) => r[c4] !== '').map((r) => [r[cName], Number(r[c4])]));
    assert.equal(shown.measured, int4.size);
    // The panel lists every measured weight (its budget slider marks each one).
    assert.equal(shown.rows.length, int4.size);
    for (let i = 1; i < shown.rows.length; i++) assert.ok(shown.rows[i - 1].sqnrDb <= shown.rows[i].sqnrDb, 'ranked least SQNR first');
    for (const r of shown.rows) assert.ok(Math.abs(r.sqnrDb - int4.get(r.name)!) < 0.06, `${r.name}: ${r.sqnrDb} vs ${int4.get(r.name)}`);
    assert.ok(Math.abs(shown.rows[0].sqnrDb - Math.min(...int4.values())) < 0.06);
  });
});

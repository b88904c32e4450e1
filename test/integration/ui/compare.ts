/**
 * Compare Two Models, end to end: a sample model and its QDQ INT8 version
 * (written in the test by the CLI), selected together in the Explorer,
 * right-click → Compare Selected Models (VS Code's own "Compare Selected" is the text diff); the table, the histogram and the output
 * section are checked against numbers computed here from the files.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import type { Frame } from 'playwright-core';
import { contextMenu, drawnPixels, findFrame, quickOpen, setColorTheme, type HTMLElement, type UiTest } from '../uiHelpers';

/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
/* eslint-enable @typescript-eslint/no-explicit-any */

const SRC = 'ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx';
const OUT = 'ppocr/cls-compare.qdq.onnx';

/** SQNR (dB) of B's DequantizeLinear weight against A's float weight, decoded here (per output channel, axis 0) in float64. */
function independentSqnr(a: string, b: string, name: string): number {
  // The plain reader: the stored codes, scales and zero points, decoded here (openModel would show them dequantized already).
  const { openOnnx: openModel } = require('../../../src/formats/onnx/reader') as typeof import('../../../src/formats/onnx/reader');
  const ma = openModel(a), mb = openModel(b);
  try {
    const find = (m: typeof ma, n: string) => { const t = m.tensors.find((x) => x.name === n); if (!t) throw new Error(`${m.path}: no ${n}`); return t; };
    const w = ma.readFloat32(find(ma, name));
    const q = find(mb, `${name}_quantized`);
    const codes = mb.readFloat32(q), scales = mb.readFloat32(find(mb, `${name}_scale`)), zps = mb.readFloat32(find(mb, `${name}_zero_point`));
    const per = codes.length / scales.length;
    let sig = 0, noise = 0;
    for (let i = 0; i < codes.length; i++) {
      const c = Math.floor(i / per);
      const v = (codes[i] - zps[c]) * scales[c];
      sig += w[i] * w[i];
      noise += (w[i] - v) ** 2;
    }
    return 10 * Math.log10(sig / noise);
  } finally {
    ma.close();
    mb.close();
  }
}

async function selectTwoInExplorer(page: import('playwright-core').Page, first: string, second: string): Promise<void> {
  const rowOf = (n: string) => page.locator('.explorer-folders-view .monaco-list-row', { hasText: n }).first();
  await rowOf(first).waitFor({ timeout: 30_000 });
  await rowOf(second).waitFor({ timeout: 30_000 });
  // The comparison opens as an editor tab named after both files; a second attempt, as a person would, if none came.
  const tab = page.locator('.tabs-container .tab', { hasText: '↔' }).first();
  for (let attempt = 1; ; attempt++) {
    await rowOf(first).click();
    await rowOf(second).click({ modifiers: ['Control'] });
    await contextMenu(page, rowOf(second), 'Compare Selected Models');
    try {
      await tab.waitFor({ timeout: attempt === 1 ? 20_000 : 30_000 });
      return;
    } catch (e) {
      if (attempt >= 2) throw e;
      await page.keyboard.press('Escape');
    }
  }
}

async function compareFrame(page: import('playwright-core').Page): Promise<Frame> {
  const f = await findFrame(page, '#qs-cmp-title', 60_000);
  await f.waitForFunction(() => document.body.dataset.state === 'done' || document.body.dataset.state === 'error', undefined, { timeout: 120_000 });
  const err = await f.evaluate(() => document.getElementById('qs-cmp-error')?.textContent ?? '');
  if (err) throw new Error(`compare view: ${err}`);
  return f;
}

export const compareUiTests: UiTest[] = [
  {
    name: 'compare: a sample model and its QDQ INT8 version, selected in the Explorer → Compare Selected: worst-first table, histogram overlay, outputs on synthetic data',
    async fn(page, ctx) {
      const a = path.join(ctx.workspace, SRC), b = path.join(ctx.workspace, OUT);
      fs.rmSync(b, { force: true });
      execFileSync(process.execPath, [path.join(ctx.root, 'dist', 'cli.js'), 'quantize', a, '--target', 'onnx-qdq', '-o', b, '--overwrite'], { stdio: 'ignore' });
      await quickOpen(page, path.basename(SRC));
      await selectTwoInExplorer(page, path.basename(SRC), path.basename(OUT));
      const f = await compareFrame(page);
      const rows = await f.$$eval('.qs-cmp-row', (rs) => rs.map((r) => ({
        name: (r as HTMLElement).dataset.name as string,
        typeB: r.querySelector('[data-col="typeB"]')?.textContent ?? '',
        sqnr: parseFloat(r.querySelector('[data-col="sqnrDb"]')?.textContent ?? 'NaN'),
      })));
      // Every float weight of the source is paired: the count our reader finds in A.
      const { openModel } = require('../../../src/formats') as typeof import('../../../src/formats');
      const { isAnalysable } = require('../../../src/analysis/tensorSource') as typeof import('../../../src/analysis/tensorSource');
      const m = openModel(a);
      const expected = m.tensors.filter((t) => isAnalysable(t)).length;
      m.close();
      if (rows.length !== expected) throw new Error(`table has ${rows.length} rows, A has ${expected} float tensors`);
      const finite = rows.filter((r) => Number.isFinite(r.sqnr));
      if (finite.some((r, i) => i > 0 && r.sqnr < finite[i - 1].sqnr)) throw new Error('table is not worst (lowest SQNR) first');
      const worst = rows[0];
      if (!/^DequantizeLinear int8 per-channel axis \d$/.test(worst.typeB)) throw new Error(`worst row's B type: ${worst.typeB}`);
      const want = independentSqnr(a, b, worst.name);
      if (Math.abs(worst.sqnr - want) > 0.06) throw new Error(`${worst.name}: the view shows ${worst.sqnr} dB, computed here ${want.toFixed(3)} dB`);
      // The histogram of the selected (worst) weight draws A and B.
      await f.waitForFunction((n) => document.body.dataset.histogram === n, worst.name, { timeout: 10_000 });
      let px = await drawnPixels(f, 'qs-cmp-hist');
      if (px.drawn < 0.02 * px.total) throw new Error(`histogram did not draw (${px.drawn} of ${px.total} pixels)`);
      // Keyboard: focus the table, ArrowDown selects the next weight and redraws.
      await f.locator('#qs-cmp-table').focus();
      await page.keyboard.press('ArrowDown');
      await f.waitForFunction((n) => document.body.dataset.histogram === n, rows[1].name, { timeout: 10_000 });
      // Sorting by name (click the header) and back.
      await f.locator('.qs-sort[data-key="name"]').click();
      const firstByName = await f.locator('.qs-cmp-row').first().getAttribute('data-name');
      if (firstByName !== [...rows.map((r) => r.name)].sort((x, y) => x.localeCompare(y))[0]) throw new Error(`sorted by name, first row is ${firstByName}`);
      await f.locator('.qs-sort[data-key="sqnrDb"]').click();
      // Outputs: both models ran in ONNX Runtime, on synthetic data, and the view says so.
      const label = await f.locator('#qs-cmp-outputs-data').textContent();
      if (!/SYNTHETIC/.test(label ?? '')) throw new Error(`outputs label: ${label}`);
      const outRows = await f.locator('#qs-cmp-outputs-table tbody tr').count();
      if (outRows < 1) throw new Error('no output compared');
      // Swap A and B: the comparison runs again with the quantized model as the reference.
      await f.locator('#qs-cmp-swap').click();
      await f.waitForFunction((n) => document.body.dataset.state === 'done' && (document.getElementById('qs-cmp-title')?.textContent ?? '').startsWith(n), path.basename(OUT), { timeout: 120_000 });
      const swapped = await f.locator('.qs-cmp-row').first().getAttribute('data-name');
      const typeA = await f.locator('.qs-cmp-row [data-col="typeA"]').first().textContent();
      if (!/DequantizeLinear/.test(typeA ?? '')) throw new Error(`after Swap, A's type of ${swapped} is ${typeA}`);
      await f.locator('#qs-cmp-swap').click();
      await f.waitForFunction((n) => document.body.dataset.state === 'done' && (document.getElementById('qs-cmp-title')?.textContent ?? '').startsWith(n), path.basename(SRC), { timeout: 120_000 });
      await f.waitForFunction(() => !!document.body.dataset.histogram, undefined, { timeout: 10_000 });
      try {
        for (const [theme, cls, tag] of [['Default Dark Modern', 'vscode-dark', 'dark'], ['Default Light Modern', 'vscode-light', 'light']] as const) {
          await setColorTheme(ctx, f, theme, cls);
          px = await drawnPixels(f, 'qs-cmp-hist');
          if (px.drawn < 0.02 * px.total) throw new Error(`histogram not redrawn in ${theme}`);
          await page.screenshot({ path: path.join(ctx.resultsDir, `compare-${tag}.png`) });
          await f.evaluate(() => document.getElementById('qs-cmp-outputs')?.scrollIntoView());
          await page.waitForTimeout(300);
          await page.screenshot({ path: path.join(ctx.resultsDir, `compare-outputs-${tag}.png`) });
          await f.evaluate(() => document.defaultView.scrollTo(0, 0));
        }
      } finally {
        await setColorTheme(ctx, f, undefined, 'vscode-light').catch(() => undefined);
      }
    },
  },
];

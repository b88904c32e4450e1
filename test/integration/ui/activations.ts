/**
 * The inspector's Activations tab on a sample model: run on SYNTHETIC data
 * (labelled), every activation listed with a finite range, a click draws its
 * histogram with the four calibrators' clip markers, sorting by outlier
 * ratio, Cancel, and the same run again straight from the cache. Also the
 * table's output-space column: shown exactly when the overview says the
 * model was run (the Sensitivity test measures this model earlier).
 */
import * as path from 'node:path';
import type { Frame } from 'playwright-core';
import { drawnPixels, inspectorOf, quickOpen, setColorTheme, type UiTest } from '../uiHelpers';

/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const getComputedStyle: any;
/* eslint-enable @typescript-eslint/no-explicit-any */

const MODEL = 'ch_ppocr_mobile_v2.0_cls_infer.onnx';

async function tableRows(f: Frame): Promise<{ name: string; min: number; max: number; width: number; ratio: number }[]> {
  return f.$$eval('#qs-acts-table tbody tr', (trs) => trs.map((tr) => {
    const td = tr.querySelectorAll('td');
    const n = (i: number) => { const t = (td[i].textContent ?? '').trim(); return t === '∞' ? Infinity : parseFloat(t); };
    return { name: (tr as { dataset: { name: string } }).dataset.name, min: n(1), max: n(2), width: n(3), ratio: n(4) };
  }));
}

async function runAndWait(f: Frame, samples: number, timeout: number): Promise<void> {
  await f.locator('#qs-acts-samples').fill(String(samples));
  // A result already on screen (cached at open) must not pass for this run's.
  await f.evaluate(() => { document.body.dataset.acts = 'clicked'; });
  await f.locator('#qs-acts-run').click();
  await f.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.acts) && !document.getElementById('qs-acts-cancel')?.checkVisibility?.(), undefined, { timeout }).catch(async (e: unknown) => {
    throw new Error(`run of ${samples} samples: state ${await f.evaluate(() => document.body.dataset.acts)}, status "${await f.locator('#qs-acts-status').textContent()}" (${e instanceof Error ? e.message : String(e)})`);
  });
  if ((await f.evaluate(() => document.body.dataset.acts)) === 'error') throw new Error(`activation run failed: ${await f.locator('#qs-acts-status').textContent()}`);
}

export const activationsUiTests: UiTest[] = [
  {
    name: 'activations: the inspector runs a sample model on SYNTHETIC data, lists every activation, draws a histogram with the calibrators\' clip markers, cancels, and reopens from the cache',
    async fn(page, ctx) {
      const tab = page.locator('.tabs-container .tab', { hasText: MODEL }).filter({ hasNotText: '↔' }).filter({ hasNotText: 'Experiment' }).first();
      if (await tab.count()) await tab.click();
      else await quickOpen(page, MODEL);
      const f = await inspectorOf(page, MODEL);
      // Output-space column: present exactly when the overview says output-space.
      const metric = await f.evaluate(() => document.getElementById('qs-metric')?.dataset.metric);
      const shown = await f.evaluate(() => { const h = document.querySelector('.qs-head .qs-col-effect'); return !!h && getComputedStyle(h).display !== 'none'; });
      const metricText = (await f.locator('#qs-metric').textContent()) ?? '';
      if (metric === 'output') {
        if (!shown || !/output-space/.test(metricText) || !/SYNTHETIC|real data/.test(metricText)) throw new Error(`output-space measured but column shown=${shown}, overview: ${metricText}`);
        const cells = await f.$$eval('.qs-data [data-col="effect"]', (xs) => xs.map((x) => parseFloat(x.textContent ?? '')));
        if (!cells.some((v) => Number.isFinite(v))) throw new Error('output-space column holds no number');
        await f.evaluate(() => { document.getElementById('qs-grid')?.scrollIntoView(); document.querySelector('.qs-head .qs-col-effect')?.scrollIntoView({ inline: 'center', block: 'nearest' }); });
        await page.waitForTimeout(300);
        await page.screenshot({ path: path.join(ctx.resultsDir, 'inspector-output-column.png') });
      } else if (metric !== 'weight' || shown || !/weight-space/.test(metricText)) throw new Error(`weight-space overview but column shown=${shown}: ${metric} ${metricText}`);
      console.log(`    sensitivity metric in the overview: ${metric}`);

      await f.locator('#qs-tab-activations').click();
      await f.waitForFunction(() => !!document.getElementById('qs-acts-run') || !!document.getElementById('qs-acts-why'), undefined, { timeout: 15_000 });
      const why = await f.evaluate(() => document.getElementById('qs-acts-why')?.textContent);
      if (why) throw new Error(why);
      if (await f.locator('#qs-acts-synthetic').isVisible()) {
        await f.locator('#qs-acts-synthetic').click();
        await f.waitForFunction(() => !document.getElementById('qs-acts-synthetic')?.checkVisibility?.(), undefined, { timeout: 10_000 });
      }
      const t0 = Date.now();
      await runAndWait(f, 6, 240_000);
      const seconds = (Date.now() - t0) / 1000;
      const label = (await f.locator('#qs-acts-label').textContent()) ?? '';
      if (!/SYNTHETIC/.test(label)) throw new Error(`data label: ${label}`);
      const rows = await tableRows(f);
      const count = Number(await f.evaluate(() => document.body.dataset.actsRows));
      if (rows.length < 100 || rows.length !== count) throw new Error(`${rows.length} rows shown, ${count} in the result`);
      const bad = rows.find((r) => !Number.isFinite(r.min) || !Number.isFinite(r.max) || r.min > r.max);
      if (bad) throw new Error(`non-finite range: ${JSON.stringify(bad)}`);
      if (rows.some((r, i) => i > 0 && r.width > rows[i - 1].width * 1.0005)) throw new Error('rows not sorted by range width');
      console.log(`    ${rows.length} activations in ${seconds.toFixed(1)} s; widest ${rows[0].name} [${rows[0].min}, ${rows[0].max}]`);

      // A click draws that activation's histogram with each calibrator's low and high clip point.
      const pick = rows[1].name;
      await f.locator(`#qs-acts-table tbody tr[data-name="${pick}"]`).click();
      await f.waitForFunction((n) => document.body.dataset.actsDetail === n, pick, { timeout: 10_000 });
      await f.waitForTimeout(300);
      const px = await drawnPixels(f, 'qs-chart-act-hist');
      if (px.drawn < 0.01 * px.total) throw new Error(`histogram did not draw (${px.drawn} of ${px.total} pixels)`);
      const markers = await f.evaluate(() => document.getElementById('qs-chart-act-hist')?.dataset.clipMarkers);
      if (markers !== '8') throw new Error(`clip markers drawn: ${markers} (4 calibrators × low and high)`);
      const cals = await f.$$eval('#qs-acts-clips tr[data-calibrator]', (trs) => trs.map((t) => (t as { dataset: { calibrator: string } }).dataset.calibrator));
      if (cals.join(',') !== 'minmax,percentile,mse,entropy') throw new Error(`calibrators listed: ${cals.join(',')}`);
      if (!(await f.locator('#qs-acts-channels li').count())) throw new Error('no outlier channel listed');

      // Sorted by outlier ratio: the ratio column descends.
      await f.locator('#qs-acts-sort').selectOption('outlier');
      const byRatio = await tableRows(f);
      if (byRatio.some((r, i) => i > 0 && r.ratio > byRatio[i - 1].ratio * 1.0005)) throw new Error('rows not sorted by outlier ratio');
      console.log(`    top outlier ratio ${byRatio[0].ratio}× in ${byRatio[0].name}`);
      await f.locator('#qs-acts-sort').selectOption('width');

      try {
        for (const [theme, cls, tag] of [['Default Dark Modern', 'vscode-dark', 'dark'], ['Default Light Modern', 'vscode-light', 'light']] as const) {
          await setColorTheme(ctx, f, theme, cls);
          await f.evaluate(() => document.getElementById('qs-acts')?.scrollIntoView());
          await page.waitForTimeout(400);
          await page.screenshot({ path: path.join(ctx.resultsDir, `inspector-activations-${tag}.png`) });
          await f.evaluate(() => document.querySelector('.qs-acts-detail')?.scrollIntoView());
          await page.waitForTimeout(300);
          await page.screenshot({ path: path.join(ctx.resultsDir, `inspector-activations-histogram-${tag}.png`) });
        }
      } finally {
        await setColorTheme(ctx, f, undefined, 'vscode-light').catch(() => undefined);
      }

      // Cancel: a larger run (not cached) started and stopped.
      await f.locator('#qs-acts-samples').fill('64');
      await f.locator('#qs-acts-run').click();
      await f.waitForFunction(() => document.body.dataset.acts === 'running', undefined, { timeout: 15_000 });
      await f.locator('#qs-acts-cancel').click();
      await f.waitForFunction(() => document.body.dataset.acts === 'cancelled', undefined, { timeout: 30_000 });
      // The first run again: from the cache, no model run.
      const t1 = Date.now();
      await runAndWait(f, 6, 30_000);
      if (!(await f.locator('#qs-acts-cached').count())) throw new Error('the repeated run did not come from the cache');
      const again = await tableRows(f);
      if (JSON.stringify(again) !== JSON.stringify(rows)) throw new Error('cached rows differ from the run');
      console.log(`    cached run shown in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
      await f.locator('#qs-tab-weights').click();
    },
  },
];

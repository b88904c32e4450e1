/**
 * Run Quantization Experiment… on a sample model: tick two configs in the
 * grid, run (synthetic data, labelled), check the scatter and the table
 * (INT4 is smaller than INT8 and moves the outputs more), then close and
 * reopen: the same selection comes back from the results cache at once.
 */
import * as path from 'node:path';
import type { Frame, Page } from 'playwright-core';
import { drawnPixels, findFrame, quickOpen, setColorTheme, type UiTest } from '../uiHelpers';

/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
/* eslint-enable @typescript-eslint/no-explicit-any */

const MODEL = 'ch_ppocr_mobile_v2.0_cls_infer.onnx';

async function openExperiment(page: Page): Promise<Frame> {
  const tab = page.locator('.tabs-container .tab', { hasText: MODEL }).filter({ hasNotText: '↔' }).filter({ hasNotText: 'Experiment' }).first();
  if (await tab.count()) await tab.click();
  else await quickOpen(page, MODEL);
  await page.waitForTimeout(500);
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ timeout: 15_000 });
  await input.fill('>QuantScope: Run Quantization Experiment');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Run Quantization Experiment' }).first().click({ timeout: 15_000 });
  return findFrame(page, '#qs-exp-configs', 60_000);
}

async function rows(f: Frame): Promise<{ config: string; mb: number; effect: number }[]> {
  return f.$$eval('#qs-exp-table tbody tr', (trs) => trs.map((tr) => {
    const td = tr.querySelectorAll('td');
    return { config: (tr as { dataset: { config: string } }).dataset.config, mb: parseFloat(td[2].textContent ?? ''), effect: parseFloat(td[4].textContent ?? '') };
  }));
}

export const experimentUiTests: UiTest[] = [
  {
    name: 'experiment: two configs on a sample model, scatter with its Pareto frontier, table, and an instant reopen from the cache',
    async fn(page, ctx) {
      let f = await openExperiment(page);
      // Exactly int8-channel and int4-g32, calibrator minmax.
      for (const box of await f.locator('#qs-exp-configs input[type="checkbox"]').all()) {
        const want = ['int8-channel', 'int4-g32'].includes((await box.getAttribute('data-config')) ?? '');
        if ((await box.isChecked()) !== want) await box.click();
      }
      for (const box of await f.locator('#qs-exp-calibrators input[type="checkbox"]').all()) {
        const want = (await box.getAttribute('data-calibrator')) === 'minmax';
        if ((await box.isChecked()) !== want) await box.click();
      }
      const count = await f.locator('#qs-exp-count').textContent();
      if (count !== '2 whole-model runs') throw new Error(`grid says: ${count}`);
      await f.locator('#qs-exp-run').click();
      await f.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), undefined, { timeout: 240_000 });
      const err = await f.evaluate(() => document.getElementById('qs-exp-error')?.textContent ?? '');
      if (err) throw new Error(err);
      if ((await f.evaluate(() => document.body.dataset.points)) !== '2') throw new Error('scatter does not hold 2 points');
      const px = await drawnPixels(f, 'qs-exp-scatter');
      if (px.drawn < 0.01 * px.total) throw new Error(`scatter did not draw (${px.drawn} of ${px.total} pixels)`);
      const label = (await f.locator('#qs-exp-label').textContent()) ?? '';
      if (!/SYNTHETIC/.test(label)) throw new Error(`data label: ${label}`);
      const r = await rows(f);
      const i8 = r.find((x) => x.config === 'int8-channel'), i4 = r.find((x) => x.config === 'int4-g32');
      if (!i8 || !i4 || r.length !== 2) throw new Error(`table rows: ${JSON.stringify(r)}`);
      if (!(i4.mb < i8.mb)) throw new Error(`INT4 g32 (${i4.mb} MB) is not smaller than INT8 (${i8.mb} MB)`);
      if (!(i4.effect > i8.effect)) throw new Error(`INT4 g32 moves the outputs less (${i4.effect}) than INT8 (${i8.effect})`);
      try {
        for (const [theme, cls, tag] of [['Default Dark Modern', 'vscode-dark', 'dark'], ['Default Light Modern', 'vscode-light', 'light']] as const) {
          await setColorTheme(ctx, f, theme, cls);
          await f.evaluate(() => document.getElementById('qs-exp-results')?.scrollIntoView());
          await page.waitForTimeout(300);
          await page.screenshot({ path: path.join(ctx.resultsDir, `experiment-${tag}.png`) });
          await f.evaluate(() => document.defaultView.scrollTo(0, 0));
          await page.waitForTimeout(200);
          await page.screenshot({ path: path.join(ctx.resultsDir, `experiment-grid-${tag}.png`) });
        }
      } finally {
        await setColorTheme(ctx, f, undefined, 'vscode-light').catch(() => undefined);
      }
      // Cancel: a larger selection (not cached) started and stopped.
      await f.locator('#qs-cfg-nf4-g64').check();
      await f.locator('#qs-cal-mse').check();
      await f.locator('#qs-exp-run').click();
      await f.waitForFunction(() => document.body.dataset.state === 'running', undefined, { timeout: 10_000 });
      await f.locator('#qs-exp-cancel').click();
      await f.waitForFunction(() => document.body.dataset.state === 'cancelled', undefined, { timeout: 30_000 });
      // Back to the two configs (cached now): the results reappear without a run.
      await f.locator('#qs-cfg-nf4-g64').uncheck();
      await f.locator('#qs-cal-mse').uncheck();
      await f.locator('#qs-exp-run').click();
      await f.waitForFunction(() => document.body.dataset.state === 'done' && !!document.getElementById('qs-exp-cached'), undefined, { timeout: 10_000 })
        .catch(async (e: Error) => { throw new Error(`after Cancel, Run of a cached selection: state ${await f.evaluate(() => document.body.dataset.state)}, ${await f.locator('#qs-exp-count').textContent()}: ${e.message}`); });
      // Activation calibrators: the same two configs plus the clip range of each activation under min-max, percentile, MSE and entropy.
      await f.locator('#qs-exp-activations').check();
      await f.locator('#qs-exp-run').click();
      await f.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state) && !document.getElementById('qs-exp-cached'), undefined, { timeout: 240_000 });
      await f.waitForFunction(() => !!document.getElementById('qs-exp-acts'), undefined, { timeout: 10_000 });
      const ax = await drawnPixels(f, 'qs-exp-acts');
      if (ax.drawn < 0.01 * ax.total) throw new Error(`activation chart did not draw (${ax.drawn} of ${ax.total} pixels)`);
      await f.evaluate(() => document.getElementById('qs-exp-acts')?.scrollIntoView());
      await page.waitForTimeout(300);
      await page.screenshot({ path: path.join(ctx.resultsDir, 'experiment-activations.png') });
      // Close and reopen: the results come back from the cache, no run.
      await page.locator('.tabs-container .tab', { hasText: 'Experiment' }).first().locator('.codicon-close').click();
      f = await openExperiment(page);
      await f.waitForFunction(() => document.body.dataset.state === 'done' && !!document.getElementById('qs-exp-cached'), undefined, { timeout: 10_000 });
      const again = await rows(f);
      if (JSON.stringify(again) !== JSON.stringify(r)) throw new Error(`reopened rows differ: ${JSON.stringify(again)} vs ${JSON.stringify(r)}`);
    },
  },
];

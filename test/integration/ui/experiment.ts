/**
 * Run Quantization Experiment… on a sample model: tick two configs in the
 * grid, run (synthetic data, labelled), check the scatter and the table
 * (INT4 is smaller than INT8 and moves the outputs more), then close and
 * reopen: the same selection comes back from the results cache at once.
 * On the tiny trained transformer: GPTQ and AWQ are off without data (and
 * say why), on once its calibration text is chosen; RTN, GPTQ and AWQ at
 * INT4 g32 each get a row, a marker and a note naming the algorithm.
 */
import * as path from 'node:path';
import type { Frame, Page } from 'playwright-core';
import { answerOpenDialog, drawnPixels, findFrame, quickOpen, setColorTheme, type UiTest } from '../uiHelpers';

/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
/* eslint-enable @typescript-eslint/no-explicit-any */

const MODEL = 'ch_ppocr_mobile_v2.0_cls_infer.onnx';
const TINY = 'tiny-transformer.onnx';

async function openExperiment(page: Page, model = MODEL): Promise<Frame> {
  const tab = page.locator('.tabs-container .tab', { hasText: model }).filter({ hasNotText: '↔' }).filter({ hasNotText: 'Experiment' }).filter({ hasNotText: 'Quantize' }).first();
  if (await tab.count()) await tab.click();
  else await quickOpen(page, model);
  await page.waitForTimeout(500);
  await page.keyboard.press('F1');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ timeout: 15_000 });
  await input.fill('>QuantScope: Run Quantization Experiment');
  await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Run Quantization Experiment' }).first().click({ timeout: 15_000 });
  await findFrame(page, '#qs-exp-configs', 60_000);
  // Another model's Experiment panel may be open too: the frame whose path is this model's.
  for (const t0 = Date.now(); Date.now() - t0 < 30_000; await page.waitForTimeout(250)) {
    for (const f of page.frames()) {
      const shown = await f.evaluate(() => document.querySelector('#qs-exp-configs') ? document.querySelector('.qs-path')?.textContent ?? '' : '').catch(() => '');
      if (shown.endsWith(model)) return f;
    }
  }
  throw new Error(`no Experiment view of ${model}`);
}

async function rows(f: Frame): Promise<{ config: string; algorithm: string; shown: string; mb: number; effect: number }[]> {
  return f.$$eval('#qs-exp-table tbody tr', (trs) => trs.map((tr) => {
    const td = tr.querySelectorAll('td');
    const d = (tr as { dataset: { config: string; algorithm: string } }).dataset;
    return { config: d.config, algorithm: d.algorithm, shown: td[2].textContent ?? '', mb: parseFloat(td[3].textContent ?? ''), effect: parseFloat(td[5].textContent ?? '') };
  }));
}

/** Tick exactly these boxes of a fieldset (by their data attribute). */
async function tickOnly(f: Frame, fieldset: string, attr: string, want: string[]): Promise<void> {
  for (const box of await f.locator(`${fieldset} input[type="checkbox"]`).all()) {
    if (await box.isDisabled()) continue;
    const on = want.includes((await box.getAttribute(attr)) ?? '');
    if ((await box.isChecked()) !== on) await box.click();
  }
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
  {
    name: 'experiment: GPTQ and AWQ off without data and say why; with the tiny transformer\'s calibration text, RTN, GPTQ and AWQ at INT4 g32 each get a row, a marker and a note',
    async fn(page, ctx) {
      const f = await openExperiment(page, TINY);
      // Start without data (a run before may have left some chosen).
      if (await f.locator('#qs-exp-clear').count()) {
        await f.locator('#qs-exp-clear').click();
        await f.waitForFunction(() => !document.getElementById('qs-exp-clear'), undefined, { timeout: 10_000 });
      }
      for (const a of ['gptq', 'awq']) {
        if (!(await f.locator(`#qs-alg-${a}`).isDisabled())) throw new Error(`${a} is offered without calibration data`);
        const tip = (await f.locator(`label[for="qs-alg-${a}"]`).getAttribute('title')) ?? '';
        if (!/choose calibration data to enable them/.test(tip)) throw new Error(`${a} tooltip: ${tip}`);
      }
      if (await f.locator('#qs-alg-rtn').isDisabled()) throw new Error('RTN is off');
      const note = (await f.locator('#qs-exp-algorithms-note').textContent()) ?? '';
      if (!/choose calibration data/.test(note)) throw new Error(`algorithm note without data: ${note}`);
      if (/Algorithm: RTN/.test((await f.locator('#qs-exp-calibrators').textContent()) ?? '')) throw new Error('the old "Algorithm: RTN" caption is still there');
      await page.mouse.move(900, 700);
      await page.waitForTimeout(300);
      await page.screenshot({ path: path.join(ctx.resultsDir, 'experiment-algorithms-off.png') });

      // Data: the byte windows the CLI and unit tests use, through the file dialog.
      await f.locator('#qs-exp-choose').click();
      const calib = path.join(ctx.root, 'test', 'fixtures', 'tiny-transformer', 'calibration.txt');
      await answerOpenDialog(page, calib);
      await f.waitForFunction(() => /calibration\.txt/.test(document.getElementById('qs-exp-data-label')?.textContent ?? ''), undefined, { timeout: 30_000 });
      await f.waitForFunction(() => document.getElementById('qs-alg-gptq')?.disabled === false, undefined, { timeout: 10_000 });
      await tickOnly(f, '#qs-exp-configs', 'data-config', ['int4-g32']);
      await tickOnly(f, '#qs-exp-calibrators', 'data-calibrator', ['minmax']);
      await tickOnly(f, '#qs-exp-algorithms', 'data-algorithm', ['rtn', 'gptq', 'awq']);
      const count = await f.locator('#qs-exp-count').textContent();
      if (count !== '3 whole-model runs') throw new Error(`grid says: ${count}`);
      await f.locator('#qs-exp-run').click();
      await f.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), undefined, { timeout: 300_000 });
      const err = await f.evaluate(() => document.getElementById('qs-exp-error')?.textContent ?? '');
      if (err) throw new Error(err);
      const label = (await f.locator('#qs-exp-label').textContent()) ?? '';
      if (!/Measured on 16 samples of .*calibration\.txt/.test(label) || /SYNTHETIC/.test(label)) throw new Error(`data label: ${label}`);
      const r = await rows(f);
      const by = Object.fromEntries(r.map((x) => [x.algorithm, x]));
      if (r.length !== 3 || !by.rtn || !by.gptq || !by.awq) throw new Error(`table rows: ${JSON.stringify(r)}`);
      if (by.gptq.shown !== 'GPTQ' || by.awq.shown !== 'AWQ' || by.rtn.shown !== 'RTN') throw new Error(`algorithm column: ${JSON.stringify(r)}`);
      // Every run rounds the token embedding to nearest; GPTQ stays below RTN (AWQ, fitted to the float model's inputs, lands near it on this model).
      if (!(by.gptq.effect < by.rtn.effect)) throw new Error(`GPTQ does not beat RTN: ${JSON.stringify(r)}`);
      if (by.awq.effect === by.rtn.effect || !(by.awq.mb > by.rtn.mb)) throw new Error(`AWQ did not run (same effect as RTN, or no 1/s stored): ${JSON.stringify(r)}`);
      const notes = (await f.locator('#qs-exp-notes').textContent()) ?? '';
      if (!/int4-g32 GPTQ: 9 of 10 weights by GPTQ; rounded to nearest: tok\.weight/.test(notes) || !/int4-g32 AWQ: 9 of 10 weights by AWQ/.test(notes)) throw new Error(`notes: ${notes}`);
      if ((await f.evaluate(() => document.body.dataset.points)) !== '3') throw new Error('scatter does not hold 3 points');
      const px = await drawnPixels(f, 'qs-exp-scatter');
      if (px.drawn < 0.01 * px.total) throw new Error(`scatter did not draw (${px.drawn} of ${px.total} pixels)`);
      try {
        for (const [theme, cls, tag] of [['Default Dark Modern', 'vscode-dark', 'dark'], ['Default Light Modern', 'vscode-light', 'light']] as const) {
          await setColorTheme(ctx, f, theme, cls);
          // The Algorithm axis, the notes, the scatter with a marker per algorithm and the table fit in one view.
          await f.evaluate(() => document.getElementById('qs-exp-algorithms')?.scrollIntoView());
          await page.mouse.move(900, 700);
          await page.waitForTimeout(300);
          await page.screenshot({ path: path.join(ctx.resultsDir, `experiment-algorithms-${tag}.png`) });
        }
      } finally {
        await setColorTheme(ctx, f, undefined, 'vscode-light').catch(() => undefined);
      }
      // Leave the view as a user would find it next time: no data, RTN.
      await f.locator('#qs-exp-clear').click();
      await f.waitForFunction(() => document.getElementById('qs-alg-gptq')?.disabled === true, undefined, { timeout: 10_000 });
      await page.locator('.tabs-container .tab', { hasText: `Experiment: ${TINY}` }).first().locator('.codicon-close').click();
    },
  },
];

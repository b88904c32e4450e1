/**
 * The Sensitivity panel's budget slider: on a sample conv model (QDQ target,
 * keep-or-INT8 per weight) the lowest budget lowers every planned weight, the
 * highest keeps (nearly) all, and in between the rows marked "keep" are exactly
 * as many as the summary says and grow with the budget; "Quantize with this
 * plan" opens Quantize Model… for that file.
 */
import * as path from 'node:path';
import type { Frame, Page } from 'playwright-core';
import { findFrame, inspectorOf, quickOpen, setColorTheme, type UiTest } from '../uiHelpers';

/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
/* eslint-enable @typescript-eslint/no-explicit-any */

const MODEL = 'ch_ppocr_mobile_v2.0_cls_infer.onnx';

async function summary(f: Frame): Promise<{ lowered: number; kept: number; keepRows: number; lowerRows: number }> {
  return f.evaluate(() => {
    const s = document.getElementById('qs-budget-summary');
    return {
      lowered: Number(s?.dataset.lowered ?? NaN), kept: Number(s?.dataset.kept ?? NaN),
      keepRows: document.querySelectorAll('.qs-sens-row[data-mark="keep"]').length,
      lowerRows: document.querySelectorAll('.qs-sens-row[data-mark]:not([data-mark=""]):not([data-mark="keep"])').length,
    };
  });
}

async function press(page: Page, f: Frame, key: string, until: (s: Awaited<ReturnType<typeof summary>>) => boolean, what: string): Promise<Awaited<ReturnType<typeof summary>>> {
  await f.locator('#qs-budget').focus();
  await page.keyboard.press(key);
  const t0 = Date.now();
  let pressed = t0;
  for (;;) {
    const s = await summary(f);
    if (until(s)) return s;
    if (Date.now() - t0 > 15_000) throw new Error(`${what}: panel shows ${JSON.stringify(s)}`);
    // Home and End are idempotent: press again if the first press met a re-render (the panel redraws on every host message).
    if ((key === 'Home' || key === 'End') && Date.now() - pressed > 4_000) {
      await f.locator('#qs-budget').focus();
      await page.keyboard.press(key);
      pressed = Date.now();
    }
    await page.waitForTimeout(200);
  }
}

export const sensitivityUiTests: UiTest[] = [
  {
    name: 'sensitivity slider: the budget marks which weights the knapsack lowers or keeps; Quantize with this plan opens Quantize Model…',
    async fn(page, ctx) {
      // Its inspector may already be open in a background tab (the compare test opens it).
      const tab = page.locator('.tabs-container .tab', { hasText: MODEL }).filter({ hasNotText: '↔' }).first();
      if (await tab.count()) await tab.click();
      else await quickOpen(page, MODEL);
      const insp = await inspectorOf(page, MODEL);
      await insp.waitForFunction(() => /Analysis complete/.test(document.body.textContent ?? ''), undefined, { timeout: 120_000 });
      await page.keyboard.press('F1');
      const input = page.locator('.quick-input-widget input');
      await input.waitFor({ timeout: 15_000 });
      await input.fill('>QuantScope: Show Sensitivity Panel');
      await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Show Sensitivity Panel' }).first().click({ timeout: 15_000 });
      const f = await findFrame(page, '#qs-budget', 60_000);
      await f.waitForFunction((m) => (document.getElementById('qs-sens-head')?.textContent ?? '').includes(m), MODEL, { timeout: 30_000 });
      const target = await f.evaluate(() => (document.getElementById('qs-budget-target') as { value?: string } | null)?.value ?? document.getElementById('qs-budget-section')?.textContent ?? '');
      if (!String(target).includes('onnx-qdq')) throw new Error(`a conv model plans for onnx-qdq, the panel shows ${target}`);
      const low = await press(page, f, 'Home', (s) => s.kept === 0, 'lowest budget');
      if (low.lowered < 40 || low.lowerRows !== low.lowered || low.keepRows !== 0) throw new Error(`lowest budget: ${JSON.stringify(low)}`);
      // At the top every weight is kept, up to the knapsack's byte rounding (it may still lower a weight or two at zero cost in error).
      const high = await press(page, f, 'End', (s) => s.kept >= low.lowered - 2, 'highest budget');
      if (high.keepRows !== high.kept || high.lowerRows !== high.lowered || high.kept + high.lowered !== low.lowered) throw new Error(`highest budget: ${JSON.stringify(high)}`);
      // Step down from the top: fewer weights kept, never more, and the rows agree with the summary.
      let prev = high.kept;
      let mid = high;
      for (let i = 0; i < 6; i++) {
        mid = await press(page, f, 'PageDown', (s) => s.kept <= prev && s.keepRows === s.kept, `step ${i}`);
        await page.waitForTimeout(300);
        mid = await summary(f);
        if (mid.kept > prev || mid.keepRows !== mid.kept || mid.lowerRows !== mid.lowered) throw new Error(`step ${i}: ${JSON.stringify(mid)} after ${prev} kept`);
        prev = mid.kept;
        if (mid.kept > 0 && mid.lowered > 0) break;
      }
      if (!(mid.kept > 0 && mid.lowered > 0)) throw new Error(`no budget between all-kept and all-lowered: ${JSON.stringify(mid)}`);
      // Output-space: run the model once per planned weight (synthetic data, labelled), then rank and plan by the measured effect.
      await f.locator('#qs-output-measure').click();
      await f.waitForFunction(() => !!document.getElementById('qs-output-label'), undefined, { timeout: 240_000 });
      const outLabel = (await f.locator('#qs-output-label').textContent()) ?? '';
      if (!/SYNTHETIC/.test(outLabel)) throw new Error(`output-space label: ${outLabel}`);
      await f.waitForFunction(() => document.body.dataset.metric === 'output', undefined, { timeout: 10_000 });
      const effects = await f.$$eval('.qs-sens-db', (xs) => xs.map((x) => parseFloat(x.textContent ?? '')));
      if (!effects.length || effects.some((v, i) => Number.isNaN(v) || (i > 0 && v > effects[i - 1]))) throw new Error(`output effects not descending: ${effects.join(', ')}`);
      const sum = (await f.locator('#qs-budget-summary').textContent()) ?? '';
      if (!/output-space/.test(sum)) throw new Error(`budget summary: ${sum}`);
      try {
        for (const [theme, cls, tag] of [['Default Dark Modern', 'vscode-dark', 'dark'], ['Default Light Modern', 'vscode-light', 'light']] as const) {
          await setColorTheme(ctx, f, theme, cls);
          await page.screenshot({ path: path.join(ctx.resultsDir, `sensitivity-slider-${tag}.png`) });
        }
      } finally {
        await setColorTheme(ctx, f, undefined, 'vscode-light').catch(() => undefined);
      }
      await f.locator('#qs-quantize-plan').click();
      // Quantize Model… opens for this file (its first step: a quick pick or the wizard).
      const t0 = Date.now();
      for (;;) {
        const quick = await page.locator('.quick-input-widget', { hasText: MODEL }).first().isVisible().catch(() => false);
        const wizard = page.frames().length > 0 && (await Promise.all(page.frames().map((fr) => fr.$('[data-entry="wizard"]').catch(() => null)))).some(Boolean);
        if (quick || wizard) break;
        if (Date.now() - t0 > 20_000) throw new Error('Quantize with this plan opened nothing');
        await page.waitForTimeout(250);
      }
      await page.keyboard.press('Escape');
    },
  },
];

/**
 * End-to-end UI tests in the browser that drives code-server: a person's
 * path through the product, asserted on what the webview actually shows.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Frame, Page } from 'playwright-core';
import { workbenchUrl } from './codeServer';

interface Ctx {
  browser: Browser;
  server: { url: string; port: number };
  workspace: string;
  root: string;
  resultsDir: string;
}

type UiTest = { name: string; fn: (page: Page, ctx: Ctx) => Promise<void> };

async function findFrame(page: Page, selector: string, timeoutMs = 60_000): Promise<Frame> {
  const t0 = Date.now();
  for (;;) {
    for (const f of page.frames()) {
      try {
        if (await f.$(selector)) return f;
      } catch {
        /* frame detached while looking */
      }
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`no frame shows ${selector} after ${timeoutMs / 1000} s`);
    await page.waitForTimeout(250);
  }
}

/** Quick Open (Ctrl+P) a workspace file by name, as a user would. */
async function quickOpen(page: Page, fileName: string): Promise<void> {
  await page.locator('.monaco-workbench').waitFor({ timeout: 90_000 });
  // The explorer shows the folder once the remote connection is up.
  await page.locator('.explorer-folders-view').waitFor({ timeout: 90_000 });
  await page.keyboard.press('Control+P');
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ timeout: 15_000 });
  await input.fill(fileName);
  await page.locator('.quick-input-list .monaco-list-row', { hasText: fileName }).first().waitFor({ timeout: 30_000 });
  await page.keyboard.press('Enter');
}

const tests: UiTest[] = [
  {
    name: 'opening a real ONNX model shows its name, format, size and tensor count in the inspector',
    async fn(page, ctx) {
      const rel = 'ppocr/ch_PP-OCRv4_rec_infer.onnx';
      const file = path.join(ctx.workspace, rel);
      await quickOpen(page, path.basename(file));
      const frame = await findFrame(page, '#qs-filename');
      await frame.locator('#qs-tensors').waitFor();
      const name = (await frame.locator('#qs-filename').textContent())?.trim();
      const format = (await frame.locator('#qs-format').textContent()) ?? '';
      const size = (await frame.locator('#qs-size').textContent()) ?? '';
      const tensors = (await frame.locator('#qs-tensors').textContent())?.trim();
      const params = (await frame.locator('#qs-params').textContent())?.trim();
      const bytes = fs.statSync(file).size;
      if (name !== 'ch_PP-OCRv4_rec_infer.onnx') throw new Error(`file name shown: ${name}`);
      if (!format.startsWith('onnx')) throw new Error(`format shown: ${format}`);
      if (!size.includes(bytes.toLocaleString('en-US'))) throw new Error(`size shown "${size}" lacks ${bytes} bytes`);
      // 325 Constant tensors holding 2,690,312 values: facts of this published export.
      if (tensors !== '325') throw new Error(`tensor count shown: ${tensors}`);
      if (params !== '2,690,312') throw new Error(`parameter count shown: ${params}`);
      const rows = await frame.locator('.qs-table tbody tr').count();
      if (rows !== 325) throw new Error(`table rows: ${rows}`);
      await page.screenshot({ path: path.join(ctx.resultsDir, 'inspector-ppocr-rec.png') });
    },
  },
];

export async function runUiTests(ctx: Ctx): Promise<{ passed: number; failed: number }> {
  let passed = 0;
  let failed = 0;
  const page = await ctx.browser.newPage({ viewport: { width: 1400, height: 900 } });
  try {
    await page.goto(workbenchUrl(ctx.server, ctx.workspace, ctx.root));
    for (const t of tests) {
      const t0 = Date.now();
      try {
        await t.fn(page, ctx);
        passed++;
        console.log(`  ✔ ui: ${t.name} (${Date.now() - t0} ms)`);
      } catch (e) {
        failed++;
        console.log(`  ✖ ui: ${t.name}\n    ${e instanceof Error ? e.message : String(e)}`);
        await page.screenshot({ path: path.join(ctx.resultsDir, `ui-failure-${passed + failed}.png`) }).catch(() => undefined);
      }
    }
  } finally {
    await page.close();
  }
  return { passed, failed };
}

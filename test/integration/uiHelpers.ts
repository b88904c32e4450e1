/**
 * What every UI test file shares: the context, finding a webview frame,
 * opening a file, reading the grid, switching the colour theme.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Browser, Frame, Locator, Page } from 'playwright-core';

// Functions passed to frame.evaluate run in the webview; this Node-side build has no DOM typings.
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
export type HTMLElement = any;
export type HTMLCanvasElement = any;
export type HTMLSelectElement = any;
/* eslint-enable @typescript-eslint/no-explicit-any */

export interface Ctx {
  browser: Browser;
  server: { url: string; port: number };
  workspace: string;
  root: string;
  resultsDir: string;
}

export type UiTest = { name: string; fn: (page: Page, ctx: Ctx) => Promise<void> };

export async function findFrame(page: Page, selector: string, timeoutMs = 60_000): Promise<Frame> {
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
export async function quickOpen(page: Page, fileName: string): Promise<void> {
  await page.locator('.monaco-workbench').waitFor({ timeout: 90_000 });
  // The explorer shows the folder once the remote connection is up.
  await page.locator('.explorer-folders-view').waitFor({ timeout: 90_000 });
  // A startup walkthrough can open late and take the focus, closing Quick Open: try again then.
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.press('Control+P');
    const input = page.locator('.quick-input-widget input');
    try {
      await input.waitFor({ timeout: 15_000 });
      await input.fill(fileName);
      await page.locator('.quick-input-list .monaco-list-row', { hasText: fileName }).first().waitFor({ timeout: 15_000 });
      await page.keyboard.press('Enter');
      return;
    } catch (e) {
      if (attempt >= 3) throw e;
      await page.keyboard.press('Escape');
      await page.waitForTimeout(1000);
    }
  }
}

export const PPOCR_REC = 'ppocr/ch_PP-OCRv4_rec_infer.onnx';

/** The reader's view of a model, computed in this process: the independent count the UI is checked against. */
export function readerFacts(file: string): { tensors: string[]; dtypes: string[]; analysable: number; quantizable: number } {
  const { openModel } = require('../../src/formats') as typeof import('../../src/formats');
  const { isAnalysable } = require('../../src/analysis/tensorSource') as typeof import('../../src/analysis/tensorSource');
  const m = openModel(file);
  try {
    const a = m.tensors.filter((t) => isAnalysable(t));
    return { tensors: m.tensors.map((t) => t.name), dtypes: m.tensors.map((t) => t.dtype), analysable: a.length, quantizable: a.filter((t) => t.shape.length >= 2).length };
  } finally {
    m.close();
  }
}

export async function inspectorFrame(page: Page): Promise<Frame> {
  return findFrame(page, '#qs-grid');
}

/** The inspector frame showing this file (other inspectors may be open). */
export async function inspectorOf(page: Page, fileName: string, timeoutMs = 60_000): Promise<Frame> {
  const t0 = Date.now();
  for (;;) {
    for (const f of page.frames()) {
      const name = await f.evaluate(() => document.getElementById('qs-filename')?.textContent ?? '').catch(() => '');
      if (name === fileName && (await f.$('#qs-grid').catch(() => null))) return f;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`no inspector shows ${fileName}`);
    await page.waitForTimeout(250);
  }
}

/** Texts of a column in the rendered (virtualized) rows, by tensor name. */
export async function columnByName(frame: Frame, col: string): Promise<Map<string, string>> {
  const pairs = await frame.$$eval(`.qs-data`, (rows, c) => rows.map((r) => [(r as HTMLElement).dataset.name ?? '', r.querySelector(`[data-col="${c}"]`)?.textContent?.trim() ?? '']), col);
  return new Map(pairs as [string, string][]);
}

/** Pixels of a canvas that something was drawn on (the canvas starts transparent). */
export async function drawnPixels(frame: Frame, canvasId: string): Promise<{ drawn: number; total: number }> {
  return frame.$eval(`#${canvasId}`, (c) => {
    const canvas = c as HTMLCanvasElement;
    const data = canvas.getContext('2d')!.getImageData(0, 0, canvas.width, canvas.height).data;
    let drawn = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) drawn++;
    return { drawn, total: data.length / 4 };
  });
}

export async function setColorTheme(ctx: Ctx, frame: Frame, theme: string | undefined, bodyClass: string): Promise<void> {
  const file = path.join(ctx.workspace, '.vscode', 'settings.json');
  const settings = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  if (theme) settings['workbench.colorTheme'] = theme;
  else delete settings['workbench.colorTheme'];
  fs.writeFileSync(file, JSON.stringify(settings, null, 2));
  await frame.waitForFunction((cls) => document.body.classList.contains(cls), bodyClass, { timeout: 30_000 });
  // Charts redraw on the class change; give them a frame.
  await frame.waitForTimeout(500);
}

/** Answers VS Code's own open dialog (code-server's simple file dialog): its folder, then a click on the file's row, then OK. */
export async function answerOpenDialog(page: Page, file: string): Promise<void> {
  const input = page.locator('.quick-input-widget input');
  await input.waitFor({ timeout: 15_000 });
  // Typing a whole file path races the dialog's own completion; the folder and a click on the row do not.
  // The dialog fills in its starting folder once it is shown, and may do so after a first fill (the two then
  // run together): fill again until the input holds just the folder.
  const dir = path.dirname(file) + path.sep;
  for (let i = 0; i < 5; i++) {
    await input.fill(dir);
    await page.waitForTimeout(400);
    if ((await input.inputValue()) === dir) break;
  }
  const row = page.locator('.quick-input-list .monaco-list-row', { hasText: path.basename(file) }).first();
  await row.waitFor({ timeout: 15_000 });
  await row.click();
  await page.waitForTimeout(300);
  for (let i = 0; i < 3 && (await page.locator('.quick-input-widget').isVisible()); i++) {
    if ((await input.inputValue()).endsWith(path.basename(file))) await page.keyboard.press('Enter');
    else await input.fill(file);
    await page.waitForTimeout(1000);
  }
}

/**
 * Right-click `row` and choose `label` from its context menu. A menu opened
 * while the workbench is still settling can lose the click (the item stays
 * highlighted and the menu open): Enter then runs the highlighted item, as a
 * person would press it.
 */
export async function contextMenu(page: Page, row: Locator, label: string): Promise<void> {
  await row.click({ button: 'right' });
  const item = page.locator('.context-view .action-label', { hasText: label }).first();
  await item.click({ timeout: 15_000 });
  const open = page.locator('.context-view .action-label').first();
  if (await open.waitFor({ state: 'hidden', timeout: 2_000 }).then(() => false, () => true)) {
    await item.hover();
    await page.keyboard.press('Enter');
    await open.waitFor({ state: 'hidden', timeout: 5_000 }).catch(() => page.keyboard.press('Escape'));
  }
}

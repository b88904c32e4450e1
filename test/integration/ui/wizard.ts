/**
 * The Quantize wizard end to end: right-click a model in the Explorer →
 * Quantize Model… → the wizard beside the inspector offers only ONNX targets
 * (each saying who loads it) → a budget by the slider → the plan table follows
 * it → Quantize → the result page shows predicted and measured error (and on
 * what data) → Open in Inspector shows the written file.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Frame, Page } from 'playwright-core';
import { type Ctx, type HTMLElement, type UiTest, answerOpenDialog, contextMenu, drawnPixels, findFrame, inspectorOf, quickOpen, readerFacts, setColorTheme } from '../uiHelpers';

/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const window: any;
declare const Event: any;
/* eslint-enable @typescript-eslint/no-explicit-any */

/** The plan table as shown: per row the format and bytes, and the totals row's bytes. */
async function shownPlan(frame: Frame): Promise<{ rows: { name: string; format: string; bytes: number }[]; totalBytes: number; params: number }> {
  return frame.evaluate(() => {
    const num = (s: string | undefined) => Number((s ?? '').replace(/,/g, ''));
    const rows = [...document.querySelectorAll('#qs-wz-table tbody tr')].map((r: HTMLElement) => ({
      name: r.dataset.name ?? '', format: r.querySelector('[data-col="format"]')?.textContent ?? '', bytes: num(r.querySelector('[data-col="bytes"]')?.textContent),
    }));
    const tot = document.getElementById('qs-wz-totals');
    return { rows, totalBytes: num(tot?.querySelector('[data-col="bytes"]')?.textContent), params: num(tot?.querySelector('[data-col="params"]')?.textContent) };
  });
}

/** Parameters of the named tensors, as our reader counts them in the file (independent of what the wizard shows). */
function paramsOf(file: string, names: string[]): number {
  const { openModel } = require('../../../src/formats') as typeof import('../../../src/formats');
  const m = openModel(file);
  try {
    const want = new Set(names);
    return m.tensors.filter((t) => want.has(t.name)).reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  } finally {
    m.close();
  }
}

/** The plan table's predicted error per row (the exact number the host sent) and its total. */
async function shownErrors(frame: Frame): Promise<{ rows: { name: string; format: string; error: number }[]; total: number; header: string }> {
  return frame.evaluate(() => ({
    rows: [...document.querySelectorAll('#qs-wz-table tbody tr')].map((r: HTMLElement) => ({
      name: r.dataset.name ?? '', format: r.querySelector('[data-col="format"]')?.textContent ?? '', error: Number(r.querySelector('[data-col="error"]')?.getAttribute('data-value')),
    })),
    total: Number(document.querySelector('#qs-wz-totals [data-col="error"]')?.getAttribute('data-value')),
    header: `${document.getElementById('qs-wz-error-h')?.textContent ?? ''} | ${document.getElementById('qs-wz-table-caption')?.textContent ?? ''}`,
  }));
}

/**
 * The Sensitivity measurement cache entries (globalStorage/<extension>/runtime-cache in the
 * code-server's user data under the temp folder) written for `file` since `since`.
 */
function cachedMeasurements(file: string, since: number): { data: string; samples: number; configs: string[]; weights: { name: string; configs: { config: string; effect: number }[] }[] }[] {
  const found = [];
  for (const d of fs.readdirSync(os.tmpdir()).filter((x) => x.startsWith('qs-code-server-'))) {
    const gs = path.join(os.tmpdir(), d, 'user-data', 'User', 'globalStorage');
    if (!fs.existsSync(gs)) continue;
    for (const ext of fs.readdirSync(gs)) {
      const dir = path.join(gs, ext, 'runtime-cache');
      if (!fs.existsSync(dir)) continue;
      for (const f of fs.readdirSync(dir).filter((x) => /^runtime-.*\.json$/.test(x))) {
        const full = path.join(dir, f);
        if (fs.statSync(full).mtimeMs < since) continue;
        const j = JSON.parse(fs.readFileSync(full, 'utf8'));
        if (j.file === file) found.push(j);
      }
    }
  }
  return found;
}

async function setSlider(frame: Frame, value: number | 'min' | 'max'): Promise<number> {
  return frame.evaluate((v) => {
    const s = document.getElementById('qs-wz-slider');
    s.value = v === 'min' ? s.min : v === 'max' ? s.max : String(v);
    s.dispatchEvent(new Event('input', { bubbles: true }));
    s.dispatchEvent(new Event('change', { bubbles: true }));
    return Number(s.value);
  }, value);
}

async function screenshots(page: Page, ctx: Ctx, frame: Frame, name: string, scrollTo?: string, highContrast = false): Promise<void> {
  const themes: [string, string, string][] = [['Default Light Modern', 'vscode-light', 'light'], ['Default Dark Modern', 'vscode-dark', 'dark']];
  if (highContrast) themes.push(['Default High Contrast', 'vscode-high-contrast', 'hc']);
  try {
    for (const [theme, cls, tag] of themes) {
      await setColorTheme(ctx, frame, theme, cls);
      await frame.evaluate((id) => (id ? document.getElementById(id)?.scrollIntoView() : window.scrollTo(0, 0)), scrollTo ?? '');
      await page.waitForTimeout(400);
      await page.screenshot({ path: path.join(ctx.resultsDir, `wizard-${name}-${tag}.png`) });
    }
  } finally {
    await setColorTheme(ctx, frame, undefined, 'vscode-light').catch(() => undefined);
  }
}

/** Right-click a workspace file in the Explorer → Quantize Model…; the wizard frame. */
async function openWizard(page: Page, fileName: string, selector: string): Promise<Frame> {
  const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: fileName }).first();
  await row.waitFor({ timeout: 30_000 });
  const tab = page.locator('.tabs-container .tab', { hasText: `Quantize ${fileName}` }).first();
  // A context menu opened while the workbench is still settling can lose the click: a second attempt, as a person would.
  for (let attempt = 1; ; attempt++) {
    await contextMenu(page, row, 'Quantize Model…');
    try {
      // Its tab to the front (an editor opened in its group since may cover it).
      await tab.click({ timeout: attempt === 1 ? 15_000 : 30_000 });
      break;
    } catch (e) {
      if (attempt >= 2) throw e;
      await page.keyboard.press('Escape');
    }
  }
  return wizardOf(page, fileName, selector, 60_000);
}

/** The palette's Quantize Model… for the model of the active inspector (no Explorer row to aim at while the tree reveals the file). */
async function paletteWizard(page: Page, fileName: string, selector: string): Promise<Frame> {
  for (let attempt = 1; ; attempt++) {
    await page.keyboard.press('F1');
    const input = page.locator('.quick-input-widget input');
    try {
      await input.waitFor({ timeout: 15_000 });
      await input.fill('>QuantScope: Quantize Model');
      await page.locator('.quick-input-list .monaco-list-row', { hasText: 'Quantize Model' }).first().click({ timeout: 15_000 });
      return await wizardOf(page, fileName, selector, 60_000);
    } catch (e) {
      if (attempt >= 2) throw e;
      await page.keyboard.press('Escape');
    }
  }
}

/** Several wizards may be open (one per model): the one whose header names this file, once it shows `selector`. */
async function wizardOf(page: Page, fileName: string, selector: string, timeoutMs: number): Promise<Frame> {
  const t0 = Date.now();
  for (;;) {
    for (const f of page.frames()) {
      const name = await f.evaluate(() => document.getElementById('qs-wz-file-name')?.textContent ?? '').catch(() => '');
      if (name === fileName && (await f.$(selector).catch(() => null))) return f;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`no wizard of ${fileName} shows ${selector}`);
    await page.waitForTimeout(250);
  }
}

export const wizardUiTests: UiTest[] = [
  {
    name: 'wizard: Quantize Model… from the Explorer → target, budget slider, plan table, Quantize, result with predicted vs measured, Open in Inspector',
    async fn(page, ctx) {
      const src = path.join(ctx.workspace, 'fixtures', 'tiny-transformer', 'tiny-transformer.onnx');
      const out = path.join(path.dirname(src), 'tiny-transformer.int4.onnx');
      for (const f of [out, `${out}.plan.json`]) fs.rmSync(f, { force: true });
      await quickOpen(page, 'tiny-transformer.onnx');
      await inspectorOf(page, 'tiny-transformer.onnx');
      const row = page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'tiny-transformer.onnx' }).first();
      await row.waitFor({ timeout: 30_000 });
      await contextMenu(page, row, 'Quantize Model…');
      const frame = await findFrame(page, '#qs-wz-target', 60_000);
      // 1 Target: only what an ONNX model can become, each saying who loads it.
      const targets = await frame.$$eval('.qs-wz-target', (els) => els.map((e) => (e as HTMLElement).textContent ?? ''));
      if (!targets.some((t) => t.includes('onnx-int4')) || targets.some((t) => /\bgguf\b/.test(t))) throw new Error(`targets offered for an ONNX model: ${targets.join(' | ')}`);
      if (!targets.every((t) => t.includes('Loaded by'))) throw new Error(`targets do not say who loads them: ${targets.join(' | ')}`);
      await frame.locator('#qs-wz-target-onnx-int4').check();
      // 2 Data: none, said so (settings are remembered per model: a run before may have left data chosen).
      await frame.locator('#qs-wz-no-data').click();
      await frame.waitForFunction(() => /synthetic/.test(document.getElementById('qs-wz-data-label')?.textContent ?? ''), undefined, { timeout: 15_000 });
      const data = (await frame.locator('#qs-wz-data-label').textContent()) ?? '';
      if (!/synthetic/.test(data) || !/weight-space sensitivity/.test(data)) throw new Error(`data step says: ${data}`);
      // 3 Budget: the slider appears once the weights are measured and the frontier solved.
      await frame.locator('#qs-wz-slider').waitFor({ timeout: 120_000 });
      if (await frame.locator('#qs-wz-uniform').isChecked()) {
        await frame.locator('#qs-wz-uniform').uncheck();
        await frame.waitForFunction(() => document.getElementById('qs-wz-uniform')?.checked === false, undefined, { timeout: 15_000 });
      }
      const facts = readerFacts(src);
      await setSlider(frame, 'min');
      await frame.waitForTimeout(300);
      const low = await shownPlan(frame);
      if (low.rows.length === 0 || low.rows.length > facts.quantizable) throw new Error(`plan table lists ${low.rows.length} weights; the model has ${facts.quantizable} quantizable`);
      const sum = (p: typeof low) => p.rows.reduce((a, r) => a + r.bytes, 0);
      if (sum(low) !== low.totalBytes) throw new Error(`totals say ${low.totalBytes} bytes, the rows add to ${sum(low)}`);
      if (low.rows.some((r) => r.format === 'keep')) throw new Error(`at the smallest budget a weight is kept: ${JSON.stringify(low.rows.filter((r) => r.format === 'keep'))}`);
      // A budget of 6 bits per weight: the table follows, within the budget and above the smallest plan.
      const bpw = await setSlider(frame, 6);
      await frame.waitForTimeout(300);
      const mid = await shownPlan(frame);
      const readout = (await frame.locator('#qs-wz-budget-readout').textContent()) ?? '';
      if (sum(mid) !== mid.totalBytes) throw new Error(`totals say ${mid.totalBytes} bytes, the rows add to ${sum(mid)}`);
      const params = paramsOf(src, mid.rows.map((r) => r.name));
      if (params !== mid.params) throw new Error(`the table counts ${mid.params} parameters, the file holds ${params} in those weights`);
      if (mid.totalBytes > (bpw * mid.params) / 8) throw new Error(`plan of ${mid.totalBytes} bytes exceeds the ${bpw} bits/weight budget over ${mid.params} weights`);
      if (!(mid.totalBytes > low.totalBytes)) throw new Error(`moving the slider up did not change the plan (${mid.totalBytes} vs ${low.totalBytes} bytes)`);
      const shownBpw = Number(/([0-9.]+) bits\/weight/.exec(readout)?.[1]);
      if (Math.abs(shownBpw - (8 * mid.totalBytes) / mid.params) > 0.01) throw new Error(`readout says ${readout}; the table's totals are ${((8 * mid.totalBytes) / mid.params).toFixed(3)} bits/weight`);
      const px = await drawnPixels(frame, 'qs-wz-frontier');
      if (px.drawn < 0.01 * px.total) throw new Error('the frontier chart did not draw');
      await screenshots(page, ctx, frame, 'plan', 'qs-wz-budget');
      // 6 Quantize: progress, then the result page.
      await frame.locator('#qs-wz-quantize').click();
      await frame.locator('#qs-wz-result-h').waitFor({ timeout: 180_000 });
      const pvm = (await frame.locator('#qs-wz-pvm').textContent()) ?? '';
      if (!/Predicted.*worst weight SQNR [0-9.]+ dB/.test(pvm) || !/Measured.*worst weight SQNR [0-9.]+ dB/.test(pvm) || !/onnxruntime-node on synthetic inputs/.test(pvm)) throw new Error(`result says: ${pvm}`);
      const cos = await frame.$$eval('#qs-wz-measured tbody tr td:nth-child(2)', (els) => els.map((e) => Number((e as HTMLElement).textContent)));
      if (!cos.length || cos.some((c) => !(c > 0.5 && c <= 1.000001))) throw new Error(`measured cosines: ${cos.join(', ')}`);
      if (!fs.existsSync(out)) throw new Error(`${out} was not written`);
      const shownFile = (await frame.locator('#qs-wz-file code').first().textContent()) ?? '';
      if (shownFile !== out) throw new Error(`result names ${shownFile}, expected ${out}`);
      const plan = JSON.parse(fs.readFileSync(`${out}.plan.json`, 'utf8')) as { tensors: Record<string, string> };
      for (const r of mid.rows) if (plan.tensors[r.name] !== r.format) throw new Error(`${r.name}: the table showed ${r.format}, the written plan has ${plan.tensors[r.name]}`);
      const chart = await drawnPixels(frame, 'qs-wz-perlayer');
      if (chart.drawn < 0.01 * chart.total) throw new Error('the per-layer chart did not draw');
      await screenshots(page, ctx, frame, 'result');
      // Open in Inspector: the written file, with the tensor count our reader finds in it.
      const written = readerFacts(out);
      await frame.locator('#qs-wz-open').click();
      const insp = await inspectorOf(page, 'tiny-transformer.int4.onnx');
      await insp.locator('#qs-tensors').waitFor();
      const shown = (await insp.locator('#qs-tensors').textContent())?.trim();
      if (shown !== String(written.tensors.length)) throw new Error(`inspector shows ${shown} tensors, the file holds ${written.tensors.length}`);
      // The reader shows MatMulNBits weights dequantized, under their original names, their dtype naming the scheme.
      if (!written.dtypes.some((d) => d.startsWith('q:MatMulNBits'))) throw new Error(`no MatMulNBits weights in ${out}: ${written.dtypes.join(', ')}`);
      await page.screenshot({ path: path.join(ctx.resultsDir, 'wizard-opened.png') });
    },
  },
  {
    name: 'wizard: Measure output effect (synthetic) → chart, table and result say output-space; the table\'s errors are the measured effects; a cached measurement is used at once',
    async fn(page, ctx) {
      const src = path.join(ctx.workspace, 'fixtures', 'tiny-transformer', 'tiny-transformer.onnx');
      const out = path.join(path.dirname(src), 'tiny-transformer.int4.onnx');
      const since = Date.now() - 1000;
      // Its Explorer row: shown by the test before, else opening the file reveals it (run alone).
      if (!(await page.locator('.explorer-folders-view .monaco-list-row', { hasText: 'tiny-transformer.onnx' }).first().isVisible().catch(() => false))) {
        await quickOpen(page, 'tiny-transformer.onnx');
        await inspectorOf(page, 'tiny-transformer.onnx');
      }
      const frame = await openWizard(page, 'tiny-transformer.onnx', '#qs-wz-file-name');
      if (await frame.locator('#qs-wz-back').count()) await frame.locator('#qs-wz-back').click();
      await frame.locator('#qs-wz-target-onnx-int4').check();
      await frame.locator('#qs-wz-no-data').click();
      await frame.locator('#qs-wz-table').waitFor({ timeout: 120_000 });
      // Before measuring: weight-space, said so, and the offer names the data it would run on.
      await frame.locator('#qs-wz-measure').waitFor({ timeout: 60_000 });
      const before = await shownErrors(frame);
      if (!/weight-space/.test(before.header) || /output-space/.test(before.header)) throw new Error(`table header before measuring: ${before.header}`);
      const offer = (await frame.locator('#qs-wz-metric-box').textContent()) ?? '';
      if (!/synthetic inputs/.test(offer)) throw new Error(`the measure offer does not say its data is synthetic: ${offer}`);
      await frame.locator('#qs-wz-measure').click();
      await frame.waitForFunction(() => document.getElementById('qs-wz-metric')?.dataset.metric === 'output', undefined, { timeout: 240_000 });
      const label = 'output-space (measured on 8 synthetic samples)';
      const metric = (await frame.locator('#qs-wz-metric').textContent()) ?? '';
      if (!metric.includes(label)) throw new Error(`metric label: ${metric}`);
      // A mixed plan (several configs): the middle of the slider.
      const range = await frame.evaluate(() => { const sl = document.getElementById('qs-wz-slider'); return [Number(sl.min), Number(sl.max)]; });
      await setSlider(frame, Number(((range[0] + range[1]) / 2).toFixed(2)));
      await frame.waitForTimeout(300);
      const shown = await shownErrors(frame);
      if (!shown.header.startsWith('error (output-space) | ') || !shown.header.endsWith(label)) throw new Error(`table header | caption: ${shown.header}`);
      const note = (await frame.locator('#qs-wz-budget-note').textContent()) ?? '';
      if (!note.includes(`, ${label}`)) throw new Error(`budget note: ${note}`);
      const aria = (await frame.locator('#qs-wz-frontier').getAttribute('aria-label')) ?? '';
      if (!aria.includes(label)) throw new Error(`chart label: ${aria}`);
      // The table's errors are the Sensitivity measurement's effects for the chosen configs (read from its cache file).
      const entries = cachedMeasurements(src, since).filter((e) => e.data === 'synthetic' && e.samples === 8);
      if (entries.length !== 1) throw new Error(`${entries.length} output-space measurements of ${src} in the runtime cache since the test began`);
      const eff = new Map(entries[0].weights.map((w) => [w.name, new Map(w.configs.map((c) => [c.config, c.effect]))]));
      if (new Set(shown.rows.map((r) => r.format)).size < 2) throw new Error(`the middle of the slider is not a mixed plan: ${shown.rows.map((r) => r.format).join(', ')}`);
      let sum = 0;
      for (const r of shown.rows) {
        const want = r.format === 'keep' ? 0 : eff.get(r.name)?.get(r.format);
        if (want === undefined || r.error !== want) throw new Error(`${r.name} (${r.format}): the table predicts ${r.error}, the measurement says ${want}`);
        sum += want;
      }
      if (Math.abs(shown.total - sum) > 1e-12 * Math.max(1, sum)) throw new Error(`table total ${shown.total}, the measured effects add to ${sum}`);
      const px = await drawnPixels(frame, 'qs-wz-frontier');
      if (px.drawn < 0.01 * px.total) throw new Error('the frontier chart did not draw');
      await screenshots(page, ctx, frame, 'output-space', 'qs-wz-budget');
      await screenshots(page, ctx, frame, 'output-space-table', 'qs-wz-plan');
      // Another target and back: the measurement of this model + data comes from the cache at once (no second run).
      await frame.locator('#qs-wz-target-onnx-qdq').check();
      // onnx-qdq's configs were never measured: weight-space, until its plan table is back.
      await frame.waitForFunction(() => document.getElementById('qs-wz-target-onnx-qdq')?.checked === true && document.getElementById('qs-wz-metric')?.dataset.metric === 'weight'
        && !!document.getElementById('qs-wz-table') && !document.getElementById('qs-wz-analysing'), undefined, { timeout: 120_000 });
      await frame.locator('#qs-wz-target-onnx-int4').check();
      await frame.waitForFunction(() => document.getElementById('qs-wz-metric')?.dataset.metric === 'output' && document.getElementById('qs-wz-target-onnx-int4')?.checked === true, undefined, { timeout: 120_000 });
      if (await frame.locator('#qs-wz-measuring').count()) throw new Error('the cached measurement was run again');
      if (!/from the cache/.test((await frame.locator('#qs-wz-metric-box').textContent()) ?? '')) throw new Error('the cached measurement is not said to come from the cache');
      if (cachedMeasurements(src, since).filter((e) => e.data === 'synthetic' && e.samples === 8).length !== 1) throw new Error('the cache holds a second measurement');
      // Quantize: the result page's "predicted" is output-space, next to the written model's measured effect.
      for (const f of [out, `${out}.plan.json`]) fs.rmSync(f, { force: true });
      await frame.locator('#qs-wz-quantize').click();
      await frame.locator('#qs-wz-result-h').waitFor({ timeout: 180_000 });
      const pred = (await frame.locator('#qs-wz-predicted').textContent()) ?? '';
      if ((await frame.locator('#qs-wz-predicted').getAttribute('data-metric')) !== 'output' || !pred.includes(label) || !/measured on the written model .*: [0-9.]+e[-+][0-9]+/.test(pred)) throw new Error(`result predicted: ${pred}`);
      const plan = JSON.parse(fs.readFileSync(`${out}.plan.json`, 'utf8')) as { predicted: { errorKind: string } };
      if (!/output-space/.test(plan.predicted.errorKind)) throw new Error(`the written plan's errorKind: ${plan.predicted.errorKind}`);
      await screenshots(page, ctx, frame, 'output-space-result', 'qs-wz-predicted');
      await frame.locator('#qs-wz-back').click();
    },
  },
  {
    name: 'wizard: Load Plan… puts a plan file\'s choices in the table; a safetensors file outside a checkpoint gets a page saying why no target takes it',
    async fn(page, ctx) {
      const src = path.join(ctx.workspace, 'fixtures', 'tiny-transformer', 'tiny-transformer.onnx');
      // The wizard left on its result page by the test before (or a new one): back to the plan.
      const frame = await openWizard(page, 'tiny-transformer.onnx', '#qs-wz-file-name');
      if (await frame.locator('#qs-wz-back').count()) await frame.locator('#qs-wz-back').click();
      await frame.locator('#qs-wz-table').waitFor({ timeout: 120_000 });
      const names = (await shownPlan(frame)).rows.map((r) => r.name);
      // A plan as another tool (or Export Plan) writes it: the first weight kept, the rest INT2.
      const want: Record<string, string> = Object.fromEntries(names.map((n, i) => [n, i === 0 ? 'keep' : 'int2-g64']));
      const planFile = path.join(path.dirname(src), 'ui-test.plan.json');
      fs.writeFileSync(planFile, JSON.stringify({ schema: 'quantscope/plan/v1', target: 'onnx-int4', tensors: want }, null, 2));
      try {
        await frame.locator('#qs-wz-load-plan').click();
        await answerOpenDialog(page, planFile);
        await frame.waitForFunction(() => /Preloaded plan/.test(document.getElementById('qs-wz-notice')?.textContent ?? ''), undefined, { timeout: 30_000 });
        const shown = await shownPlan(frame);
        for (const r of shown.rows) if (r.format !== want[r.name]) throw new Error(`${r.name}: the table shows ${r.format}, the plan file says ${want[r.name]}`);
        const note = (await frame.locator('#qs-wz-budget-note').textContent()) ?? '';
        if (!/Preloaded plan \(not a frontier point\)/.test(note)) throw new Error(`budget note says: ${note}`);
        await screenshots(page, ctx, frame, 'preloaded', 'qs-wz-plan');
      } finally {
        fs.rmSync(planFile, { force: true });
      }
      // A safetensors file outside a checkpoint, from the palette with its inspector active: a designed page, not a blank one.
      await quickOpen(page, 'all-dtypes.safetensors');
      await inspectorOf(page, 'all-dtypes.safetensors');
      const st = await paletteWizard(page, 'all-dtypes.safetensors', '#qs-wz-fatal');
      const text = (await st.locator('#qs-wz-fatal').textContent()) ?? '';
      if (!/has no target here: it is not part of a Hugging Face checkpoint \(no config\.json beside it\)/.test(text)) throw new Error(`safetensors wizard says: ${text}`);
      await screenshots(page, ctx, st, 'safetensors');
    },
  },
  {
    name: 'wizard: real calibration data enables GPTQ; Cancel during the run writes nothing and says so',
    async fn(page, ctx) {
      const dir = path.join(ctx.workspace, 'fixtures', 'tiny-transformer');
      const out = path.join(dir, 'tiny-transformer.int4.onnx');
      for (const f of [out, `${out}.plan.json`]) fs.rmSync(f, { force: true });
      const before = new Set(fs.readdirSync(dir));
      const frame = await openWizard(page, 'tiny-transformer.onnx', '#qs-wz-file-name');
      if (await frame.locator('#qs-wz-back').count()) await frame.locator('#qs-wz-back').click();
      await frame.locator('#qs-wz-algo-gptq').waitFor({ timeout: 60_000 });
      if (!(await frame.locator('#qs-wz-algo-gptq').isDisabled())) throw new Error('GPTQ is offered without calibration data');
      // 2 Data: the byte windows the CLI test uses, through the file dialog.
      await frame.locator('#qs-wz-pick-data').click();
      // The sample workspace holds the model only; the byte windows come from the repository's fixtures.
      await answerOpenDialog(page, path.join(ctx.root, 'test', 'fixtures', 'tiny-transformer', 'calibration.txt'));
      await frame.waitForFunction(() => /real data/.test(document.getElementById('qs-wz-data-label')?.textContent ?? ''), undefined, { timeout: 30_000 });
      await frame.locator('#qs-wz-algo-gptq').check();
      await frame.waitForFunction(() => document.getElementById('qs-wz-algo-gptq')?.checked === true, undefined, { timeout: 15_000 });
      await frame.locator('#qs-wz-quantize').click();
      await frame.locator('#qs-wz-cancel').waitFor({ timeout: 30_000 });
      const progress = (await frame.locator('#qs-wz-progress-text').textContent()) ?? '';
      await frame.locator('#qs-wz-cancel').click();
      await frame.waitForFunction(() => /Cancelled; nothing was written/.test(document.getElementById('qs-wz-error')?.textContent ?? ''), undefined, { timeout: 60_000 });
      await page.screenshot({ path: path.join(ctx.resultsDir, 'wizard-cancelled.png') });
      const after = fs.readdirSync(dir).filter((f) => !before.has(f));
      if (after.length) throw new Error(`cancelled run (at "${progress}") left ${after.join(', ')}`);
      // Leave the wizard as a user would find it next time: no data, RTN.
      await frame.locator('#qs-wz-no-data').click();
    },
  },
  {
    name: 'wizard: a GGUF model → frontier over ggml types measured with the conversion\'s own encoders, a 5 bits/weight plan, Quantize: llama.cpp loads the file, every tensor has the planned type and bytes',
    async fn(page, ctx) {
      const { writeLlamaGguf } = require('../../llamaGguf') as typeof import('../../llamaGguf');
      const { openModel } = require('../../../src/formats') as typeof import('../../../src/formats');
      const { ggmlTypeByName } = require('../../../src/formats/gguf/ggmlTypes') as typeof import('../../../src/formats/gguf/ggmlTypes');
      const name = 'tiny-llama-f16.gguf';
      const src = path.join(ctx.workspace, name);
      writeLlamaGguf(src, { nLayer: 2, nEmbd: 256, nFf: 512, nHead: 4, nHeadKv: 2, nWords: 61, dtype: 'F16', seed: 5 });
      const m = openModel(src);
      const numel = new Map(m.tensors.map((t) => [t.name, t.shape.reduce((a, b) => a * b, 1)]));
      m.close();
      await quickOpen(page, name);
      await inspectorOf(page, name);
      let frame = await paletteWizard(page, name, '#qs-wz-target');
      const targets = await frame.$$eval('.qs-wz-target', (els) => els.map((e) => (e as HTMLElement).textContent ?? ''));
      if (!targets.some((t) => /\bgguf\b/.test(t)) || targets.some((t) => t.includes('onnx-'))) throw new Error(`targets offered for a GGUF model: ${targets.join(' | ')}`);
      await frame.locator('#qs-wz-target-gguf').check();
      frame = await wizardOf(page, name, '#qs-wz-slider', 120_000);
      if (await frame.locator('#qs-wz-uniform').isChecked()) {
        await frame.locator('#qs-wz-uniform').uncheck();
        await frame.waitForFunction(() => document.getElementById('qs-wz-uniform')?.checked === false, undefined, { timeout: 15_000 });
      }
      const metric = (await frame.locator('#qs-wz-metric-box').textContent()) ?? '';
      if (!/llama\.cpp/.test(metric)) throw new Error(`the metric box does not say why output-space is not offered: ${metric}`);
      const bpw = await setSlider(frame, 5);
      await frame.waitForTimeout(300);
      const plan = await shownPlan(frame);
      // Every 2-D weight llama.cpp quantizes (7 per block, the embedding and the output), none of the norms.
      if (plan.rows.length !== 16 || plan.rows.some((r) => /norm/.test(r.name))) throw new Error(`plan rows: ${plan.rows.map((r) => r.name).join(', ')}`);
      // Bytes per row from the ggml type table (blocks × block bytes), independent of the planner.
      const bytesOf = (format: string, n: number) => { const t = ggmlTypeByName(format === 'keep' ? 'F16' : format)!; return (n / t.blockSize) * t.typeSize; };
      for (const r of plan.rows) if (r.bytes !== bytesOf(r.format, numel.get(r.name)!)) throw new Error(`${r.name}: ${r.format} shown as ${r.bytes} bytes, the type table gives ${bytesOf(r.format, numel.get(r.name)!)}`);
      if (plan.totalBytes > (bpw * plan.params) / 8) throw new Error(`plan of ${plan.totalBytes} bytes exceeds ${bpw} bits/weight over ${plan.params} weights`);
      if (new Set(plan.rows.map((r) => r.format)).size < 2) throw new Error(`a ${bpw} bits/weight plan of one type only: ${plan.rows[0].format}`);
      const px = await drawnPixels(frame, 'qs-wz-frontier');
      if (px.drawn < 0.01 * px.total) throw new Error('the frontier chart did not draw');
      await screenshots(page, ctx, frame, 'gguf-plan', 'qs-wz-budget', true);
      await frame.locator('#qs-wz-quantize').click();
      await frame.locator('#qs-wz-result-h').waitFor({ timeout: 180_000 });
      const out = (await frame.locator('#qs-wz-file code').first().textContent()) ?? '';
      const pvm = (await frame.locator('#qs-wz-pvm').textContent()) ?? '';
      if (!/in llama\.cpp on synthetic inputs/.test(pvm)) throw new Error(`result says: ${pvm}`);
      const kl = await frame.$$eval('#qs-wz-measured tbody tr td:nth-child(6)', (els) => els.map((e) => Number((e as HTMLElement).textContent)));
      if (!kl.length || kl.some((x) => !(x >= 0 && x < 1))) throw new Error(`llama.cpp's mean KL against the source: ${kl.join(', ')}`);
      // The written file, read back by our reader: each planned tensor in its type, with the bytes the table showed.
      const w = openModel(out);
      try {
        for (const r of plan.rows) {
          const t = w.tensors.find((x) => x.name === r.name);
          const want = r.format === 'keep' ? 'f16' : `gguf:${r.format.toLowerCase()}`;
          if (!t || t.dtype !== want || t.byteLength !== r.bytes) throw new Error(`${r.name}: planned ${r.format} (${r.bytes} bytes), written ${t?.dtype} (${t?.byteLength} bytes)`);
        }
      } finally {
        w.close();
      }
      await screenshots(page, ctx, frame, 'gguf-result');
    },
  },
];

/**
 * The shipped package, tested as a user gets it: `npm run package` builds the
 * linux-x64 .vsix, code-server installs it into a fresh extensions folder,
 * and a workbench without any development path opens a model with it.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Browser } from 'playwright-core';
import { codeServerEntry, startCodeServer } from './codeServer';
import { quickOpen } from './uiHelpers';

const MAX_VSIX_BYTES = 60 * 1024 * 1024;

export async function runVsixTest(ctx: { browser: Browser; root: string; workspace: string; resultsDir: string }): Promise<{ passed: number; failed: number }> {
  const t0 = Date.now();
  const name = 'the linux-x64 .vsix is under 60 MB, installs into code-server, activates and opens a model';
  const extDir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-vsix-ext-'));
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(ctx.root, 'package.json'), 'utf8')) as { version: string };
    const vsix = path.join(ctx.root, `quantscope-${pkg.version}-linux-x64.vsix`);
    execFileSync(process.execPath, [path.join(ctx.root, 'scripts', 'package.mjs'), '--target', 'linux-x64'], { cwd: ctx.root, stdio: ['ignore', 'ignore', 'inherit'] });
    const size = fs.statSync(vsix).size;
    if (size > MAX_VSIX_BYTES) throw new Error(`${vsix} is ${size} bytes, over 60 MB`);
    const inst = spawnSync(process.execPath, [codeServerEntry(ctx.root), '--extensions-dir', extDir, '--user-data-dir', path.join(extDir, '.user'), '--install-extension', vsix], { encoding: 'utf8' });
    if (inst.status !== 0 || !/successfully installed/.test(inst.stdout)) throw new Error(`install failed: ${inst.stdout}\n${inst.stderr}`);
    const installed = fs.readdirSync(extDir).find((d) => d.startsWith('quantscope.quantscope-'));
    if (!installed) throw new Error(`nothing installed in ${extDir}`);
    // The native runtime it ships must load from where the bundle will require it.
    const ort = path.join(extDir, installed, 'dist', 'node_modules', 'onnxruntime-node');
    const load = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(ort)}).listSupportedBackends().length || process.exit(3)`], { encoding: 'utf8' });
    if (load.status !== 0) throw new Error(`the packaged onnxruntime-node does not load: ${load.stderr}`);

    const server = await startCodeServer(ctx.root, { workspace: ctx.workspace, extensionsDir: extDir });
    const page = await ctx.browser.newPage({ viewport: { width: 1400, height: 900 } });
    try {
      await page.goto(`${server.url}/?folder=${encodeURIComponent(ctx.workspace)}`);
      await quickOpen(page, 'silero_vad_legacy.onnx');
      const deadline = Date.now() + 60_000;
      let shown: string | null = null;
      while (!shown && Date.now() < deadline) {
        for (const f of page.frames()) {
          const h = await f.$('#qs-filename').catch(() => null);
          if (h) shown = await h.textContent();
        }
        if (!shown) await page.waitForTimeout(250);
      }
      if (shown?.trim() !== 'silero_vad_legacy.onnx') throw new Error(`the installed extension's inspector shows ${JSON.stringify(shown)}`);
      await page.screenshot({ path: path.join(ctx.resultsDir, 'vsix-installed-inspector.png') });
    } finally {
      await page.close();
      await server.stop();
    }
    console.log(`  ✔ vsix: ${name} (${(size / 1048576).toFixed(1)} MiB, ${Date.now() - t0} ms)`);
    return { passed: 1, failed: 0 };
  } catch (e) {
    console.log(`  ✖ vsix: ${name}\n    ${e instanceof Error ? e.message : String(e)}`);
    return { passed: 0, failed: 1 };
  } finally {
    fs.rmSync(extDir, { recursive: true, force: true });
  }
}

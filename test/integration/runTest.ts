/**
 * Runs the integration suite (test/integration/suite) inside a real VS Code:
 *  - desktop VS Code through @vscode/test-electron when QUANTSCOPE_VSCODE names
 *    one (or QUANTSCOPE_TEST_ELECTRON=1 lets test-electron download one);
 *  - otherwise code-server in Debian's Chromium driven by playwright-core, as on CI.
 * Then, in the code-server path, the end-to-end UI tests (test/integration/ui.ts)
 * in the same browser. Exits with the suites' status.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureCodeServer, startCodeServer, workbenchUrl, CODE_SERVER_VERSION } from './codeServer';
import { launchBrowser } from './browser';
import { runUiTests } from './ui';
import { runVsixTest } from './vsix';

const root = path.resolve(__dirname, '..', '..', '..');
const suitePath = path.join(root, 'out', 'test', 'integration', 'suite', 'index.js');
const resultsDir = path.join(root, 'test-results');
 
const { prepareSampleWorkspace } = require(path.join(root, 'scripts', 'sample-workspace.cjs')) as {
  prepareSampleWorkspace(root: string, dir: string): string[];
};

const SUITE_TIMEOUT_MS = Number(process.env.QUANTSCOPE_SUITE_TIMEOUT_MS ?? 15 * 60_000);

async function withTestElectron(workspace: string): Promise<number> {
  const { runTests } = await import('@vscode/test-electron');
  return runTests({
    vscodeExecutablePath: process.env.QUANTSCOPE_VSCODE || undefined,
    extensionDevelopmentPath: root,
    extensionTestsPath: suitePath,
    launchArgs: [workspace, '--disable-extensions', '--disable-workspace-trust'],
  });
}

/** Prints what the extension host's suite writes to its log file as it arrives. */
function follow(file: string): () => void {
  let pos = 0;
  const pump = () => {
    try {
      const size = fs.statSync(file).size;
      if (size > pos) {
        const fd = fs.openSync(file, 'r');
        const buf = Buffer.alloc(size - pos);
        fs.readSync(fd, buf, 0, buf.length, pos);
        fs.closeSync(fd);
        pos = size;
        process.stdout.write(buf);
      }
    } catch {
      /* not created yet */
    }
  };
  const timer = setInterval(pump, 200);
  return () => {
    clearInterval(timer);
    pump();
  };
}

/** Loads the extension-host suite in `page` and resolves to its exit code (or fails after SUITE_TIMEOUT_MS). */
async function runSuitePage(page: import('playwright-core').Page, exitCode: Promise<number>, server: { url: string; port: number; logFile: string }, workspace: string, testLog: string): Promise<number> {
  await page.goto(workbenchUrl(server, workspace, root, suitePath));
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<number>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the integration suite did not finish within ${SUITE_TIMEOUT_MS / 1000} s (see ${server.logFile} and ${testLog})`)), SUITE_TIMEOUT_MS);
  });
  const code = await Promise.race([exitCode, timeout]).finally(() => clearTimeout(timer));
  await page.close();
  return code;
}

/**
 * The same suite in a window that does not trust the workspace (trust on, no
 * prompt: Restricted Mode). Only the tests under "untrusted window" run; they
 * check that nothing runs a model there and that reading still works.
 */
async function withUntrustedCodeServer(workspace: string): Promise<number> {
  const testLog = path.join(resultsDir, 'integration-suite-untrusted.log');
  const env = { QUANTSCOPE_UNTRUSTED: '1', QUANTSCOPE_SUITE_ONLY: 'untrusted window', QUANTSCOPE_TEST_LOG: testLog };
  console.log('[integration] the extension in an untrusted workspace (Restricted Mode)');
  const server = await startCodeServer(root, { workspace, untrusted: true, env });
  const browser = await launchBrowser();
  const stopFollowing = follow(testLog);
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const exitCode = new Promise<number>((resolve) => {
      void page.exposeFunction('codeAutomationExit', (code: number) => resolve(Number(code)));
    });
    const code = await runSuitePage(page, exitCode, server, workspace, testLog);
    console.log(`[integration] untrusted-window suite exited with ${code}`);
    return code;
  } finally {
    stopFollowing();
    await browser.close().catch(() => undefined);
    await server.stop();
  }
}

/**
 * Extension host crashes in a code-server log (a signal, or a non-zero exit), with the stderr lines
 * before each: a crash restarts the host silently and shows up only as odd failures of later tests.
 */
function hostCrashes(logFile: string): string[] {
  let text = '';
  try { text = fs.readFileSync(logFile, 'utf8'); } catch { return []; }
  const lines = text.split('\n');
  const out: string[] = [];
  lines.forEach((l, i) => {
    if (/Extension Host Process exited with code: (?:null, signal: \w+|[1-9]\d*)/.test(l)) out.push(lines.slice(Math.max(0, i - 4), i + 1).join('\n'));
  });
  return out;
}

function reportHostCrashes(logFile: string): number {
  const crashes = hostCrashes(logFile);
  for (const c of crashes) console.log(`  ✖ the extension host crashed (${logFile}):\n${c}`);
  return crashes.length;
}

async function withCodeServer(workspace: string): Promise<number> {
  // code-server's native modules and Chromium come from Debian (scripts/provision.mjs installs or names them).
  const provisioned = spawnSync(process.execPath, [path.join(root, 'scripts', 'provision.mjs'), '--for', 'test'], { stdio: 'inherit' });
  if (provisioned.status !== 0) return provisioned.status ?? 1;
  ensureCodeServer(root);
  const testLog = path.join(resultsDir, 'integration-suite.log');
  fs.rmSync(testLog, { force: true });
  console.log(`[integration] code-server ${CODE_SERVER_VERSION} (VS Code 1.100.3) in Chromium via playwright-core`);
  const server = await startCodeServer(root, { workspace });
  const browser = await launchBrowser();
  const stopFollowing = follow(testLog);
  try {
    // QUANTSCOPE_UI_ONLY=<regex>: a developer's loop on one view; runs only the matching UI tests (never set on CI).
    // Decided before the suite's page exists: closing a page while its exposeFunction is in flight crashes playwright.
    const uiOnly = process.env.QUANTSCOPE_UI_ONLY;
    if (uiOnly) {
      stopFollowing();
      const ui = await runUiTests({ browser, server, workspace, root, resultsDir }, new RegExp(uiOnly, 'i'));
      console.log(`ui (only /${uiOnly}/): ${ui.passed} passed, ${ui.failed} failed`);
      return ui.failed > 0 || ui.passed === 0 || reportHostCrashes(server.logFile) > 0 ? 1 : 0;
    }
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on('pageerror', (e) => console.log(`[browser] page error: ${e.message}`));
    if (process.env.QUANTSCOPE_DEBUG) page.on('console', (m) => console.log(`[browser] ${m.text()}`));
    const exitCode = new Promise<number>((resolve) => {
      void page.exposeFunction('codeAutomationExit', (code: number) => resolve(Number(code)));
    });
    const suiteCode = await runSuitePage(page, exitCode, server, workspace, testLog);
    stopFollowing();
    console.log(`[integration] extension-host suite exited with ${suiteCode}`);

    if (process.env.QUANTSCOPE_SUITE_ONLY) return suiteCode !== 0 || !/untrusted/i.test(process.env.QUANTSCOPE_SUITE_ONLY) ? suiteCode : withUntrustedCodeServer(workspace);
    const ui = await runUiTests({ browser, server, workspace, root, resultsDir });
    const vsix = process.env.QUANTSCOPE_SKIP_VSIX ? { passed: 0, failed: 0 } : await runVsixTest({ browser, root, workspace, resultsDir });
    console.log(`ui: ${ui.passed + vsix.passed} passed, ${ui.failed + vsix.failed} failed`);
    const crashed = reportHostCrashes(server.logFile);
    const untrusted = await withUntrustedCodeServer(workspace);
    return suiteCode !== 0 ? suiteCode : ui.failed + vsix.failed > 0 || crashed > 0 || untrusted !== 0 ? 1 : 0;
  } finally {
    stopFollowing();
    await browser.close().catch(() => undefined);
    await server.stop();
  }
}

async function main(): Promise<number> {
  if (!fs.existsSync(suitePath)) throw new Error(`${suitePath} is missing: run 'npm run compile' first`);
  if (!fs.existsSync(path.join(root, 'dist', 'extension.js'))) throw new Error("dist/extension.js is missing: run 'npm run build' first");
  fs.mkdirSync(resultsDir, { recursive: true });
  const workspace = path.join(root, '.vscode-test', 'workspace');
  prepareSampleWorkspace(root, workspace);
  const desktop = process.env.QUANTSCOPE_VSCODE || process.env.QUANTSCOPE_TEST_ELECTRON === '1';
  return desktop ? withTestElectron(workspace) : withCodeServer(workspace);
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`[integration] ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
    process.exit(1);
  },
);

/**
 * Entry point VS Code loads as extensionTestsPath: runs the mocha suite inside
 * the extension host, reporting to test-results/integration-suite.log as well
 * as the console (see log.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SUITE_LOG, suiteLog } from './log';

export async function run(): Promise<void> {
  fs.mkdirSync(path.dirname(SUITE_LOG), { recursive: true });
  fs.writeFileSync(SUITE_LOG, '');
  const root = path.resolve(__dirname, '..', '..', '..', '..');
  let Mocha: typeof import('mocha');
  try {
     
    Mocha = require('mocha') as typeof import('mocha');
  } catch (e) {
    suiteLog(`[suite] cannot load mocha: ${e instanceof Error ? e.message : String(e)}`);
    throw e;
  }
  // Every mocha reporter prints through Base.consoleLog.
  (Mocha.reporters.Base as unknown as { consoleLog: (...a: unknown[]) => void }).consoleLog = suiteLog;
  const mocha = new Mocha({
    ui: 'bdd',
    color: false,
    timeout: 120_000,
    reporter: path.join(root, 'scripts', 'mocha-summary-reporter.js'),
    reporterOptions: { label: 'integration' },
    // QUANTSCOPE_SUITE_ONLY=<regex>: a developer's loop on some extension-host tests (never set on CI).
    ...(process.env.QUANTSCOPE_SUITE_ONLY ? { grep: new RegExp(process.env.QUANTSCOPE_SUITE_ONLY, 'i') } : {}),
  });
  for (const f of fs.readdirSync(__dirname).filter((f) => f.endsWith('.test.js')).sort()) mocha.addFile(path.join(__dirname, f));
  try {
    await new Promise<void>((resolve, reject) => {
      mocha.run((failures) => (failures > 0 ? reject(new Error(`${failures} integration test(s) failed`)) : resolve()));
    });
  } catch (e) {
    suiteLog(`[suite] ${e instanceof Error ? e.message : String(e)}`);
    throw e;
  }
}

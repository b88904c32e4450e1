/**
 * Output of the in-VS-Code suite. code-server's extension host neither
 * inherits the runner's environment nor lets `console` be replaced, so the
 * suite writes its report to a file the runner follows (and to the console).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { format } from 'node:util';

const root = path.resolve(__dirname, '..', '..', '..', '..');
export const SUITE_LOG = process.env.QUANTSCOPE_TEST_LOG || path.join(root, 'test-results', 'integration-suite.log');

export function suiteLog(...args: unknown[]): void {
  const line = format(...args);
  try {
    fs.appendFileSync(SUITE_LOG, line + '\n');
  } catch {
    /* the console still has it */
  }
  console.log(line);
}

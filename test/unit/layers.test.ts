import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

const SCRIPT = path.resolve(__dirname, '../../../scripts/check-layers.mjs');

/** Runs the import-direction check on a tree made of the given files. */
function check(files: Record<string, string>): { code: number | null; out: string } {
  const root = mkdtempSync(path.join(tmpdir(), 'qs-layers-'));
  try {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
      writeFileSync(path.join(root, name), text);
    }
    mkdirSync(path.join(root, 'webview'), { recursive: true });
    const r = spawnSync(process.execPath, [SCRIPT, root], { encoding: 'utf8' });
    return { code: r.status, out: r.stdout + r.stderr };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

describe('import-direction check (scripts/check-layers.mjs)', () => {
  it('passes on the real tree', () => {
    const r = spawnSync(process.execPath, [SCRIPT], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
  });

  it('passes downward imports and fails a planted upward one, naming the file and both floors', () => {
    const base = {
      'src/jobs/pool.ts': "import { quantize } from '../quant/rtn';\nexport const pool = quantize;\n",
      'src/quant/rtn.ts': 'export const quantize = 1;\n',
    };
    assert.equal(check(base).code, 0);
    const bad = check({ ...base, 'src/quant/rtn.ts': "import { pool } from '../jobs/pool';\nexport const quantize = pool;\n" });
    assert.equal(bad.code, 1);
    assert.match(bad.out, /src\/quant\/rtn\.ts: imports \.\.\/jobs\/pool \(src\/jobs, floor 5\) from floor 2 \(src\/quant\)/);
  });

  it('fails vscode outside src/host, host imported by cli, and a webview reaching past src/shared', () => {
    assert.match(check({ 'src/analysis/a.ts': "import * as vscode from 'vscode';\n" }).out, /src\/analysis\/a\.ts: imports vscode/);
    assert.equal(check({ 'src/host/a.ts': "import * as vscode from 'vscode';\n" }).code, 0);
    assert.match(check({ 'src/cli/a.ts': "import { x } from '../host/b';\n", 'src/host/b.ts': 'export const x = 1;\n' }).out, /kept apart/);
    assert.match(check({ 'webview/inspector/main.ts': "import { x } from '../../src/quant/rtn';\n", 'src/quant/rtn.ts': 'export const x = 1;\n' }).out, /webviews may import only/);
  });
});

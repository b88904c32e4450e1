/** A small tmpfs for disk-full tests (needs root: CI runs as root; elsewhere the test is skipped, saying why). */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';

export async function withTmpfs(ctx: Mocha.Context, mnt: string, size: string, fn: () => void | Promise<void>): Promise<void> {
  fs.mkdirSync(mnt, { recursive: true });
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', mnt], { encoding: 'utf8' });
  if (m.status !== 0) {
    console.log(`      skipped: cannot mount a tmpfs here (${(m.stderr || m.error?.message || '').trim()}); needs root`);
    ctx.skip();
  }
  try {
    await fn();
  } finally {
    spawnSync('umount', [mnt]);
  }
}

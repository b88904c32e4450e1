// `npm run package [-- --target linux-x64,darwin-arm64,...]`: platform-specific
// .vsix files, each carrying only its own platform's onnxruntime binaries.
import { execFileSync, execSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ALL = ['linux-x64', 'linux-arm64', 'darwin-arm64', 'win32-x64', 'win32-arm64'];
const arg = process.argv.find((a) => a.startsWith('--target='))?.slice(9) ?? process.argv[process.argv.indexOf('--target') + 1];
const targets = arg && !arg.startsWith('--') ? (arg === 'all' ? ALL : arg.split(',')) : ['linux-x64'];
for (const t of targets) if (!ALL.includes(t)) throw new Error(`unknown target ${t}; known: ${ALL.join(', ')}`);

execSync('node scripts/build.mjs --production', { cwd: root, stdio: 'inherit' });
const base = readFileSync(join(root, '.vscodeignore'), 'utf8');
const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version;
const tmp = mkdtempSync(join(tmpdir(), 'qs-vsix-'));
try {
  for (const target of targets) {
    const [os, arch] = target.split('-');
    // Drop every onnxruntime binary folder but this platform's.
    const drop = ALL.filter((t) => t !== target).map((t) => {
      const [o, a] = t.split('-');
      return `node_modules/onnxruntime-node/bin/napi-v6/${o}/${a}/**`;
    });
    if (os !== 'darwin') drop.push('node_modules/onnxruntime-node/bin/napi-v6/darwin/**');
    const ignore = join(tmp, `${target}.vscodeignore`);
    writeFileSync(ignore, `${base}\n${drop.join('\n')}\n`);
    const out = join(root, `quantscope-${version}-${target}.vsix`);
    execFileSync(process.execPath, [join(root, 'node_modules/@vscode/vsce/vsce'), 'package', '--target', target, '--no-dependencies', '--ignoreFile', ignore, '--allow-missing-repository', '--skip-license', '-o', out], { cwd: root, stdio: 'inherit' });
    console.log(`${out}: ${(statSync(out).size / 1048576).toFixed(1)} MiB (${os}/${arch})`);
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

// `npm run package [-- --target linux-x64,darwin-arm64,...|all]`: one .vsix per
// platform, each carrying only its own platform's onnxruntime binaries.
// The extension is bundled by esbuild; the only runtime module outside the
// bundle is onnxruntime-node (native), staged here by hand.
import { execFileSync, execSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const ALL = ['linux-x64', 'linux-arm64', 'darwin-arm64', 'win32-x64', 'win32-arm64'];
const ti = process.argv.indexOf('--target');
const arg = process.argv.find((a) => a.startsWith('--target='))?.slice(9) ?? (ti > 0 ? process.argv[ti + 1] : undefined);
const targets = arg ? (arg === 'all' ? ALL : arg.split(',')) : ['linux-x64'];
for (const t of targets) if (!ALL.includes(t)) throw new Error(`unknown target ${t}; known: ${ALL.join(', ')}`);

execSync('node scripts/build.mjs --production', { cwd: root, stdio: 'inherit' });
const { version } = JSON.parse(execSync('node -p "JSON.stringify(require(\'./package.json\'))"', { cwd: root }).toString());

function copy(rel, stage, to = rel) {
  const src = join(root, rel);
  if (!existsSync(src)) throw new Error(`${rel} is missing (run npm ci)`);
  mkdirSync(dirname(join(stage, to)), { recursive: true });
  cpSync(src, join(stage, to), { recursive: true, filter: (p) => !p.endsWith('.map') });
}

for (const target of targets) {
  const [os, arch] = target.split('-');
  const stage = mkdtempSync(join(tmpdir(), `qs-vsix-${target}-`));
  try {
    for (const rel of ['package.json', 'README.md', 'LICENSE', 'media', 'dist']) copy(rel, stage);
    // Under dist/node_modules: Node resolves the bundle's require('onnxruntime-node') there,
    // and vsce --no-dependencies leaves only the top-level node_modules out.
    for (const rel of ['node_modules/onnxruntime-node/package.json', 'node_modules/onnxruntime-node/dist', `node_modules/onnxruntime-node/bin/napi-v6/${os}/${arch}`, 'node_modules/onnxruntime-common/package.json', 'node_modules/onnxruntime-common/dist']) copy(rel, stage, join('dist', rel));
    writeFileSync(join(stage, '.vscodeignore'), '**/*.map\n');
    const out = join(root, `quantscope-${version}-${target}.vsix`);
    execFileSync(process.execPath, [join(root, 'node_modules/@vscode/vsce/vsce'), 'package', '--target', target, '--no-dependencies', '--allow-missing-repository', '--skip-license', '--no-update-package-json', '-o', out], { cwd: stage, stdio: ['ignore', 'ignore', 'inherit'] });
    console.log(`${out}: ${(statSync(out).size / 1048576).toFixed(1)} MiB`);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

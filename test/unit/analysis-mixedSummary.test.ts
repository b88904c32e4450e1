import * as assert from 'node:assert/strict';
import { mixedAssignment } from '../../src/analysis/mixedSummary';
import type { TensorSensitivity } from '../../src/analysis/sensitivity';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (s * 1664525 + 1013904223) >>> 0) / 4294967296);
}

/** A sensitivity table with made-up but consistent figures: fewer bits, more bytes saved, more error. */
function sens(numel: number, r: () => number): TensorSensitivity {
  const cfg = (config: string, bits: number, mse: number) => ({
    config, calibrator: 'minmax' as const, mse, sqnrDb: 0, relError: 0, tried: {}, bytes: Math.ceil((numel * bits) / 8), bitsPerWeight: bits,
  });
  const base = 1e-4 * (0.2 + r());
  return {
    numel, measuredElements: numel,
    configs: [cfg('int8-channel', 8.25, base / 256), cfg('int4-g128', 4.25, base), cfg('int3-g128', 3.25, base * (3 + r())), cfg('int2-g64', 2.5, base * (10 + 10 * r()))],
  };
}

describe('inspector: best mixed assignment', () => {
  it('equals brute force over every per-layer choice under the 4.5-bit budget, and never loses to uniform INT4', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const r = rng(seed);
      const layers = Array.from({ length: 4 }, (_, i) => {
        const numel = 1024 * (1 + Math.floor(r() * 8));
        return { name: `l${i}`, bytes: numel * 4, sens: sens(numel, r) };
      });
      const m = mixedAssignment(layers, 1000)!;
      assert.ok(m, `seed ${seed}`);
      const params = layers.reduce((a, l) => a + l.sens.numel, 0);
      const budget = Math.floor((4.5 * params) / 8);
      // Brute force in float64 over 5^4 assignments ("as stored" plus four configs).
      let best = Infinity;
      const opts = layers.map((l) => [{ bytes: l.bytes, err: 0 }, ...l.sens.configs.map((c) => ({ bytes: c.bytes, err: c.mse * l.sens.numel }))]);
      const walk = (i: number, bytes: number, err: number) => {
        if (bytes > budget) return;
        if (i === opts.length) { best = Math.min(best, err); return; }
        for (const o of opts[i]) walk(i + 1, bytes + o.bytes, err + o.err);
      };
      walk(0, 0, 0);
      assert.ok(Math.abs(m.error - best) <= 1e-12 * Math.max(1, best), `seed ${seed}: ${m.error} vs ${best}`);
      assert.ok(m.weightBytes <= budget);
      assert.equal(m.modelBytes, m.weightBytes + 1000);
      assert.equal(Object.values(m.counts).reduce((a, b) => a + b, 0), layers.length);
      if (m.int4g128Bytes <= budget) assert.ok(m.error <= m.int4g128Error * (1 + 1e-12));
    }
  });

  it('has nothing to say without layers', () => {
    assert.equal(mixedAssignment([], 0), undefined);
  });
});

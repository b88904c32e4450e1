/** Inputs for the trained tiny transformer (test/fixtures/tiny-transformer): it reads 64 bytes at a time. */
import * as fs from 'node:fs';
import type { Feeds } from '../../src/runtime/ortRun';

const T = 64;

/** Consecutive T-byte windows of a text file (at most `max`) as one int64 batch. */
export function windows(file: string, max: number): Feeds {
  const b = fs.readFileSync(file);
  const n = Math.min(max, Math.floor(b.length / T));
  const ids = new BigInt64Array(n * T);
  for (let i = 0; i < n * T; i++) ids[i] = BigInt(b[i]);
  return { input_ids: { data: ids, dims: [n, T] } };
}

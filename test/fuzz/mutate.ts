/**
 * Mutation fuzzing of the format readers: take a valid fixture, corrupt it
 * (bit flips, truncation, extreme length fields, spliced bytes), and require
 * that opening it, and reading every tensor of what opens, ends in a model or
 * a FormatError: never another exception. Shared by the unit suite (a short
 * deterministic run) and `npm run fuzz` (a timed run).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/formats/index';
import { FormatError } from '../../src/formats/types';
import { rng } from '../random';

export interface FuzzTarget {
  name: string;
  /** The fixture to mutate. */
  file: string;
  /** Files copied unchanged beside the mutant (external data, shards). */
  siblings?: string[];
  /** How a mutant is read (default: open it as a model and read every tensor). */
  exercise?: (file: string) => 'opened' | 'rejected';
}

export interface FuzzResult {
  runs: number;
  opened: number;
  rejected: number;
  failures: { target: string; seed: number; saved: string; error: string }[];
}

const EXTREMES: number[][] = [
  [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0, 0, 0, 0, 0, 0, 0, 0x80], // 2^63
  [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f],
  [0, 0, 0, 0, 0, 0, 0, 0],
  [0xff, 0xff, 0xff, 0xff],
  [0, 0, 0, 0x80],
  [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01], // max varint
  [0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
];

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export function mutate(src: Uint8Array, r: () => number): Uint8Array {
  const pick = (n: number): number => Math.floor(r() * n);
  const b = Uint8Array.from(src);
  switch (pick(6)) {
    case 0: { // bit flips
      const n = 1 + pick(8);
      for (let i = 0; i < n; i++) b[pick(b.length)] ^= 1 << pick(8);
      return b;
    }
    case 1: // truncation
      return b.subarray(0, pick(b.length));
    case 2: { // an extreme value over a length/count/offset-sized field
      const e = EXTREMES[pick(EXTREMES.length)];
      // Bias toward the header, where the lengths live.
      const at = r() < 0.7 ? pick(Math.min(b.length, 512)) : pick(b.length);
      for (let i = 0; i < e.length && at + i < b.length; i++) b[at + i] = e[i];
      return b;
    }
    case 3: { // random bytes overwritten
      const at = pick(b.length), n = 1 + pick(16);
      for (let i = 0; i < n && at + i < b.length; i++) b[at + i] = pick(256);
      return b;
    }
    case 4: { // duplicate or delete a span
      const at = pick(b.length), n = 1 + pick(32);
      const span = b.subarray(at, at + n);
      if (r() < 0.5) return concat(b.subarray(0, at), span, b.subarray(at));
      return concat(b.subarray(0, at), b.subarray(at + n));
    }
    default: { // small integer tweak (off-by-one lengths)
      const at = pick(b.length);
      b[at] = (b[at] + (r() < 0.5 ? 1 : 255)) & 0xff;
      return b;
    }
  }
}

/** Open and fully read one file; returns 'opened', 'rejected' or throws the unexpected error. */
export function exercise(file: string): 'opened' | 'rejected' {
  let m;
  try {
    m = openModel(file);
  } catch (e) {
    if (e instanceof FormatError) return 'rejected';
    throw e;
  }
  try {
    for (const t of m.tensors) {
      try {
        // Bounded work per tensor: fixtures are small, and a mutant may not grow them past the file.
        let seen = 0;
        for (const c of m.iterateFloat32(t, 4096)) {
          seen += c.values.length;
          if (seen > 1 << 20) break;
        }
        m.readBytes(t, 0, Math.min(t.byteLength, 64));
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
      }
    }
  } finally {
    m.close();
  }
  return 'opened';
}

/**
 * Run mutants of each target until `deadline` (ms since epoch) or `maxRuns` per target; at least
 * `minRuns` per target whatever the clock says (a loaded machine must not make a short run empty).
 */
export function fuzz(targets: FuzzTarget[], opts: { seed: number; deadline: number; maxRuns?: number; minRuns?: number; saveDir?: string }): FuzzResult {
  const res: FuzzResult = { runs: 0, opened: 0, rejected: 0, failures: [] };
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-fuzz-'));
  try {
    const perTarget = targets.map((t) => ({ t, src: fs.readFileSync(t.file), dir: fs.mkdtempSync(path.join(work, `${t.name}-`)) }));
    for (const { t, dir } of perTarget) for (const s of t.siblings ?? []) fs.copyFileSync(s, path.join(dir, path.basename(s)));
    let k = 0;
    const runs = new Array(targets.length).fill(0);
    const minRuns = opts.minRuns ?? 0;
    while (Date.now() < opts.deadline || runs.some((n) => n < minRuns)) {
      const i = k++ % perTarget.length;
      if (opts.maxRuns !== undefined && runs[i] >= opts.maxRuns) {
        if (runs.every((n) => n >= opts.maxRuns!)) break;
        continue;
      }
      const { t, src, dir } = perTarget[i];
      const seed = (opts.seed + k * 7919) >>> 0;
      const r = rng(seed);
      let bytes = mutate(src, r);
      if (r() < 0.3) bytes = mutate(bytes, r); // sometimes stack two mutations
      const p = path.join(dir, path.basename(t.file));
      fs.writeFileSync(p, bytes);
      runs[i]++;
      res.runs++;
      try {
        if ((t.exercise ?? exercise)(p) === 'opened') res.opened++;
        else res.rejected++;
      } catch (e) {
        const saveDir = opts.saveDir ?? work;
        fs.mkdirSync(saveDir, { recursive: true });
        const saved = path.join(saveDir, `fail-${t.name}-${seed}${path.extname(t.file)}`);
        fs.writeFileSync(saved, bytes);
        res.failures.push({ target: t.name, seed, saved, error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
      }
    }
  } finally {
    if (!opts.saveDir && res.failures.length === 0) fs.rmSync(work, { recursive: true, force: true });
  }
  return res;
}

export function fixtureTargets(root: string): FuzzTarget[] {
  const d = path.join(root, 'test/fixtures/formats');
  return [
    { name: 'safetensors', file: path.join(d, 'all-dtypes.safetensors') },
    { name: 'safetensors-shard', file: path.join(d, 'sharded/model-00001-of-00002.safetensors'), siblings: [path.join(d, 'sharded/model-00002-of-00002.safetensors'), path.join(d, 'sharded/model.safetensors.index.json')] },
    { name: 'safetensors-index', file: path.join(d, 'sharded/model.safetensors.index.json'), siblings: [path.join(d, 'sharded/model-00001-of-00002.safetensors'), path.join(d, 'sharded/model-00002-of-00002.safetensors')] },
    { name: 'gguf-v3', file: path.join(d, 'v3.gguf') },
    { name: 'gguf-v2', file: path.join(d, 'v2.gguf') },
    { name: 'onnx', file: path.join(d, 'weights.onnx') },
    { name: 'onnx-external', file: path.join(d, 'external.onnx'), siblings: [path.join(d, 'external.bin'), path.join(d, 'external2.bin')] },
  ];
}

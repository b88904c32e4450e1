/**
 * llama.cpp importance-matrix files (`llama-imatrix` output), read the way
 * llama-quantize reads them, giving per tensor the per-column importance that
 * the ggml encoders take as `quant_weights`:
 * - GGUF: tensors `<name>.in_sum2` (sums of squared activations) and
 *   `<name>.counts` (one count per expert), F32; importance = sum / count
 *   (1 where the count is 0); needs the imatrix.datasets / chunk_count /
 *   chunk_size metadata.
 * - legacy .dat: int32 entry count, then per entry int32 name length, name,
 *   int32 ncall, int32 nval, nval float32 (already averaged, times ncall);
 *   importance = value / ncall; optional trailing int32 chunk count and
 *   dataset name.
 */
import * as fs from 'node:fs';
import { FormatError } from '../types';
import { matchGguf, openGguf, readGgufHeader } from './reader';

const fr = Math.fround;

export interface Imatrix {
  /** Importance per tensor name (weights' names, e.g. blk.0.attn_q.weight). */
  entries: Map<string, Float32Array>;
  datasets: string[];
  chunkCount: number;
  format: 'gguf' | 'legacy';
}

export function readImatrix(file: string): Imatrix {
  let head: Buffer;
  try {
    head = Buffer.alloc(4);
    const fd = fs.openSync(file, 'r');
    try { fs.readSync(fd, head, 0, 4, 0); } finally { fs.closeSync(fd); }
  } catch (e) {
    throw new FormatError(file, 'open', (e as Error).message);
  }
  return matchGguf(head) ? readGgufImatrix(file) : readLegacyImatrix(file);
}

function readGgufImatrix(file: string): Imatrix {
  const h = readGgufHeader(file);
  const ds = h.metadata['imatrix.datasets'];
  if (!Array.isArray(ds) || !('imatrix.chunk_count' in h.metadata) || !('imatrix.chunk_size' in h.metadata)) {
    throw new FormatError(file, 'metadata', 'missing imatrix metadata (imatrix.datasets, imatrix.chunk_count, imatrix.chunk_size)');
  }
  const m = openGguf(file);
  try {
    const byName = new Map(m.tensors.map((t) => [t.name, t]));
    const entries = new Map<string, Float32Array>();
    for (const t of m.tensors) {
      if (!t.name.endsWith('.in_sum2')) continue;
      const name = t.name.slice(0, -'.in_sum2'.length);
      const ct = byName.get(`${name}.counts`);
      if (!ct) throw new FormatError(file, `tensor ${t.name}`, `no matching ${name}.counts`);
      if (t.dtype !== 'f32' || ct.dtype !== 'f32') throw new FormatError(file, `tensor ${name}`, 'sums and counts must be F32');
      const sums = m.readFloat32(t);
      const counts = m.readFloat32(ct);
      if (counts.length === 0 || sums.length % counts.length !== 0) {
        throw new FormatError(file, `tensor ${name}`, `${sums.length} sums do not split into ${counts.length} experts`);
      }
      const ne0 = sums.length / counts.length;
      const e = new Float32Array(sums.length);
      for (let j = 0; j < counts.length; j++) {
        // llama.cpp rounds the stored count to an integer before dividing.
        const c = fr(Math.round(counts[j]));
        for (let i = 0; i < ne0; i++) e[j * ne0 + i] = c > 0 ? fr(sums[j * ne0 + i] / c) : 1;
      }
      entries.set(name, e);
    }
    for (const t of m.tensors) {
      if (t.name.endsWith('.counts') && !entries.has(t.name.slice(0, -'.counts'.length))) {
        throw new FormatError(file, `tensor ${t.name}`, 'counts without matching in_sum2');
      }
    }
    if (!entries.size) throw new FormatError(file, 'tensors', 'no imatrix entries');
    const cc = h.metadata['imatrix.chunk_count'];
    return { entries, datasets: ds.map(String), chunkCount: typeof cc === 'number' ? cc : 0, format: 'gguf' };
  } finally {
    m.close();
  }
}

function readLegacyImatrix(file: string): Imatrix {
  const b = fs.readFileSync(file);
  let p = 0;
  const need = (n: number, what: string): void => {
    if (p + n > b.length) throw new FormatError(file, what, `needs ${n} bytes at offset ${p}, the file has ${b.length}`);
  };
  const i32 = (what: string): number => { need(4, what); const v = b.readInt32LE(p); p += 4; return v; };
  const n = i32('entry count');
  if (n < 1) throw new FormatError(file, 'entry count', `${n}: not an imatrix file (neither GGUF nor legacy .dat)`);
  const entries = new Map<string, Float32Array>();
  for (let k = 0; k < n; k++) {
    const len = i32(`entry #${k} name length`);
    if (len < 0) throw new FormatError(file, `entry #${k}`, `negative name length ${len}`);
    need(len, `entry #${k} name`);
    const name = b.toString('utf8', p, p + len);
    p += len;
    const ncall = i32(`entry ${name} ncall`);
    const nval = i32(`entry ${name} value count`);
    if (nval < 1) throw new FormatError(file, `entry ${name}`, `${nval} values`);
    need(nval * 4, `entry ${name} values`);
    const e = new Float32Array(nval);
    for (let i = 0; i < nval; i++) {
      const v = b.readFloatLE(p + 4 * i);
      e[i] = ncall > 0 ? fr(v / ncall) : v;
    }
    p += nval * 4;
    entries.set(name, e);
  }
  let chunkCount = 0;
  const datasets: string[] = [];
  if (p + 4 <= b.length) {
    chunkCount = b.readInt32LE(p); p += 4;
    if (p + 4 <= b.length) {
      const len = b.readInt32LE(p); p += 4;
      if (len > 0 && p + len <= b.length) datasets.push(b.toString('utf8', p, p + len).replace(/\0.*$/s, ''));
    }
  }
  return { entries, datasets, chunkCount, format: 'legacy' };
}

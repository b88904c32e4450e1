/**
 * On-disk cache of model statistics, so reopening a model shows them at once.
 * Keyed by the file's identity (resolved path, size, mtime of every file of
 * the model) and the statistics settings; entries written by another
 * ENGINE_VERSION are ignored and recomputed. The caller picks the directory
 * (the extension passes its global storage, the CLI ~/.cache/quantscope).
 *
 * An entry is JSON for the structure plus one float64 block for the long
 * number arrays and the Float64Arrays (histograms, per-channel statistics):
 * a 7B model's 1.4 M channels made 138 MB of JSON that took 3 s to write and
 * 4 s to parse. Layout: "QSCACHE1", u32 JSON byte length, u32 0, the JSON
 * (space-padded to a multiple of 8 bytes), then little-endian float64 values;
 * an array in the JSON appears as {"__f64": [first, count]} into that block,
 * a Float64Array as {"__f64a": [first, count]} (and comes back as one).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ENGINE_VERSION, ModelStats } from './analyseModel';
import { StatsOptions, resolveOptions } from '../analysis/weightStats';
import { removeStaleTempFiles, writeFileAtomicSync } from '../formats/atomicWrite';

export interface FileIdentity { path: string; size: number; mtimeMs: number }

export function fileIdentity(files: readonly string[]): FileIdentity[] {
  return files.map((f) => {
    const st = fs.statSync(f);
    return { path: path.resolve(f), size: st.size, mtimeMs: st.mtimeMs };
  });
}

export function defaultCliCacheDir(): string {
  const xdg = process.env.XDG_CACHE_HOME;
  return path.join(xdg && path.isAbsolute(xdg) ? xdg : path.join(os.homedir(), '.cache'), 'quantscope');
}

interface CacheFile { engineVersion: number; identity: FileIdentity[]; settings: StatsOptions; result: ModelStats }

const MAGIC = 'QSCACHE1';
/** Number arrays at least this long go to the float64 block. */
const BLOCK_MIN = 32;

function isNumberArray(v: unknown): v is number[] {
  if (v instanceof Float64Array) return true;
  if (!Array.isArray(v) || v.length < BLOCK_MIN) return false;
  for (let i = 0; i < v.length; i++) if (typeof v[i] !== 'number') return false;
  return true;
}

/** JSON has no NaN, Infinity or -0; scalars are written as tagged strings and restored on load (the float64 block keeps them as they are). */
function tagScalar(v: unknown): unknown {
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? '__NaN' : v > 0 ? '__Inf' : '__-Inf';
  if (Object.is(v, -0)) return '__-0';
  return v;
}
function untagScalar(v: unknown): unknown {
  if (v === '__-0') return -0;
  if (v === '__NaN') return NaN;
  if (v === '__Inf') return Infinity;
  if (v === '__-Inf') return -Infinity;
  return v;
}

export function encodeEntry(c: CacheFile): Buffer {
  const arrays: number[][] = [];
  let total = 0;
  const json = JSON.stringify(c, (_k, v: unknown) => {
    // A Float64Array comes back as one (__f64a), a number array as a number array (__f64).
    if (isNumberArray(v)) { arrays.push(v); total += v.length; return { [v instanceof Float64Array ? '__f64a' : '__f64']: [total - v.length, v.length] }; }
    return tagScalar(v);
  });
  let head = Buffer.from(json, 'utf8');
  const pad = (8 - (head.length % 8)) % 8;
  if (pad) head = Buffer.concat([head, Buffer.alloc(pad, 0x20)]);
  const out = Buffer.alloc(16 + head.length + total * 8);
  out.write(MAGIC, 0, 'latin1');
  out.writeUInt32LE(head.length, 8);
  head.copy(out, 16);
  const block = new Float64Array(out.buffer, out.byteOffset + 16 + head.length, total);
  let at = 0;
  for (const a of arrays) { block.set(a, at); at += a.length; }
  return out;
}

/** The entry in `buf`; throws on anything malformed (the caller treats that as a miss). */
export function decodeEntry(buf: Buffer): CacheFile {
  if (buf.length < 16 || buf.toString('latin1', 0, 8) !== MAGIC) throw new Error('not a QuantScope cache entry');
  const jsonLen = buf.readUInt32LE(8);
  const start = 16 + jsonLen;
  if (jsonLen % 8 !== 0 || start > buf.length || (buf.length - start) % 8 !== 0) throw new Error('cache entry lengths do not match its size');
  const count = (buf.length - start) / 8;
  // A file read whole normally starts its own ArrayBuffer; copy only if the block is misaligned.
  const block = (buf.byteOffset + start) % 8 === 0
    ? new Float64Array(buf.buffer, buf.byteOffset + start, count)
    : new Float64Array(buf.buffer.slice(buf.byteOffset + start, buf.byteOffset + buf.length));
  return JSON.parse(buf.toString('utf8', 16, start), (_k, v: unknown) => {
    const o = v as { __f64?: unknown; __f64a?: unknown } | null;
    const ref = o?.__f64 ?? o?.__f64a;
    if (ref !== undefined) {
      const [first, n] = ref as [number, number];
      if (!(Number.isSafeInteger(first) && Number.isSafeInteger(n) && first >= 0 && n >= 0 && first + n <= count)) throw new Error('cache entry refers past its data');
      return o?.__f64a !== undefined ? block.slice(first, first + n) : Array.from(block.subarray(first, first + n));
    }
    return untagScalar(v);
  }) as CacheFile;
}

export class StatsCache {
  constructor(readonly dir: string, readonly engineVersion = ENGINE_VERSION) {}

  private entryPath(identity: FileIdentity[], settings: StatsOptions): string {
    const key = JSON.stringify({ v: this.engineVersion, identity, settings: resolveOptions(settings) });
    return path.join(this.dir, `stats-${crypto.createHash('sha256').update(key).digest('hex').slice(0, 32)}.qsc`);
  }

  /** The cached statistics of these model files with these settings, or undefined. */
  load(files: readonly string[], settings: StatsOptions = {}): ModelStats | undefined {
    let identity: FileIdentity[];
    try { identity = fileIdentity(files); } catch { return undefined; }
    const p = this.entryPath(identity, settings);
    let c: CacheFile;
    try { c = decodeEntry(fs.readFileSync(p)); } catch { return undefined; }
    if (c.engineVersion !== this.engineVersion || JSON.stringify(c.identity) !== JSON.stringify(identity)) return undefined;
    return c.result;
  }

  store(files: readonly string[], settings: StatsOptions, result: ModelStats): string {
    const identity = fileIdentity(files);
    const p = this.entryPath(identity, settings);
    fs.mkdirSync(this.dir, { recursive: true });
    // Entries of the earlier JSON-only format are never read again; drop them.
    for (const f of fs.readdirSync(this.dir)) if (/^stats-[0-9a-f]{32}\.json$/.test(f)) fs.rmSync(path.join(this.dir, f), { force: true });
    // So are the temp files of a writer that was killed.
    removeStaleTempFiles(this.dir);
    const c: CacheFile = { engineVersion: this.engineVersion, identity, settings, result };
    // A concurrent reader sees the old entry or the whole new one, never half a file.
    writeFileAtomicSync(p, encodeEntry(c), { overwrite: true });
    return p;
  }
}

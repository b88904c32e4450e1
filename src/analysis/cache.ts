/**
 * On-disk cache of model statistics, so reopening a model shows them at once.
 * Keyed by the file's identity (resolved path, size, mtime of every file of
 * the model) and the statistics settings; entries written by another
 * ENGINE_VERSION are ignored and recomputed. The caller picks the directory
 * (the extension passes its global storage, the CLI ~/.cache/quantscope).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ENGINE_VERSION, ModelStats } from './analyseModel';
import { StatsOptions, resolveOptions } from './stats';

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

/** JSON has no NaN, Infinity or -0; they are written as tagged strings and restored on load. */
function encode(_k: string, v: unknown): unknown {
  if (typeof v === 'number' && !Number.isFinite(v)) return Number.isNaN(v) ? '__NaN' : v > 0 ? '__Inf' : '__-Inf';
  if (Object.is(v, -0)) return '__-0';
  return v;
}
function decode(_k: string, v: unknown): unknown {
  if (v === '__-0') return -0;
  if (v === '__NaN') return NaN;
  if (v === '__Inf') return Infinity;
  if (v === '__-Inf') return -Infinity;
  return v;
}

export class StatsCache {
  constructor(readonly dir: string, readonly engineVersion = ENGINE_VERSION) {}

  private entryPath(identity: FileIdentity[], settings: StatsOptions): string {
    const key = JSON.stringify({ v: this.engineVersion, identity, settings: resolveOptions(settings) });
    return path.join(this.dir, `stats-${crypto.createHash('sha256').update(key).digest('hex').slice(0, 32)}.json`);
  }

  /** The cached statistics of these model files with these settings, or undefined. */
  load(files: readonly string[], settings: StatsOptions = {}): ModelStats | undefined {
    let identity: FileIdentity[];
    try { identity = fileIdentity(files); } catch { return undefined; }
    const p = this.entryPath(identity, settings);
    let c: CacheFile;
    try { c = JSON.parse(fs.readFileSync(p, 'utf8'), decode) as CacheFile; } catch { return undefined; }
    if (c.engineVersion !== this.engineVersion || JSON.stringify(c.identity) !== JSON.stringify(identity)) return undefined;
    return c.result;
  }

  store(files: readonly string[], settings: StatsOptions, result: ModelStats): string {
    const identity = fileIdentity(files);
    const p = this.entryPath(identity, settings);
    fs.mkdirSync(this.dir, { recursive: true });
    const c: CacheFile = { engineVersion: this.engineVersion, identity, settings, result };
    // Write then rename, so a concurrent reader never sees half a file.
    const tmp = `${p}.${process.pid}.${Date.now()}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(c, encode));
    fs.renameSync(tmp, p);
    return p;
  }
}

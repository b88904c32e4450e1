/**
 * What every webview protocol shares: the validation helpers (everything that
 * arrives from a webview is untrusted), the log message, and PNG exports.
 * No `vscode` import, no DOM import: both sides and the tests use it.
 */

export type LogLevel = 'info' | 'warn' | 'error';
export interface LogMessage { type: 'log'; level: LogLevel; message: string }

const LEVELS = new Set(['info', 'warn', 'error']);
export const PNG_PREFIX = 'data:image/png;base64,';
/** A 4k chart at 4 bytes a pixel, base64: far above any real chart, low enough to refuse a flood. */
export const MAX_PNG_DATA_URL = 48 * 1024 * 1024;

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function shortString(v: unknown, max: number): v is string {
  return typeof v === 'string' && v.length <= max;
}

/** A non-empty string of at most `max` characters (names, ids, paths to match, never to open). */
export function name(v: unknown, max = 4096): v is string {
  return shortString(v, max) && v.length > 0;
}

export function parseLog(m: Record<string, unknown>): LogMessage | undefined {
  if (typeof m.level === 'string' && LEVELS.has(m.level) && shortString(m.message, 10_000)) {
    return { type: 'log', level: m.level as LogLevel, message: m.message };
  }
  return undefined;
}

/** A chart export: a short id and a base64 PNG data URL. */
export function parsePngExport(m: Record<string, unknown>): { chart: string; dataUrl: string } | undefined {
  if (!shortString(m.chart, 40) || !/^[a-z0-9-]+$/.test(m.chart)) return undefined;
  if (!shortString(m.dataUrl, MAX_PNG_DATA_URL) || !m.dataUrl.startsWith(PNG_PREFIX)) return undefined;
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(m.dataUrl.slice(PNG_PREFIX.length))) return undefined;
  return { chart: m.chart, dataUrl: m.dataUrl };
}

/** A whole `exportPng` message (the views that export charts share it). */
export function parsePngMessage(m: Record<string, unknown>): { type: 'exportPng'; chart: string; dataUrl: string } | undefined {
  const p = parsePngExport(m);
  return p ? { type: 'exportPng', ...p } : undefined;
}

/** The PNG bytes of a validated export; throws if they are not a PNG. */
export function pngBytes(dataUrl: string): Uint8Array {
  const b64 = dataUrl.slice(PNG_PREFIX.length);
  const bin = typeof atob === 'function' ? atob(b64) : '';
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  const sig = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (out.length < 8 || sig.some((b, i) => out[i] !== b)) throw new Error('exported chart is not a PNG image');
  return out;
}

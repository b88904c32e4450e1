/**
 * Messages between the extension host and the model-inspector webview.
 * Shared by both sides (no `vscode` import, no DOM import). Everything that
 * arrives from a webview is untrusted and goes through `parseFromWebview`.
 */

export interface ModelOverview {
  fileName: string;
  path: string;
  format: string;
  formatVersion: string;
  sizeOnDisk: number;
  tensorCount: number;
  parameterCount: number;
  bytesByDtype: Record<string, number>;
  metadataKeys: number;
}

export interface TensorRow {
  name: string;
  dtype: string;
  shape: number[];
  params: number;
  bytes: number;
  layer: string;
  opType: string;
}

/** Extension → webview. */
export type ToWebview =
  | { type: 'loading'; fileName: string }
  | { type: 'overview'; overview: ModelOverview; tensors: TensorRow[] }
  | { type: 'error'; message: string };

/** Webview → extension. */
export type FromWebview =
  | { type: 'ready' }
  | { type: 'log'; level: 'info' | 'warn' | 'error'; message: string }
  | { type: 'command'; command: 'quantize' | 'exportReport' };

const COMMANDS = new Set(['quantize', 'exportReport']);
const LEVELS = new Set(['info', 'warn', 'error']);

/** Validate a message from a webview; returns undefined for anything malformed. */
export function parseFromWebview(raw: unknown): FromWebview | undefined {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  const m = raw as Record<string, unknown>;
  switch (m.type) {
    case 'ready':
      return { type: 'ready' };
    case 'log':
      if (typeof m.level === 'string' && LEVELS.has(m.level) && typeof m.message === 'string' && m.message.length <= 10_000) {
        return { type: 'log', level: m.level as 'info' | 'warn' | 'error', message: m.message };
      }
      return undefined;
    case 'command':
      if (typeof m.command === 'string' && COMMANDS.has(m.command)) {
        return { type: 'command', command: m.command as 'quantize' | 'exportReport' };
      }
      return undefined;
    default:
      return undefined;
  }
}

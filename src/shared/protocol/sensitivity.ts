/**
 * Messages between the extension host and the Sensitivity view (the
 * QuantScope panel): the active inspector's weights ranked by their error at
 * the INT4 reference config, and a click that reveals one in the inspector.
 */
import { isPlainObject, name, parseLog, type LogMessage } from './common';

/** What the Sensitivity panel shows: the active inspector's weights, most sensitive first. */
export interface SensitivityPanelData {
  file: string;
  fileName: string;
  /** The config the ranking is by (the INT4 reference). */
  config: string;
  measured: number;
  quantizable: number;
  rows: { name: string; layer: string; opType: string; params: number; sqnrDb: number; sqnrInt8?: number; risk?: 'low' | 'medium' | 'high' }[];
}

/** Extension → Sensitivity view. */
export type ToSensitivity = { type: 'sensitivityPanel'; data: SensitivityPanelData | null };

/** Sensitivity view → extension. */
export type FromSensitivity =
  | { type: 'ready' }
  | LogMessage
  | { type: 'revealTensor'; file: string; name: string };

/** Validate a message from the Sensitivity view; undefined for anything malformed. */
export function parseFromSensitivity(raw: unknown): FromSensitivity | undefined {
  if (!isPlainObject(raw)) return undefined;
  switch (raw.type) {
    case 'ready':
      return { type: 'ready' };
    case 'log':
      return parseLog(raw);
    case 'revealTensor':
      // The file is only matched against open inspectors, never opened from here.
      return name(raw.file) && name(raw.name) ? { type: 'revealTensor', file: raw.file, name: raw.name } : undefined;
    default:
      return undefined;
  }
}

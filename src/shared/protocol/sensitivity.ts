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
  rows: { name: string; layer: string; opType: string; params: number; sqnrDb: number; sqnrInt8?: number; risk?: 'low' | 'medium' | 'high'; effect?: number; mark?: string }[];
  /** Which error the ranking and the budget use: weight-space SQNR, or the output-space effect measured by running the model. */
  metric: 'weight' | 'output';
  /** Output-space sensitivity: absent when the model cannot run here (with `outputWhy`), else its state. */
  output?: { state: 'none' | 'running' | 'done' | 'error'; done?: number; total?: number; data?: 'real' | 'synthetic'; dataSource?: string; samples?: number; config?: string; error?: string };
  outputWhy?: string;
  /** The budget slider: the knapsack's marks at the chosen bits per weight (absent with `budgetWhy`). */
  budget?: {
    target: string; targets: string[]; bitsPerWeight: number; minBits: number; maxBits: number;
    lowered: number; kept: number; bytes: number; error: number; errorKind: string;
  };
  budgetWhy?: string;
}

/** Extension → Sensitivity view. */
export type ToSensitivity = { type: 'sensitivityPanel'; data: SensitivityPanelData | null };

/** Sensitivity view → extension. */
export type FromSensitivity =
  | { type: 'ready' }
  | LogMessage
  | { type: 'revealTensor'; file: string; name: string }
  | { type: 'setMetric'; metric: 'weight' | 'output' }
  | { type: 'setBudget'; bitsPerWeight: number; target?: string }
  | { type: 'measureOutput' }
  | { type: 'cancelOutput' }
  | { type: 'quantizeWithPlan' };

const TARGET_IDS = new Set(['onnx-int4', 'onnx-qdq', 'onnx-dynamic', 'gguf']);

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
    case 'setMetric':
      return raw.metric === 'weight' || raw.metric === 'output' ? { type: 'setMetric', metric: raw.metric } : undefined;
    case 'setBudget': {
      const b = raw.bitsPerWeight;
      if (typeof b !== 'number' || !Number.isFinite(b) || b <= 0 || b > 64) return undefined;
      if (raw.target === undefined) return { type: 'setBudget', bitsPerWeight: b };
      return typeof raw.target === 'string' && TARGET_IDS.has(raw.target) ? { type: 'setBudget', bitsPerWeight: b, target: raw.target } : undefined;
    }
    case 'measureOutput': case 'cancelOutput': case 'quantizeWithPlan':
      return { type: raw.type };
    default:
      return undefined;
  }
}

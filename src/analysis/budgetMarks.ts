/**
 * What the Sensitivity panel's budget slider shows: for a conversion target
 * and a budget in bits per weight, the knapsack's choice per weight (lower it
 * to a config, or keep it), over weight-space error (the sensitivity table)
 * or output-space effect (measured by running the model, when available).
 */
import type { TensorInfo } from '../formats/types';
import { configsFor, targetBytes, type Plan, type PlanTarget } from '../quant/plan';
import { budgetPlan, WEIGHT_SPACE_ERROR, type BudgetLayer } from './budgetPlan';
import type { TensorSensitivity } from './sensitivity';

export type PanelMetric = 'weight' | 'output';

export interface BudgetMarks {
  target: PlanTarget;
  metric: PanelMetric;
  /** The budget asked for and the range a plan can reach (all at the smallest config … all kept). */
  bitsPerWeight: number;
  minBits: number;
  maxBits: number;
  /** Per planned weight: "keep" or the config it is lowered to. */
  marks: Record<string, string>;
  lowered: number;
  kept: number;
  bytes: number;
  error: number;
  errorKind: string;
  plan: Plan;
}

export const OUTPUT_SPACE_ERROR = 'output-space effect summed over the planned weights (each measured alone by running the model)';

/**
 * `effects`: output-space effect per weight and config (metric 'output');
 * weights without a measured effect for a config do not get that option.
 */
export function budgetMarks(
  target: PlanTarget, tensors: readonly TensorInfo[], sens: ReadonlyMap<string, TensorSensitivity>, bitsPerWeight: number,
  metric: PanelMetric = 'weight', effects?: ReadonlyMap<string, ReadonlyMap<string, number>>, model?: string,
): BudgetMarks {
  const ids = new Set(configsFor(target).map((c) => c.id));
  const layers: BudgetLayer[] = [];
  for (const t of tensors) {
    const s = sens.get(t.name);
    if (!s) continue;
    let configs = s.configs.filter((c) => ids.has(c.config));
    if (metric === 'output') {
      const e = effects?.get(t.name);
      if (!e) continue;
      // The knapsack sums mse·numel: carry the measured effect in that slot.
      configs = configs.filter((c) => e.has(c.config)).map((c) => ({ ...c, mse: e.get(c.config)! / s.numel }));
    }
    if (!configs.length) continue;
    layers.push({ name: t.name, bytes: t.byteLength, sens: { ...s, configs }, bytesOf: (id) => targetBytes(target, id, t.shape, t.layer.outputChannelAxis, t.dtype) });
  }
  if (!layers.length) throw new RangeError(metric === 'output' ? 'no planned weight has a measured output-space effect yet' : `no weight with a measured sensitivity can be written by ${target}`);
  let params = 0, minBytes = 0, keepBytes = 0;
  for (const l of layers) {
    params += l.sens.numel;
    keepBytes += l.bytes;
    minBytes += Math.min(l.bytes, ...l.sens.configs.map((c) => l.bytesOf!(c.config)));
  }
  const minBits = (8 * minBytes) / params, maxBits = (8 * keepBytes) / params;
  const bpw = Math.min(maxBits, Math.max(minBits * (1 + 1e-9), bitsPerWeight));
  const r = budgetPlan(target, layers, { bitsPerWeight: bpw }, model);
  if (metric === 'output' && r.plan.predicted) r.plan.predicted.errorKind = OUTPUT_SPACE_ERROR;
  const marks = r.plan.tensors;
  const kept = Object.values(marks).filter((c) => c === 'keep').length;
  return {
    target, metric, bitsPerWeight: bpw, minBits, maxBits, marks, kept, lowered: Object.keys(marks).length - kept,
    bytes: r.bytes, error: r.error, errorKind: metric === 'output' ? OUTPUT_SPACE_ERROR : WEIGHT_SPACE_ERROR, plan: r.plan,
  };
}

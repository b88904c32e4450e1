/**
 * The knapsack's plan for a conversion target: per weight, keep it as it is
 * or take one of the catalogue configs the target writes exactly, minimising
 * the summed predicted error (weight-space: squared error over the tensor,
 * from the sensitivity table) under a budget in bits per weight or bytes.
 * Also the uniform plans of the same configs, for comparison.
 */
import { searchMixedPrecision, type LayerChoices } from '../quant/mixedPrecision';
import { PLAN_SCHEMA, configsFor, type Plan, type PlanTarget } from '../quant/plan';
import type { TensorSensitivity } from './sensitivity';

export interface BudgetLayer {
  name: string;
  /** Bytes as stored now (the "keep" option). */
  bytes: number;
  sens: TensorSensitivity;
  /** Bytes the target writes for a config, when they differ from the sensitivity table's (padding, layout). */
  bytesOf?: (config: string) => number;
}

export type Budget = { bitsPerWeight: number } | { bytes: number };

export interface BudgetPlanResult {
  plan: Plan;
  /** Bytes and error of the chosen plan over the planned weights. */
  bytes: number;
  error: number;
  /** Each config applied to every planned weight: bytes and predicted error. */
  uniform: { config: string; bytes: number; error: number }[];
  /** The whole bytes-vs-error frontier is not needed here; the search was exact, or within its stated bound. */
  exact: boolean;
}

export const WEIGHT_SPACE_ERROR = 'weight-space squared error summed over the planned weights (predicted from the sensitivity table)';

export function budgetPlan(target: PlanTarget, layers: readonly BudgetLayer[], budget: Budget, model?: string): BudgetPlanResult {
  const ids = new Set(configsFor(target).map((c) => c.id));
  if (ids.size === 0) throw new RangeError(`a size budget needs a target with per-tensor choices; ${target} has none (use its presets or --tensor-type)`);
  if (layers.length === 0) throw new RangeError(`no weight of the model can be written by ${target}`);
  const choices: LayerChoices[] = layers.map((l) => ({
    name: l.name,
    params: l.sens.numel,
    options: [
      { label: 'keep', bits: (8 * l.bytes) / l.sens.numel, bytes: l.bytes, error: 0 },
      ...l.sens.configs.filter((c) => ids.has(c.config)).map((c) => {
        const bytes = l.bytesOf ? l.bytesOf(c.config) : c.bytes;
        return { label: c.config, bits: (8 * bytes) / l.sens.numel, bytes, error: c.mse * l.sens.numel };
      }),
    ],
  }));
  const constraints = 'bitsPerWeight' in budget ? { averageBits: budget.bitsPerWeight } : { budgetBytes: budget.bytes };
  return planFromChoices(target, choices, constraints, budget, WEIGHT_SPACE_ERROR, model, [...ids]);
}

/**
 * The knapsack over options already measured (each layer's "keep" among them)
 * as a plan: used by budgetPlan, and by targets whose options are not catalogue
 * configs (gguf: ggml types measured with the ggml encoders). `uniformIds` are
 * the labels compared as uniform plans.
 */
export function planFromChoices(
  target: PlanTarget, choices: readonly LayerChoices[], constraints: { averageBits: number } | { budgetBytes: number }, budget: Budget,
  errorKind: string, model: string | undefined, uniformIds: readonly string[],
): BudgetPlanResult {
  if (choices.length === 0) throw new RangeError(`no weight of the model can be written by ${target}`);
  const r = searchMixedPrecision(choices, constraints);
  if (!r.best) {
    const smallest = choices.reduce((a, c) => a + Math.min(...c.options.map((o) => o.bytes)), 0);
    const params = choices.reduce((a, c) => a + (c.params ?? 0), 0);
    throw new RangeError(`the budget is below the smallest plan: ${smallest} bytes (${((8 * smallest) / params).toFixed(3)} bits per weight) over the ${choices.length} planned weights`);
  }
  const tensors: Record<string, string> = {};
  choices.forEach((c, i) => { tensors[c.name] = c.options[r.best!.options[i]].label; });
  const uniform = uniformPlans(choices, uniformIds);
  const plan: Plan = {
    schema: PLAN_SCHEMA, target, tensors,
    predicted: { bytes: r.best.bytes, error: r.best.error, errorKind },
    budget,
  };
  if (model) plan.model = model;
  return { plan, bytes: r.best.bytes, error: r.best.error, uniform, exact: r.discretization.exact };
}

/** Each config applied to every layer that offers it (all must): bytes and summed error, the chart's reference points. */
export function uniformPlans(choices: readonly LayerChoices[], ids: readonly string[]): { config: string; bytes: number; error: number }[] {
  const out: { config: string; bytes: number; error: number }[] = [];
  for (const id of ids) {
    let bytes = 0, error = 0, ok = choices.length > 0;
    for (const c of choices) {
      const o = c.options.find((x) => x.label === id);
      if (!o) { ok = false; break; }
      bytes += o.bytes;
      error += o.error;
    }
    if (ok) out.push({ config: id, bytes, error });
  }
  return out;
}

/**
 * The wizard's plan problem: per weight, keep it or take one of the configs
 * the target writes, with the user's edits (pin a weight to full precision,
 * force a config, tie weights so they share one choice), solved for the whole
 * bytes-vs-error Pareto frontier at once. The frontier comes from the same
 * knapsack as `budgetPlan` (src/quant/mixedPrecision.ts); a budget then picks
 * a point of it without another search, so a slider answers at once.
 */
import { paretoFrontier, type LayerChoices } from '../quant/mixedPrecision';
import { PLAN_SCHEMA, type Plan, type PlanTarget } from '../quant/plan';
import { WEIGHT_SPACE_ERROR, uniformPlans } from './budgetPlan';

export interface PlanOption {
  /** "keep" or a catalogue config id. */
  label: string;
  bytes: number;
  /** Predicted error, additive over weights (weight-space: squared error summed over the tensor). */
  error: number;
}

export interface PlanLayer {
  name: string;
  params: number;
  /** options[0] is "keep" (the weight as stored). */
  options: PlanOption[];
}

export interface PlanEdits {
  /** Weights that stay as they are (full precision). */
  pinned: string[];
  /** Weight → the one config it must take. */
  forced: Record<string, string>;
  /** Groups of weights that take the same choice (q/k/v of a block). */
  tied: string[][];
}

export interface Frontier {
  /** Bytes strictly increasing, error strictly decreasing. */
  points: { bytes: number; error: number }[];
  /** points.length × layers.length option indices (into PlanLayer.options), row-major by point. */
  choices: Uint8Array;
  /** Each config applied to every weight, without the edits: reference points. */
  uniform: { config: string; bytes: number; error: number }[];
  /** True when the DP's byte grid was exact (see mixedPrecision.ts). */
  exact: boolean;
  /** Bytes per DP cell; when not exact, each point is within (weights × unit) bytes of the optimum's size. */
  unit: number;
}

/**
 * DP work (options × cells) the wizard allows per solve: about 12 M steps,
 * about 100 ms on one core (bench: wizard), so a 7B model's 291 weights × 8 options get a
 * grid of ~5k cells; small models get the exact 65536-cell grid.
 */
export const WORK_BUDGET = 12e6;

export const NO_EDITS: PlanEdits = { pinned: [], forced: {}, tied: [] };

/** The labels each weight may take under the edits (a tied group takes what all its members allow). */
export function allowedLabels(layers: readonly PlanLayer[], edits: PlanEdits): Map<string, string[]> {
  const byName = new Map(layers.map((l) => [l.name, l]));
  const pinned = new Set(edits.pinned);
  const allowed = new Map<string, string[]>();
  for (const l of layers) {
    const labels = l.options.map((o) => o.label);
    const f = edits.forced[l.name];
    if (pinned.has(l.name)) allowed.set(l.name, ['keep']);
    else if (f !== undefined) {
      if (!labels.includes(f)) throw new RangeError(`${l.name} cannot take ${f} (it offers ${labels.join(', ')})`);
      allowed.set(l.name, [f]);
    } else allowed.set(l.name, labels);
  }
  for (const g of edits.tied) {
    for (const n of g) if (!byName.has(n)) throw new RangeError(`tied weight '${n}' is not among the planned weights`);
    const common = allowed.get(g[0])!.filter((lab) => g.every((n) => allowed.get(n)!.includes(lab)));
    if (common.length === 0) throw new RangeError(`the tied weights ${g.join(', ')} share no allowed choice (a pin or a forced config differs)`);
    for (const n of g) allowed.set(n, common);
  }
  return allowed;
}

/** The Pareto frontier of the plan problem under the edits. */
export function solveFrontier(layers: readonly PlanLayer[], edits: PlanEdits = NO_EDITS, maxPoints = 400, maxCells?: number): Frontier {
  if (layers.length === 0) throw new RangeError('no weight to plan');
  if (layers.some((l) => l.options.length > 255)) throw new RangeError('at most 255 options per weight');
  const allowed = allowedLabels(layers, edits);
  // Restricted choices per weight, and the way back to the full option index.
  const back: number[][] = [];
  const choices: LayerChoices[] = layers.map((l) => {
    const keep = allowed.get(l.name)!;
    const idx: number[] = [];
    const options = l.options.flatMap((o, j) => (keep.includes(o.label) ? (idx.push(j), [{ label: o.label, bits: (8 * o.bytes) / l.params, bytes: o.bytes, error: o.error }]) : []));
    back.push(idx);
    return { name: l.name, params: l.params, options };
  });
  const tied = edits.tied.filter((g) => g.length > 1);
  const optionCount = choices.reduce((a, c) => a + c.options.length, 0);
  const cells = maxCells ?? Math.max(1024, Math.min(65536, Math.floor(WORK_BUDGET / optionCount)));
  const pts = paretoFrontier(choices, { tied, maxPoints, maxCells: cells });
  const n = layers.length;
  const out = new Uint8Array(pts.length * n);
  pts.forEach((p, k) => p.options.forEach((j, i) => (out[k * n + i] = back[i][j])));
  const ids = [...new Set(layers.flatMap((l) => l.options.map((o) => o.label)))].filter((x) => x !== 'keep');
  const all: LayerChoices[] = layers.map((l) => ({ name: l.name, params: l.params, options: l.options.map((o) => ({ label: o.label, bits: 0, bytes: o.bytes, error: o.error })) }));
  // The frontier is exact when every option's bytes are whole numbers within the default grid (mixedPrecision's exact mode).
  const grid = gridOf(choices, cells);
  return { points: pts.map((p) => ({ bytes: p.bytes, error: p.error })), choices: out, uniform: uniformPlans(all, ids), exact: grid.exact, unit: grid.unit };
}

/** The grid paretoFrontier uses (mixedPrecision's discretize): exact when all bytes are whole and their gcd fits the cells. */
function gridOf(choices: readonly LayerChoices[], cells: number): { exact: boolean; unit: number } {
  let g = 0;
  let cap = 0;
  const gcd = (a: number, b: number): number => { while (b) [a, b] = [b, a % b]; return a; };
  let integral = true;
  for (const c of choices) {
    let m = 0;
    for (const o of c.options) {
      if (!Number.isInteger(o.bytes)) integral = false;
      else g = gcd(g, o.bytes);
      m = Math.max(m, o.bytes);
    }
    cap += m;
  }
  if (integral && (g === 0 || cap / g <= cells)) return { exact: true, unit: g || 1 };
  return { exact: false, unit: cap / cells };
}

/** The plan of one assignment (option index per weight). */
export function planOf(target: PlanTarget, layers: readonly PlanLayer[], options: ArrayLike<number>, model?: string, budget?: Plan['budget']): Plan {
  const tensors: Record<string, string> = {};
  let bytes = 0;
  let error = 0;
  layers.forEach((l, i) => {
    const o = l.options[options[i]];
    tensors[l.name] = o.label;
    bytes += o.bytes;
    error += o.error;
  });
  const plan: Plan = { schema: PLAN_SCHEMA, target, tensors, predicted: { bytes, error, errorKind: WEIGHT_SPACE_ERROR } };
  if (model) plan.model = model;
  if (budget) plan.budget = budget;
  return plan;
}

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
  /** Predicted error, additive over weights (weight-space: squared error summed over the tensor; output-space: the measured effect, see withOutputEffects). */
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
  /**
   * How the points were found. 'dp': the knapsack DP over every budget
   * (mixedPrecision.paretoFrontier; exact when `exact`). 'hull': the lower
   * convex hull of the frontier, by Lagrangian sweep: every point is the exact
   * optimum for its own size, and non-convex frontier points between two of
   * them are not listed. Large problems take the hull: it answers in
   * milliseconds where the DP would need a coarse byte grid.
   */
  method: 'dp' | 'hull';
  /** True when every point is the exact optimum for its size (exact DP grid, or the hull). */
  exact: boolean;
  /** Bytes per DP cell; when not exact, each point is within (weights × unit) bytes of the optimum's size. */
  unit: number;
}

/**
 * DP work (options × cells) the wizard allows per solve: about 12 M steps,
 * about 100 ms on one core. A problem whose exact byte grid needs more takes
 * the convex-hull sweep instead (a 7B model's 291 weights × 8 options: bench wizard).
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
export function solveFrontier(layers: readonly PlanLayer[], edits: PlanEdits = NO_EDITS, maxPoints = 400, method: 'auto' | 'dp' | 'hull' = 'auto', maxCells?: number): Frontier {
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
  const ids = [...new Set(layers.flatMap((l) => l.options.map((o) => o.label)))].filter((x) => x !== 'keep');
  const all: LayerChoices[] = layers.map((l) => ({ name: l.name, params: l.params, options: l.options.map((o) => ({ label: o.label, bits: 0, bytes: o.bytes, error: o.error })) }));
  const uniform = uniformPlans(all, ids);
  const cells = maxCells ?? 65536;
  const grid = gridOf(choices, cells);
  const n = layers.length;
  if (method === 'hull' || (method === 'auto' && !(grid.exact && optionCount * (grid.cells + 1) <= WORK_BUDGET))) {
    const h = hullFrontier(choices, tied, maxPoints);
    const out = h.choices;
    for (let k = 0; k < h.points.length; k++) for (let i = 0; i < n; i++) out[k * n + i] = back[i][out[k * n + i]];
    return { points: h.points, choices: out, uniform, method: 'hull', exact: true, unit: 0 };
  }
  const pts = paretoFrontier(choices, { tied, maxPoints, maxCells: cells });
  const out = new Uint8Array(pts.length * n);
  pts.forEach((p, k) => p.options.forEach((j, i) => (out[k * n + i] = back[i][j])));
  return { points: pts.map((p) => ({ bytes: p.bytes, error: p.error })), choices: out, uniform, method: 'dp', exact: grid.exact, unit: grid.unit };
}

/**
 * The lower convex hull of the bytes-vs-error frontier, by a Lagrangian
 * sweep: every decision (a weight, or a tied group choosing one label) starts
 * at its smallest option; the steps along each decision's own lower hull are
 * taken in order of error saved per byte, best first. After each step the
 * assignment minimises error + λ·bytes for the step's λ, so it is the exact
 * optimum among all assignments of at most its size.
 */
function hullFrontier(layers: readonly LayerChoices[], tied: string[][], maxPoints: number): { points: { bytes: number; error: number }[]; choices: Uint8Array } {
  const index = new Map(layers.map((l, i) => [l.name, i]));
  const grouped = new Set<number>();
  // Decisions: members and, per option, the member option indices with summed bytes and error.
  const decisions: { members: number[]; opts: { bytes: number; error: number; pick: number[] }[] }[] = [];
  for (const g of tied) {
    const members = g.map((name) => index.get(name)!);
    members.forEach((m) => grouped.add(m));
    const labels = layers[members[0]].options.map((o) => o.label).filter((lab) => members.every((m) => layers[m].options.some((o) => o.label === lab)));
    decisions.push({
      members,
      opts: labels.map((lab) => {
        const pick = members.map((m) => layers[m].options.findIndex((o) => o.label === lab));
        return { bytes: pick.reduce((a, j, t) => a + layers[members[t]].options[j].bytes, 0), error: pick.reduce((a, j, t) => a + layers[members[t]].options[j].error, 0), pick };
      }),
    });
  }
  layers.forEach((l, i) => {
    if (!grouped.has(i)) decisions.push({ members: [i], opts: l.options.map((o, j) => ({ bytes: o.bytes, error: o.error, pick: [j] })) });
  });
  const steps: { d: number; to: number; gain: number }[] = [];
  const start: number[] = [];
  decisions.forEach((d, di) => {
    // Lower convex hull from the smallest option: each next vertex saves the most error per extra byte.
    const order = d.opts.map((_, j) => j).sort((a, b) => d.opts[a].bytes - d.opts[b].bytes || d.opts[a].error - d.opts[b].error);
    let cur = order[0];
    start.push(cur);
    for (;;) {
      let best = -1;
      let bestGain = 0;
      for (const j of order) {
        const db = d.opts[j].bytes - d.opts[cur].bytes;
        const de = d.opts[cur].error - d.opts[j].error;
        if (db <= 0 || de <= 0) continue;
        const gain = de / db;
        if (gain > bestGain || (gain === bestGain && best >= 0 && d.opts[j].bytes > d.opts[best].bytes)) {
          best = j;
          bestGain = gain;
        }
      }
      if (best < 0) break;
      steps.push({ d: di, to: best, gain: bestGain });
      cur = best;
    }
  });
  // Along one decision the gains fall (a convex hull), so a stable sort by gain keeps each decision's steps in order.
  steps.sort((a, b) => b.gain - a.gain);
  const at = start.slice();
  let bytes = decisions.reduce((a, d, i) => a + d.opts[at[i]].bytes, 0);
  let error = decisions.reduce((a, d, i) => a + d.opts[at[i]].error, 0);
  // Which sweep states to keep: all when they fit, else evenly spread with both ends.
  const total = steps.length + 1;
  const want = Math.max(2, maxPoints);
  const kept = Math.min(total, want);
  const keepAt = new Uint8Array(total);
  if (total <= want) keepAt.fill(1);
  else for (let i = 0; i < want; i++) keepAt[Math.round((i * (total - 1)) / (want - 1))] = 1;
  const n = layers.length;
  const points: { bytes: number; error: number }[] = [];
  const choices = new Uint8Array(kept * n);
  const record = () => {
    const row = points.length * n;
    for (let i = 0; i < decisions.length; i++) {
      const d = decisions[i];
      const pick = d.opts[at[i]].pick;
      for (let t = 0; t < d.members.length; t++) choices[row + d.members[t]] = pick[t];
    }
    points.push({ bytes, error });
  };
  if (keepAt[0]) record();
  for (let k = 0; k < steps.length; k++) {
    const s = steps[k];
    const d = decisions[s.d];
    bytes += d.opts[s.to].bytes - d.opts[at[s.d]].bytes;
    error += d.opts[s.to].error - d.opts[at[s.d]].error;
    at[s.d] = s.to;
    if (keepAt[k + 1]) record();
  }
  return { points, choices };
}

/** The grid paretoFrontier uses (mixedPrecision's discretize): exact when all bytes are whole and their gcd fits the cells. */
function gridOf(choices: readonly LayerChoices[], cells: number): { exact: boolean; unit: number; cells: number } {
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
  if (integral && (g === 0 || cap / g <= cells)) return { exact: true, unit: g || 1, cells: g ? Math.floor(cap / g) : 0 };
  return { exact: false, unit: cap / cells, cells };
}

/**
 * The plan problem over output-space effects: each config option's error
 * becomes the measured effect of that weight under that config (keep stays 0).
 * All or nothing: when any weight or config option has no finite measured
 * effect, nothing is replaced (an effect summed with a squared weight error
 * means nothing) and the missing pairs are listed, "weight: config".
 */
export function withOutputEffects(layers: readonly PlanLayer[], effects: ReadonlyMap<string, ReadonlyMap<string, number>>): { layers: PlanLayer[]; missing: [] } | { layers?: undefined; missing: string[] } {
  const missing: string[] = [];
  const out = layers.map((l) => {
    const e = effects.get(l.name);
    return {
      ...l,
      options: l.options.map((o) => {
        if (o.label === 'keep') return { ...o, error: 0 };
        const v = e?.get(o.label);
        if (v === undefined || !Number.isFinite(v) || v < 0) missing.push(`${l.name}: ${o.label}`);
        return { ...o, error: v ?? NaN };
      }),
    };
  });
  return missing.length ? { missing } : { layers: out, missing: [] };
}

/** The plan of one assignment (option index per weight); `errorKind` says what its predicted error sums (weight space by default). */
export function planOf(target: PlanTarget, layers: readonly PlanLayer[], options: ArrayLike<number>, model?: string, budget?: Plan['budget'], errorKind: string = WEIGHT_SPACE_ERROR): Plan {
  const tensors: Record<string, string> = {};
  let bytes = 0;
  let error = 0;
  layers.forEach((l, i) => {
    const o = l.options[options[i]];
    tensors[l.name] = o.label;
    bytes += o.bytes;
    error += o.error;
  });
  const plan: Plan = { schema: PLAN_SCHEMA, target, tensors, predicted: { bytes, error, errorKind } };
  if (model) plan.model = model;
  if (budget) plan.budget = budget;
  return plan;
}

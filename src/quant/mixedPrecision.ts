/**
 * Per-layer bit-width search under a size budget: a multiple-choice knapsack
 * (pick exactly one option per layer, minimise the summed predicted error,
 * keep the summed bytes within the budget) solved exactly by dynamic
 * programming over a discretized budget, plus the whole bytes-vs-error
 * Pareto frontier for the chart.
 *
 * Discretization. Bytes are counted in units of u and every option's cost is
 * rounded UP to whole units, c = ceil(bytes / u); the DP allows Σc ≤ C cells.
 * - Exact mode: when every option's bytes is an integer and the budget
 *   divided by g = gcd(all option bytes) fits in `maxCells`, u = g and
 *   c = bytes / g exactly, so the DP is the exact optimum.
 * - Grid mode: otherwise u = budget / C with C = maxCells. Because c·u ≥
 *   bytes, any assignment the DP accepts has Σbytes ≤ Σc·u ≤ C·u = budget:
 *   the answer never exceeds the budget. Because c < bytes/u + 1, any
 *   assignment with Σbytes ≤ budget − m·u (m = number of decision items after
 *   tying) has Σc < (budget − m·u)/u + m = C, so the DP considers it: the
 *   returned error is at most OPT(budget − m·u), and at least OPT(budget).
 *   `discretization.boundBudget` reports budget − m·u; with the default 65536
 *   cells and 200 layers that is within 0.3 % of the budget.
 */
import { QuantSpec, quantize } from './rtn';
import { storageBytes } from './configs';
import { FORMAT_BITS } from './numberFormats';

export interface LayerOption {
  /** e.g. "int4-g128", "int8", "f16"; tied layers share options by label. */
  label: string;
  bits: number;
  /** Storage including scales and zero points. */
  bytes: number;
  /** Predicted error (additive across layers, e.g. output MSE × sensitivity). */
  error: number;
}

export interface LayerChoices {
  name: string;
  /** Parameter count; required for an average-bits budget. */
  params?: number;
  options: LayerOption[];
}

export interface SearchConstraints {
  budgetBytes?: number;
  /** Budget as average bits per parameter over all layers (uses `params`). */
  averageBits?: number;
  /** Layers that must stay at 16 bits or more (only their options with bits >= 16 are kept). */
  pinned16?: string[];
  /** Options narrower than this are dropped (pinned layers excepted). */
  minBits?: number;
  /** Groups of layers that must take options with the same label (q/k/v of one block). */
  tied?: string[][];
  /** Budget grid resolution (cells); default 65536. */
  maxCells?: number;
}

export interface Assignment {
  /** Index into `layers[i].options` for every layer, in input order. */
  options: number[];
  bytes: number;
  error: number;
}

export interface Discretization {
  /** Bytes per DP cell. */
  unit: number;
  cells: number;
  /** True when costs are whole multiples of the unit (the DP optimum is the exact optimum). */
  exact: boolean;
  /** Decision items after tying (m in the bound). */
  items: number;
  /** The returned error is no worse than the exact optimum at this budget (budget − m·unit; = budget when exact). */
  boundBudget: number;
}

export interface SearchResult {
  budgetBytes: number;
  /** Null when no assignment fits the budget. */
  best: Assignment | null;
  discretization: Discretization;
}

/** One knapsack decision: a single layer, or a tied group choosing one label. */
interface Item {
  members: number[];
  /** For each item option: bytes, error and the option index per member. */
  bytes: number[];
  error: number[];
  memberOptions: number[][];
}

function buildItems(layers: readonly LayerChoices[], c: SearchConstraints): Item[] {
  const byName = new Map<string, number>();
  layers.forEach((l, i) => {
    if (byName.has(l.name)) throw new RangeError(`mixed precision: layer '${l.name}' appears twice`);
    byName.set(l.name, i);
    l.options.forEach((o) => {
      if (!(o.bytes >= 0) || !Number.isFinite(o.bytes)) throw new RangeError(`mixed precision: layer '${l.name}' option '${o.label}' has bad bytes ${o.bytes}`);
      if (!Number.isFinite(o.error)) throw new RangeError(`mixed precision: layer '${l.name}' option '${o.label}' has non-finite error`);
    });
  });
  const pinned = new Set(c.pinned16 ?? []);
  for (const p of pinned) if (!byName.has(p)) throw new RangeError(`mixed precision: pinned layer '${p}' is not among the layers`);
  const allowed: number[][] = layers.map((l) => {
    const keep: number[] = [];
    l.options.forEach((o, j) => {
      if (pinned.has(l.name) ? o.bits >= 16 : o.bits >= (c.minBits ?? 0)) keep.push(j);
    });
    if (keep.length === 0) {
      throw new RangeError(`mixed precision: layer '${l.name}' has no option left (${pinned.has(l.name) ? 'pinned to 16-bit' : `minimum width ${c.minBits}`})`);
    }
    return keep;
  });
  const inGroup = new Set<number>();
  const items: Item[] = [];
  for (const group of c.tied ?? []) {
    const members = group.map((n) => {
      const i = byName.get(n);
      if (i === undefined) throw new RangeError(`mixed precision: tied layer '${n}' is not among the layers`);
      if (inGroup.has(i)) throw new RangeError(`mixed precision: layer '${n}' is in more than one tied group`);
      inGroup.add(i);
      return i;
    });
    // Labels every member allows.
    const labels = allowed[members[0]].map((j) => layers[members[0]].options[j].label)
      .filter((lab) => members.every((m) => allowed[m].some((j) => layers[m].options[j].label === lab)));
    if (labels.length === 0) throw new RangeError(`mixed precision: tied layers ${group.join(', ')} share no allowed option label`);
    const item: Item = { members, bytes: [], error: [], memberOptions: [] };
    for (const lab of labels) {
      const idx = members.map((m) => allowed[m].find((j) => layers[m].options[j].label === lab)!);
      let b = 0;
      let e = 0;
      members.forEach((m, t) => {
        b += layers[m].options[idx[t]].bytes;
        e += layers[m].options[idx[t]].error;
      });
      item.bytes.push(b);
      item.error.push(e);
      item.memberOptions.push(idx);
    }
    items.push(item);
  }
  layers.forEach((l, i) => {
    if (inGroup.has(i)) return;
    items.push({
      members: [i],
      bytes: allowed[i].map((j) => l.options[j].bytes),
      error: allowed[i].map((j) => l.options[j].error),
      memberOptions: allowed[i].map((j) => [j]),
    });
  });
  for (const it of items) if (it.bytes.length > 255) throw new RangeError('mixed precision: at most 255 options per layer');
  return items;
}

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

function discretize(items: Item[], capacityBytes: number, maxCells: number): { unit: number; cells: number; exact: boolean; cost: number[][] } {
  let g = 0;
  let integral = true;
  for (const it of items) for (const b of it.bytes) {
    if (!Number.isInteger(b)) integral = false;
    else g = gcd(g, b);
  }
  if (integral && g > 0 && Math.floor(capacityBytes / g) <= maxCells) {
    return { unit: g, cells: Math.floor(capacityBytes / g), exact: true, cost: items.map((it) => it.bytes.map((b) => b / g)) };
  }
  if (integral && g === 0) return { unit: 1, cells: 0, exact: true, cost: items.map((it) => it.bytes.map(() => 0)) };
  const cells = maxCells;
  const unit = capacityBytes / cells;
  const cost = items.map((it) => it.bytes.map((b) => {
    let c = Math.ceil(b / unit);
    while (c * unit < b) c++; // float division may land just below; the budget guarantee needs c·u ≥ bytes
    return c;
  }));
  return { unit, cells, exact: false, cost };
}

/** min Σerror with Σcost ≤ c for every c in 0..cells; choice[i][c] = option of item i. */
function knapsack(items: Item[], cost: number[][], cells: number): { dp: Float64Array; choice: Uint8Array[] } {
  let dp = new Float64Array(cells + 1); // no items: error 0 at any capacity
  const choice: Uint8Array[] = [];
  for (let i = 0; i < items.length; i++) {
    const nd = new Float64Array(cells + 1).fill(Infinity);
    const ch = new Uint8Array(cells + 1);
    const err = items[i].error;
    for (let j = 0; j < err.length; j++) {
      const w = cost[i][j];
      const e = err[j];
      for (let c = w; c <= cells; c++) {
        const v = dp[c - w] + e;
        if (v < nd[c]) {
          nd[c] = v;
          ch[c] = j;
        }
      }
    }
    dp = nd;
    choice.push(ch);
  }
  return { dp, choice };
}

function backtrack(layers: readonly LayerChoices[], items: Item[], cost: number[][], choice: Uint8Array[], c: number): Assignment {
  const options = new Array<number>(layers.length).fill(-1);
  for (let i = items.length - 1; i >= 0; i--) {
    const j = choice[i][c];
    items[i].members.forEach((m, t) => (options[m] = items[i].memberOptions[j][t]));
    c -= cost[i][j];
  }
  return evaluate(layers, options);
}

/** Bytes and error of an explicit assignment. */
export function evaluate(layers: readonly LayerChoices[], options: number[]): Assignment {
  let bytes = 0;
  let error = 0;
  layers.forEach((l, i) => {
    const o = l.options[options[i]];
    bytes += o.bytes;
    error += o.error;
  });
  return { options: options.slice(), bytes, error };
}

function budgetOf(layers: readonly LayerChoices[], c: SearchConstraints): number {
  if (c.budgetBytes !== undefined) {
    if (!(c.budgetBytes >= 0)) throw new RangeError(`mixed precision: budget ${c.budgetBytes} bytes is not a non-negative number`);
    return c.budgetBytes;
  }
  if (c.averageBits !== undefined) {
    let params = 0;
    for (const l of layers) {
      if (l.params === undefined) throw new RangeError(`mixed precision: an average-bits budget needs params on every layer ('${l.name}' has none)`);
      params += l.params;
    }
    return (c.averageBits * params) / 8;
  }
  throw new RangeError('mixed precision: give budgetBytes or averageBits');
}

/** The assignment with the least total predicted error whose bytes fit the budget. */
export function searchMixedPrecision(layers: readonly LayerChoices[], constraints: SearchConstraints): SearchResult {
  const budget = budgetOf(layers, constraints);
  const items = buildItems(layers, constraints);
  const d = discretize(items, budget, constraints.maxCells ?? 65536);
  const { dp, choice } = knapsack(items, d.cost, d.cells);
  const discretization: Discretization = {
    unit: d.unit, cells: d.cells, exact: d.exact, items: items.length,
    boundBudget: d.exact ? budget : budget - items.length * d.unit,
  };
  if (!Number.isFinite(dp[d.cells])) return { budgetBytes: budget, best: null, discretization };
  return { budgetBytes: budget, best: backtrack(layers, items, d.cost, choice, d.cells), discretization };
}

/**
 * Pareto frontier of (bytes, error) over all budgets from the smallest to the
 * largest feasible size: bytes strictly increasing, error strictly
 * decreasing. Exact when costs discretize exactly (see the file comment);
 * otherwise each point is a real assignment, and the set is filtered to be
 * non-dominated among the points found.
 */
export function paretoFrontier(
  layers: readonly LayerChoices[],
  constraints: Omit<SearchConstraints, 'budgetBytes' | 'averageBits'> & {
    /**
     * Upper bound on returned points (default 2000): beyond it, frontier
     * cells are sampled evenly, keeping both ends. Each point carries one
     * option index per layer, so an unbounded frontier of a large model
     * would cost cells × layers memory.
     */
    maxPoints?: number;
  } = {},
): Assignment[] {
  const items = buildItems(layers, constraints);
  let cap = 0;
  for (const it of items) cap += Math.max(...it.bytes);
  const d = discretize(items, cap, constraints.maxCells ?? 65536);
  const { dp, choice } = knapsack(items, d.cost, d.cells);
  const cells: number[] = [];
  let last = Infinity;
  for (let c = 0; c <= d.cells; c++) {
    if (dp[c] < last) {
      last = dp[c];
      cells.push(c);
    }
  }
  const maxPoints = Math.max(2, constraints.maxPoints ?? 2000);
  let picked = cells;
  if (cells.length > maxPoints) {
    picked = [];
    for (let i = 0; i < maxPoints; i++) picked.push(cells[Math.round((i * (cells.length - 1)) / (maxPoints - 1))]);
  }
  const points = picked.map((c) => backtrack(layers, items, d.cost, choice, c));
  points.sort((a, b) => a.bytes - b.bytes || a.error - b.error);
  const out: Assignment[] = [];
  for (const p of points) {
    if (out.length === 0 || (p.error < out[out.length - 1].error && p.bytes > out[out.length - 1].bytes)) out.push(p);
  }
  return out;
}

/**
 * Candidate options for one layer: quantize the weight with each spec, and
 * score it by `errorOf(weights, dequantized)` (default: summed squared
 * weight error, which adds across layers; pass an output-error or
 * sensitivity-weighted function when activations are known).
 */
export function layerOptions(
  w: Float32Array, shape: readonly number[],
  candidates: readonly { label: string; spec: QuantSpec; scaleBytes?: number }[],
  errorOf: (w: Float32Array, dequantized: Float32Array) => number = sumSquaredError,
): LayerOption[] {
  return candidates.map(({ label, spec, scaleBytes }) => {
    const deq = quantize(w, shape, spec).dequantized;
    const bits = spec.format === 'int' || spec.format === 'uint' ? spec.bits ?? 8 : FORMAT_BITS[spec.format];
    return { label, bits, bytes: storageBytes(shape, spec, { scaleBytes }), error: errorOf(w, deq) };
  });
}

function sumSquaredError(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    s += d * d;
  }
  return s;
}

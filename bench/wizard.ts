/**
 * `npm run bench -- wizard --json`: the Quantize wizard's knapsack on a
 * 7B-shaped plan problem (Llama-2-7B's 291 tensors: 32 blocks of q/k/v/o,
 * gate/up/down and two norms, the embedding, the final norm and the output
 * head; 8 options each: keep as f16 and seven configs), timed in this thread
 * and as a pool job (what the wizard runs, off the extension host's thread).
 */
import { solveFrontier, withOutputEffects, type PlanLayer } from '../src/analysis/planFrontier';
import { WorkerPool } from '../src/jobs/pool';
import { pointAtBudget } from '../src/shared/protocol/wizard';

/** Deterministic 0..1 numbers (a small LCG): the same problem every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

export function llama7bProblem(): PlanLayer[] {
  const d = 4096, ff = 11008, vocab = 32000;
  const shapes: [string, number][] = [];
  shapes.push(['token_embd.weight', vocab * d]);
  for (let b = 0; b < 32; b++) {
    for (const r of ['attn_q', 'attn_k', 'attn_v', 'attn_output']) shapes.push([`blk.${b}.${r}.weight`, d * d]);
    for (const r of ['ffn_gate', 'ffn_up', 'ffn_down']) shapes.push([`blk.${b}.${r}.weight`, d * ff]);
    shapes.push([`blk.${b}.attn_norm.weight`, d], [`blk.${b}.ffn_norm.weight`, d]);
  }
  shapes.push(['output_norm.weight', d], ['output.weight', vocab * d]);
  // bits per weight of seven configs (codes plus scales), as the catalogue's int8/int6/int5/int4 g32,g128/int3/int2 lay them out.
  const configs: [string, number][] = [['int8-g128', 8.25], ['int6-g64', 6.5], ['int5-g64', 5.5], ['int4-g32', 5], ['int4-g128', 4.25], ['int3-g64', 3.5], ['int2-g64', 2.5]];
  const r = rng(7);
  return shapes.map(([name, params]) => {
    const scale = params * (0.5 + r());
    return {
      name, params,
      options: [{ label: 'keep', bytes: 2 * params, error: 0 }, ...configs.map(([label, bpw]) => ({ label, bytes: Math.ceil((params * bpw) / 8), error: scale * 4 ** -(bpw - 2) * (0.8 + 0.4 * r()) }))],
    };
  });
}

export async function run(): Promise<Record<string, unknown>> {
  const layers = llama7bProblem();
  const options = layers.reduce((a, l) => a + l.options.length, 0) / layers.length;
  const params = layers.reduce((a, l) => a + l.params, 0);
  solveFrontier(layers); // warm-up (JIT)
  const times: number[] = [];
  let f = solveFrontier(layers);
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    f = solveFrontier(layers);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const pool = new WorkerPool({ size: 1 });
  const jobTimes: number[] = [];
  try {
    await pool.run({ kind: 'planFrontier', layers, edits: { pinned: [], forced: {}, tied: [] } });
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      await pool.run({ kind: 'planFrontier', layers, edits: { pinned: [], forced: {}, tied: [] } });
      jobTimes.push(performance.now() - t0);
    }
  } finally {
    await pool.close();
  }
  jobTimes.sort((a, b) => a - b);
  // The same problem over output-space effects (withOutputEffects): small, and not monotone in the bits (an 8-bit config may move the output more than a 6-bit one).
  const r = rng(11);
  const effects = new Map(layers.map((l) => [l.name, new Map(l.options.slice(1).map((o) => [o.label, 1e-7 * (0.2 + r()) * (o.error / l.params) * (r() < 0.1 ? 3 : 1)]))]));
  const outLayers = withOutputEffects(layers, effects).layers!;
  const outTimes: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    solveFrontier(outLayers);
    outTimes.push(performance.now() - t0);
  }
  outTimes.sort((a, b) => a - b);
  // For comparison: the DP over every budget on the default 65536-cell grid (not exact at this size).
  const td = performance.now();
  const dp = solveFrontier(layers, undefined, 400, 'dp');
  const dpMs = performance.now() - td;
  const t0 = performance.now();
  const k = pointAtBudget(f.points, (4.5 * params) / 8);
  const pickUs = (performance.now() - t0) * 1000;
  return {
    wizard_tensors: layers.length,
    wizard_options_per_tensor: options,
    wizard_frontier_method: f.method,
    wizard_frontier_points: f.points.length,
    wizard_frontier_ms_median: Number(times[2].toFixed(1)),
    wizard_frontier_job_ms_median: Number(jobTimes[2].toFixed(1)),
    wizard_frontier_output_space_ms_median: Number(outTimes[2].toFixed(1)),
    wizard_dp_grid_ms: Number(dpMs.toFixed(0)),
    wizard_dp_grid_bpw_at_4_5: Number(((8 * dp.points[pointAtBudget(dp.points, (4.5 * params) / 8)].bytes) / params).toFixed(3)),
    wizard_dp_grid_error_at_4_5: Number(dp.points[pointAtBudget(dp.points, (4.5 * params) / 8)].error.toPrecision(6)),
    wizard_hull_error_at_4_5: Number(f.points[k].error.toPrecision(6)),
    wizard_budget_pick_us: Number(pickUs.toFixed(1)),
    wizard_plan_bpw_at_4_5: Number(((8 * f.points[k].bytes) / params).toFixed(3)),
  };
}

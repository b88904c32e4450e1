/**
 * `--target safetensors-gptq | safetensors-compressed --budget-bpw X | --budget-mb N`:
 * per Linear weight of the transformer blocks, keep it or write it with one
 * of the target's configs (configsFor: int2/4/8 in groups). Every option is
 * quantized exactly as the writer quantizes it (the `hfqWeight` job:
 * round-to-nearest with the scale rounded to its stored type), so its bytes
 * are the parts the checkpoint will hold and its error is the written codes'
 * weight-space error. The knapsack picks per weight; the plan goes to the
 * ordinary --plan path (GPTQ `dynamic` / compressed-tensors config groups).
 * The budget covers the planned weights, as for the ONNX targets.
 */
import { openModel } from '../formats/index';
import type { TensorInfo } from '../formats/types';
import { writeFileAtomicSync } from '../formats/atomicWrite';
import { configsFor, nbitsChoice, type Plan } from '../quant/plan';
import { quantizeHfWeight, type HfWeightResult, type SafetensorsTarget, type WeightScheme } from '../quant/hfQuantize';
import type { LayerChoices } from '../quant/mixedPrecision';
import { planFromChoices, type Budget, type BudgetPlanResult } from '../analysis/budgetPlan';
import type { WorkerPool } from '../jobs/pool';
import { ConvertInputError } from './errors';
import { isBlockLinear, resolveCheckpoint } from './convertSafetensors';

export const SAFETENSORS_BUDGET_ERROR = 'weight-space squared error of the written codes (round-to-nearest as the writer stores them), summed over the planned weights';

/** Whether `target` can write a [out, inF] weight with this scheme (groups divide the input; GPTQ packs along both dims). */
export function schemeFits(target: SafetensorsTarget, s: WeightScheme, out: number, inF: number): boolean {
  if (inF % s.groupSize !== 0) return false;
  const per = 32 / s.bits;
  return target !== 'safetensors-gptq' || (inF % per === 0 && out % per === 0);
}

export async function safetensorsBudgetPlan(
  source: string, target: SafetensorsTarget, budget: Budget,
  o: { exclude?: string; pool?: WorkerPool; signal?: AbortSignal; output: string; planOut?: string; overwrite?: boolean; onTensor?: (done: number, total: number) => void },
): Promise<{ plan: Plan; file: string; uniform: BudgetPlanResult['uniform'] }> {
  const { entry } = resolveCheckpoint(source);
  const model = openModel(entry);
  try {
    const ex = o.exclude ? new RegExp(o.exclude) : undefined;
    const todo = model.tensors.filter((t) => isBlockLinear(t) && !ex?.test(t.name));
    if (todo.length === 0) throw new ConvertInputError(`${entry}: no Linear weight of a transformer block to plan`);
    // As the writer decides: compressed-tensors stores bf16 scales for a bf16 checkpoint.
    const scaleType: 'f16' | 'bf16' = target === 'safetensors-compressed' && todo.some((t) => t.dtype === 'bf16') ? 'bf16' : 'f16';
    const ids = configsFor(target).map((c) => c.id);
    let done = 0;
    const measure = (t: TensorInfo, s: WeightScheme): Promise<HfWeightResult> => o.pool
      ? o.pool.run({ kind: 'hfqWeight', source: { kind: 'file', path: entry, tensor: t.name }, target, scheme: s, scaleType }, { signal: o.signal })
      : Promise.resolve(quantizeHfWeight(model, t, target, s, scaleType));
    const choices: LayerChoices[] = await Promise.all(todo.map(async (t) => {
      const [out, inF] = t.layer.outputChannelAxis === 1 ? [t.shape[1], t.shape[0]] : t.shape;
      const options = [{ label: 'keep', bits: (8 * t.byteLength) / t.numel, bytes: t.byteLength, error: 0 }];
      for (const id of ids) {
        const c = nbitsChoice(id);
        const s: WeightScheme = { bits: c.bits, groupSize: c.blockSize, symmetric: c.symmetric };
        if (!schemeFits(target, s, out, inF)) continue;
        const r = await measure(t, s);
        const bytes = r.parts.reduce((a, p) => a + p.byteLength, 0);
        options.push({ label: id, bits: (8 * bytes) / t.numel, bytes, error: r.errSum });
      }
      o.onTensor?.(++done, todo.length);
      return { name: t.name, params: t.numel, options };
    }));
    const constraints = 'bitsPerWeight' in budget ? { averageBits: budget.bitsPerWeight } : { budgetBytes: budget.bytes };
    let r: BudgetPlanResult;
    try {
      r = planFromChoices(target, choices, constraints, budget, SAFETENSORS_BUDGET_ERROR, undefined, ids);
    } catch (e) {
      throw new ConvertInputError(`${entry}: ${e instanceof Error ? e.message : String(e)}`);
    }
    const file = o.planOut ?? `${o.output.replace(/[\\/]+$/, '')}.plan.json`;
    writeFileAtomicSync(file, JSON.stringify(r.plan, null, 2) + '\n', { overwrite: !!o.overwrite });
    return { plan: r.plan, file, uniform: r.uniform };
  } finally {
    model.close();
  }
}

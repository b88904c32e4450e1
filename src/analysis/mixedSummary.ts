/**
 * The overview's "best mixed assignment": per-layer formats chosen by the
 * exact knapsack search (src/quant/mixedPrecision) under a default budget,
 * from the weight-space sensitivity table. Pure: no vscode import.
 */
import type { TensorSensitivity } from './sensitivity';
import { searchMixedPrecision, type LayerChoices } from '../quant/mixedPrecision';
import { referenceConfig } from '../quant/configs';
import type { MixedSummary } from '../shared/protocol/inspector';

/** Default budget: average bits per quantizable weight, scales and zero points included (about llama.cpp's Q4_K_M). */
export const DEFAULT_MIXED_BITS = 4.5;

/**
 * Predicted error of a layer = its total squared weight error (MSE × elements),
 * additive across layers; keeping the layer as stored costs 0.
 */
export function mixedAssignment(
  layers: { name: string; bytes: number; sens: TensorSensitivity }[],
  keptBytes: number,
  averageBits = DEFAULT_MIXED_BITS,
): MixedSummary | undefined {
  if (layers.length === 0) return undefined;
  const choices: LayerChoices[] = layers.map((l) => ({
    name: l.name,
    params: l.sens.numel,
    options: [
      { label: 'as stored', bits: (8 * l.bytes) / l.sens.numel, bytes: l.bytes, error: 0 },
      ...l.sens.configs.map((c) => ({ label: c.config, bits: c.bitsPerWeight, bytes: c.bytes, error: c.mse * l.sens.numel })),
    ],
  }));
  const r = searchMixedPrecision(choices, { averageBits });
  if (!r.best) return undefined;
  const counts: Record<string, number> = {};
  choices.forEach((c, i) => {
    const label = c.options[r.best!.options[i]].label;
    counts[label] = (counts[label] ?? 0) + 1;
  });
  // Uniform reference INT4 for comparison: the error the search is meant to beat at a similar size.
  const int4 = referenceConfig('int4');
  let int4Error = 0;
  let int4Bytes = 0;
  for (const l of layers) {
    const c = l.sens.configs.find((k) => k.config === int4.id);
    if (!c) return undefined;
    int4Error += c.mse * l.sens.numel;
    int4Bytes += c.bytes;
  }
  return {
    averageBits,
    budgetBytes: r.budgetBytes,
    weightBytes: r.best.bytes,
    modelBytes: keptBytes + r.best.bytes,
    error: r.best.error,
    int4g128Error: int4Error,
    int4g128Bytes: int4Bytes,
    counts,
    exact: r.discretization.exact,
  };
}

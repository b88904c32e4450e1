/**
 * Export Plan: a plan as the files other tools read, each a string to write.
 * - the project's plan JSON (quantscope/plan/v1, what `quantscope quantize --plan` reads);
 * - ONNX Runtime quantizer settings: `nodes_to_exclude` (ONNX node names from
 *   the graph) and `tensor_quant_overrides` (initializer names), from `ortOverrides`;
 * - llama.cpp: the `llama-quantize` command line with one `--tensor-type` per
 *   planned tensor, from `llamaCppTensorTypeArgs`, quoted for a POSIX shell.
 */
import { llamaCppTensorTypeArgs, ortOverrides, type Plan } from './plan';

export type PlanExportFormat = 'plan' | 'ort' | 'llamacpp';

export interface PlanExport {
  /** Suggested file name suffix (added to the model's base name). */
  suffix: string;
  content: string;
}

/** POSIX shell single quoting: the argument exactly, whatever it holds. */
export function shellQuote(s: string): string {
  return /^[A-Za-z0-9_./=:,+-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * One export of a plan. `consumers(tensor)` lists the ONNX node names that
 * read a tensor (the graph's, see formats/onnx/reader.ts); `llama` gives the
 * source, output and base preset of the llama-quantize line.
 */
export function exportPlan(plan: Plan, format: PlanExportFormat, ctx: { consumers?: (tensor: string) => string[]; llama?: { source: string; output: string; preset: string } } = {}): PlanExport {
  switch (format) {
    case 'plan':
      return { suffix: '.plan.json', content: JSON.stringify(plan, null, 2) + '\n' };
    case 'ort': {
      if (plan.target === 'gguf') throw new RangeError('ONNX Runtime settings are for ONNX plans; this plan is for gguf');
      const o = ortOverrides(plan, ctx.consumers ?? (() => []));
      return { suffix: '.ort-quant.json', content: JSON.stringify(o, null, 2) + '\n' };
    }
    case 'llamacpp': {
      if (plan.target !== 'gguf') throw new RangeError(`llama.cpp --tensor-type arguments are for gguf plans; this plan is for ${plan.target}`);
      const l = ctx.llama ?? { source: 'model-F16.gguf', output: 'model-quantized.gguf', preset: plan.default ?? 'Q4_K_M' };
      const args = ['llama-quantize', ...llamaCppTensorTypeArgs(plan), l.source, l.output, l.preset];
      return { suffix: '.llama-quantize.sh', content: args.map(shellQuote).join(' ') + '\n' };
    }
  }
}

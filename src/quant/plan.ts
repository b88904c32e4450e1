/**
 * A quantization plan: which choice each tensor gets, as data. The knapsack
 * search writes one, the CLI and the wizard read and edit it, the converters
 * consume it, and it exports to the forms other tools read (ONNX Runtime's
 * `nodes_to_exclude` / `tensor_quant_overrides`, llama.cpp's `--tensor-type`).
 *
 * The file is JSON, versioned by its `schema` field (`quantscope/plan/v1`,
 * documented in the README and in schemas/plan.v1.json):
 *   {
 *     "schema": "quantscope/plan/v1",
 *     "target": "onnx-int4" | "onnx-qdq" | "onnx-dynamic" | "gguf",
 *     "model": "model.onnx",                       (informational)
 *     "default": CHOICE,                           (optional: tensors not listed)
 *     "tensors": { "<tensor name>": CHOICE, ... },
 *     "predicted": { "bytes": n, "error": x, "errorKind": "..." },   (optional, how it was made)
 *     "budget": { "bitsPerWeight": x } | { "bytes": n }              (optional)
 *   }
 * CHOICE is "keep" (leave the tensor as it is), a config id of the catalogue
 * (src/quant/configs.ts) for the ONNX targets, or a ggml type name (Q4_K, Q6_K,
 * F16, ...) for gguf.
 */
import { CONFIGS, configBytes, configById, type QuantConfig } from './configs';

export const PLAN_SCHEMA = 'quantscope/plan/v1';

export type PlanTarget = 'onnx-int4' | 'onnx-qdq' | 'onnx-dynamic' | 'gguf' | 'safetensors-gptq' | 'safetensors-compressed';
export const PLAN_TARGETS: readonly PlanTarget[] = ['onnx-int4', 'onnx-qdq', 'onnx-dynamic', 'gguf', 'safetensors-gptq', 'safetensors-compressed'];

export interface Plan {
  schema: typeof PLAN_SCHEMA;
  target: PlanTarget;
  model?: string;
  default?: string;
  tensors: Record<string, string>;
  predicted?: { bytes: number; error: number; errorKind: string };
  budget?: { bitsPerWeight: number } | { bytes: number };
}

/** Every problem with a plan file is one of these: it names the file and what is wrong. */
export class PlanError extends Error {
  constructor(readonly file: string, problem: string) {
    super(`${file}: ${problem}`);
    this.name = 'PlanError';
  }
}

/** ggml types a GGUF plan may name (those our encoders write, and the float types). */
export const GGUF_PLAN_TYPES: readonly string[] = ['F32', 'F16', 'BF16', 'Q8_0', 'Q6_K', 'Q5_K', 'Q5_1', 'Q5_0', 'Q4_K', 'Q4_1', 'Q4_0', 'Q3_K', 'Q2_K'];

/** Catalogue configs a target writes exactly (same grid, group and symmetry), for plans and the budget search. */
export function configsFor(target: PlanTarget): QuantConfig[] {
  switch (target) {
    case 'onnx-int4':
    case 'safetensors-gptq':
    case 'safetensors-compressed':
      // MatMulNBits; GPTQ and compressed-tensors pack 2, 4 or 8 bits per int32 the same way: 2, 4 or 8 bits per element, blocks along K, a zero point per block when asymmetric.
      return CONFIGS.filter((c) => c.format === 'int' && c.granularity === 'group' && (c.bits === 2 || c.bits === 4 || c.bits === 8));
    case 'onnx-qdq':
      return CONFIGS.filter((c) => c.format === 'int' && c.bits === 8 && c.granularity === 'channel');
    case 'onnx-dynamic':
    case 'gguf':
      return [];
  }
}

function choiceProblem(target: PlanTarget, choice: unknown): string | undefined {
  if (typeof choice !== 'string' || choice.length === 0 || choice.length > 64) return 'a choice must be a non-empty string';
  if (choice === 'keep') return undefined;
  if (target === 'gguf') {
    return GGUF_PLAN_TYPES.includes(choice) ? undefined : `'${choice}' is not a ggml type this tool writes (${GGUF_PLAN_TYPES.join(', ')}, or keep)`;
  }
  const ok = configsFor(target).map((c) => c.id);
  if (target === 'onnx-dynamic') return `target onnx-dynamic takes only "keep" per tensor (every other MatMul weight is dynamic int8)`;
  return ok.includes(choice) ? undefined : `'${choice}' cannot be written by ${target} (it writes ${ok.join(', ')}, or keep)`;
}

/**
 * Validates a parsed plan. `file` names it in errors; `tensorNames`, when
 * given, are the model's: a plan naming a tensor the model lacks is refused.
 */
export function parsePlan(raw: unknown, file: string, tensorNames?: ReadonlySet<string>): Plan {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new PlanError(file, 'a plan is a JSON object');
  const p = raw as Record<string, unknown>;
  if (p.schema !== PLAN_SCHEMA) throw new PlanError(file, `"schema" must be "${PLAN_SCHEMA}" (got ${JSON.stringify(p.schema)})`);
  if (typeof p.target !== 'string' || !PLAN_TARGETS.includes(p.target as PlanTarget)) {
    throw new PlanError(file, `"target" must be one of ${PLAN_TARGETS.join(', ')} (got ${JSON.stringify(p.target)})`);
  }
  const target = p.target as PlanTarget;
  if (typeof p.tensors !== 'object' || p.tensors === null || Array.isArray(p.tensors)) throw new PlanError(file, '"tensors" must be an object of tensor name → choice');
  const tensors: Record<string, string> = Object.create(null);
  const entries = Object.entries(p.tensors as Record<string, unknown>);
  if (entries.length > 1_000_000) throw new PlanError(file, `${entries.length} tensors is more than any model has`);
  for (const [name, choice] of entries) {
    if (tensorNames && !tensorNames.has(name)) throw new PlanError(file, `tensor '${name}' is not in the model`);
    const why = choiceProblem(target, choice);
    if (why) throw new PlanError(file, `tensor '${name}': ${why}`);
    tensors[name] = choice as string;
  }
  const plan: Plan = { schema: PLAN_SCHEMA, target, tensors };
  if (p.default !== undefined) {
    const why = choiceProblem(target, p.default);
    if (why) throw new PlanError(file, `"default": ${why}`);
    plan.default = p.default as string;
  }
  if (typeof p.model === 'string') plan.model = p.model;
  const pr = p.predicted as Record<string, unknown> | undefined;
  if (pr && typeof pr.bytes === 'number' && typeof pr.error === 'number' && typeof pr.errorKind === 'string') plan.predicted = { bytes: pr.bytes, error: pr.error, errorKind: pr.errorKind };
  const b = p.budget as Record<string, unknown> | undefined;
  if (b && typeof b.bitsPerWeight === 'number') plan.budget = { bitsPerWeight: b.bitsPerWeight };
  else if (b && typeof b.bytes === 'number') plan.budget = { bytes: b.bytes };
  return plan;
}

/** The choice of one tensor (its own entry, else the plan's default, else undefined: the converter's default). */
export function planChoice(plan: Plan, tensor: string): string | undefined {
  return plan.tensors[tensor] ?? plan.default;
}

/** MatMulNBits settings of a catalogue config (onnx-int4). */
export function nbitsChoice(id: string): { bits: 2 | 4 | 8; blockSize: number; symmetric: boolean } {
  const c = configById(id);
  if (c.format !== 'int' || c.granularity !== 'group' || !(c.bits === 2 || c.bits === 4 || c.bits === 8)) throw new RangeError(`config ${id} is not a MatMulNBits layout`);
  return { bits: c.bits, blockSize: c.groupSize ?? 128, symmetric: c.symmetric };
}

/**
 * Bytes a weight takes when the target writes it with a config: for
 * onnx-int4 MatMulNBits' exact layout (codes padded to whole blocks along K,
 * one scale per block, zero points packed per column), else the catalogue's
 * formula.
 */
export function targetBytes(target: PlanTarget, id: string, shape: readonly number[], outputChannelAxis: number | undefined, dtype: string): number {
  const c = configById(id);
  if (target === 'onnx-int4' && c.granularity === 'group' && shape.length === 2) {
    const axis = outputChannelAxis === undefined ? 1 : outputChannelAxis < 0 ? outputChannelAxis + 2 : outputChannelAxis;
    const N = shape[axis], K = shape[1 - axis];
    const bs = c.groupSize ?? 128;
    const nb = Math.ceil(K / bs);
    const scale = dtype === 'f16' || dtype === 'bf16' ? 2 : 4;
    return N * nb * ((bs * c.bits) / 8) + N * nb * scale + (c.symmetric ? 0 : N * Math.ceil((nb * c.bits) / 8));
  }
  return configBytes(c, shape, outputChannelAxis, dtype);
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** llama.cpp quantize arguments for a GGUF plan: one `--tensor-type ^name$=TYPE` per listed tensor ("keep" is left out). */
export function llamaCppTensorTypeArgs(plan: Plan): string[] {
  if (plan.target !== 'gguf') throw new RangeError(`--tensor-type arguments are for gguf plans, not ${plan.target}`);
  const out: string[] = [];
  for (const [name, choice] of Object.entries(plan.tensors)) if (choice !== 'keep') out.push('--tensor-type', `^${escapeRegex(name)}$=${choice.toLowerCase()}`);
  return out;
}

/**
 * ONNX Runtime quantizer settings for an ONNX plan: `nodes_to_exclude` holds
 * the ONNX node names that consume a kept weight (node names, not framework
 * module names), `tensor_quant_overrides` the per-tensor settings by
 * initializer name, in the form quantize_static / MatMulNBitsQuantizer take.
 */
export function ortOverrides(plan: Plan, consumers: (tensor: string) => string[]): { nodes_to_exclude: string[]; tensor_quant_overrides: Record<string, { bits?: number; block_size?: number; symmetric?: boolean; axis?: number; quant_type?: string }[]> } {
  if (plan.target === 'gguf') throw new RangeError('ONNX Runtime settings are for ONNX plans, not gguf');
  const exclude = new Set<string>();
  const overrides: Record<string, { bits?: number; block_size?: number; symmetric?: boolean; axis?: number; quant_type?: string }[]> = {};
  for (const [name, choice] of Object.entries(plan.tensors)) {
    if (choice === 'keep') {
      for (const n of consumers(name)) exclude.add(n);
      continue;
    }
    const c = configById(choice);
    if (c.granularity === 'group') overrides[name] = [{ bits: c.bits, block_size: c.groupSize ?? 128, symmetric: c.symmetric }];
    else overrides[name] = [{ quant_type: c.bits === 8 ? 'QInt8' : `QInt${c.bits}`, symmetric: c.symmetric, axis: 0 }];
  }
  return { nodes_to_exclude: [...exclude].sort(), tensor_quant_overrides: overrides };
}

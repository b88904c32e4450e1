/**
 * The `quantize` entry for a Hugging Face checkpoint with `--target gguf`:
 * runs convertHfGguf and turns its result into the common ConvertReport.
 * Runtime check: the output is loaded and evaluated in llama.cpp on
 * deterministic tokens; a quantized output is compared with the checkpoint's
 * F16 conversion (written to a temp file beside the output, then removed) and
 * the mean KL is reported.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CancelledError } from '../jobs/cancel';
import { parsePlan, type Plan } from '../quant/plan';
import { isGgufPreset } from '../quant/ggml/presets';
import { convertHfGguf, hfGgufTensors, isHfGgufType, type ConvertHfGgufResult } from './convertHfGguf';
import { ConvertInputError, VerificationError } from './errors';
import { resolveGgufBudget } from './ggufBudget';
import type { ConvertProgress, ConvertReport, ConvertRequest } from './convert';

type Run = { onProgress?: (p: ConvertProgress) => void; signal?: AbortSignal };

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** A plan's choices as --tensor-type overrides (first match wins, so they go first); `keep` keeps the source's float type. */
async function planOverrides(req: ConvertRequest, source: string, run: Run): Promise<{ plan?: Plan; file?: string; overrides: string[]; budget?: Awaited<ReturnType<typeof resolveGgufBudget>> }> {
  if (req.budget && req.plan) throw new ConvertInputError('give a plan or a budget, not both');
  if (!req.plan && !req.budget) return { overrides: [] };
  const tensors = hfGgufTensors(source);
  const src = new Map(tensors.map((t) => [t.name, t.srcType]));
  const toOverrides = (plan: Plan) => Object.entries(plan.tensors).map(([name, choice]) => `^${escapeRe(name)}$=${choice === 'keep' ? src.get(name) : choice}`);
  if (req.budget) {
    const b = await resolveGgufBudget(req, source, true, run);
    return { plan: b.plan, file: b.file, overrides: toOverrides(b.plan), budget: b };
  }
  const names = new Set(tensors.map((t) => t.name));
  let raw: unknown = req.plan;
  const file = typeof req.plan === 'string' ? req.plan : undefined;
  if (file) {
    try {
      raw = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new ConvertInputError(`${file}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  const plan = parsePlan(raw, file ?? '(plan)', names);
  if (plan.target !== 'gguf') throw new ConvertInputError(`${file ?? '(plan)'}: the plan is for ${plan.target}, not gguf`);
  return { plan, file, overrides: toOverrides(plan) };
}

export async function runHfGguf(req: ConvertRequest, source: string, output: string, run: Run): Promise<ConvertReport> {
  const type = (req.preset ?? 'Q4_K_M').toUpperCase();
  if (!isHfGgufType(type)) throw new ConvertInputError(`unknown GGUF type '${req.preset}' (known: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K_S, Q3_K_M, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K)`);
  if (req.allowRequantize) throw new ConvertInputError('--allow-requantize is for GGUF sources; a checkpoint is float');
  const planned = await planOverrides(req, source, run);
  const tensorTypes = [...planned.overrides, ...(req.tensorTypes ?? [])];
  const settings: Record<string, unknown> = { type, tensorTypes, imatrix: req.imatrix, pure: !!req.pure };
  const t0 = performance.now();
  let r: ConvertHfGgufResult;
  try {
    r = await convertHfGguf(source, output, { type, tensorTypes, imatrix: req.imatrix, pure: req.pure, overwrite: req.overwrite, pool: req.pool }, {
      signal: run.signal,
      onProgress: (p) => run.onProgress?.({ phase: 'quantize', done: p.done, total: p.count, tensor: p.tensor }),
    });
  } catch (e) {
    if (run.signal?.aborted) throw new CancelledError('quantize');
    const msg = e instanceof Error ? e.message : String(e);
    if (/^verification of/.test(msg)) throw new VerificationError(msg);
    throw e;
  }
  Object.assign(settings, { architecture: r.architecture, ggufArchitecture: r.ggufArch, tokenizer: r.tokenizer, skippedTensors: r.skipped });
  const report: ConvertReport = {
    schema: 'quantscope/quantize/v1', source, output, files: [output], target: 'gguf', settings,
    tensors: r.tensors.filter((t) => t.requantized).map((t) => ({
      name: t.name, choice: `${t.from} → ${t.to}${t.importance ? ' (imatrix)' : ''}`, bytesBefore: bytesOf(t.from, t.ne), bytesAfter: t.bytes,
      predicted: { sqnrDb: t.sqnrDb, relError: Math.sqrt(t.relMse) },
    })),
    kept: r.tensors.filter((t) => !t.requantized).map((t) => ({ name: t.name, reason: `${t.to}: ${t.reason}` })),
    totals: {
      tensorsQuantized: r.totals.requantized, tensorsKept: r.totals.tensors - r.totals.requantized,
      bytesBefore: r.totals.sourceBytes, bytesAfter: r.totals.outputBytes, fileBytesBefore: r.sourceFileBytes, fileBytesAfter: fs.statSync(output).size,
    },
    verification: { readBack: { checked: r.verification?.tensors ?? 0, mismatched: [] } },
    seconds: { total: 0, convert: r.seconds.convert, verify: r.seconds.verify },
  };
  if (planned.plan) {
    report.plan = { file: planned.file, tensors: Object.keys(planned.plan.tensors).length, predicted: planned.plan.predicted };
    if (planned.budget) Object.assign(report.plan, { uniform: planned.budget.uniform, estimates: planned.budget.estimates });
  }
  if (req.skipRuntime) report.verification.runtimeSkipped = 'skipped on request';
  else {
    const tv = performance.now();
    run.onProgress?.({ phase: 'verify', done: 0, total: 1 });
    const measured = await llamaCheck(source, output, type, r.tokenizer.tokens, run.signal);
    if (typeof measured === 'string') report.verification.runtimeSkipped = measured;
    else report.verification.runtime = measured;
    report.seconds.verify += (performance.now() - tv) / 1000;
  }
  report.seconds.total = (performance.now() - t0) / 1000;
  return report;
}

function bytesOf(type: string, ne: number[]): number {
  const n = ne.reduce((a, b) => a * b, 1);
  return type === 'F32' ? 4 * n : 2 * n;
}

/** Evaluate the output in llama.cpp; a quantized one against the checkpoint's F16 conversion. A string says why it did not run. */
async function llamaCheck(
  source: string, output: string, type: string, nVocab: number, signal?: AbortSignal,
): Promise<NonNullable<ConvertReport['verification']['runtime']> | string> {
  let ev: typeof import('../runtime/llamacpp/evaluate');
  try {
    ev = require('../runtime/llamacpp/evaluate') as typeof import('../runtime/llamacpp/evaluate');
    require.resolve('node-llama-cpp');
  } catch {
    return 'llama.cpp check skipped: node-llama-cpp is not installed (npm i -D node-llama-cpp@3.21.1 to enable it)';
  }
  const tokens = Array.from({ length: 64 }, (_, i) => 1 + ((i * 2654435761) % (nVocab - 1)));
  const inputs = [`${tokens.length} token ids spread over the ${nVocab}-entry vocabulary (synthetic)`];
  const ref = path.join(path.dirname(output), `.${path.basename(output)}.${process.pid}.f16-reference.gguf`);
  try {
    signal?.throwIfAborted();
    const got = await ev.llamaEvaluate(output, tokens, { nThreads: 2 }, { signal });
    let finite = true;
    for (const v of got.logits) if (!Number.isFinite(v)) { finite = false; break; }
    if (!finite) throw new Error('its logits are not finite');
    if (!isGgufPreset(type)) {
      return { runtime: 'llama.cpp', data: 'synthetic', inputs: [...inputs, 'loaded and evaluated: finite logits (a float conversion has no reference to compare with)'], outputs: [{ name: 'logits' }] };
    }
    await convertHfGguf(source, ref, { type: 'F16', verify: false, overwrite: true }, { signal });
    const base = await ev.llamaEvaluate(ref, tokens, { nThreads: 2 }, { signal });
    return {
      runtime: 'llama.cpp', data: 'synthetic', inputs: [...inputs, 'reference: the checkpoint converted to F16'],
      outputs: [{ name: 'logits', meanKl: ev.meanKlDivergence(base, got) }],
    };
  } catch (e) {
    if (signal?.aborted) throw new CancelledError('quantize');
    fs.rmSync(output, { force: true });
    throw new VerificationError(`${output}: llama.cpp could not evaluate the written model (removed): ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    fs.rmSync(ref, { force: true });
  }
}

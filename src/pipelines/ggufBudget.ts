/**
 * `--target gguf --budget-bpw X | --budget-mb N`: a per-tensor ggml type plan
 * under a size budget, for a GGUF source or a Hugging Face checkpoint. Each
 * tensor llama.cpp may quantize is offered its source type ("keep") and the
 * ggml types whose blocks divide its rows (quant/ggml/budgetTypes); their
 * bytes are exact (blocks × type size) and their error is measured in the
 * worker pool (`ggufTypeErrors` jobs) by encoding and decoding a deterministic
 * sample of the tensor's real rows with the conversion's own encoders, the
 * imatrix weighting the error (and guiding the encoder) when one is given.
 * The knapsack (analysis/budgetPlan planFromChoices) picks the types; the
 * plan is then converted through the ordinary --plan path.
 *
 * The budget covers the whole output: --budget-mb bounds the file (header,
 * alignment padding and the tensors the plan does not choose included),
 * --budget-bpw the bits per weight over every tensor, as llama.cpp reports it.
 */
import * as path from 'node:path';
import { GgufValueType, readGgufHeader } from '../formats/gguf/reader';
import { openModel } from '../formats/index';
import { GgufKv, layoutGguf } from '../formats/gguf/writer';
import { Imatrix, readImatrix } from '../formats/gguf/imatrix';
import { GgmlTypeName, ggmlTypeById, ggmlTypeByName } from '../formats/gguf/ggmlTypes';
import { openHfCheckpoint } from '../formats/hf/checkpoint';
import { gatherTensor, mapHfModel } from '../formats/hf/archs';
import { readHfTokenizer } from '../formats/hf/tokenizer';
import { readSourceSlab } from '../quant/ggml/slab';
import { GgufTypeError, ggufBudgetTypes, ggufTypeBytes, ggufTypeErrors, sampleRows } from '../quant/ggml/budgetTypes';
import { GGUF_PRESETS, isGgufPreset, keptReason } from '../quant/ggml/presets';
import type { Plan } from '../quant/plan';
import { writeFileAtomicSync } from '../formats/atomicWrite';
import type { LayerChoices } from '../quant/mixedPrecision';
import { planFromChoices, type Budget, type BudgetPlanResult } from '../analysis/budgetPlan';
import type { ArrayTensorRef, FileTensorRef } from '../jobs/protocol';
import type { WorkerPool } from '../jobs/pool';
import { GGML_QNT_VERSION, ggufOutputMetadata } from './convertGguf';
import { ConvertInputError } from './errors';
import type { ConvertProgress, ConvertRequest } from './convert';

export const GGUF_BUDGET_ERROR =
  'weight-space squared error of the real weights: sampled rows encoded and decoded by the ggml encoders, scaled to the whole tensor';

/** One output tensor as the budget sees it. */
export interface GgufBudgetTensor {
  name: string;
  /** ggml dims, ne[0] (row length) first. */
  ne: number[];
  /** Its type in the output when the plan does not choose it (the source's type). */
  from: GgmlTypeName;
  /** Where its sampled rows come from; absent for tensors the budget cannot choose a type for. */
  rows?: (rows: number[]) => FileTensorRef | ArrayTensorRef;
}

/** What the plan predicts for one chosen tensor (in the report and the --json output). */
export interface GgufTensorEstimate {
  name: string;
  choice: string;
  bytes: number;
  /** Rows measured out of all rows. */
  sampledRows: number;
  rows: number;
  /** Relative MSE on the sampled rows (unweighted) and its SQNR in dB; 0 / Infinity for keep. */
  relMse: number;
  sqnrDb: number;
}

export interface GgufBudgetResult extends BudgetPlanResult {
  estimates: GgufTensorEstimate[];
  /** The whole output as planned: tensor data bytes, and the file's size bound (header and padding included). */
  tensorBytes: number;
  fileBytesBound: number;
}

export interface GgufBudgetInput {
  /** Named in errors and as the plan's model. */
  source: string;
  tensors: GgufBudgetTensor[];
  /** Header bytes of the output and its alignment (padding after each tensor is below it). */
  headerBytes: number;
  alignment: number;
  imatrix?: Imatrix;
}

const numelOf = (ne: readonly number[]) => ne.reduce((a, b) => a * b, 1);
const sqnr = (rel: number) => (rel > 0 ? -10 * Math.log10(rel) : Infinity);

/** The imatrix entry of a tensor, checked as the conversion checks it (a token embedding of another size goes without). */
function importanceOf(im: Imatrix | undefined, t: GgufBudgetTensor): Float32Array | undefined {
  const e = im?.entries.get(t.name);
  if (!e) return undefined;
  if (e.length !== t.ne[0] * (t.ne[2] ?? 1)) {
    if (/^(per_layer_)?token_embd\.weight$/.test(t.name)) return undefined;
    throw new ConvertInputError(`imatrix size ${e.length} differs from tensor size ${t.ne[0] * (t.ne[2] ?? 1)} for ${t.name}`);
  }
  return e;
}

/** Sampled rows of a tensor in a file, concatenated (the in-process path; a worker reads them itself). */
function readRows(ref: FileTensorRef, rows: readonly number[], ne0: number): Float32Array {
  const m = openModel(ref.path);
  try {
    const info = m.tensors.find((x) => x.name === ref.tensor);
    if (!info) throw new Error(`${ref.path}: no tensor named '${ref.tensor}'`);
    const x = new Float32Array(rows.length * ne0);
    rows.forEach((r, i) => x.set(readSourceSlab(m, info, r * ne0, ne0), i * ne0));
    return x;
  } finally {
    m.close();
  }
}

/** Each plannable tensor's options (its source type as "keep", and the ggml types), measured on its sampled rows. */
export interface GgufChoices {
  chosen: GgufBudgetTensor[];
  measured: { t: GgufBudgetTensor; rows: number[]; nRows: number; errs: GgufTypeError[]; weighted: boolean }[];
  choices: LayerChoices[];
  /** Per choice, per option: SQNR of the sampled rows in dB (Infinity for keep). */
  sqnrDb: number[][];
  /** Bytes of the tensors the plan does not choose, elements of all tensors, and the file's header and padding bound. */
  fixed: number;
  allElems: number;
  overhead: number;
}

/** Measure every candidate ggml type of every plannable tensor (the pool's `ggufTypeErrors` jobs); the wizard's frontier and the budget plan start here. */
export async function measureGgufChoices(
  input: GgufBudgetInput, run: { pool?: WorkerPool; signal?: AbortSignal; onTensor?: (done: number, total: number) => void } = {},
): Promise<GgufChoices> {
  const chosen = input.tensors.filter((t) => t.rows && ggufBudgetTypes(t.ne[0], t.from).length > 0);
  if (chosen.length === 0) throw new ConvertInputError(`${input.source}: no tensor can be quantized to a ggml type (rows must be whole 32-value blocks)`);
  const fixed = input.tensors.filter((t) => !chosen.includes(t)).reduce((a, t) => a + ggufTypeBytes(t.from, numelOf(t.ne)), 0);
  const allElems = input.tensors.reduce((a, t) => a + numelOf(t.ne), 0);
  const overhead = input.headerBytes + input.tensors.length * (input.alignment - 1);
  let done = 0;
  const measured = await Promise.all(chosen.map(async (t) => {
    const nRows = numelOf(t.ne) / t.ne[0];
    const rows = sampleRows(nRows, t.ne[0]);
    const types = ggufBudgetTypes(t.ne[0], t.from);
    const importance = importanceOf(input.imatrix, t);
    const src = t.rows!(rows);
    const o = { importance, rowsPerExpert: t.ne[1] ?? 1 };
    let errs: GgufTypeError[];
    if (run.pool) {
      const transfer = src.kind === 'array' ? [src.data.buffer as ArrayBuffer] : [];
      errs = await run.pool.run({ kind: 'ggufTypeErrors', source: src, rows, rowLength: t.ne[0], types, ...o }, { signal: run.signal, transfer });
    } else {
      errs = ggufTypeErrors(src.kind === 'array' ? src.data : readRows(src, rows, t.ne[0]), rows, t.ne[0], types, o);
    }
    run.onTensor?.(++done, chosen.length);
    return { t, rows, nRows, errs, weighted: !!importance };
  }));

  const choices: LayerChoices[] = measured.map(({ t, rows, nRows, errs, weighted }) => {
    const n = numelOf(t.ne);
    const keepBytes = ggufTypeBytes(t.from, n);
    const scale = nRows / rows.length;
    return {
      name: t.name, params: n,
      options: [
        { label: 'keep', bits: (8 * keepBytes) / n, bytes: keepBytes, error: 0 },
        ...errs.map((e) => {
          const bytes = ggufTypeBytes(e.type, n);
          return { label: e.type, bits: (8 * bytes) / n, bytes, error: (weighted ? e.weightedErrSum : e.errSum) * scale };
        }),
      ],
    };
  });
  const sqnrDb = measured.map(({ errs }) => [Infinity, ...errs.map((e) => sqnr(e.refSum > 0 ? e.errSum / e.refSum : e.errSum > 0 ? Infinity : 0))]);
  return { chosen, measured, choices, sqnrDb, fixed, allElems, overhead };
}

export async function ggufBudgetPlan(
  input: GgufBudgetInput, budget: Budget, run: { pool?: WorkerPool; signal?: AbortSignal; onTensor?: (done: number, total: number) => void } = {},
): Promise<GgufBudgetResult> {
  const { chosen, measured, choices, fixed, allElems, overhead } = await measureGgufChoices(input, run);
  const planned = 'bitsPerWeight' in budget ? Math.floor((budget.bitsPerWeight * allElems) / 8) - fixed : budget.bytes - overhead - fixed;
  const smallest = choices.reduce((a, c) => a + Math.min(...c.options.map((o) => o.bytes)), 0);
  if (smallest > planned) {
    const file = smallest + fixed + overhead;
    const bpw = (8 * (smallest + fixed)) / allElems;
    throw new ConvertInputError(`${input.source}: the budget is below the smallest plan: every quantizable tensor at its smallest type gives ${(file / 1e6).toFixed(3)} MB (${bpw.toFixed(3)} bits per weight over all ${input.tensors.length} tensors, ${fixed} bytes of them in tensors kept as they are)`);
  }
  const errorKind = `${GGUF_BUDGET_ERROR}${input.imatrix ? ' (columns weighted by the imatrix where it has the tensor)' : ''}`;
  const r = planFromChoices('gguf', choices, { budgetBytes: planned }, budget, errorKind, path.basename(input.source), ['Q8_0', 'Q6_K', 'Q5_K', 'Q4_K', 'Q3_K', 'Q2_K']);
  // Tensors llama.cpp would quantize but the budget cannot (quantized source, rows not whole blocks) stay as they are, as their bytes were counted.
  for (const t of input.tensors) if (!chosen.includes(t) && !keptReason(t.name, t.ne.length)) r.plan.tensors[t.name] = 'keep';
  const estimates = measured.map(({ t, rows, nRows, errs }): GgufTensorEstimate => {
    const choice = r.plan.tensors[t.name];
    const e = errs.find((x) => x.type === choice);
    const relMse = e ? (e.refSum > 0 ? e.errSum / e.refSum : e.errSum > 0 ? Infinity : 0) : 0;
    return { name: t.name, choice, bytes: ggufTypeBytes(choice === 'keep' ? t.from : (choice as GgmlTypeName), numelOf(t.ne)), sampledRows: rows.length, rows: nRows, relMse, sqnrDb: sqnr(relMse) };
  });
  const tensorBytes = r.bytes + fixed;
  return { ...r, estimates, tensorBytes, fileBytesBound: tensorBytes + overhead };
}

/** A GGUF source: its tensors (read by the workers from the file), header and alignment of the output. */
export function ggufSourceBudgetInput(source: string, ftype: number, imatrix?: string): GgufBudgetInput {
  const h = readGgufHeader(source);
  const im = imatrix ? readImatrix(imatrix) : undefined;
  const kvs = ggufOutputMetadata(h, ftype, source, im ? { file: path.resolve(imatrix!), m: im } : undefined);
  const tensors = h.rawTensors.map((raw): GgufBudgetTensor => {
    const from = ggmlTypeById(raw.type)?.name;
    if (!from) throw new ConvertInputError(`${source}: tensor ${raw.name} has unknown ggml type ${raw.type}`);
    const t: GgufBudgetTensor = { name: raw.name, ne: raw.ne.map(Number), from };
    const floatSource = from === 'F32' || from === 'F16' || from === 'BF16';
    if (floatSource && !keptReason(raw.name, raw.ne.length)) t.rows = () => ({ kind: 'file', path: source, tensor: raw.name });
    return t;
  });
  const layout = layoutGguf(kvs, tensors.map((t) => ({ name: t.name, ne: t.ne, type: ggmlTypeByName(t.from)!.id })));
  return { source, tensors, headerBytes: layout.header.length, alignment: layout.alignment, imatrix: im };
}

/**
 * A Hugging Face checkpoint: the GGUF tensors it converts to (names and
 * layouts as convertHfGguf writes them). Tensors stored as they are go to the
 * workers by file; reshuffled ones (rope head order, GPT-2's transposes) are
 * gathered here and only their sampled rows are sent. `close` when done.
 */
export function hfBudgetInput(source: string, ftype: number, imatrix?: string): GgufBudgetInput & { close(): void } {
  const ck = openHfCheckpoint(source);
  try {
    const mapped = mapHfModel(ck);
    const tok = readHfTokenizer(ck, mapped.nVocab);
    const kvs: GgufKv[] = [
      ...mapped.kvs,
      { key: 'general.file_type', type: GgufValueType.UINT32, value: ftype },
      { key: 'general.quantization_version', type: GgufValueType.UINT32, value: GGML_QNT_VERSION },
      ...tok.kvs,
    ];
    const tensors = mapped.tensors.map((s): GgufBudgetTensor => {
      const from: GgmlTypeName = s.ne.length <= 1 ? 'F32' : s.srcType;
      const t: GgufBudgetTensor = { name: s.name, ne: s.ne, from };
      if (keptReason(s.name, s.ne.length)) return t;
      const src = s.source;
      if (src.kind === 'hf' && !src.reshape && src.info.location.kind === 'disk') {
        const file = src.info.location.file;
        t.rows = () => ({ kind: 'file', path: file, tensor: src.name });
      } else {
        t.rows = (rows) => {
          const x = gatherTensor(s, (info, s0, c0) => readSourceSlab(ck.weights, info, s0, c0));
          const ne0 = s.ne[0];
          const out = new Float32Array(rows.length * ne0);
          rows.forEach((r, i) => out.set(x.subarray(r * ne0, (r + 1) * ne0), i * ne0));
          return { kind: 'array', data: out };
        };
      }
      return t;
    });
    const layout = layoutGguf(kvs, tensors.map((t) => ({ name: t.name, ne: t.ne, type: ggmlTypeByName(t.from)!.id })));
    const im = imatrix ? readImatrix(imatrix) : undefined;
    return { source, tensors, headerBytes: layout.header.length, alignment: layout.alignment, imatrix: im, close: () => ck.close() };
  } catch (e) {
    ck.close();
    throw e;
  }
}

/**
 * `convert()`'s budget step for --target gguf: measure, plan, write the plan
 * (OUTPUT.plan.json unless planOut), and return it for the --plan path.
 */
export async function resolveGgufBudget(
  req: Pick<ConvertRequest, 'budget' | 'preset' | 'imatrix' | 'output' | 'planOut' | 'overwrite' | 'pool'>, source: string, hf: boolean,
  run: { signal?: AbortSignal; onProgress?: (p: ConvertProgress) => void } = {},
): Promise<{ plan: Plan; file: string; uniform: BudgetPlanResult['uniform']; estimates: GgufTensorEstimate[]; fileBytesBound: number }> {
  const preset = (req.preset ?? 'Q4_K_M').toUpperCase();
  const ftype = isGgufPreset(preset) ? GGUF_PRESETS[preset].ftype : 0;
  const input = hf ? hfBudgetInput(source, ftype, req.imatrix) : ggufSourceBudgetInput(source, ftype, req.imatrix);
  let r: GgufBudgetResult;
  try {
    r = await ggufBudgetPlan(input, req.budget!, { pool: req.pool, signal: run.signal, onTensor: (done, total) => run.onProgress?.({ phase: 'plan', done, total }) });
  } catch (e) {
    if (e instanceof RangeError) throw new ConvertInputError(`${source}: ${e.message}`);
    throw e;
  } finally {
    if ('close' in input && typeof input.close === 'function') input.close();
  }
  const file = req.planOut ?? `${req.output}.plan.json`;
  writeFileAtomicSync(file, JSON.stringify(r.plan, null, 2) + '\n', { overwrite: !!req.overwrite });
  return { plan: r.plan, file, uniform: r.uniform, estimates: r.estimates, fileBytesBound: r.fileBytesBound };
}

/**
 * Hugging Face checkpoint folder → quantized checkpoint folder that
 * transformers (GPTQ, with gptqmodel or optimum) or vLLM (compressed-tensors
 * pack-quantized) loads. The Linear weights of the transformer blocks are
 * quantized to 2, 4 or 8 bits in groups along the input dim, by
 * round-to-nearest or by GPTQ on the layer's input activations; everything
 * else is copied byte for byte. Shards are converted one at a time into
 * shards of the same names (one tensor in memory at a time), with an index
 * when there are several; config.json is written anew with its
 * quantization_config; the folder's other files (tokenizer, generation
 * config) are copied. The written folder is read back through the project's
 * reader (src/formats/safetensors/quantizedView.ts) and every quantized
 * weight must decode to exactly the values predicted here.
 *
 * GPTQ files use checkpoint_format "gptq" (v1): the stored zero point is
 * zero − 1, the convention AutoGPTQ, optimum and GPTQModel read.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ModelFile, ScalarDType, TensorInfo } from '../formats/types';
import { FormatError } from '../formats/types';
import { openModel } from '../formats/index';
import { writeFileAtomicSync } from '../formats/atomicWrite';
import { f16ToF32 } from '../formats/dtypes';
import { bytesOf, writeSafetensors, type PlannedTensor } from '../formats/safetensors/writer';
import { finish, linearWeight, partBytes, partsOf, quantizeHfWeight, scaleCodec, type Quantized, type SafetensorsTarget, type WeightScheme } from '../quant/hfQuantize';

export type { SafetensorsTarget, WeightScheme } from '../quant/hfQuantize';
import { DequantizedModelFile, readHfConfig } from '../formats/safetensors/quantizedView';
import type { PackBits } from '../formats/safetensors/quantizedLayouts';
import { gptq, gptqHessian } from '../quant/algorithms/gptq';
import { parseNpy, parseNpz, type FeedTensor } from '../runtime/calibData';
import { CancelledError } from '../jobs/cancel';
import type { WorkerPool } from '../jobs/pool';
import { ConvertInputError, VerificationError } from './errors';
import type { ConvertProgress, ConvertReport, ConvertRequest } from './convert';
import { nbitsChoice, parsePlan, type Plan } from '../quant/plan';
import type { BudgetPlanResult } from '../analysis/budgetPlan';
import { safetensorsBudgetPlan } from './safetensorsBudget';

export interface ConvertSafetensorsOptions {
  target: SafetensorsTarget;
  /** Default scheme (4 bits, groups of 128, symmetric). */
  bits?: PackBits;
  groupSize?: number;
  symmetric?: boolean;
  algo?: 'rtn' | 'gptq';
  /** GPTQ: columns in order of decreasing activation energy (writes g_idx / desc_act). */
  actOrder?: boolean;
  /** GPTQ: .npz (or a folder of .npy) of each Linear's input activations, named after the module (`model.layers.0.self_attn.q_proj`), [..., in]. */
  activations?: string;
  /** Weights whose name matches stay as they are. */
  exclude?: string;
  /** Round-to-nearest runs in these workers, a few weights ahead of the writer (default: in this thread). */
  pool?: WorkerPool;
  /** Per-weight choices from a plan ('keep' or a scheme); weights it does not list get the default, or stay as they are with keepUnlisted. */
  plan?: Map<string, WeightScheme | 'keep'>;
  keepUnlisted?: boolean;
  overwrite?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: { phase: 'quantize' | 'write' | 'verify'; done: number; total: number; tensor?: string }) => void;
}

export interface QuantizedWeightReport {
  name: string;
  scheme: WeightScheme;
  algo: 'rtn' | 'gptq';
  bytesBefore: number;
  bytesAfter: number;
  sqnrDb: number;
  relError: number;
  actOrder: boolean;
}

export interface ConvertSafetensorsResult {
  source: string;
  outDir: string;
  files: string[];
  copied: string[];
  quantized: QuantizedWeightReport[];
  kept: { name: string; reason: string }[];
  quantizationConfig: Record<string, unknown>;
  bytesBefore: number;
  bytesAfter: number;
  readBack: { checked: number; mismatched: string[] };
  seconds: { convert: number; verify: number };
}

const FLOAT = new Set(['f32', 'f16', 'bf16', 'f64']);
const WEIGHT_FILES = /\.(?:safetensors|bin|pt|pth|ckpt|h5|msgpack|gguf|onnx|safetensors\.index\.json|bin\.index\.json)$/i;

/** The checkpoint to read: a folder (its index or its one .safetensors file), a .safetensors file or an index. */
export function resolveCheckpoint(source: string): { dir: string; entry: string } {
  const abs = path.resolve(source);
  let st: fs.Stats;
  try { st = fs.statSync(abs); } catch { throw new ConvertInputError(`${abs}: no such file or folder`); }
  if (!st.isDirectory()) return { dir: path.dirname(abs), entry: abs };
  const names = fs.readdirSync(abs);
  const index = names.filter((n) => n.endsWith('.safetensors.index.json')).sort();
  if (index.length) return { dir: abs, entry: path.join(abs, index[0]) };
  const st1 = names.filter((n) => n.endsWith('.safetensors')).sort();
  if (st1.length === 1) return { dir: abs, entry: path.join(abs, st1[0]) };
  if (st1.length === 0) throw new ConvertInputError(`${abs}: no .safetensors file or safetensors index in the folder`);
  throw new ConvertInputError(`${abs}: ${st1.length} .safetensors files and no index (model.safetensors.index.json) to tie them together`);
}

/** Mixture-of-experts routers (Mixtral's block_sparse_moe.gate, Qwen's mlp.gate and shared_expert_gate): the loaders keep them in float. */
const ROUTER = /(?:^|\.)(?:gate|router|shared_expert_gate)\.weight$/;

/** Linear weights of the transformer blocks: 2-D float `*.weight` inside a numbered block that is not a norm, an embedding or a router. */
export function isBlockLinear(t: TensorInfo): boolean {
  return t.name.endsWith('.weight') && t.shape.length === 2 && FLOAT.has(t.dtype) && t.layer.block !== undefined &&
    t.layer.role !== 'norm' && t.layer.role !== 'embed' && t.layer.role !== 'pos_embed' && !ROUTER.test(t.name);
}

const moduleOf = (weight: string) => weight.slice(0, -'.weight'.length);

/** Input activations per module for GPTQ: arrays named after the module (or its weight). */
function loadActivations(file: string): Map<string, FeedTensor> {
  let st: fs.Stats;
  try { st = fs.statSync(file); } catch { throw new ConvertInputError(`${file}: no such file`); }
  const out = new Map<string, FeedTensor>();
  if (st.isDirectory()) {
    for (const n of fs.readdirSync(file).filter((x) => x.endsWith('.npy'))) out.set(n.slice(0, -4), parseNpy(new Uint8Array(fs.readFileSync(path.join(file, n))), path.join(file, n)));
  } else if (file.endsWith('.npz')) {
    for (const [k, v] of parseNpz(new Uint8Array(fs.readFileSync(file)), file)) out.set(k.replace(/\.npy$/, ''), v);
  } else {
    throw new ConvertInputError(`${file}: GPTQ on a safetensors checkpoint takes each Linear's input activations as an .npz (arrays named after the modules) or a folder of .npy files`);
  }
  return out;
}

function activationMatrix(a: FeedTensor, inF: number, where: string): { x: Float64Array; tokens: number } {
  const n = a.data.length;
  if (a.dims[a.dims.length - 1] !== inF || n % inF !== 0) throw new ConvertInputError(`${where}: activations [${a.dims.join(', ')}] do not end in the ${inF} input features`);
  const x = new Float64Array(n);
  const d = a.data;
  if (a.dtype === 'float16') for (let i = 0; i < n; i++) x[i] = f16ToF32((d as Uint16Array)[i]);
  else if (a.dtype === 'float32' || a.dtype === 'float64') for (let i = 0; i < n; i++) x[i] = (d as Float32Array)[i];
  else throw new ConvertInputError(`${where}: activations are ${a.dtype}, not float`);
  return { x, tokens: n / inF };
}

interface OutTensor extends PlannedTensor { bytes: () => Uint8Array | Promise<Uint8Array> }

const sameScheme = (a: WeightScheme, b: WeightScheme) => a.bits === b.bits && a.groupSize === b.groupSize && a.symmetric === b.symmetric;

export async function convertSafetensors(source: string, outDir: string, opts: ConvertSafetensorsOptions): Promise<ConvertSafetensorsResult> {
  const t0 = performance.now();
  const { dir, entry } = resolveCheckpoint(source);
  const out = path.resolve(outDir);
  if (path.resolve(dir) === out) throw new ConvertInputError(`${out}: the output folder is the source folder`);
  if (fs.existsSync(out)) {
    if (!fs.statSync(out).isDirectory()) throw new ConvertInputError(`${out}: exists and is not a folder (the ${opts.target} target writes a checkpoint folder)`);
    if (fs.readdirSync(out).length && !opts.overwrite) throw new ConvertInputError(`${out}: the folder is not empty (pass --overwrite to replace the files it writes)`);
  }
  const def: WeightScheme = { bits: opts.bits ?? 4, groupSize: opts.groupSize ?? 128, symmetric: opts.symmetric ?? true };
  const algo = opts.algo ?? 'rtn';
  const excludeRe = opts.exclude ? new RegExp(opts.exclude) : undefined;
  const cfg = readHfConfig(dir);
  if (!cfg) throw new ConvertInputError(`${path.join(dir, 'config.json')}: missing; a Hugging Face checkpoint folder needs its config.json (it is written anew with the quantization_config)`);
  const qc = cfg.config.quantization_config as Record<string, unknown> | undefined;
  if (qc) throw new ConvertInputError(`${cfg.file}: the checkpoint is already quantized (quantization_config.quant_method ${JSON.stringify(qc.quant_method)}); start from the float checkpoint`);
  const model = openModel(entry);
  const written: string[] = [];
  let made = false;
  try {
    if (!fs.existsSync(out)) {
      if (!fs.existsSync(path.dirname(out))) throw new ConvertInputError(`${path.dirname(out)}: no such folder`);
      fs.mkdirSync(out);
      made = true;
    }
    if (model instanceof DequantizedModelFile) throw new ConvertInputError(`${entry}: the checkpoint is already quantized (${model.quantization}); start from the float checkpoint`);
    if (opts.plan) for (const name of opts.plan.keys()) if (!model.tensors.some((t) => t.name === name)) throw new ConvertInputError(`plan: no tensor ${name} in ${entry}`);
    const acts = algo === 'gptq' ? (opts.activations ? loadActivations(opts.activations) : undefined) : undefined;
    if (algo === 'gptq' && !acts) throw new ConvertInputError('--algo gptq on a safetensors checkpoint needs each Linear\'s input activations (--calib ACTS.npz, arrays named after the modules)');

    // What happens to each tensor.
    const chosen = new Map<string, WeightScheme>();
    const kept: { name: string; reason: string }[] = [];
    for (const t of model.tensors) {
      if (!isBlockLinear(t)) {
        const asked = opts.plan?.get(t.name);
        if (asked && asked !== 'keep') {
          throw new ConvertInputError(`plan: ${t.name} in ${(t.location as { file: string }).file} is ${t.dtype} [${t.shape.join(', ')}], not a 2-D float Linear weight of a transformer block; ${opts.target} quantizes only those`);
        }
        if (t.name.endsWith('.weight') && t.shape.length === 2) {
          kept.push({ name: t.name, reason: t.layer.block === undefined ? `${t.layer.role ?? 'outside the blocks'} (not quantized by this target)` : !FLOAT.has(t.dtype) ? `dtype ${t.dtype}` : ROUTER.test(t.name) ? 'mixture-of-experts router (kept in float)' : `${t.layer.role ?? 'not a Linear'}` });
        }
        continue;
      }
      const p = opts.plan?.get(t.name);
      if (p === 'keep' || (p === undefined && opts.keepUnlisted)) { kept.push({ name: t.name, reason: 'plan: keep' }); continue; }
      if (excludeRe?.test(t.name)) { kept.push({ name: t.name, reason: `matches --exclude ${opts.exclude}` }); continue; }
      const s = p ?? def;
      const [o, i] = t.layer.outputChannelAxis === 1 ? [t.shape[1], t.shape[0]] : t.shape;
      const file = (t.location as { file: string }).file;
      if (i % s.groupSize !== 0) throw new FormatError(file, `tensor ${t.name}`, `${i} input features are not divisible by the group size ${s.groupSize}`);
      if (opts.target === 'safetensors-gptq' && (i % (32 / s.bits) !== 0 || o % (32 / s.bits) !== 0)) {
        throw new FormatError(file, `tensor ${t.name}`, `GPTQ packs ${32 / s.bits} ${s.bits}-bit codes per int32 along both dims; [${o}, ${i}] does not divide`);
      }
      chosen.set(t.name, s);
    }
    if (chosen.size === 0) throw new ConvertInputError(`${entry}: no Linear weight of a transformer block to quantize (all excluded, or tensor names without numbered blocks)`);
    const scaleType: 'f16' | 'bf16' = opts.target === 'safetensors-compressed' && [...chosen.keys()].some((n) => model.tensors.find((t) => t.name === n)!.dtype === 'bf16') ? 'bf16' : 'f16';

    interface WeightResult { parts: Uint8Array[]; predicted: string; sqnrDb: number; relError: number; algo: 'rtn' | 'gptq'; actOrder: boolean }
    /** GPTQ runs here on the recorded activations; round-to-nearest in the pool's workers when there is a pool, else here. */
    const quantizeWeight = async (t: TensorInfo, s: WeightScheme, m: string): Promise<WeightResult> => {
      if (algo !== 'gptq') {
        const r = opts.pool
          ? await opts.pool.run({ kind: 'hfqWeight', source: { kind: 'file', path: entry, tensor: t.name }, target: opts.target, scheme: s, scaleType }, { signal: opts.signal })
          : quantizeHfWeight(model, t, opts.target, s, scaleType);
        return { ...r, algo: 'rtn', actOrder: false };
      }
      const { w, out: o, inF } = linearWeight(model, t);
      const a = acts?.get(m) ?? acts?.get(t.name);
      if (!a) throw new ConvertInputError(`${opts.activations}: no activations for ${m} (arrays are named after the modules)`);
      const { x, tokens } = activationMatrix(a, inF, `${opts.activations}: ${m}`);
      const r = gptq(w, o, inF, gptqHessian(x, tokens, inF), { bits: s.bits, symmetric: s.symmetric, groupSize: s.groupSize, actOrder: !!opts.actOrder });
      const sc = scaleCodec(scaleType);
      const scaleBits = Uint16Array.from(r.scales, (v) => sc.enc(v));
      const scaleValues = Float32Array.from(scaleBits, (b) => sc.dec(b));
      if (opts.target === 'safetensors-gptq' && r.zeroPoints.some((z) => z === 0)) {
        throw new ConvertInputError(`${t.name}: GPTQ chose a zero point of 0, which the GPTQ v1 format (zero − 1 stored) cannot hold; use symmetric quantization (the default) or --target safetensors-compressed`);
      }
      const q: Quantized = finish({ codes: r.codes, zeros: r.zeroPoints, scaleBits, scaleValues, gIdx: r.groupIndex, groups: r.nGroups, actOrder: !!r.permutation, algo: 'gptq' }, w, o, inF);
      return { parts: partBytes(opts.target, q, s, o, inF), predicted: q.predicted, sqnrDb: q.sqnrDb, relError: q.relError, algo: 'gptq', actOrder: q.actOrder };
    };

    // Shards in the order of the model's files (the index first when sharded).
    const shardFiles = model.files.filter((f) => f.endsWith('.safetensors'));
    const byShard = new Map<string, TensorInfo[]>(shardFiles.map((f) => [f, []]));
    for (const t of model.tensors) byShard.get((t.location as { file: string }).file)!.push(t);
    const quantized: QuantizedWeightReport[] = [];
    const hashes = new Map<string, string>();
    const weightMap: Record<string, string> = {};
    // Weights quantized ahead of the writer: enough to keep the workers busy, few enough to bound memory.
    const ahead = opts.pool ? Math.max(1, opts.pool.size) + 1 : 0;
    let bytesBefore = 0, bytesAfter = 0, totalSize = 0, done = 0;
    for (const shard of shardFiles) {
      const outFile = path.join(out, path.basename(shard));
      const list: OutTensor[] = [];
      const weights: { t: TensorInfo; s: WeightScheme; m: string; result?: Promise<WeightResult> }[] = [];
      const start = (k: number) => {
        const wq = weights[k];
        if (!wq || wq.result) return;
        wq.result = quantizeWeight(wq.t, wq.s, wq.m);
        // Failures surface when the writer asks for the part; this only keeps an early rejection from going unobserved.
        wq.result.catch(() => undefined);
      };
      for (const t of byShard.get(shard)!) {
        const s = chosen.get(t.name);
        if (!s) {
          list.push({ name: t.name, dtype: t.dtype as ScalarDType, shape: t.shape, bytes: () => model.readBytes(t) });
          continue;
        }
        // Quantized when its first part is asked for (or ahead of it with a pool), released after its last.
        const m = moduleOf(t.name);
        const k = weights.length;
        weights.push({ t, s, m });
        const [o, inF] = t.layer.outputChannelAxis === 1 ? [t.shape[1], t.shape[0]] : t.shape;
        const planned = partsOf(opts.target, m, o, inF, s, algo === 'gptq' && !!opts.actOrder, scaleType);
        let served = 0;
        const part = async (j: number): Promise<Uint8Array> => {
          for (let n = k; n <= k + ahead; n++) start(n);
          const r = await weights[k].result!;
          if (j === 0) {
            if (opts.signal?.aborted) throw new CancelledError('quantize');
            opts.onProgress?.({ phase: 'quantize', done: ++done, total: chosen.size, tensor: t.name });
            if (r.parts.length !== planned.length) throw new Error(`internal: ${r.parts.length} parts written for ${m}, ${planned.length} planned`);
            hashes.set(t.name, r.predicted);
            quantized.push({ name: t.name, scheme: s, algo: r.algo, bytesBefore: t.byteLength, bytesAfter: r.parts.reduce((a, x) => a + x.length, 0), sqnrDb: r.sqnrDb, relError: r.relError, actOrder: r.actOrder });
          }
          const b = r.parts[j];
          if (++served === planned.length) weights[k].result = Promise.resolve({ ...r, parts: [] });
          return b;
        };
        planned.forEach((p, j) => list.push({ ...p, bytes: () => part(j) }));
      }
      const size = await writeSafetensors(outFile, list, (i) => list[i].bytes(), { overwrite: !!opts.overwrite, signal: opts.signal, metadata: { format: 'pt' } });
      written.push(outFile);
      totalSize += size;
      for (const t of list) weightMap[t.name] = path.basename(outFile);
      opts.onProgress?.({ phase: 'write', done: written.length, total: shardFiles.length });
    }
    for (const q of quantized) { bytesBefore += q.bytesBefore; bytesAfter += q.bytesAfter; }

    const quantizationConfig = opts.target === 'safetensors-gptq'
      ? gptqConfig(def, quantized, kept, !!opts.actOrder && algo === 'gptq')
      : compressedConfig(def, quantized, kept, model, !!opts.actOrder && algo === 'gptq');
    if (shardFiles.length > 1) {
      const ix = path.join(out, 'model.safetensors.index.json');
      writeFileAtomicSync(ix, JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n', { overwrite: !!opts.overwrite });
      written.push(ix);
    }
    const config = { ...cfg.config, quantization_config: quantizationConfig };
    writeFileAtomicSync(path.join(out, 'config.json'), JSON.stringify(config, null, 2) + '\n', { overwrite: !!opts.overwrite });
    written.push(path.join(out, 'config.json'));
    if (opts.target === 'safetensors-gptq') {
      // AutoGPTQ's own loader reads the same settings from quantize_config.json.
      writeFileAtomicSync(path.join(out, 'quantize_config.json'), JSON.stringify(quantizationConfig, null, 2) + '\n', { overwrite: !!opts.overwrite });
      written.push(path.join(out, 'quantize_config.json'));
    }
    const copied: string[] = [];
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!e.isFile() || e.name.startsWith('.') || WEIGHT_FILES.test(e.name) || e.name === 'config.json' || e.name === 'quantize_config.json') continue;
      const dst = path.join(out, e.name);
      writeFileAtomicSync(dst, fs.readFileSync(path.join(dir, e.name)), { overwrite: !!opts.overwrite });
      written.push(dst);
      copied.push(e.name);
    }
    // --overwrite into a folder of an earlier conversion: weights and settings this one did not write would be read with it.
    if (opts.overwrite) {
      for (const n of fs.readdirSync(out)) {
        if ((/\.safetensors$|\.safetensors\.index\.json$/.test(n) || n === 'quantize_config.json') && !written.includes(path.join(out, n))) fs.rmSync(path.join(out, n), { force: true });
      }
    }
    const convertS = (performance.now() - t0) / 1000;

    // Read back through the project's reader: every quantized weight must decode to the predicted values.
    const tv = performance.now();
    opts.onProgress?.({ phase: 'verify', done: 0, total: quantized.length });
    const mismatched: string[] = [];
    const back = openModel(shardFiles.length > 1 ? path.join(out, 'model.safetensors.index.json') : written[0]);
    try {
      for (const q of quantized) {
        const t = back.tensors.find((x) => x.name === q.name);
        if (!t || !t.dtype.startsWith('q:')) { mismatched.push(q.name); continue; }
        const h = crypto.createHash('sha256');
        for (const c of back.iterateFloat32(t, 1 << 20)) h.update(bytesOf(c.values));
        if (h.digest('hex') !== hashes.get(q.name)) mismatched.push(q.name);
      }
    } finally {
      back.close();
    }
    return {
      source: entry, outDir: out, files: written, copied, quantized, kept, quantizationConfig, bytesBefore, bytesAfter,
      readBack: { checked: quantized.length, mismatched }, seconds: { convert: convertS, verify: (performance.now() - tv) / 1000 },
    };
  } catch (e) {
    for (const f of written) fs.rmSync(f, { force: true });
    if (made) fs.rmSync(out, { recursive: true, force: true });
    throw e;
  } finally {
    model.close();
  }
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * quantization_config for GPTQ (transformers' GPTQConfig fields, checkpoint
 * format v1). Weights quantized with another scheme than the default, and
 * weights kept inside the blocks, are listed in `dynamic` (GPTQModel's
 * per-module overrides: "+:regex" settings, "-:regex" not quantized).
 */
function gptqConfig(def: WeightScheme, q: QuantizedWeightReport[], kept: { name: string; reason: string }[], descAct: boolean): Record<string, unknown> {
  const dynamic: Record<string, Record<string, unknown>> = {};
  for (const r of q) {
    if (!sameScheme(r.scheme, def)) dynamic[`+:^${escapeRe(moduleOf(r.name))}$`] = { bits: r.scheme.bits, group_size: r.scheme.groupSize, sym: r.scheme.symmetric };
  }
  for (const k of kept) {
    if (k.name.endsWith('.weight') && /plan: keep|--exclude/.test(k.reason)) dynamic[`-:^${escapeRe(moduleOf(k.name))}$`] = {};
  }
  return {
    quant_method: 'gptq', bits: def.bits, group_size: def.groupSize, desc_act: descAct, sym: def.symmetric,
    static_groups: false, true_sequential: true, damp_percent: 0.01, lm_head: false, checkpoint_format: 'gptq',
    // No `meta`: GPTQModel parses meta.quantizer as "name:version" pairs to pick its own format conversions.
    ...(Object.keys(dynamic).length ? { dynamic } : {}),
  };
}

/**
 * quantization_config for compressed-tensors pack-quantized: one config
 * group per scheme (the default targets every Linear; others list their
 * modules by name), the ignore list naming every Linear left in float
 * (lm_head and the kept or excluded block weights).
 */
function compressedConfig(def: WeightScheme, q: QuantizedWeightReport[], kept: { name: string; reason: string }[], model: ModelFile, actOrder: boolean): Record<string, unknown> {
  const weights = (s: WeightScheme) => ({
    num_bits: s.bits, type: 'int', symmetric: s.symmetric, strategy: 'group', group_size: s.groupSize,
    dynamic: false, actorder: actOrder ? 'group' : null, observer: 'minmax', observer_kwargs: {}, block_structure: null,
  });
  const groups: Record<string, unknown> = {};
  const others = new Map<string, { s: WeightScheme; names: string[] }>();
  for (const r of q) {
    if (sameScheme(r.scheme, def)) continue;
    const key = `${r.scheme.bits}/${r.scheme.groupSize}/${r.scheme.symmetric}`;
    if (!others.has(key)) others.set(key, { s: r.scheme, names: [] });
    others.get(key)!.names.push(moduleOf(r.name));
  }
  let k = 0;
  for (const { s, names } of others.values()) groups[`group_${k++}`] = { targets: names, weights: weights(s), input_activations: null, output_activations: null };
  groups[`group_${k}`] = { targets: ['Linear'], weights: weights(def), input_activations: null, output_activations: null };
  // lm_head stays float (tied to the embeddings or not), as every compressed-tensors export lists it.
  const ignore = new Set<string>(['lm_head']);
  for (const t of model.tensors) if (t.layer.role === 'lm_head' && t.name.endsWith('.weight')) ignore.add(moduleOf(t.name));
  // Every Linear left in float: vLLM would otherwise expect packed parts for it under the "Linear" target.
  for (const x of kept) {
    const role = model.tensors.find((t) => t.name === x.name)?.layer.role;
    if (x.name.endsWith('.weight') && role !== 'embed' && role !== 'pos_embed') ignore.add(moduleOf(x.name));
  }
  return {
    quant_method: 'compressed-tensors', format: 'pack-quantized', quantization_status: 'compressed',
    config_groups: groups, ignore: [...ignore], kv_cache_scheme: null, global_compression_ratio: null,
  };
}

/** `convert()` for the two safetensors targets: the request's settings, plan and report in the shape every target reports. */
export async function runSafetensors(
  req: ConvertRequest, source: string, output: string, run: { onProgress?: (p: ConvertProgress) => void; signal?: AbortSignal }, t0: number,
): Promise<ConvertReport> {
  const target = req.target as SafetensorsTarget;
  if (req.budget && req.plan) throw new ConvertInputError('give a plan or a budget, not both');
  if (req.budget && req.algo === 'gptq') throw new ConvertInputError(`a size budget measures round-to-nearest; use --algo rtn with a budget, or give --plan for GPTQ`);
  if (req.algo === 'awq') throw new ConvertInputError(`--algo awq is not available for ${target} (rtn or gptq)`);
  if (req.bits !== undefined && !(req.bits === 2 || req.bits === 4 || req.bits === 8)) throw new ConvertInputError(`--bits ${String(req.bits)}: ${target} writes 2, 4 or 8 bits`);
  let plan: Plan | undefined;
  let planFile: string | undefined;
  let uniform: BudgetPlanResult['uniform'] | undefined;
  if (req.budget) {
    ({ plan, file: planFile, uniform } = await safetensorsBudgetPlan(source, target, req.budget, {
      exclude: req.exclude, pool: req.pool, signal: run.signal, output, planOut: req.planOut, overwrite: req.overwrite,
      onTensor: (done, total) => run.onProgress?.({ phase: 'plan', done, total }),
    }));
  } else if (typeof req.plan === 'string') {
    planFile = req.plan;
    let raw: unknown;
    try { raw = JSON.parse(fs.readFileSync(req.plan, 'utf8')); } catch (e) { throw new ConvertInputError(`${req.plan}: ${e instanceof Error ? e.message : String(e)}`); }
    plan = parsePlan(raw, req.plan);
  } else if (req.plan) plan = parsePlan(req.plan, '(plan)');
  if (plan && plan.target !== target) throw new ConvertInputError(`${planFile ?? '(plan)'}: the plan is for ${plan.target}, not ${target}`);
  const scheme = (id: string): WeightScheme => {
    const c = nbitsChoice(id);
    return { bits: c.bits, groupSize: c.blockSize, symmetric: c.symmetric };
  };
  const opts: ConvertSafetensorsOptions = {
    target, bits: req.bits as PackBits | undefined, groupSize: req.blockSize, symmetric: req.symmetric, algo: req.algo as 'rtn' | 'gptq' | undefined,
    actOrder: req.actOrder, activations: req.activations, exclude: req.exclude, overwrite: req.overwrite, signal: run.signal, pool: req.pool,
    onProgress: (p) => run.onProgress?.({ phase: p.phase, done: p.done, total: p.total, tensor: p.tensor }),
  };
  if (plan) {
    opts.plan = new Map(Object.entries(plan.tensors).map(([k, v]) => [k, v === 'keep' ? 'keep' as const : scheme(v)]));
    if (plan.default === 'keep') opts.keepUnlisted = true;
    else if (plan.default) Object.assign(opts, (({ bits, groupSize, symmetric }) => ({ bits, groupSize, symmetric }))(scheme(plan.default)));
  }
  const r = await convertSafetensors(source, output, opts);
  if (r.readBack.mismatched.length) {
    for (const f of r.files) fs.rmSync(f, { force: true });
    // The folder too, when nothing else is in it (rmdir refuses a non-empty one).
    try { fs.rmdirSync(r.outDir); } catch { /* kept: it holds other files */ }
    throw new VerificationError(`${output}: ${r.readBack.mismatched.length} quantized weights read back differ from the predicted values (${r.readBack.mismatched.slice(0, 3).join(', ')}); nothing kept`);
  }
  const size = (f: string) => { try { return fs.statSync(f).size; } catch { return 0; } };
  const dequantNote = target === 'safetensors-gptq' ? 'GPTQ v1' : 'pack-quantized';
  const report: ConvertReport = {
    schema: 'quantscope/quantize/v1', source: r.source, output: r.outDir, files: r.files, target,
    settings: { bits: opts.bits ?? 4, groupSize: opts.groupSize ?? 128, symmetric: opts.symmetric ?? true, algo: opts.algo ?? 'rtn', actOrder: !!opts.actOrder, exclude: req.exclude, quantization_config: r.quantizationConfig, copied: r.copied },
    tensors: r.quantized.map((q) => ({
      name: q.name, choice: `${dequantNote} int${q.scheme.bits} g${q.scheme.groupSize} ${q.scheme.symmetric ? 'sym' : 'asym'} ${q.algo}${q.actOrder ? ' act-order' : ''}`,
      bytesBefore: q.bytesBefore, bytesAfter: q.bytesAfter, predicted: { sqnrDb: q.sqnrDb, relError: q.relError },
    })),
    kept: r.kept,
    totals: {
      tensorsQuantized: r.quantized.length, tensorsKept: r.kept.length, bytesBefore: r.bytesBefore, bytesAfter: r.bytesAfter,
      fileBytesBefore: 0, fileBytesAfter: r.files.reduce((a, f) => a + size(f), 0),
    },
    verification: {
      readBack: r.readBack,
      runtimeSkipped: 'no runtime for Hugging Face checkpoints here (transformers, gptqmodel and vLLM are not run); the read-back check ran',
    },
    seconds: { total: 0, convert: r.seconds.convert, verify: r.seconds.verify },
  };
  const m = openModel(r.source);
  try { report.totals.fileBytesBefore = m.sizeOnDisk; } finally { m.close(); }
  if (plan) report.plan = { file: planFile, tensors: Object.keys(plan.tensors).length, predicted: plan.predicted, ...(uniform ? { uniform } : {}) };
  report.seconds.total = (performance.now() - t0) / 1000;
  return report;
}

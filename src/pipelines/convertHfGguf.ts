/**
 * `quantscope quantize CHECKPOINT --target gguf --type F16|Q4_K_M|…`: a
 * Hugging Face checkpoint folder (config.json, safetensors weights, shards,
 * tokenizer.json) written as a GGUF llama.cpp loads. The checkpoint is mapped
 * to llama.cpp's names, keys and layouts (src/formats/hf), each tensor is
 * read (shard by shard, one tensor in memory at a time), reshuffled where
 * llama.cpp's layout differs, encoded with the GGUF encoders into the type the
 * preset's per-tensor rules give it, and streamed to a temp file beside the
 * output; the written file is reopened and every slab checked against what
 * the encoder produced before it gets its name.
 */
import type { Impl } from '../kernels/runtime';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openHfCheckpoint } from '../formats/hf/checkpoint';
import { GgufTensorSpec, gatherTensor, mapHfModel } from '../formats/hf/archs';
import { readHfTokenizer } from '../formats/hf/tokenizer';
import { GgufValueType } from '../formats/gguf/reader';
import { GgufFileWriter, GgufKv, layoutGguf } from '../formats/gguf/writer';
import { Imatrix, readImatrix } from '../formats/gguf/imatrix';
import { GgmlTypeName, ggmlTypeByName } from '../formats/gguf/ggmlTypes';
import { GgufSlabResult, digestGgufRange, encodeGgufSlab, readSourceSlab } from '../quant/ggml/slab';
import {
  GGUF_PRESETS, LLAMA_FTYPE, PlannedTensor, TensorTypeOverride, isGgufPreset, llamaTensorOrder, parseTensorTypeOverride, planGgufTypes,
} from '../quant/ggml/presets';
import type { WorkerPool } from '../jobs/pool';
import {
  ConvertGgufCallbacks, ConvertedGgufTensor, GGML_QNT_VERSION, SlabRunner, SlabTask, checkCancel, encodable, importanceFor, slabTasks, sqnr, verifyWritten, writeSlabsInOrder,
} from './convertGguf';

/** Plain float outputs, as llama.cpp's converter writes them (1-D tensors stay F32). */
const FLOAT_TYPES = { F32: LLAMA_FTYPE.ALL_F32, F16: LLAMA_FTYPE.MOSTLY_F16, BF16: LLAMA_FTYPE.MOSTLY_BF16 } as const;
export type HfGgufFloat = keyof typeof FLOAT_TYPES;

export function isHfGgufType(t: string): boolean {
  return Object.prototype.hasOwnProperty.call(FLOAT_TYPES, t.toUpperCase()) || isGgufPreset(t);
}

export interface ConvertHfGgufOptions {
  /** F32, F16, BF16, or one of llama.cpp's presets (Q8_0, Q4_K_M, …). */
  type: string;
  pure?: boolean;
  tensorTypes?: (string | TensorTypeOverride)[];
  imatrix?: string | Imatrix;
  overwrite?: boolean;
  /** Reopen and check the written file before renaming it (default true). */
  verify?: boolean;
  impl?: Impl;
  /** Workers to encode and verify slabs on (two slabs per worker in flight); without one everything runs on this thread. */
  pool?: WorkerPool;
}

export interface ConvertHfGgufResult {
  source: string;
  output: string;
  type: string;
  ftype: number;
  /** HF architecture (config.json) and the GGUF architecture written. */
  architecture: string;
  ggufArch: string;
  tokenizer: { model: string; pre?: string; tokens: number };
  /** HF tensors not written (rope caches, attention-mask buffers). */
  skipped: string[];
  /** Bytes of the checkpoint files read: weights (shards, index), config.json and the tokenizer files. */
  sourceFileBytes: number;
  tensors: ConvertedGgufTensor[];
  totals: { tensors: number; requantized: number; sourceBytes: number; outputBytes: number; bpw: number; relMse: number };
  seconds: { convert: number; verify: number };
  verification?: { tensors: number; metadataKeys: number };
}

function ggmlId(t: GgmlTypeName): number {
  return ggmlTypeByName(t)!.id;
}

/** The per-tensor types: a preset's rules (as llama-quantize would apply them to the F16/F32 conversion) or a float type. */
function planTypes(
  type: string, kvs: GgufKv[], specs: GgufTensorSpec[], o: ConvertHfGgufOptions, overrides: TensorTypeOverride[], hasImatrix: boolean,
): { plan: PlannedTensor[]; ftype: number; label: string } {
  // What the intermediate (converter output) holds: 1-D tensors in F32, matrices in the source's float type.
  const from = (s: GgufTensorSpec): GgmlTypeName => (s.ne.length <= 1 ? 'F32' : s.srcType);
  const up = type.toUpperCase();
  if (isGgufPreset(up)) {
    const metadata = Object.fromEntries(kvs.map((k) => [k.key, k.value]));
    const plan = planGgufTypes(metadata, specs.map((s) => ({ name: s.name, ne: s.ne, type: ggmlId(from(s)) })), up, {
      pure: o.pure, tensorTypes: overrides, hasImatrix,
    });
    return { plan, ftype: GGUF_PRESETS[up].ftype, label: up };
  }
  if (!Object.prototype.hasOwnProperty.call(FLOAT_TYPES, up)) {
    throw new RangeError(`unknown GGUF type ${type} (F32, F16, BF16, ${Object.keys(GGUF_PRESETS).join(', ')})`);
  }
  const ft = up as HfGgufFloat;
  const plan = [...specs].sort((a, b) => llamaTensorOrder(a.name, b.name)).map((s): PlannedTensor => {
    const manual = overrides.find((ov) => ov.pattern.test(s.name));
    const to: GgmlTypeName = s.ne.length <= 1 ? 'F32' : manual ? manual.type : ft;
    const reason = s.ne.length <= 1 ? '1-D tensor (kept F32)' : manual ? `--tensor-type ${manual.pattern.source}=${manual.type}` : `${ft} output`;
    return { name: s.name, ne: s.ne, from: from(s), to, reason };
  });
  return { plan, ftype: FLOAT_TYPES[ft], label: ft };
}

export async function convertHfGguf(
  srcPath: string, outPath: string, options: ConvertHfGgufOptions, cb: ConvertGgufCallbacks = {},
): Promise<ConvertHfGgufResult> {
  const t0 = process.hrtime.bigint();
  const source = path.resolve(srcPath);
  const output = path.resolve(outPath);
  if (fs.existsSync(output) && !options.overwrite) throw new Error(`${output} exists (pass overwrite to replace it)`);
  if (!fs.existsSync(path.dirname(output))) throw new Error(`${path.dirname(output)}: no such folder`);

  const ck = openHfCheckpoint(source);
  try {
    const mapped = mapHfModel(ck);
    const tok = readHfTokenizer(ck, mapped.nVocab);
    const im = typeof options.imatrix === 'string' ? readImatrix(options.imatrix) : options.imatrix;
    const overrides = (options.tensorTypes ?? []).map((o) => (typeof o === 'string' ? parseTensorTypeOverride(o) : o));
    // File-type keys are added once the plan has settled the type.
    const head = [...mapped.kvs];
    const { plan, ftype, label } = planTypes(options.type, [...head, ...tok.kvs], mapped.tensors, options, overrides, !!im);
    for (const t of plan) {
      if (!encodable(t.to) && t.to !== 'BF16') throw new Error(`${source}: tensor ${t.name} would become ${t.to}, which QuantScope cannot encode`);
    }
    const kvs: GgufKv[] = [
      ...head,
      { key: 'general.file_type', type: GgufValueType.UINT32, value: ftype },
      { key: 'general.quantization_version', type: GgufValueType.UINT32, value: GGML_QNT_VERSION },
      ...tok.kvs,
    ];
    const layout = layoutGguf(kvs, plan.map((t) => ({ name: t.name, ne: t.ne, type: ggmlId(t.to) })));
    const specs = new Map(mapped.tensors.map((s) => [s.name, s]));
    const bytesTotal = mapped.tensors.reduce((s, t) => s + (t.source.kind === 'hf' ? t.source.info.byteLength : t.source.values.byteLength), 0);
    const writer = new GgufFileWriter(output, layout);
    const digests: string[][] = plan.map(() => []);
    const results: ConvertedGgufTensor[] = [];
    try {
      const tasks = plan.flatMap((pt, k) => slabTasks(k, pt.ne.reduce((a, b) => a * b, 1), pt));
      const importance = plan.map(() => false);
      const pool = options.pool;
      const impl = options.impl ?? 'auto';
      // The one tensor gathered in memory (reshuffled, or for encoding here): the one whose slabs are being launched.
      let gathered: { k: number; x: Float32Array } | undefined;
      let launchedK = -1, bytesRead = 0;
      const launch = ({ k, range: [start, count] }: SlabTask): Promise<GgufSlabResult> => {
        launchedK = k;
        const pt = plan[k], spec = specs.get(pt.name)!;
        const imp = importanceFor(im, pt, start);
        if (imp) importance[k] = true;
        const src = spec.source;
        if (pool && src.kind === 'hf' && !(src.reshape && 'transpose' in src.reshape) && src.info.location.kind === 'disk') {
          // Read by the worker straight from its shard (a q/k projection's rope order reordered there too).
          const ropeHeads = src.reshape && 'permuteHeads' in src.reshape ? src.reshape.permuteHeads : undefined;
          return pool.run({ kind: 'ggufSlab', source: { kind: 'file', path: src.info.location.file, tensor: src.name }, start, count, to: pt.to, rowLength: pt.ne[0], importance: imp, impl, ropeHeads }, { signal: cb.signal });
        }
        if (gathered?.k !== k) gathered = { k, x: gatherTensor(spec, (info, s0, c0) => readSourceSlab(ck.weights, info, s0, c0)) };
        const slab = gathered.x.subarray(start, start + count);
        if (!pool) return Promise.resolve(encodeGgufSlab(slab, pt.to, pt.ne[0], imp, impl));
        const data = slab.slice();
        return pool.run({ kind: 'ggufSlab', source: { kind: 'array', data }, start: 0, count, to: pt.to, rowLength: pt.ne[0], importance: imp, impl }, { signal: cb.signal, transfer: [data.buffer] });
      };
      await writeSlabsInOrder(tasks, pool ? pool.size * 2 : 1, launch, writer, digests, cb.signal, (k, err, ref) => {
        if (gathered?.k === k && launchedK !== k) gathered = undefined;
        const pt = plan[k], spec = specs.get(pt.name)!;
        const relMse = ref > 0 ? err / ref : err > 0 ? Infinity : 0;
        // A float type's exact copy of its source counts as kept, not requantized.
        const exact = pt.to === 'F32' || (pt.to === pt.from && err === 0);
        results.push({
          name: pt.name, ne: pt.ne, from: pt.from, to: pt.to, reason: pt.reason, bytes: layout.sizes[k],
          requantized: !exact, relMse, sqnrDb: sqnr(relMse), importance: importance[k],
        });
        bytesRead += spec.source.kind === 'hf' ? spec.source.info.byteLength : spec.source.values.byteLength;
        cb.onProgress?.({ done: k + 1, count: plan.length, tensor: pt.name, bytesRead, bytesTotal });
      });
      writer.finish();
      const t1 = process.hrtime.bigint();
      let verification: ConvertHfGgufResult['verification'];
      if (options.verify !== false) {
        // Every slab was encoded from float32, so each is checked by its decoded values (F32 bytes are those values).
        const vplan = plan.map((p) => ({ ...p, from: p.to === 'F32' ? p.to : ('F32' as GgmlTypeName) }));
        verification = await verifyWritten(writer.tempPath, output, kvs, vplan, digests, digestRunner(options.pool, cb.signal), cb.signal);
      }
      const t2 = process.hrtime.bigint();
      await checkCancel(cb.signal);
      writer.commit();
      const outBytes = results.reduce((s, t) => s + t.bytes, 0);
      const numel = (ne: number[]) => ne.reduce((a, b) => a * b, 1);
      const nElems = plan.reduce((s, t) => s + numel(t.ne), 0);
      const req = results.filter((t) => t.requantized);
      const reqElems = req.reduce((s, t) => s + numel(t.ne), 0);
      return {
        source, output, type: label, ftype, architecture: ck.architecture, ggufArch: mapped.arch,
        tokenizer: { model: tok.model, pre: tok.pre, tokens: tok.tokens.length }, skipped: mapped.skipped, tensors: results,
        sourceFileBytes: [ck.configPath, ck.tokenizerPath, ck.tokenizerConfigPath].reduce((sum, f) => sum + (f ? fs.statSync(f).size : 0), ck.weights.sizeOnDisk),
        totals: {
          tensors: results.length, requantized: req.length, sourceBytes: bytesTotal, outputBytes: outBytes,
          bpw: nElems ? (outBytes * 8) / nElems : 0,
          relMse: reqElems ? req.reduce((s, t) => s + t.relMse * numel(t.ne), 0) / reqElems : 0,
        },
        seconds: { convert: Number(t1 - t0) / 1e9, verify: Number(t2 - t1) / 1e9 },
        verification,
      };
    } catch (e) {
      writer.abort();
      throw e;
    }
  } finally {
    ck.close();
  }
}

function digestRunner(pool: WorkerPool | undefined, signal?: AbortSignal): SlabRunner {
  return {
    encode: () => Promise.reject(new Error('not used')),
    digest: (file, om, t, [start, count], raw) => pool
      ? pool.run({ kind: 'ggufDigest', source: { kind: 'file', path: file, tensor: t.name }, start, count, raw }, { signal })
      : Promise.resolve(digestGgufRange(om, t, start, count, raw)),
  };
}

/** The GGUF tensors a checkpoint converts to (names, ggml dims, source float type), without converting it. */
export function hfGgufTensors(srcPath: string): { name: string; ne: number[]; srcType: string }[] {
  const ck = openHfCheckpoint(srcPath);
  try {
    return mapHfModel(ck).tensors.map((t) => ({ name: t.name, ne: t.ne, srcType: t.ne.length <= 1 ? 'F32' : t.srcType }));
  } finally {
    ck.close();
  }
}

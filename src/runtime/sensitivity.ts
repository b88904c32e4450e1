/**
 * Output-space sensitivity, the part that runs in a pool worker: for each
 * weight of a chunk and each config, quantize only that weight with the
 * engine's numerics (quant/configs specFor + weightLayout, quant/rtn) and
 * measure how far the model's outputs move over the calibration batches.
 *
 * Only the graph downstream of the weight is recomputed: one run of the full
 * model captures, for every weight of the chunk, the activations entering its
 * suffix (and the reference outputs); each weight then gets one session on
 * its suffix with the weight as an input, fed every config's quantized tensor.
 * The suffix session fed the float weight gives the reference outputs (under
 * the EXACT settings they equal the full model's bit for bit, see
 * test/unit/runtime-graph.test.ts; under the default FAST ones they differ
 * in the last bits, so the reference always comes from the same session).
 */
import * as fs from 'node:fs';
import { configById, specFor, weightLayout } from '../quant/configs';
import { fakeQuantize } from '../quant/rtn';
import type { CalibratorName } from '../quant/calibrators';
import type { FeedTensor, Sample } from './calibData';
import { addOutputs, cutSuffix, decodeModel, encodeModel, liftWeights, LiftedWeight, ONNX_ELEM, PModel, WeightRef } from './graph';
import { OutputKind, OutputMetrics, compareOutputs, outputKinds } from './outputMetrics';
import { FAST, SessionOptions, createSession, releaseSession, runFeed } from './session';

export interface SensWeight extends WeightRef {
  shape: number[];
  /** From the reader's layer link (ConvTranspose kernels have it at 1). */
  outputChannelAxis?: number;
}

export interface ConfigEffect {
  config: string;
  /** The first model output's effect (see OutputMetrics.effect); 0 when the weight cannot reach it. */
  effect: number;
  outputs: OutputMetrics[];
}

export interface WeightEffect extends WeightRef {
  configs: ConfigEffect[];
  /** Nodes recomputed for this weight (the full graph has `totalNodes`). */
  suffixNodes: number;
}

export interface ChunkResult {
  weights: WeightEffect[];
  totalNodes: number;
  captureSeconds: number;
  seconds: number;
}

export interface MeasureOptions {
  /** Weight-range calibrator for the quantized weights (default 'minmax'). */
  calibrator?: CalibratorName;
  session?: SessionOptions;
  /**
   * Where the float reference comes from: 'capture' (default) takes the full
   * run's outputs (one run less per weight; under FAST settings they differ
   * from the suffix's in the last bits, a noise floor near SQNR 110 dB, far
   * below any quantization effect; under EXACT they are identical); 'suffix'
   * runs each suffix once more with the float weight, so reference and
   * variants share one numeric path.
   */
  reference?: 'suffix' | 'capture';
  /** Polled between runs; throws to cancel. */
  check?(): void;
  progress?(done: number, total: number): void;
}

/** The engine's fake-quantized copy of a weight under a named config. */
export function quantizeWeight(data: Float32Array, shape: readonly number[], outputChannelAxis: number | undefined, config: string, calibrator: CalibratorName = 'minmax'): Float32Array {
  const layout = weightLayout(shape, outputChannelAxis);
  return fakeQuantize(data, layout.shape, { ...specFor(configById(config), layout), calibrator });
}

/** A copy of the graph structure that shares tensor bytes with the original. */
export function cloneModel<T>(v: T): T {
  if (v === null || typeof v !== 'object' || ArrayBuffer.isView(v)) return v;
  if (Array.isArray(v)) return v.map(cloneModel) as unknown as T;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) out[k] = cloneModel((v as Record<string, unknown>)[k]);
  return out as T;
}

const decoded = new Map<string, { key: string; model: PModel }>();
/** The decoded model, kept per path while the file is unchanged (a worker serves many chunks of one model). */
export function loadDecoded(file: string): PModel {
  const st = fs.statSync(file);
  const key = `${st.size}:${st.mtimeMs}`;
  const hit = decoded.get(file);
  if (hit && hit.key === key) return hit.model;
  const model = decodeModel(fs.readFileSync(file), file);
  decoded.clear();
  decoded.set(file, { key, model });
  return model;
}

function weightKey(w: WeightRef): string {
  return `${w.graph}\0${w.name}`;
}

/** Measure a chunk of weights against every config. */
export async function measureWeights(file: string, weights: readonly SensWeight[], configs: readonly string[], feeds: readonly Sample[], opts: MeasureOptions = {}): Promise<ChunkResult> {
  const t0 = Date.now();
  const check = opts.check ?? (() => {});
  const sessionOpts = opts.session ?? FAST;
  const base = loadDecoded(file);
  const kinds: Record<string, OutputKind> = outputKinds(base);
  const outputNames = (base.graph!.output ?? []).map((o) => o.name ?? '');
  const inputNames = new Set((base.graph!.input ?? []).map((i) => i.name ?? ''));
  for (const c of configs) configById(c);

  // Phase A: the suffix of each weight, and what it reads.
  const cuts: { w: SensWeight; lifted: LiftedWeight; model: PModel; boundary: string[]; outputs: string[]; nodes: number }[] = [];
  for (const w of weights) {
    const m = cloneModel(base);
    const [lifted] = liftWeights(m, (x) => x.name === w.name && x.graph === w.graph, file);
    if (!lifted) throw new Error(`${file}: no float32 weight '${w.name}' in graph ${w.graph}`);
    const s = cutSuffix(m, [lifted.input]);
    cuts.push({ w, lifted, model: m, boundary: s.boundary, outputs: s.outputs, nodes: s.nodes });
  }
  // Phase B: one full run captures every boundary and the reference outputs.
  const capture = cloneModel(base);
  const wanted = [...new Set(cuts.flatMap((c) => c.boundary))].filter((b) => !inputNames.has(b));
  addOutputs(capture, wanted);
  const captureSession = await createSession(encodeModel(capture), sessionOpts);
  const captured: Record<string, FeedTensor>[] = [];
  try {
    for (const f of feeds) { check(); captured.push(await runFeed(captureSession, f)); }
  } finally { await releaseSession(captureSession); }
  const fullOutputs = captured.map((c) => Object.fromEntries(outputNames.map((o) => [o, c[o]])));
  const captureSeconds = (Date.now() - t0) / 1000;

  const total = cuts.length * configs.length;
  let done = 0;
  const out: WeightEffect[] = [];
  for (const cut of cuts) {
    check();
    // Boundary inputs typed by what was captured.
    const types = new Map<string, number>();
    for (const b of cut.boundary) {
      const t = captured[0][b] ?? feeds[0][b];
      if (t) types.set(b, ONNX_ELEM[t.dtype]);
    }
    for (const vi of cut.model.graph!.input ?? []) {
      const ty = types.get(vi.name ?? '');
      if (ty !== undefined && !inputNames.has(vi.name ?? '')) vi.type = { tensor_type: { elem_type: ty } };
    }
    const session = await createSession(encodeModel(cut.model), sessionOpts);
    const weight = cut.lifted.original;
    const runAll = async (data: Float32Array): Promise<Record<string, FeedTensor>[]> => {
      const got: Record<string, FeedTensor>[] = [];
      for (let i = 0; i < feeds.length; i++) {
        check();
        const feed: Sample = {};
        for (const b of cut.boundary) feed[b] = captured[i][b] ?? feeds[i][b];
        const r = await runFeed(session, feed, { [cut.lifted.input]: { dtype: 'float32', dims: weight.dims, data } });
        // Outputs the weight cannot reach are the full run's.
        got.push(Object.fromEntries(outputNames.map((o) => [o, r[o] ?? fullOutputs[i][o]])));
      }
      return got;
    };
    const effects: ConfigEffect[] = [];
    try {
      const refOutputs = opts.reference === 'suffix' ? await runAll(weight.data as Float32Array) : fullOutputs;
      for (const config of configs) {
        check();
        const q = quantizeWeight(weight.data as Float32Array, cut.w.shape.length ? cut.w.shape : weight.dims, cut.w.outputChannelAxis, config, opts.calibrator);
        const got = await runAll(q);
        const outputs = compareOutputs(refOutputs, got, kinds);
        effects.push({ config, effect: outputs[0]?.effect ?? 0, outputs });
        opts.progress?.(++done, total);
      }
    } finally { await releaseSession(session); }
    out.push({ name: cut.w.name, graph: cut.w.graph, configs: effects, suffixNodes: cut.nodes });
  }
  return { weights: out, totalNodes: (base.graph!.node ?? []).length, captureSeconds, seconds: (Date.now() - t0) / 1000 };
}

/**
 * One whole-model variant: a config per weight of the run's list (null keeps
 * the float weight), or, where `weights[i]` is set, that quantized tensor
 * itself (GPTQ and AWQ weights, computed outside; same length and layout as the original).
 */
export interface Variant {
  id: string;
  configs: readonly (string | null)[];
  weights?: readonly (Float32Array | null)[];
}

export interface VariantResult {
  id: string;
  outputs: OutputMetrics[];
  effect: number;
  seconds: number;
}

/**
 * Whole-model variants: every listed weight replaced at once (one session
 * with all of them as inputs), compared with the float model over the feeds.
 * `variants` maps an id to the replacement of each weight (in the order of
 * `weights`; a missing entry keeps the float weight).
 */
export async function evaluateVariants(
  file: string, weights: readonly SensWeight[], variants: readonly Variant[], feeds: readonly Sample[], opts: MeasureOptions = {},
): Promise<{ reference: Record<string, FeedTensor>[]; results: VariantResult[] }> {
  const check = opts.check ?? (() => {});
  const base = loadDecoded(file);
  const kinds = outputKinds(base);
  const m = cloneModel(base);
  const want = new Set(weights.map(weightKey));
  const lifted = liftWeights(m, (w) => want.has(weightKey(w)), file);
  const byKey = new Map(lifted.map((l) => [weightKey(l), l]));
  const session = await createSession(encodeModel(m), opts.session ?? FAST);
  const originals: Record<string, FeedTensor> = Object.fromEntries(lifted.map((l) => [l.input, l.original]));
  const reference: Record<string, FeedTensor>[] = [];
  const results: VariantResult[] = [];
  try {
    for (const f of feeds) { check(); reference.push(await runFeed(session, f, originals)); }
    let done = 0;
    for (const v of variants) {
      const t0 = Date.now();
      const feedW: Record<string, FeedTensor> = { ...originals };
      weights.forEach((w, i) => {
        const cfg = v.configs[i];
        const given = v.weights?.[i];
        const l = byKey.get(weightKey(w));
        if ((!cfg && !given) || !l) return;
        check();
        if (given && given.length !== (l.original.data as Float32Array).length) throw new Error(`${file}: variant ${v.id} gives ${given.length} values for ${w.name}, which holds ${(l.original.data as Float32Array).length}`);
        feedW[l.input] = { dtype: 'float32', dims: l.original.dims, data: given ?? quantizeWeight(l.original.data as Float32Array, w.shape, w.outputChannelAxis, cfg!, opts.calibrator) };
      });
      const got: Record<string, FeedTensor>[] = [];
      for (const f of feeds) { check(); got.push(await runFeed(session, f, feedW)); }
      const outputs = compareOutputs(reference, got, kinds);
      results.push({ id: v.id, outputs, effect: outputs[0]?.effect ?? 0, seconds: (Date.now() - t0) / 1000 });
      opts.progress?.(++done, variants.length);
    }
  } finally { await releaseSession(session); }
  return { reference, results };
}

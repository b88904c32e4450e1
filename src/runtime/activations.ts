/**
 * Activation statistics over calibration data: every float tensor of the main
 * graph (or a chosen few) is captured by making it a graph output of an
 * in-memory copy, and streamed into the engine's histogram
 * (quant/calibrators HistogramCollector, exact to merge across batches and
 * workers) plus per-channel |x| maxima (axis 1 for rank-4 NCHW tensors, the
 * last axis otherwise) for SmoothQuant / AWQ. The calibrators then turn each
 * histogram into a clip range (min-max, percentile, MSE, entropy).
 */
import type { Impl } from '../kernels/runtime';
import { HistogramCollector, Range, RangeTarget, calibrator, CalibratorName } from '../quant/calibrators';
import type { FeedTensor, Sample } from './calibData';
import { activationNames, addOutputs, encodeModel } from './graph';
import { cloneModel, loadDecoded } from './sensitivity';
import { FAST, SessionOptions, createSession, releaseSession, runFeed } from './session';

/** Serializable state of one activation (crosses the worker boundary). */
export interface ActivationState {
  name: string;
  dims: number[];
  count: number;
  min: number;
  max: number;
  /** NaN / ±Inf values seen (kept out of the histogram, e.g. attention masks). */
  nonFinite: number;
  bins: number;
  range: number;
  counts: Float64Array;
  channelAxis: number;
  channelMax: Float32Array;
}

/** The channel axis of an activation: 1 for NCHW feature maps, the last axis otherwise. */
export function channelAxisOf(dims: readonly number[]): number {
  return dims.length === 4 ? 1 : Math.max(0, dims.length - 1);
}

export class ActivationCollector {
  private hist = new Map<string, HistogramCollector>();
  private meta = new Map<string, { dims: number[]; nonFinite: number; channelAxis: number; channelMax: Float32Array }>();

  /** impl: the histogram kernel (WASM SIMD by default, 'ref' its TypeScript twin). */
  constructor(readonly bins = 2048, readonly impl: Impl = 'auto') {}

  add(name: string, t: FeedTensor): void {
    if (!(t.data instanceof Float32Array)) return;
    const src = t.data;
    let h = this.hist.get(name);
    const axis = channelAxisOf(t.dims);
    const channels = t.dims.length ? t.dims[axis] : 1;
    let m = this.meta.get(name);
    if (!h || !m) {
      h = new HistogramCollector(this.bins);
      m = { dims: t.dims.slice(), nonFinite: 0, channelAxis: axis, channelMax: new Float32Array(channels) };
      this.hist.set(name, h);
      this.meta.set(name, m);
    }
    // One pass through the histogram kernel: NaN/±Inf (masks hold -inf) stay out of the histogram and are counted.
    const inner = t.dims.slice(axis + 1).reduce((a, b) => a * b, 1);
    const channelMax = m.channelMax.length === channels && channels > 0 && inner > 0 ? { inner, max: m.channelMax } : undefined;
    m.nonFinite += h.addFloat32(src, { impl: this.impl, channels: channelMax });
  }

  /** Everything collected, as plain data. */
  states(): ActivationState[] {
    return [...this.hist.entries()].map(([name, h]) => {
      const m = this.meta.get(name)!;
      return {
        name, dims: m.dims, count: h.count, min: h.min, max: h.max, nonFinite: m.nonFinite, bins: h.bins, range: h.range, counts: h.counts,
        channelAxis: m.channelAxis, channelMax: m.channelMax,
      };
    });
  }

  /** Merge states from another collector (another worker's batches): exact for the histograms. */
  merge(states: readonly ActivationState[]): this {
    for (const s of states) {
      const h = histogramOf(s);
      const mine = this.hist.get(s.name);
      const m = this.meta.get(s.name);
      if (!mine || !m) {
        this.hist.set(s.name, h);
        this.meta.set(s.name, { dims: s.dims.slice(), nonFinite: s.nonFinite, channelAxis: s.channelAxis, channelMax: Float32Array.from(s.channelMax) });
        continue;
      }
      mine.merge(h);
      m.nonFinite += s.nonFinite;
      if (m.channelMax.length === s.channelMax.length) for (let i = 0; i < s.channelMax.length; i++) m.channelMax[i] = Math.max(m.channelMax[i], s.channelMax[i]);
    }
    return this;
  }

  histogram(name: string): HistogramCollector | undefined {
    return this.hist.get(name);
  }
}

export function histogramOf(s: ActivationState): HistogramCollector {
  const h = new HistogramCollector(s.bins);
  h.counts = Float64Array.from(s.counts);
  h.range = s.range;
  h.min = s.min;
  h.max = s.max;
  h.count = s.count;
  return h;
}

export interface CollectOptions {
  /** Activations to capture (default: every float tensor of the main graph computed from the inputs, and the float inputs). */
  names?: readonly string[];
  bins?: number;
  impl?: Impl;
  session?: SessionOptions;
  check?(): void;
  progress?(done: number, total: number): void;
}

/** Run the feeds through a copy of the model that outputs every activation, streaming them into a collector. */
export async function collectActivations(file: string, feeds: readonly Sample[], opts: CollectOptions = {}): Promise<ActivationCollector> {
  const m = cloneModel(loadDecoded(file));
  const inputs = (m.graph!.input ?? []).map((i) => i.name ?? '');
  const names = opts.names ?? [...inputs.filter((i) => feeds[0]?.[i]?.dtype === 'float32'), ...activationNames(m)];
  addOutputs(m, names.filter((n) => !inputs.includes(n)));
  const session = await createSession(encodeModel(m), opts.session ?? FAST);
  const col = new ActivationCollector(opts.bins ?? 2048, opts.impl);
  const wanted = new Set(names);
  try {
    for (const [i, f] of feeds.entries()) {
      opts.check?.();
      const out = await runFeed(session, f);
      for (const n of names) {
        const t = out[n] ?? (wanted.has(n) ? f[n] : undefined);
        if (t) col.add(n, t);
      }
      opts.progress?.(i + 1, feeds.length);
    }
  } finally {
    await releaseSession(session);
  }
  return col;
}

/** Each calibrator's clip range for each activation (a histogram with no finite value gives {0, 0}). */
export function activationRanges(states: readonly ActivationState[], methods: readonly CalibratorName[], target: RangeTarget, opts: { percentile?: number } = {}): Record<string, Record<string, Range>> {
  const out: Record<string, Record<string, Range>> = {};
  const cals = methods.map((name) => calibrator(name, { percentile: opts.percentile }));
  for (const s of states) {
    const h = histogramOf(s);
    out[s.name] = {};
    cals.forEach((c, i) => { out[s.name][methods[i]] = h.count ? c.fromHistogram(h, target) : { lo: 0, hi: 0 }; });
  }
  return out;
}

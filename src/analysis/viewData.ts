/**
 * Turns analysis results into what the inspector sends and exports: table
 * summaries, the tensor detail, the config catalogue as views see it. No `vscode`
 * import, so it is unit-tested in plain Node.
 */
import type { TensorStats } from './weightStats';
import type { TensorSensitivity } from './sensitivity';
import type { ConfigInfo, ConfigResult, StatsSummary, TensorDetail } from '../shared/protocol/inspector';
import { CONFIGS, configById } from '../quant/configs';

export function statsSummary(name: string, s: TensorStats): StatsSummary {
  return { name, min: s.min, max: s.max, mean: s.mean, std: s.std, kurtosis: s.kurtosis, outlierShare: s.outliers.share, nan: s.nan, inf: s.inf };
}

export function configResults(s: TensorSensitivity): ConfigResult[] {
  return s.configs.map((c) => {
    const info = configById(c.config);
    const r: ConfigResult = { config: c.config, bits: info.bits, sqnrDb: c.sqnrDb, relError: c.relError, bytes: c.bytes, bitsPerWeight: c.bitsPerWeight, calibrator: c.calibrator };
    if (info.reference) r.reference = info.reference;
    return r;
  });
}

/** The catalogue as the views receive it. */
export function configInfos(): ConfigInfo[] {
  return CONFIGS.map((c) => {
    const i: ConfigInfo = { id: c.id, label: c.label, format: c.format, bits: c.bits, granularity: c.granularity, symmetric: c.symmetric };
    if (c.groupSize !== undefined) i.groupSize = c.groupSize;
    if (c.reference) i.reference = c.reference;
    return i;
  });
}

/** Row-major flat position → index tuple. */
export function unravel(flat: number, shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length);
  let r = flat;
  for (let i = shape.length - 1; i >= 0; i--) {
    const d = shape[i];
    out[i] = d > 0 ? r % d : 0;
    r = d > 0 ? Math.floor(r / d) : r;
  }
  return out;
}

/** Sums adjacent bins so the chart draws at most `bins` bars; the range stays the same. */
export function rebin(counts: readonly number[], bins: number): number[] {
  if (counts.length <= bins) return counts.slice();
  const f = Math.ceil(counts.length / bins);
  const out = new Array<number>(Math.ceil(counts.length / f)).fill(0);
  for (let i = 0; i < counts.length; i++) out[Math.floor(i / f)] += counts[i];
  return out;
}

/** Per-channel envelope with at most `max` points: each point is the min of mins and max of maxes of its channels. */
export function channelEnvelope(min: ArrayLike<number>, max: ArrayLike<number>, maxPoints: number): { min: number[]; max: number[]; stride: number } {
  if (min.length <= maxPoints) return { min: Array.from(min), max: Array.from(max), stride: 1 };
  const stride = Math.ceil(min.length / maxPoints);
  const lo: number[] = [], hi: number[] = [];
  for (let i = 0; i < min.length; i += stride) {
    let a = Infinity, b = -Infinity;
    for (let j = i; j < Math.min(min.length, i + stride); j++) {
      if (min[j] < a) a = min[j];
      if (max[j] > b) b = max[j];
    }
    lo.push(a); hi.push(b);
  }
  return { min: lo, max: hi, stride };
}

export function tensorDetail(name: string, shape: readonly number[], s: TensorStats | undefined, sens: TensorSensitivity | undefined): TensorDetail {
  const d: TensorDetail = {
    name, shape: shape.slice(),
    histogram: s ? { min: s.histogram.min, max: s.histogram.max, counts: rebin(s.histogram.counts, 512) } : { min: 0, max: 0, counts: [] },
    percentiles: s ? s.percentiles.map((p) => ({ q: p.q, value: p.value })) : [],
    top: s ? s.outliers.top.map((t) => ({ value: t.value, index: unravel(t.index, shape) })) : [],
    outlierSigma: s?.outliers.sigma ?? 0,
  };
  if (s?.channels) {
    const env = channelEnvelope(s.channels.min, s.channels.max, 4096);
    d.channels = { axis: s.channels.axis, min: env.min, max: env.max, outlierChannels: s.channels.outlierChannels.slice(0, 64) };
  }
  if (sens) d.configs = configResults(sens);
  return d;
}

/**
 * What the inspector's Activations view shows of one activation, from the
 * streamed histogram (quant/calibrators HistogramCollector: signed counts over
 * [-range, range]) and the per-channel |x| maxima the runtime collects:
 * percentiles, a display histogram over [min, max], and outlier channels
 * (a channel whose max |x| stands far above the median channel's, the
 * pattern SmoothQuant and LLM.int8() were made for).
 */
import { HistogramCollector, quantileOfCounts } from '../quant/calibrators';

/** The percentiles the view lists (percent). */
export const ACTIVATION_PERCENTILES = [0.1, 1, 99, 99.9] as const;

/** A channel this many times above the median channel's max |x| counts as an outlier channel. */
export const OUTLIER_CHANNEL_RATIO = 4;

/**
 * The q-th percentile (0..100) of the histogram's values, linear inside a bin
 * and clamped to the exact [min, max]: within one bin width of the data's own
 * percentile.
 */
export function histogramPercentile(h: HistogramCollector, q: number): number {
  if (!(q >= 0 && q <= 100)) throw new RangeError(`percentile must be in [0, 100], got ${q}`);
  if (h.count === 0) return NaN;
  const v = quantileOfCounts(h.counts, -h.range, h.binWidth, q / 100);
  return Math.min(h.max, Math.max(h.min, v));
}

/**
 * The histogram's bins that cover [min, max], merged into at most `maxBins`
 * display bins (whole source bins, so counts are exact). `lo`/`hi` are the
 * outer edges of the first and last display bin.
 */
export function displayHistogram(h: HistogramCollector, maxBins = 128): { lo: number; hi: number; counts: number[] } {
  if (h.count === 0) return { lo: 0, hi: 0, counts: [] };
  const w = h.binWidth;
  const n = h.counts.length;
  if (!(w > 0)) return { lo: h.min, hi: h.max, counts: [h.count] };
  const first = Math.max(0, Math.min(n - 1, Math.floor((h.min + h.range) / w)));
  const last = Math.max(first, Math.min(n - 1, Math.floor((h.max + h.range) / w)));
  const span = last - first + 1;
  const per = Math.ceil(span / maxBins);
  const counts: number[] = [];
  for (let i = first; i <= last; i += per) {
    let s = 0;
    for (let j = i; j < Math.min(i + per, last + 1); j++) s += h.counts[j];
    counts.push(s);
  }
  return { lo: -h.range + first * w, hi: -h.range + (first + counts.length * per) * w, counts };
}

export interface OutlierChannels {
  channels: number;
  /** Median over channels of the channel's max |x|. */
  median: number;
  /** Largest channel max |x| over the median (null when the median channel is all zero and another is not). */
  ratio: number | null;
  /** Channels at least OUTLIER_CHANNEL_RATIO × the median. */
  flagged: number;
  /** The largest channels, largest first. */
  top: { channel: number; max: number; ratio: number | null }[];
}

/** Outlier channels of an activation from its per-channel max |x|. */
export function outlierChannels(channelMax: ArrayLike<number>, top = 8): OutlierChannels {
  const n = channelMax.length;
  if (n === 0) return { channels: 0, median: 0, ratio: 1, flagged: 0, top: [] };
  const sorted = Float64Array.from(channelMax).sort();
  const median = n % 2 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  const ratioOf = (m: number): number | null => (median > 0 ? m / median : m > 0 ? null : 1);
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => channelMax[b] - channelMax[a] || a - b);
  let flagged = 0;
  for (let i = 0; i < n; i++) if (median > 0 ? channelMax[i] >= OUTLIER_CHANNEL_RATIO * median : channelMax[i] > 0) flagged++;
  return {
    channels: n, median, ratio: ratioOf(sorted[n - 1]), flagged,
    top: order.slice(0, top).map((c) => ({ channel: c, max: channelMax[c], ratio: ratioOf(channelMax[c]) })),
  };
}

/**
 * The inspector's Activations view as one pipeline call: run the model on
 * the calibration data in the pool (evaluate.ts modelActivations), turn each
 * activation's merged histogram into the four calibrators' clip ranges
 * (activationRanges), percentiles, a display histogram and its outlier
 * channels. Cached by file identity + data hash + settings, so reopening a
 * model shows its last run at once.
 */
import type { ModelFile } from '../formats/types';
import type { CalibratorName } from '../quant/calibrators';
import { rangeTarget, type QuantSpec } from '../quant/rtn';
import { ACTIVATION_PERCENTILES, displayHistogram, histogramPercentile, outlierChannels } from '../analysis/activationStats';
import { histogramOf } from '../runtime/activations';
import type { CalibSet } from '../runtime/calibData';
import { resolveProvider } from '../runtime/session';
import type { ActivationRow, ActivationsResult } from '../shared/protocol/inspector';
import { activationRanges, cacheKey, cacheRead, cacheWrite, modelActivations, type RunSettings } from './evaluate';

/** The calibrators drawn side by side, in the order the view lists them. */
export const ACTIVATION_CALIBRATORS: readonly CalibratorName[] = ['minmax', 'percentile', 'mse', 'entropy'];
/** Static activation quantization as onnx-qdq writes it: uint8 per-tensor with a zero point. */
const TARGET: QuantSpec = { format: 'uint', bits: 8, symmetric: false, granularity: { kind: 'tensor' } };
const TARGET_LABEL = 'uint8 per-tensor, asymmetric';
const PERCENTILE = 99.99;

export interface ActivationReportOptions extends RunSettings {
  /** Histogram bins per sign (default 2048). */
  bins?: number;
  /** Display bins per activation (default 128). */
  displayBins?: number;
  /** Only a cached result, or undefined: reopening never runs the model. */
  cacheOnly?: boolean;
}

/** Activation ranges, percentiles, clip points and outlier channels of every activation of an ONNX model on `set`. */
export async function activationReport(model: ModelFile, set: CalibSet, opts: ActivationReportOptions): Promise<ActivationsResult | undefined> {
  const ep = await resolveProvider(opts.provider);
  const bins = opts.bins ?? 2048;
  const displayBins = opts.displayBins ?? 128;
  const settings = { bins, displayBins, calibrators: ACTIVATION_CALIBRATORS, target: TARGET, percentile: PERCENTILE, batch: opts.batch ?? 1, exact: !!opts.exact, provider: ep.provider };
  const key = cacheKey(model, set, 'activations', settings);
  const hit = cacheRead<ActivationsResult>(opts.cacheDir, key);
  if (hit) return { ...hit, cached: true };
  if (opts.cacheOnly) return undefined;
  const acts = await modelActivations(model, set, { ...opts, provider: ep.provider, bins });
  const ranges = activationRanges(acts.states, ACTIVATION_CALIBRATORS, rangeTarget(TARGET), { percentile: PERCENTILE });
  const rows: ActivationRow[] = [];
  let empty = 0;
  for (const s of acts.states) {
    const h = histogramOf(s);
    if (h.count === 0) { empty++; continue; }
    rows.push({
      name: s.name, dims: s.dims, count: s.count, nonFinite: s.nonFinite, min: s.min, max: s.max,
      percentiles: ACTIVATION_PERCENTILES.map((q) => ({ q, value: histogramPercentile(h, q) })),
      clips: ranges[s.name],
      histogram: displayHistogram(h, displayBins),
      channelAxis: s.channelAxis,
      outliers: outlierChannels(s.channelMax),
    });
  }
  const out: ActivationsResult = {
    data: acts.data, dataSource: acts.dataSource, samples: acts.samples, provider: acts.provider, ...(acts.providerNote ? { providerNote: acts.providerNote } : {}),
    target: TARGET_LABEL, calibrators: [...ACTIVATION_CALIBRATORS], percentile: PERCENTILE, rows, empty, seconds: acts.seconds,
  };
  cacheWrite(opts.cacheDir, key, out);
  return out;
}

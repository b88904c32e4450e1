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
import type { QuantSpec } from '../quant/rtn';
import { CancelledError } from '../jobs/cancel';
import { siblingJobs } from './tensorJobs';
import type { CalibSet } from '../runtime/calibData';
import { resolveProvider } from '../runtime/session';
import type { ActivationRow, ActivationsResult } from '../shared/protocol/inspector';
import { cacheKey, cacheRead, cacheWrite, modelActivations, type RunSettings } from './evaluate';

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
  const t0 = Date.now();
  const ep = await resolveProvider(opts.provider);
  const bins = opts.bins ?? 2048;
  const displayBins = opts.displayBins ?? 128;
  const settings = { bins, displayBins, calibrators: ACTIVATION_CALIBRATORS, target: TARGET, percentile: PERCENTILE, batch: opts.batch ?? 1, exact: !!opts.exact, provider: ep.provider };
  const key = cacheKey(model, set, 'activations', settings);
  const hit = cacheRead<ActivationsResult>(opts.cacheDir, key);
  if (hit) return { ...hit, cached: true };
  if (opts.cacheOnly) return undefined;
  const acts = await modelActivations(model, set, { ...opts, provider: ep.provider, bins });
  // The MSE and entropy searches over thousands of bins per activation: in the pool, split over its workers, in model order.
  const parts = Math.max(1, Math.min(acts.states.length, opts.pool.size));
  const split = Array.from({ length: parts }, (_, i) => acts.states.slice(Math.floor((i * acts.states.length) / parts), Math.floor(((i + 1) * acts.states.length) / parts)));
  const done = await siblingJobs(`activation ranges of ${model.path}`, opts.signal, split.map((states) => (signal: AbortSignal) => opts.pool.run(
    { kind: 'activationRows', states, calibrators: [...ACTIVATION_CALIBRATORS], target: TARGET, percentile: PERCENTILE, displayBins }, { signal })));
  if (opts.signal?.aborted) throw new CancelledError(`activations of ${model.path}`);
  const rows: ActivationRow[] = done.flatMap((d) => d.rows);
  const empty = done.reduce((a, d) => a + d.empty, 0);
  const out: ActivationsResult = {
    data: acts.data, dataSource: acts.dataSource, samples: acts.samples, provider: acts.provider, ...(acts.providerNote ? { providerNote: acts.providerNote } : {}),
    target: TARGET_LABEL, calibrators: [...ACTIVATION_CALIBRATORS], percentile: PERCENTILE, rows, empty, seconds: (Date.now() - t0) / 1000,
  };
  cacheWrite(opts.cacheDir, key, out);
  return out;
}

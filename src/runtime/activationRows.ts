/**
 * What the inspector's Activations view lists per activation, from merged
 * ActivationStates: each calibrator's clip range (the MSE and entropy
 * searches make this the costly part, so it runs as a pool job), percentiles,
 * a display histogram and the outlier channels.
 */
import { ACTIVATION_PERCENTILES, displayHistogram, histogramPercentile, outlierChannels } from '../analysis/activationStats';
import type { CalibratorName } from '../quant/calibrators';
import { rangeTarget, type QuantSpec } from '../quant/rtn';
import type { ActivationRow } from '../shared/protocol/inspector';
import { activationRanges, histogramOf, type ActivationState } from './activations';

export interface ActivationRowOptions {
  calibrators: readonly CalibratorName[];
  target: QuantSpec;
  percentile: number;
  displayBins: number;
  check?(): void;
}

/** Rows for the activations holding a finite value; `empty` counts the others. */
export function activationRows(states: readonly ActivationState[], opts: ActivationRowOptions): { rows: ActivationRow[]; empty: number } {
  const target = rangeTarget(opts.target);
  const rows: ActivationRow[] = [];
  let empty = 0;
  for (const s of states) {
    opts.check?.();
    const h = histogramOf(s);
    if (h.count === 0) { empty++; continue; }
    rows.push({
      name: s.name, dims: s.dims, count: s.count, nonFinite: s.nonFinite, min: s.min, max: s.max,
      percentiles: ACTIVATION_PERCENTILES.map((q) => ({ q, value: histogramPercentile(h, q) })),
      clips: activationRanges([s], opts.calibrators, target, { percentile: opts.percentile })[s.name],
      histogram: displayHistogram(h, opts.displayBins),
      channelAxis: s.channelAxis,
      outliers: outlierChannels(s.channelMax),
    });
  }
  return { rows, empty };
}

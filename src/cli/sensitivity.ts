/**
 * `quantscope sensitivity MODEL [--calib DATA] [--configs ID,...] [--samples N] [--json]`:
 * output-space sensitivity, measured by running the model: each weight
 * quantized alone under each config, the change of the outputs over the data.
 */
import type { CliCommand, ParsedArgs } from './command';
import { EXIT } from './exitCodes';
import type { CliIO } from './io';
import { openModel } from '../formats/index';
import { WorkerPool } from '../jobs/pool';
import { DEFAULT_RUNTIME_CONFIGS, RuntimeSensitivity, runtimeSensitivity } from '../pipelines/evaluate';
import { defaultCliCacheDir } from '../pipelines/statsCache';
import { RUNTIME_OPTIONS, fmt, runtimeArgs, table } from './runtimeArgs';

export const SENSITIVITY_SCHEMA = 'quantscope/sensitivity/v1';

export function renderSensitivity(r: RuntimeSensitivity): string {
  const kind = r.weights[0]?.configs[0]?.outputs[0];
  const metric = kind?.kl !== undefined ? 'KL' : 'noise/signal';
  const rows: string[][] = [[`weight (${metric} of ${kind?.output ?? 'output'})`, 'nodes', ...r.configs]];
  for (const w of r.weights) rows.push([w.name + (w.graph === 'main' ? '' : ` (${w.graph})`), String(w.suffixNodes), ...w.configs.map((c) => fmt(c.effect))]);
  const lines = [table(rows), ''];
  lines.push('additivity (whole model quantized uniformly):');
  lines.push(table([['config', 'predicted (sum)', 'measured', 'measured/predicted'], ...r.additivity.map((a) => [a.config, fmt(a.predicted), fmt(a.measured), fmt(a.ratio)])]));
  lines.push('');
  lines.push(`measured on ${r.samples} ${r.data} samples (${r.dataSource})${r.data === 'synthetic' ? ': SYNTHETIC data, pass --calib for real inputs' : ''} on ${r.provider}${r.providerNote ? ` (${r.providerNote})` : ''}`);
  lines.push(`${r.weights.length} weights × ${r.configs.length} configs in ${r.seconds.toFixed(1)} s${r.cached ? ' (cached)' : ''}`);
  return lines.join('\n');
}

async function run(args: ParsedArgs, io: CliIO, signal: AbortSignal): Promise<number> {
  const model = openModel(args.positionals[0]);
  try {
    const ra = runtimeArgs(model, args.options);
    const configs = typeof args.options.configs === 'string' ? args.options.configs.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
    const pool = new WorkerPool({ size: ra.threads });
    let r: RuntimeSensitivity;
    try {
      r = await runtimeSensitivity(model, ra.calib, {
        pool, configs, batch: ra.batch, calibrator: ra.calibrator, exact: ra.exact, provider: ra.provider, signal,
        cacheDir: args.options['no-cache'] ? undefined : typeof args.options['cache-dir'] === 'string' ? args.options['cache-dir'] : defaultCliCacheDir(),
        onProgress: (d, t) => io.progress(`sensitivity: ${d}/${t}`, d === t),
      });
    } finally {
      io.progressDone();
      await pool.close();
    }
    if (args.options.json) await io.json(SENSITIVITY_SCHEMA, r);
    else await io.line(renderSensitivity(r));
    return EXIT.ok;
  } finally {
    model.close();
  }
}

export const command: CliCommand = {
  name: 'sensitivity',
  summary: 'output-space sensitivity: run the model with each weight quantized alone',
  synopsis: 'MODEL.onnx [options]',
  description: `Output-space sensitivity: each weight matrix quantized alone under each
config (engine numerics), the model run on the data, and how far its first
output moves: KL of the softmax for classifier outputs, noise-to-signal ratio
otherwise (SQNR and cosine for every output in --json). Also the whole model
quantized uniformly, next to the sum of single-layer effects (additivity).
Results say they were measured, and on real or synthetic data.`,
  options: [
    { name: 'configs', value: 'ID,...', help: `configs to measure (default ${DEFAULT_RUNTIME_CONFIGS.join(',')})` },
    { name: 'no-cache', help: 'neither read nor write the results cache' },
    { name: 'cache-dir', value: 'DIR', help: 'results cache (default ~/.cache/quantscope)' },
    ...RUNTIME_OPTIONS,
  ],
  positionals: { min: 1, max: 1 },
  jsonSchema: SENSITIVITY_SCHEMA,
  run,
};

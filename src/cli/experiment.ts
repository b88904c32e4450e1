/**
 * `quantscope experiment MODEL [--calib DATA] --configs ID,... [--json]`:
 * the whole model quantized under each config, run on the data: size,
 * output metrics and time per config.
 */
import type { CliCommand, ParsedArgs } from './command';
import { EXIT, UsageError } from './exitCodes';
import type { CliIO } from './io';
import { openModel } from '../formats/index';
import { WorkerPool } from '../jobs/pool';
import { Experiment, runExperiment } from '../pipelines/evaluate';
import { RUNTIME_OPTIONS, fmt, runtimeArgs, table } from './runtimeArgs';

export const EXPERIMENT_SCHEMA = 'quantscope/experiment/v1';

export function renderExperiment(e: Experiment): string {
  const rows: string[][] = [['config', 'MB', 'vs float', 'output', 'KL', 'SQNR dB', 'cosine', 'max|Δ|', 's']];
  for (const r of e.results) {
    r.outputs.forEach((o, i) => rows.push([
      i ? '' : r.config, i ? '' : (r.bytes / 1e6).toFixed(2), i ? '' : `${((100 * r.bytes) / r.floatBytes).toFixed(1)}%`,
      o.output, fmt(o.kl), fmt(o.sqnrDb), o.cosine.toFixed(5), fmt(o.maxAbs), i ? '' : r.seconds.toFixed(1),
    ]));
  }
  return [
    table(rows), '',
    `measured on ${e.samples} ${e.data} samples (${e.dataSource})${e.data === 'synthetic' ? ': SYNTHETIC data, pass --calib for real inputs' : ''} on ${e.provider}${e.providerNote ? ` (${e.providerNote})` : ''}; float model ${(e.results[0]?.floatBytes / 1e6).toFixed(2)} MB`,
  ].join('\n');
}

async function run(args: ParsedArgs, io: CliIO, signal: AbortSignal): Promise<number> {
  if (typeof args.options.configs !== 'string') throw new UsageError('--configs ID,... is required');
  const configs = args.options.configs.split(',').map((s) => s.trim()).filter(Boolean);
  const model = openModel(args.positionals[0]);
  try {
    const ra = runtimeArgs(model, args.options);
    const pool = new WorkerPool({ size: ra.threads });
    let e: Experiment;
    try {
      e = await runExperiment(model, ra.calib, { pool, configs, batch: ra.batch, calibrator: ra.calibrator, exact: ra.exact, provider: ra.provider, signal });
    } finally { await pool.close(); }
    if (args.options.json) await io.json(EXPERIMENT_SCHEMA, e);
    else await io.line(renderExperiment(e));
    return EXIT.ok;
  } finally {
    model.close();
  }
}

export const command: CliCommand = {
  name: 'experiment',
  summary: 'quantize the whole model under each config and measure its outputs',
  synopsis: 'MODEL.onnx --configs ID,... [options]',
  description: `Quantizes every weight matrix under each config (engine numerics), runs the
model on the data, and reports per config: size, how far each output moved
(KL for classifier outputs, SQNR, cosine, max |Δ|) and the time taken,
labelled measured, on real or synthetic data.`,
  options: [{ name: 'configs', value: 'ID,...', help: 'catalogue configs to evaluate (required), e.g. int8-channel,int4-g128' }, ...RUNTIME_OPTIONS],
  positionals: { min: 1, max: 1 },
  jsonSchema: EXPERIMENT_SCHEMA,
  run,
};

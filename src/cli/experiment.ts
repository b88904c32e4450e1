/**
 * `quantscope experiment MODEL [--calib DATA] --configs ID,... [--json]`:
 * the whole model quantized under each config, run on the data: size,
 * output metrics and time per config.
 */
import { CliCommand, parseArgs } from './common';
import { openModel } from '../formats/index';
import { WorkerPool } from '../jobs/pool';
import { Experiment, runExperiment } from '../pipelines/evaluate';
import { RUNTIME_HELP, RUNTIME_VALUE_FLAGS, fmt, runtimeArgs, table, toJson } from './runtimeArgs';

const HELP = `Usage: quantscope experiment MODEL.onnx --configs ID,... [options]

Quantize every weight matrix under each config (engine numerics), run the
model on the data, and report per config: size, how far each output moved
(KL for classifier outputs, SQNR, cosine, max |Δ|) and the time taken.

${RUNTIME_HELP}`;

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
    `measured on ${e.samples} ${e.data} samples (${e.dataSource})${e.data === 'synthetic' ? ': SYNTHETIC data, pass --calib for real inputs' : ''}; float model ${(e.results[0]?.floatBytes / 1e6).toFixed(2)} MB`,
  ].join('\n');
}

export async function runExperimentCli(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(argv, RUNTIME_VALUE_FLAGS);
  if (flags.help || flags.h) { console.log(HELP); return 0; }
  if (positionals.length !== 1) { console.error(`quantscope experiment: expected one MODEL\n\n${HELP}`); return 2; }
  if (typeof flags.configs !== 'string') { console.error(`quantscope experiment: --configs ID,... is required\n\n${HELP}`); return 2; }
  const configs = flags.configs.split(',').map((s) => s.trim()).filter(Boolean);
  const model = openModel(positionals[0]);
  try {
    let args;
    try { args = runtimeArgs(model, flags); } catch (e) { console.error(`quantscope experiment: ${(e as Error).message}`); return 2; }
    const pool = new WorkerPool({ size: args.threads });
    let e: Experiment;
    try {
      e = await runExperiment(model, args.calib, { pool, configs, batch: args.batch, calibrator: args.calibrator, exact: args.exact });
    } finally { await pool.close(); }
    console.log(flags.json ? toJson(e) : renderExperiment(e));
    return 0;
  } finally {
    model.close();
  }
}

export const command: CliCommand = { summary: 'quantize the whole model under each config and measure its outputs', run: runExperimentCli };

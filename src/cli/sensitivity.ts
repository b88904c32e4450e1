/**
 * `quantscope sensitivity MODEL [--calib DATA] [--configs ID,...] [--samples N] [--json]`:
 * output-space sensitivity, measured by running the model: each weight
 * quantized alone under each config, the change of the outputs over the data.
 */
import { CliCommand, parseArgs } from './common';
import { openModel } from '../formats/index';
import { WorkerPool } from '../jobs/pool';
import { DEFAULT_RUNTIME_CONFIGS, RuntimeSensitivity, runtimeSensitivity } from '../pipelines/evaluate';
import { defaultCliCacheDir } from '../pipelines/statsCache';
import { RUNTIME_HELP, RUNTIME_VALUE_FLAGS, fmt, runtimeArgs, table, toJson } from './runtimeArgs';

const HELP = `Usage: quantscope sensitivity MODEL.onnx [options]

Output-space sensitivity: each weight matrix quantized alone under each
config (engine numerics), the model run on the data, and how far its first
output moves: KL of the softmax for classifier outputs, noise-to-signal ratio
otherwise (SQNR and cosine for every output in --json). Also the whole model
quantized uniformly, next to the sum of single-layer effects (additivity).

Options:
  --configs ID,...     configs to measure (default ${DEFAULT_RUNTIME_CONFIGS.join(',')})
${RUNTIME_HELP}`;

export function renderSensitivity(r: RuntimeSensitivity): string {
  const kind = r.weights[0]?.configs[0]?.outputs[0];
  const metric = kind?.kl !== undefined ? 'KL' : 'noise/signal';
  const rows: string[][] = [[`weight (${metric} of ${kind?.output ?? 'output'})`, 'nodes', ...r.configs]];
  for (const w of r.weights) rows.push([w.name + (w.graph === 'main' ? '' : ` (${w.graph})`), String(w.suffixNodes), ...w.configs.map((c) => fmt(c.effect))]);
  const lines = [table(rows), ''];
  lines.push('additivity (whole model quantized uniformly):');
  lines.push(table([['config', 'predicted (sum)', 'measured', 'measured/predicted'], ...r.additivity.map((a) => [a.config, fmt(a.predicted), fmt(a.measured), fmt(a.ratio)])]));
  lines.push('');
  lines.push(`measured on ${r.samples} ${r.data} samples (${r.dataSource})${r.data === 'synthetic' ? ': SYNTHETIC data, pass --calib for real inputs' : ''}`);
  lines.push(`${r.weights.length} weights × ${r.configs.length} configs in ${r.seconds.toFixed(1)} s${r.cached ? ' (cached)' : ''}`);
  return lines.join('\n');
}

/** The entry the CLI frame registers: argv after the command name, returns the exit code. */
export async function runSensitivity(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(argv, RUNTIME_VALUE_FLAGS);
  if (flags.help || flags.h) { console.log(HELP); return 0; }
  if (positionals.length !== 1) { console.error(`quantscope sensitivity: expected one MODEL\n\n${HELP}`); return 2; }
  const model = openModel(positionals[0]);
  try {
    let args;
    try { args = runtimeArgs(model, flags); } catch (e) { console.error(`quantscope sensitivity: ${(e as Error).message}`); return 2; }
    const configs = typeof flags.configs === 'string' ? flags.configs.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
    const pool = new WorkerPool({ size: args.threads });
    const tty = process.stderr.isTTY;
    let r: RuntimeSensitivity;
    try {
      r = await runtimeSensitivity(model, args.calib, {
        pool, configs, batch: args.batch, calibrator: args.calibrator, exact: args.exact,
        cacheDir: flags['no-cache'] ? undefined : typeof flags['cache-dir'] === 'string' ? flags['cache-dir'] : defaultCliCacheDir(),
        onProgress: (d, t) => { if (tty) process.stderr.write(`\r\x1b[Ksensitivity: ${d}/${t}`); },
      });
    } finally {
      if (tty) process.stderr.write('\r\x1b[K');
      await pool.close();
    }
    console.log(flags.json ? toJson(r) : renderSensitivity(r));
    return 0;
  } finally {
    model.close();
  }
}

export const command: CliCommand = { summary: 'output-space sensitivity: run the model with each weight quantized', run: runSensitivity };

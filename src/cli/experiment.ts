/**
 * `quantscope experiment MODEL [--calib DATA] --configs ID[@ALGO],... [--algos rtn,gptq,awq] [--json]`:
 * the whole model quantized under each config and algorithm, run on the
 * data: size, output metrics and time per run.
 */
import type { CliCommand, ParsedArgs } from './command';
import { EXIT, UsageError } from './exitCodes';
import type { CliIO } from './io';
import { openModel } from '../formats/index';
import type { CalibratorName } from '../quant/calibrators';
import { configById } from '../quant/configs';
import { WorkerPool } from '../jobs/pool';
import { EXPERIMENT_ALGORITHMS, Experiment, ExperimentAlgorithm, ExperimentRun, calibratedGrid, experimentRunRefusal, runExperiment } from '../pipelines/evaluate';
import { RUNTIME_OPTIONS, fmt, runtimeArgs, table } from './runtimeArgs';

export const EXPERIMENT_SCHEMA = 'quantscope/experiment/v1';

export function renderExperiment(e: Experiment): string {
  const rows: string[][] = [['config', 'algo', 'MB', 'vs float', 'output', 'KL', 'SQNR dB', 'cosine', 'max|Δ|', 's']];
  const notes: string[] = [];
  for (const r of e.results) {
    r.outputs.forEach((o, i) => rows.push([
      i ? '' : r.config, i ? '' : r.algorithm, i ? '' : (r.bytes / 1e6).toFixed(2), i ? '' : `${((100 * r.bytes) / r.floatBytes).toFixed(1)}%`,
      o.output, fmt(o.kl), fmt(o.sqnrDb), o.cosine.toFixed(5), fmt(o.maxAbs), i ? '' : r.seconds.toFixed(1),
    ]));
    const c = r.calibrated;
    if (c) {
      const why = [...new Set(c.roundedToNearest.map((x) => x.reason))];
      notes.push(`${r.config} ${r.algorithm}: ${c.weights.length} of ${c.weights.length + c.roundedToNearest.length} weights by ${r.algorithm.toUpperCase()}${c.roundedToNearest.length ? `; rounded to nearest: ${c.roundedToNearest.map((x) => x.name).join(', ')} (${why.join('; ')})` : ''}`);
    }
  }
  return [
    table(rows), '',
    ...notes,
    `measured on ${e.samples} ${e.data} samples (${e.dataSource})${e.data === 'synthetic' ? ': SYNTHETIC data, pass --calib for real inputs' : ''} on ${e.provider}${e.providerNote ? ` (${e.providerNote})` : ''}; float model ${(e.results[0]?.floatBytes / 1e6).toFixed(2)} MB`,
  ].join('\n');
}

/**
 * The runs of a command line: `--configs` items, each `ID` (crossed with
 * every `--algos` algorithm, default rtn; GPTQ / AWQ only for the integer
 * configs they quantize) or `ID@ALGO` (that one run).
 */
export function commandLineRuns(configs: string, algos: string | undefined): { runs: ExperimentRun[]; skipped: string[] } {
  const algoList = (algos ?? 'rtn').split(',').map((s) => s.trim()).filter(Boolean);
  const isAlgo = (a: string): a is ExperimentAlgorithm => (EXPERIMENT_ALGORITHMS as readonly string[]).includes(a);
  for (const a of algoList) if (!isAlgo(a)) throw new UsageError(`--algos: unknown algorithm '${a}' (known: ${EXPERIMENT_ALGORITHMS.join(', ')})`);
  if (!algoList.length) throw new UsageError('--algos needs at least one of rtn, gptq, awq');
  const runs: ExperimentRun[] = [];
  const skipped: string[] = [];
  const add = (run: ExperimentRun, explicit: boolean) => {
    try { configById(run.config); } catch (e) { throw new UsageError(`--configs: ${(e as Error).message}`); }
    if (run.algorithm !== 'rtn') {
      try { calibratedGrid(run.config, run.algorithm); } catch (e) {
        if (explicit) throw new UsageError(`--configs ${run.config}@${run.algorithm}: ${(e as Error).message}`);
        skipped.push(`${run.config}@${run.algorithm}: ${(e as Error).message}`);
        return;
      }
    }
    if (!runs.some((r) => r.config === run.config && r.algorithm === run.algorithm)) runs.push(run);
  };
  for (const item of configs.split(',').map((s) => s.trim()).filter(Boolean)) {
    const at = item.indexOf('@');
    if (at < 0) { for (const a of algoList as ExperimentAlgorithm[]) add({ config: item, algorithm: a }, false); continue; }
    const a = item.slice(at + 1);
    if (!isAlgo(a)) throw new UsageError(`--configs ${item}: unknown algorithm '${a}' (known: ${EXPERIMENT_ALGORITHMS.join(', ')})`);
    add({ config: item.slice(0, at), algorithm: a }, true);
  }
  if (!runs.length) throw new UsageError(`--configs: nothing to run${skipped.length ? ` (${skipped.join('; ')})` : ''}`);
  return { runs, skipped };
}

async function run(args: ParsedArgs, io: CliIO, signal: AbortSignal): Promise<number> {
  if (typeof args.options.configs !== 'string') throw new UsageError('--configs ID,... is required');
  const { runs, skipped } = commandLineRuns(args.options.configs, typeof args.options.algos === 'string' ? args.options.algos : undefined);
  const calibrator = (typeof args.options.calibrator === 'string' ? args.options.calibrator : 'minmax') as CalibratorName;
  for (const r of runs) {
    // Refused before any data is read: without --calib the data would be synthetic.
    const refusal = experimentRunRefusal(r, typeof args.options.calib === 'string' ? 'real' : 'synthetic', calibrator);
    if (refusal) throw new UsageError(`${r.config}@${r.algorithm}: ${refusal}`);
  }
  for (const s of skipped) io.note(`skipped ${s}`);
  const model = openModel(args.positionals[0]);
  try {
    const ra = runtimeArgs(model, args.options);
    const pool = new WorkerPool({ size: ra.threads });
    let e: Experiment;
    try {
      e = await runExperiment(model, ra.calib, {
        pool, runs, batch: ra.batch, calibrator: ra.calibrator, exact: ra.exact, provider: ra.provider, signal,
        onProgress: (d, t, what) => io.progress(`experiment ${d}/${t}${what ? ` ${what.slice(0, 60)}` : ''}`, d === t),
      });
    } finally { await pool.close(); }
    io.progressDone();
    if (args.options.json) await io.json(EXPERIMENT_SCHEMA, e);
    else await io.line(renderExperiment(e));
    return EXIT.ok;
  } finally {
    model.close();
  }
}

export const command: CliCommand = {
  name: 'experiment',
  summary: 'quantize the whole model under each config and algorithm and measure its outputs',
  synopsis: 'MODEL.onnx --configs ID[@ALGO],... [--algos rtn,gptq,awq] [options]',
  description: `Quantizes every weight matrix under each config (engine numerics), runs the
model on the data, and reports per run: size, how far each output moved
(KL for classifier outputs, SQNR, cosine, max |Δ|) and the time taken,
labelled measured, on real or synthetic data.

Each run is a config and an algorithm. --algos crosses every --configs ID
with each algorithm listed (default rtn); ID@ALGO in --configs asks for that
one run (e.g. --configs int8-channel,int4-g32@gptq). RTN rounds to nearest
with the config's numerics. GPTQ and AWQ need real data (--calib) and the
minmax calibrator: the inputs of each MatMul/Gemm are recorded on the data and
each weight that 'quantscope quantize --target onnx-int4 --algo gptq|awq'
quantizes gets exactly the values that conversion writes (integer configs
only; others are skipped from the crossing, said so on stderr). Weights they
cannot take (embeddings, convolutions, K not a multiple of the group) are
rounded to nearest under the config, listed per run.`,
  options: [
    { name: 'configs', value: 'ID[@ALGO],...', help: 'catalogue configs to evaluate (required), e.g. int8-channel,int4-g128; ID@gptq for one run with that algorithm' },
    { name: 'algos', value: 'ALGO,...', help: 'algorithms each config is run with: rtn (default), gptq, awq (gptq and awq need --calib)' },
    ...RUNTIME_OPTIONS,
  ],
  positionals: { min: 1, max: 1 },
  jsonSchema: EXPERIMENT_SCHEMA,
  run,
};

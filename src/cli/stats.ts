/**
 * `quantscope stats FILE [--json] [--threads N]`: per-tensor weight statistics
 * computed in a worker pool, with a progress line on stderr when it is a TTY.
 * Results are cached in ~/.cache/quantscope (or --cache-dir) by file identity.
 */
import { CliCommand, ParsedArgs } from './command';
import { EXIT } from './exitCodes';
import { CliIO } from './io';
import { openModel } from '../formats/index';
import { analyseModel, ModelStats, TensorEntry } from '../pipelines/analyseModel';
import { analyseSensitivity, ModelSensitivity } from '../pipelines/analyseSensitivity';
import { StatsCache, defaultCliCacheDir } from '../pipelines/statsCache';
import { StatsOptions } from '../analysis/weightStats';
import { WorkerPool } from '../jobs/pool';

function num(v: number, digits = 4): string {
  if (Number.isNaN(v)) return '-';
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(digits - 1) : v.toPrecision(digits);
}

function renderText(r: ModelStats): string {
  const rows: string[][] = [['tensor', 'dtype', 'shape', 'min', 'max', 'mean', 'std', 'kurt', 'zeros%', '>6σ', 'p99.99', 'ch.out']];
  const pct = (e: TensorEntry, q: number) => e.stats.percentiles.find((p) => p.q === q)?.value ?? NaN;
  for (const e of r.tensors) {
    const s = e.stats;
    rows.push([
      e.name, e.dtype, e.shape.join('×'), num(s.min), num(s.max), num(s.mean), num(s.std), num(s.kurtosis, 3),
      (100 * s.sparsity).toFixed(1), String(s.outliers.count), num(pct(e, 99.99)),
      s.channels ? `${s.channels.outlierChannels.length}/${s.channels.channels}` : '-',
    ]);
  }
  const w = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const lines = rows.map((row) => row.map((cell, c) => (c < 3 ? cell.padEnd(w[c]) : cell.padStart(w[c]))).join('  '));
  lines.push('');
  const nonFinite = r.tensors.filter((e) => e.stats.nan + e.stats.inf > 0).map((e) => e.name);
  if (nonFinite.length) lines.push(`NaN/Inf in: ${nonFinite.join(', ')}`);
  for (const f of r.failed) lines.push(`failed: ${f.name}: ${f.error}`);
  if (r.skipped.length) lines.push(`skipped ${r.skipped.length} non-float tensor(s)`);
  lines.push(`${r.tensors.length} tensors analysed in ${r.seconds.toFixed(2)} s`);
  return lines.join('\n');
}

function renderSensitivity(r: ModelSensitivity): string {
  const ids = r.tensors[0]?.sensitivity.configs.map((c) => c.config) ?? [];
  const rows: string[][] = [['tensor (SQNR dB)', ...ids]];
  for (const t of r.tensors) rows.push([t.name, ...t.sensitivity.configs.map((c) => c.sqnrDb.toFixed(1))]);
  const w = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const lines = rows.map((row) => row.map((cell, c) => (c === 0 ? cell.padEnd(w[c]) : cell.padStart(w[c]))).join('  '));
  for (const f of r.failed) lines.push(`failed: ${f.name}: ${f.error}`);
  return lines.join('\n');
}

export const STATS_SCHEMA = 'quantscope/stats/v1';

async function run(args: ParsedArgs, io: CliIO, signal: AbortSignal): Promise<number> {
  const o = args.options;
  const threads = o.threads as number | undefined;
  const settings: StatsOptions = {};
  if (o.top !== undefined) settings.topK = o.top as number;
  if (o['no-refine']) settings.refinePercentiles = false;

  const model = openModel(args.positionals[0]);
  try {
    const cache = o['no-cache'] ? undefined : new StatsCache(typeof o['cache-dir'] === 'string' ? o['cache-dir'] : defaultCliCacheDir());
    let result = cache?.load(model.files, settings);
    if (!result) {
      const pool = new WorkerPool({ size: threads });
      const t0 = Date.now();
      const bytesTotal = model.sizeOnDisk;
      try {
        result = await analyseModel(model, {
          pool, stats: settings, signal,
          onProgress: (p) => {
            const frac = p.workTotal ? p.workDone / p.workTotal : 1;
            const rate = (frac * bytesTotal) / 1e9 / Math.max(1e-3, (Date.now() - t0) / 1000);
            io.progress(`stats: ${p.tensorsDone}/${p.tensorsTotal} tensors  ${(100 * frac).toFixed(0)}%  ${rate.toFixed(2)} GB/s`, p.tensorsDone === p.tensorsTotal);
          },
        });
      } finally {
        io.progressDone();
        await pool.close();
      }
      // As in the inspector, a pass with failed tensors is not cached: the cause may be this run's (memory, limits), not the file's.
      if (result.failed.length === 0) try { cache?.store(model.files, settings, result); } catch (e) {
        io.note(`quantscope stats: ${io.paint(33, 'warning')}: could not write the cache: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    let sens: ModelSensitivity | undefined;
    if (o.sensitivity) {
      const pool = new WorkerPool({ size: threads });
      try { sens = await analyseSensitivity(model, { pool, signal }); } finally { await pool.close(); }
    }
    // Typed arrays (per-channel statistics) print as JSON arrays; NaN and ±Inf as null.
    if (o.json) await io.json(STATS_SCHEMA, sens ? { ...result, sensitivity: sens } : result);
    else {
      await io.line(renderText(result));
      if (sens) await io.line(`\n${renderSensitivity(sens)}`);
    }
    return result.failed.length || sens?.failed.length ? EXIT.badInput : EXIT.ok;
  } finally {
    model.close();
  }
}

export const command: CliCommand = {
  name: 'stats',
  summary: 'per-tensor weight statistics, outliers and percentiles',
  synopsis: 'FILE [options]',
  description: `Per-tensor statistics of every floating-point weight: range, moments,
sparsity, percentiles, histograms, outliers, per-output-channel spread.
Computed in worker threads; results are cached by file identity (path,
size, mtime) and settings. Exits 1 if any tensor could not be analysed.`,
  options: [
    { name: 'json', help: 'print the full results as JSON on stdout' },
    { name: 'threads', value: 'N', int: { min: 1, max: 1024 }, help: 'worker threads (default: number of cores)' },
    { name: 'top', value: 'K', int: { min: 0, max: 1 << 20 }, help: 'largest-|x| values kept per tensor (default 16)' },
    { name: 'no-cache', help: 'neither read nor write the results cache' },
    { name: 'cache-dir', value: 'DIR', help: 'cache directory (default $XDG_CACHE_HOME/quantscope or ~/.cache/quantscope)' },
    { name: 'no-refine', help: 'float32: report each percentile as the middle of its 16-bit key bucket with an error bound, not exactly' },
    { name: 'sensitivity', help: 'also measure each weight matrix\'s quantization error per candidate format (int8/int4/int3/int2/NF4/FP8) and its bytes' },
  ],
  positionals: { min: 1, max: 1 },
  jsonSchema: STATS_SCHEMA,
  run,
};

/**
 * `quantscope stats FILE [--json] [--threads N]`: per-tensor weight statistics
 * computed in a worker pool, with a progress line on stderr when it is a TTY.
 * Results are cached in ~/.cache/quantscope (or --cache-dir) by file identity.
 */
import { CliCommand, parseArgs } from './common';
import { openModel } from '../formats/index';
import { analyseModel, ModelStats, TensorEntry } from '../pipelines/analyseModel';
import { analyseSensitivity, ModelSensitivity } from '../pipelines/analyseSensitivity';
import { StatsCache, defaultCliCacheDir } from '../pipelines/statsCache';
import { StatsOptions } from '../analysis/weightStats';
import { WorkerPool } from '../jobs/pool';

const HELP = `Usage: quantscope stats FILE [options]

Per-tensor statistics of every floating-point weight: range, moments,
sparsity, percentiles, histograms, outliers, per-output-channel spread.

Options:
  --json             print the full results as JSON on stdout
  --threads N        worker threads (default: number of cores)
  --top K            largest-|x| values kept per tensor (default 16)
  --no-cache         neither read nor write the results cache
  --cache-dir DIR    cache directory (default ~/.cache/quantscope)
  --no-refine        float32: report each percentile as the middle of its
                     16-bit key bucket with an error bound, not exactly
  --sensitivity      also measure each weight matrix's quantization error per
                     candidate format (int8/int4/int3/int2/NF4/FP8) and its bytes`;

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

async function run(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs(argv, ['threads', 'cache-dir', 'top']);
  if (flags.help || flags.h) { console.log(HELP); return 0; }
  if (positionals.length !== 1) { console.error(`quantscope stats: expected one FILE\n\n${HELP}`); return 2; }
  let threads: number | undefined;
  if (flags.threads !== undefined) {
    threads = Number(flags.threads);
    if (!Number.isInteger(threads) || threads < 1) { console.error(`quantscope stats: --threads must be a positive integer, got '${flags.threads}'`); return 2; }
  }
  const settings: StatsOptions = {};
  if (flags.top !== undefined) {
    const k = Number(flags.top);
    if (!Number.isInteger(k) || k < 0) { console.error(`quantscope stats: --top must be a non-negative integer, got '${flags.top}'`); return 2; }
    settings.topK = k;
  }
  if (flags['no-refine']) settings.refinePercentiles = false;

  const model = openModel(positionals[0]);
  try {
    const cache = flags['no-cache'] ? undefined : new StatsCache(typeof flags['cache-dir'] === 'string' ? flags['cache-dir'] : defaultCliCacheDir());
    let result = cache?.load(model.files, settings);
    if (!result) {
      const pool = new WorkerPool({ size: threads });
      const tty = process.stderr.isTTY;
      let lastDraw = 0;
      const t0 = Date.now();
      const bytesTotal = model.sizeOnDisk;
      try {
        result = await analyseModel(model, {
          pool, stats: settings,
          onProgress: (p) => {
            const now = Date.now();
            if (!tty || (now - lastDraw < 100 && p.tensorsDone < p.tensorsTotal)) return;
            lastDraw = now;
            const frac = p.workTotal ? p.workDone / p.workTotal : 1;
            const rate = (frac * bytesTotal) / 1e9 / Math.max(1e-3, (now - t0) / 1000);
            process.stderr.write(`\r\x1b[Kstats: ${p.tensorsDone}/${p.tensorsTotal} tensors  ${(100 * frac).toFixed(0)}%  ${rate.toFixed(2)} GB/s`);
          },
        });
      } finally {
        if (tty) process.stderr.write('\r\x1b[K');
        await pool.close();
      }
      try { cache?.store(model.files, settings, result); } catch (e) {
        console.error(`quantscope stats: could not write the cache: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    let sens: ModelSensitivity | undefined;
    if (flags.sensitivity) {
      const pool = new WorkerPool({ size: threads });
      try { sens = await analyseSensitivity(model, { pool }); } finally { await pool.close(); }
    }
    // Typed arrays (per-channel statistics) print as JSON arrays; NaN and ±Inf as null.
    const json = (v: unknown) => JSON.stringify(v, (_k, x: unknown) => (x instanceof Float64Array ? Array.from(x) : typeof x === 'number' && !Number.isFinite(x) ? null : x));
    if (flags.json) console.log(json(sens ? { ...result, sensitivity: sens } : result));
    else {
      console.log(renderText(result));
      if (sens) console.log(`\n${renderSensitivity(sens)}`);
    }
    return result.failed.length || sens?.failed.length ? 1 : 0;
  } finally {
    model.close();
  }
}

export const command: CliCommand = { summary: 'per-tensor weight statistics, outliers and percentiles', run };

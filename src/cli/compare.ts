/**
 * `quantscope compare A B [--data DATA] [--json]`: every weight of A against
 * its counterpart in B (type change, SQNR, cosine, max |Δ|), worst first,
 * and the outputs of both on the data when both are ONNX graphs.
 */
import type { CliCommand, ParsedArgs } from './command';
import { EXIT } from './exitCodes';
import type { CliIO } from './io';
import { openModel } from '../formats/index';
import type { ModelFile } from '../formats/types';
import { WorkerPool } from '../jobs/pool';
import { ModelComparison, compareModels } from '../pipelines/compare';
import { RUNTIME_OPTIONS, fmt, runtimeArgs, table } from './runtimeArgs';

export const COMPARE_SCHEMA = 'quantscope/compare/v1';

export function renderComparison(c: ModelComparison, limit = 40): string {
  const rows: string[][] = [['tensor', 'A type', 'B type', 'SQNR dB', 'cosine', 'max|Δ|']];
  for (const t of c.tensors.slice(0, limit)) {
    rows.push([t.nameB ? `${t.name} ~ ${t.nameB}` : t.name, t.typeA, t.typeB, t.error ? 'error' : fmt(t.sqnrDb), t.cosine === undefined ? '-' : t.cosine.toFixed(5), fmt(t.maxAbs)]);
  }
  const lines = [`A ${c.a.file} (${c.a.format}, ${(c.a.sizeOnDisk / 1e6).toFixed(2)} MB)`, `B ${c.b.file} (${c.b.format}, ${(c.b.sizeOnDisk / 1e6).toFixed(2)} MB)`, '', table(rows)];
  if (c.tensors.length > limit) lines.push(`… ${c.tensors.length - limit} more pairs (best last; --json lists all)`);
  for (const t of c.tensors) if (t.error) lines.push(`  ${t.name}: ${t.error}`);
  lines.push('', `${c.tensors.length} pairs; only in A: ${c.onlyA.length}; only in B: ${c.onlyB.length}`);
  if (c.outputs) {
    const o = c.outputs;
    lines.push('', `outputs on ${o.samples} ${o.data} samples (${o.dataSource})${o.data === 'synthetic' ? ': SYNTHETIC data, pass --data for real inputs' : ''}:`);
    lines.push(table([['output', 'KL', 'SQNR dB', 'cosine', 'max|Δ|'], ...o.outputs.map((m) => [m.output, fmt(m.kl), fmt(m.sqnrDb), m.cosine.toFixed(5), fmt(m.maxAbs)])]));
  } else if (c.outputsSkipped) lines.push('', `outputs not compared: ${c.outputsSkipped}`);
  return lines.join('\n');
}

async function run(args: ParsedArgs, io: CliIO, signal: AbortSignal): Promise<number> {
  const [fa, fb] = args.positionals;
  const opened: ModelFile[] = [];
  try {
    const a = openModel(fa);
    opened.push(a);
    const b = openModel(fb);
    opened.push(b);
    const flags = { ...args.options, calib: args.options.data ?? args.options.calib };
    const bothOnnx = a.format === 'onnx' && b.format === 'onnx';
    const ra = bothOnnx && !args.options['no-outputs'] ? runtimeArgs(a, { samples: 4, ...flags }) : undefined;
    const pool = new WorkerPool({ size: typeof args.options.threads === 'number' ? args.options.threads : undefined });
    let c: ModelComparison;
    try {
      c = await compareModels(a, b, {
        pool, signal, calib: ra?.calib, outputs: bothOnnx && !args.options['no-outputs'],
        onProgress: (done, total, what) => io.progress(`compare ${done}/${total} ${what}`),
      });
    } finally {
      io.progressDone();
      await pool.close();
    }
    if (args.options.json) await io.json(COMPARE_SCHEMA, { ...c, tensors: c.tensors.map(({ histogram: _h, ...t }) => t) });
    else await io.line(renderComparison(c));
    return EXIT.ok;
  } finally {
    for (const m of opened) m.close();
  }
}

export const command: CliCommand = {
  name: 'compare',
  summary: 'compare two models weight by weight (and their outputs when both are ONNX)',
  synopsis: 'A B [--data DATA] [options]',
  description: `Pairs the weights of A and B by name, then through the naming map
(model.layers.3.self_attn.q_proj.weight ~ blk.3.attn_q.weight), decodes both to
float32 (GGUF block types, ONNX MatMulNBits / DequantizeLinear / MatMulInteger
weights) and reports per pair, worst first: the type change, SQNR (A is the
reference), cosine similarity and max |A-B|. When both are ONNX graphs with the
same inputs, both run in ONNX Runtime on the data (synthetic without --data,
labelled so) and every output is compared.`,
  options: [
    { name: 'data', value: 'DATA', help: 'inputs for the output comparison (same forms as --calib)' },
    { name: 'no-outputs', help: 'compare weights only (do not run the models)' },
    ...RUNTIME_OPTIONS.filter((o) => !['batch', 'calibrator', 'exact'].includes(o.name)),
  ],
  positionals: { min: 2, max: 2 },
  jsonSchema: COMPARE_SCHEMA,
  run,
};

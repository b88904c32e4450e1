/**
 * Weight-space sensitivity: for a tensor and each candidate quantization
 * config, the error of round-to-nearest quantization (MSE, SQNR, relative
 * Frobenius error) under the better of two calibrators (min-max and MSE
 * clipping), and the bytes the tensor would take including scales and zero
 * points. This table feeds the mixed-precision search and the UI.
 *
 * Large tensors (default > 1M elements) are measured on a deterministic sample of whole row blocks
 * (128 rows along axis 0, so every group of 32/64/128 stays intact); bytes
 * are always those of the full tensor.
 */
import type { ModelFile, TensorInfo } from '../formats/types';
import type { Impl } from '../kernels/runtime';
import { CONFIGS, quantize, scaleBytesFor, specFor, storageBytes, weightErrorReport, weightLayout } from '../quant/index';
import { groupLines, rtnErrorSums, sensFormatOf } from '../quant/rtnErrors';

/** A tensor holding ±Inf and no NaN (an attention mask, a lookup table): not a weight a quantizer converts. */
export class NonFiniteTensorError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = 'NonFiniteTensorError';
  }
}

export const CALIBRATORS = ['minmax', 'mse'] as const;

export interface ConfigSensitivity {
  config: string;
  /** The calibrator with the lower MSE. */
  calibrator: (typeof CALIBRATORS)[number];
  mse: number;
  sqnrDb: number;
  /** ‖W − Ŵ‖ / ‖W‖. */
  relError: number;
  /** MSE of each calibrator tried. */
  tried: Record<string, number>;
  /** Bytes of the full tensor: packed codes + scales + zero points. */
  bytes: number;
  bitsPerWeight: number;
}

export interface TensorSensitivity {
  numel: number;
  /** Elements the errors were measured on (numel unless sampled). */
  measuredElements: number;
  configs: ConfigSensitivity[];
}

export interface SensitivityOptions {
  /** Measure on at most about this many elements (whole 128-row blocks). Default 1M (about 2.5 CPU-s per tensor for all configs). */
  maxElements?: number;
  /** Bytes per stored scale: 4 for float32 models, 2 for 16-bit ones. Default 4. */
  scaleBytes?: number;
  /** Restrict to these config ids. */
  configs?: string[];
  /**
   * The error sums: 'auto' (default) the WebAssembly sensitivity kernel, 'ref' its TypeScript twin,
   * 'wasm' the kernel or an error. Configs no kernel covers are quantized in full either way.
   */
  impl?: Impl;
}

/** Squared-error sum and signal energy → the table's MSE, SQNR and relative Frobenius error (as weightErrorReport computes them). */
function errorFigures(sse: number, energy: number, n: number): { mse: number; sqnrDb: number; relFrobenius: number } {
  return {
    mse: n ? sse / n : 0,
    sqnrDb: sse === 0 ? Infinity : 10 * Math.log10(energy / sse),
    relFrobenius: energy === 0 ? (sse === 0 ? 0 : Infinity) : Math.sqrt(sse / energy),
  };
}

/** Which 128-row blocks of axis 0 to measure: evenly spread, at most ~maxElements elements. */
export function sampleRows(shape: readonly number[], maxElements: number): { rows: [number, number][]; sampledShape: number[] } {
  const numel = shape.reduce((a, b) => a * b, 1);
  const rows0 = shape.length ? shape[0] : 1;
  if (numel <= maxElements || shape.length === 0) return { rows: [[0, rows0]], sampledShape: [...shape] };
  const rowSize = numel / rows0;
  const BLOCK = 128;
  const blocks = Math.ceil(rows0 / BLOCK);
  const want = Math.max(1, Math.min(blocks, Math.floor(maxElements / (rowSize * BLOCK))));
  const rows: [number, number][] = [];
  for (let i = 0; i < want; i++) {
    const b = Math.floor((i * blocks) / want);
    rows.push([b * BLOCK, Math.min(rows0, (b + 1) * BLOCK)]);
  }
  const total = rows.reduce((a, [s, e]) => a + e - s, 0);
  return { rows, sampledShape: [total, ...shape.slice(1)] };
}

export function tensorSensitivity(x: Float32Array, shape: readonly number[], fullShape: readonly number[], outputChannelAxis: number | undefined, opts: SensitivityOptions = {}): TensorSensitivity {
  for (let i = 0; i < x.length; i++) {
    if (Number.isFinite(x[i])) continue;
    // NaN is a damaged weight (a failure); ±Inf alone is a mask or a table, not a weight (skipped).
    let nan = Number.isNaN(x[i]) ? i : -1;
    for (let j = i + 1; nan < 0 && j < x.length; j++) if (Number.isNaN(x[j])) nan = j;
    if (nan >= 0) throw new RangeError(`element ${nan} is NaN: sensitivity needs finite weights`);
    throw new NonFiniteTensorError(`element ${i} is ${x[i]}: sensitivity needs finite weights`);
  }
  // The measured sample has the full tensor's rows cut, so it takes the same layout (a conv kernel flattened to [O, rest]).
  const layout = weightLayout(fullShape, outputChannelAxis);
  const sampled = weightLayout(shape, outputChannelAxis).shape;
  const scaleBytes = opts.scaleBytes ?? 4;
  const numel = fullShape.reduce((a, b) => a * b, 1);
  const out: ConfigSensitivity[] = [];
  let energy = 0;
  for (let i = 0; i < x.length; i++) energy += x[i] * x[i];
  // Configs with the same grouping share one view of the data as lines of groups.
  const lines = new Map<string, ReturnType<typeof groupLines>>();
  for (const cfg of CONFIGS) {
    if (opts.configs && !opts.configs.includes(cfg.id)) continue;
    const base = specFor(cfg, layout);
    const tried: Record<string, number> = {};
    let best: { cal: (typeof CALIBRATORS)[number]; rep: { mse: number; sqnrDb: number; relFrobenius: number } } | undefined;
    const key = JSON.stringify(base.granularity);
    const covered = sensFormatOf(base) !== null;
    if (covered && !lines.has(key)) lines.set(key, groupLines(x, sampled, base.granularity));
    const sums = covered ? rtnErrorSums(x, sampled, base, { impl: opts.impl, lines: lines.get(key) }) : null;
    for (const cal of CALIBRATORS) {
      let rep: { mse: number; sqnrDb: number; relFrobenius: number };
      if (sums) {
        rep = errorFigures(sums[cal], energy, x.length);
      } else {
        if (opts.impl === 'wasm') throw new RangeError(`sensitivity: impl 'wasm' asked for, but no kernel covers config ${cfg.id}`);
        rep = weightErrorReport(x, quantize(x, sampled, { ...base, calibrator: cal }).dequantized);
      }
      tried[cal] = rep.mse;
      if (!best || rep.mse < best.rep.mse) best = { cal, rep };
    }
    const bytes = storageBytes(layout.shape, base, { scaleBytes });
    out.push({
      config: cfg.id, calibrator: best!.cal, mse: best!.rep.mse, sqnrDb: best!.rep.sqnrDb, relError: best!.rep.relFrobenius,
      tried, bytes, bitsPerWeight: (8 * bytes) / numel,
    });
  }
  return { numel, measuredElements: x.length, configs: out };
}

/** Reads the (sampled) tensor from the model and measures it. */
export function modelTensorSensitivity(model: ModelFile, t: TensorInfo, opts: SensitivityOptions = {}): TensorSensitivity {
  const { rows, sampledShape } = sampleRows(t.shape, opts.maxElements ?? 1024 * 1024);
  const rowSize = t.shape.length ? t.numel / t.shape[0] : 1;
  const x = new Float32Array(sampledShape.reduce((a, b) => a * b, 1));
  let o = 0;
  for (const [s, e] of rows) {
    const v = model.readFloat32(t, s * rowSize, (e - s) * rowSize);
    x.set(v, o);
    o += v.length;
  }
  const scaleBytes = opts.scaleBytes ?? scaleBytesFor(t.dtype);
  try {
    return tensorSensitivity(x, t.shape.length ? sampledShape : [t.numel], t.shape.length ? t.shape : [t.numel], t.layer.outputChannelAxis, { ...opts, scaleBytes });
  } catch (e) {
    const message = `${model.path}: tensor ${t.name}: ${e instanceof Error ? e.message : String(e)}`;
    throw e instanceof NonFiniteTensorError ? new NonFiniteTensorError(message) : new Error(message);
  }
}

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
import { Granularity, QuantSpec, groupLayout, quantize, weightErrorReport } from '../quant/index';

export interface SensitivityConfig {
  id: string;
  /** Element width in bits (code storage, packed). */
  bits: number;
  make(shape: readonly number[], channelAxis: number, groupAxis: number): Omit<QuantSpec, 'calibrator'>;
}

const group = (axis: number, size: number): Granularity => ({ kind: 'group', axis, size });
const perChannel = (shape: readonly number[], axis: number): Granularity => (shape.length >= 2 ? { kind: 'channel', axis } : { kind: 'tensor' });

/** Low-bit integer configs are asymmetric (a zero point per group), as MatMulNBits and llama.cpp's _1 types. */
export const SENSITIVITY_CONFIGS: readonly SensitivityConfig[] = [
  { id: 'int8-channel', bits: 8, make: (s, c) => ({ format: 'int', bits: 8, symmetric: true, granularity: perChannel(s, c) }) },
  { id: 'int4-g128', bits: 4, make: (_s, _c, g) => ({ format: 'int', bits: 4, symmetric: false, granularity: group(g, 128) }) },
  { id: 'int4-g32', bits: 4, make: (_s, _c, g) => ({ format: 'int', bits: 4, symmetric: false, granularity: group(g, 32) }) },
  { id: 'int3-g128', bits: 3, make: (_s, _c, g) => ({ format: 'int', bits: 3, symmetric: false, granularity: group(g, 128) }) },
  { id: 'int2-g64', bits: 2, make: (_s, _c, g) => ({ format: 'int', bits: 2, symmetric: false, granularity: group(g, 64) }) },
  { id: 'nf4-g64', bits: 4, make: (_s, _c, g) => ({ format: 'nf4', granularity: group(g, 64) }) },
  { id: 'fp8-e4m3', bits: 8, make: (s, c) => ({ format: 'fp8_e4m3', granularity: perChannel(s, c) }) },
];

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
}

/** Output-channel axis and the reduction (grouping) axis for a weight of this shape. */
export function axesFor(shape: readonly number[], outputChannelAxis: number | undefined): { channelAxis: number; groupAxis: number } {
  const r = shape.length;
  if (r < 2) return { channelAxis: 0, groupAxis: 0 };
  const c = outputChannelAxis === undefined ? 0 : outputChannelAxis < 0 ? outputChannelAxis + r : outputChannelAxis;
  return { channelAxis: c, groupAxis: c === 0 ? 1 : 0 };
}

/** Storage of the full tensor under a spec: packed codes, one scale per group, packed zero points when asymmetric. */
export function quantizedBytes(shape: readonly number[], spec: Omit<QuantSpec, 'calibrator'>, bits: number, scaleBytes: number): number {
  const layout = groupLayout(shape, spec.granularity);
  const codes = Math.ceil((layout.numel * bits) / 8);
  const zp = spec.format === 'int' && spec.symmetric === false ? Math.ceil((layout.groups * bits) / 8) : 0;
  return codes + layout.groups * scaleBytes + zp;
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
  // A conv kernel [O, I/g, kh, kw] reduces over everything after its output channel:
  // group along that flattened row, not along I/g alone (which is 1 for depthwise convs).
  if (fullShape.length > 2 && (outputChannelAxis ?? 0) === 0) {
    const flat = (s: readonly number[]) => [s[0], s.slice(1).reduce((a, b) => a * b, 1)];
    return tensorSensitivity(x, flat(shape), flat(fullShape), 0, opts);
  }
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) throw new RangeError(`element ${i} is ${x[i]}: sensitivity needs finite weights`);
  }
  const { channelAxis, groupAxis } = axesFor(fullShape, outputChannelAxis);
  const scaleBytes = opts.scaleBytes ?? 4;
  const numel = fullShape.reduce((a, b) => a * b, 1);
  const out: ConfigSensitivity[] = [];
  for (const cfg of SENSITIVITY_CONFIGS) {
    if (opts.configs && !opts.configs.includes(cfg.id)) continue;
    const base = cfg.make(fullShape, channelAxis, groupAxis);
    const tried: Record<string, number> = {};
    let best: { cal: (typeof CALIBRATORS)[number]; rep: ReturnType<typeof weightErrorReport> } | undefined;
    for (const cal of CALIBRATORS) {
      const q = quantize(x, shape, { ...base, calibrator: cal });
      const rep = weightErrorReport(x, q.dequantized);
      tried[cal] = rep.mse;
      if (!best || rep.mse < best.rep.mse) best = { cal, rep };
    }
    const bytes = quantizedBytes(fullShape, base, cfg.bits, scaleBytes);
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
  const scaleBytes = opts.scaleBytes ?? (t.dtype === 'f32' || t.dtype === 'f64' ? 4 : 2);
  try {
    return tensorSensitivity(x, t.shape.length ? sampledShape : [t.numel], t.shape.length ? t.shape : [t.numel], t.layer.outputChannelAxis, { ...opts, scaleBytes });
  } catch (e) {
    throw new Error(`${model.path}: tensor ${t.name}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

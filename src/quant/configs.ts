/**
 * The one catalogue of named quantization configs. Analysis (weight-space
 * sensitivity, the overview's sizes, the knapsack's options), conversion and
 * the views all read it, as ONNX Runtime's WeightOnlyQuantConfig family serves
 * both its quantizer and its users: a new config is one entry here.
 *
 * It also holds the two rules every caller must agree on: which axes of a
 * weight are its output channels and its reduction (grouping) axis, and how
 * many bytes a tensor takes under a spec (codes, scales, zero points).
 */
import { Granularity, groupLayout } from './granularity';
import { FORMAT_BITS, QuantFormat } from './numberFormats';
import type { QuantSpec } from './rtn';

export interface QuantConfig {
  /** Stable id used in caches, plans, the CLI and the UI ("int4-g128"). */
  id: string;
  /** What the UI shows ("INT4 group 128"). */
  label: string;
  format: QuantFormat;
  /** Code width in bits (packed storage). */
  bits: number;
  /** 'channel': one scale per output channel; 'group': `groupSize` elements along the reduction axis. */
  granularity: 'channel' | 'group' | 'tensor';
  groupSize?: number;
  /** Integer formats: zero point fixed (true) or one per group (false). Other formats are symmetric. */
  symmetric: boolean;
  /** The configs the inspector's fixed INT8 / INT4 columns and the Sensitivity panel rank by. */
  reference?: 'int8' | 'int4';
}

/** Low-bit integer configs are asymmetric (a zero point per group), as MatMulNBits and llama.cpp's _1 types. */
export const CONFIGS: readonly QuantConfig[] = [
  { id: 'int8-channel', label: 'INT8 per-channel', format: 'int', bits: 8, granularity: 'channel', symmetric: true, reference: 'int8' },
  { id: 'int8-g128', label: 'INT8 group 128', format: 'int', bits: 8, granularity: 'group', groupSize: 128, symmetric: false },
  { id: 'int4-g128', label: 'INT4 group 128', format: 'int', bits: 4, granularity: 'group', groupSize: 128, symmetric: false, reference: 'int4' },
  { id: 'int4-g32', label: 'INT4 group 32', format: 'int', bits: 4, granularity: 'group', groupSize: 32, symmetric: false },
  { id: 'int3-g128', label: 'INT3 group 128', format: 'int', bits: 3, granularity: 'group', groupSize: 128, symmetric: false },
  { id: 'int2-g64', label: 'INT2 group 64', format: 'int', bits: 2, granularity: 'group', groupSize: 64, symmetric: false },
  { id: 'nf4-g64', label: 'NF4 group 64', format: 'nf4', bits: 4, granularity: 'group', groupSize: 64, symmetric: true },
  { id: 'fp8-e4m3', label: 'FP8 E4M3 per-channel', format: 'fp8_e4m3', bits: 8, granularity: 'channel', symmetric: true },
];

export function configById(id: string): QuantConfig {
  const c = CONFIGS.find((x) => x.id === id);
  if (!c) throw new RangeError(`unknown quantization config '${id}'; known: ${CONFIGS.map((x) => x.id).join(', ')}`);
  return c;
}

/** The reference config of a role (the INT8 / INT4 columns). */
export function referenceConfig(role: 'int8' | 'int4'): QuantConfig {
  return CONFIGS.find((c) => c.reference === role)!;
}

export interface WeightLayout {
  /** The shape quantization sees: a conv kernel [O, I/g, kh, kw] as [O, I/g·kh·kw]. */
  shape: number[];
  channelAxis: number;
  /** The reduction axis, along which groups run. */
  groupAxis: number;
}

/**
 * The axis rule. The output channel is `outputChannelAxis` (default 0); the
 * reduction axis is 0 when the channel axis is not, else 1. A kernel of rank
 * > 2 with its output channel first reduces over everything after it, so it
 * is grouped along that flattened row, not along I/g alone (1 for depthwise).
 */
export function weightLayout(shape: readonly number[], outputChannelAxis: number | undefined): WeightLayout {
  const r = shape.length;
  if (r < 2) return { shape: [...shape], channelAxis: 0, groupAxis: 0 };
  const c = outputChannelAxis === undefined ? 0 : outputChannelAxis < 0 ? outputChannelAxis + r : outputChannelAxis;
  if (r > 2 && c === 0) return { shape: [shape[0], shape.slice(1).reduce((a, b) => a * b, 1)], channelAxis: 0, groupAxis: 1 };
  return { shape: [...shape], channelAxis: c, groupAxis: c === 0 ? 1 : 0 };
}

/** The engine's spec for a config on a weight of this layout (calibrator left to the caller). */
export function specFor(config: QuantConfig, layout: WeightLayout): Omit<QuantSpec, 'calibrator'> {
  let granularity: Granularity;
  if (config.granularity === 'group') granularity = { kind: 'group', axis: layout.groupAxis, size: config.groupSize ?? 128 };
  else if (config.granularity === 'channel' && layout.shape.length >= 2) granularity = { kind: 'channel', axis: layout.channelAxis };
  else granularity = { kind: 'tensor' };
  if (config.format === 'int' || config.format === 'uint') return { format: config.format, bits: config.bits, symmetric: config.symmetric, granularity };
  return { format: config.format, granularity };
}

/** Bytes of one stored scale: float32 for float32/64 weights, 16 bits for 16-bit and 8-bit ones. */
export function scaleBytesFor(dtype: string): number {
  return dtype === 'f32' || dtype === 'f64' ? 4 : 2;
}

/**
 * Storage of a tensor quantized with `spec` (the one size formula): packed
 * codes (rounded up to whole bytes per tensor), one scale per group
 * (`scaleBytes`, default 4; 2 for fp16 scales, 1 for E8M0) and, for
 * asymmetric integer grids, one zero point per group packed at the code
 * width (as ONNX int4/uint4 and MatMulNBits store them).
 */
export function storageBytes(shape: readonly number[], spec: Omit<QuantSpec, 'calibrator'>, opts: { scaleBytes?: number } = {}): number {
  const layout = groupLayout(shape, spec.granularity);
  const bits = spec.format === 'int' || spec.format === 'uint' ? spec.bits ?? 8 : FORMAT_BITS[spec.format];
  const scaleBytes = opts.scaleBytes ?? (spec.scale === 'pow2' && (spec.format === 'fp4_e2m1' || spec.format === 'fp8_e4m3' || spec.format === 'fp8_e5m2') ? 1 : 4);
  const asymmetric = (spec.format === 'int' || spec.format === 'uint') && spec.symmetric === false;
  return Math.ceil((layout.numel * bits) / 8) + layout.groups * scaleBytes + (asymmetric ? Math.ceil((layout.groups * bits) / 8) : 0);
}

/** Bytes of a weight of this shape, output-channel axis and dtype under a named config. */
export function configBytes(config: QuantConfig, shape: readonly number[], outputChannelAxis: number | undefined, dtype: string): number {
  const layout = weightLayout(shape, outputChannelAxis);
  return storageBytes(layout.shape, specFor(config, layout), { scaleBytes: scaleBytesFor(dtype) });
}

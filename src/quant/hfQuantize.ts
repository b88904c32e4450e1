/**
 * One Linear weight of a Hugging Face checkpoint → the parts a GPTQ or
 * compressed-tensors pack-quantized checkpoint stores for it, with the
 * values its loader will compute (hashed) and their error against the
 * source. Shared by the conversion pipeline (src/pipelines/convertSafetensors.ts)
 * and its worker job (`hfqWeight`), so both produce the same bytes.
 */
import * as crypto from 'node:crypto';
import type { ModelFile, TensorInfo } from '../formats/types';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../formats/dtypes';
import { bytesOf, type PlannedTensor } from '../formats/safetensors/writer';
import { packAlongCols, packAlongRows, packGptq, type PackBits } from '../formats/safetensors/quantizedLayouts';
import { encode, gridParams, maxCode } from './algorithms/intGrid';

export type SafetensorsTarget = 'safetensors-gptq' | 'safetensors-compressed';

/** Bits, group size and symmetry of one quantized weight. */
export interface WeightScheme { bits: PackBits; groupSize: number; symmetric: boolean }

export interface Quantized {
  /** Unsigned codes [out, in] (Linear orientation), zeros and float scales [out, groups], group of each input column. */
  codes: Uint8Array;
  zeros: Uint8Array;
  /** Scales as stored (f16 or bf16 bits). */
  scaleBits: Uint16Array;
  scaleValues: Float32Array;
  gIdx: Int32Array;
  groups: number;
  actOrder: boolean;
  /** sha256 of the values a loader computes (float32 [out, in], row-major), hashed row by row. */
  predicted: string;
  sqnrDb: number;
  relError: number;
  /** sum (value - source)^2 over the weight, float64 (the size budget's error). */
  errSum: number;
  algo: 'rtn' | 'gptq';
}

/** W[out, in] of a weight as float32 (GPT-2 Conv1D weights, stored [in, out], are transposed). */
export function linearWeight(model: ModelFile, t: TensorInfo): { w: Float32Array; out: number; inF: number } {
  const v = model.readFloat32(t);
  if (t.layer.outputChannelAxis !== 1) return { w: v, out: t.shape[0], inF: t.shape[1] };
  const [inF, out] = t.shape;
  const w = new Float32Array(out * inF);
  for (let i = 0; i < inF; i++) for (let o = 0; o < out; o++) w[o * inF + i] = v[i * out + o];
  return { w, out, inF };
}

export function scaleCodec(dtype: 'f16' | 'bf16'): { enc: (x: number) => number; dec: (b: number) => number; min: number } {
  return dtype === 'f16' ? { enc: f32ToF16, dec: f16ToF32, min: 2 ** -24 } : { enc: f32ToBf16, dec: bf16ToF32, min: 2 ** -133 };
}

/**
 * Round-to-nearest onto the grid of intGrid.ts with the scale rounded to its
 * stored type first, so codes are chosen for the scale a loader sees. GPTQ v1
 * cannot store a zero of 0: an asymmetric group whose range starts at 0 takes
 * zero 1 and the scale that keeps its maximum.
 */
export function rtn(w: Float32Array, out: number, inF: number, s: WeightScheme, scaleType: 'f16' | 'bf16', v1: boolean): Omit<Quantized, 'predicted' | 'sqnrDb' | 'relError' | 'errSum'> {
  const groups = inF / s.groupSize;
  const qmax = maxCode(s.bits);
  const c = { bits: s.bits, symmetric: s.symmetric, groupSize: s.groupSize };
  const sc = scaleCodec(scaleType);
  const codes = new Uint8Array(out * inF), zeros = new Uint8Array(out * groups);
  const scaleBits = new Uint16Array(out * groups), scaleValues = new Float32Array(out * groups);
  const p = { scale: 1, zero: 0 };
  for (let o = 0; o < out; o++) {
    for (let g = 0; g < groups; g++) {
      const base = o * inF + g * s.groupSize;
      gridParams(c, w, base, s.groupSize, 1, p);
      let { scale, zero } = p;
      if (v1 && zero === 0) {
        let hi = 0;
        for (let k = 0; k < s.groupSize; k++) hi = Math.max(hi, w[base + k]);
        scale = hi > 0 ? Math.fround(hi / (qmax - 1)) : scale;
        zero = 1;
      }
      let bits16 = sc.enc(scale);
      let sv = sc.dec(bits16);
      if (!(sv > 0)) { sv = sc.min; bits16 = sc.enc(sv); }
      if (!Number.isFinite(sv)) throw new RangeError(`scale ${scale} of output ${o}, group ${g} overflows ${scaleType}`);
      scaleBits[o * groups + g] = bits16;
      scaleValues[o * groups + g] = sv;
      zeros[o * groups + g] = zero;
      for (let k = 0; k < s.groupSize; k++) codes[base + k] = encode(w[base + k], sv, zero, qmax);
    }
  }
  const gIdx = Int32Array.from({ length: inF }, (_, i) => Math.floor(i / s.groupSize));
  return { codes, zeros, scaleBits, scaleValues, gIdx, groups, actOrder: false, algo: 'rtn' };
}

export function finish(q: Omit<Quantized, 'predicted' | 'sqnrDb' | 'relError' | 'errSum'>, w: Float32Array, out: number, inF: number): Quantized {
  const h = crypto.createHash('sha256');
  const row = new Float32Array(inF);
  let err = 0, sig = 0;
  for (let o = 0; o < out; o++) {
    for (let i = 0; i < inF; i++) {
      const k = o * q.groups + q.gIdx[i];
      const v = Math.fround(q.scaleValues[k] * (q.codes[o * inF + i] - q.zeros[k]));
      row[i] = v;
      const d = v - w[o * inF + i];
      err += d * d;
      sig += w[o * inF + i] * w[o * inF + i];
    }
    h.update(bytesOf(row));
  }
  return { ...q, predicted: h.digest('hex'), errSum: err, sqnrDb: err === 0 ? Infinity : 10 * Math.log10(sig / err), relError: sig === 0 ? 0 : Math.sqrt(err / sig) };
}

/** The parts a quantized weight is written as, in file order: GPTQ (AutoGPTQ's names) or compressed-tensors pack-quantized. */
export function partsOf(target: SafetensorsTarget, m: string, out: number, inF: number, s: WeightScheme, actOrder: boolean, scaleType: 'f16' | 'bf16'): PlannedTensor[] {
  const per = 32 / s.bits;
  const groups = inF / s.groupSize;
  if (target === 'safetensors-gptq') {
    return [
      { name: `${m}.g_idx`, dtype: 'i32', shape: [inF] },
      { name: `${m}.qweight`, dtype: 'i32', shape: [inF / per, out] },
      { name: `${m}.qzeros`, dtype: 'i32', shape: [groups, out / per] },
      { name: `${m}.scales`, dtype: 'f16', shape: [groups, out] },
    ];
  }
  return [
    { name: `${m}.weight_packed`, dtype: 'i32', shape: [out, Math.ceil(inF / per)] },
    { name: `${m}.weight_scale`, dtype: scaleType, shape: [out, groups] },
    { name: `${m}.weight_shape`, dtype: 'i64', shape: [2] },
    ...(s.symmetric ? [] : [{ name: `${m}.weight_zero_point`, dtype: 'i32' as const, shape: [Math.ceil(out / per), groups] }]),
    ...(actOrder ? [{ name: `${m}.weight_g_idx`, dtype: 'i32' as const, shape: [inF] }] : []),
  ];
}

/** The bytes of partsOf(...), same order. */
export function partBytes(target: SafetensorsTarget, q: Quantized, s: WeightScheme, out: number, inF: number): Uint8Array[] {
  if (target === 'safetensors-gptq') {
    const packed = packGptq(q.codes, q.zeros, out, inF, q.groups, q.gIdx, s.bits, true);
    // scales [groups, out], transposed from [out, groups]
    const sc = new Uint16Array(q.groups * out);
    for (let o = 0; o < out; o++) for (let g = 0; g < q.groups; g++) sc[g * out + o] = q.scaleBits[o * q.groups + g];
    return [bytesOf(packed.gIdx), bytesOf(packed.qweight), bytesOf(packed.qzeros), bytesOf(sc)];
  }
  return [
    bytesOf(packAlongCols(q.codes, out, inF, s.bits)),
    bytesOf(q.scaleBits),
    bytesOf(BigInt64Array.of(BigInt(out), BigInt(inF))),
    ...(s.symmetric ? [] : [bytesOf(packAlongRows(q.zeros, out, q.groups, s.bits))]),
    ...(q.actOrder ? [bytesOf(q.gIdx)] : []),
  ];
}


export interface HfWeightResult {
  /** The bytes of partsOf(...), in its order. */
  parts: Uint8Array[];
  /** sha256 of the float32 values a loader computes, row-major. */
  predicted: string;
  sqnrDb: number;
  relError: number;
  errSum: number;
}

/** Round-to-nearest of one weight of `model` into its parts (the `hfqWeight` job and the in-process path). */
export function quantizeHfWeight(model: ModelFile, t: TensorInfo, target: SafetensorsTarget, s: WeightScheme, scaleType: 'f16' | 'bf16'): HfWeightResult {
  const { w, out, inF } = linearWeight(model, t);
  const q = finish(rtn(w, out, inF, s, scaleType, target === 'safetensors-gptq'), w, out, inF);
  return { parts: partBytes(target, q, s, out, inF), predicted: q.predicted, sqnrDb: q.sqnrDb, relError: q.relError, errSum: q.errSum };
}

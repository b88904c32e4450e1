/**
 * WebAssembly SIMD fast path for symmetric signed-integer RTN over
 * contiguous groups (per-channel rows, blocks along the last axis). It is a
 * twin of the TypeScript reference in rtn.ts and the tests hold the two
 * bit-identical; rtn.ts falls back to the reference when WebAssembly or SIMD
 * is unavailable. Data goes through the module's memory in chunks of about
 * 64K elements (256 KiB of input, whole groups), small enough that the
 * kernel's two passes over a group (max |x|, then encode) hit cache; the
 * module's memory grows once to the largest chunk seen and is reused.
 */
import { RTN_KERNELS_WASM_BASE64 } from './rtnKernels.generated';
import { growTo, lazyKernel, type WasmMemory } from './runtime';

interface Kernels {
  memory: WasmMemory;
  quantSymInt(x: number, n: number, g: number, codes: number, deq: number, scales: number, num: number, den: number, qmin: number, qmax: number): number;
  quantIntZp(x: number, n: number, g: number, codes: number, deq: number, scales: number, zps: number, num: number, den: number, qmin: number, qmax: number, asym: number, mid: number, unsignedCodes: number): number;
  quantSymIntMse(x: number, n: number, g: number, codes: number, deq: number, scales: number, num: number, den: number, qmin: number, qmax: number, steps: number, minRatio: number): number;
  pack4(codes: number, n: number): void;
}

const load = lazyKernel<Kernels>(RTN_KERNELS_WASM_BASE64, 'rtn');

export function wasmAvailable(): boolean {
  return load() !== null;
}

/** First byte the kernels may use; below it lies AssemblyScript's static data. */
const BASE = 65536;
/** Elements per call into the module when groups are small enough to batch. */
const CHUNK = 1 << 16;
/** Largest group the kernels take (one group per call at most). */
export const WASM_MAX_GROUP = 1 << 20;

interface ChunkLayout {
  groupsPerChunk: number;
  chunkElems: number;
  xOff: number;
  dOff: number;
  sOff: number;
  zOff: number;
  cOff: number;
}

/**
 * Where one call's input, dequantized values, scales, zero points and codes
 * live in the module's memory (each 16-byte aligned). Memory is only ever
 * grown, so after the first call of a given group size nothing is allocated.
 */
function chunkLayout(k: Kernels, g: number, withDeq: boolean): ChunkLayout {
  const groupsPerChunk = Math.max(1, Math.floor(CHUNK / g));
  const chunkElems = groupsPerChunk * g;
  const align = (v: number) => (v + 15) & ~15;
  const xOff = BASE;
  const dOff = xOff + chunkElems * 4;
  const sOff = dOff + (withDeq ? chunkElems * 4 : 0);
  const zOff = sOff + align(groupsPerChunk * 4);
  const cOff = zOff + align(groupsPerChunk * 4);
  growTo(k.memory, cOff + chunkElems + 16);
  return { groupsPerChunk, chunkElems, xOff, dOff, sOff, zOff, cOff };
}

/**
 * Quantize x in contiguous groups of g (x.length a multiple of g) to a
 * symmetric signed grid: scale = f32(max|x|·num/den), codes clamped to
 * [qmin, qmax]; `deq` null skips copying the dequantized values out.
 * With `mse`, each group's scale is chosen by MseCalibrator's clip search
 * (same ratios, same float64 error sums, same tie rule). Returns -1, or the index of the first group holding a
 * non-finite value (outputs are then incomplete), or -2 when WebAssembly is
 * unavailable. With `packed` (g even, codes within 4 bits), the codes go
 * there two per byte, low nibble first, instead of into `codes`.
 */
export function quantSymIntWasm(
  x: Float32Array, g: number, num: number, den: number, qmin: number, qmax: number,
  codes: Int8Array | null, deq: Float32Array | null, scales: Float32Array,
  mse: { steps: number; minRatio: number } | null = null, packed: Uint8Array | null = null,
): number {
  const k = load();
  if (k === null) return -2;
  const { groupsPerChunk, xOff, dOff, sOff, cOff } = chunkLayout(k, g, deq !== null);
  const buf = k.memory.buffer;
  const groups = x.length / g;
  for (let g0 = 0; g0 < groups; g0 += groupsPerChunk) {
    const ng = Math.min(groupsPerChunk, groups - g0);
    const n = ng * g;
    const e0 = g0 * g;
    new Float32Array(buf, xOff, n).set(x.subarray(e0, e0 + n));
    const bad = mse
      ? k.quantSymIntMse(xOff, n, g, cOff, deq ? dOff : 0, sOff, num, den, qmin, qmax, mse.steps, mse.minRatio)
      : k.quantSymInt(xOff, n, g, cOff, deq ? dOff : 0, sOff, num, den, qmin, qmax);
    if (bad >= 0) return g0 + bad;
    if (packed) {
      k.pack4(cOff, n);
      packed.set(new Uint8Array(buf, cOff, n >> 1), e0 >> 1);
    } else if (codes) {
      codes.set(new Int8Array(buf, cOff, n), e0);
    }
    if (deq) deq.set(new Float32Array(buf, dOff, n), e0);
    scales.set(new Float32Array(buf, sOff, ng), g0);
  }
  return -1;
}

/**
 * Integer RTN with zero points (unsigned symmetric grids with zero point
 * `mid`, or asymmetric grids), contiguous groups of g; codes are written as
 * bytes (two's complement for signed grids). Same return convention and
 * `packed` option as quantSymIntWasm (`unsignedGrid` then says which grid).
 */
export function quantIntZpWasm(
  x: Float32Array, g: number, num: number, den: number, qmin: number, qmax: number, asym: boolean, mid: number,
  codes: Int8Array | Uint8Array | null, deq: Float32Array | null, scales: Float32Array, zps: Int32Array,
  packed: Uint8Array | null = null, unsignedGrid = codes instanceof Uint8Array,
): number {
  const k = load();
  if (k === null) return -2;
  const { groupsPerChunk, xOff, dOff, sOff, zOff, cOff } = chunkLayout(k, g, deq !== null);
  const buf = k.memory.buffer;
  const codeBytes = codes ? new Uint8Array(codes.buffer, codes.byteOffset, codes.length) : null;
  const unsignedCodes = unsignedGrid ? 1 : 0;
  const groups = x.length / g;
  for (let g0 = 0; g0 < groups; g0 += groupsPerChunk) {
    const ng = Math.min(groupsPerChunk, groups - g0);
    const n = ng * g;
    const e0 = g0 * g;
    new Float32Array(buf, xOff, n).set(x.subarray(e0, e0 + n));
    const bad = k.quantIntZp(xOff, n, g, cOff, deq ? dOff : 0, sOff, zOff, num, den, qmin, qmax, asym ? 1 : 0, mid, unsignedCodes);
    if (bad >= 0) return g0 + bad;
    if (packed) {
      k.pack4(cOff, n);
      packed.set(new Uint8Array(buf, cOff, n >> 1), e0 >> 1);
    } else if (codeBytes) {
      codeBytes.set(new Uint8Array(buf, cOff, n), e0);
    }
    if (deq) deq.set(new Float32Array(buf, dOff, n), e0);
    scales.set(new Float32Array(buf, sOff, ng), g0);
    zps.set(new Int32Array(buf, zOff, ng), g0);
  }
  return -1;
}

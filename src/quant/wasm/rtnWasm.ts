/**
 * WebAssembly SIMD fast path for symmetric signed-integer RTN over
 * contiguous groups (per-channel rows, blocks along the last axis). It is a
 * twin of the TypeScript reference in rtn.ts and the tests hold the two
 * bit-identical; rtn.ts falls back to the reference when WebAssembly or SIMD
 * is unavailable. Data goes through the module's memory in chunks of about
 * 1M elements, so memory stays small whatever the tensor size.
 */
import { RTN_KERNELS_WASM_BASE64 } from './rtnKernels.wasm';

// ES2022 + @types/node 20 carry no WebAssembly typings; this is the part used here.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> };
};
interface WasmMemory {
  buffer: ArrayBuffer;
  grow(pages: number): number;
}
interface Kernels {
  memory: WasmMemory;
  quantSymInt(x: number, n: number, g: number, codes: number, deq: number, scales: number, num: number, den: number, qmin: number, qmax: number): number;
  quantIntZp(x: number, n: number, g: number, codes: number, deq: number, scales: number, zps: number, num: number, den: number, qmin: number, qmax: number, asym: number, mid: number, unsignedCodes: number): number;
  quantSymIntMse(x: number, n: number, g: number, codes: number, deq: number, scales: number, num: number, den: number, qmin: number, qmax: number, steps: number, minRatio: number): number;
}

let kernels: Kernels | null | undefined;

function load(): Kernels | null {
  if (kernels !== undefined) return kernels;
  try {
    const bytes = Uint8Array.from(Buffer.from(RTN_KERNELS_WASM_BASE64, 'base64'));
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), {
      env: { abort: () => { throw new Error('rtn wasm kernel aborted'); } },
    });
    kernels = inst.exports as unknown as Kernels;
  } catch {
    kernels = null; // no WebAssembly SIMD here: callers use the TypeScript reference
  }
  return kernels;
}

export function wasmAvailable(): boolean {
  return load() !== null;
}

/** First byte the kernels may use; below it lies AssemblyScript's static data. */
const BASE = 65536;
const CHUNK = 1 << 20;
/** Largest group the kernels take (one group per chunk at most). */
export const WASM_MAX_GROUP = CHUNK;

/**
 * Quantize x in contiguous groups of g (x.length a multiple of g) to a
 * symmetric signed grid: scale = f32(max|x|·num/den), codes clamped to
 * [qmin, qmax]; `deq` null skips copying the dequantized values out.
 * With `mse`, each group's scale is chosen by MseCalibrator's clip search
 * (same ratios, same float64 error sums, same tie rule). Returns -1, or the index of the first group holding a
 * non-finite value (outputs are then incomplete), or -2 when WebAssembly is
 * unavailable.
 */
export function quantSymIntWasm(
  x: Float32Array, g: number, num: number, den: number, qmin: number, qmax: number,
  codes: Int8Array, deq: Float32Array | null, scales: Float32Array,
  mse: { steps: number; minRatio: number } | null = null,
): number {
  const k = load();
  if (k === null) return -2;
  const groupsPerChunk = Math.max(1, Math.floor(CHUNK / g));
  const chunkElems = groupsPerChunk * g;
  // Layout: x (f32) | deq (f32) | scales (f32) | codes (i8), 16-byte aligned.
  const xOff = BASE;
  const dOff = xOff + chunkElems * 4;
  const sOff = dOff + chunkElems * 4;
  const cOff = sOff + ((groupsPerChunk * 4 + 15) & ~15);
  const need = cOff + chunkElems + 16;
  if (k.memory.buffer.byteLength < need) k.memory.grow(Math.ceil((need - k.memory.buffer.byteLength) / 65536));
  const buf = k.memory.buffer;
  const groups = x.length / g;
  for (let g0 = 0; g0 < groups; g0 += groupsPerChunk) {
    const ng = Math.min(groupsPerChunk, groups - g0);
    const n = ng * g;
    const e0 = g0 * g;
    new Float32Array(buf, xOff, n).set(x.subarray(e0, e0 + n));
    const bad = mse
      ? k.quantSymIntMse(xOff, n, g, cOff, dOff, sOff, num, den, qmin, qmax, mse.steps, mse.minRatio)
      : k.quantSymInt(xOff, n, g, cOff, dOff, sOff, num, den, qmin, qmax);
    if (bad >= 0) return g0 + bad;
    codes.set(new Int8Array(buf, cOff, n), e0);
    if (deq) deq.set(new Float32Array(buf, dOff, n), e0);
    scales.set(new Float32Array(buf, sOff, ng), g0);
  }
  return -1;
}

/**
 * Integer RTN with zero points (unsigned symmetric grids with zero point
 * `mid`, or asymmetric grids), contiguous groups of g; codes are written as
 * bytes (two's complement for signed grids). Same return convention as
 * quantSymIntWasm.
 */
export function quantIntZpWasm(
  x: Float32Array, g: number, num: number, den: number, qmin: number, qmax: number, asym: boolean, mid: number,
  codes: Int8Array | Uint8Array, deq: Float32Array | null, scales: Float32Array, zps: Int32Array,
): number {
  const k = load();
  if (k === null) return -2;
  const groupsPerChunk = Math.max(1, Math.floor(CHUNK / g));
  const chunkElems = groupsPerChunk * g;
  const xOff = BASE;
  const dOff = xOff + chunkElems * 4;
  const sOff = dOff + chunkElems * 4;
  const zOff = sOff + ((groupsPerChunk * 4 + 15) & ~15);
  const cOff = zOff + ((groupsPerChunk * 4 + 15) & ~15);
  const need = cOff + chunkElems + 16;
  if (k.memory.buffer.byteLength < need) k.memory.grow(Math.ceil((need - k.memory.buffer.byteLength) / 65536));
  const buf = k.memory.buffer;
  const codeBytes = new Uint8Array(codes.buffer, codes.byteOffset, codes.length);
  const unsignedCodes = codes instanceof Uint8Array ? 1 : 0;
  const groups = x.length / g;
  for (let g0 = 0; g0 < groups; g0 += groupsPerChunk) {
    const ng = Math.min(groupsPerChunk, groups - g0);
    const n = ng * g;
    const e0 = g0 * g;
    new Float32Array(buf, xOff, n).set(x.subarray(e0, e0 + n));
    const bad = k.quantIntZp(xOff, n, g, cOff, dOff, sOff, zOff, num, den, qmin, qmax, asym ? 1 : 0, mid, unsignedCodes);
    if (bad >= 0) return g0 + bad;
    codeBytes.set(new Uint8Array(buf, cOff, n), e0);
    if (deq) deq.set(new Float32Array(buf, dOff, n), e0);
    scales.set(new Float32Array(buf, sOff, ng), g0);
    zps.set(new Int32Array(buf, zOff, ng), g0);
  }
  return -1;
}

/**
 * WebAssembly SIMD path of matmulNBitsKN.ts: the weight is read straight
 * into the module's memory (no float copy), quantized and packed in one
 * call. Memory grows to the largest tensor seen and is reused.
 */
import { NBITS_KN_WASM_BASE64 } from './nbitsKn.generated';
import { growTo, lazyKernel, type WasmMemory } from './runtime';

interface Kernel {
  memory: WasmMemory;
  quantNbitsKN(x: number, K: number, N: number, bits: number, bs: number, asym: number, accLo: number, accHi: number,
    sArr: number, zArr: number, codes: number, B: number, scales: number, zps: number, stats: number, rowC: number, tr: number, b0: number, b1: number): void;
}

const load = lazyKernel<Kernel>(NBITS_KN_WASM_BASE64, 'nbitsKN');

const BASE = 65536;
const align = (v: number) => Math.ceil(v / 64) * 64;

export interface NBitsKNLayout {
  K: number; N: number; bits: number; blockSize: number; nBlocks: number;
  xOff: number; accLo: number; accHi: number; sArr: number; zArr: number; codes: number; B: number; scales: number; zps: number; stats: number;
  rowC: number; tr: number; end: number;
}

/** `rows`: how many rows of x the memory holds (K: the whole weight; blockSize: one block at a time). */
function layout(K: number, N: number, bits: number, bs: number, rows = K): NBitsKNLayout {
  const nBlocks = Math.ceil(K / bs);
  const xOff = BASE;
  const accLo = align(xOff + rows * N * 4);
  const accHi = align(accLo + N * 4);
  const sArr = align(accHi + N * 4);
  const zArr = align(sArr + N * 8);
  const codes = align(zArr + N * 8);
  const B = align(codes + N * bs);
  const scales = align(B + (N * nBlocks * bs * bits) / 8);
  const zps = align(scales + N * nBlocks * 4);
  const stats = align(zps + N * Math.ceil((nBlocks * bits) / 8));
  const rowC = align(stats + 64);
  const tr = align(rowC + N * 4);
  return { K, N, bits, blockSize: bs, nBlocks, xOff, accLo, accHi, sArr, zArr, codes, B, scales, zps, stats, rowC, tr, end: tr + 512 };
}

/** Whether the kernel can take this shape (WebAssembly SIMD available, N a multiple of 4). */
export function nbitsKNWasmAvailable(N: number): boolean {
  return N % 4 === 0 && load() !== null;
}

/** Where the caller must put the float32 [K, N] weight before `runNbitsKN` (valid until the next call). */
export function nbitsKNInput(K: number, N: number, bits: number, bs: number): { view: Uint8Array; layout: NBitsKNLayout } {
  const k = load();
  if (!k) throw new Error('nbitsKN: WebAssembly SIMD is unavailable');
  const l = layout(K, N, bits, bs);
  growTo(k.memory, l.end);
  return { view: new Uint8Array(k.memory.buffer, l.xOff, K * N * 4), layout: l };
}

/** The error sums and fingerprint of one run. */
export interface NBitsKNStats {
  /** Fingerprint lanes (Float32Digest.setState). */
  h: Int32Array; sumSq: number; errSq: number; maxAbs: number;
}
export interface NBitsKNWasmResult extends NBitsKNStats {
  B: Uint8Array; scales: Float32Array; zeroPoints: Uint8Array | null;
}

function resetStats(k: Kernel, l: NBitsKNLayout): void {
  const zpLen = l.N * Math.ceil((l.nBlocks * l.bits) / 8);
  new Uint8Array(k.memory.buffer).fill(0, l.zps, l.zps + zpLen);
  new Float64Array(k.memory.buffer, l.stats, 4).fill(0);
  new Float32Array(k.memory.buffer, l.stats + 32, 4).fill(0);
  new Int32Array(k.memory.buffer, l.stats + 48, 4).fill(0x811c9dc5 | 0);
}

function call(k: Kernel, l: NBitsKNLayout, x: number, symmetric: boolean, b0: number, b1: number): void {
  k.quantNbitsKN(x, l.K, l.N, l.bits, l.blockSize, symmetric ? 0 : 1, l.accLo, l.accHi, l.sArr, l.zArr, l.codes, l.B, l.scales, l.zps, l.stats, l.rowC, l.tr, b0, b1);
}

function views(k: Kernel, l: NBitsKNLayout, symmetric: boolean): NBitsKNWasmResult {
  const mem = new Uint8Array(k.memory.buffer);
  const zpLen = l.N * Math.ceil((l.nBlocks * l.bits) / 8);
  const bBytes = (l.N * l.nBlocks * l.blockSize * l.bits) / 8;
  const f = new Float64Array(k.memory.buffer, l.stats, 4);
  const mx = new Float32Array(k.memory.buffer, l.stats + 32, 4);
  const h = new Int32Array(k.memory.buffer, l.stats + 48, 4);
  return {
    B: mem.subarray(l.B, l.B + bBytes),
    scales: new Float32Array(k.memory.buffer, l.scales, l.N * l.nBlocks),
    zeroPoints: symmetric ? null : mem.subarray(l.zps, l.zps + zpLen),
    h: h.slice(),
    sumSq: f[0] + f[1], errSq: f[2] + f[3], maxAbs: Math.max(...mx),
  };
}

/**
 * Quantize the weight placed by nbitsKNInput; the outputs are views of the
 * module's memory, valid until the next call (write them out or copy them).
 */
export function runNbitsKNViews(l: NBitsKNLayout, symmetric: boolean): NBitsKNWasmResult {
  const k = load()!;
  resetStats(k, l);
  call(k, l, l.xOff, symmetric, 0, l.nBlocks);
  return views(k, l, symmetric);
}

/**
 * The same result with the weight streamed in one block of rows at a time:
 * `fill(dst, k0, rows)` writes rows k0..k0+rows-1 of the float32 [K, N]
 * weight into dst. Each block is quantized while it is still in cache, and
 * the module holds one block instead of the whole weight. Outputs are views,
 * as runNbitsKNViews's.
 */
export function runNbitsKNStreamed(
  K: number, N: number, bits: number, bs: number, symmetric: boolean, fill: (dst: Uint8Array, k0: number, rows: number) => void,
): { r: NBitsKNWasmResult; layout: NBitsKNLayout } {
  const k = load();
  if (!k) throw new Error('nbitsKN: WebAssembly SIMD is unavailable');
  const l = layout(K, N, bits, bs, bs);
  growTo(k.memory, l.end);
  resetStats(k, l);
  const rowBytes = N * 4;
  for (let b = 0; b < l.nBlocks; b++) {
    const k0 = b * bs;
    const rows = Math.min(bs, K - k0);
    fill(new Uint8Array(k.memory.buffer, l.xOff, rows * rowBytes), k0, rows);
    // Row k of the block sits at xOff + (k - k0)·rowBytes: the kernel's x + k·rowBytes, wrapping in 32 bits.
    call(k, l, (l.xOff - k0 * rowBytes) >>> 0, symmetric, b, b + 1);
  }
  return { r: views(k, l, symmetric), layout: l };
}

/** Quantize the weight placed by nbitsKNInput; outputs are copied out of the module's memory. */
export function runNbitsKN(l: NBitsKNLayout, symmetric: boolean): NBitsKNWasmResult {
  const r = runNbitsKNViews(l, symmetric);
  return { ...r, B: r.B.slice(), scales: r.scales.slice(), zeroPoints: r.zeroPoints ? r.zeroPoints.slice() : null };
}

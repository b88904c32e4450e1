/**
 * WebAssembly SIMD kernel of weight-space sensitivity (sensKernel.as): for
 * each scale group, the squared error of round-to-nearest with the min-max
 * range and the least one over the MSE clip search, for integer grids, NF4
 * and FP8 E4M3, without writing codes. `sensGroupErrors` picks it or its
 * TypeScript twin (sensKernelRef.ts, bit-identical) by `impl`. Lines go
 * through the module's memory in chunks of whole lines (about 64K elements,
 * so the ~20 passes of the clip search over a chunk stay in cache).
 */
import { SENS_KERNEL_WASM_BASE64 } from './sensKernel.generated';
import { growTo, type Impl, lazyKernel, type WasmMemory } from './runtime';
import { ClipSearch, SensFormat, SensLines, groupCount, sensGroupErrorsRef } from './sensKernelRef';

export type { ClipSearch, SensFormat, SensLines } from './sensKernelRef';
export { groupCount, sensGroupErrorsRef } from './sensKernelRef';

interface Kernels {
  memory: WasmMemory;
  sensInt(x: number, rows: number, rowLen: number, g: number, out: number, steps: number, minRatio: number,
    qmin: number, qmax: number, asym: number, mid: number, num: number, den: number, scratch: number): void;
  sensNf4(x: number, rows: number, rowLen: number, g: number, out: number, steps: number, minRatio: number, tables: number, scratch: number): void;
  sensFp8e4m3(x: number, rows: number, rowLen: number, g: number, out: number, steps: number, minRatio: number, scratch: number): void;
}

const load = lazyKernel<Kernels>(SENS_KERNEL_WASM_BASE64, 'sensitivity');

export function sensWasmAvailable(): boolean {
  return load() !== null;
}

/** First byte the kernel may use (AssemblyScript's static data lies below); scratch, then the NF4 tables, then the data. */
const BASE = 65536;
const SCRATCH = BASE;
const TABLES = BASE + 64;
const DATA = BASE + 256;
const CHUNK = 1 << 16;

/** The WebAssembly kernel; null when WebAssembly SIMD is unavailable here. */
export function sensGroupErrorsWasm(lines: SensLines, fmt: SensFormat, clip: ClipSearch): Float64Array | null {
  const k = load();
  if (k === null) return null;
  const { data, rows, rowLen, groupSize } = lines;
  if (data.length !== rows * rowLen) throw new RangeError(`sensitivity kernel: ${rows} lines of ${rowLen} need ${rows * rowLen} elements, got ${data.length}`);
  const perRow = Math.ceil(rowLen / groupSize);
  const out = new Float64Array(2 * groupCount(lines));
  const rowsPerChunk = Math.max(1, Math.floor(CHUNK / Math.max(rowLen, 1)));
  const chunkRows = Math.min(rowsPerChunk, rows);
  const outOff = DATA + ((chunkRows * rowLen * 4 + 15) & ~15);
  growTo(k.memory, outOff + chunkRows * perRow * 16);
  const buf = k.memory.buffer;
  if (fmt.kind === 'nf4') {
    const t = new Float32Array(buf, TABLES, 31);
    t.set(fmt.levels.subarray(0, 16));
    t.set(fmt.thresholds.subarray(0, 15), 16);
  }
  for (let r0 = 0; r0 < rows; r0 += rowsPerChunk) {
    const nr = Math.min(rowsPerChunk, rows - r0);
    new Float32Array(buf, DATA, nr * rowLen).set(data.subarray(r0 * rowLen, (r0 + nr) * rowLen));
    if (fmt.kind === 'int') {
      k.sensInt(DATA, nr, rowLen, groupSize, outOff, clip.steps, clip.minRatio, fmt.qmin, fmt.qmax, fmt.asym ? 1 : 0, fmt.mid, fmt.num, fmt.den, SCRATCH);
    } else if (fmt.kind === 'nf4') {
      k.sensNf4(DATA, nr, rowLen, groupSize, outOff, clip.steps, clip.minRatio, TABLES, SCRATCH);
    } else {
      k.sensFp8e4m3(DATA, nr, rowLen, groupSize, outOff, clip.steps, clip.minRatio, SCRATCH);
    }
    out.set(new Float64Array(buf, outOff, 2 * nr * perRow), 2 * r0 * perRow);
  }
  return out;
}

/**
 * Per group, in line order: out[2k] the squared error with the min-max range,
 * out[2k + 1] the least over the clip ratios. Inputs must be finite.
 * 'auto' runs the WebAssembly kernel where available, 'ref' the twin, 'wasm' demands the kernel.
 */
export function sensGroupErrors(lines: SensLines, fmt: SensFormat, clip: ClipSearch, impl: Impl = 'auto'): Float64Array {
  if (impl !== 'ref') {
    const r = sensGroupErrorsWasm(lines, fmt, clip);
    if (r) return r;
    if (impl === 'wasm') throw new Error('sensitivity kernel: WebAssembly SIMD is not available here');
  }
  return sensGroupErrorsRef(lines, fmt, clip);
}

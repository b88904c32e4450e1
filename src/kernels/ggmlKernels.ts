/**
 * WebAssembly SIMD fast path for the GGUF block encoders (ggmlKernels.as).
 * It is a twin of the TypeScript reference in ../quantize.ts and the tests
 * hold the two byte-identical (and both equal to bytes made by ggml itself).
 * Data goes through the module's memory in chunks of 256K values, so memory
 * stays small whatever the tensor size.
 */
import { GgmlTypeName, ggmlTypeByName } from '../formats/gguf/ggmlTypes';
import { GGML_KERNELS_WASM_BASE64 } from './ggmlKernels.generated';
import { compileBase64, growTo, instantiate, type WasmMemory } from './runtime';

interface Kernels {
  memory: WasmMemory;
  heapBase(): number;
  encode(type: number, x: number, n: number, y: number, qw: number, blocksPerRow: number): number;
}

/** Types with a WASM kernel. */
export const GGML_WASM_TYPES: ReadonlySet<GgmlTypeName> = new Set<GgmlTypeName>([
  'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K',
]);

/** Types whose kernel also implements ggml's importance-weighted (imatrix) path. */
export const GGML_WASM_IMPORTANCE_TYPES: ReadonlySet<GgmlTypeName> = new Set<GgmlTypeName>([
  'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K',
]);

let kernels: Kernels | null | undefined;
let xOff = 0;
let yOff = 0;
let qOff = 0;

/** Values per call into the module: a multiple of every block size (32, 256). */
const CHUNK = 1 << 18;

function load(): Kernels | null {
  if (kernels !== undefined) return kernels;
  try {
    const k = instantiate<Kernels>(compileBase64(GGML_KERNELS_WASM_BASE64), 'ggml');
    xOff = (k.heapBase() + 15) & ~15;
    qOff = xOff + CHUNK * 4;
    yOff = qOff + CHUNK * 4;
    // Largest block (Q8_0: 34 bytes per 32 values) plus slack for 16-byte stores past the end.
    growTo(k.memory, yOff + Math.ceil((CHUNK / 32) * 34) + 64);
    kernels = k;
  } catch {
    kernels = null; // no WebAssembly SIMD here: callers use the TypeScript reference
  }
  return kernels;
}

/** Whether the WebAssembly module loads here (SIMD support). */
export function ggmlWasmAvailable(): boolean {
  return load() !== null;
}

/** Whether `quantizeGgmlWasm` can encode this type on this machine. */
export function ggmlWasmSupports(type: GgmlTypeName): boolean {
  return GGML_WASM_TYPES.has(type) && load() !== null;
}

/**
 * Encode `src[srcOffset .. srcOffset + nElements)` (a whole number of blocks,
 * already range-checked by the caller) into `dst` at `dstOffset`. With
 * `importance` (validated by the caller), rows are `rowLength` long and every
 * row is weighted by the same `importance[0 .. rowLength)`. Returns -1 when
 * done, the index (relative to srcOffset) of the first non-finite value (the
 * chunks before it are already written), or -2 when there is no kernel for
 * this case (type, importance, a row longer than a chunk, or no WebAssembly SIMD).
 */
export function quantizeGgmlWasm(
  type: GgmlTypeName, src: Float32Array, srcOffset: number, dst: Uint8Array, dstOffset: number, nElements: number,
  importance?: Float32Array, rowLength = 0,
): number {
  const k = GGML_WASM_TYPES.has(type) ? load() : null;
  const info = ggmlTypeByName(type);
  if (k === null || !info) return -2;
  let step = CHUNK;
  if (importance) {
    if (!GGML_WASM_IMPORTANCE_TYPES.has(type) || rowLength <= 0 || rowLength > CHUNK || rowLength % info.blockSize !== 0) return -2;
    step = Math.floor(CHUNK / rowLength) * rowLength; // whole rows per call: the kernel restarts the weights each row
    new Float32Array(k.memory.buffer, qOff, rowLength).set(importance.subarray(0, rowLength));
  }
  const bytesPer = info.typeSize / info.blockSize;
  for (let e0 = 0; e0 < nElements; e0 += step) {
    const n = Math.min(step, nElements - e0);
    const buf = k.memory.buffer;
    new Float32Array(buf, xOff, n).set(src.subarray(srcOffset + e0, srcOffset + e0 + n));
    const r = k.encode(info.id, xOff, n, yOff, importance ? qOff : 0, importance ? rowLength / info.blockSize : 1);
    if (r >= 0) return e0 + r;
    if (r !== -1) throw new Error(`ggml wasm kernel: unexpected result ${r} for ${type}`);
    const nb = n * bytesPer;
    dst.set(new Uint8Array(buf, yOff, nb), dstOffset + e0 * bytesPer);
  }
  return -1;
}

/**
 * WebAssembly SIMD fast path for the GGUF block encoders (ggmlKernels.as).
 * It is a twin of the TypeScript reference in ../quantize.ts and the tests
 * hold the two byte-identical (and both equal to bytes made by ggml itself).
 * Data goes through the module's memory in chunks of 256K values, so memory
 * stays small whatever the tensor size.
 */
import { GgmlTypeName, ggmlTypeByName } from '../formats/gguf/ggmlTypes';
import { GGML_KERNELS_WASM_BASE64 } from './ggmlKernels.generated';
import { compileBase64, growTo, instantiate, type Impl, type WasmMemory } from './runtime';

interface Kernels {
  memory: WasmMemory;
  heapBase(): number;
  encode(type: number, x: number, n: number, y: number, qw: number, blocksPerRow: number): number;
  decode(type: number, y: number, n: number, out: number): number;
  f16ToF32s(src: number, dst: number, n: number): void;
  bf16ToF32s(src: number, dst: number, n: number): void;
  sumsPtr(): number;
  errorSums(x: number, dec: number, n: number): void;
  fpPtr(): number;
  fingerprint(p: number, n: number): void;
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
let rOff = 0; // raw fp16/bf16 source halves
let dOff = 0; // decoded values

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
    rOff = (yOff + Math.ceil((CHUNK / 32) * 34) + 64 + 15) & ~15;
    dOff = rOff + CHUNK * 2;
    growTo(k.memory, dOff + CHUNK * 4 + 64);
    kernels = k;
  } catch {
    kernels = null; // no WebAssembly SIMD here: callers use the TypeScript reference
  }
  return kernels;
}

/** Types the module also decodes (bit for bit as ggml's dequantize_row_*; twin: dequantizeGgml in formats/gguf/dequant.ts). */
export const GGML_WASM_DECODE_TYPES: ReadonlySet<GgmlTypeName> = new Set<GgmlTypeName>(['Q8_0', 'Q4_K', 'Q5_K', 'Q6_K']);

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

/**
 * Fingerprint of a stream of float32 values (their bits): four lanes, word k
 * going to lane k % 4 with xxHash32's round acc = rotl(acc + word·P2, 13)·P1
 * and xxHash32's seeds. Each round is a bijection of the word, so any single
 * changed value changes it; it stands in for a cryptographic hash where the
 * question is only whether bytes read back equal bytes produced, at a small
 * fraction of the cost. The module computes it where it loads
 * (ggmlKernels.as `fingerprint`); fingerprintRef is its twin.
 */
export class Fingerprint {
  readonly acc = new Uint32Array([0x24234428, 0x85ebca77, 0, 0x61c8864f]);
  count = 0;

  update(v: Float32Array, impl: Impl = 'auto'): void {
    const k = impl === 'ref' || this.count % 4 !== 0 ? null : load();
    if (k === null) {
      if (impl === 'wasm') throw new Error('Fingerprint: no WebAssembly SIMD here');
      fingerprintRef(this, new Uint32Array(v.buffer, v.byteOffset, v.length));
      return;
    }
    for (let e0 = 0; e0 < v.length; e0 += CHUNK) {
      const m = Math.min(CHUNK, v.length - e0);
      new Float32Array(k.memory.buffer, dOff, m).set(v.subarray(e0, e0 + m));
      withFingerprint(k, this, () => k.fingerprint(dOff, m), m);
    }
  }

  hex(): string {
    return `${this.count.toString(16)}:${Array.from(this.acc, (a) => a.toString(16).padStart(8, '0')).join('')}`;
  }
}

/** The TypeScript twin of the module's fingerprint: words in stream order. */
export function fingerprintRef(fp: Fingerprint, words: Uint32Array): void {
  const a = fp.acc;
  for (let i = 0; i < words.length; i++) {
    const j = (fp.count + i) & 3;
    const v = (a[j] + Math.imul(words[i], 0x85ebca77)) >>> 0;
    a[j] = Math.imul((v << 13) | (v >>> 19), 0x9e3779b1);
  }
  fp.count += words.length;
}

/** Runs `f` with the module's fingerprint state set to `fp`'s, then takes it back (`n` values added). */
function withFingerprint(k: Kernels, fp: Fingerprint, f: () => void, n: number): void {
  const st = new Uint32Array(k.memory.buffer, k.fpPtr(), 4);
  st.set(fp.acc);
  f();
  fp.acc.set(new Uint32Array(k.memory.buffer, k.fpPtr(), 4));
  fp.count += n;
}

/** Where a slab's source values come from: float32, or the raw halves of an fp16/bf16 tensor (decoded in the module). */
export type SlabValues = Float32Array | { dtype: 'f16' | 'bf16'; bits: Uint16Array };

/** Running float64 sums of a slab: (decoded - source)^2 and source^2, added in element order. */
export interface SlabSums { err: number; ref: number }

function copyIn(k: Kernels, src: SlabValues, e0: number, n: number): void {
  const buf = k.memory.buffer;
  if (src instanceof Float32Array) {
    new Float32Array(buf, xOff, n).set(src.subarray(e0, e0 + n));
    return;
  }
  new Uint16Array(buf, rOff, n).set(src.bits.subarray(e0, e0 + n));
  if (src.dtype === 'f16') k.f16ToF32s(rOff, xOff, n);
  else k.bf16ToF32s(rOff, xOff, n);
}

/**
 * A whole conversion slab inside the module, chunk by chunk: source values
 * (float32, or fp16/bf16 halves converted in the module) encoded into `dst`
 * (from offset 0), decoded again, the error sums added to `sums` in element
 * order and float64, and the decoded values added to `fp`. Equal in
 * every output to quantizeGgmlInto + dequantizeGgml + the float64 loop of
 * encodeGgufSlab (src/quant/ggml/slab.ts), which the tests hold it to.
 * Returns -1 when done, the index of the first non-finite value, or -2 when
 * there is no kernel for this case (see quantizeGgmlWasm; also types outside
 * GGML_WASM_DECODE_TYPES).
 */
export function encodeSlabGgmlWasm(
  type: GgmlTypeName, src: SlabValues, n: number, dst: Uint8Array, sums: SlabSums, fp: Fingerprint,
  importance?: Float32Array, rowLength = 0,
): number {
  const k = GGML_WASM_TYPES.has(type) && GGML_WASM_DECODE_TYPES.has(type) ? load() : null;
  const info = ggmlTypeByName(type);
  if (k === null || !info || n % 8 !== 0 || fp.count % 4 !== 0) return -2;
  let step = CHUNK;
  if (importance) {
    if (!GGML_WASM_IMPORTANCE_TYPES.has(type) || rowLength <= 0 || rowLength > CHUNK || rowLength % info.blockSize !== 0) return -2;
    step = Math.floor(CHUNK / rowLength) * rowLength;
    new Float32Array(k.memory.buffer, qOff, rowLength).set(importance.subarray(0, rowLength));
  }
  const bytesPer = info.typeSize / info.blockSize;
  const sp = k.sumsPtr();
  const s = new Float64Array(k.memory.buffer, sp, 2);
  s[0] = sums.err;
  s[1] = sums.ref;
  for (let e0 = 0; e0 < n; e0 += step) {
    const m = Math.min(step, n - e0);
    copyIn(k, src, e0, m);
    const r = k.encode(info.id, xOff, m, yOff, importance ? qOff : 0, importance ? rowLength / info.blockSize : 1);
    if (r >= 0) return e0 + r;
    if (r !== -1) throw new Error(`ggml wasm kernel: unexpected result ${r} for ${type}`);
    if (k.decode(info.id, yOff, m, dOff) !== -1) throw new Error(`ggml wasm kernel: no decoder for ${type}`);
    k.errorSums(xOff, dOff, m);
    const buf = k.memory.buffer;
    dst.set(new Uint8Array(buf, yOff, m * bytesPer), e0 * bytesPer);
    withFingerprint(k, fp, () => k.fingerprint(dOff, m), m);
  }
  const t = new Float64Array(k.memory.buffer, sp, 2);
  sums.err = t[0];
  sums.ref = t[1];
  return -1;
}

/**
 * Decode `n` values (whole blocks) of `type` from `src`, chunk by chunk,
 * handing each chunk of float32 values to `onDecoded` (a view into the
 * module's memory, valid only during the call) or, with a Fingerprint,
 * adding them to it inside the module. Returns false (nothing decoded)
 * where there is no decoder for the type or no WebAssembly SIMD.
 */
export function decodeGgmlWasm(type: GgmlTypeName, src: Uint8Array, n: number, onDecoded: ((v: Float32Array) => void) | Fingerprint): boolean {
  const k = GGML_WASM_DECODE_TYPES.has(type) ? load() : null;
  if (onDecoded instanceof Fingerprint && onDecoded.count % 4 !== 0) return false;
  const info = ggmlTypeByName(type);
  if (k === null || !info) return false;
  const bytesPer = info.typeSize / info.blockSize;
  for (let e0 = 0; e0 < n; e0 += CHUNK) {
    const m = Math.min(CHUNK, n - e0);
    new Uint8Array(k.memory.buffer, yOff, m * bytesPer).set(src.subarray(e0 * bytesPer, (e0 + m) * bytesPer));
    if (k.decode(info.id, yOff, m, dOff) !== -1) throw new Error(`ggml wasm kernel: no decoder for ${type}`);
    if (onDecoded instanceof Fingerprint) withFingerprint(k, onDecoded, () => k.fingerprint(dOff, m), m);
    else onDecoded(new Float32Array(k.memory.buffer, dOff, m));
  }
  return true;
}

/** fp16 or bf16 halves → float32 in the module (n a multiple of 8); false where WebAssembly SIMD is missing. */
export function halvesToF32Wasm(dtype: 'f16' | 'bf16', bits: Uint16Array, out: Float32Array): boolean {
  const k = load();
  if (k === null || bits.length % 8 !== 0) return false;
  for (let e0 = 0; e0 < bits.length; e0 += CHUNK) {
    const m = Math.min(CHUNK, bits.length - e0);
    new Uint16Array(k.memory.buffer, rOff, m).set(bits.subarray(e0, e0 + m));
    if (dtype === 'f16') k.f16ToF32s(rOff, xOff, m);
    else k.bf16ToF32s(rOff, xOff, m);
    out.set(new Float32Array(k.memory.buffer, xOff, m), e0);
  }
  return true;
}

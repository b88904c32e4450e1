/**
 * What every embedded WebAssembly kernel module needs (RTN, GGUF encoders,
 * statistics): typings, since ES2022 + @types/node 20 carry none, compiling
 * the committed base64 module, and growing its memory to a layout.
 */

export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
}
const WA = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

/** Compile a module embedded as base64; throws where WebAssembly (or its SIMD) is unavailable. */
export function compileBase64(base64: string): object {
  return new WA.Module(Uint8Array.from(Buffer.from(base64, 'base64')));
}

/** A fresh instance of a compiled kernel module; an AssemblyScript abort becomes an Error naming it. */
export function instantiate<T>(module: object, name: string): T {
  const inst = new WA.Instance(module, {
    env: { abort: () => { throw new Error(`${name} wasm kernel aborted`); } },
  });
  return inst.exports as T;
}

/**
 * The kernel module's instance, made on first use and kept; null where
 * WebAssembly SIMD is unavailable (callers then run the TypeScript twin).
 */
export function lazyKernel<T>(base64: string, name: string): () => T | null {
  let k: T | null | undefined;
  return () => {
    if (k === undefined) {
      try {
        k = instantiate<T>(compileBase64(base64), name);
      } catch {
        k = null;
      }
    }
    return k;
  };
}

/** Grow a module's memory so that `bytes` fit (memory only grows, in 64 KiB pages). */
export function growTo(memory: WasmMemory, bytes: number): void {
  const have = memory.buffer.byteLength;
  if (bytes > have) memory.grow(Math.ceil((bytes - have) / 65536));
}

/**
 * Which implementation of a kernel runs: 'auto' (default) the WebAssembly
 * SIMD kernel where it applies and the TypeScript reference elsewhere; 'ref'
 * the reference (the `*Ref` twin, as ggml names its `_ref` functions);
 * 'wasm' demands the kernel and throws where there is none. All give the
 * same results; tests hold them equal.
 */
export type Impl = 'auto' | 'ref' | 'wasm';

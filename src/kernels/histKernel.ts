/**
 * WebAssembly SIMD fast path of the activation histogram (histKernel.as),
 * behind the HistKernel interface of histKernelRef.ts, whose TypeScript
 * twin tests hold it equal to. One instance per thread, its memory laid out
 * once per batch shape (counters, channel maxima, one chunk of input) and
 * only ever grown, so steady-state batches allocate nothing.
 */
import { HIST_KERNEL_WASM_BASE64 } from './histKernel.generated';
import { HistKernel, HistKernelRef, ScanStats, isPow2, plusZero } from './histKernelRef';
import { growTo, type Impl, lazyKernel, type WasmMemory } from './runtime';

export { HistKernelRef, isPow2 };
export type { HistKernel, ScanStats };

interface Exports {
  memory: WasmMemory;
  scan(x: number, n: number, channels: number, inner: number, c0: number, pos0: number, cm: number, out: number): void;
  bin(x: number, n: number, w: number, mode: number, B: number, tab: number, finiteOnly: number): void;
  flush(tab: number, B: number, dst: number): void;
}

const load = lazyKernel<Exports>(HIST_KERNEL_WASM_BASE64, 'histogram');

/** First byte the kernel may use; below it lies AssemblyScript's static data. */
const BASE = 65536;
const align = (v: number) => (v + 15) & ~15;

class HistKernelWasm implements HistKernel {
  readonly kind = 'wasm' as const;
  private bins = 0;
  private channels = 0;
  private outOff = BASE;
  private tabOff = 0;
  private dstOff = 0;
  private cmOff = 0;
  private xOff = 0;

  constructor(private readonly k: Exports, readonly capacity = 65536) {}

  begin(bins: number, channelMax: Float32Array | null): void {
    this.bins = bins;
    this.channels = channelMax ? channelMax.length : 0;
    this.tabOff = this.outOff + 32;
    this.dstOff = this.tabOff + align(4 * 2 * bins * 4);
    this.cmOff = this.dstOff + align(2 * bins * 8);
    this.xOff = this.cmOff + align(this.channels * 4);
    growTo(this.k.memory, this.xOff + this.capacity * 4);
    const buf = this.k.memory.buffer;
    new Uint32Array(buf, this.tabOff, 4 * 2 * bins).fill(0);
    if (channelMax) new Float32Array(buf, this.cmOff, this.channels).set(channelMax);
  }

  f32(): Float32Array {
    return new Float32Array(this.k.memory.buffer, this.xOff, this.capacity);
  }

  scan(n: number, channels: number, inner: number, c0: number, pos0: number): ScanStats {
    const keep = channels > 0 && channels === this.channels;
    this.k.scan(this.xOff, n, keep ? channels : 0, keep ? inner : 1, keep ? c0 : 0, keep ? pos0 : 0, this.cmOff, this.outOff);
    const o = new Float64Array(this.k.memory.buffer, this.outOff, 3);
    return { nonFinite: o[0], min: plusZero(o[1]), max: plusZero(o[2]) };
  }

  bin(n: number, w: number, finiteOnly: boolean): void {
    this.k.bin(this.xOff, n, w, binMode(w, this.bins), this.bins, this.tabOff, finiteOnly ? 1 : 0);
  }

  flush(counts: Float64Array): void {
    this.k.flush(this.tabOff, this.bins, this.dstOff);
    const d = new Float64Array(this.k.memory.buffer, this.dstOff, 2 * this.bins);
    for (let b = 0; b < d.length; b++) counts[b] += d[b];
  }

  end(channelMax: Float32Array): void {
    if (this.channels) channelMax.set(new Float32Array(this.k.memory.buffer, this.cmOff, this.channels));
  }
}

/** How the kernel divides by w (see bin in histKernel.as): float32 multiply where that is exact, else float64. */
function binMode(w: number, bins: number): number {
  if (!isPow2(w)) return 0;
  const inv = 1 / w;
  return inv >= 1 && inv <= 2 ** 127 && bins <= 2 ** 21 ? 2 : 1;
}

let wasmKernel: HistKernelWasm | undefined;
let refKernel: HistKernelRef | undefined;

export function histWasmAvailable(): boolean {
  return load() !== null;
}

/** This thread's histogram kernel: the WASM one for 'auto' where it loads, the TypeScript twin for 'ref'. */
export function histKernel(impl: Impl = 'auto'): HistKernel {
  if (impl !== 'ref') {
    const k = load();
    if (k) return (wasmKernel ??= new HistKernelWasm(k));
    if (impl === 'wasm') throw new Error('the WebAssembly SIMD histogram kernel is unavailable here (impl: wasm)');
  }
  return (refKernel ??= new HistKernelRef());
}

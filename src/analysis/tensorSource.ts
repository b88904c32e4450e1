/**
 * Chunk sources for tensors of a model file. float32/float16/bfloat16 tensors
 * stored on disk are read with readSync straight into the kernel's input
 * buffer (no allocation per chunk, 16-bit types decoded by the SIMD kernel);
 * every other dtype goes through ModelFile.readFloat32, which dequantizes.
 */
import * as fs from 'node:fs';
import { FormatError, ModelFile, TensorInfo } from '../formats/types';
import { ChunkSource, Raw16Source } from './weightStats';
import { StatsKernel } from '../kernels/statsKernel';

const DIRECT: Record<string, 2 | 4> = { f32: 4, f16: 2, bf16: 2 };

/** dtypes whose elements are real numbers the statistics make sense for. */
export function isAnalysable(t: TensorInfo): boolean {
  if (t.numel < 1) return false;
  return t.dtype === 'f64' || t.dtype === 'f32' || t.dtype === 'f16' || t.dtype === 'bf16' ||
    t.dtype.startsWith('f8_') || t.dtype.startsWith('gguf:') || t.dtype.startsWith('q:');
}

export interface ClosableSource extends ChunkSource { close(): void }
export type ClosableRaw16Source = Raw16Source & { close(): void };

export function tensorSource(model: ModelFile, t: TensorInfo): ClosableSource | ClosableRaw16Source {
  const bpe = DIRECT[t.dtype];
  if (bpe && t.location.kind === 'disk') {
    const loc = t.location;
    if (loc.length !== t.numel * bpe) {
      throw new FormatError(loc.file, `tensor ${t.name}`, `${loc.length} bytes on disk, but ${t.dtype} × ${t.numel} elements needs ${t.numel * bpe}`);
    }
    const fd = fs.openSync(loc.file, 'r');
    const readInto = (dst: Uint8Array, pos: number) => {
      let got = 0;
      while (got < dst.length) {
        const r = fs.readSync(fd, dst, got, dst.length - got, pos + got);
        if (r === 0) throw new FormatError(loc.file, `tensor ${t.name}`, `file ends at byte ${pos + got}, inside the tensor's data`);
        got += r;
      }
    };
    const base = {
      numel: t.numel,
      fill(k: StatsKernel, start: number, count: number) {
        const pos = loc.offset + start * bpe;
        if (bpe === 4) {
          const f = k.f32();
          readInto(new Uint8Array(f.buffer, f.byteOffset, count * 4), pos);
        } else {
          const raw = k.raw();
          readInto(raw.subarray(0, count * 2), pos);
          k.decode(t.dtype as 'f16' | 'bf16', count);
        }
      },
      close() { fs.closeSync(fd); },
    };
    if (bpe === 2) {
      return {
        ...base,
        dtype16: t.dtype as 'f16' | 'bf16',
        fillRaw(k: StatsKernel, start: number, count: number) { readInto(k.raw().subarray(0, count * 2), loc.offset + start * 2); },
      };
    }
    return base;
  }
  return {
    numel: t.numel,
    fill(k: StatsKernel, start: number, count: number) {
      const v = model.readFloat32(t, start, count);
      // Block-quantized readers round out to whole blocks; keep exactly the requested elements.
      k.f32().set(v.length === count ? v : v.subarray(0, count));
    },
    close() { /* the model owns its handles */ },
  };
}

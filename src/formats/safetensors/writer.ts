/**
 * A streaming safetensors writer: the header (names, dtypes, shapes, offsets)
 * is laid out from the tensor list first, padded with spaces to a multiple of
 * 8 bytes as the reference implementation does, then each tensor's bytes are
 * asked for in order and streamed to a temp file beside the destination
 * (src/formats/atomicWrite.ts), which is renamed into place once complete.
 * Only one tensor's bytes are in memory at a time.
 */
import { openAtomic, type AtomicWriteOptions } from '../atomicWrite';
import { FormatError, type ScalarDType } from '../types';
import { SAFETENSORS_DTYPES, scalarByteLength } from '../dtypes';

/** safetensors dtype names by ours (the inverse of SAFETENSORS_DTYPES). */
export const SAFETENSORS_NAME: Partial<Record<ScalarDType, string>> = Object.fromEntries(Object.entries(SAFETENSORS_DTYPES).map(([k, v]) => [v, k]));

export interface PlannedTensor {
  name: string;
  dtype: ScalarDType;
  shape: number[];
}

export interface SafetensorsLayout {
  header: Uint8Array;
  /** Byte length of each tensor's data, in the order given. */
  lengths: number[];
  totalBytes: number;
}

/** Header bytes (length prefix included) and data lengths for `tensors` written in the order given. */
export function layoutSafetensors(tensors: readonly PlannedTensor[], metadata?: Record<string, string>, file = '(safetensors)'): SafetensorsLayout {
  const h: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) h.__metadata__ = metadata;
  const lengths: number[] = [];
  let off = 0;
  for (const t of tensors) {
    const name = SAFETENSORS_NAME[t.dtype];
    if (!name) throw new FormatError(file, `tensor ${t.name}`, `dtype ${t.dtype} has no safetensors name`);
    if (t.name in h) throw new FormatError(file, `tensor ${t.name}`, 'written twice');
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const len = scalarByteLength(t.dtype, numel);
    h[t.name] = { dtype: name, shape: t.shape, data_offsets: [off, off + len] };
    lengths.push(len);
    off += len;
  }
  let json = JSON.stringify(h);
  const enc = new TextEncoder();
  let body = enc.encode(json);
  const pad = (8 - (body.length % 8)) % 8;
  if (pad) {
    json += ' '.repeat(pad);
    body = enc.encode(json);
  }
  const header = new Uint8Array(8 + body.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(body.length), true);
  header.set(body, 8);
  return { header, lengths, totalBytes: header.length + off };
}

/**
 * Writes `dest` with the tensors in the order given; `data(i)` returns the
 * bytes of tensor i (little-endian, exactly its length). Returns the file size.
 */
export async function writeSafetensors(
  dest: string, tensors: readonly PlannedTensor[], data: (i: number) => Uint8Array | Promise<Uint8Array>,
  opts: AtomicWriteOptions & { metadata?: Record<string, string> } = {},
): Promise<number> {
  const layout = layoutSafetensors(tensors, opts.metadata, dest);
  const f = await openAtomic(dest, opts);
  try {
    await f.write(layout.header);
    for (let i = 0; i < tensors.length; i++) {
      const bytes = await data(i);
      if (bytes.length !== layout.lengths[i]) {
        throw new FormatError(dest, `tensor ${tensors[i].name}`, `${bytes.length} bytes given for ${layout.lengths[i]} in the header`);
      }
      await f.write(bytes);
    }
    await f.commit();
  } catch (e) {
    await f.abort();
    throw e;
  }
  return layout.totalBytes;
}

/** Little-endian bytes of a typed array (a view, no copy, on little-endian hosts). */
export function bytesOf(a: Int32Array | Float32Array | Uint16Array | Int8Array | Uint8Array | BigInt64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/**
 * Worker side of nbitsPool.ts: reads one MatMul weight from disk into the
 * kernel's memory a block of rows at a time, quantizes it, and either writes the packed tensors
 * straight into the output file (task.dest) or sends them back.
 */
import * as fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { runNbitsKNStreamed } from '../kernels/nbitsKnWasm';
import type { NbitsTask } from './nbitsPool';

function writeAt(fd: number, file: string, b: Uint8Array, at: number): void {
  let off = 0;
  while (off < b.byteLength) {
    const n = fs.writeSync(fd, b, off, b.byteLength - off, at + off);
    if (n <= 0) throw new Error(`${file}: write failed at byte ${at + off}`);
    off += n;
  }
}

parentPort!.on('message', (t: NbitsTask & { id: number }) => {
  try {
    const fd = fs.openSync(t.file, 'r');
    let streamed;
    try {
      if (t.length !== t.K * t.N * 4) throw new Error(`${t.file}: ${t.length} bytes for a float32 [${t.K}, ${t.N}] weight`);
      // One block of rows at a time, quantized while it is in cache.
      streamed = runNbitsKNStreamed(t.K, t.N, t.bits, t.blockSize, t.symmetric, (dst, k0) => {
        let done = 0;
        while (done < dst.byteLength) {
          const n = fs.readSync(fd, dst, done, dst.byteLength - done, t.offset + k0 * t.N * 4 + done);
          if (n <= 0) throw new Error(`${t.file}: unexpected end of file at byte ${t.offset + k0 * t.N * 4 + done}`);
          done += n;
        }
      });
    } finally {
      fs.closeSync(fd);
    }
    const { r, layout } = streamed;
    const stats = { h: r.h, sumSq: r.sumSq, errSq: r.errSq, maxAbs: r.maxAbs };
    if (t.dest) {
      const d = t.dest;
      const parts: [Uint8Array, { file: string; offset: number; length: number } | undefined][] = [
        [r.B, d.B], [new Uint8Array(r.scales.buffer, r.scales.byteOffset, r.scales.byteLength), d.scales], [r.zeroPoints ?? new Uint8Array(0), d.zeroPoints],
      ];
      for (const [bytes, place] of parts) {
        if (!place) continue;
        if (place.length !== bytes.byteLength) throw new Error(`${place.file}: ${bytes.byteLength} bytes for a ${place.length}-byte slot`);
        const out = fs.openSync(place.file, 'r+');
        try { writeAt(out, place.file, bytes, place.offset); } finally { fs.closeSync(out); }
      }
      parentPort!.postMessage({ id: t.id, ok: true, r: { ...stats, B: null, scales: null, zeroPoints: null }, nBlocks: layout.nBlocks });
      return;
    }
    const out = { ...stats, B: r.B.slice(), scales: r.scales.slice(), zeroPoints: r.zeroPoints ? r.zeroPoints.slice() : null };
    const transfer = [out.B.buffer, out.scales.buffer, ...(out.zeroPoints ? [out.zeroPoints.buffer] : [])] as ArrayBuffer[];
    parentPort!.postMessage({ id: t.id, ok: true, r: out, nBlocks: layout.nBlocks }, transfer);
  } catch (e) {
    parentPort!.postMessage({ id: t.id, ok: false, error: (e as Error).message });
  }
});

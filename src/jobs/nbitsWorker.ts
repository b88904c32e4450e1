/** Worker side of nbitsPool.ts: reads one MatMul weight from disk into the kernel's memory and quantizes it. */
import * as fs from 'node:fs';
import { parentPort } from 'node:worker_threads';
import { nbitsKNInput, runNbitsKN } from '../kernels/nbitsKnWasm';
import type { NbitsTask } from './nbitsPool';

parentPort!.on('message', (t: NbitsTask & { id: number }) => {
  try {
    const { view, layout } = nbitsKNInput(t.K, t.N, t.bits, t.blockSize);
    const fd = fs.openSync(t.file, 'r');
    try {
      let done = 0;
      while (done < t.length) {
        const n = fs.readSync(fd, view, done, Math.min(t.length - done, 1 << 24), t.offset + done);
        if (n <= 0) throw new Error(`${t.file}: unexpected end of file at byte ${t.offset + done}`);
        done += n;
      }
    } finally {
      fs.closeSync(fd);
    }
    const r = runNbitsKN(layout, t.symmetric);
    const transfer = [r.B.buffer, r.scales.buffer, ...(r.zeroPoints ? [r.zeroPoints.buffer] : [])] as ArrayBuffer[];
    parentPort!.postMessage({ id: t.id, ok: true, r, nBlocks: layout.nBlocks }, transfer);
  } catch (e) {
    parentPort!.postMessage({ id: t.id, ok: false, error: (e as Error).message });
  }
});

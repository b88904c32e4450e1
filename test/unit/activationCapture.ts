/**
 * The activation tests' independent side: the named tensors made graph
 * outputs of a fresh copy of the model and run by ONNX Runtime directly,
 * with every value and each channel's max |x| (channel axis 1 of a 4-D
 * tensor, else the last) reduced here in float64.
 */
import * as fs from 'node:fs';
import type { Sample } from '../../src/runtime/calibData';
import { addOutputs, decodeModel, encodeModel } from '../../src/runtime/graph';
import { EXACT, createSession, runFeed } from '../../src/runtime/session';

export interface Captured { values: number[]; chMax: number[] }

export async function captureDirect(file: string, names: string[], feeds: Sample[]): Promise<Map<string, Captured>> {
  const dm = decodeModel(fs.readFileSync(file), file);
  addOutputs(dm, names);
  const s = await createSession(encodeModel(dm), EXACT);
  const out = new Map<string, Captured>();
  try {
    for (const name of names) {
      const values: number[] = [];
      let chMax: number[] | undefined;
      for (const f of feeds) {
        const t = (await runFeed(s, f))[name];
        const x = t.data as Float32Array;
        const axis = t.dims.length === 4 ? 1 : t.dims.length - 1;
        const C = t.dims[axis];
        const inner = t.dims.slice(axis + 1).reduce((p, q) => p * q, 1);
        chMax ??= new Array<number>(C).fill(0);
        for (let i = 0; i < x.length; i++) {
          values.push(x[i]);
          const c = Math.floor(i / inner) % C;
          chMax[c] = Math.max(chMax[c], Math.abs(x[i]));
        }
      }
      out.set(name, { values, chMax: chMax ?? [] });
    }
  } finally {
    await s.release();
  }
  return out;
}

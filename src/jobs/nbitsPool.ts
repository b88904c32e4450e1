/**
 * A small worker_threads pool for the MatMulNBits RTN kernel: each worker
 * reads a weight straight from the model file into its own WebAssembly
 * memory and quantizes it, so tensors are read and quantized on every core
 * while the converter edits the graph in order, or write their output
 * straight into the converter's temp file. Tasks run FIFO; results come
 * back with their buffers transferred, not copied.
 */
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { NBitsKNWasmResult } from '../kernels/nbitsKnWasm';

/** Where the worker writes a packed part itself (a region of the output's temp file). */
export interface NbitsPlace { file: string; offset: number; length: number }
export interface NbitsTask {
  file: string; offset: number; length: number;
  K: number; N: number; bits: number; blockSize: number; symmetric: boolean;
  /** Write B, scales and zero points here instead of sending them back (the result then carries only the statistics). */
  dest?: { B: NbitsPlace; scales: NbitsPlace; zeroPoints?: NbitsPlace };
}
export interface NbitsDone { r: NBitsKNWasmResult; nBlocks: number }

interface Pending { task: NbitsTask & { id: number }; resolve: (d: NbitsDone) => void; reject: (e: Error) => void }

export class NbitsPool {
  private workers: { w: Worker; busy?: Pending }[] = [];
  private queue: Pending[] = [];
  private nextId = 0;
  private closed = false;

  constructor(threads = Math.max(1, Math.min(4, os.availableParallelism?.() ?? os.cpus().length))) {
    for (let i = 0; i < threads; i++) {
      const slot: { w: Worker; busy?: Pending } = { w: new Worker(path.join(__dirname, 'nbitsWorker.js')) };
      slot.w.on('message', (m: { id: number; ok: boolean; r?: NBitsKNWasmResult; nBlocks?: number; error?: string }) => {
        const p = slot.busy!;
        slot.busy = undefined;
        if (m.ok) p.resolve({ r: m.r!, nBlocks: m.nBlocks! });
        else p.reject(new Error(m.error));
        this.pump();
      });
      slot.w.on('error', (e) => { slot.busy?.reject(e); slot.busy = undefined; });
      this.workers.push(slot);
    }
  }

  run(task: NbitsTask): Promise<NbitsDone> {
    if (this.closed) return Promise.reject(new Error('nbits pool is closed'));
    return new Promise((resolve, reject) => {
      this.queue.push({ task: { ...task, id: this.nextId++ }, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    for (const slot of this.workers) {
      if (slot.busy || !this.queue.length) continue;
      slot.busy = this.queue.shift()!;
      slot.w.postMessage(slot.busy.task);
    }
  }

  /** Stop every worker; queued and running tasks are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    const err = new Error('nbits pool closed');
    for (const p of this.queue) p.reject(err);
    this.queue = [];
    for (const s of this.workers) s.busy?.reject(err);
    await Promise.all(this.workers.map((s) => s.w.terminate()));
  }
}

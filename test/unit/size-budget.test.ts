/**
 * Size budgets for --target gguf (GGUF source and Hugging Face checkpoint) and
 * the safetensors targets, in process. Numbers are checked against independent
 * computations: each ggml type's error recomputed in float64 from the encoder's
 * output decoded by the reader's dequantizer, the plan against a brute-force
 * search over every assignment, the written file's size against the budget,
 * and the safetensors plan against errors read back from uniform conversions.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/formats/index';
import { readGgufHeader } from '../../src/formats/gguf/reader';
import { ggmlTypeById, ggmlTypeByName, type GgmlTypeName } from '../../src/formats/gguf/ggmlTypes';
import { dequantizeGgml } from '../../src/formats/gguf/dequant';
import { quantizeGgml } from '../../src/quant/ggml/quantize';
import { convert, ConvertInputError, type ConvertReport } from '../../src/pipelines/convert';
import { WorkerPool } from '../../src/jobs/pool';
import { writeLlamaGguf } from '../llamaGguf';
import { makeCheckpoint } from './hfFixtures';

const numel = (ne: readonly number[]) => ne.reduce((a, b) => a * b, 1);
const TYPES: GgmlTypeName[] = ['Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K', 'Q8_0'];

/** sum (dequant(encode(x)) - x)^2 and sum x^2 over rows [r0, r1) of a tensor, in float64. */
function typeError(x: Float32Array, type: GgmlTypeName, rows: number[], ne0: number): { err: number; ref: number } {
  let err = 0, ref = 0;
  for (const r of rows) {
    const row = x.slice(r * ne0, (r + 1) * ne0);
    const q = quantizeGgml(type, row, ne0);
    const back = new Float32Array(ne0);
    dequantizeGgml(ggmlTypeByName(type)!.id, q, back, ne0);
    for (let i = 0; i < ne0; i++) {
      const d = Number(back[i]) - Number(row[i]);
      err += d * d;
      ref += Number(row[i]) * Number(row[i]);
    }
  }
  return { err, ref };
}

/** Minimum summed error over every assignment within `budget` bytes (depth-first, pruned by the smallest remaining bytes). */
function bruteForce(opts: { label: string; bytes: number; error: number }[][], budget: number): { error: number; pick: string[] } {
  const minRest = opts.map((_, i) => opts.slice(i).reduce((a, o) => a + Math.min(...o.map((x) => x.bytes)), 0));
  let best = { error: Infinity, pick: [] as string[] };
  const pick: string[] = [];
  const go = (i: number, bytes: number, error: number): void => {
    if (error >= best.error) return;
    if (i === opts.length) { best = { error, pick: [...pick] }; return; }
    for (const o of opts[i]) {
      if (bytes + o.bytes + (minRest[i + 1] ?? 0) > budget) continue;
      pick.push(o.label);
      go(i + 1, bytes + o.bytes, error + o.error);
      pick.pop();
    }
  };
  go(0, 0, 0);
  return best;
}

describe('size budgets: gguf and safetensors targets', function () {
  this.timeout(600_000);
  let dir: string;
  let pool: WorkerPool;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-budget-'));
    pool = new WorkerPool({ size: 2 });
  });
  after(async () => {
    await pool.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('GGUF source: the plan is the brute-force optimum over the measured types, its errors recompute in float64, and the file meets the budget', async () => {
    // One layer, rows of 256 (every k-quant fits), a vocabulary of 512 rows.
    const src = path.join(dir, 'one-layer.gguf');
    writeLlamaGguf(src, { nLayer: 1, nEmbd: 256, nFf: 512, nHead: 4, nHeadKv: 2, nWords: 253, dtype: 'F16', seed: 11 });
    const out = path.join(dir, 'one-layer-b.gguf');
    const bpw = 4.6;
    const r = await convert({ source: src, output: out, target: 'gguf', budget: { bitsPerWeight: bpw }, skipRuntime: true, pool });
    const h = readGgufHeader(src);
    const m = openModel(src);
    try {
      const all = h.rawTensors.map((t) => ({ name: t.name, ne: t.ne.map(Number), from: ggmlTypeById(t.type)!.name }));
      const planned = all.filter((t) => t.ne.length >= 2);
      const fixed = all.filter((t) => t.ne.length < 2).reduce((a, t) => a + numel(t.ne) * (t.from === 'F32' ? 4 : 2), 0);
      const allElems = all.reduce((a, t) => a + numel(t.ne), 0);
      const budget = Math.floor((bpw * allElems) / 8) - fixed;
      const options = planned.map((t) => {
        const info = m.tensors.find((x) => x.name === t.name)!;
        const x = m.readFloat32(info);
        const rows = Array.from({ length: numel(t.ne) / t.ne[0] }, (_, i) => i);
        return [{ label: 'keep', bytes: numel(t.ne) * 2, error: 0 }, ...TYPES.map((type) => {
          const e = typeError(x, type, rows, t.ne[0]);
          return { label: type, bytes: (numel(t.ne) / ggmlTypeByName(type)!.blockSize) * ggmlTypeByName(type)!.typeSize, error: e.err, rel: e.err / e.ref };
        })];
      });
      const bf = bruteForce(options, budget);
      const planFile = JSON.parse(fs.readFileSync(`${out}.plan.json`, 'utf8')) as { schema: string; target: string; tensors: Record<string, string>; predicted: { error: number; bytes: number } };
      assert.equal(planFile.schema, 'quantscope/plan/v1');
      assert.equal(planFile.target, 'gguf');
      assert.deepEqual(planned.map((t) => planFile.tensors[t.name]), bf.pick, 'the plan picks the brute-force optimum');
      assert.ok(Math.abs(planFile.predicted.error - bf.error) <= 1e-9 * bf.error, `${planFile.predicted.error} vs ${bf.error}`);
      // Every tensor's predicted error is the float64 error of the encoder's output on its sampled rows (all rows here).
      for (const e of r.plan!.estimates!) {
        const k = planned.findIndex((t) => t.name === e.name);
        const o = options[k].find((x) => x.label === e.choice) as { rel?: number };
        assert.equal(e.sampledRows, e.rows);
        assert.ok(Math.abs(e.relMse - (o.rel ?? 0)) <= 1e-12 + 1e-9 * (o.rel ?? 0), `${e.name} ${e.choice}: ${e.relMse} vs ${o.rel}`);
      }
      // The written file holds the plan's types, and its tensor data meets the bits-per-weight budget.
      const w = readGgufHeader(out);
      for (const t of w.rawTensors) if (planFile.tensors[t.name]) assert.equal(ggmlTypeById(t.type)!.name, planFile.tensors[t.name] === 'keep' ? 'F16' : planFile.tensors[t.name], t.name);
      const dataBytes = r.totals.bytesAfter;
      assert.ok((8 * dataBytes) / allElems <= bpw, `${(8 * dataBytes) / allElems} bpw`);
      console.log(`      budget ${bpw} bpw: plan ${bf.pick.join(' ')}; ${((8 * dataBytes) / allElems).toFixed(4)} bpw written, predicted error ${planFile.predicted.error.toPrecision(6)} = brute force ${bf.error.toPrecision(6)}`);
    } finally {
      m.close();
    }
  });

  it('GGUF source: sampled rows of a large tensor; the predicted error is the float64 error of those rows, and --budget-mb bounds the file', async () => {
    // token_embd has 4352 rows of 256: more than the 1024-row sample.
    const src = path.join(dir, 'big-vocab.gguf');
    writeLlamaGguf(src, { nLayer: 1, nEmbd: 256, nFf: 512, nHead: 4, nHeadKv: 2, nWords: 4093, dtype: 'F32', seed: 12 });
    const out = path.join(dir, 'big-vocab-b.gguf');
    const mb = 1.4;
    const r = await convert({ source: src, output: out, target: 'gguf', budget: { bytes: mb * 1e6 }, skipRuntime: true, pool });
    assert.ok(fs.statSync(out).size <= mb * 1e6, `${fs.statSync(out).size} bytes`);
    const e = r.plan!.estimates!.find((x) => x.name === 'token_embd.weight')!;
    assert.equal(e.rows, 4352);
    assert.equal(e.sampledRows, 1024);
    assert.notEqual(e.choice, 'keep');
    const m = openModel(src);
    try {
      const info = m.tensors.find((x) => x.name === 'token_embd.weight')!;
      const x = m.readFloat32(info);
      const rows = Array.from({ length: 1024 }, (_, i) => Math.floor(((i + 0.5) * 4352) / 1024));
      const ref = e.choice === 'F16' ? undefined : typeError(x, e.choice as GgmlTypeName, rows, 256);
      assert.ok(ref, 'a quantized type');
      assert.ok(Math.abs(e.relMse - ref.err / ref.ref) <= 1e-9 * (ref.err / ref.ref), `${e.relMse} vs ${ref.err / ref.ref}`);
      console.log(`      --budget-mb ${mb}: file ${fs.statSync(out).size} bytes; token_embd ${e.choice} on 1024 of 4352 rows: predicted rel MSE ${e.relMse.toExponential(4)}, whole tensor as written ${r.tensors.find((t) => t.name === 'token_embd.weight')!.predicted.relError ** 2}`);
    } finally {
      m.close();
    }
  });

  it('GGUF source with an imatrix: the encoder gets the importance as the conversion does, and the plan error is the float64 error weighted by importance over its mean', async () => {
    const src = path.join(dir, 'one-layer-im-src.gguf');
    writeLlamaGguf(src, { nLayer: 1, nEmbd: 256, nFf: 512, nHead: 4, nHeadKv: 2, nWords: 253, dtype: 'F16', seed: 13 });
    const h = readGgufHeader(src);
    const weights = h.rawTensors.filter((t) => t.ne.length === 2 && t.name.startsWith('blk.'));
    // A legacy imatrix (.dat): per entry, the sums mean(x^2) * ncall, as llama-imatrix stores them.
    const ncall = 5;
    const parts: Buffer[] = [Buffer.alloc(4)];
    parts[0].writeInt32LE(weights.length);
    const importance = new Map<string, Float32Array>();
    let seed = 7;
    const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (const t of weights) {
      const name = Buffer.from(t.name);
      const head = Buffer.alloc(4 + name.length + 8);
      head.writeInt32LE(name.length, 0); name.copy(head, 4);
      head.writeInt32LE(ncall, 4 + name.length); head.writeInt32LE(Number(t.ne[0]), 8 + name.length);
      const v = new Float32Array(Number(t.ne[0])).map(() => (0.05 + next() * next() * 4) * ncall);
      importance.set(t.name, v.map((x) => Math.fround(x / ncall)));
      parts.push(head, Buffer.from(v.buffer));
    }
    const tail = Buffer.alloc(12); tail.writeInt32LE(3, 0); tail.writeInt32LE(4, 4); tail.write('wiki', 8);
    parts.push(tail);
    const imFile = path.join(dir, 'one-layer.imatrix.dat');
    fs.writeFileSync(imFile, Buffer.concat(parts));
    const out = path.join(dir, 'one-layer-im.gguf');
    const r = await convert({ source: src, output: out, target: 'gguf', budget: { bitsPerWeight: 4.6 }, imatrix: imFile, skipRuntime: true, pool });
    assert.match(r.plan!.predicted!.errorKind, /imatrix/);
    const m = openModel(src);
    let weighted = 0;
    try {
      for (const e of r.plan!.estimates!) {
        if (e.choice === 'keep') continue;
        // All rows are sampled: the estimate is what the conversion wrote (same encoder, same importance).
        const t = r.tensors.find((x) => x.name === e.name)!;
        assert.ok(Math.abs(e.relMse - t.predicted.relError ** 2) <= 1e-9 * e.relMse, `${e.name}: ${e.relMse} vs ${t.predicted.relError ** 2}`);
        const info = m.tensors.find((x) => x.name === e.name)!;
        const x = m.readFloat32(info);
        const ne0 = info.shape[info.shape.length - 1];
        const imp = importance.get(e.name);
        const q = quantizeGgml(e.choice, x, x.length, imp ? { importance: imp, rowLength: ne0 } : {});
        const back = new Float32Array(x.length);
        dequantizeGgml(ggmlTypeByName(e.choice)!.id, q, back, x.length);
        const mean = imp ? imp.reduce((a, b) => a + b, 0) / ne0 : 1;
        for (let i = 0; i < x.length; i++) weighted += (imp ? imp[i % ne0] / mean : 1) * (Number(back[i]) - Number(x[i])) ** 2;
      }
    } finally {
      m.close();
    }
    assert.ok(Math.abs(r.plan!.predicted!.error - weighted) <= 1e-9 * weighted, `${r.plan!.predicted!.error} vs ${weighted}`);
  });

  it('rows that are not whole 256-blocks get the legacy 32-block types; rows that are not whole 32-blocks stay as they are', async () => {
    for (const [nFf, allowed] of [[544, ['keep', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0']], [520, ['keep']]] as const) {
      const src = path.join(dir, `ff${nFf}.gguf`);
      writeLlamaGguf(src, { nLayer: 1, nEmbd: 256, nFf, nHead: 4, nHeadKv: 2, nWords: 253, dtype: 'F16', seed: 15 });
      const out = path.join(dir, `ff${nFf}-b.gguf`);
      await convert({ source: src, output: out, target: 'gguf', budget: { bitsPerWeight: 5 }, skipRuntime: true, pool });
      const plan = JSON.parse(fs.readFileSync(`${out}.plan.json`, 'utf8')) as { tensors: Record<string, string> };
      const c = plan.tensors['blk.0.ffn_down.weight'];
      assert.ok((allowed as readonly string[]).includes(c), `ffn_down (rows of ${nFf}): ${c}`);
      const t = readGgufHeader(out).rawTensors.find((x) => x.name === 'blk.0.ffn_down.weight')!;
      assert.equal(ggmlTypeById(t.type)!.name, c === 'keep' ? 'F16' : c);
      if (nFf === 544) assert.notEqual(c, 'keep', 'a 5 bpw budget quantizes it');
    }
  });

  it('a budget below the smallest plan is a ConvertInputError naming the file and the smallest size', async () => {
    const src = path.join(dir, 'one-layer-small.gguf');
    writeLlamaGguf(src, { nLayer: 1, nEmbd: 256, nFf: 512, nHead: 4, nHeadKv: 2, nWords: 253, dtype: 'F16', seed: 14 });
    await assert.rejects(convert({ source: src, output: path.join(dir, 'tiny.gguf'), target: 'gguf', budget: { bitsPerWeight: 1 }, skipRuntime: true, pool }),
      (e: unknown) => e instanceof ConvertInputError && e.message.includes(src) && /below the smallest plan/.test(e.message) && /bits per weight/.test(e.message));
    assert.ok(!fs.existsSync(path.join(dir, 'tiny.gguf')) && !fs.existsSync(path.join(dir, 'tiny.gguf.plan.json')));
  });

  it('Hugging Face checkpoint → GGUF with a budget: plan names are the GGUF names, the file holds the plan and meets the budget', async () => {
    const fx = makeCheckpoint(path.join(dir, 'ck-llama'), 'llama', { layers: 1, hidden: 256, ffn: 512, heads: 4, kvHeads: 2 });
    const out = path.join(dir, 'ck-llama.gguf');
    const r = await convert({ source: fx.dir, output: out, target: 'gguf', budget: { bytes: 0.9e6 }, skipRuntime: true, pool });
    assert.ok(fs.statSync(out).size <= 0.9e6, `${fs.statSync(out).size}`);
    const plan = JSON.parse(fs.readFileSync(`${out}.plan.json`, 'utf8')) as { tensors: Record<string, string> };
    assert.ok('blk.0.attn_q.weight' in plan.tensors && 'token_embd.weight' in plan.tensors, Object.keys(plan.tensors).join());
    const w = readGgufHeader(out);
    for (const t of w.rawTensors) {
      const c = plan.tensors[t.name];
      if (c) assert.equal(ggmlTypeById(t.type)!.name, c === 'keep' ? 'F16' : c, t.name);
    }
    // attn_q is permuted for llama.cpp's rope order: its sampled rows are gathered in the GGUF layout, so the predicted error is the written one (all rows sampled).
    for (const e of r.plan!.estimates!) {
      const t = r.tensors.find((x) => x.name === e.name);
      if (!t || e.choice === 'keep') continue;
      assert.ok(Math.abs(e.relMse - t.predicted.relError ** 2) <= 1e-9 * e.relMse, `${e.name}: ${e.relMse} vs ${t.predicted.relError ** 2}`);
    }
  });

  for (const target of ['safetensors-gptq', 'safetensors-compressed'] as const) {
    it(`${target}: the plan is the brute-force optimum over errors read back from uniform conversions, and its bytes are what was written`, async () => {
      const fx = makeCheckpoint(path.join(dir, `st-${target}`), 'llama', { layers: 1, hidden: 256, ffn: 512, heads: 4, kvHeads: 2 });
      const src = openModel(path.join(fx.dir, 'model.safetensors'));
      const ids = ['int8-g128', 'int4-g128', 'int4-g32', 'int2-g64'];
      const settings: Record<string, { bits: 2 | 4 | 8; blockSize: number }> = { 'int8-g128': { bits: 8, blockSize: 128 }, 'int4-g128': { bits: 4, blockSize: 128 }, 'int4-g32': { bits: 4, blockSize: 32 }, 'int2-g64': { bits: 2, blockSize: 64 } };
      const measured = new Map<string, { label: string; bytes: number; error: number }[]>();
      try {
        for (const id of ids) {
          const out = path.join(dir, `st-${target}-${id}`);
          const r: ConvertReport = await convert({ source: fx.dir, output: out, target, bits: settings[id].bits, blockSize: settings[id].blockSize, symmetric: false, pool });
          const back = openModel(path.join(out, 'model.safetensors'));
          try {
            for (const t of r.tensors) {
              // Our reader's dequantized view of the written weight against the source, in float64.
              const q = back.tensors.find((x) => x.name === t.name)!;
              assert.ok(q.dtype.startsWith('q:'), `${t.name} reads as ${q.dtype}`);
              const a = back.readFloat32(q), b = src.readFloat32(src.tensors.find((x) => x.name === t.name)!);
              let err = 0;
              for (let i = 0; i < a.length; i++) err += (a[i] - b[i]) ** 2;
              const list = measured.get(t.name) ?? [{ label: 'keep', bytes: src.tensors.find((x) => x.name === t.name)!.byteLength, error: 0 }];
              list.push({ label: id, bytes: t.bytesAfter, error: err });
              measured.set(t.name, list);
            }
          } finally {
            back.close();
          }
        }
      } finally {
        src.close();
      }
      const names = [...measured.keys()];
      const out = path.join(dir, `st-${target}-budget`);
      const bpw = 5;
      const r = await convert({ source: fx.dir, output: out, target, budget: { bitsPerWeight: bpw }, pool });
      const plan = JSON.parse(fs.readFileSync(`${out}.plan.json`, 'utf8')) as { target: string; tensors: Record<string, string>; predicted: { bytes: number; error: number } };
      assert.equal(plan.target, target);
      const m2 = openModel(path.join(fx.dir, 'model.safetensors'));
      const totalParams = names.reduce((a, n) => a + m2.tensors.find((x) => x.name === n)!.numel, 0);
      m2.close();
      const bf = bruteForce(names.map((n) => measured.get(n)!), Math.floor((bpw * totalParams) / 8));
      assert.deepEqual(names.map((n) => plan.tensors[n]), bf.pick);
      assert.ok(Math.abs(plan.predicted.error - bf.error) <= 1e-6 * bf.error, `${plan.predicted.error} vs ${bf.error}`);
      const written = r.tensors.reduce((a, t) => a + t.bytesAfter, 0) + names.filter((n) => plan.tensors[n] === 'keep').reduce((a, n) => a + measured.get(n)![0].bytes, 0);
      assert.equal(written, plan.predicted.bytes);
      assert.ok((8 * written) / totalParams <= bpw);
      console.log(`      ${target} at ${bpw} bpw: ${names.map((n) => plan.tensors[n]).join(' ')}; ${((8 * written) / totalParams).toFixed(4)} bpw written`);
    });
  }
});

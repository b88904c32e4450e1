/**
 * GGUF conversion against llama.cpp itself (the library node-llama-cpp ships,
 * run in a child process): for every preset, our file equals the one
 * `llama_model_quantize` writes from the same input, tensor by tensor (type
 * and bytes) and key by key, and the result loads and runs in llama.cpp.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { readGgufHeader, GgufValueType } from '../../src/formats/gguf/reader';
import { GgufFileWriter, layoutGguf } from '../../src/formats/gguf/writer';
import { readImatrix } from '../../src/formats/gguf/imatrix';
import { convertGguf, defaultGgufOutputPath } from '../../src/pipelines/convertGguf';
import { GGUF_PRESETS, GgufPreset } from '../../src/quant/ggml/presets';
import { ggmlTypeByName } from '../../src/formats/gguf/ggmlTypes';
import { llamaModelQuantize } from '../../src/runtime/llamacpp/quantize';
import { llamaEvaluate, meanKlDivergence, LlamaLogits } from '../../src/runtime/llamacpp/evaluate';
import { writeLlamaGguf, TinyLlamaSpec } from '../llamaGguf';
import { WorkerPool } from '../../src/jobs/pool';
import { rng } from '../random';
import { assertSameGguf } from './ggmlFixtures';

const PRESETS = Object.keys(GGUF_PRESETS) as GgufPreset[];

describe('GGUF conversion: byte-identical to llama.cpp llama_model_quantize, and runs in llama.cpp', function () {
  this.timeout(600000);
  let dir: string;
  let f16: string;
  let f32tied: string;
  let refLogits: LlamaLogits;
  const tokens = Array.from({ length: 48 }, (_v, i) => 1 + ((i * 37) % 319));
  const report: string[] = [];
  // 16 layers so that every layer rule (first/last eighth, n/16, every third) is reached;
  // ffn_down rows of 544 are not whole 256-blocks, so the k-quant presets take their fallbacks there.
  const spec: TinyLlamaSpec = { nLayer: 16, nEmbd: 256, nFf: 544, nHead: 4, nHeadKv: 2, nWords: 61, dtype: 'F16', seed: 3 };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-gguf-convert-'));
    f16 = path.join(dir, 'tiny-f16.gguf');
    writeLlamaGguf(f16, spec);
    f32tied = path.join(dir, 'tiny-f32-tied.gguf');
    writeLlamaGguf(f32tied, { nLayer: 4, nEmbd: 256, nFf: 512, nHead: 4, nHeadKv: 1, nWords: 29, dtype: 'F32', tied: true, seed: 5 });
    refLogits = await llamaEvaluate(f16, tokens);
  });
  after(() => {
    if (report.length) console.log(`      mean KL vs the F16 model over ${tokens.length} positions (nats):\n${report.map((r) => `        ${r}`).join('\n')}`);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  for (const preset of PRESETS) {
    it(`${preset}: same file as llama.cpp, loads and evaluates`, async () => {
      const ref = path.join(dir, `ref-${preset}.gguf`), ours = path.join(dir, `ours-${preset}.gguf`);
      await llamaModelQuantize(f16, ref, { ftype: GGUF_PRESETS[preset].ftype, nthread: 1 });
      const r = await convertGguf(f16, ours, { preset });
      assertSameGguf(ours, ref);
      assert.ok(fs.readFileSync(ours).equals(fs.readFileSync(ref)), 'whole files equal');
      assert.equal(r.verification?.tensors, r.tensors.length);
      assert.equal(r.totals.outputBytes, r.tensors.reduce((s, t) => s + t.bytes, 0));
      for (const t of r.tensors) {
        if (t.requantized) assert.ok(t.relMse > 0 && t.relMse < 0.2 && Number.isFinite(t.sqnrDb), `${t.name}: relMse ${t.relMse}`);
        else assert.equal(t.from, t.to);
      }
      const q = await llamaEvaluate(ours, tokens);
      assert.equal(q.nVocab, refLogits.nVocab);
      assert.ok(q.logits.every(Number.isFinite), 'finite logits');
      const kl = meanKlDivergence(refLogits, q);
      assert.ok(kl >= 0 && Number.isFinite(kl));
      report.push(`${preset.padEnd(7)} KL ${kl.toFixed(5)}  relMSE ${r.totals.relMse.toExponential(3)}  ${r.totals.bpw.toFixed(3)} bpw`);
      fs.rmSync(ref);
      fs.rmSync(ours);
    });
  }

  it('F32 source with tied embeddings (token_embd takes the output rule): Q4_K_M and Q8_0', async () => {
    for (const preset of ['Q4_K_M', 'Q8_0'] as const) {
      const ref = path.join(dir, `ref-tied-${preset}.gguf`), ours = path.join(dir, `ours-tied-${preset}.gguf`);
      await llamaModelQuantize(f32tied, ref, { ftype: GGUF_PRESETS[preset].ftype, nthread: 1 });
      const r = await convertGguf(f32tied, ours, { preset });
      assertSameGguf(ours, ref);
      assert.equal(r.tensors.find((t) => t.name === 'token_embd.weight')!.to, preset === 'Q8_0' ? 'Q8_0' : 'Q6_K');
      const q = await llamaEvaluate(ours, tokens.map((t) => t % 288));
      assert.ok(q.logits.every(Number.isFinite));
    }
  });

  it('BF16 source: Q4_K_M and Q6_K', async () => {
    const bf16 = path.join(dir, 'tiny-bf16.gguf');
    writeLlamaGguf(bf16, { ...spec, nLayer: 4, dtype: 'BF16', seed: 9 });
    for (const preset of ['Q4_K_M', 'Q6_K'] as const) {
      const ref = path.join(dir, `ref-bf16-${preset}.gguf`), ours = path.join(dir, `ours-bf16-${preset}.gguf`);
      await llamaModelQuantize(bf16, ref, { ftype: GGUF_PRESETS[preset].ftype, nthread: 1 });
      await convertGguf(bf16, ours, { preset });
      assertSameGguf(ours, ref);
    }
  });

  it('--pure and --tensor-type overrides match llama.cpp', async () => {
    const cases: { name: string; ours: Parameters<typeof convertGguf>[2]; ftype: number; pure?: boolean; tt?: { pattern: string; type: number }[] }[] = [
      { name: 'pure', ours: { preset: 'Q4_K_M', pure: true }, ftype: GGUF_PRESETS.Q4_K_M.ftype, pure: true },
      {
        name: 'overrides', ours: { preset: 'Q4_K_M', tensorTypes: ['attn_q=Q8_0', 'blk\\.1[0-9]\\.ffn_up=q5_k', 'attn_v=Q2_K'] },
        ftype: GGUF_PRESETS.Q4_K_M.ftype,
        tt: [{ pattern: 'attn_q', type: ggmlTypeByName('Q8_0')!.id }, { pattern: 'blk\\.1[0-9]\\.ffn_up', type: ggmlTypeByName('Q5_K')!.id },
          { pattern: 'attn_v', type: ggmlTypeByName('Q2_K')!.id }],
      },
    ];
    for (const c of cases) {
      const ref = path.join(dir, `ref-${c.name}.gguf`), ours = path.join(dir, `ours-${c.name}.gguf`);
      await llamaModelQuantize(f16, ref, { ftype: c.ftype, nthread: 1, pure: c.pure, tensorTypes: c.tt });
      await convertGguf(f16, ours, c.ours);
      assertSameGguf(ours, ref);
    }
  });

  it('an imatrix (legacy .dat and GGUF) feeds the importance-aware encoders as in llama.cpp', async () => {
    const h = readGgufHeader(f16);
    const r = rng(11);
    const weights = h.rawTensors.filter((t) => t.ne.length === 2 && t.name.startsWith('blk.'));
    // Legacy file: per entry sums = mean(x^2) * ncall, as llama-imatrix stores them.
    const ncall = 7;
    const legacy = path.join(dir, 'imatrix.dat');
    const parts: Buffer[] = [Buffer.alloc(4)];
    parts[0].writeInt32LE(weights.length);
    const expected = new Map<string, Float32Array>();
    for (const t of weights) {
      const name = Buffer.from(t.name);
      const head = Buffer.alloc(4 + name.length + 8);
      head.writeInt32LE(name.length, 0); name.copy(head, 4);
      head.writeInt32LE(ncall, 4 + name.length); head.writeInt32LE(t.ne[0], 8 + name.length);
      const v = new Float32Array(t.ne[0]).map(() => (0.05 + r() * r() * 4) * ncall);
      expected.set(t.name, v.map((x) => Math.fround(x / ncall)));
      parts.push(head, Buffer.from(v.buffer));
    }
    const tail = Buffer.alloc(8 + 4); tail.writeInt32LE(12, 0); tail.writeInt32LE(4, 4); tail.write('wiki', 8);
    parts.push(tail);
    fs.writeFileSync(legacy, Buffer.concat(parts));
    const im = readImatrix(legacy);
    assert.equal(im.format, 'legacy');
    assert.deepEqual(im.datasets, ['wiki']);
    assert.equal(im.chunkCount, 12);
    for (const [k, v] of expected) assert.deepEqual(im.entries.get(k), v, k);

    // The same importance as a GGUF imatrix: in_sum2 = importance * count, counts = count.
    const gg = path.join(dir, 'imatrix.gguf');
    const count = 5;
    const kvs = [
      { key: 'general.type', type: GgufValueType.STRING, value: 'imatrix' },
      { key: 'imatrix.datasets', type: GgufValueType.ARRAY, elementType: GgufValueType.STRING, value: ['wiki'] },
      { key: 'imatrix.chunk_count', type: GgufValueType.UINT32, value: 12 },
      { key: 'imatrix.chunk_size', type: GgufValueType.UINT32, value: 512 },
    ];
    const ents = [...expected.entries()];
    const w = new GgufFileWriter(gg, layoutGguf(kvs, ents.flatMap(([n, v]) => [
      { name: `${n}.in_sum2`, ne: [v.length, 1], type: 0 }, { name: `${n}.counts`, ne: [1, 1], type: 0 }])));
    for (const [, v] of ents) {
      w.write(new Uint8Array(v.map((x) => x * count).buffer)); w.endTensor();
      w.write(new Uint8Array(new Float32Array([count]).buffer)); w.endTensor();
    }
    w.finish(); w.commit();
    const img = readImatrix(gg);
    assert.equal(img.format, 'gguf');
    for (const [k, v] of expected) {
      const got = img.entries.get(k)!;
      for (let i = 0; i < v.length; i++) assert.equal(got[i], Math.fround(Math.fround(v[i] * count) / count), `${k}[${i}]`);
    }

    // Q4_0 with an imatrix also promotes the first eighth of ffn_down to Q4_1.
    for (const preset of ['Q4_0', 'Q4_K_M', 'Q2_K'] as const) {
      const ref = path.join(dir, `ref-im-${preset}.gguf`), ours = path.join(dir, `ours-im-${preset}.gguf`);
      await llamaModelQuantize(f16, ref, {
        ftype: GGUF_PRESETS[preset].ftype, nthread: 1, imatrix: [...im.entries].map(([name, data]) => ({ name, data })),
      });
      const res = await convertGguf(f16, ours, { preset, imatrix: legacy });
      // llama_model_quantize itself does not add the quantize.imatrix.* keys; llama-quantize (the tool) does, and so do we.
      assertSameGguf(ours, ref, { ignoreKeys: /^quantize\.imatrix\./ });
      const meta = readGgufHeader(ours).metadata;
      assert.equal(meta['quantize.imatrix.file'], legacy);
      assert.equal(meta['quantize.imatrix.entries_count'], weights.length);
      assert.ok(res.tensors.filter((t) => t.importance).length >= weights.length - 1);
      if (preset === 'Q4_0') assert.equal(res.tensors.find((t) => t.name === 'blk.0.ffn_down.weight')!.to, 'Q4_1');
    }
  });

  it('requantizes Q8_0 only with allowRequantize, as llama.cpp does', async () => {
    const q8 = path.join(dir, 'q8.gguf');
    await llamaModelQuantize(f16, q8, { ftype: GGUF_PRESETS.Q8_0.ftype, nthread: 1 });
    const ours = path.join(dir, 'ours-rq.gguf'), ref = path.join(dir, 'ref-rq.gguf');
    await assert.rejects(convertGguf(q8, ours, { preset: 'Q4_K_M' }), /already Q8_0; pass allowRequantize/);
    assert.ok(!fs.existsSync(ours));
    await llamaModelQuantize(q8, ref, { ftype: GGUF_PRESETS.Q4_K_M.ftype, nthread: 1, allowRequantize: true });
    await convertGguf(q8, ours, { preset: 'Q4_K_M', allowRequantize: true });
    assertSameGguf(ours, ref);
  });

  it('with a worker pool: the same bytes, verified, and Cancel still leaves nothing', async () => {
    const pool = new WorkerPool({ size: 2 });
    try {
      const ref = path.join(dir, 'ref-pool.gguf'), ours = path.join(dir, 'ours-pool.gguf');
      await llamaModelQuantize(f16, ref, { ftype: GGUF_PRESETS.Q5_K_M.ftype, nthread: 2 });
      const r = await convertGguf(f16, ours, { preset: 'Q5_K_M', pool });
      assert.equal(r.verification?.tensors, r.tensors.length);
      assert.ok(fs.readFileSync(ours).equals(fs.readFileSync(ref)));
      const before = new Set(fs.readdirSync(dir));
      const ac = new AbortController();
      await assert.rejects(convertGguf(f16, path.join(dir, 'pool-cancelled.gguf'), { preset: 'Q4_K_M', pool }, {
        signal: ac.signal, onProgress: (p) => { if (p.done === 30) ac.abort(); },
      }), /cancel/);
      assert.deepEqual(new Set(fs.readdirSync(dir)), before);
    } finally {
      await pool.close();
    }
  });

  it('a full disk (ulimit -f) fails the write with a clear error and leaves no partial file', () => {
    const sub = path.join(dir, 'full');
    fs.mkdirSync(sub);
    const script = `require(${JSON.stringify(path.resolve(__dirname, '../../src/pipelines/convertGguf.js'))})` +
      `.convertGguf(${JSON.stringify(f16)}, ${JSON.stringify(path.join(sub, 'out.gguf'))}, { preset: 'Q4_K_M' })` +
      `.then(() => process.exit(0), (e) => { console.error(e.code || '', e.message); process.exit(3); });`;
    let stderr = '';
    let status = 0;
    try {
      // 2 MiB file size limit: the 6 MB output cannot be written.
      execFileSync('bash', ['-c', `ulimit -f 2048; exec "${process.execPath}" -e "$0"`, script], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (e) {
      status = (e as { status: number }).status;
      stderr = String((e as { stderr: Buffer }).stderr);
    }
    assert.equal(status, 3, stderr);
    assert.match(stderr, /EFBIG cannot write .*out\.gguf/);
    assert.deepEqual(fs.readdirSync(sub), []);
  });

  it('Cancel leaves no partial file; the source is never the output', async () => {
    const out = path.join(dir, 'cancelled.gguf');
    const before = new Set(fs.readdirSync(dir));
    const ac = new AbortController();
    let progress = 0;
    await assert.rejects(convertGguf(f16, out, { preset: 'Q4_K_M' }, {
      signal: ac.signal, onProgress: (p) => { progress = p.done; if (p.done === 20) ac.abort(); },
    }), /cancelled/);
    assert.equal(progress, 20);
    assert.deepEqual(new Set(fs.readdirSync(dir)), before, 'nothing left behind');
    await assert.rejects(convertGguf(f16, f16, { preset: 'Q4_0' }), /would overwrite the source/);
    assert.equal(defaultGgufOutputPath('/m/llama-7b-F16.gguf', 'Q4_K_M'), path.join('/m', 'llama-7b-Q4_K_M.gguf'));
    assert.equal(defaultGgufOutputPath('/m/model.gguf', 'Q8_0'), path.join('/m', 'model-Q8_0.gguf'));
    const existing = path.join(dir, 'exists.gguf');
    fs.writeFileSync(existing, 'x');
    await assert.rejects(convertGguf(f16, existing, { preset: 'Q4_0' }), /exists/);
    assert.equal(fs.readFileSync(existing, 'utf8'), 'x');
  });
});

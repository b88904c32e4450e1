/**
 * Hugging Face checkpoints → GGUF, checked in llama.cpp: for each
 * architecture a small generated checkpoint (random weights, a tokenizer
 * trained here) is converted; the F32 output's logits in llama.cpp (F32 KV
 * cache) must match a float64 forward pass of the HF weights written in
 * test/unit/hfFixtures.ts; llama.cpp's tokenization of a few hundred strings
 * must equal @huggingface/tokenizers' on the same tokenizer.json; quantized
 * outputs load and their KL against the F16 conversion is measured.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Tokenizer as HfTokenizer } from '@huggingface/tokenizers' with { 'resolution-mode': 'import' };
import { convertHfGguf } from '../../src/pipelines/convertHfGguf';
import { readGgufHeader } from '../../src/formats/gguf/reader';
import { GGUF_PRESETS, GgufPreset } from '../../src/quant/ggml/presets';
import { llamaModelQuantize } from '../../src/runtime/llamacpp/quantize';
import { WorkerPool } from '../../src/jobs/pool';
import { llamaEvaluate, llamaTokenize, meanKlDivergence } from '../../src/runtime/llamacpp/evaluate';
import { Fixture, FixtureArch, FixtureOptions, gpt2Reference, llamaReference, makeCheckpoint, testStrings } from './hfFixtures';
import { assertSameGguf } from './ggmlFixtures';

interface Case { arch: FixtureArch; opts: FixtureOptions; tol: number; label: string }

const CASES: Case[] = [
  {
    arch: 'llama', label: 'Llama 3 (byte-level BPE, llama3 rope scaling, GQA, 2 shards)', tol: 1e-4,
    opts: { shards: 2, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 } },
  },
  { arch: 'gpt2', label: 'GPT-2 (byte-level BPE, Conv1D, fused qkv)', tol: 1e-3, opts: { dtype: 'F16' } },
  { arch: 'qwen2', label: 'Qwen2 (q/k/v biases, tied embeddings)', tol: 1e-4, opts: { dtype: 'F32' } },
  { arch: 'mistral', label: 'Mistral (SentencePiece-style BPE with byte fallback)', tol: 1e-4, opts: { ropeScaling: { rope_type: 'linear', factor: 2 } } },
];

// The package is ESM with a CommonJS build for Node; this project compiles to CommonJS.
const { Tokenizer } = require('@huggingface/tokenizers') as { Tokenizer: typeof HfTokenizer };

export function hfTokenizer(fx: Fixture): HfTokenizer {
  return new Tokenizer(fx.tokenizer.tokenizer, fx.tokenizer.config);
}

for (const c of CASES) {
  describe(`HF → GGUF: ${c.label}`, function () {
    this.timeout(600_000);
    let dir: string;
    let fx: Fixture;
    let f32: string;
    let tokens: number[];

    before(async () => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), `qs-hf-${c.arch}-`));
      fx = makeCheckpoint(path.join(dir, 'ckpt'), c.arch, c.opts);
      f32 = path.join(dir, 'model-F32.gguf');
      await convertHfGguf(fx.dir, f32, { type: 'F32' });
      const tok = hfTokenizer(fx);
      tokens = tok.encode('The licensor grants you a worldwide, royalty-free licence; naïve café 🙂 12345.', { add_special_tokens: false }).ids.slice(0, 40);
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it('F32: llama.cpp logits match a float64 reference forward pass', async () => {
      const got = await llamaEvaluate(f32, tokens, { nThreads: 2, f32KvCache: true });
      const ref = c.arch === 'gpt2' ? gpt2Reference(fx, tokens) : llamaReference(fx, tokens);
      assert.equal(got.logits.length, ref.length);
      let maxRef = 0, maxErr = 0;
      for (let i = 0; i < ref.length; i++) {
        maxRef = Math.max(maxRef, Math.abs(ref[i]));
        maxErr = Math.max(maxErr, Math.abs(ref[i] - got.logits[i]));
      }
      console.log(`      ${c.arch}: ${tokens.length} tokens, max |logit| ${maxRef.toFixed(3)}, max |err| ${maxErr.toExponential(2)} (${(maxErr / maxRef).toExponential(2)} relative)`);
      assert.ok(maxRef > 0.5, `logits too small to say anything (${maxRef})`);
      assert.ok(maxErr <= c.tol * maxRef, `max |err| ${maxErr} > ${c.tol} × ${maxRef}`);
    });

    it('tokenization of a few hundred strings equals @huggingface/tokenizers', async () => {
      const tok = hfTokenizer(fx);
      const texts = testStrings(300);
      const got = await llamaTokenize(f32, texts, { addSpecial: false, parseSpecial: false });
      let same = 0;
      const bad: string[] = [];
      texts.forEach((t, i) => {
        const want = tok.encode(t, { add_special_tokens: false }).ids;
        if (want.join() === got[i].join()) same++;
        else if (bad.length < 3) bad.push(`${JSON.stringify(t)}: HF [${want.join(' ')}] vs llama.cpp [${got[i].join(' ')}]`);
      });
      assert.equal(same, texts.length, `${texts.length - same} of ${texts.length} differ; first: ${bad.join('\n')}`);
      const withBos = await llamaTokenize(f32, ['hello world'], { addSpecial: true });
      const hfBos = tok.encode('hello world', { add_special_tokens: true }).ids;
      const h = readGgufHeader(f32);
      if (h.metadata['tokenizer.ggml.add_bos_token'] === true) assert.equal(withBos[0][0], h.metadata['tokenizer.ggml.bos_token_id']);
      if (c.arch === 'mistral') assert.deepEqual(withBos[0], [1, ...hfBos.filter((x: number) => x !== 1)]);
    });

    it('Q8_0 and Q4_K_M: byte-identical to llama.cpp quantizing our conversion in the source type; KL against the F16 conversion', async () => {
      // The checkpoint's own float type as a GGUF: llama_model_quantize of it is what llama.cpp's two-step route writes.
      const srcType = c.opts.dtype ?? 'BF16';
      const plain = path.join(dir, `source-${srcType}.gguf`);
      await convertHfGguf(fx.dir, plain, { type: srcType });
      const f16 = path.join(dir, 'model-F16.gguf');
      if (srcType !== 'F16') await convertHfGguf(fx.dir, f16, { type: 'F16' });
      const ref = await llamaEvaluate(srcType === 'F16' ? plain : f16, tokens, { nThreads: 2 });
      const kls: Record<string, number> = {};
      for (const type of ['Q8_0', 'Q4_K_M'] as GgufPreset[]) {
        const out = path.join(dir, `model-${type}.gguf`);
        const r = await convertHfGguf(fx.dir, out, { type });
        assert.equal(r.verification?.tensors, r.tensors.length);
        const viaLlama = path.join(dir, `llama-${type}.gguf`);
        await llamaModelQuantize(plain, viaLlama, { ftype: GGUF_PRESETS[type].ftype, nthread: 1 });
        assertSameGguf(out, viaLlama, { tensorsOnly: true });
        kls[type] = meanKlDivergence(ref, await llamaEvaluate(out, tokens, { nThreads: 2 }));
      }
      if (c.arch === 'llama') {
        // On a worker pool (slabs read by workers from the shards, reshuffled ones sent over): the same file.
        const pool = new WorkerPool({ size: 2 });
        try {
          const viaPool = path.join(dir, 'pool-Q4_K_M.gguf');
          await convertHfGguf(fx.dir, viaPool, { type: 'Q4_K_M', pool });
          assert.ok(fs.readFileSync(viaPool).equals(fs.readFileSync(path.join(dir, 'model-Q4_K_M.gguf'))), 'pool output differs');
        } finally {
          await pool.close();
        }
      }
      console.log(`      ${c.arch}: mean KL vs F16 conversion: Q8_0 ${kls.Q8_0.toExponential(2)}, Q4_K_M ${kls.Q4_K_M.toExponential(2)}`);
      assert.ok(kls.Q8_0 > 0 && kls.Q8_0 < kls.Q4_K_M, `Q8_0 should be closer to F16 than Q4_K_M: ${JSON.stringify(kls)}`);
    });
  });
}

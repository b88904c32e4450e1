/**
 * Hyperparameter keys of HF → GGUF beyond the per-architecture suites: a
 * head width that is not hidden / heads (llama.cpp's key_length and
 * value_length; logits checked against the float64 reference), yarn and
 * linear rope scaling keys, and the tokenizer keys llama.cpp reads.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertHfGguf } from '../../src/pipelines/convertHfGguf';
import { readGgufHeader } from '../../src/formats/gguf/reader';
import { llamaEvaluate } from '../../src/runtime/llamacpp/evaluate';
import { llamaReference, makeCheckpoint } from './hfFixtures';

describe('HF → GGUF: hyperparameter and tokenizer keys', function () {
  this.timeout(300_000);
  let dir: string;
  before(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-hf-keys-')); });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('head_dim ≠ hidden / heads: key_length/value_length written; llama.cpp logits match the reference', async () => {
    const fx = makeCheckpoint(path.join(dir, 'hd'), 'llama', { layers: 1, hidden: 256, heads: 4, kvHeads: 2, headDim: 32, merges: 100 });
    const out = path.join(dir, 'hd.gguf');
    await convertHfGguf(fx.dir, out, { type: 'F32' });
    const h = readGgufHeader(out);
    assert.equal(h.metadata['llama.attention.key_length'], 32);
    assert.equal(h.metadata['llama.attention.value_length'], 32);
    assert.equal(h.metadata['llama.rope.dimension_count'], 32);
    const tokens = [5, 300, 17, 42, 99, 256, 7, 1, 3, 120];
    const got = await llamaEvaluate(out, tokens, { nThreads: 2, f32KvCache: true });
    const ref = llamaReference(fx, tokens);
    let maxRef = 0, maxErr = 0;
    for (let i = 0; i < ref.length; i++) { maxRef = Math.max(maxRef, Math.abs(ref[i])); maxErr = Math.max(maxErr, Math.abs(ref[i] - got.logits[i])); }
    assert.ok(maxErr <= 1e-4 * maxRef, `max |err| ${maxErr} vs max |logit| ${maxRef}`);
  });

  it('yarn and linear rope scaling become rope.scaling.* keys; llama3 becomes a rope_freqs tensor', async () => {
    const cases: [Record<string, unknown>, Record<string, unknown>, boolean][] = [
      [{ rope_type: 'yarn', factor: 4, original_max_position_embeddings: 512 }, { 'qwen2.rope.scaling.type': 'yarn', 'qwen2.rope.scaling.factor': 4, 'qwen2.rope.scaling.original_context_length': 512 }, false],
      [{ type: 'linear', factor: 2 }, { 'qwen2.rope.scaling.type': 'linear', 'qwen2.rope.scaling.factor': 2 }, false],
    ];
    for (const [rs, keys] of cases) {
      const fx = makeCheckpoint(path.join(dir, `rs-${String(rs.rope_type ?? rs.type)}`), 'qwen2', { layers: 1, hidden: 64, heads: 2, kvHeads: 1, ffn: 128, merges: 50, ropeScaling: rs });
      const out = path.join(dir, `rs-${String(rs.rope_type ?? rs.type)}.gguf`);
      await convertHfGguf(fx.dir, out, { type: 'F16' });
      const h = readGgufHeader(out);
      for (const [k, v] of Object.entries(keys)) assert.equal(h.metadata[k], v, k);
      assert.ok(!h.rawTensors.some((t) => t.name === 'rope_freqs.weight'));
      // Loads in llama.cpp.
      await llamaEvaluate(out, [1, 2, 3], { nThreads: 1 });
    }
    const fx = makeCheckpoint(path.join(dir, 'l3'), 'llama', { layers: 1, hidden: 64, heads: 2, kvHeads: 1, ffn: 128, merges: 50, ropeScaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } });
    const out = path.join(dir, 'l3.gguf');
    await convertHfGguf(fx.dir, out, { type: 'F16' });
    const h = readGgufHeader(out);
    const rf = h.rawTensors.find((t) => t.name === 'rope_freqs.weight');
    assert.ok(rf && rf.ne.join() === '16' && rf.type === 0, 'rope_freqs: F32, head_dim / 2 values');
    assert.equal(h.metadata['llama.rope.scaling.type'], undefined);
  });

  it('tokenizer keys: model, pre, special ids, add_bos, chat template, [PAD] rows', async () => {
    const fx = makeCheckpoint(path.join(dir, 'tk'), 'llama', { layers: 1, hidden: 64, heads: 2, kvHeads: 1, ffn: 128, merges: 50 });
    const out = path.join(dir, 'tk.gguf');
    await convertHfGguf(fx.dir, out, { type: 'F16' });
    const m = readGgufHeader(out).metadata;
    const toks = m['tokenizer.ggml.tokens'] as string[];
    const types = m['tokenizer.ggml.token_type'] as number[];
    assert.equal(m['tokenizer.ggml.model'], 'gpt2');
    assert.equal(m['tokenizer.ggml.pre'], 'llama-bpe');
    assert.equal(toks[m['tokenizer.ggml.bos_token_id'] as number], '<|begin_of_text|>');
    assert.equal(toks[m['tokenizer.ggml.eos_token_id'] as number], '<|eot_id|>');
    assert.equal(types[m['tokenizer.ggml.bos_token_id'] as number], 3, 'special tokens are CONTROL');
    assert.equal(m['tokenizer.ggml.add_bos_token'], true);
    assert.match(m['tokenizer.chat_template'] as string, /eot_id/);
    assert.equal(toks.length, (fx.weights.get('model.embed_tokens.weight')!.shape[0]));
    assert.equal(toks[toks.length - 1], `[PAD${toks.length - 1}]`);
    assert.equal(types[toks.length - 1], 4);
    assert.ok((m['tokenizer.ggml.merges'] as string[]).length > 0);
    assert.equal(m['general.file_type'], 1);
  });

  it('SentencePiece-style tokenizer keys: llama model, scores, unknown / byte / control types, bos and add_bos', async () => {
    const fx = makeCheckpoint(path.join(dir, 'spm'), 'mistral', { layers: 1, hidden: 64, heads: 2, kvHeads: 1, ffn: 128, merges: 50 });
    const out = path.join(dir, 'spm.gguf');
    await convertHfGguf(fx.dir, out, { type: 'F16' });
    const m = readGgufHeader(out).metadata;
    const toks = m['tokenizer.ggml.tokens'] as string[];
    const types = m['tokenizer.ggml.token_type'] as number[];
    const scores = m['tokenizer.ggml.scores'] as number[];
    assert.equal(m['tokenizer.ggml.model'], 'llama');
    assert.equal(m['tokenizer.ggml.pre'], undefined);
    assert.equal(scores.length, toks.length);
    assert.deepEqual([toks[0], types[0]], ['<unk>', 2]);
    assert.deepEqual([toks[1], types[1]], ['<s>', 3]);
    assert.deepEqual([toks[3 + 0x41], types[3 + 0x41]], ['<0x41>', 6]);
    assert.equal(m['tokenizer.ggml.bos_token_id'], 1);
    assert.equal(m['tokenizer.ggml.unknown_token_id'], 0);
    assert.equal(m['tokenizer.ggml.add_bos_token'], true);
    // Earlier pieces rank higher, as SentencePiece's BPE scores them.
    const normal = toks.map((_t, i) => i).filter((i) => types[i] === 1);
    assert.ok(normal.every((i, k) => k === 0 || scores[i] < scores[normal[k - 1]]));
  });
});

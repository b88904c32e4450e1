/**
 * Bad Hugging Face checkpoints: each gives an error naming the file and what
 * is wrong, in bounded time, and leaves no output or temp file behind; a
 * cancelled conversion leaves nothing either.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { convertHfGguf } from '../../src/pipelines/convertHfGguf';
import { openHfCheckpoint } from '../../src/formats/hf/checkpoint';
import { readHfTokenizer } from '../../src/formats/hf/tokenizer';
import { FormatError } from '../../src/formats/types';
import { makeCheckpoint } from './hfFixtures';

describe('HF → GGUF: bad checkpoints and tokenizers', function () {
  this.timeout(120_000);
  let root: string;
  let good: string;
  let n = 0;

  before(() => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-hf-bad-'));
    good = makeCheckpoint(path.join(root, 'good'), 'llama', { layers: 1, hidden: 64, heads: 2, kvHeads: 1, ffn: 128, merges: 60, shards: 2 }).dir;
  });
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  /** A copy of the good checkpoint, changed by `edit`. */
  function variant(edit: (dir: string) => void): string {
    const dir = path.join(root, `v${n++}`);
    fs.cpSync(good, dir, { recursive: true });
    edit(dir);
    return dir;
  }
  const editJson = (file: string, f: (j: any) => void) => { // eslint-disable-line @typescript-eslint/no-explicit-any
    const j = JSON.parse(fs.readFileSync(file, 'utf8'));
    f(j);
    fs.writeFileSync(file, JSON.stringify(j));
  };

  async function expectError(dir: string, file: RegExp, what: RegExp): Promise<void> {
    const out = path.join(root, `out-${n}.gguf`);
    const t0 = Date.now();
    await assert.rejects(convertHfGguf(dir, out, { type: 'Q8_0' }), (e: Error) => {
      assert.match(e.message, file, `message should name the file: ${e.message}`);
      assert.match(e.message, what, e.message);
      return true;
    });
    assert.ok(Date.now() - t0 < 20_000, 'took too long');
    assert.ok(!fs.existsSync(out));
    assert.deepEqual(fs.readdirSync(root).filter((f) => f.startsWith('.')), [], 'temp file left behind');
  }

  it('the good checkpoint converts (the variants below differ from it in one thing)', async () => {
    const out = path.join(root, 'good.gguf');
    const r = await convertHfGguf(good, out, { type: 'Q8_0' });
    assert.equal(r.ggufArch, 'llama');
    fs.rmSync(out);
  });

  it('missing config.json', async () => {
    await expectError(variant((d) => fs.rmSync(path.join(d, 'config.json'))), /config\.json/, /missing/);
  });

  it('config.json that is not JSON, or lacks a needed key, or has a wrong type', async () => {
    await expectError(variant((d) => fs.writeFileSync(path.join(d, 'config.json'), '{"architectures": ["LlamaForCausalLM"],')), /config\.json/, /JSON/);
    await expectError(variant((d) => editJson(path.join(d, 'config.json'), (j) => { delete j.hidden_size; })), /config\.json/, /hidden_size: missing/);
    await expectError(variant((d) => editJson(path.join(d, 'config.json'), (j) => { j.num_attention_heads = '2'; })), /config\.json/, /num_attention_heads: must be an integer/);
    await expectError(variant((d) => editJson(path.join(d, 'config.json'), (j) => { j.rope_scaling = { rope_type: 'dynamic', factor: 2 }; })), /config\.json/, /rope_scaling.*dynamic/);
  });

  it('an unknown architecture is named', async () => {
    await expectError(variant((d) => editJson(path.join(d, 'config.json'), (j) => { j.architectures = ['BertForMaskedLM']; })), /config\.json/, /BertForMaskedLM is not supported/);
  });

  it('a tensor listed in the index but missing from its shard', async () => {
    await expectError(variant((d) => editJson(path.join(d, 'model.safetensors.index.json'), (j) => { j.weight_map['model.layers.0.extra.weight'] = 'model-00001-of-00002.safetensors'; })),
      /model-00001-of-00002\.safetensors/, /model\.layers\.0\.extra\.weight.*listed in model\.safetensors\.index\.json but missing/);
  });

  it('a missing shard, and a shape that disagrees with config.json', async () => {
    await expectError(variant((d) => fs.rmSync(path.join(d, 'model-00002-of-00002.safetensors'))), /model-00002-of-00002\.safetensors/, /not found/);
    await expectError(variant((d) => editJson(path.join(d, 'config.json'), (j) => { j.intermediate_size = 256; })), /\.safetensors/, /mlp\.\w+_proj\.weight: shape/);
  });

  it('a tensor the architecture has no place for', async () => {
    const dir = variant((d) => {
      const { writeSafetensors } = require('./hfFixtures') as typeof import('./hfFixtures');
      writeSafetensors(path.join(d, 'model-00003-of-00003.safetensors'), [{ name: 'model.layers.0.mystery.weight', shape: [4], data: new Float32Array(4) }], 'F32');
      editJson(path.join(d, 'model.safetensors.index.json'), (j) => { j.weight_map['model.layers.0.mystery.weight'] = 'model-00003-of-00003.safetensors'; });
    });
    await expectError(dir, /model-00003-of-00003\.safetensors/, /mystery\.weight: has no GGUF counterpart/);
  });

  it('tokenizer.json: missing, wrong types, unknown pre-tokenizer, more tokens than embedding rows', async () => {
    await expectError(variant((d) => fs.rmSync(path.join(d, 'tokenizer.json'))), /tokenizer\.json/, /missing/);
    await expectError(variant((d) => editJson(path.join(d, 'tokenizer.json'), (j) => { j.model.vocab.a = 'seven'; })), /tokenizer\.json/, /model\.vocab\["a"\]: is not a token id/);
    await expectError(variant((d) => editJson(path.join(d, 'tokenizer.json'), (j) => { j.model.merges = 'a b'; })), /tokenizer\.json/, /model\.merges: is not an array/);
    await expectError(variant((d) => editJson(path.join(d, 'tokenizer.json'), (j) => { j.added_tokens[0].content = 42; })), /tokenizer\.json/, /added_tokens\[0\]\.content: is not a string/);
    await expectError(variant((d) => editJson(path.join(d, 'tokenizer.json'), (j) => { j.pre_tokenizer.pretokenizers[0].pattern.Regex = '\\w+'; })), /tokenizer\.json/, /not one llama\.cpp implements/);
    await expectError(variant((d) => editJson(path.join(d, 'tokenizer.json'), (j) => { j.model.type = 'WordPiece'; })), /tokenizer\.json/, /model\.type: "WordPiece" is not supported/);
    await expectError(variant((d) => editJson(path.join(d, 'tokenizer.json'), (j) => { j.added_tokens.push({ id: 1_000_000, content: '<x>', special: true }); })), /tokenizer\.json/, /beyond the model's \d+-row token embedding/);
    await expectError(variant((d) => editJson(path.join(d, 'tokenizer_config.json'), (j) => { j.bos_token = '<|nope|>'; })), /tokenizer_config\.json/, /bos_token.*is not a token/);
  });

  it('hostile tokenizer.json: huge (refused before reading), deeply nested, not an object: bounded work, clear errors', async () => {
    const huge = variant((d) => {
      const fd = fs.openSync(path.join(d, 'tokenizer.json'), 'w');
      fs.ftruncateSync(fd, 80_000_000);
      fs.closeSync(fd);
    });
    await expectError(huge, /tokenizer\.json/, /exceeds the 64000000-byte limit/);
    const depth = 2_000_000;
    await expectError(variant((d) => fs.writeFileSync(path.join(d, 'tokenizer.json'), '['.repeat(depth) + ']'.repeat(depth))), /tokenizer\.json/, /not an object|JSON/);
    await expectError(variant((d) => fs.writeFileSync(path.join(d, 'tokenizer.json'), `{"model": ${'{"vocab":'.repeat(depth / 10)}1${'}'.repeat(depth / 10)}}`)), /tokenizer\.json/, /not supported|not an object|JSON/);
    await expectError(variant((d) => fs.writeFileSync(path.join(d, 'tokenizer.json'), Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))), /tokenizer\.json/, /UTF-8/);
  });

  it('errors are FormatErrors carrying the file', () => {
    const dir = variant((d) => editJson(path.join(d, 'tokenizer.json'), (j) => { j.model.vocab = [1, 2]; }));
    const ck = openHfCheckpoint(dir);
    try {
      assert.throws(() => readHfTokenizer(ck, 1000), (e: unknown) => e instanceof FormatError && e.file === path.join(dir, 'tokenizer.json') && e.where === 'model.vocab');
    } finally {
      ck.close();
    }
  });

  it('cancelled mid-way: rejects, and neither the output nor a temp file remains', async () => {
    const out = path.join(root, 'cancelled.gguf');
    const ac = new AbortController();
    await assert.rejects(convertHfGguf(good, out, { type: 'Q4_K_M' }, { signal: ac.signal, onProgress: (p) => { if (p.done === 2) ac.abort(); } }), /cancel/);
    assert.ok(!fs.existsSync(out));
    assert.deepEqual(fs.readdirSync(root).filter((f) => f.startsWith('.')), []);
  });
});

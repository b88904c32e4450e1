/**
 * `quantscope quantize CHECKPOINT_DIR --target gguf` as a shell runs it
 * (dist/cli.js in a child process): the JSON report against its schema, the
 * llama.cpp check (KL against the F16 conversion), default output naming,
 * a plan, and exit code 1 with a message naming the file for a bad checkpoint.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { readGgufHeader } from '../../src/formats/gguf/reader';
import { ggmlTypeByName } from '../../src/formats/gguf/ggmlTypes';
import { cliPath, root, runCli } from './cli-spawn';
import { makeCheckpoint } from './hfFixtures';

describe('CLI: quantize a Hugging Face checkpoint to GGUF (child process)', function () {
  this.timeout(600_000);
  let dir: string;
  let ckpt: string;

  before(function () {
    if (!fs.existsSync(cliPath)) throw new Error(`${cliPath} missing: run npm run build first`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-hf-cli-'));
    ckpt = makeCheckpoint(path.join(dir, 'tiny-llama'), 'llama', { layers: 1 }).dir;
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('Q4_K_M --json: exit 0, the schema holds, llama.cpp measured a KL against the F16 conversion, no temp files left', async () => {
    const out = path.join(dir, 'out-Q4_K_M.gguf');
    const r = await runCli(['quantize', ckpt, '-o', out, '--target', 'gguf', '--type', 'Q4_K_M', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout.toString()) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
    const validate = ajv.compile(JSON.parse(fs.readFileSync(path.join(root, 'schemas', 'quantize.v1.json'), 'utf8')) as object);
    assert.ok(validate(rep), JSON.stringify(validate.errors));
    assert.equal(rep.output, out);
    assert.equal(rep.settings.architecture, 'LlamaForCausalLM');
    assert.equal(rep.settings.tokenizer.pre, 'llama-bpe');
    const kl = rep.verification.runtime.outputs[0].meanKl as number;
    assert.ok(kl > 0 && kl < 5, `mean KL ${kl}`);
    assert.ok(rep.verification.readBack.checked > 0);
    assert.ok(rep.totals.fileBytesBefore > rep.totals.fileBytesAfter && rep.totals.fileBytesAfter === fs.statSync(out).size, JSON.stringify(rep.totals));
    const h = readGgufHeader(out);
    assert.equal(h.metadata['general.architecture'], 'llama');
    assert.equal(h.metadata['general.file_type'], 15);
    assert.ok(h.rawTensors.some((t) => t.name === 'blk.0.attn_q.weight' && t.type === ggmlTypeByName('Q4_K')!.id));
    assert.deepEqual(fs.readdirSync(dir).filter((n) => n.startsWith('.')), [], 'temp files left behind');
  });

  it('F16 without -o: written into the checkpoint folder as <folder>-F16.gguf; a plan sets one tensor\'s type', async () => {
    const plan = path.join(dir, 'plan.json');
    fs.writeFileSync(plan, JSON.stringify({ schema: 'quantscope/plan/v1', target: 'gguf', tensors: { 'blk.0.ffn_down.weight': 'Q8_0' } }));
    const r = await runCli(['quantize', ckpt, '--target', 'gguf', '--type', 'F16', '--plan', plan, '--no-runtime-check']);
    assert.equal(r.code, 0, r.stderr);
    const out = path.join(ckpt, 'tiny-llama-F16.gguf');
    const h = readGgufHeader(out);
    const type = (n: string) => h.rawTensors.find((t) => t.name === n)!.type;
    assert.equal(type('blk.0.ffn_down.weight'), ggmlTypeByName('Q8_0')!.id);
    assert.equal(type('blk.0.ffn_up.weight'), ggmlTypeByName('F16')!.id);
    assert.equal(type('blk.0.attn_norm.weight'), ggmlTypeByName('F32')!.id);
    fs.rmSync(out);
  });

  it('a checkpoint without config.json: exit 1 naming config.json; no output', async () => {
    const bad = path.join(dir, 'no-config');
    fs.mkdirSync(bad);
    fs.copyFileSync(path.join(ckpt, 'model.safetensors'), path.join(bad, 'model.safetensors'));
    const r = await runCli(['quantize', path.join(bad, 'model.safetensors'), '-o', path.join(dir, 'x.gguf'), '--target', 'gguf', '--type', 'Q8_0']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /config\.json/);
    assert.ok(!fs.existsSync(path.join(dir, 'x.gguf')));
    const r2 = await runCli(['quantize', bad, '-o', path.join(dir, 'x.gguf'), '--target', 'gguf', '--type', 'Q8_0']);
    assert.equal(r2.code, 1, r2.stderr);
    assert.match(r2.stderr, /no-config: a folder converts only as a Hugging Face checkpoint.*no config\.json/);
  });
});

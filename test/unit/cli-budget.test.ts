/**
 * `quantscope quantize ... --budget-bpw X | --budget-mb N` for the gguf and
 * safetensors targets as a shell runs it (dist/cli.js in a child process):
 * the written file meets the budget, holds the plan's types, and loads and
 * evaluates in llama.cpp (node-llama-cpp) for gguf; a budget below the
 * smallest plan exits 1 naming the file and leaves nothing behind.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { readGgufHeader } from '../../src/formats/gguf/reader';
import { ggmlTypeById } from '../../src/formats/gguf/ggmlTypes';
import { readHfConfig } from '../../src/formats/safetensors/quantizedView';
import { cliPath, root, runCli } from './cli-spawn';
import { makeCheckpoint } from './hfFixtures';
import { writeLlamaGguf } from '../llamaGguf';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('CLI: size budgets for gguf and safetensors targets (child process)', function () {
  this.timeout(600_000);
  let dir: string;
  let gguf: string;
  let ckpt: string;
  const validate = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true })
    .compile(JSON.parse(fs.readFileSync(path.join(root, 'schemas', 'quantize.v1.json'), 'utf8')) as object);

  before(function () {
    if (!fs.existsSync(cliPath)) throw new Error(`${cliPath} missing: run npm run build first`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-cli-budget-'));
    gguf = path.join(dir, 'tiny-F16.gguf');
    writeLlamaGguf(gguf, { nLayer: 2, nEmbd: 256, nFf: 512, nHead: 4, nHeadKv: 2, nWords: 253, dtype: 'F16', seed: 21 });
    ckpt = makeCheckpoint(path.join(dir, 'tiny-llama'), 'llama', { layers: 1, hidden: 256, ffn: 512, heads: 4, kvHeads: 2 }).dir;
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** Runs the CLI with --json: exit 0 and a report that satisfies the schema. */
  async function quantizeJson(args: string[]): Promise<Json> {
    const r = await runCli(['quantize', ...args, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout.toString()) as Json;
    assert.ok(validate(rep), JSON.stringify(validate.errors));
    return rep;
  }

  /** Bits per weight of a GGUF's tensor data (blocks × type size over all elements, from its header). */
  function dataBpw(file: string): number {
    const h = readGgufHeader(file);
    let n = 0, bytes = 0;
    for (const t of h.rawTensors) {
      const k = t.ne.reduce((x, y) => x * Number(y), 1), info = ggmlTypeById(t.type)!;
      n += k;
      bytes += (k / info.blockSize) * info.typeSize;
    }
    return (8 * bytes) / n;
  }

  /** The written GGUF's types equal the plan's, tensor by tensor. */
  function assertPlanWritten(out: string, planFile: string): Record<string, string> {
    const plan = JSON.parse(fs.readFileSync(planFile, 'utf8')) as { schema: string; target: string; tensors: Record<string, string> };
    assert.equal(plan.schema, 'quantscope/plan/v1');
    assert.equal(plan.target, 'gguf');
    const h = readGgufHeader(out);
    let n = 0;
    for (const t of h.rawTensors) {
      const c = plan.tensors[t.name];
      if (!c) continue;
      n++;
      if (c !== 'keep') assert.equal(ggmlTypeById(t.type)!.name, c, t.name);
    }
    assert.equal(n, Object.keys(plan.tensors).length);
    return plan.tensors;
  }

  it('GGUF --budget-mb: the file fits, holds the plan, and llama.cpp loads and evaluates it (KL against the source reported)', async () => {
    const out = path.join(dir, 'tiny-budget.gguf');
    const mb = 1.2;
    const rep = await quantizeJson([gguf, '-o', out, '--target', 'gguf', '--budget-mb', String(mb)]);
    const size = fs.statSync(out).size;
    assert.ok(size <= mb * 1e6, `${size} bytes > ${mb} MB`);
    assert.equal(rep.totals.fileBytesAfter, size);
    assert.equal(rep.plan.file, `${out}.plan.json`);
    assert.ok(rep.plan.predicted.errorKind.includes('real weights'));
    const tensors = assertPlanWritten(out, `${out}.plan.json`);
    assert.equal(rep.plan.estimates.length, Object.keys(tensors).length);
    assert.equal(rep.verification.runtime.runtime, 'llama.cpp', JSON.stringify(rep.verification));
    const kl = rep.verification.runtime.outputs[0].meanKl as number;
    assert.ok(Number.isFinite(kl) && kl >= 0, String(kl));
    const types = Object.values(tensors).reduce<Record<string, number>>((a, c) => ({ ...a, [c]: (a[c] ?? 0) + 1 }), {});
    console.log(`      --budget-mb ${mb}: ${size} bytes written (source ${fs.statSync(gguf).size}); types ${JSON.stringify(types)}; llama.cpp mean KL vs the F16 source ${kl.toExponential(3)}`);
  });

  it('GGUF --budget-bpw: tensor data within the bits per weight, text report names the predicted error per tensor', async () => {
    const out = path.join(dir, 'tiny-bpw.gguf');
    const r = await runCli(['quantize', gguf, '-o', out, '--target', 'gguf', '--budget-bpw', '5.5', '--no-runtime-check']);
    assert.equal(r.code, 0, r.stderr);
    const text = r.stdout.toString();
    assert.match(text, /predicted per tensor: weight-space error of the chosen ggml type on sampled rows of the real weights/);
    assert.match(text, /blk\.1\.ffn_down\.weight/);
    assert.ok(dataBpw(out) <= 5.5, `${dataBpw(out)} bpw`);
    assertPlanWritten(out, `${out}.plan.json`);
  });

  it('Hugging Face checkpoint → GGUF --budget-bpw: llama.cpp loads it and the KL against the F16 conversion is reported', async () => {
    const out = path.join(dir, 'ck-budget.gguf');
    const rep = await quantizeJson([ckpt, '-o', out, '--target', 'gguf', '--budget-bpw', '4.8']);
    assertPlanWritten(out, `${out}.plan.json`);
    assert.ok(dataBpw(out) <= 4.8, `${dataBpw(out)} bpw`);
    assert.equal(rep.verification.runtime.runtime, 'llama.cpp');
    const kl = rep.verification.runtime.outputs[0].meanKl as number;
    assert.ok(Number.isFinite(kl) && kl >= 0, String(kl));
    console.log(`      checkpoint at 4.8 bpw: ${fs.statSync(out).size} bytes; llama.cpp mean KL vs the F16 conversion ${kl.toExponential(3)}`);
  });

  it('a budget below the smallest plan exits 1 with the smallest size, for gguf, a checkpoint and safetensors-gptq; nothing is left', async () => {
    const cases: [string[], string][] = [
      [[gguf, '-o', path.join(dir, 'small.gguf'), '--target', 'gguf', '--budget-mb', '0.2'], gguf],
      [[ckpt, '-o', path.join(dir, 'small-ck.gguf'), '--target', 'gguf', '--budget-bpw', '1'], ckpt],
      [[ckpt, '-o', path.join(dir, 'small-gptq'), '--target', 'safetensors-gptq', '--budget-bpw', '1'], 'model.safetensors'],
    ];
    for (const [args, named] of cases) {
      const r = await runCli(['quantize', ...args]);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /below the smallest plan/);
      assert.ok(r.stderr.includes(named), r.stderr);
      const out = args[2];
      assert.ok(!fs.existsSync(`${out}.plan.json`), `${out}.plan.json left`);
      assert.ok(!fs.existsSync(out) || fs.readdirSync(out).length === 0, `${out} left`);
    }
  });

  it('safetensors-gptq --budget-bpw: per-weight bits in the checkpoint (GPTQ dynamic), bytes as planned', async () => {
    const out = path.join(dir, 'ck-gptq');
    const rep = await quantizeJson([ckpt, '-o', out, '--target', 'safetensors-gptq', '--budget-bpw', '5']);
    const plan = JSON.parse(fs.readFileSync(`${out}.plan.json`, 'utf8')) as { target: string; tensors: Record<string, string>; predicted: { bytes: number } };
    assert.equal(plan.target, 'safetensors-gptq');
    const chosen = new Set(Object.values(plan.tensors));
    assert.ok(chosen.size > 1, `a mixed plan: ${[...chosen].join()}`);
    const quantized = (rep.tensors as Json[]).reduce((a, t) => a + (t.bytesAfter as number), 0);
    const kept = (rep.kept as Json[]).filter((k) => k.reason === 'plan: keep').length;
    assert.equal(kept, Object.values(plan.tensors).filter((c) => c === 'keep').length);
    if (kept === 0) assert.equal(quantized, plan.predicted.bytes);
    const qc = readHfConfig(out)!.config.quantization_config as Json;
    assert.equal(qc.quant_method, 'gptq');
    for (const t of rep.tensors as Json[]) {
      const bits = Number(/int(\d)/.exec(t.choice as string)![1]);
      assert.equal(`int${bits}`, plan.tensors[t.name as string].split('-')[0], t.name as string);
    }
    if (new Set((rep.tensors as Json[]).map((t) => /int(\d)/.exec(t.choice as string)![1])).size > 1) assert.ok(qc.dynamic && Object.keys(qc.dynamic as object).length > 0, JSON.stringify(qc));
  });
});

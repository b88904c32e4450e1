/**
 * `quantscope quantize` as a script runs it: the built dist/cli.js as a child
 * process with real pipes, on the trained tiny transformer, a real PP-OCR
 * model and a generated LLaMA GGUF. What the report says is checked against
 * the written file (our reader) and exit codes against each class of failure.
 */
import * as assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/formats/index';
import { TEMP_FILE_PATTERN } from '../../src/formats/atomicWrite';
import { writeLlamaGguf } from '../llamaGguf';
import { withTmpfs } from './tmpfs';

const ROOT = path.resolve(__dirname, '../../..');
const CLI = path.join(ROOT, 'dist', 'cli.js');
const TINY = path.join(ROOT, 'test', 'fixtures', 'tiny-transformer', 'tiny-transformer.onnx');
const CLS = path.join(ROOT, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_ppocr_mobile_v2.0_cls_infer.onnx');

function cli(args: string[], opts: { signalAfterMs?: number } = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    if (opts.signalAfterMs !== undefined) setTimeout(() => p.kill('SIGINT'), opts.signalAfterMs);
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

describe('CLI quantize (dist/cli.js as a child process)', function () {
  this.timeout(300_000);
  let dir: string;
  before(function () {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run 'npm run build' first`);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-cliq-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('onnx-int4: writes MatMulNBits weights that read back as predicted and run in ONNX Runtime (synthetic inputs, said so)', async () => {
    const out = path.join(dir, 'tiny.int4.onnx');
    const r = await cli(['quantize', TINY, '-o', out, '--target', 'onnx-int4', '--json']);
    assert.equal(r.code, 0, r.err);
    const rep = JSON.parse(r.out);
    assert.equal(rep.schema, 'quantscope/quantize/v1');
    assert.equal(rep.tensors.length, 9);
    assert.equal(rep.verification.readBack.checked, 9);
    assert.deepEqual(rep.verification.readBack.mismatched, []);
    assert.equal(rep.verification.runtime.runtime, 'onnxruntime-node');
    assert.equal(rep.verification.runtime.data, 'synthetic');
    assert.ok(rep.verification.runtime.outputs[0].cosine > 0.9, JSON.stringify(rep.verification.runtime.outputs));
    assert.equal(rep.totals.fileBytesAfter, fs.statSync(out).size);
    const m = openModel(out);
    try {
      const nodes = m.graph!.nodes.filter((n) => n.opType === 'MatMulNBits');
      assert.equal(nodes.length, 9);
      assert.ok(nodes.every((n) => n.domain === 'com.microsoft' && n.attributes.bits === 4 && n.attributes.block_size === 128));
    } finally { m.close(); }
    // No temp file left beside the output.
    assert.deepEqual(fs.readdirSync(dir).filter((f) => TEMP_FILE_PATTERN.test(f)), []);
  });

  it('--calib through the data layer: GPTQ on byte windows of real text, and the output comparison says it ran on calibration data', async () => {
    const out = path.join(dir, 'tiny.gptq.onnx');
    const calib = path.join(ROOT, 'test', 'fixtures', 'tiny-transformer', 'calibration.txt');
    const r = await cli(['quantize', TINY, '-o', out, '--target', 'onnx-int4', '--algo', 'gptq', '--block-size', '32', '--calib', calib, '--samples', '16', '--json']);
    assert.equal(r.code, 0, r.err);
    const rep = JSON.parse(r.out);
    assert.equal(rep.settings.algo, 'gptq');
    assert.ok(rep.tensors.every((t: { choice: string }) => /gptq/.test(t.choice)), JSON.stringify(rep.tensors.map((t: { choice: string }) => t.choice)));
    assert.equal(rep.verification.runtime.data, 'calibration');
    const missing = await cli(['quantize', TINY, '-o', path.join(dir, 'x.onnx'), '--target', 'onnx-int4', '--algo', 'gptq', '--calib', path.join(dir, 'nope.npy')]);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /nope\.npy/);
  });

  it('onnx-qdq on PP-OCR cls (weights in Constant nodes): human report names what was measured and on what data', async () => {
    const out = path.join(dir, 'cls.qdq.onnx');
    const r = await cli(['quantize', CLS, '-o', out, '--target', 'onnx-qdq']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /read back\s+\d+ tensors decode to the predicted values/);
    assert.match(r.out, /measured\s+on onnxruntime-node, synthetic inputs/);
    assert.ok(fs.statSync(out).size < fs.statSync(CLS).size * 0.5);
  });

  it('a budget writes the knapsack plan and converts with it; the plan converts again as a file', async () => {
    const out = path.join(dir, 'tiny.mixed.onnx');
    const r = await cli(['quantize', TINY, '-o', out, '--target', 'onnx-int4', '--budget-bpw', '6', '--json']);
    assert.equal(r.code, 0, r.err);
    const rep = JSON.parse(r.out);
    const planFile = `${out}.plan.json`;
    assert.equal(rep.plan.file, planFile);
    const plan = JSON.parse(fs.readFileSync(planFile, 'utf8'));
    assert.equal(plan.schema, 'quantscope/plan/v1');
    assert.equal(Object.keys(plan.tensors).length, 9);
    assert.equal(plan.predicted.errorKind.startsWith('weight-space'), true);
    const again = path.join(dir, 'tiny.mixed2.onnx');
    const r2 = await cli(['quantize', TINY, '-o', again, '--target', 'onnx-int4', '--plan', planFile, '--json']);
    assert.equal(r2.code, 0, r2.err);
    assert.deepEqual(JSON.parse(r2.out).tensors.map((t: { choice: string }) => t.choice), rep.tensors.map((t: { choice: string }) => t.choice));
  });

  it('gguf: a generated LLaMA F16 GGUF to Q4_K_M, read back, and llama.cpp runs both files (KL reported)', async () => {
    const src = path.join(dir, 'tiny-llama-F16.gguf');
    writeLlamaGguf(src, { nLayer: 2, nEmbd: 256, nFf: 512, nHead: 4, nHeadKv: 2, nWords: 64, dtype: 'F16', seed: 3 });
    const r = await cli(['quantize', src, '--target', 'gguf', '--type', 'Q4_K_M', '--json']);
    assert.equal(r.code, 0, r.err);
    const rep = JSON.parse(r.out);
    assert.equal(rep.output, path.join(dir, 'tiny-llama-Q4_K_M.gguf'));
    assert.ok(rep.verification.readBack.checked > 0);
    assert.equal(rep.verification.runtime.runtime, 'llama.cpp');
    const kl = rep.verification.runtime.outputs[0].meanKl;
    assert.ok(kl > 0 && kl < 2, `KL ${kl}`);
  });

  it('exit codes: 2 for usage, 1 for bad input naming the file, and nothing is written', async () => {
    const usage = await cli(['quantize', TINY]);
    assert.equal(usage.code, 2);
    assert.match(usage.err, /--target is required/);
    assert.equal((await cli(['quantize', TINY, '--target', 'onnx-int4', '--bits', '3'])).code, 2);
    assert.equal((await cli(['quantize', TINY, '--target', 'gguf'])).code, 1, 'an ONNX model cannot become GGUF');
    const same = await cli(['quantize', TINY, '-o', TINY, '--target', 'onnx-int4']);
    assert.equal(same.code, 1);
    assert.match(same.err, /would overwrite the source/);
    const planFile = path.join(dir, 'bad-plan.json');
    fs.writeFileSync(planFile, JSON.stringify({ schema: 'quantscope/plan/v1', target: 'onnx-int4', tensors: { 'no.such.weight': 'int4-g128' } }));
    const out = path.join(dir, 'never.onnx');
    const bad = await cli(['quantize', TINY, '-o', out, '--target', 'onnx-int4', '--plan', planFile]);
    assert.equal(bad.code, 1);
    assert.match(bad.err, new RegExp(`${planFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: tensor 'no.such.weight' is not in the model`));
    const low = await cli(['quantize', TINY, '-o', out, '--target', 'onnx-int4', '--budget-bpw', '0.5']);
    assert.equal(low.code, 1);
    assert.match(low.err, /budget is below the smallest plan/);
    assert.ok(!fs.existsSync(out));
    const exists = await cli(['quantize', TINY, '-o', path.join(dir, 'tiny.int4.onnx'), '--target', 'onnx-int4']);
    assert.equal(exists.code, 1);
    assert.match(exists.err, /exists \(pass --overwrite/);
  });

  it('SIGINT during a conversion: exit 130 and no output or temp file', async () => {
    const src = path.join(dir, 'big-llama-F32.gguf');
    writeLlamaGguf(src, { nLayer: 8, nEmbd: 1024, nFf: 2816, nHead: 8, nHeadKv: 8, nWords: 64, dtype: 'F32', seed: 5, pool: 65536 });
    const out = path.join(dir, 'big-llama-Q6_K.gguf');
    const r = await cli(['quantize', src, '-o', out, '--target', 'gguf', '--type', 'Q6_K', '--no-runtime-check'], { signalAfterMs: 1500 });
    assert.equal(r.code, 130, r.err);
    assert.match(r.err, /cancelled/);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith('big-llama-Q6_K') || TEMP_FILE_PATTERN.test(f)), []);
  });

  for (const target of ['gguf', 'onnx-int4'] as const) {
    it(`SIGKILL in the middle of a ${target} conversion: no output; the next run removes the dead run's temp file and writes the file`, async () => {
      const sub = fs.mkdtempSync(path.join(dir, `kill-${target}-`));
      let src: string;
      if (target === 'gguf') {
        src = path.join(sub, 'src.gguf');
        writeLlamaGguf(src, { nLayer: 4, nEmbd: 512, nFf: 1536, nHead: 8, nHeadKv: 2, nWords: 500, dtype: 'F32', seed: 11 });
      } else src = TINY;
      const out = path.join(sub, target === 'gguf' ? 'out.gguf' : 'out.onnx');
      const args = ['quantize', src, '-o', out, '--target', target, ...(target === 'gguf' ? ['--type', 'Q6_K'] : ['--algo', 'gptq', '--calib', path.join(ROOT, 'test/fixtures/tiny-transformer/calibration.txt')]), '--progress'];
      // Killed as soon as it reports quantizing (or writing, or verifying): a temp file may be on disk then.
      const killed = await new Promise<{ signal: NodeJS.Signals | null; temps: string[] }>((resolve) => {
        const p = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
        let temps: string[] = [];
        let sent = false;
        p.stderr.on('data', (d: Buffer) => {
          if (sent || !/(quantize|write|verify) \d+\/\d+/.test(d.toString())) return;
          sent = true;
          const poll = setInterval(() => {
            temps = fs.readdirSync(sub).filter((f) => TEMP_FILE_PATTERN.test(f));
            if (temps.length) { clearInterval(poll); p.kill('SIGKILL'); }
          }, 5);
          setTimeout(() => { clearInterval(poll); p.kill('SIGKILL'); }, 3000);
        });
        p.on('close', (_code, signal) => resolve({ signal, temps }));
      });
      assert.equal(killed.signal, 'SIGKILL');
      assert.ok(!fs.existsSync(out), 'no output after the kill');
      const left = fs.readdirSync(sub).filter((f) => TEMP_FILE_PATTERN.test(f));
      const r = await cli(args.filter((a) => a !== '--progress'));
      assert.equal(r.code, 0, r.err);
      assert.ok(fs.existsSync(out));
      assert.deepEqual(fs.readdirSync(sub).filter((f) => TEMP_FILE_PATTERN.test(f)), [], `the dead run's temp files (${left.join(', ') || 'none seen'}) are gone`);
      if (left.length) console.log(`      (the killed run left ${left.join(', ')}; removed by the next run)`);
    });
  }

  it('disk full while writing the output (a tmpfs smaller than the model): exit 1 naming ENOSPC, no partial file, the source intact', async function () {
    await withTmpfs(this, path.join(dir, 'full'), '256k', async () => {
      const mnt = path.join(dir, 'full');
      const src = path.join(dir, 'full-src.gguf');
      writeLlamaGguf(src, { nLayer: 2, nEmbd: 256, nFf: 512, nHead: 4, nHeadKv: 1, nWords: 100, dtype: 'F32', seed: 4 });
      const before = fs.readFileSync(src);
      const rec = path.join(ROOT, 'node_modules', '@gutenye', 'ocr-models', 'assets', 'ch_PP-OCRv4_rec_infer.onnx');
      for (const [target, extra] of [['gguf', ['--type', 'Q8_0']], ['onnx-qdq', []]] as const) {
        const out = path.join(mnt, target === 'gguf' ? 'out.gguf' : 'out.onnx');
        const r = await cli(['quantize', target === 'gguf' ? src : rec, '-o', out, '--target', target, ...extra]);
        assert.equal(r.code, 1, `${target}: ${r.err}`);
        assert.match(r.err, /ENOSPC|no space left/i, target);
        assert.deepEqual(fs.readdirSync(mnt), [], `${target}: nothing left on the full disk`);
      }
      assert.ok(fs.readFileSync(src).equals(before));
    });
  });
});

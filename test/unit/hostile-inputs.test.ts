/**
 * Every door a file comes in by, tried with a hostile file through the built
 * CLI as a child process under `prlimit --as=3G` and a time limit: the
 * answer must be a clear error naming the file and what is wrong (exit 1),
 * never a hang, a crash, a signal or memory beyond the bound.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { zipSync } from 'fflate';
import { pngWith as png } from './pngBytes';
import { cliPath, root, sampleModels } from './cli-spawn';
import { writeLlamaGguf } from '../llamaGguf';
import { makeCheckpoint } from './hfFixtures';

const AS_LIMIT = 3 * 1024 * 1024 * 1024;
const TIME_LIMIT_S = 60;
const TINY = path.join(root, 'test', 'fixtures', 'tiny-transformer', 'tiny-transformer.onnx');
const CLS = sampleModels.ocrCls;
const haveLimits = spawnSync('prlimit', ['--version']).status === 0 && spawnSync('timeout', ['--version']).status === 0;

interface Outcome { status: number | null; signal: NodeJS.Signals | null; stderr: string; ms: number }

function underLimits(args: string[]): Outcome {
  const t0 = Date.now();
  const r = spawnSync('timeout', ['-s', 'KILL', String(TIME_LIMIT_S), 'prlimit', `--as=${AS_LIMIT}`, '--', process.execPath, cliPath, ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  return { status: r.status, signal: r.signal, stderr: r.stderr, ms: Date.now() - t0 };
}

function npyHeader(descr: string, shape: number[], pad = 0): Buffer {
  let h = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + h.length + 1;
  h += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const b = Buffer.alloc(10 + h.length + pad);
  b.write('\x93NUMPY', 0, 'latin1');
  b[6] = 1; b[7] = 0;
  b.writeUInt16LE(h.length, 8);
  b.write(h, 10, 'latin1');
  return b;
}

describe('hostile input files under prlimit --as=3G (built CLI, child process)', function () {
  this.timeout(TIME_LIMIT_S * 1000 * 3);
  let dir: string;
  let f32Gguf: string;
  let ckpt: string;
  let gptq: string;
  before(function () {
    if (!haveLimits || !fs.existsSync(cliPath)) this.skip();
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-hostile-'));
    f32Gguf = path.join(dir, 'tiny-f32.gguf');
    writeLlamaGguf(f32Gguf, { nLayer: 1, nEmbd: 64, nFf: 128, nHead: 2, nHeadKv: 1, nWords: 8, dtype: 'F32', seed: 3 });
    ckpt = makeCheckpoint(path.join(dir, 'ckpt'), 'llama', { layers: 1, hidden: 64, heads: 2, kvHeads: 1, ffn: 128, merges: 60 }).dir;
    gptq = path.join(dir, 'gptq');
    const q = spawnSync(process.execPath, [cliPath, 'quantize', ckpt, '-o', gptq, '--target', 'safetensors-gptq', '--block-size', '32'], { encoding: 'utf8' });
    assert.equal(q.status, 0, q.stderr);
  });
  after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  const put = (name: string, bytes: Buffer | Uint8Array | string): string => {
    const p = path.join(dir, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, bytes);
    return p;
  };
  /** A copy of a checkpoint folder whose config.json is `edit`ed (JSON in, JSON text out), or replaced by a sparse file of `size` bytes. */
  const withConfig = (from: () => string, name: string, edit: ((j: Record<string, unknown>) => string | Buffer) | number): string => {
    const d = path.join(dir, name);
    fs.cpSync(from(), d, { recursive: true });
    const cfg = path.join(d, 'config.json');
    if (typeof edit === 'number') fs.truncateSync(cfg, edit);
    else fs.writeFileSync(cfg, edit(JSON.parse(fs.readFileSync(cfg, 'utf8')) as Record<string, unknown>));
    return d;
  };
  const toGguf = (d: string): string[] => ['quantize', d, '-o', `${d}.gguf`, '--target', 'gguf', '--type', 'Q8_0'];
  const sparse = (name: string, size: number, head: Buffer): string => {
    const p = path.join(dir, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    const fd = fs.openSync(p, 'w');
    fs.writeSync(fd, head, 0, head.length, 0);
    fs.ftruncateSync(fd, size);
    fs.closeSync(fd);
    return p;
  };

  // [what, the command line (files made on demand), the message expected on stderr]
  const cases: [string, () => string[], RegExp][] = [
    ['.npy with an absurd shape', () => ['experiment', CLS, '--configs', 'int8-channel', '--calib', put('absurd.npy', npyHeader('<f4', [1_000_000_000, 1_000_000, 3]))], /absurd\.npy: /],
    ['.npy truncated', () => ['experiment', CLS, '--configs', 'int8-channel', '--calib', put('trunc.npy', npyHeader('<f4', [1, 3, 48, 192], 100))], /trunc\.npy: /],
    ['.npy of Python objects', () => ['experiment', CLS, '--configs', 'int8-channel', '--calib', path.join(root, 'test/fixtures/calib/obj.npy')], /obj\.npy: dtype: object array .* never loaded/],
    ['.npz holding a pickle', () => ['experiment', CLS, '--configs', 'int8-channel', '--calib', path.join(root, 'test/fixtures/calib/pickled.npz')], /pickled\.npz:a\.npy: dtype: object array .* never loaded/],
    ['.npz zip bomb', () => ['experiment', CLS, '--configs', 'int8-channel', '--calib', put('bomb.npz', zipSync({ 'x.npy': new Uint8Array(64 << 20) }, { level: 9 }))], /bomb\.npz: x\.npy: compression ratio .* zip bomb/],
    ['.npy over the size limit (sparse, 2 GiB)', () => ['experiment', CLS, '--configs', 'int8-channel', '--calib', sparse('huge.npy', 2 ** 31 + 64, npyHeader('<f4', [2 ** 29])) ], /huge\.npy: size: .* exceeds/],
    ['PNG declaring 100000×100000 pixels', () => ['experiment', CLS, '--configs', 'int8-channel', '--calib', put('img1/huge.png', png(100_000, 100_000, zlib.deflateSync(Buffer.alloc(16))))], /huge\.png: PNG: declares 100000×100000 pixels/],
    ['PNG whose pixel data inflates far past its size', () => ['experiment', CLS, '--configs', 'int8-channel', '--calib', put('img2/bomb.png', png(16, 16, zlib.deflateSync(Buffer.alloc(256 << 20), { level: 9 })))], /bomb\.png: PNG: corrupt, truncated or oversized/],
    ['JPEG declaring 60000×60000 pixels', () => ['experiment', CLS, '--configs', 'int8-channel', '--calib', put('big.jpg', Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0, 17, 8, 0xea, 0x60, 0xea, 0x60, 3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 0xff, 0xd9]))], /big\.jpg: JPEG: declares 60000×60000 pixels/],
    ['an image for a token-id model', () => ['experiment', TINY, '--configs', 'int8-channel', '--calib', put('img3/ok.png', png(4, 4, zlib.deflateSync(Buffer.alloc(4 * 13))))], /ok\.png: inputs: images feed one 4-D float input; the model has input_ids/],
    ['an image size that contradicts the input\'s fixed channels', () => ['experiment', CLS, '--configs', 'int8-channel', '--layout', 'nhwc', '--image-size', '8x8', '--calib', put('img4/ok.png', png(4, 4, zlib.deflateSync(Buffer.alloc(4 * 13))))], /ok\.png: inputs: input 'x' is \[.*\]: --image-size 8x8 in NHWC contradicts its fixed height 3/],
    ['tokenizer.json of 300 MiB (sparse)', () => ['experiment', TINY, '--configs', 'int8-channel', '--calib', put('t.txt', 'hello world '.repeat(100)), '--tokenizer', sparse('big/tokenizer.json', 300 << 20, Buffer.from('{'))], /tokenizer\.json: size: .* exceeds the 268435456-byte limit/],
    ['tokenizer.json nested 200000 deep', () => ['experiment', TINY, '--configs', 'int8-channel', '--calib', put('t2.txt', 'hello world '.repeat(100)), '--tokenizer', put('deep/tokenizer.json', `{"model":{"type":"BPE","vocab":{},"x":${'['.repeat(200_000)}${']'.repeat(200_000)}}}`)], /tokenizer\.json: tokenizer: nested more than 64 levels deep/],
    ['tokenizer.json with wrong types', () => ['experiment', TINY, '--configs', 'int8-channel', '--calib', put('t3.txt', 'hello world '.repeat(100)), '--tokenizer', put('types/tokenizer.json', JSON.stringify({ model: { type: 'BPE', vocab: 12, merges: {} } }))], /tokenizer\.json: model\.vocab: missing or not an object/],
    ['plan naming a tensor the model lacks', () => ['quantize', TINY, '-o', path.join(dir, 'p1.onnx'), '--target', 'onnx-int4', '--plan', put('p1.json', JSON.stringify({ schema: 'quantscope/plan/v1', target: 'onnx-int4', tensors: { 'no.such.weight': 'int4-g128' } }))], /p1\.json: tensor 'no\.such\.weight' is not in the model/],
    ['plan with an impossible format', () => ['quantize', TINY, '-o', path.join(dir, 'p2.onnx'), '--target', 'onnx-int4', '--plan', put('p2.json', JSON.stringify({ schema: 'quantscope/plan/v1', target: 'onnx-int4', tensors: { x: 'int9-g7' } }))], /p2\.json: /],
    ['plan that is not JSON', () => ['quantize', TINY, '-o', path.join(dir, 'p3.onnx'), '--target', 'onnx-int4', '--plan', put('p3.json', '{"schema": ')], /p3\.json: /],
    ['budget below the smallest plan', () => ['quantize', TINY, '-o', path.join(dir, 'p4.onnx'), '--target', 'onnx-int4', '--budget-bpw', '0.5'], /budget is below the smallest plan/],
    ['imatrix truncated', () => ['quantize', f32Gguf, '-o', path.join(dir, 'i1.gguf'), '--target', 'gguf', '--type', 'Q4_K_M', '--imatrix', put('i1.dat', Buffer.from([5, 0, 0, 0, 200, 0, 0, 0]))], /i1\.dat: /],
    ['imatrix declaring 2^31 entries', () => ['quantize', f32Gguf, '-o', path.join(dir, 'i2.gguf'), '--target', 'gguf', '--type', 'Q4_K_M', '--imatrix', put('i2.dat', Buffer.from([0xff, 0xff, 0xff, 0x7f]))], /i2\.dat: /],
    ['imatrix that is random bytes', () => ['quantize', f32Gguf, '-o', path.join(dir, 'i3.gguf'), '--target', 'gguf', '--type', 'Q4_K_M', '--imatrix', put('i3.dat', Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 2654435761) >>> 24)))], /i3\.dat: /],
    ['config.json of 1.5 GiB (sparse), converting', () => toGguf(withConfig(() => ckpt, 'c1', 1536 << 20)), /c1[\\/]config\.json: size: .* exceeds the 4000000-byte limit/],
    ['config.json of 1.5 GiB (sparse), opening a GPTQ checkpoint', () => ['inspect', path.join(withConfig(() => gptq, 'c2', 1536 << 20), 'model.safetensors')], /c2[\\/]config\.json: size: .* exceeds the 4000000-byte limit/],
    ['config.json nested 200000 deep', () => toGguf(withConfig(() => ckpt, 'c3', (j) => JSON.stringify({ ...j, rope_scaling: 0 }).replace('"rope_scaling":0', `"rope_scaling":${'['.repeat(200_000)}${']'.repeat(200_000)}`))), /c3[\\/]config\.json: rope_scaling: is not an object/],
    ['config.json with a string where a count belongs', () => toGguf(withConfig(() => ckpt, 'c4', (j) => JSON.stringify({ ...j, hidden_size: '64' }))), /c4[\\/]config\.json: hidden_size: must be an integer/],
    ['config.json declaring 10^12 layers', () => toGguf(withConfig(() => ckpt, 'c5', (j) => JSON.stringify({ ...j, num_hidden_layers: 1e12 }))), /c5[\\/]config\.json: num_hidden_layers: must be an integer in 1\.\.2\^31, got 1000000000000/],
    ['config.json that is a list', () => toGguf(withConfig(() => ckpt, 'c6', () => '[1, 2]')), /c6[\\/]config\.json: config: is not a JSON object/],
    ['config.json that is not UTF-8', () => toGguf(withConfig(() => ckpt, 'c7', () => Buffer.concat([Buffer.from('{"architectures": ["'), Buffer.from([0xff, 0xfe]), Buffer.from('"]}')]))), /c7[\\/]config\.json: file: cannot be read as UTF-8/],
    ['config.json whose quantization_config is a string', () => ['inspect', path.join(withConfig(() => gptq, 'c8', (j) => JSON.stringify({ ...j, quantization_config: 'gptq' })), 'model.safetensors')], /c8[\\/]config\.json: quantization_config: is not an object/],
    ['config.json naming an unknown quantization method', () => ['inspect', path.join(withConfig(() => gptq, 'c9', (j) => JSON.stringify({ ...j, quantization_config: { ...(j.quantization_config as object), quant_method: 'zzz' } })), 'model.safetensors')], /c9[\\/]config\.json: quantization_config\.quant_method: unknown method "zzz"/],
  ];

  for (const [what, argv, expect] of cases) {
    it(`${what}: exit 1 with the file named, within the limits`, () => {
      const r = underLimits(argv());
      assert.equal(r.signal, null, `killed by ${r.signal} after ${r.ms} ms (time limit ${TIME_LIMIT_S} s): ${r.stderr}`);
      assert.equal(r.status, 1, `exit ${r.status}: ${r.stderr}`);
      assert.match(r.stderr, expect);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'a stack trace instead of a message');
    });
  }

  it('under the same limit a good model still analyses completely (WebAssembly without guard regions, or the TypeScript twins)', () => {
    const t0 = Date.now();
    const r = spawnSync('prlimit', [`--as=${AS_LIMIT}`, '--', process.execPath, cliPath, 'stats', sampleModels.ocrRec, '--json', '--no-cache'], { encoding: 'utf8', maxBuffer: 1 << 28 });
    assert.equal(r.status, 0, r.stderr);
    const j = JSON.parse(r.stdout) as { tensors: unknown[]; failed: unknown[] };
    assert.deepEqual(j.failed, []);
    assert.ok(j.tensors.length > 300, `${j.tensors.length} tensors`);
    assert.ok(Date.now() - t0 < TIME_LIMIT_S * 1000);
  });

  it('nothing was written next to the hostile inputs', () => {
    const outputs = fs.readdirSync(dir).filter((f) => /\.(onnx|gguf)$/.test(f) && f !== 'tiny-f32.gguf');
    assert.deepEqual(outputs, []);
    assert.deepEqual(fs.readdirSync(dir).filter((f) => /\.tmp|~/.test(f)), []);
  });
});

/**
 * The shipped CLI bundle (dist/cli.js, built by `npm run build`, which `npm test`
 * runs first) against the fixtures' manifest, written by the generator that
 * made the files: the bundle, its lazy requires and its worker bundle all work.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');
const cli = path.join(root, 'dist', 'cli.js');
const fixtures = path.join(root, 'test', 'fixtures', 'formats');

type ManifestTensor = { dtype: string; shape: number[]; values: (number | string)[] };
const manifest = JSON.parse(fs.readFileSync(path.join(fixtures, 'manifest.json'), 'utf8')) as Record<string, Record<string, ManifestTensor>>;

function run(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('CLI bundle (dist/cli.js)', function () {
  this.timeout(60_000);
  before(() => assert.ok(fs.existsSync(cli), `${cli} is missing: run 'npm run build' first`));

  it('prints usage naming every subcommand', () => {
    const r = run(['--help']);
    assert.equal(r.code, 0);
    for (const c of ['inspect', 'stats']) assert.match(r.stdout, new RegExp(`^  ${c} `, 'm'));
  });

  it('inspect --json lists the tensors the generator wrote, with their dtypes and shapes', () => {
    const file = 'all-dtypes.safetensors';
    const r = run(['inspect', path.join(fixtures, file), '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { format: string; tensors: { name: string; dtype: string; shape: number[] }[] };
    assert.equal(out.format, 'safetensors');
    const expected = manifest[file];
    assert.deepEqual(out.tensors.map((t) => t.name).sort(), Object.keys(expected).sort());
    for (const t of out.tensors) {
      assert.equal(t.dtype, expected[t.name].dtype, t.name);
      assert.deepEqual(t.shape, expected[t.name].shape, t.name);
    }
  });

  it('stats --json computes min/max/mean in worker threads equal to the generator values', () => {
    const file = 'all-dtypes.safetensors';
    const r = run(['stats', path.join(fixtures, file), '--json', '--no-cache', '--threads', '2']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { tensors: { name: string; stats: { min: number; max: number; mean: number; count: number } }[] };
    const t = out.tensors.find((x) => x.name === 't_f32');
    assert.ok(t, 't_f32 analysed');
    const vals = manifest[file].t_f32.values.map(Number);
    const mean = vals.reduce((a, b) => a + b, 0) / vals.length; // float64 reference
    assert.equal(t.stats.count, vals.length);
    assert.equal(t.stats.min, Math.min(...vals));
    assert.equal(t.stats.max, Math.max(...vals));
    // The engine's stated bound for float32 input (docs/statistics-engine.md): the mean within 4e-6·σ.
    const sd = Math.sqrt(vals.reduce((a, b) => a + (b - mean) ** 2, 0) / vals.length);
    assert.ok(Math.abs(t.stats.mean - mean) <= 4e-6 * sd, `${t.stats.mean} vs ${mean} (σ ${sd})`);
  });

  it('a corrupt file exits 1 with a message naming the file', () => {
    const bad = path.join(root, 'test-results', 'cli-corrupt.gguf');
    fs.mkdirSync(path.dirname(bad), { recursive: true });
    fs.writeFileSync(bad, Buffer.from('GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\x7f', 'latin1'));
    const r = run(['inspect', bad]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cli-corrupt\.gguf/);
  });
});

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { captureCli } from './cliCapture';

const capture = (argv: string[]) => captureCli(argv);

describe('quantscope stats (CLI)', function () {
  this.timeout(20000);
  let dir: string, file: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-stats-cli-'));
    file = path.join(dir, 'm.safetensors');
    const w = Float32Array.from({ length: 256 * 64 }, (_, i) => Math.sin(i * 0.37) * (i === 1234 ? 50 : 1));
    let json = JSON.stringify({ 'proj.weight': { dtype: 'F32', shape: [256, 64], data_offsets: [0, w.byteLength] } });
    while ((json.length + 8) % 8) json += ' ';
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json), Buffer.from(w.buffer)]));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('--json prints the statistics; a second run is served from the cache', async () => {
    const cache = path.join(dir, 'cache');
    const a = await capture(['stats', file, '--json', '--threads', '1', '--cache-dir', cache]);
    assert.equal(a.code, 0, a.err);
    const r = JSON.parse(a.out);
    assert.equal(r.tensors.length, 1);
    const s = r.tensors[0].stats;
    assert.equal(s.numel, 256 * 64);
    assert.equal(s.outliers.top[0].index, 1234);
    assert.equal(fs.readdirSync(cache).length, 1);
    const b = await capture(['stats', file, '--json', '--cache-dir', cache]);
    assert.equal(JSON.parse(b.out).seconds, r.seconds, 'same result object, not recomputed');
  });

  it('text table, and clear errors for bad arguments and bad files', async () => {
    const t = await capture(['stats', file, '--no-cache']);
    assert.equal(t.code, 0);
    assert.match(t.out, /proj\.weight\s+f32\s+256×64/);
    assert.equal((await capture(['stats', file, '--threads', '0'])).code, 2);
    assert.equal((await capture(['stats'])).code, 2);
    const bad = path.join(dir, 'bad.safetensors');
    fs.writeFileSync(bad, Buffer.from([1, 2, 3]));
    const b = await capture(['stats', bad, '--no-cache']);
    assert.equal(b.code, 1);
    assert.match(b.err, /bad\.safetensors/);
  });
});

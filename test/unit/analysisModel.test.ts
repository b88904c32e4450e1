import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/formats/index';
import { analyseModel, ENGINE_VERSION } from '../../src/pipelines/analyseModel';
import { analyseSensitivity } from '../../src/pipelines/analyseSensitivity';
import { tensorSensitivity } from '../../src/analysis/sensitivity';
import { StatsCache, decodeEntry, encodeEntry } from '../../src/pipelines/statsCache';
import { analyseArray } from '../../src/analysis/weightStats';
import { CancelledError, WorkerPool } from '../../src/jobs/pool';

/** Minimal safetensors writer: u64 LE header length, JSON header, then the data. */
function writeSafetensors(file: string, tensors: { name: string; dtype: string; shape: number[]; bytes: Uint8Array }[]): void {
  const header: Record<string, unknown> = {};
  let off = 0;
  for (const t of tensors) { header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [off, off + t.bytes.length] }; off += t.bytes.length; }
  let json = JSON.stringify(header);
  while ((json.length + 8) % 8) json += ' ';
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, Buffer.from(json), ...tensors.map((t) => Buffer.from(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength))]));
}

function halfToNumber(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 31, m = h & 1023;
  if (e === 31) return m ? NaN : s * Infinity;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
}

describe('analyseModel through the worker pool', function () {
  this.timeout(20000);
  let dir: string, file: string, pool: WorkerPool;
  const f32 = new Float32Array(300 * 200);
  const f16 = new Uint16Array(64 * 50);
  const bf16 = new Uint16Array(1000);
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-analysis-'));
    file = path.join(dir, 'tiny.safetensors');
    let s = 12345;
    const r = () => { s = (s * 1103515245 + 12345) % 2147483648; return s / 2147483648; };
    for (let i = 0; i < f32.length; i++) f32[i] = (r() - 0.5) * (i % 1000 === 0 ? 100 : 1);
    f32[777] = NaN;
    for (let i = 0; i < f16.length; i++) f16[i] = Math.floor(r() * 0x7bff) | (r() < 0.5 ? 0x8000 : 0); // finite halves
    for (let i = 0; i < bf16.length; i++) bf16[i] = 0x3f80 + Math.floor(r() * 256) - 128; // around ±1
    writeSafetensors(file, [
      { name: 'a.weight', dtype: 'F32', shape: [300, 200], bytes: new Uint8Array(f32.buffer) },
      { name: 'b.weight', dtype: 'F16', shape: [64, 50], bytes: new Uint8Array(f16.buffer) },
      { name: 'c.bias', dtype: 'BF16', shape: [1000], bytes: new Uint8Array(bf16.buffer) },
      { name: 'ids', dtype: 'I64', shape: [4], bytes: new Uint8Array(32) },
    ]);
    pool = new WorkerPool({ size: 2 });
  });
  after(async () => { await pool.close(); fs.rmSync(dir, { recursive: true, force: true }); });

  it('every float tensor, split or whole, equals the in-memory analysis of its independently decoded values', async () => {
    const m = openModel(file);
    try {
      const seen: string[] = [];
      const res = await analyseModel(m, { pool, splitElements: 2000, onTensor: (e) => seen.push(e.name) });
      assert.deepEqual(res.tensors.map((t) => t.name), ['a.weight', 'b.weight', 'c.bias']);
      assert.deepEqual(seen.sort(), ['a.weight', 'b.weight', 'c.bias']);
      assert.deepEqual(res.skipped.map((s) => s.name), ['ids']);
      assert.equal(res.failed.length, 0);
      assert.equal(res.engineVersion, ENGINE_VERSION);
      const decoded: Record<string, Float32Array> = {
        'a.weight': f32,
        'b.weight': Float32Array.from(f16, halfToNumber),
        'c.bias': Float32Array.from(bf16, (h) => { const b = new Uint32Array([h << 16]); return new Float32Array(b.buffer)[0]; }),
      };
      for (const e of res.tensors) {
        const t = m.tensors.find((x) => x.name === e.name)!;
        const ref = analyseArray(decoded[e.name], {}, t.shape, t.layer.outputChannelAxis);
        const s = e.stats;
        for (const k of ['numel', 'count', 'nan', 'inf', 'zeros', 'min', 'max'] as const) assert.equal(s[k], ref[k], `${e.name} ${k}`);
        // Each side is within the float32-block moment bound (docs/statistics-engine.md) of the exact value; twice it apart at most.
        assert.ok(Math.abs(s.mean - ref.mean) <= 8e-6 * ref.std, `${e.name} mean`);
        assert.ok(Math.abs(s.std - ref.std) <= 8e-6 * ref.std, `${e.name} std`);
        assert.ok(Math.abs(s.kurtosis - ref.kurtosis) <= 8e-5 * (ref.kurtosis + 4), `${e.name} kurtosis`);
        assert.deepEqual(s.histogram, ref.histogram, `${e.name} histogram`);
        if (e.dtype === 'f32') assert.deepEqual(s.percentiles, ref.percentiles, `${e.name} percentiles`);
        else {
          // 16-bit tensors take the exact code-counting path: percentiles equal sorting.
          const sorted = Float64Array.from(decoded[e.name].filter(Number.isFinite)).sort();
          s.percentiles.forEach((p) => {
            assert.equal(p.errorBound, 0);
            assert.ok(p.value === sorted[Math.min(sorted.length, Math.max(1, Math.ceil((p.q / 100) * sorted.length))) - 1], `${e.name} p${p.q}`);
          });
        }
        assert.deepEqual(s.outliers, ref.outliers, `${e.name} outliers`);
        assert.deepEqual(s.channels?.max, ref.channels?.max, `${e.name} channels`);
      }
      assert.equal(res.tensors[0].stats.nan, 1);
    } finally { m.close(); }
  });

  it('sensitivity through the pool: per tensor, a tensor with NaN fails alone with a clear error', async () => {
    const m = openModel(file);
    try {
      const r = await analyseSensitivity(m, { pool });
      assert.deepEqual(r.tensors.map((t) => t.name), ['b.weight']);
      assert.equal(r.failed.length, 1);
      assert.match(r.failed[0].error, /tiny\.safetensors: tensor a\.weight: element 777 is NaN/);
      const ref = tensorSensitivity(Float32Array.from(f16, halfToNumber), [64, 50], [64, 50], undefined, { scaleBytes: 2 });
      assert.deepEqual(r.tensors[0].sensitivity, ref);
    } finally { m.close(); }
  });

  it('cancellation rejects the whole analysis', async () => {
    const m = openModel(file);
    try {
      const ac = new AbortController();
      const p = analyseModel(m, { pool, signal: ac.signal, stats: { chunkElements: 7 } });
      setImmediate(() => ac.abort());
      await assert.rejects(p, CancelledError);
      const again = await analyseModel(m, { pool, filter: (t) => t.name === 'c.bias' });
      assert.equal(again.tensors.length, 1);
    } finally { m.close(); }
  });

  it('results cache: hit on the same file and settings, miss on change, version or settings', async () => {
    const m = openModel(file);
    const res = await analyseModel(m, { pool, filter: (t) => t.name !== 'a.weight' });
    m.close();
    const cacheDir = path.join(dir, 'cache');
    const cache = new StatsCache(cacheDir);
    assert.equal(cache.load([file], {}), undefined);
    cache.store([file], {}, res);
    const back = cache.load([file], {});
    assert.deepEqual(back, res);
    assert.equal(cache.load([file], { topK: 3 }), undefined);
    assert.equal(new StatsCache(cacheDir, ENGINE_VERSION + 1).load([file], {}), undefined);
    const st = fs.statSync(file);
    fs.utimesSync(file, st.atime, new Date(st.mtimeMs + 5000));
    assert.equal(cache.load([file], {}), undefined);
  });

  it('cache entries: long number arrays round-trip bit for bit through the float64 block; damaged entries are misses', () => {
    const long = Array.from({ length: 100 }, (_, i) => (i === 3 ? NaN : i === 4 ? -0 : i === 5 ? -Infinity : i === 6 ? 5e-324 : Math.sin(i) * 1e30));
    const entry = { engineVersion: 1, identity: [], settings: { topK: 2 }, result: { a: long, b: [NaN, -0, 1], c: { d: long.slice(1), e: 'x' } } };
    const buf = encodeEntry(entry as never);
    assert.ok(buf.length < 16 + 400 + 8 * 199 + 8, `entry of ${buf.length} bytes`);
    const back = decodeEntry(buf) as unknown as typeof entry;
    assert.deepEqual(back, entry);
    assert.ok(Object.is(back.result.a[4], -0) && Object.is(back.result.b[1], -0));
    // Misaligned in its buffer, as a slice of a larger read could be.
    const shifted = Buffer.alloc(buf.length + 3);
    buf.copy(shifted, 3);
    assert.deepEqual(decodeEntry(shifted.subarray(3)), entry);
    assert.throws(() => decodeEntry(buf.subarray(0, buf.length - 8)), /refers past its data/);
    assert.throws(() => decodeEntry(buf.subarray(0, buf.length - 3)), /lengths/);
    assert.throws(() => decodeEntry(Buffer.from('{"engineVersion":1}')), /not a QuantScope cache entry/);
    const bad = Buffer.from(buf);
    bad.writeUInt32LE(buf.length, 8);
    assert.throws(() => decodeEntry(bad), /lengths/);
    // Through the cache: a damaged entry file is a miss, not an error.
    const cacheDir = path.join(dir, 'cache-damaged');
    fs.mkdirSync(cacheDir, { recursive: true });
    const legacy = path.join(cacheDir, `stats-${'0'.repeat(32)}.json`);
    fs.writeFileSync(legacy, '{}');
    const cache = new StatsCache(cacheDir);
    const res = { engineVersion: ENGINE_VERSION, file, format: 'safetensors', options: {}, tensors: [], skipped: [], failed: [], seconds: 0 };
    const p = cache.store([file], {}, res);
    assert.deepEqual(cache.load([file], {}), res);
    assert.ok(!fs.existsSync(legacy), 'an entry of the old JSON format is removed');
    fs.writeFileSync(p, fs.readFileSync(p).subarray(0, 20));
    assert.equal(cache.load([file], {}), undefined);
  });
});

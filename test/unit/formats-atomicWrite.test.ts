/**
 * The atomic writer: whole file or nothing, an existing file untouched unless
 * overwrite is set, no temp file left after an error, an abort or a kill.
 * Disk full is real: a 64 KiB tmpfs (needs root to mount; skipped otherwise)
 * and a file-size limit (prlimit --fsize) on a child process.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { withTmpfs } from './tmpfs';
import { DestinationExistsError, TEMP_FILE_PATTERN, openAtomic, removePendingTempFiles, removeStaleTempFiles, tempPathFor, writeFileAtomic, writeFileAtomicSync } from '../../src/formats/atomicWrite';
import { StatsCache } from '../../src/pipelines/statsCache';
import type { ModelStats } from '../../src/pipelines/analyseModel';

const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

describe('atomic write (formats/atomicWrite.ts)', () => {
  let dir: string;
  beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-atomic-')); });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const only = (...names: string[]) => assert.deepEqual(fs.readdirSync(dir).sort(), names.sort());

  it('writes the whole file, sync and async, and leaves nothing else', async () => {
    const a = path.join(dir, 'a.bin'), b = path.join(dir, 'b.txt');
    writeFileAtomicSync(a, bytes(300_000));
    await writeFileAtomic(b, 'héllo\n');
    assert.deepEqual(new Uint8Array(fs.readFileSync(a)), bytes(300_000));
    assert.equal(fs.readFileSync(b, 'utf8'), 'héllo\n');
    only('a.bin', 'b.txt');
  });

  it('refuses to replace an existing file unless overwrite is set, and then replaces it whole', async () => {
    const f = path.join(dir, 'model.onnx');
    fs.writeFileSync(f, 'old');
    assert.throws(() => writeFileAtomicSync(f, 'new'), DestinationExistsError);
    await assert.rejects(writeFileAtomic(f, 'new'), DestinationExistsError);
    await assert.rejects(openAtomic(f), /already exists/);
    assert.equal(fs.readFileSync(f, 'utf8'), 'old');
    only('model.onnx');
    await writeFileAtomic(f, 'new', { overwrite: true });
    assert.equal(fs.readFileSync(f, 'utf8'), 'new');
    only('model.onnx');
  });

  it('a destination created while the temp file is written is still not replaced (link, not rename)', async () => {
    const f = path.join(dir, 'out.bin');
    const w = await openAtomic(f);
    await w.write(bytes(1000));
    fs.writeFileSync(f, 'someone else');
    await assert.rejects(w.commit(), DestinationExistsError);
    assert.equal(fs.readFileSync(f, 'utf8'), 'someone else');
    only('out.bin');
  });

  it('streams: the temp file sits beside the destination until commit; abort removes it', async () => {
    const f = path.join(dir, 'big.bin');
    const w = await openAtomic(f);
    assert.equal(path.dirname(w.tempPath), dir);
    assert.match(path.basename(w.tempPath), TEMP_FILE_PATTERN);
    for (let i = 0; i < 10; i++) await w.write(bytes(65536, i));
    assert.equal(fs.existsSync(f), false, 'not visible before commit');
    await w.commit();
    assert.equal(fs.statSync(f).size, 655360);
    assert.deepEqual(new Uint8Array(fs.readFileSync(f)).subarray(65536 * 3, 65536 * 4), bytes(65536, 3));
    only('big.bin');
    const g = await openAtomic(path.join(dir, 'other.bin'));
    await g.write(bytes(10));
    await g.abort();
    await g.abort();
    await assert.rejects(g.write(bytes(1)), /aborted/);
    only('big.bin');
  });

  it('a cancel (AbortSignal) removes the temp file and never touches the existing file', async () => {
    const f = path.join(dir, 'plan.json');
    fs.writeFileSync(f, 'old plan');
    const ac = new AbortController();
    const w = await openAtomic(f, { overwrite: true, signal: ac.signal });
    await w.write(bytes(1000));
    ac.abort(new Error('user cancelled'));
    await assert.rejects(w.write(bytes(10)), /user cancelled/);
    await assert.rejects(w.commit(), /user cancelled/);
    assert.equal(fs.readFileSync(f, 'utf8'), 'old plan');
    // The abort listener closes and unlinks asynchronously.
    await new Promise((r) => setTimeout(r, 50));
    only('plan.json');
    await assert.rejects(writeFileAtomic(f, 'x', { overwrite: true, signal: ac.signal }), /user cancelled/);
    only('plan.json');
  });

  it('removePendingTempFiles (what the CLI runs at exit and on a second Ctrl+C) removes writes in flight', async () => {
    const w = await openAtomic(path.join(dir, 'x.bin'));
    await w.write(bytes(100));
    assert.equal(fs.readdirSync(dir).length, 1);
    removePendingTempFiles();
    only();
    await w.abort();
  });

  it('a killed writer\'s temp file is never mistaken for the output and is removed by the next writer', () => {
    const f = path.join(dir, 'entry.qsc');
    fs.writeFileSync(f, 'good');
    // A temp file of a process that is gone (PID far above pid_max), and one of a live process (this one's parent).
    const dead = path.join(dir, `.entry.qsc.qstmp-${2 ** 30}-0123abcd`);
    const live = path.join(dir, `.entry.qsc.qstmp-${process.ppid}-0123abcd`);
    fs.writeFileSync(dead, 'partial');
    fs.writeFileSync(live, 'in progress');
    assert.deepEqual(removeStaleTempFiles(dir), [path.basename(dead)]);
    only('entry.qsc', path.basename(live));
    assert.equal(fs.readFileSync(f, 'utf8'), 'good');
  });

  it('disk full (64 KiB tmpfs): a clear ENOSPC, no partial file, the existing file intact', async function () {
    const mnt = path.join(dir, 'small');
    await withTmpfs(this, mnt, '64k', async () => {
      const f = path.join(mnt, 'model.gguf');
      fs.writeFileSync(f, 'old model');
      assert.throws(() => writeFileAtomicSync(f, bytes(200_000), { overwrite: true }), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC' && e.message.startsWith(`${f}: ENOSPC: no space left`));
      await assert.rejects(writeFileAtomic(f, bytes(200_000), { overwrite: true }), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC');
      const w = await openAtomic(path.join(mnt, 'new.gguf'));
      await assert.rejects((async () => { for (let i = 0; i < 10; i++) await w.write(bytes(16384, i)); })(), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC');
      assert.equal(fs.readFileSync(f, 'utf8'), 'old model');
      assert.deepEqual(fs.readdirSync(mnt), ['model.gguf']);
    });
  });

  it('file size limit (prlimit --fsize, like ulimit -f): EFBIG, no partial file, the existing file intact', function () {
    if (spawnSync('prlimit', ['--version']).status !== 0) this.skip();
    const f = path.join(dir, 'report.md');
    fs.writeFileSync(f, 'old report');
    const mod = path.resolve(__dirname, '../../src/formats/atomicWrite.js');
    const script = `const a = require(${JSON.stringify(mod)});
      try { a.writeFileAtomicSync(${JSON.stringify(f)}, Buffer.alloc(200000, 7), { overwrite: true }); console.log('written'); }
      catch (e) { console.log(e.code); }`;
    const r = spawnSync('prlimit', ['--fsize=65536', process.execPath, '-e', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), 'EFBIG');
    assert.equal(fs.readFileSync(f, 'utf8'), 'old report');
    only('report.md');
  });

  it('no other code in src/ writes files directly (the README promises every output goes through this helper)', () => {
    const src = path.resolve(__dirname, '../../../src');
    // Remote workspaces (non-file URIs) can only be written through VS Code; saveFile.ts does that and nothing else.
    // The GGUF and ONNX writers stream a model through positional writes into a temp file beside the destination,
    // fsync it and give it its name only after the conversion verified it (publishFile or their own rename);
    // their tests cover cancel, ENOSPC/EFBIG and a source never overwritten.
    const allowed = new Set(['formats/atomicWrite.ts', 'host/saveFile.ts', 'formats/gguf/writer.ts', 'formats/onnx/writer.ts']);
    const direct = /\b(writeFileSync|writeFile|appendFileSync|appendFile|createWriteStream|copyFileSync|renameSync)\s*\(|openSync\([^)]*['"][wa]\+?['"]/;
    const offenders: string[] = [];
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.ts$/.test(e.name) && !allowed.has(path.relative(src, p).split(path.sep).join('/'))) {
          fs.readFileSync(p, 'utf8').split('\n').forEach((line, i) => { if (direct.test(line)) offenders.push(`${path.relative(src, p)}:${i + 1}: ${line.trim()}`); });
        }
      }
    };
    walk(src);
    assert.deepEqual(offenders, [], 'use writeFileAtomic / writeFileAtomicSync / openAtomic from src/formats/atomicWrite.ts');
  });

  it('the statistics cache writes through it: one entry, no temp file, stale temps of dead writers removed', () => {
    const model = path.join(dir, 'm.bin');
    fs.writeFileSync(model, 'x');
    const cacheDir = path.join(dir, 'cache');
    fs.mkdirSync(cacheDir);
    const stale = path.basename(tempPathFor(path.join(cacheDir, 'stats-x.qsc'))).replace(/qstmp-\d+-/, `qstmp-${2 ** 30}-`);
    fs.writeFileSync(path.join(cacheDir, stale), 'half an entry');
    const cache = new StatsCache(cacheDir);
    const result = { engineVersion: 1, file: model, format: 'onnx', options: {}, tensors: [], skipped: [], failed: [], seconds: 0.5 } as unknown as ModelStats;
    const p = cache.store([model], {}, result);
    assert.deepEqual(fs.readdirSync(cacheDir), [path.basename(p)]);
    assert.equal(cache.load([model], {})?.seconds, 0.5);
  });
});

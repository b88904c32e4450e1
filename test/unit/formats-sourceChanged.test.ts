/**
 * A model file that changes while it is read (appended to, rewritten in place,
 * replaced, deleted) stops the reader or the pipeline with a SourceChangedError
 * naming the file, instead of producing results that mix two versions.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/formats/index';
import { SourceChangedError, assertSourceUnchanged } from '../../src/formats/lazyModelFile';
import { FormatError } from '../../src/formats/types';
import { analyseModel } from '../../src/pipelines/analyseModel';
import { WorkerPool } from '../../src/jobs/pool';

const fixture = path.resolve(__dirname, '../../../test/fixtures/formats/all-dtypes.safetensors');

describe('a source that changes while it is read', function () {
  this.timeout(60_000);
  let dir: string, file: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-changed-'));
    file = path.join(dir, 'model.safetensors');
    fs.copyFileSync(fixture, file);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const isChanged = (what: RegExp) => (e: unknown) =>
    e instanceof SourceChangedError && e instanceof FormatError && e.file === file && /changed while it was being read/.test(e.message) && what.test(e.message);

  it('an unchanged file reads and checks clean', () => {
    const m = openModel(file);
    try {
      for (const t of m.tensors) if (t.dtype === 'f32') m.readFloat32(t);
      assertSourceUnchanged(m);
    } finally { m.close(); }
  });

  it('bytes appended after opening: the next read stops, naming the file and the sizes', () => {
    const m = openModel(file);
    try {
      const t = m.tensors.find((x) => x.dtype === 'f32')!;
      m.readFloat32(t);
      const size = fs.statSync(file).size;
      fs.appendFileSync(file, Buffer.alloc(16));
      assert.throws(() => m.readFloat32(t), isChanged(new RegExp(`from ${size} to ${size + 16} bytes`)));
      assert.throws(() => assertSourceUnchanged(m), isChanged(/size/));
    } finally { m.close(); }
  });

  it('rewritten in place with the same size: the read stops (mtime moved)', () => {
    const m = openModel(file);
    try {
      const t = m.tensors.find((x) => x.dtype === 'f32')!;
      const before = fs.statSync(file);
      const fd = fs.openSync(file, 'r+');
      fs.writeSync(fd, Buffer.from([1, 2, 3, 4]), 0, 4, before.size - 4);
      fs.closeSync(fd);
      // Some file systems keep mtime at a coarse grain; move it for sure so the test means the same everywhere.
      fs.utimesSync(file, before.atime, new Date(before.mtimeMs + 2000));
      assert.equal(fs.statSync(file).size, before.size);
      assert.throws(() => m.readFloat32(t), isChanged(/modified at/));
    } finally { m.close(); }
  });

  it('replaced by rename or deleted: the open handle still reads the old bytes, the check says what happened', () => {
    const m = openModel(file);
    try {
      const t = m.tensors.find((x) => x.dtype === 'f32')!;
      const first = m.readFloat32(t);
      const other = path.join(dir, 'new.safetensors');
      fs.copyFileSync(fixture, other);
      fs.renameSync(other, file);
      assert.deepEqual(m.readFloat32(t), first, 'same inode, same bytes');
      assert.throws(() => assertSourceUnchanged(m), isChanged(/replaced by another file/));
      fs.rmSync(file);
      assert.throws(() => assertSourceUnchanged(m), isChanged(/deleted/));
    } finally { m.close(); }
  });

  it('the statistics pipeline fails with SourceChangedError when the file changes mid-run, not with mixed results', async () => {
    const m = openModel(file);
    const pool = new WorkerPool({ size: 2 });
    try {
      // Clean run first: the same call succeeds when nothing moves.
      const ok = await analyseModel(m, { pool });
      assert.ok(ok.tensors.length > 1);
      let touched = false;
      await assert.rejects(analyseModel(m, {
        pool,
        onTensor: () => { if (!touched) { touched = true; fs.appendFileSync(file, Buffer.alloc(8)); } },
      }), isChanged(/size/));
      assert.ok(touched);
    } finally {
      await pool.close();
      m.close();
    }
  });
});

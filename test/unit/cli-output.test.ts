/** src/cli/output.ts: --output / --overwrite for commands that write files, through the registry and the runner. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { COMMANDS } from '../../src/cli/registry';
import { EXIT } from '../../src/cli/exitCodes';
import { OUTPUT_OPTIONS, openOutput, writeOutput } from '../../src/cli/output';
import { captureCli } from './cliCapture';
import { CancelledError } from '../../src/jobs/cancel';

describe('CLI output files (--output, --overwrite)', () => {
  let dir: string, src: string;
  before(() => {
    // A command that copies its input upper-cased to --output, streamed in two chunks, or stops midway when asked.
    COMMANDS['test-copy'] = () => ({
      name: 'test-copy', summary: 'test', synopsis: 'FILE -o OUT', description: 'test', positionals: { min: 1, max: 1 },
      options: [...OUTPUT_OPTIONS, { name: 'fail-midway', help: 'throw after the first chunk' }, { name: 'whole', help: 'one write' }],
      async run(args, io, signal) {
        const text = fs.readFileSync(args.positionals[0], 'utf8').toUpperCase();
        if (args.options.whole) { await writeOutput(args, signal, text, [args.positionals[0]]); return EXIT.ok; }
        const w = await openOutput(args, signal, [args.positionals[0]]);
        try {
          await w.write(Buffer.from(text.slice(0, 3)));
          if (args.options['fail-midway']) throw new Error('disk on fire');
          await w.write(Buffer.from(text.slice(3)));
          await w.commit();
        } catch (e) { await w.abort(); throw e; }
        await io.line(`wrote ${w.dest}`);
        return EXIT.ok;
      },
    });
  });
  after(() => { delete COMMANDS['test-copy']; });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-out-'));
    src = path.join(dir, 'in.txt');
    fs.writeFileSync(src, 'hello world');
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));
  const files = () => fs.readdirSync(dir).sort();

  it('writes the output; refuses to replace it without --overwrite (exit 1), replaces it with', async () => {
    const out = path.join(dir, 'out.txt');
    assert.equal((await captureCli(['test-copy', src, '-o', out])).code, 0);
    assert.equal(fs.readFileSync(out, 'utf8'), 'HELLO WORLD');
    fs.writeFileSync(out, 'mine');
    const r = await captureCli(['test-copy', src, '--output', out, '--whole']);
    assert.equal(r.code, EXIT.badInput);
    assert.match(r.err, /out\.txt: already exists \(pass overwrite \/ --overwrite/);
    assert.equal(fs.readFileSync(out, 'utf8'), 'mine');
    assert.equal((await captureCli(['test-copy', src, '-o', out, '--overwrite'])).code, 0);
    assert.equal(fs.readFileSync(out, 'utf8'), 'HELLO WORLD');
    assert.deepEqual(files(), ['in.txt', 'out.txt']);
  });

  it('never writes over a source, even spelled another way or through a symlink (exit 2)', async () => {
    fs.symlinkSync(src, path.join(dir, 'link.txt'));
    for (const o of [src, path.join(dir, '..', path.basename(dir), 'in.txt'), path.join(dir, 'link.txt')]) {
      const r = await captureCli(['test-copy', src, '-o', o, '--overwrite']);
      assert.equal(r.code, EXIT.usage, o);
      assert.match(r.err, /is an input of this command/);
    }
    assert.equal(fs.readFileSync(src, 'utf8'), 'hello world');
  });

  it('a failure midway leaves no partial output and no temp file; a missing --output or folder is a usage error', async () => {
    const out = path.join(dir, 'out.txt');
    const r = await captureCli(['test-copy', src, '-o', out, '--fail-midway']);
    assert.equal(r.code, EXIT.badInput);
    assert.match(r.err, /disk on fire/);
    assert.deepEqual(files(), ['in.txt']);
    assert.equal((await captureCli(['test-copy', src])).code, EXIT.usage);
    assert.equal((await captureCli(['test-copy', src, '-o', path.join(dir, 'nope', 'x')])).code, EXIT.usage);
  });

  it('Ctrl+C (the runner\'s signal) during the write removes the temp file, exit 130', async () => {
    const out = path.join(dir, 'out.txt');
    const ac = new AbortController();
    COMMANDS['test-slow'] = () => ({
      name: 'test-slow', summary: 'test', synopsis: '-o OUT', description: 'test', positionals: { min: 0, max: 0 }, options: OUTPUT_OPTIONS,
      async run(args, _io, signal) {
        const w = await openOutput(args, signal);
        await w.write(Buffer.from('part'));
        ac.abort(new CancelledError('test-slow'));
        await new Promise((r) => setTimeout(r, 20));
        await w.write(Buffer.from('rest'));
        await w.commit();
        return EXIT.ok;
      },
    });
    try {
      const r = await captureCli(['test-slow', '-o', out], {}, ac.signal);
      assert.equal(r.code, EXIT.cancelled);
      assert.match(r.err, /quantscope test-slow: cancelled/);
      assert.deepEqual(files(), ['in.txt']);
    } finally {
      delete COMMANDS['test-slow'];
    }
  });
});

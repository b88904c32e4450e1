/**
 * The built CLI as a Unix tool: complete output through a pipe (fast, slow
 * and closed readers) and a file, on the real sample models; exit codes for
 * each class; --help/--version; progress and colour only where they belong;
 * Ctrl+C during `stats` on a large file.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { assertBuilt, cliPath, fixtures, root, runCli, sampleModels } from './cli-spawn';
import { COMMANDS, commandNames } from '../../src/cli/registry';
import { EXIT, VerificationError } from '../../src/cli/exitCodes';
import { captureCli } from './cliCapture';

/** 1 GiB of float32 (8 tensors 4096×8192) in a sparse safetensors file: no disk used, seconds of work. */
function bigModel(dir: string): string {
  const big = path.join(dir, 'big.safetensors');
  if (fs.existsSync(big)) return big;
  const n = 8, rows = 4096, cols = 8192, bytes = rows * cols * 4;
  const header: Record<string, unknown> = {};
  for (let i = 0; i < n; i++) header[`layers.${i}.weight`] = { dtype: 'F32', shape: [rows, cols], data_offsets: [i * bytes, (i + 1) * bytes] };
  let h = Buffer.from(JSON.stringify(header));
  h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(big, Buffer.concat([len, h]));
  fs.truncateSync(big, 8 + h.length + n * bytes);
  return big;
}

interface InspectJson { schema: string; parameters: number; tensors: { name: string; numel: number; shape: number[] }[] }

describe('CLI as a child process (dist/cli.js)', function () {
  this.timeout(180_000);
  let tmp: string;
  before(() => {
    assertBuilt();
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-cli-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  /** The parameter count from the tensor shapes, independent of the CLI's own sum. */
  const paramsFromShapes = (j: InspectJson) => j.tensors.reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1), 0);

  it('inspect --json through a pipe is complete on every sample model (far above the 64 KiB pipe buffer)', async () => {
    for (const m of Object.values(sampleModels)) {
      const r = await runCli(['inspect', m, '--json']);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.stdout.toString('utf8')) as InspectJson;
      assert.equal(j.schema, 'quantscope/inspect/v1');
      assert.equal(j.parameters, paramsFromShapes(j), m);
      if (m === sampleModels.ocrRec) assert.ok(r.stdout.length > 256 * 1024, `${r.stdout.length} bytes: the test needs output larger than any pipe buffer`);
    }
  });

  it('a slow reader (4 KiB, then a pause) gets the same bytes as a fast one, for inspect and stats', async () => {
    for (const [args, pauseMs] of [[['inspect', sampleModels.ocrRec, '--json'], 8], [['stats', sampleModels.ocrCls, '--json', '--no-cache', '--threads', '2'], 8]] as const) {
      const fast = await runCli([...args]);
      const slow = await runCli([...args], { reader: { kind: 'slow', bytes: 4096, pauseMs } });
      assert.equal(slow.code, 0, slow.stderr);
      assert.equal(fast.code, 0, fast.stderr);
      const a = JSON.parse(fast.stdout.toString('utf8')) as { tensors: unknown[]; seconds?: number };
      const b = JSON.parse(slow.stdout.toString('utf8')) as { tensors: unknown[]; seconds?: number };
      delete a.seconds; delete b.seconds;
      assert.deepEqual(b, a);
    }
  });

  it('a reader that closes early (head -c 100) ends the CLI quietly with 141, inspect and stats', async () => {
    for (const args of [['inspect', sampleModels.ocrRec, '--json'], ['stats', sampleModels.ocrRec, '--json', '--no-cache', '--threads', '2']]) {
      const t0 = Date.now();
      const r = await runCli(args, { reader: { kind: 'closeAfter', bytes: 100 } });
      assert.equal(r.code, EXIT.brokenPipe, `${args[0]}: ${r.stderr}`);
      assert.equal(r.signal, null);
      assert.equal(r.stderr, '', 'no stack trace, no message');
      assert.equal(r.stdout.length, 100);
      assert.ok(Date.now() - t0 < 60_000);
    }
  });

  it('`| head -c 100` in a shell with pipefail: 141, nothing on stderr', () => {
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" "${cliPath}" inspect "${sampleModels.ocrRec}" --json | head -c 100 >/dev/null`], { encoding: 'utf8' });
    assert.equal(r.status, 141);
    assert.equal(r.stderr, '');
  });

  it('stdout redirected to a file holds the same complete document as the pipe', async () => {
    const file = path.join(tmp, 'inspect.json');
    const fd = fs.openSync(file, 'w');
    let r;
    try { r = await runCli(['inspect', sampleModels.ocrDet, '--json'], { stdoutFd: fd }); } finally { fs.closeSync(fd); }
    assert.equal(r.code, 0, r.stderr);
    const piped = await runCli(['inspect', sampleModels.ocrDet, '--json']);
    assert.equal(fs.readFileSync(file, 'utf8'), piped.stdout.toString('utf8'));
    JSON.parse(fs.readFileSync(file, 'utf8'));
  });

  it('jq reads the full count', function () {
    if (spawnSync('jq', ['--version']).status !== 0) this.skip();
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" "${cliPath}" inspect "${sampleModels.ocrRec}" --json | jq .parameters`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const full = JSON.parse(spawnSync(process.execPath, [cliPath, 'inspect', sampleModels.ocrRec, '--json'], { encoding: 'utf8', maxBuffer: 1 << 28 }).stdout) as InspectJson;
    assert.equal(Number(r.stdout.trim()), paramsFromShapes(full));
  });

  describe('exit codes', () => {
    it('0: success', async () => {
      assert.equal((await runCli(['inspect', path.join(fixtures, 'v3.gguf')])).code, EXIT.ok);
    });
    it('1: a corrupt file or a missing one, named in the message', async () => {
      const bad = path.join(tmp, 'corrupt.gguf');
      fs.writeFileSync(bad, Buffer.from('GGUF\x03\x00\x00\x00\xff\xff\xff\xff\xff\xff\xff\x7f', 'latin1'));
      for (const args of [['inspect', bad], ['stats', bad, '--no-cache'], ['inspect', path.join(tmp, 'missing.onnx')]]) {
        const r = await runCli(args);
        assert.equal(r.code, EXIT.badInput, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, new RegExp(path.basename(args[1]).replace('.', '\\.')));
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      }
    });
    it('1: stdout redirected to a full disk (64 KiB tmpfs): one clear message', async function () {
      const mnt = path.join(tmp, 'full');
      fs.mkdirSync(mnt);
      const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', mnt], { encoding: 'utf8' });
      if (m.status !== 0) {
        console.log(`      skipped: cannot mount a tmpfs here (${(m.stderr || '').trim()}); needs root`);
        this.skip();
      }
      try {
        const fd = fs.openSync(path.join(mnt, 'out.json'), 'w');
        let r;
        try { r = await runCli(['inspect', sampleModels.ocrRec, '--json'], { stdoutFd: fd }); } finally { fs.closeSync(fd); }
        assert.equal(r.code, EXIT.badInput);
        assert.equal(r.stderr, 'quantscope inspect: could not write to stdout: ENOSPC: no space left on device, write\n');
      } finally {
        spawnSync('umount', [mnt]);
      }
    });
    it('2: usage errors, with the usage line', async () => {
      const cases = [['bogus'], ['inspect'], ['inspect', 'a', 'b'], ['inspect', 'x', '--nope'], ['stats', 'x', '--threads', '0'], ['stats', 'x', '--threads'], ['stats', 'x', '--top', '1.5'], ['help', 'bogus']];
      for (const args of cases) {
        const r = await runCli(args);
        assert.equal(r.code, EXIT.usage, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /Usage: quantscope/, args.join(' '));
        assert.equal(r.stdout.length, 0);
      }
    });
    it('3: a VerificationError from a command (the runner maps it)', async () => {
      COMMANDS['test-verify'] = () => ({
        name: 'test-verify', summary: 'test', synopsis: '', description: 'test', options: [], positionals: { min: 0, max: 0 },
        run: () => Promise.reject(new VerificationError('model.q4.onnx: measured SQNR 12.1 dB, predicted 25.3 dB')),
      });
      try {
        const r = await captureCli(['test-verify']);
        assert.equal(r.code, EXIT.verificationFailed);
        assert.match(r.err, /measured SQNR/);
      } finally {
        delete COMMANDS['test-verify'];
      }
    });
    it('130: Ctrl+C during stats on a large file stops it, leaves no cache entry and no temp file', async () => {
      const big = bigModel(tmp);
      const cache = path.join(tmp, 'cache');
      let started = 0;
      const r = await runCli(['stats', big, '--json', '--progress', '--threads', '2', '--cache-dir', cache], {
        onStart: (child) => {
          child.stderr?.on('data', (d: Buffer) => {
            if (!started && /stats: \d+\/8 tensors/.test(d.toString())) {
              started = Date.now();
              setTimeout(() => child.kill('SIGINT'), 300);
            }
          });
        },
        timeoutMs: 120_000,
      });
      assert.ok(started, `progress never showed: ${r.stderr}`);
      assert.equal(r.code, EXIT.cancelled, r.stderr);
      assert.match(r.stderr, /cancelled/);
      assert.ok(Date.now() - started < 15_000, `took ${Date.now() - started} ms to stop`);
      assert.equal(r.stdout.length, 0, 'no partial output');
      const left = fs.existsSync(cache) ? fs.readdirSync(cache) : [];
      assert.deepEqual(left, [], `left in the cache dir: ${left.join(', ')}`);
      assert.deepEqual(fs.readdirSync(tmp).filter((f) => f.includes('qstmp')), []);
    });
  });

  it('SIGKILL during stats: the next run finds no partial output, writes its cache entry and reads it back', async () => {
    const big = bigModel(tmp);
    const cache = path.join(tmp, 'cache-kill');
    const out = path.join(tmp, 'killed.json');
    const fd = fs.openSync(out, 'w');
    let killedAt = 0;
    try {
      await runCli(['stats', big, '--json', '--progress', '--threads', '2', '--cache-dir', cache], {
        stdoutFd: fd,
        onStart: (child) => child.stderr?.on('data', (d: Buffer) => {
          if (!killedAt && /stats: \d+\/8 tensors/.test(d.toString())) { killedAt = Date.now(); setTimeout(() => child.kill('SIGKILL'), 300); }
        }),
      });
    } finally { fs.closeSync(fd); }
    assert.ok(killedAt);
    assert.equal(fs.statSync(out).size, 0, 'nothing printed before the results are complete');
    const again = await runCli(['stats', big, '--json', '--threads', '2', '--cache-dir', cache]);
    assert.equal(again.code, 0, again.stderr);
    const entries = fs.readdirSync(cache);
    assert.equal(entries.length, 1, entries.join(', '));
    assert.match(entries[0], /^stats-[0-9a-f]{32}\.qsc$/);
    const cached = await runCli(['stats', big, '--json', '--threads', '2', '--cache-dir', cache]);
    const a = JSON.parse(again.stdout.toString('utf8')) as { tensors: unknown[]; seconds: number };
    const b = JSON.parse(cached.stdout.toString('utf8')) as { tensors: unknown[]; seconds: number };
    assert.deepEqual(b.tensors, a.tensors);
    assert.equal(b.seconds, a.seconds, 'served from the cache (the stored run time comes back)');
  });

  it('memory bound: stats on a 1 GiB model peaks under 256 MiB resident (getrusage of the child)', function () {
    if (spawnSync('python3', ['--version']).status !== 0) this.skip();
    const big = bigModel(tmp);
    // python3 reports the peak RSS of its finished children, workers included (they are threads of the CLI).
    const py = `import resource,subprocess,sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL)
print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)`;
    const r = spawnSync('python3', ['-c', py, process.execPath, cliPath, 'stats', big, '--json', '--no-cache', '--threads', '2'], { encoding: 'utf8' });
    const [code, kib] = r.stdout.trim().split(' ').map(Number);
    assert.equal(code, 0, r.stderr);
    assert.ok(kib > 0 && kib < 256 * 1024, `peak RSS ${(kib / 1024).toFixed(0)} MiB`);
    console.log(`      peak RSS of stats on a 1 GiB model: ${(kib / 1024).toFixed(0)} MiB`);
  });

  describe('help, version, progress, colour', () => {
    it('--help for every registered command names each of its options; `help NAME` is the same', async () => {
      for (const name of commandNames()) {
        const r = await runCli([name, '--help']);
        assert.equal(r.code, 0, r.stderr);
        const text = r.stdout.toString('utf8');
        assert.match(text, new RegExp(`^Usage: quantscope ${name} `));
        for (const o of COMMANDS[name]().options) assert.match(text, new RegExp(`--${o.name}\\b`), `${name} --${o.name}`);
        assert.equal((await runCli(['help', name])).stdout.toString('utf8'), text);
      }
      const top = await runCli(['--help']);
      for (const name of commandNames()) assert.match(top.stdout.toString('utf8'), new RegExp(`^  ${name} `, 'm'));
    });

    it('--version prints package.json\'s version', async () => {
      const r = await runCli(['--version']);
      assert.equal(r.code, 0);
      assert.equal(r.stdout.toString('utf8').trim(), (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string }).version);
    });

    it('progress goes to stderr only with --progress when stderr is not a terminal, never to stdout', async () => {
      const args = ['stats', sampleModels.ocrCls, '--json', '--no-cache', '--threads', '2'];
      const quiet = await runCli(args);
      assert.equal(quiet.stderr, '');
      const shown = await runCli([...args, '--progress']);
      assert.match(shown.stderr, /stats: \d+\/\d+ tensors/);
      assert.doesNotMatch(shown.stdout.toString('utf8'), /tensors {2}\d+%/);
      JSON.parse(shown.stdout.toString('utf8'));
    });

    it('on a terminal: colour and progress, unless NO_COLOR / --no-progress', function () {
      if (spawnSync('script', ['--version']).status !== 0) this.skip();
      // script(1) gives the CLI a pseudo-terminal for stdout and stderr.
      const onTty = (cmd: string, extra: Record<string, string>) => {
        const env: Record<string, string | undefined> = { ...process.env, TERM: 'xterm', ...extra };
        if (!extra.NO_COLOR) delete env.NO_COLOR;
        return spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', env: env as NodeJS.ProcessEnv }).stdout;
      };
      const missing = `"${process.execPath}" "${cliPath}" inspect "${path.join(tmp, 'missing.onnx')}"`;
      assert.match(onTty(missing, {}), /\x1b\[31m/);
      assert.doesNotMatch(onTty(missing, { NO_COLOR: '1' }), /\x1b\[/);
      const stats = `"${process.execPath}" "${cliPath}" stats "${sampleModels.ocrCls}" --no-cache --threads 2`;
      assert.match(onTty(stats, {}), /stats: \d+\/\d+ tensors/);
      assert.doesNotMatch(onTty(`${stats} --no-progress`, {}), /stats: \d+\/\d+ tensors/);
    });
  });
});

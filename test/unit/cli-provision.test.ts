/**
 * scripts/provision.mjs with stand-ins for dpkg-query and apt-get on PATH:
 * nothing to do, install as root, the one command to run otherwise, and not
 * a Debian system. The real apt-get is never called.
 */
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..', '..');
const script = path.join(root, 'scripts', 'provision.mjs');
const ALL = ['libkrb5-dev', 'libx11-dev', 'libxkbfile-dev', 'libsecret-1-dev', 'pkg-config', 'ripgrep', 'chromium'];

describe('scripts/provision.mjs (npm start / npm test provisioning)', function () {
  this.timeout(30_000);
  let dir: string, bin: string, state: string, aptLog: string;

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-provision-'));
    fs.chmodSync(dir, 0o755);
    bin = path.join(dir, 'bin');
    fs.mkdirSync(bin);
    state = path.join(dir, 'installed');
    aptLog = path.join(dir, 'apt.log');
    // dpkg-query -W -f=... PKG...: a status line for each installed one, like the real one.
    fs.writeFileSync(path.join(bin, 'dpkg-query'), `#!/bin/sh
shift 2
for p in "$@"; do
  if grep -qx "$p" "${state}" 2>/dev/null; then echo "$p install ok installed"; else echo "dpkg-query: no packages found matching $p" >&2; fi
done
`, { mode: 0o755 });
    // apt-get: logs its arguments; `install` marks the packages installed.
    fs.writeFileSync(path.join(bin, 'apt-get'), `#!/bin/sh
[ "$1" = "--version" ] && exit 0
echo "$DEBIAN_FRONTEND $*" >> "${aptLog}"
if [ "$1" = "install" ]; then for p in "$@"; do case "$p" in -*|install) ;; *) echo "$p" >> "${state}";; esac; done; fi
`, { mode: 0o755 });
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const run = (args: string[], opts: { path?: string; asUser?: string } = {}) => {
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: opts.path ?? `${bin}:/usr/bin:/bin` };
    delete env.QUANTSCOPE_SKIP_PROVISION;
    const cmd = opts.asUser ? [runuser, '-u', opts.asUser, '--', process.execPath, script, ...args] : [process.execPath, script, ...args];
    const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', env });
    return { code: r.status, out: r.stdout + r.stderr, apt: fs.existsSync(aptLog) ? fs.readFileSync(aptLog, 'utf8') : '' };
  };
  const isRoot = process.getuid?.() === 0;
  // Resolved here: the child's PATH is the test's stand-ins only.
  const runuser = spawnSync('sh', ['-c', 'command -v runuser'], { encoding: 'utf8' }).stdout.trim();

  it('everything installed: silent, exit 0, apt-get untouched', () => {
    fs.writeFileSync(state, ALL.join('\n') + '\n');
    const r = run([]);
    assert.equal(r.code, 0, r.out);
    assert.equal(r.out, '');
    assert.equal(r.apt, '');
  });

  it('as root with apt-get: says what and that it takes a while, then updates and installs only what is missing', function () {
    if (!isRoot) this.skip();
    fs.writeFileSync(state, ALL.filter((p) => p !== 'chromium' && p !== 'ripgrep').join('\n') + '\n');
    const r = run(['--for', 'test']);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /installing 2 Debian package\(s\) with apt-get, once; this can take a few minutes/);
    assert.match(r.out, /ripgrep\s+code-server installs offline/);
    assert.equal(r.apt, 'noninteractive update -qq\nnoninteractive install -y -qq ripgrep chromium\n');
    assert.equal(run([]).out, '', 'a second run has nothing to do');
  });

  it('--check (or no root / no apt-get): stops at once with the one exact command, exit 1', () => {
    fs.writeFileSync(state, ALL.filter((p) => p !== 'libx11-dev').join('\n') + '\n');
    const r = run(['--check']);
    assert.equal(r.code, 1);
    assert.ok(r.out.includes("\n  sudo sh -c 'apt-get update && apt-get install -y libx11-dev'\n"), r.out);
    assert.equal(r.apt, '');
  });

  it('not root: the same command, apt-get never run', function () {
    if (!isRoot || !runuser) this.skip();
    fs.writeFileSync(state, 'pkg-config\n');
    fs.chmodSync(state, 0o644);
    const r = run([], { asUser: 'nobody' });
    assert.equal(r.code, 1, r.out);
    assert.ok(r.out.includes(`sudo sh -c 'apt-get update && apt-get install -y ${ALL.filter((p) => p !== 'pkg-config').join(' ')}'`), r.out);
    assert.equal(r.apt, '');
  });

  it('npm start needs no Chromium', () => {
    fs.writeFileSync(state, ALL.filter((p) => p !== 'chromium').join('\n') + '\n');
    assert.equal(run(['--for', 'start', '--check']).code, 0);
    assert.equal(run(['--for', 'test', '--check']).code, 1);
  });

  it('not a Debian system: says so, exit 0', () => {
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    const r = run([], { path: empty });
    assert.equal(r.code, 0);
    assert.match(r.out, /not a Debian system/);
  });

  it('the package list lives only in provision.mjs: .ci/run and the test runner rely on it', () => {
    const ci = fs.readFileSync(path.join(root, '.ci', 'run'), 'utf8');
    assert.doesNotMatch(ci, /apt-get|libx11-dev/);
    const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    assert.match(pkg.scripts.pretest, /scripts\/provision\.mjs/);
    assert.match(fs.readFileSync(path.join(root, 'scripts', 'start.mjs'), 'utf8'), /provision\(\{ purpose: 'start' \}\)/);
    assert.match(fs.readFileSync(path.join(root, 'test', 'integration', 'runTest.ts'), 'utf8'), /provision\.mjs/);
  });
});

// The Debian packages `npm start` and `npm test` need, checked and installed
// in one place (.ci/run relies on it too):
//   node scripts/provision.mjs [--for start|test] [--check]
// Installed already: prints nothing, exits 0. Missing, as root with apt-get:
// says what it installs and that it takes a while, then installs. Missing
// otherwise (or with --check): prints the one command to run and exits 1.
// Not a Debian system (no dpkg-query): says so and exits 0, nothing to check.
// QUANTSCOPE_SKIP_PROVISION=1 skips it all.
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';

/** What each package is for; the `for` lists say which command needs it. */
export const PACKAGES = {
  'libkrb5-dev': 'code-server builds native modules against it (npm start, integration tests)',
  'libx11-dev': 'code-server native module (keymap)',
  'libxkbfile-dev': 'code-server native module (keymap)',
  'libsecret-1-dev': 'code-server native module (credentials)',
  'pkg-config': 'finds those libraries while building',
  ripgrep: 'code-server installs offline with Debian\'s rg',
  chromium: 'the integration and UI tests drive code-server in it',
};
const NEEDS = {
  start: ['libkrb5-dev', 'libx11-dev', 'libxkbfile-dev', 'libsecret-1-dev', 'pkg-config', 'ripgrep'],
  test: Object.keys(PACKAGES),
};

function has(cmd) {
  return spawnSync(cmd, ['--version'], { stdio: 'ignore' }).error === undefined;
}

/** Packages of `list` that dpkg does not report as installed. */
export function missingPackages(list) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Package} ${Status}\\n', ...list], { encoding: 'utf8' });
  const ok = new Set(r.stdout.split('\n').filter((l) => l.endsWith(' install ok installed')).map((l) => l.split(' ')[0]));
  return list.filter((p) => !ok.has(p));
}

export function installCommand(missing) {
  return `sudo sh -c 'apt-get update && apt-get install -y ${missing.join(' ')}'`;
}

/** Returns 0 when everything needed is there (installing it if it may), 1 otherwise. */
export function provision({ purpose = 'test', check = false, log = console.log } = {}) {
  if (process.env.QUANTSCOPE_SKIP_PROVISION === '1') return 0;
  const list = NEEDS[purpose];
  if (!list) throw new Error(`provision: unknown purpose '${purpose}' (start or test)`);
  if (!has('dpkg-query')) {
    log(`[provision] not a Debian system (no dpkg-query): make sure these are installed: ${list.join(' ')}`);
    return 0;
  }
  const missing = missingPackages(list);
  if (missing.length === 0) return 0;
  const what = missing.map((p) => `  ${p.padEnd(16)} ${PACKAGES[p]}`).join('\n');
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (check || !root || !has('apt-get')) {
    log(`[provision] npm ${purpose} needs Debian packages that are not installed:\n${what}\n\nInstall them with this command, then run npm ${purpose} again:\n\n  ${installCommand(missing)}\n`);
    return 1;
  }
  log(`[provision] installing ${missing.length} Debian package(s) with apt-get, once; this can take a few minutes:\n${what}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', ...missing]]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env });
    if (r.status !== 0) {
      log(`[provision] apt-get ${args[0]} failed (exit ${r.status ?? r.signal}). Run it yourself:\n\n  ${installCommand(missing)}\n`);
      return 1;
    }
  }
  const still = missingPackages(missing);
  if (still.length) {
    log(`[provision] apt-get finished but these are still not installed: ${still.join(' ')}`);
    return 1;
  }
  log('[provision] done.');
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const argv = process.argv.slice(2);
  const i = argv.indexOf('--for');
  process.exitCode = provision({ purpose: i >= 0 ? argv[i + 1] : 'test', check: argv.includes('--check') });
}

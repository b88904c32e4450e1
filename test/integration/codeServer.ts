/**
 * Runs VS Code (code-server) for the integration tests where no desktop VS
 * Code exists: installs code-server on demand into .vscode-test/, starts it on
 * a free loopback port, and stops only what it started.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

export const CODE_SERVER_VERSION = '4.100.3';
const RG_CACHE = path.join(os.tmpdir(), 'vscode-ripgrep-cache-1.15.11');
const RG_TARBALL = 'ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz';

export function codeServerEntry(root: string): string {
  return path.join(root, '.vscode-test', 'code-server', 'node_modules', 'code-server', 'out', 'node', 'entry.js');
}

function installedVersion(root: string): string | undefined {
  try {
    const pj = path.join(root, '.vscode-test', 'code-server', 'node_modules', 'code-server', 'package.json');
    const v = JSON.parse(fs.readFileSync(pj, 'utf8')).version as string;
    // postinstall builds VS Code's own modules; without them the server cannot start.
    const pty = path.join(path.dirname(pj), 'lib', 'vscode', 'node_modules', 'node-pty', 'build', 'Release', 'pty.node');
    return fs.existsSync(pty) ? v : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The ripgrep package of VS Code downloads a binary at install time; offline,
 * give it Debian's rg in the cache it looks in first.
 */
function seedRipgrepCache(): void {
  const tarball = path.join(RG_CACHE, RG_TARBALL);
  if (fs.existsSync(tarball)) return;
  const rg = ['/usr/bin/rg', '/usr/local/bin/rg'].find((p) => fs.existsSync(p));
  if (!rg) throw new Error('ripgrep (rg) is needed to install code-server offline: apt-get install -y ripgrep');
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-rg-'));
  fs.copyFileSync(rg, path.join(stage, 'rg'));
  fs.mkdirSync(RG_CACHE, { recursive: true });
  const r = spawnSync('tar', ['-czf', tarball, '-C', stage, 'rg'], { stdio: 'inherit' });
  fs.rmSync(stage, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`could not create ${tarball}`);
}

export function ensureCodeServer(root: string): void {
  const have = installedVersion(root);
  if (have === CODE_SERVER_VERSION) return;
  console.log(`[integration] installing code-server@${CODE_SERVER_VERSION} into .vscode-test/code-server (once; a few minutes)…`);
  seedRipgrepCache();
  const dir = path.join(root, '.vscode-test', 'code-server');
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'quantscope-code-server-host', private: true }));
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = spawnSync(npm, ['install', '--no-audit', '--no-fund', '--dangerously-allow-all-scripts', `code-server@${CODE_SERVER_VERSION}`], {
    cwd: dir,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, npm_config_yes: 'true', npm_config_unsafe_perm: 'true' },
  });
  if (r.status !== 0 || installedVersion(root) !== CODE_SERVER_VERSION) {
    throw new Error(
      `installing code-server@${CODE_SERVER_VERSION} failed (exit ${r.status}). It builds native modules against Debian packages: ` +
        'node scripts/provision.mjs --check names any that are missing',
    );
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

export interface RunningServer {
  port: number;
  url: string;
  process: ChildProcess;
  logFile: string;
  stop(): Promise<void>;
}

export async function startCodeServer(root: string, opts: {
  workspace: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; port?: number; extensionsDir?: string;
  /** Workspace trust on, the folder not trusted and no prompt: the window opens in Restricted Mode. */
  untrusted?: boolean;
}): Promise<RunningServer> {
  const port = opts.port ?? (await freePort());
  const state = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-code-server-'));
  const logFile = path.join(root, 'test-results', `code-server-${port}.log`);
  fs.mkdirSync(path.dirname(logFile), { recursive: true });
  const out = fs.openSync(logFile, 'w');
  if (opts.untrusted) {
    const user = path.join(state, 'user-data', 'User');
    fs.mkdirSync(user, { recursive: true });
    fs.writeFileSync(path.join(user, 'settings.json'), JSON.stringify({ 'security.workspace.trust.enabled': true, 'security.workspace.trust.startupPrompt': 'never', 'security.workspace.trust.emptyWindow': false }));
  }
  const args = [
    codeServerEntry(root),
    '--auth', 'none',
    '--bind-addr', `127.0.0.1:${port}`,
    '--disable-telemetry',
    '--disable-update-check',
    ...(opts.untrusted ? [] : ['--disable-workspace-trust']),
    '--disable-getting-started-override',
    '--user-data-dir', path.join(state, 'user-data'),
    '--extensions-dir', opts.extensionsDir ?? path.join(state, 'extensions'),
    opts.workspace,
  ];
  const child = spawn(process.execPath, args, {
    cwd: root,
    detached: true,
    stdio: ['ignore', out, out],
    env: { ...process.env, ...opts.env },
  });
  fs.closeSync(out);
  let exited = false;
  child.on('exit', () => (exited = true));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  for (;;) {
    if (exited) throw new Error(`code-server exited during start-up; see ${logFile}:\n${fs.readFileSync(logFile, 'utf8').slice(-2000)}`);
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      killGroup(child);
      throw new Error(`code-server did not answer on ${url} within ${(opts.timeoutMs ?? 60_000) / 1000} s; see ${logFile}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    port,
    url,
    process: child,
    logFile,
    async stop() {
      if (!exited) {
        killGroup(child);
        const t = Date.now();
        while (!exited && Date.now() - t < 5000) await new Promise((r) => setTimeout(r, 100));
        if (!exited) killGroup(child, 'SIGKILL');
      }
      fs.rmSync(state, { recursive: true, force: true });
    },
  };
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
  try {
    if (child.pid) process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

/** The workbench URL that loads the extension under development (and optionally a test suite). */
export function workbenchUrl(server: { url: string; port: number }, workspace: string, extensionPath: string, testsPath?: string): string {
  const remote = (p: string) => `vscode-remote://127.0.0.1:${server.port}${p}`;
  const payload: [string, string][] = [['extensionDevelopmentPath', remote(extensionPath)]];
  if (testsPath) payload.push(['extensionTestsPath', remote(testsPath)]);
  return `${server.url}/?folder=${encodeURIComponent(workspace)}&payload=${encodeURIComponent(JSON.stringify(payload))}`;
}

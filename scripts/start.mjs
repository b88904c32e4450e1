// `npm start`: build, then run VS Code (code-server) on 127.0.0.1 with
// QuantScope loaded and a sample workspace of real models; prints the URL.
// Stop with Ctrl+C. Port: $QUANTSCOPE_PORT or a free one.
import { execSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { provision } from './provision.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
// Debian packages code-server needs: installed now when root, else the one command to run, before any long step.
if (provision({ purpose: 'start' }) !== 0) process.exitCode = 1;
else await start();

async function start() {
  execSync('npm run --silent build', { cwd: root, stdio: 'inherit' });
  // The code-server launcher is shared with the integration tests; bundle it on the fly.
  const launcher = join(root, '.vscode-test', 'start', 'codeServer.cjs');
  await (await import('esbuild')).build({ entryPoints: [join(root, 'test/integration/codeServer.ts')], bundle: true, platform: 'node', format: 'cjs', target: 'node20', outfile: launcher, logLevel: 'warning' });

  const { prepareSampleWorkspace } = require('./sample-workspace.cjs');
  const cs = require(launcher);
  const workspace = join(root, 'sample-workspace');
  const models = prepareSampleWorkspace(root, workspace);
  cs.ensureCodeServer(root);
  const port = process.env.QUANTSCOPE_PORT ? Number(process.env.QUANTSCOPE_PORT) : undefined;
  const server = await cs.startCodeServer(root, { workspace, port, timeoutMs: 120_000 });
  const url = cs.workbenchUrl(server, workspace, root);
  console.log(`\nQuantScope is running in VS Code ${cs.CODE_SERVER_VERSION ? '(code-server ' + cs.CODE_SERVER_VERSION + ')' : ''}.`);
  console.log(`Sample models in ${workspace}:\n${models.map((m) => '  ' + m).join('\n')}`);
  console.log(`\nOpen this URL in a browser (server log: ${server.logFile}):\n\n  ${url}\n`);
  console.log('Press Ctrl+C to stop.');
  const stop = async () => {
    await server.stop();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await new Promise(() => {});
}

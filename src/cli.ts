#!/usr/bin/env node
/**
 * The headless QuantScope CLI: the same engine as the extension, no VS Code.
 * Commands live in src/cli/<name>.ts and are listed in src/cli/registry.ts;
 * this file parses, runs one with an AbortSignal (Ctrl+C cancels it), maps
 * its outcome to an exit code (src/cli/exitCodes.ts) and lets stdout drain
 * before the process ends: it never calls process.exit with output pending.
 */
import { CliCommand, parseCommandArgs, renderHelp, usageLine } from './cli/command';
import { EXIT, UsageError, exitCodeOf, isExpectedError } from './cli/exitCodes';
import { OutStream, createIO, useColor } from './cli/io';
import { COMMANDS, commandNames } from './cli/registry';
import { removePendingTempFiles } from './formats/atomicWrite';

export interface CliEnvironment {
  stdout: OutStream;
  stderr: OutStream;
  env: Record<string, string | undefined>;
  /** Aborted on SIGINT/SIGTERM by the entry point; tests abort it themselves. */
  signal?: AbortSignal;
}

function version(): string {
  return (require('../package.json') as { version: string }).version;
}

function topUsage(): string {
  const names = commandNames();
  return [
    'Usage: quantscope <command> [options]',
    '',
    'Commands:',
    ...names.map((n) => `  ${n.padEnd(10)} ${COMMANDS[n]().summary}`),
    '',
    'Options:',
    '  -h, --help     print this help',
    '  -V, --version  print the version',
    '',
    "Run 'quantscope <command> --help' for a command's options.",
    'Exit codes: 0 ok, 1 bad input, 2 usage, 3 verification failed, 130 cancelled (Ctrl+C).',
  ].join('\n');
}

function helpRequested(argv: readonly string[]): boolean {
  for (const a of argv) {
    if (a === '--') return false;
    if (a === '--help' || a === '-h') return true;
  }
  return false;
}

/** Runs the CLI on `argv` and resolves to its exit code once stdout has drained. */
export async function main(argv: string[], sys: CliEnvironment = processEnvironment()): Promise<number> {
  const outer = sys.signal;
  const controller = new AbortController();
  const onOuter = () => controller.abort(outer?.reason);
  if (outer?.aborted) onOuter(); else outer?.addEventListener('abort', onOuter, { once: true });
  const err = (t: string) => { try { sys.stderr.write(`${t}\n`); } catch { /* stderr gone */ } };
  const color = useColor(sys.stderr, sys.env);
  const red = (t: string) => (color ? `\x1b[31m${t}\x1b[0m` : t);

  const [name, ...rest] = argv;
  let cmd: CliCommand | undefined;
  const io = createIO({
    stdout: sys.stdout, stderr: sys.stderr, env: sys.env,
    progress: rest.includes('--no-progress') ? false : rest.includes('--progress') ? true : undefined,
    // The reader went away: nobody will see the rest, stop the work.
    onBroken: (e) => controller.abort(e),
  });
  let code: number;
  try {
    if (!name || name === '--help' || name === '-h' || name === 'help') {
      const topic = name === 'help' ? rest[0] : undefined;
      if (topic && !COMMANDS[topic]) throw new UsageError(`unknown command '${topic}'`);
      await io.line(topic ? renderHelp(COMMANDS[topic]()) : topUsage());
      code = EXIT.ok;
    } else if (name === '--version' || name === '-V' || name === 'version') {
      await io.line(version());
      code = EXIT.ok;
    } else if (!Object.hasOwn(COMMANDS, name)) {
      throw new UsageError(`unknown command '${name}'`);
    } else {
      cmd = COMMANDS[name]();
      if (helpRequested(rest)) {
        await io.line(renderHelp(cmd));
        code = EXIT.ok;
      } else {
        const args = parseCommandArgs(cmd, rest);
        code = await cmd.run(args, io, controller.signal);
        if (controller.signal.aborted) throw controller.signal.reason;
      }
    }
  } catch (e) {
    // Once the run was aborted (Ctrl+C, the reader gone), what the command threw on the way out is a consequence, not the cause.
    const reason: unknown = controller.signal.aborted ? controller.signal.reason : e;
    code = exitCodeOf(reason);
    io.progressDone();
    const who = `quantscope${cmd ? ` ${cmd.name}` : ''}`;
    if (e instanceof UsageError) {
      err(`${who}: ${red(e.message)}`);
      err(cmd ? `${usageLine(cmd)}\nRun 'quantscope ${cmd.name} --help' for its options.` : `\n${topUsage()}`);
    } else if (code === EXIT.brokenPipe) {
      // Quiet: the reader chose to stop reading (`| head`).
    } else if (code === EXIT.cancelled) {
      err(`${who}: cancelled`);
    } else if (io.stdout.error && (e === io.stdout.error || reason === io.stdout.error)) {
      // Reported once, below.
    } else {
      const msg = e instanceof Error ? e.message : String(e);
      err(`${who}: ${red(msg)}`);
      if (!isExpectedError(e) && sys.env.QUANTSCOPE_DEBUG && e instanceof Error && e.stack) err(e.stack);
    }
  } finally {
    outer?.removeEventListener('abort', onOuter);
  }
  io.progressDone();
  await io.flush();
  if (io.stdout.isBroken) return EXIT.brokenPipe;
  if (io.stdout.error) {
    err(`quantscope${cmd ? ` ${cmd.name}` : ''}: ${red(`could not write to stdout: ${io.stdout.error.message}`)}`);
    return EXIT.badInput;
  }
  return code;
}

function processEnvironment(): CliEnvironment {
  return { stdout: process.stdout, stderr: process.stderr, env: process.env };
}

/**
 * Under an address-space limit (`ulimit -v`, `prlimit --as`), V8 cannot
 * reserve the guard regions its WebAssembly memories use by default, and
 * every kernel would fail. Such a process runs the CLI again in a child
 * with explicit bounds checks (same numbers, no reservation), in its own
 * process group so that each Ctrl+C or SIGTERM reaches it exactly once,
 * forwarded from here; the child's exit code or signal is this process's.
 */
function addressSpaceLimited(): boolean {
  try {
    const m = /^Max address space\s+(\S+)/m.exec(require('node:fs').readFileSync('/proc/self/limits', 'utf8') as string);
    return !!m && m[1] !== 'unlimited';
  } catch {
    return false;
  }
}

const NO_TRAP_HANDLER = '--disable-wasm-trap-handler';

function runBoundsChecked(): void {
  const { spawn } = require('node:child_process') as typeof import('node:child_process');
  const child = spawn(process.execPath, [...process.execArgv, NO_TRAP_HANDLER, process.argv[1], ...process.argv.slice(2)], { stdio: 'inherit', detached: true });
  const forward = (sig: NodeJS.Signals) => { try { child.kill(sig); } catch { /* gone */ } };
  process.on('SIGINT', () => forward('SIGINT'));
  process.on('SIGTERM', () => forward('SIGTERM'));
  child.on('error', (e) => { process.stderr.write(`quantscope: could not start: ${e.message}\n`); process.exitCode = EXIT.badInput; });
  child.on('exit', (code, signal) => {
    if (signal) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
      return;
    }
    process.exitCode = code ?? EXIT.badInput;
  });
}

if (require.main === module && addressSpaceLimited() && !process.execArgv.includes(NO_TRAP_HANDLER)) {
  runBoundsChecked();
} else if (require.main === module) {
  const controller = new AbortController();
  let signalled = 0;
  let lastSignal: 'SIGINT' | 'SIGTERM' | undefined;
  const onSignal = (sig: 'SIGINT' | 'SIGTERM') => {
    signalled++;
    lastSignal = sig;
    if (signalled > 1) {
      // Asked twice: stop now, still without leaving temp files behind.
      removePendingTempFiles();
      process.exit(sig === 'SIGINT' ? EXIT.cancelled : EXIT.terminated);
    }
    const { CancelledError } = require('./jobs/cancel') as typeof import('./jobs/cancel');
    controller.abort(new CancelledError(`quantscope (${sig})`));
  };
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  // Whatever ends the process, an atomic write in progress leaves no temp file.
  process.on('exit', removePendingTempFiles);
  main(process.argv.slice(2), { ...processEnvironment(), signal: controller.signal }).then(
    (code) => {
      process.exitCode = code === EXIT.cancelled && lastSignal === 'SIGTERM' ? EXIT.terminated : code;
      // stdout has drained; should a stray handle keep the loop alive, still end (unref'd: never delays a clean exit).
      setTimeout(() => process.exit(), 10_000).unref();
    },
    (e: unknown) => { process.stderr.write(`quantscope: ${e instanceof Error ? e.stack ?? e.message : String(e)}\n`); process.exitCode = EXIT.badInput; },
  );
}

#!/usr/bin/env node
/**
 * The headless QuantScope CLI: the same engine as the extension, no VS Code.
 * Each subcommand lives in src/cli/<name>.ts and exports `run(argv): Promise<number>`.
 */
import { CliCommand } from './cli/common';

const commands: Record<string, () => CliCommand> = {
  // Subcommands register here, one line each.
  inspect: () => require('./cli/inspect').command,
  stats: () => require('./cli/stats').command,
  sensitivity: () => require('./cli/sensitivity').command,
  experiment: () => require('./cli/experiment').command,
};

function usage(): string {
  const names = Object.keys(commands).sort();
  const lines = [
    'Usage: quantscope <command> [options]',
    '',
    'Commands:',
    ...names.map((n) => `  ${n.padEnd(10)} ${commands[n]().summary}`),
    '',
    "Run 'quantscope <command> --help' for a command's options.",
  ];
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return 0;
  }
  if (name === '--version' || name === '-v') {
     
    console.log(require('../package.json').version);
    return 0;
  }
  const factory = commands[name];
  if (!factory) {
    console.error(`quantscope: unknown command '${name}'\n\n${usage()}`);
    return 2;
  }
  return factory().run(rest);
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(`quantscope: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    },
  );
}

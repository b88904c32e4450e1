/**
 * Every CLI command, one line each: name → its module's `command` (a
 * CliCommand, see command.ts). Loaded lazily so `quantscope inspect` does not
 * evaluate the modules of commands it does not run.
 */
import type { CliCommand } from './command';

export const COMMANDS: Record<string, () => CliCommand> = {
  inspect: () => (require('./inspect') as { command: CliCommand }).command,
  stats: () => (require('./stats') as { command: CliCommand }).command,
  quantize: () => (require('./quantize') as { command: CliCommand }).command,
  sensitivity: () => (require('./sensitivity') as { command: CliCommand }).command,
  compare: () => (require('./compare') as { command: CliCommand }).command,
  experiment: () => (require('./experiment') as { command: CliCommand }).command,
};

export function commandNames(): string[] {
  return Object.keys(COMMANDS).sort();
}

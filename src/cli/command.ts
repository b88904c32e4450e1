/**
 * What a CLI command is: its usage text, its options and `run(args, io, signal)`.
 * A new command is one file in src/cli/ exporting a `CliCommand` and one line
 * in registry.ts; parsing, `--help`, exit codes, stdout draining, progress and
 * Ctrl+C are the runner's (cli.ts) job.
 */
import { UsageError } from './exitCodes';
import type { CliIO } from './io';

export interface OptionSpec {
  /** Long name without the dashes: `threads` is `--threads`. */
  name: string;
  /** One-letter alias without the dash. */
  short?: string;
  /** Placeholder shown in help when the option takes a value (`N`, `DIR`); absent for a flag. */
  value?: string;
  /** Parse the value as an integer within these bounds (UsageError otherwise). */
  int?: { min?: number; max?: number };
  /** Accepted values (UsageError otherwise). */
  choices?: readonly string[];
  /** May be given more than once (its value is then a string[]). */
  repeat?: boolean;
  help: string;
}

export interface ParsedArgs {
  positionals: string[];
  /** By long name: true for a given flag, a string (or a number for `int`, string[] for `repeat`) for a value. */
  options: Record<string, string | number | boolean | string[] | undefined>;
}

export interface CliCommand {
  name: string;
  /** One line for `quantscope --help`. */
  summary: string;
  /** The synopsis after `quantscope NAME`, e.g. `FILE [options]`. */
  synopsis: string;
  /** Paragraphs printed by `--help` between the synopsis and the options. */
  description: string;
  options: readonly OptionSpec[];
  /** Positional argument count accepted (UsageError otherwise). */
  positionals: { min: number; max: number };
  /** The `schema` value of its --json output, documented by schemas/<name>.v<N>.json. */
  jsonSchema?: string;
  /** Returns an exit code (EXIT.*) or throws; see exitCodes.ts for what each error maps to. Must stop soon after `signal` aborts. */
  run(args: ParsedArgs, io: CliIO, signal: AbortSignal): Promise<number>;
}

/** Options every command takes; the runner handles them. */
export const GLOBAL_OPTIONS: readonly OptionSpec[] = [
  { name: 'help', short: 'h', help: 'print this help and exit' },
  { name: 'progress', help: 'show progress on stderr even when it is not a terminal' },
  { name: 'no-progress', help: 'never show progress' },
];

/** Parse `argv` against the command's options: --flag, --key value, --key=value, -k value, `--` ends options. */
export function parseCommandArgs(cmd: Pick<CliCommand, 'name' | 'options' | 'positionals'>, argv: readonly string[]): ParsedArgs {
  const specs = [...cmd.options, ...GLOBAL_OPTIONS];
  const byLong = new Map(specs.map((s) => [s.name, s]));
  const byShort = new Map(specs.filter((s) => s.short).map((s) => [s.short as string, s]));
  const options: ParsedArgs['options'] = {};
  const positionals: string[] = [];
  let onlyPositionals = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (onlyPositionals || a === '-' || !a.startsWith('-')) { positionals.push(a); continue; }
    if (a === '--') { onlyPositionals = true; continue; }
    let spec: OptionSpec | undefined;
    let inline: string | undefined;
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
      if (eq > 0) inline = a.slice(eq + 1);
      spec = byLong.get(key);
      if (!spec) throw new UsageError(`unknown option --${key}`);
    } else {
      spec = byShort.get(a.slice(1, 2));
      if (!spec || a.length > 2) throw new UsageError(`unknown option ${a}`);
    }
    if (!spec.value) {
      if (inline !== undefined) throw new UsageError(`option --${spec.name} takes no value`);
      options[spec.name] = true;
      continue;
    }
    let v = inline;
    if (v === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`option --${spec.name} needs a value (${spec.value})`);
      v = argv[++i];
    }
    options[spec.name] = spec.repeat ? [...((options[spec.name] as string[] | undefined) ?? []), v] : checkValue(spec, v);
  }
  const { min, max } = cmd.positionals;
  if (positionals.length < min || positionals.length > max) {
    const want = min === max ? `${min}` : max === Infinity ? `at least ${min}` : `${min} to ${max}`;
    throw new UsageError(`expected ${want} argument${max === 1 ? '' : 's'}, got ${positionals.length}${positionals.length ? ` (${positionals.join(' ')})` : ''}`);
  }
  return { positionals, options };
}

function checkValue(spec: OptionSpec, v: string): string | number {
  if (spec.choices && !spec.choices.includes(v)) throw new UsageError(`--${spec.name} must be one of ${spec.choices.join(', ')}, got '${v}'`);
  if (!spec.int) return v;
  const n = Number(v);
  const { min = -Infinity, max = Infinity } = spec.int;
  if (!/^[+-]?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    const range = min > -Infinity && max < Infinity ? ` from ${min} to ${max}` : min === 1 ? ' ≥ 1' : min === 0 ? ' ≥ 0' : '';
    throw new UsageError(`--${spec.name} must be an integer${range}, got '${v}'`);
  }
  return n;
}

export function usageLine(cmd: Pick<CliCommand, 'name' | 'synopsis'>): string {
  return `Usage: quantscope ${cmd.name} ${cmd.synopsis}`;
}

/** The text of `quantscope NAME --help`. */
export function renderHelp(cmd: CliCommand): string {
  const row = (s: OptionSpec): [string, string] => [
    `${s.short ? `-${s.short}, ` : '    '}--${s.name}${s.value ? ` ${s.value}` : ''}`,
    s.help + (s.choices ? ` (${s.choices.join(', ')})` : ''),
  ];
  const rows = [...cmd.options.map(row), ...GLOBAL_OPTIONS.map(row)];
  const w = Math.min(28, Math.max(...rows.map((r) => r[0].length)));
  const fmt = ([l, h]: [string, string]) => (l.length > w ? `  ${l}\n  ${' '.repeat(w)}  ${h}` : `  ${l.padEnd(w)}  ${h}`);
  const lines = [usageLine(cmd), '', cmd.description.trim(), '', 'Options:', ...cmd.options.map(row).map(fmt), '', 'Common options:', ...GLOBAL_OPTIONS.map(row).map(fmt)];
  if (cmd.jsonSchema) lines.push('', `--json output: schema "${cmd.jsonSchema}", documented in schemas/${cmd.name}.v${cmd.jsonSchema.split('/v').pop()}.json.`);
  lines.push('', 'Exit codes: 0 ok, 1 bad input, 2 usage, 3 verification failed, 130 cancelled (Ctrl+C).');
  return lines.join('\n');
}

export interface CliCommand {
  summary: string;
  run(argv: string[]): Promise<number>;
}

/** Minimal flag parser: --flag, --key value, --key=value; the rest are positionals. */
export function parseArgs(argv: string[], valueFlags: string[] = []): { flags: Record<string, string | boolean>; positionals: string[] } {
  const flags: Record<string, string | boolean> = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      if (eq > 0) {
        flags[a.slice(2, eq)] = a.slice(eq + 1);
      } else {
        const key = a.slice(2);
        if (valueFlags.includes(key)) {
          if (i + 1 >= argv.length) throw new Error(`option --${key} needs a value`);
          flags[key] = argv[++i];
        } else {
          flags[key] = true;
        }
      }
    } else {
      positionals.push(a);
    }
  }
  return { flags, positionals };
}

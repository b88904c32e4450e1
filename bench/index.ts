/**
 * Benchmarks: `npm run bench -- <name> [--json]`. Each prints named figures;
 * nothing here is asserted, and no test depends on timing.
 * Each benchmark lives in bench/<name>.ts and exports `run(argv): Promise<Record<string, number | string>>`.
 */
type Bench = (argv: string[]) => Promise<Record<string, unknown>>;

const benches: Record<string, () => Promise<Bench>> = {
  // Benchmarks register here, one line each, e.g.
  // formats: async () => (await import('./formats')).run,
  formats: async () => (await import('./formats.js')).run,
  quant: async () => (await import('./quant.js')).run, // node16 keeps import() as ESM resolution: the .js extension is required
  quantalgo: async () => (await import('./quant-algorithms.js')).run,
  stats: async () => (await import('./stats.js')).run,
  convert: async () => (await import('./convert.js')).run,
  'convert-gguf': async () => (await import('./convert-gguf.js')).run,
  'convert-onnx': async () => (await import('./convert-onnx.js')).run,
  'convert-hf-gguf': async () => (await import('./convert-hf-gguf.js')).run,
  runtime: async () => (await import('./runtime.js')).run,
  wizard: async () => (await import('./wizard.js')).run,
};

async function main(): Promise<void> {
  const [name, ...rest] = process.argv.slice(2);
  const json = rest.includes('--json');
  const names = name && name !== '--json' ? [name] : Object.keys(benches);
  for (const n of names) {
    const load = benches[n];
    if (!load) {
      console.error(`unknown benchmark '${n}'; known: ${Object.keys(benches).join(', ')}`);
      process.exit(2);
    }
    const figures = await (await load())(rest);
    if (json) console.log(JSON.stringify({ bench: n, ...figures }));
    else {
      console.log(`# ${n}`);
      for (const [k, v] of Object.entries(figures)) console.log(`${k.padEnd(32)} ${typeof v === 'object' ? JSON.stringify(v) : String(v)}`);
    }
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : String(e));
  process.exit(1);
});

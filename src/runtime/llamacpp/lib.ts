/**
 * llama.cpp as a library: finds the prebuilt shared objects that the npm
 * package `node-llama-cpp` ships (`@node-llama-cpp/linux-x64` etc., no build
 * or download at install time) and binds the few C functions QuantScope uses
 * through koffi (an FFI with prebuilt binaries).
 *
 * The struct layouts below are those of the llama.h in node-llama-cpp's
 * bundled llama.cpp source (node_modules/node-llama-cpp/llama/gitRelease.bundle,
 * commit 80fb11ac, the one its binaries are built from). `checkLayout` reads
 * the library's own defaults through these layouts and refuses to go on when
 * they do not come out as that llama.h says, so a different llama.cpp fails
 * loudly instead of passing garbage.
 *
 * Only the child process (child.ts) loads this module: a native crash must
 * not take the extension host, the CLI or mocha down with it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The part of koffi's API used here (its type declarations are ESM-only, this project is CommonJS). */
/* eslint-disable @typescript-eslint/no-explicit-any */
export interface Koffi {
  load(path: string): { func(name: string, ret: any, args: any[]): any };
  struct(name: string, fields: Record<string, any>): any;
  proto(decl: string): any;
  pointer(t: any): any;
  array(t: any, n: number, hint?: string): any;
  alloc(t: any, n: number): any;
  encode(ref: any, type: any, value: any): void;
  decode(ref: any, type: any): any;
  register(fn: (...a: any[]) => any, type: any): any;
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** Prebuilt package per platform, in the order we try them (CPU builds first). */
function candidatePackages(): string[] {
  const plat = process.platform === 'darwin' ? 'mac' : process.platform === 'win32' ? 'win' : process.platform;
  const arch = process.arch;
  if (plat === 'mac') return arch === 'arm64' ? ['mac-arm64-metal'] : ['mac-x64'];
  return [`${plat}-${arch}`, `${plat}-${arch}-vulkan`, `${plat}-${arch}-cuda`];
}

export interface LlamaLibPaths {
  dir: string;
  llama: string;
  ggml: string;
  ggmlBase: string;
}

/** Where the llama.cpp shared libraries are, or a clear error naming what is missing. */
export function locateLlamaLibs(from = __dirname): LlamaLibPaths {
  const tried: string[] = [];
  for (const pkg of candidatePackages()) {
    // The prebuilt packages restrict `exports`, so look for the folder itself on the module search path.
    const searchDirs = [...(require.resolve.paths('@node-llama-cpp/x') ?? []), path.join(from, 'node_modules'), path.join(process.cwd(), 'node_modules')];
    const pkgDir = searchDirs.map((d) => path.join(d, '@node-llama-cpp', pkg)).find((d) => fs.existsSync(path.join(d, 'bins')));
    if (!pkgDir) {
      tried.push(`@node-llama-cpp/${pkg} (not installed)`);
      continue;
    }
    const binsRoot = path.join(pkgDir, 'bins');
    for (const sub of fs.existsSync(binsRoot) ? fs.readdirSync(binsRoot) : []) {
      const dir = path.join(binsRoot, sub);
      const files = fs.readdirSync(dir);
      const pick = (re: RegExp): string | undefined => files.find((f) => re.test(f));
      const ext = process.platform === 'darwin' ? 'dylib' : process.platform === 'win32' ? 'dll' : 'so';
      const llama = pick(new RegExp(`^(lib)?llama(\\.v[\\d.]+)?\\.${ext}$`));
      const ggml = pick(new RegExp(`^(lib)?ggml(\\.v[\\d.]+)?\\.${ext}$`));
      const ggmlBase = pick(new RegExp(`^(lib)?ggml-base(\\.v[\\d.]+)?\\.${ext}$`));
      if (llama && ggml && ggmlBase) {
        return { dir, llama: path.join(dir, llama), ggml: path.join(dir, ggml), ggmlBase: path.join(dir, ggmlBase) };
      }
      tried.push(`${dir} (no libllama/libggml/libggml-base)`);
    }
  }
  throw new Error(`llama.cpp libraries not found: install the devDependency node-llama-cpp (tried ${tried.join('; ')})`);
}

/** ggml_type ids used in the structs (GGML_TYPE_COUNT means "not set"). */
export const GGML_TYPE_COUNT = 43;

export interface LlamaLib {
  koffi: Koffi;
  paths: LlamaLibPaths;
  llama_model_quantize_default_params(): QuantizeParams;
  llama_model_quantize(inp: string, out: string, params: QuantizeParams): number;
  ggml_quantize_init(type: number): void;
  ggml_quantize_chunk(type: number, src: Float32Array, dst: Uint8Array, start: bigint | number, nrows: bigint | number,
    nPerRow: bigint | number, imatrix: Float32Array | null): number;
  ggml_backend_load_all_from_path(dir: string): void;
  llama_backend_init(): void;
  llama_model_default_params(): Record<string, unknown>;
  llama_context_default_params(): Record<string, unknown>;
  llama_model_load_from_file(file: string, params: Record<string, unknown>): unknown;
  llama_model_free(model: unknown): void;
  llama_model_get_vocab(model: unknown): unknown;
  llama_vocab_n_tokens(vocab: unknown): number;
  llama_tokenize(vocab: unknown, text: Buffer, textLen: number, tokens: Int32Array, nTokensMax: number, addSpecial: boolean, parseSpecial: boolean): number;
  llama_init_from_model(model: unknown, params: Record<string, unknown>): unknown;
  llama_free(ctx: unknown): void;
  llama_batch_init(nTokens: number, embd: number, nSeqMax: number): Record<string, unknown>;
  llama_batch_free(batch: Record<string, unknown>): void;
  llama_decode(ctx: unknown, batch: Record<string, unknown>): number;
  llama_get_logits_ith(ctx: unknown, i: number): unknown;
  llama_log_set(cb: unknown, user: unknown): void;
  ggml_init(params: { mem_size: number; mem_buffer: unknown; no_alloc: boolean }): unknown;
  ggml_free(ctx: unknown): void;
  ggml_new_tensor(ctx: unknown, type: number, nDims: number, ne: number[]): unknown;
  ggml_set_name(t: unknown, name: string): unknown;
  /** llama-ext.h (C++ names): the quantizer's type choice on a mock model, for testing. */
  llama_quant_model_from_metadata(desc: Record<string, unknown>): unknown;
  /** `params` must be stable memory (koffi.alloc of types.quantizeParams): the state keeps the pointer. */
  llama_quant_init(model: unknown, params: unknown): unknown;
  llama_quant_free(qs: unknown): void;
  llama_quant_tensor_allows_quantization(qs: unknown, t: unknown): boolean;
  llama_quant_compute_types(qs: unknown, ftype: number, tensors: unknown[], out: Int32Array, n: number): void;
  /** Struct types, for callers that build memory by hand. */
  types: { imatrixData: unknown; tensorOverride: unknown; logCallback: unknown; quantizeParams: unknown };
}

export interface QuantizeParams {
  nthread: number;
  ftype: number;
  output_tensor_type: number;
  token_embedding_type: number;
  allow_requantize: boolean;
  quantize_output_tensor: boolean;
  only_copy: boolean;
  pure: boolean;
  keep_split: boolean;
  dry_run: boolean;
  imatrix: unknown;
  kv_overrides: unknown;
  tt_overrides: unknown;
  prune_layers: unknown;
  max_buf_size: number | bigint;
}

let loaded: LlamaLib | undefined;

export function loadLlamaLib(): LlamaLib {
  if (loaded) return loaded;
  const koffi = require('koffi') as Koffi;
  const paths = locateLlamaLibs();
  // libllama's RUNPATH is $ORIGIN, so loading it by full path finds its siblings.
  const base = koffi.load(paths.ggmlBase);
  const ggml = koffi.load(paths.ggml);
  const llama = koffi.load(paths.llama);

  const QuantizeParamsT = koffi.struct('llama_model_quantize_params', {
    nthread: 'int32_t',
    ftype: 'int',
    output_tensor_type: 'int',
    token_embedding_type: 'int',
    allow_requantize: 'bool',
    quantize_output_tensor: 'bool',
    only_copy: 'bool',
    pure: 'bool',
    keep_split: 'bool',
    dry_run: 'bool',
    imatrix: 'void *',
    kv_overrides: 'void *',
    tt_overrides: 'void *',
    prune_layers: 'void *',
    max_buf_size: 'size_t',
  });
  const imatrixData = koffi.struct('llama_model_imatrix_data', { name: 'void *', data: 'void *', size: 'size_t' });
  const tensorOverride = koffi.struct('llama_model_tensor_override', { pattern: 'void *', type: 'int' });
  const ModelParamsT = koffi.struct('llama_model_params', {
    devices: 'void *',
    tensor_buft_overrides: 'void *',
    n_gpu_layers: 'int32_t',
    split_mode: 'int',
    load_mode: 'int',
    lazy_mode: 'int',
    main_gpu: 'int32_t',
    tensor_split: 'void *',
    progress_callback: 'void *',
    progress_callback_user_data: 'void *',
    kv_overrides: 'void *',
    vocab_only: 'bool',
    check_tensors: 'bool',
    use_extra_bufts: 'bool',
    no_host: 'bool',
    no_alloc: 'bool',
    load_mtp: 'bool',
  });
  const ContextParamsT = koffi.struct('llama_context_params', {
    n_ctx: 'uint32_t',
    n_batch: 'uint32_t',
    n_ubatch: 'uint32_t',
    n_seq_max: 'uint32_t',
    n_rs_seq: 'uint32_t',
    n_outputs_max: 'uint32_t',
    n_outputs_max_per_seq: 'uint32_t',
    n_threads: 'int32_t',
    n_threads_batch: 'int32_t',
    ctx_type: 'int',
    rope_scaling_type: 'int',
    pooling_type: 'int',
    attention_type: 'int',
    flash_attn_type: 'int',
    rope_freq_base: 'float',
    rope_freq_scale: 'float',
    yarn_ext_factor: 'float',
    yarn_attn_factor: 'float',
    yarn_beta_fast: 'float',
    yarn_beta_slow: 'float',
    yarn_orig_ctx: 'uint32_t',
    defrag_thold: 'float',
    cb_eval: 'void *',
    cb_eval_user_data: 'void *',
    type_k: 'int',
    type_v: 'int',
    abort_callback: 'void *',
    abort_callback_data: 'void *',
    embeddings: 'bool',
    offload_kqv: 'bool',
    no_perf: 'bool',
    op_offload: 'bool',
    swa_full: 'bool',
    kv_unified: 'bool',
    samplers: 'void *',
    n_samplers: 'size_t',
    ctx_other: 'void *',
  });
  const BatchT = koffi.struct('llama_batch', {
    n_tokens: 'int32_t',
    token: 'void *',
    embd: 'void *',
    pos: 'void *',
    n_seq_id: 'void *',
    seq_id: 'void *',
    logits: 'void *',
  });
  const logCallback = koffi.proto('void ggml_log_callback(int level, const char *text, void *user)');
  const InitParamsT = koffi.struct('ggml_init_params', { mem_size: 'size_t', mem_buffer: 'void *', no_alloc: 'bool' });
  const ModelDescT = koffi.struct('llama_quant_model_desc', {
    architecture: 'str', n_embd: 'uint32_t', n_ff: 'uint32_t', n_layer: 'uint32_t', n_head: 'uint32_t',
    n_head_kv: 'uint32_t', n_expert: 'uint32_t', n_embd_head_k: 'uint32_t', n_embd_head_v: 'uint32_t',
  });

  const lib: LlamaLib = {
    koffi, paths,
    llama_model_quantize_default_params: llama.func('llama_model_quantize_default_params', QuantizeParamsT, []),
    llama_model_quantize: llama.func('llama_model_quantize', 'uint32_t', ['str', 'str', koffi.pointer(QuantizeParamsT)]),
    ggml_quantize_init: base.func('ggml_quantize_init', 'void', ['int']),
    ggml_quantize_chunk: base.func('ggml_quantize_chunk', 'size_t',
      ['int', 'float *', 'void *', 'int64_t', 'int64_t', 'int64_t', 'float *']),
    ggml_backend_load_all_from_path: ggml.func('ggml_backend_load_all_from_path', 'void', ['str']),
    llama_backend_init: llama.func('llama_backend_init', 'void', []),
    llama_model_default_params: llama.func('llama_model_default_params', ModelParamsT, []),
    llama_context_default_params: llama.func('llama_context_default_params', ContextParamsT, []),
    llama_model_load_from_file: llama.func('llama_model_load_from_file', 'void *', ['str', ModelParamsT]),
    llama_model_free: llama.func('llama_model_free', 'void', ['void *']),
    llama_model_get_vocab: llama.func('llama_model_get_vocab', 'void *', ['void *']),
    llama_vocab_n_tokens: llama.func('llama_vocab_n_tokens', 'int32_t', ['void *']),
    llama_tokenize: llama.func('llama_tokenize', 'int32_t', ['void *', 'const uint8_t *', 'int32_t', '_Out_ int32_t *', 'int32_t', 'bool', 'bool']),
    llama_init_from_model: llama.func('llama_init_from_model', 'void *', ['void *', ContextParamsT]),
    llama_free: llama.func('llama_free', 'void', ['void *']),
    llama_batch_init: llama.func('llama_batch_init', BatchT, ['int32_t', 'int32_t', 'int32_t']),
    llama_batch_free: llama.func('llama_batch_free', 'void', [BatchT]),
    llama_decode: llama.func('llama_decode', 'int32_t', ['void *', BatchT]),
    llama_get_logits_ith: llama.func('llama_get_logits_ith', 'void *', ['void *', 'int32_t']),
    llama_log_set: llama.func('llama_log_set', 'void', [koffi.pointer(logCallback), 'void *']),
    ggml_init: base.func('ggml_init', 'void *', [InitParamsT]),
    ggml_free: base.func('ggml_free', 'void', ['void *']),
    ggml_new_tensor: base.func('ggml_new_tensor', 'void *', ['void *', 'int', 'int', 'int64_t *']),
    ggml_set_name: base.func('ggml_set_name', 'void *', ['void *', 'str']),
    llama_quant_model_from_metadata: llama.func('_Z31llama_quant_model_from_metadataPK22llama_quant_model_desc', 'void *', [koffi.pointer(ModelDescT)]),
    llama_quant_init: llama.func('_Z16llama_quant_initPK11llama_modelPK27llama_model_quantize_params', 'void *', ['void *', 'void *']),
    llama_quant_free: llama.func('_Z16llama_quant_freeP19quantize_state_impl', 'void', ['void *']),
    llama_quant_tensor_allows_quantization: llama.func('_Z38llama_quant_tensor_allows_quantizationPK19quantize_state_implPK11ggml_tensor', 'bool', ['void *', 'void *']),
    llama_quant_compute_types: llama.func('_Z25llama_quant_compute_typesP19quantize_state_impl11llama_ftypePP11ggml_tensorP9ggml_typem', 'void',
      ['void *', 'int', 'void **', '_Out_ int *', 'size_t']),
    types: { imatrixData, tensorOverride, logCallback, quantizeParams: QuantizeParamsT },
  } as unknown as LlamaLib;
  checkLayout(lib);
  loaded = lib;
  return lib;
}

/** The defaults llama.h documents, read back through our struct layouts. */
function checkLayout(lib: LlamaLib): void {
  const q = lib.llama_model_quantize_default_params();
  const maxBuf = BigInt(q.max_buf_size as number | bigint);
  const ok = q.nthread === 0 && q.ftype === 7 && q.output_tensor_type === GGML_TYPE_COUNT &&
    q.token_embedding_type === GGML_TYPE_COUNT && q.allow_requantize === false && q.quantize_output_tensor === true &&
    q.pure === false && q.dry_run === false && maxBuf === 8n * 1024n * 1024n * 1024n;
  if (!ok) {
    throw new Error(`llama.cpp at ${lib.paths.llama} does not have the llama_model_quantize_params layout this code was written for ` +
      `(defaults read back as ${JSON.stringify(q, (_k, v: unknown) => typeof v === 'bigint' ? String(v) : v)})`);
  }
  const c = lib.llama_context_default_params();
  if (c.n_ctx !== 512 || c.n_batch !== 2048 || c.type_k !== 1 || c.type_v !== 1 || c.flash_attn_type !== -1) {
    throw new Error(`llama.cpp at ${lib.paths.llama} does not have the llama_context_params layout this code was written for ` +
      `(n_ctx ${String(c.n_ctx)}, n_batch ${String(c.n_batch)}, type_k ${String(c.type_k)}, flash_attn_type ${String(c.flash_attn_type)})`);
  }
}

/** Silence llama.cpp's logging (or collect it) for the lifetime of the process. */
export function setLlamaLog(lib: LlamaLib, sink: ((level: number, text: string) => void) | null): void {
  const cb = lib.koffi.register((level: number, text: string) => { if (sink) sink(level, text); }, lib.koffi.pointer(lib.types.logCallback));
  lib.llama_log_set(cb, null);
}

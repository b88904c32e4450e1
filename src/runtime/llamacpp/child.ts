/**
 * The llama.cpp child process: loads the native libraries, serves one request
 * from its parent (client.ts) over IPC and exits. A crash or abort inside
 * llama.cpp ends only this process; the parent reports it as an error.
 */
import { loadLlamaLib, setLlamaLog, LlamaLib, GGML_TYPE_COUNT, Koffi } from './lib';
import type {
  ChildMessage, ComputeTypesReply, ComputeTypesRequest, EvaluateReply, EvaluateRequest, LlamaReply, LlamaRequest, QuantizeReply, QuantizeRequest,
  TokenizeReply, TokenizeRequest,
} from './protocol';

/** Stable C memory holding a NUL-terminated copy of `s`. */
function cString(koffi: Koffi, s: string): unknown {
  const b = Buffer.from(`${s}\0`, 'utf8');
  const p = koffi.alloc('uint8_t', b.length);
  koffi.encode(p, koffi.array('uint8_t', b.length), [...b]);
  return p;
}

function cFloats(koffi: Koffi, a: Float32Array): unknown {
  const p = koffi.alloc('float', Math.max(1, a.length));
  if (a.length) koffi.encode(p, koffi.array('float', a.length), a);
  return p;
}

function quantizeParams(lib: LlamaLib, r: { ftype: number; pure?: boolean; tensorTypes?: { pattern: string; type: number }[] }, keep: unknown[]) {
  const { koffi } = lib;
  const p = lib.llama_model_quantize_default_params();
  p.ftype = r.ftype;
  p.pure = !!r.pure;
  if (r.tensorTypes?.length) {
    const T = lib.types.tensorOverride;
    const rows = r.tensorTypes.map((o) => ({ pattern: cString(koffi, o.pattern), type: o.type }));
    rows.push({ pattern: null, type: GGML_TYPE_COUNT });
    const mem = koffi.alloc(T, rows.length);
    koffi.encode(mem, koffi.array(T, rows.length), rows);
    keep.push(rows, mem);
    p.tt_overrides = mem;
  }
  return p;
}

function computeTypes(lib: LlamaLib, r: ComputeTypesRequest): ComputeTypesReply {
  const keep: unknown[] = [];
  const p = quantizeParams(lib, r, keep);
  const m = r.model;
  const model = lib.llama_quant_model_from_metadata({
    architecture: m.arch, n_embd: m.nEmbd, n_ff: m.nFf, n_layer: m.nLayer, n_head: m.nHead, n_head_kv: m.nHeadKv,
    n_expert: m.nExpert, n_embd_head_k: m.nEmbdHead, n_embd_head_v: m.nEmbdHead,
  });
  const ctx = lib.ggml_init({ mem_size: 1024 * 1024 + r.tensors.length * 1024, mem_buffer: null, no_alloc: true });
  // The state keeps a pointer to the parameters: give it memory that outlives this call.
  const pmem = lib.koffi.alloc(lib.types.quantizeParams, 1);
  lib.koffi.encode(pmem, lib.types.quantizeParams, p);
  keep.push(pmem);
  const qs = lib.llama_quant_init(model, pmem);
  try {
    const ts = r.tensors.map((t) => {
      const g = lib.ggml_new_tensor(ctx, t.type, t.ne.length, t.ne);
      lib.ggml_set_name(g, t.name);
      return g;
    });
    const allowed = ts.map((g) => lib.llama_quant_tensor_allows_quantization(qs, g));
    const sel = ts.filter((_g, i) => allowed[i]);
    const out = new Int32Array(Math.max(1, sel.length));
    if (sel.length) lib.llama_quant_compute_types(qs, r.ftype, sel, out, sel.length);
    let k = 0;
    return { op: 'computeTypes', types: allowed.map((a) => (a ? out[k++] : -1)) };
  } finally {
    lib.llama_quant_free(qs);
    lib.ggml_free(ctx);
    lib.llama_model_free(model);
    keep.length = 0;
  }
}

function quantize(lib: LlamaLib, r: QuantizeRequest): LlamaReply {
  const keep: unknown[] = [];
  const p = quantizeParams(lib, r, keep);
  const { koffi } = lib;
  p.nthread = r.nthread ?? 1;
  p.allow_requantize = !!r.allowRequantize;
  p.output_tensor_type = r.outputTensorType ?? GGML_TYPE_COUNT;
  p.token_embedding_type = r.tokenEmbeddingType ?? GGML_TYPE_COUNT;
  if (r.imatrix?.length) {
    const T = lib.types.imatrixData;
    const rows = r.imatrix.map((e) => ({ name: cString(koffi, e.name), data: cFloats(koffi, e.data), size: e.data.length }));
    rows.push({ name: null, data: null, size: 0 });
    const mem = koffi.alloc(T, rows.length);
    koffi.encode(mem, koffi.array(T, rows.length), rows);
    keep.push(rows, mem);
    p.imatrix = mem;
  }
  const t0 = process.hrtime.bigint();
  const status = lib.llama_model_quantize(r.input, r.output, p);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  keep.length = 0;
  return { op: 'quantize', status, seconds };
}

function evaluate(lib: LlamaLib, r: EvaluateRequest): EvaluateReply {
  const { koffi } = lib;
  lib.ggml_backend_load_all_from_path(lib.paths.dir);
  lib.llama_backend_init();
  const mp = lib.llama_model_default_params();
  mp.n_gpu_layers = 0;
  const model = lib.llama_model_load_from_file(r.file, mp);
  if (!model) throw new Error(`llama.cpp could not load ${r.file}`);
  try {
    const nVocab = lib.llama_vocab_n_tokens(lib.llama_model_get_vocab(model));
    const n = r.tokens.length;
    const cp = lib.llama_context_default_params();
    cp.n_ctx = Math.max(n, 16);
    cp.n_batch = Math.max(n, 16);
    cp.n_ubatch = Math.max(n, 16);
    cp.n_threads = r.nThreads;
    cp.n_threads_batch = r.nThreads;
    if (r.f32KvCache !== false) {
      cp.type_k = 0; // GGML_TYPE_F32
      cp.type_v = 0;
      cp.flash_attn_type = 0; // disabled: the F32 cache is read by the plain attention path
    }
    const ctx = lib.llama_init_from_model(model, cp);
    if (!ctx) throw new Error(`llama.cpp could not create a context for ${r.file}`);
    try {
      const batch = lib.llama_batch_init(n, 0, 1);
      try {
        batch.n_tokens = n;
        koffi.encode(batch.token, koffi.array('int32_t', n), r.tokens);
        koffi.encode(batch.pos, koffi.array('int32_t', n), r.tokens.map((_t, i) => i));
        koffi.encode(batch.n_seq_id, koffi.array('int32_t', n), new Array<number>(n).fill(1));
        const seqPtrs = koffi.decode(batch.seq_id, koffi.array('void *', n)) as unknown[];
        for (const sp of seqPtrs) koffi.encode(sp, 'int32_t', 0);
        koffi.encode(batch.logits, koffi.array('int8_t', n), new Array<number>(n).fill(1));
        const rc = lib.llama_decode(ctx, batch);
        if (rc !== 0) throw new Error(`llama_decode returned ${rc} for ${r.file}`);
        const logits = new Float32Array(n * nVocab);
        for (let i = 0; i < n; i++) {
          const row = lib.llama_get_logits_ith(ctx, i);
          if (!row) throw new Error(`llama.cpp returned no logits for position ${i}`);
          logits.set(koffi.decode(row, koffi.array('float', nVocab, 'Typed')) as Float32Array, i * nVocab);
        }
        return { op: 'evaluate', nVocab, logits };
      } finally {
        lib.llama_batch_free(batch);
      }
    } finally {
      lib.llama_free(ctx);
    }
  } finally {
    lib.llama_model_free(model);
  }
}

function tokenize(lib: LlamaLib, r: TokenizeRequest): TokenizeReply {
  lib.ggml_backend_load_all_from_path(lib.paths.dir);
  lib.llama_backend_init();
  const mp = lib.llama_model_default_params();
  mp.n_gpu_layers = 0;
  mp.vocab_only = true;
  const model = lib.llama_model_load_from_file(r.file, mp);
  if (!model) throw new Error(`llama.cpp could not load ${r.file}`);
  try {
    const vocab = lib.llama_model_get_vocab(model);
    return {
      op: 'tokenize',
      tokens: r.texts.map((text) => {
        const b = Buffer.from(text, 'utf8');
        let out = new Int32Array(b.length + 8);
        let n = lib.llama_tokenize(vocab, b, b.length, out, out.length, r.addSpecial, r.parseSpecial);
        if (n < 0) {
          // Too small: llama_tokenize returns minus the count it needs.
          out = new Int32Array(-n);
          n = lib.llama_tokenize(vocab, b, b.length, out, out.length, r.addSpecial, r.parseSpecial);
        }
        if (n < 0) throw new Error(`llama_tokenize failed (${n}) on a ${b.length}-byte text`);
        return Array.from(out.subarray(0, n));
      }),
    };
  } finally {
    lib.llama_model_free(model);
  }
}

function serve(req: LlamaRequest): LlamaReply {
  const lib = loadLlamaLib();
  const logs: string[] = [];
  setLlamaLog(lib, process.env.QUANTSCOPE_LLAMA_LOG ? (_l, t) => process.stderr.write(t) : (_l, t) => { if (logs.length < 200) logs.push(t); });
  switch (req.op) {
    case 'info':
      return { op: 'info', libraryDir: lib.paths.dir, llamaLibrary: lib.paths.llama };
    case 'quantize': {
      const rep = quantize(lib, req) as QuantizeReply;
      if (rep.status !== 0) throw new Error(`llama_model_quantize(${req.input}) failed: ${logs.filter((l) => /error|fail/i.test(l)).join('').trim() || `status ${rep.status}`}`);
      return rep;
    }
    case 'quantizeChunk': {
      if (req.src.length !== req.nrows * req.nPerRow) throw new Error(`quantizeChunk: ${req.src.length} values for ${req.nrows}x${req.nPerRow}`);
      lib.ggml_quantize_init(req.type);
      // Worst case ggml row size is below 2 bytes per value for every type but F32.
      const dst = new Uint8Array(req.src.length * 4 + 1024);
      const n = lib.ggml_quantize_chunk(req.type, req.src, dst, 0, req.nrows, req.nPerRow, req.imatrix ?? null);
      return { op: 'quantizeChunk', bytes: dst.slice(0, Number(n)) };
    }
    case 'evaluate':
      return evaluate(lib, req);
    case 'computeTypes':
      return computeTypes(lib, req);
    case 'tokenize':
      return tokenize(lib, req);
  }
}

process.on('message', (req: LlamaRequest) => {
  let msg: ChildMessage;
  try {
    msg = { reply: serve(req) };
  } catch (e) {
    msg = { error: (e as Error).message };
  }
  process.send!(msg, () => process.exit(0));
});

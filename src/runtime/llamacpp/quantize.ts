/**
 * llama.cpp's own quantizers, for reference and verification:
 * `llama_model_quantize` (a whole GGUF file, the `llama-quantize` tool's
 * engine) and `ggml_quantize_chunk` (rows of float32 into one ggml type).
 * Both run in a child process (client.ts).
 */
import { callLlama, LlamaCallOptions } from './client';
import type { LlamaQuantizeOptions } from './protocol';

export type { LlamaQuantizeOptions };

/** Quantize `input` to `output` with llama.cpp; resolves with llama.cpp's own wall time in seconds. */
export async function llamaModelQuantize(input: string, output: string, o: LlamaQuantizeOptions, call: LlamaCallOptions = {}): Promise<number> {
  const r = await callLlama({ ...o, op: 'quantize', input, output, nthread: o.nthread ?? 1 }, call);
  return r.seconds;
}

/**
 * ggml's bytes for `nrows` rows of `nPerRow` values in ggml type `type` (id),
 * with optional per-column importance (`nPerRow` values).
 */
export async function ggmlQuantizeChunk(
  type: number, src: Float32Array, nrows: number, nPerRow: number, imatrix?: Float32Array, call: LlamaCallOptions = {},
): Promise<Uint8Array> {
  const r = await callLlama({ op: 'quantizeChunk', type, src, nrows, nPerRow, imatrix }, call);
  return r.bytes;
}

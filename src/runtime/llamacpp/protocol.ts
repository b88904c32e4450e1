/**
 * Messages between QuantScope and the llama.cpp child process (child.ts).
 * One request per child: the process loads the libraries, answers, exits.
 */

/** What llama_model_quantize is asked to do (llama-quantize's options). */
export interface LlamaQuantizeOptions {
  /** llama_ftype number (presets.ts). */
  ftype: number;
  /** Threads (llama.cpp's nthread; <= 0 means all cores). Default 1. */
  nthread?: number;
  pure?: boolean;
  allowRequantize?: boolean;
  /** ggml type ids; omitted means llama.cpp's own choice. */
  outputTensorType?: number;
  tokenEmbeddingType?: number;
  /** --tensor-type overrides, regex source and ggml type id, first match wins. */
  tensorTypes?: { pattern: string; type: number }[];
  /** Per-tensor importance (the imatrix entries llama-quantize passes). */
  imatrix?: { name: string; data: Float32Array }[];
}

export interface QuantizeRequest extends LlamaQuantizeOptions {
  op: 'quantize';
  input: string;
  output: string;
}

export interface QuantizeChunkRequest {
  op: 'quantizeChunk';
  /** ggml type id. */
  type: number;
  src: Float32Array;
  nrows: number;
  nPerRow: number;
  imatrix?: Float32Array;
}

export interface EvaluateRequest {
  op: 'evaluate';
  file: string;
  tokens: number[];
  nThreads: number;
  /** KV cache in F32 (default) rather than llama.cpp's F16 default. */
  f32KvCache?: boolean;
}

/** llama.cpp's per-tensor type choice on a mock model (llama-ext.h's testing API). */
export interface ComputeTypesRequest {
  op: 'computeTypes';
  model: { arch: string; nEmbd: number; nFf: number; nLayer: number; nHead: number; nHeadKv: number; nExpert: number; nEmbdHead: number };
  ftype: number;
  pure?: boolean;
  tensorTypes?: { pattern: string; type: number }[];
  /** In the order llama.cpp walks them; ne in ggml order; type is the source ggml type id. */
  tensors: { name: string; ne: number[]; type: number }[];
}

/** Tokenize texts with a model's vocabulary (llama_tokenize; the model is loaded vocab-only). */
export interface TokenizeRequest {
  op: 'tokenize';
  file: string;
  texts: string[];
  /** Add BOS/EOS as the model's settings say. */
  addSpecial: boolean;
  /** Recognise special and control tokens written in the text. */
  parseSpecial: boolean;
}

export interface InfoRequest {
  op: 'info';
}

export type LlamaRequest = QuantizeRequest | QuantizeChunkRequest | EvaluateRequest | ComputeTypesRequest | TokenizeRequest | InfoRequest;

export interface QuantizeReply { op: 'quantize'; status: number; seconds: number }
export interface QuantizeChunkReply { op: 'quantizeChunk'; bytes: Uint8Array }
export interface EvaluateReply {
  op: 'evaluate';
  nVocab: number;
  /** Row-major [tokens.length][nVocab]. */
  logits: Float32Array;
}
/** Per tensor: the chosen ggml type id, or -1 where llama.cpp does not quantize it. */
export interface ComputeTypesReply { op: 'computeTypes'; types: number[] }
export interface TokenizeReply { op: 'tokenize'; tokens: number[][] }
export interface InfoReply { op: 'info'; libraryDir: string; llamaLibrary: string }

export type LlamaReply = QuantizeReply | QuantizeChunkReply | EvaluateReply | ComputeTypesReply | TokenizeReply | InfoReply;

export interface ChildMessage {
  reply?: LlamaReply;
  error?: string;
}

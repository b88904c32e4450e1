/**
 * The one interface every model format is read through. Opening a file reads
 * its header / index only; tensor bytes are read on demand, by offset, in
 * bounded chunks. Nothing here imports `vscode`.
 */

/** Element types QuantScope knows. GGUF block-quantized types are `gguf:<name>`. */
export type ScalarDType =
  | 'f64' | 'f32' | 'f16' | 'bf16'
  | 'f8_e4m3fn' | 'f8_e4m3fnuz' | 'f8_e5m2' | 'f8_e5m2fnuz'
  | 'i64' | 'i32' | 'i16' | 'i8' | 'u64' | 'u32' | 'u16' | 'u8'
  | 'i4' | 'u4' | 'bool' | 'string' | 'c64' | 'c128';
/** `q:<scheme>`: a dequantized view of a packed checkpoint layout (GPTQ, AWQ, compressed-tensors, bitsandbytes; src/formats/safetensors/quantizedView.ts). */
export type DType = ScalarDType | `gguf:${string}` | `q:${string}`;

export type ModelFormat = 'onnx' | 'safetensors' | 'gguf';

/** Where a tensor's bytes live on disk. `file` is an absolute path. */
export interface DiskLocation {
  kind: 'disk';
  file: string;
  offset: number;
  length: number;
}
/** Small tensors stored in typed protobuf fields (ONNX float_data etc.) are kept decoded in memory. */
export interface InlineLocation {
  kind: 'inline';
  bytes: Uint8Array; // little-endian packed bytes in the tensor's dtype
}
export type TensorLocation = DiskLocation | InlineLocation;

/** A node that consumes a weight. */
export interface ConsumerRef {
  node: string;
  opType: string;
  inputIndex: number;
  /** Graph path, e.g. "main" or "main/If_0/then_branch". */
  graph: string;
}

/** What a weight belongs to. */
export interface LayerLink {
  consumers: ConsumerRef[];
  /** Op type of the main consumer (Conv, MatMul, Gemm, LSTM, Gather, ...), or a role for non-graph formats. */
  opType?: string;
  /** Axis of the output channel, when the layer has one. */
  outputChannelAxis?: number;
  /** Transformer block index parsed from the name, when there is one. */
  block?: number;
  /** Role inside a block: q, k, v, o, qkv, gate, up, down, ffn_in, ffn_out, norm, embed, lm_head, ... */
  role?: string;
  /** Human name for grouping ("blk.12", or the ONNX node name). */
  layerName?: string;
}

export interface TensorInfo {
  name: string;
  dtype: DType;
  shape: number[];
  /** Number of elements (product of shape, 1 for scalars). */
  numel: number;
  /** Bytes on disk (or inline). */
  byteLength: number;
  location: TensorLocation;
  /** Where in the model the tensor was declared. */
  source: 'initializer' | 'constant' | 'tensor';
  /** ONNX: graph path it is declared in ("main", "main/If_0/then_branch"); names are unique only within a graph. */
  graph?: string;
  layer: LayerLink;
}

export type MetadataValue =
  | string | number | bigint | boolean
  | MetadataValue[]
  | { [k: string]: MetadataValue };

export interface GraphNode {
  name: string;
  opType: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attributes: Record<string, MetadataValue>;
  /** Graph path this node lives in. */
  graph: string;
}

export interface GraphInfo {
  nodes: GraphNode[];
  inputs: { name: string; dtype?: DType; shape?: (number | string)[] }[];
  outputs: { name: string; dtype?: DType; shape?: (number | string)[] }[];
  opsetImports: { domain: string; version: number }[];
}

export interface ModelFile {
  readonly path: string;
  readonly format: ModelFormat;
  /** e.g. "IR 8 / opset 13", "GGUF v3", "safetensors". */
  readonly formatVersion: string;
  /** Bytes on disk including external data files / shards. */
  readonly sizeOnDisk: number;
  /** All files that make up the model (the model file first). */
  readonly files: string[];
  readonly metadata: Record<string, MetadataValue>;
  readonly tensors: readonly TensorInfo[];
  readonly graph?: GraphInfo;

  /** Read `length` raw bytes of a tensor starting at byte `offset` within the tensor. Bounds-checked. */
  readBytes(t: TensorInfo, offset?: number, length?: number): Uint8Array;
  /**
   * Dequantize elements [start, start+count) to float32. For block-quantized
   * types start and count are rounded out to whole blocks internally.
   */
  readFloat32(t: TensorInfo, start?: number, count?: number): Float32Array;
  /** Iterate a tensor's elements as float32 in chunks of about `chunkElements` (default 32768). */
  iterateFloat32(t: TensorInfo, chunkElements?: number): Iterable<{ start: number; values: Float32Array }>;
  close(): void;
}

/** Every problem with a model file is one of these: it names the file, the part, and what is wrong. */
export class FormatError extends Error {
  constructor(
    readonly file: string,
    readonly where: string,
    readonly problem: string,
  ) {
    super(`${file}: ${where}: ${problem}`);
    this.name = 'FormatError';
  }
}

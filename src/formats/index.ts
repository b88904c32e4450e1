/**
 * One entry point for every model file: `openModel(path)` claims the format
 * by magic bytes first and the file name second, then hands the file to its
 * reader. Opening reads headers and indexes only; tensor data stays on disk.
 */
import * as path from 'node:path';
import { FormatError, ModelFile } from './types';
import { fileSize, readAt } from './lazyModelFile';
import { matchGguf, openGguf } from './gguf/reader';
import { matchSafetensors, openSafetensors, openSafetensorsIndex } from './safetensors/reader';
import { matchOnnx } from './onnx/reader';
import { openOnnxDequantized } from './onnx/quantizedView';

export { FormatError } from './types';
export type { ModelFile, TensorInfo, DType, LayerLink } from './types';

export type DetectedFormat = 'onnx' | 'safetensors' | 'safetensors-index' | 'gguf';

export function detectFormat(file: string): DetectedFormat {
  const size = fileSize(file);
  const head = readAt(file, 0, Math.min(size, 16));
  const lower = file.toLowerCase();
  if (matchGguf(head)) return 'gguf';
  if (matchSafetensors(head, size)) return 'safetensors';
  if (lower.endsWith('.safetensors.index.json')) return 'safetensors-index';
  if (lower.endsWith('.gguf')) return 'gguf';
  if (lower.endsWith('.safetensors')) return 'safetensors';
  if (lower.endsWith('.onnx') || matchOnnx(head)) return 'onnx';
  throw new FormatError(file, 'format', 'not an ONNX, safetensors or GGUF file (unrecognised header and extension)');
}

/** Open a model file of any supported format. Throws FormatError for files it cannot read. */
export function openModel(file: string): ModelFile {
  const abs = path.resolve(file);
  switch (detectFormat(abs)) {
    case 'gguf': return openGguf(abs);
    case 'safetensors': return openSafetensors(abs);
    case 'safetensors-index': return openSafetensorsIndex(abs);
    // Quantized weights (MatMulNBits, DequantizeLinear) read as their dequantized values.
    case 'onnx': return openOnnxDequantized(abs);
  }
}

/** Sum of numel over tensors: the parameter count shown to users. */
export function parameterCount(m: ModelFile): number {
  let n = 0;
  for (const t of m.tensors) n += t.numel;
  return n;
}

import * as path from 'node:path';
import type { ModelFile, TensorInfo } from '../formats/types';
import type { ModelOverview, TensorRow } from '../shared/protocol/inspector';
import { isAnalysable } from './tensorSource';
import { configBytes, referenceConfig } from '../quant/configs';

const FLOAT = new Set(['f64', 'f32', 'f16', 'bf16']);

/** Tensors a weight-only quantizer converts: float matrices and kernels (norms and biases stay as they are). */
export function isQuantizableWeight(t: Pick<TensorInfo, 'dtype' | 'shape' | 'numel'>): boolean {
  return (FLOAT.has(t.dtype) || t.dtype.startsWith('f8_') || t.dtype.startsWith('q:')) && t.shape.length >= 2 && t.numel > 0;
}

/** Bytes of a weight under the reference INT8 config (symmetric, per output channel). */
export function int8ChannelBytes(t: Pick<TensorInfo, 'dtype' | 'shape' | 'layer'>): number {
  return configBytes(referenceConfig('int8'), t.shape, t.layer.outputChannelAxis, t.dtype);
}

/** Bytes of a weight under the reference INT4 config (asymmetric, groups of 128 along the reduction axis). */
export function int4g128Bytes(t: Pick<TensorInfo, 'dtype' | 'shape' | 'layer'>): number {
  return configBytes(referenceConfig('int4'), t.shape, t.layer.outputChannelAxis, t.dtype);
}

/** What the inspector's overview shows, from the index alone (no tensor bytes are read). */
export function buildOverview(model: ModelFile): { overview: ModelOverview; tensors: TensorRow[] } {
  const bytesByDtype: Record<string, number> = {};
  let params = 0;
  let quantizable = 0, int8 = 0, int4 = 0, kept = 0;
  const tensors: TensorRow[] = model.tensors.map((t) => {
    params += t.numel;
    bytesByDtype[t.dtype] = (bytesByDtype[t.dtype] ?? 0) + t.byteLength;
    const q = isQuantizableWeight(t);
    if (q) {
      quantizable++;
      int8 += int8ChannelBytes(t);
      int4 += int4g128Bytes(t);
    } else kept += t.byteLength;
    const row: TensorRow = {
      name: t.name,
      dtype: t.dtype,
      shape: t.shape.slice(),
      params: t.numel,
      bytes: t.byteLength,
      layer: t.layer.layerName ?? t.layer.consumers[0]?.node ?? '',
      opType: t.layer.opType ?? '',
      analysable: isAnalysable(t),
      quantizable: q,
    };
    if (t.layer.block !== undefined) row.block = t.layer.block;
    return row;
  });
  const tensorBytes = model.tensors.reduce((a, t) => a + t.byteLength, 0);
  // Whatever is not tensor data (graph, metadata, headers) is carried over unchanged.
  const other = Math.max(0, model.sizeOnDisk - tensorBytes);
  return {
    overview: {
      fileName: path.basename(model.path),
      path: model.path,
      format: model.format,
      formatVersion: model.formatVersion,
      sizeOnDisk: model.sizeOnDisk,
      tensorCount: model.tensors.length,
      parameterCount: params,
      bytesByDtype,
      metadataKeys: Object.keys(model.metadata).length,
      quantizableTensors: quantizable,
      sizeAtInt8: other + kept + int8,
      sizeAtInt4g128: other + kept + int4,
      ...(typeof model.metadata['quantization.scheme'] === 'string' ? { quantization: model.metadata['quantization.scheme'] } : {}),
    },
    tensors,
  };
}

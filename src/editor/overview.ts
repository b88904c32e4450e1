import * as path from 'node:path';
import type { ModelFile } from '../formats/types';
import type { ModelOverview, TensorRow } from '../shared/protocol';

/** What the inspector's overview shows, from the index alone (no tensor bytes are read). */
export function buildOverview(model: ModelFile): { overview: ModelOverview; tensors: TensorRow[] } {
  const bytesByDtype: Record<string, number> = {};
  let params = 0;
  const tensors: TensorRow[] = model.tensors.map((t) => {
    params += t.numel;
    bytesByDtype[t.dtype] = (bytesByDtype[t.dtype] ?? 0) + t.byteLength;
    return {
      name: t.name,
      dtype: t.dtype,
      shape: t.shape.slice(),
      params: t.numel,
      bytes: t.byteLength,
      layer: t.layer.layerName ?? t.layer.consumers[0]?.node ?? '',
      opType: t.layer.opType ?? '',
    };
  });
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
    },
    tensors,
  };
}

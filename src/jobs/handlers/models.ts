/** The models a worker has open, by path: a worker serves one analysis at a time, so a few at most. */
import { openModel } from '../../formats/index';
import type { ModelFile, TensorInfo } from '../../formats/types';
import type { FileTensorRef } from '../protocol';

const models = new Map<string, ModelFile>();

export function model(path: string): ModelFile {
  let m = models.get(path);
  if (!m) {
    if (models.size >= 4) {
      const [oldPath, old] = models.entries().next().value as [string, ModelFile];
      old.close();
      models.delete(oldPath);
    }
    m = openModel(path);
    models.set(path, m);
  }
  return m;
}

export function fileTensor(ref: FileTensorRef): { m: ModelFile; t: TensorInfo } {
  const m = model(ref.path);
  const t = m.tensors.find((x) => x.name === ref.tensor);
  if (!t) throw new Error(`${ref.path}: no tensor named '${ref.tensor}'`);
  return { m, t };
}

/**
 * A Hugging Face checkpoint folder: `config.json`, the weights as one
 * `model.safetensors` or shards tied by `model.safetensors.index.json`, and
 * the tokenizer files. Opening reads only the JSON files and the safetensors
 * headers; tensor data stays on disk and is read on demand through the
 * safetensors reader.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FormatError, ModelFile, TensorInfo } from '../types';
import { openSafetensors, openSafetensorsIndex } from '../safetensors/reader';
import { readJsonObject } from '../jsonFile';


export interface HfCheckpoint {
  dir: string;
  configPath: string;
  config: Record<string, unknown>;
  /** `architectures[0]`, else `model_type`. */
  architecture: string;
  weights: ModelFile;
  tensors: ReadonlyMap<string, TensorInfo>;
  /** tokenizer.json and tokenizer_config.json when present. */
  tokenizerPath?: string;
  tokenizerConfigPath?: string;
  close(): void;
}

/** Whether `p` looks like a checkpoint: a folder with config.json, or a .safetensors / index file beside one. */
export function isHfCheckpoint(p: string): boolean {
  try {
    const st = fs.statSync(p);
    const dir = st.isDirectory() ? p : path.dirname(p);
    if (!st.isDirectory() && !/\.safetensors(\.index\.json)?$/i.test(p)) return false;
    return fs.existsSync(path.join(dir, 'config.json'));
  } catch {
    return false;
  }
}

export function openHfCheckpoint(p: string): HfCheckpoint {
  const abs = path.resolve(p);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw new FormatError(abs, 'checkpoint', 'no such file or folder');
  }
  const dir = st.isDirectory() ? abs : path.dirname(abs);
  const configPath = path.join(dir, 'config.json');
  if (!fs.existsSync(configPath)) throw new FormatError(configPath, 'config.json', `missing: ${dir} is not a Hugging Face checkpoint folder`);
  const config = readJsonObject(configPath, 'config');
  const archs = config.architectures;
  if (archs !== undefined && (!Array.isArray(archs) || archs.some((a) => typeof a !== 'string'))) {
    throw new FormatError(configPath, 'architectures', 'is not a list of strings');
  }
  const architecture = (archs as string[] | undefined)?.[0] ?? (typeof config.model_type === 'string' ? config.model_type : '');
  if (!architecture) throw new FormatError(configPath, 'architectures', 'neither architectures nor model_type names the model');

  let weights: ModelFile;
  if (!st.isDirectory()) {
    weights = openSafetensors(abs);
  } else {
    const index = path.join(dir, 'model.safetensors.index.json');
    const single = path.join(dir, 'model.safetensors');
    if (fs.existsSync(index)) weights = openSafetensorsIndex(index);
    else if (fs.existsSync(single)) weights = openSafetensors(single, { standalone: true });
    else {
      const any = fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors')).sort();
      if (any.length !== 1) {
        throw new FormatError(dir, 'weights', any.length ? `${any.length} .safetensors files and no model.safetensors.index.json to tie them` : 'no model.safetensors or model.safetensors.index.json');
      }
      weights = openSafetensors(path.join(dir, any[0]), { standalone: true });
    }
  }
  const tensors = new Map(weights.tensors.map((t) => [t.name, t]));
  const opt = (n: string) => (fs.existsSync(path.join(dir, n)) ? path.join(dir, n) : undefined);
  return {
    dir, configPath, config, architecture, weights, tensors,
    tokenizerPath: opt('tokenizer.json'), tokenizerConfigPath: opt('tokenizer_config.json'),
    close: () => weights.close(),
  };
}

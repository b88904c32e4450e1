/**
 * Small JSON side files of model folders (config.json, tokenizer files,
 * quantization settings, shard indexes): read with a size bound checked
 * before a byte is read, strict UTF-8, and every error naming the file.
 */
import * as fs from 'node:fs';
import { FormatError } from './types';

/** config.json and the quantization settings files are small; a larger one is refused before it is read. */
export const MAX_CONFIG_BYTES = 4_000_000;

/** Read and parse a JSON file of at most `maxBytes`; `missing` says what a missing file is (undefined: an error). */
export function readJsonFile(file: string, maxBytes = MAX_CONFIG_BYTES): unknown {
  let size: number;
  try {
    size = fs.statSync(file).size;
  } catch {
    throw new FormatError(file, 'file', 'not found');
  }
  if (size > maxBytes) throw new FormatError(file, 'size', `${size} bytes exceeds the ${maxBytes}-byte limit`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(fs.readFileSync(file));
  } catch (e) {
    throw new FormatError(file, 'file', `cannot be read as UTF-8 (${(e as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(file, 'JSON', `malformed: ${(e as Error).message}`);
  }
}

/** A JSON file that must hold one object (config.json and friends). */
export function readJsonObject(file: string, what: string, maxBytes = MAX_CONFIG_BYTES): Record<string, unknown> {
  const j = readJsonFile(file, maxBytes);
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw new FormatError(file, what, 'is not a JSON object');
  return j as Record<string, unknown>;
}

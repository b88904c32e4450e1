/**
 * Text as calibration data for token-id models: the model's tokenizer.json
 * (through @huggingface/tokenizers, the Hub's own JavaScript port) turns a
 * .txt file into token ids. The tokenizer file is checked before the
 * library sees it: bounded size, bounded nesting, the fields it must have.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FormatError } from '../formats/types';

export const MAX_TOKENIZER_BYTES = 256 * 1024 * 1024;
const MAX_DEPTH = 64;

export interface TextTokenizer {
  file: string;
  encode(text: string): number[];
}

interface HfTokenizer { encode(text: string, o: { add_special_tokens: boolean }): { ids: number[] } }

/** Deepest nesting of a JSON value, walked without recursion, stopping early past `limit`. */
function depthOf(v: unknown, limit: number): number {
  let max = 0;
  const stack: [unknown, number][] = [[v, 1]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (x === null || typeof x !== 'object') continue;
    if (d > max) max = d;
    if (max > limit) return max;
    for (const c of Array.isArray(x) ? x : Object.values(x as object)) if (c !== null && typeof c === 'object') stack.push([c, d + 1]);
  }
  return max;
}

function readJson(file: string, maxBytes: number): unknown {
  let size: number;
  try { size = fs.statSync(file).size; } catch { throw new FormatError(file, 'tokenizer', 'file not found'); }
  if (size > maxBytes) throw new FormatError(file, 'size', `${size} bytes exceeds the ${maxBytes}-byte limit for a tokenizer file`);
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FormatError(file, 'JSON', e instanceof Error ? e.message : String(e));
  }
}

/** Load tokenizer.json (and tokenizer_config.json beside it, if any) with every field the library reads checked first. */
export function loadTokenizer(file: string, maxBytes = MAX_TOKENIZER_BYTES): TextTokenizer {
  const json = readJson(file, maxBytes);
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new FormatError(file, 'tokenizer', 'expected a JSON object');
  const depth = depthOf(json, MAX_DEPTH);
  if (depth > MAX_DEPTH) throw new FormatError(file, 'tokenizer', `nested more than ${MAX_DEPTH} levels deep`);
  const model = (json as { model?: unknown }).model;
  if (!model || typeof model !== 'object' || Array.isArray(model)) throw new FormatError(file, 'model', 'missing or not an object');
  const type = (model as { type?: unknown }).type;
  const vocab = (model as { vocab?: unknown }).vocab;
  if (type !== undefined && typeof type !== 'string') throw new FormatError(file, 'model.type', `expected a string, got ${typeof type}`);
  if (typeof vocab !== 'object' || vocab === null) throw new FormatError(file, 'model.vocab', 'missing or not an object/array');
  const merges = (model as { merges?: unknown }).merges;
  if (merges !== undefined && !Array.isArray(merges)) throw new FormatError(file, 'model.merges', 'expected an array');
  const added = (json as { added_tokens?: unknown }).added_tokens;
  if (added !== undefined && !Array.isArray(added)) throw new FormatError(file, 'added_tokens', 'expected an array');
  const cfgFile = path.join(path.dirname(file), 'tokenizer_config.json');
  let config: object = {};
  if (fs.existsSync(cfgFile)) {
    const c = readJson(cfgFile, 16 * 1024 * 1024);
    if (!c || typeof c !== 'object' || Array.isArray(c)) throw new FormatError(cfgFile, 'tokenizer config', 'expected a JSON object');
    if (depthOf(c, MAX_DEPTH) > MAX_DEPTH) throw new FormatError(cfgFile, 'tokenizer config', `nested more than ${MAX_DEPTH} levels deep`);
    config = c;
  }
  // Loaded on first use: the library is only needed for text data.
  // (An ES module with a CommonJS build; typed here by the two calls used.)
  const { Tokenizer } = require('@huggingface/tokenizers') as { Tokenizer: new (json: object, config: object) => HfTokenizer };
  let tok: HfTokenizer;
  try {
    tok = new Tokenizer(json, config);
  } catch (e) {
    throw new FormatError(file, 'tokenizer', `the tokenizer library refused it: ${e instanceof Error ? e.message : String(e)}`);
  }
  return {
    file,
    encode(text: string): number[] {
      try {
        return tok.encode(text, { add_special_tokens: false }).ids;
      } catch (e) {
        throw new FormatError(file, 'tokenizer', `encoding failed: ${e instanceof Error ? e.message : String(e)}`);
      }
    },
  };
}

/**
 * Token ids of a text, encoded a paragraph at a time until `need` ids are
 * there (a large corpus is not tokenized whole for a few windows).
 */
export function tokenizeText(tok: TextTokenizer, text: string, need: number): number[] {
  const ids: number[] = [];
  const parts = text.split(/(?<=\n\n)/);
  for (const p of parts) {
    if (ids.length >= need) break;
    for (const id of tok.encode(p)) ids.push(id);
  }
  return ids;
}

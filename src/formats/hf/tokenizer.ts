/**
 * tokenizer.json + tokenizer_config.json → llama.cpp's `tokenizer.ggml.*` keys.
 *
 * - Byte-level BPE (GPT-2, Llama 3, Qwen2): `tokenizer.ggml.model = "gpt2"`,
 *   tokens and merges as they are, and `tokenizer.ggml.pre` naming the
 *   pre-tokenizer llama.cpp implements for that split regex (recognised by the
 *   regex itself, never guessed from the architecture).
 * - SentencePiece-style BPE with byte fallback (Llama 2, Mistral):
 *   `tokenizer.ggml.model = "llama"`, `<0xNN>` byte tokens typed as bytes, and
 *   scores that rank pieces as SentencePiece's BPE does (earlier id, higher score).
 *
 * Every field read is type-checked; sizes and counts are bounded, so a hostile
 * file costs bounded work and gives an error naming it and the field.
 */
import { FormatError } from '../types';
import { GgufValueType } from '../gguf/reader';
import type { GgufKv } from '../gguf/writer';
import { readJsonFile } from '../jsonFile';

export const MAX_TOKENIZER_BYTES = 64_000_000;
const MAX_TOKENIZER_CONFIG_BYTES = 16_000_000;
const MAX_TOKENS = 2_000_000;
const MAX_TOKEN_BYTES = 65_536;

/** llama_token_type (llama.h). */
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

/** Split regexes of tokenizer.json pre-tokenizers → the `tokenizer.ggml.pre` llama.cpp implements them as. */
const KNOWN_SPLITS: [string, string][] = [
  ["(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", 'llama-bpe'],
  ["(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+", 'qwen2'],
];
export const LLAMA3_SPLIT = KNOWN_SPLITS[0][0];
export const QWEN2_SPLIT = KNOWN_SPLITS[1][0];

export interface TokenizerFiles {
  tokenizerPath?: string;
  tokenizerConfigPath?: string;
  dir: string;
}

export interface GgufTokenizer {
  model: 'gpt2' | 'llama';
  pre?: string;
  tokens: string[];
  kvs: GgufKv[];
}

type Obj = Record<string, unknown>;

class Fields {
  constructor(readonly file: string) {}
  fail(where: string, problem: string): never {
    throw new FormatError(this.file, where, problem);
  }
  obj(v: unknown, where: string): Obj {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(where, 'is not an object');
    return v as Obj;
  }
  str(v: unknown, where: string): string {
    if (typeof v !== 'string') this.fail(where, `is not a string (${typeof v})`);
    if ((v as string).length > MAX_TOKEN_BYTES) this.fail(where, `string of ${(v as string).length} characters exceeds ${MAX_TOKEN_BYTES}`);
    return v as string;
  }
  id(v: unknown, where: string): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v >= MAX_TOKENS) this.fail(where, `is not a token id (0..${MAX_TOKENS - 1}): ${JSON.stringify(v)?.slice(0, 40)}`);
    return v as number;
  }
  arr(v: unknown, where: string, max = MAX_TOKENS): unknown[] {
    if (!Array.isArray(v)) this.fail(where, 'is not an array');
    if ((v as unknown[]).length > max) this.fail(where, `has ${(v as unknown[]).length} entries, more than ${max}`);
    return v as unknown[];
  }
}

/** The pre-tokenizer name llama.cpp knows for a byte-level tokenizer's pre_tokenizer, or an error naming what was found. */
function bytePre(f: Fields, pt: Obj): string {
  const type = pt.type;
  if (type === 'ByteLevel') {
    if (pt.use_regex === false) f.fail('pre_tokenizer', 'ByteLevel without its regex and no Split: no llama.cpp pre-tokenizer matches');
    if (pt.add_prefix_space === true) f.fail('pre_tokenizer.add_prefix_space', 'true is not supported by llama.cpp\'s gpt-2 pre-tokenizer');
    return 'gpt-2';
  }
  if (type === 'Sequence') {
    const list = f.arr(pt.pretokenizers, 'pre_tokenizer.pretokenizers', 16).map((p, i) => f.obj(p, `pre_tokenizer.pretokenizers[${i}]`));
    if (list.length === 2 && list[0].type === 'Split' && list[1].type === 'ByteLevel' && list[1].use_regex === false) {
      const pat = f.obj(list[0].pattern, 'pre_tokenizer.pretokenizers[0].pattern');
      const re = pat.Regex;
      if (typeof re === 'string') {
        const hit = KNOWN_SPLITS.find(([r]) => r === re);
        if (hit) return hit[1];
        f.fail('pre_tokenizer.pretokenizers[0].pattern.Regex', `split regex ${JSON.stringify(re.slice(0, 120))} is not one llama.cpp implements (known: Llama 3, Qwen2)`);
      }
    }
    if (list.length === 1) return bytePre(f, list[0]);
  }
  return f.fail('pre_tokenizer', `${JSON.stringify(type)} is not a pre-tokenizer llama.cpp implements (GPT-2 ByteLevel, or Split with the Llama 3 / Qwen2 regex then ByteLevel)`);
}

function isByteLevelDecoderOrPre(t: Obj): boolean {
  const pt = t.pre_tokenizer as Obj | null;
  if (!pt || typeof pt !== 'object') return false;
  if (pt.type === 'ByteLevel') return true;
  return pt.type === 'Sequence' && Array.isArray(pt.pretokenizers) && (pt.pretokenizers as Obj[]).some((p) => p && typeof p === 'object' && p.type === 'ByteLevel');
}

/** tokenizer_config.json's `bos_token` etc.: a string or an AddedToken object. */
function tokenContent(f: Fields, v: unknown, where: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return f.str(v, where);
  return f.str(f.obj(v, where).content, `${where}.content`);
}

export function readHfTokenizer(files: TokenizerFiles, nVocab: number): GgufTokenizer {
  if (!files.tokenizerPath) throw new FormatError(`${files.dir}/tokenizer.json`, 'tokenizer.json', 'missing: a GGUF for llama.cpp needs the tokenizer');
  const file = files.tokenizerPath;
  const f = new Fields(file);
  const t = f.obj(readJsonFile(file, MAX_TOKENIZER_BYTES), 'tokenizer');
  const model = f.obj(t.model, 'model');
  if (model.type !== 'BPE') f.fail('model.type', `${JSON.stringify(model.type)} is not supported (BPE: byte-level or SentencePiece-style with byte fallback)`);
  const vocab = f.obj(model.vocab, 'model.vocab');
  const byId = new Map<number, string>();
  let n = 0;
  for (const [tok, id] of Object.entries(vocab)) {
    if (++n > MAX_TOKENS) f.fail('model.vocab', `more than ${MAX_TOKENS} tokens`);
    if (tok.length > MAX_TOKEN_BYTES) f.fail(`model.vocab`, `a token of ${tok.length} characters`);
    const i = f.id(id, `model.vocab[${JSON.stringify(tok.slice(0, 40))}]`);
    if (byId.has(i)) f.fail(`model.vocab[${JSON.stringify(tok.slice(0, 40))}]`, `id ${i} is also ${JSON.stringify(byId.get(i)!.slice(0, 40))}`);
    byId.set(i, tok);
  }
  const added = new Map<number, { content: string; special: boolean }>();
  f.arr(t.added_tokens ?? [], 'added_tokens', 1_000_000).forEach((a, k) => {
    const o = f.obj(a, `added_tokens[${k}]`);
    const id = f.id(o.id, `added_tokens[${k}].id`);
    const content = f.str(o.content, `added_tokens[${k}].content`);
    if (byId.has(id) && byId.get(id) !== content) f.fail(`added_tokens[${k}]`, `id ${id} is ${JSON.stringify(content.slice(0, 40))} here but ${JSON.stringify(byId.get(id)!.slice(0, 40))} in model.vocab`);
    added.set(id, { content, special: o.special === true });
    byId.set(id, content);
  });
  let maxId = -1;
  for (const id of byId.keys()) if (id > maxId) maxId = id;
  if (maxId >= nVocab) f.fail('model.vocab', `token id ${maxId} is beyond the model's ${nVocab}-row token embedding`);

  const byteLevel = isByteLevelDecoderOrPre(t);
  const kind: 'gpt2' | 'llama' = byteLevel ? 'gpt2' : 'llama';
  if (!byteLevel && model.byte_fallback !== true) f.fail('model.byte_fallback', 'a BPE tokenizer that is neither byte-level nor byte-fallback (SentencePiece-style) is not supported');
  const pre = byteLevel ? bytePre(f, f.obj(t.pre_tokenizer, 'pre_tokenizer')) : undefined;

  const unkContent = typeof model.unk_token === 'string' ? model.unk_token : undefined;
  const tokens: string[] = new Array<string>(nVocab);
  const types = new Array<number>(nVocab);
  const scores: number[] = kind === 'llama' ? new Array<number>(nVocab) : [];
  for (let i = 0; i < nVocab; i++) {
    const tok = byId.get(i);
    const a = added.get(i);
    if (tok === undefined) {
      // Embedding rows the tokenizer never produces (vocabularies padded to a round size).
      tokens[i] = `[PAD${i}]`;
      types[i] = TOKEN_TYPE.USER_DEFINED;
    } else {
      tokens[i] = tok;
      if (kind === 'llama' && tok === unkContent) types[i] = TOKEN_TYPE.UNKNOWN;
      else if (a) types[i] = a.special ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED;
      else if (kind === 'llama' && /^<0x[0-9A-F]{2}>$/.test(tok)) types[i] = TOKEN_TYPE.BYTE;
      else types[i] = TOKEN_TYPE.NORMAL;
    }
    if (kind === 'llama') scores[i] = types[i] === TOKEN_TYPE.NORMAL ? -i : 0;
  }

  const kvs: GgufKv[] = [
    { key: 'tokenizer.ggml.model', type: GgufValueType.STRING, value: kind },
  ];
  if (pre) kvs.push({ key: 'tokenizer.ggml.pre', type: GgufValueType.STRING, value: pre });
  kvs.push({ key: 'tokenizer.ggml.tokens', type: GgufValueType.ARRAY, elementType: GgufValueType.STRING, value: tokens });
  if (kind === 'llama') kvs.push({ key: 'tokenizer.ggml.scores', type: GgufValueType.ARRAY, elementType: GgufValueType.FLOAT32, value: scores });
  kvs.push({ key: 'tokenizer.ggml.token_type', type: GgufValueType.ARRAY, elementType: GgufValueType.INT32, value: types });
  if (kind === 'gpt2') {
    const merges = f.arr(model.merges ?? [], 'model.merges').map((m, k) => {
      if (typeof m === 'string') {
        if (m.split(' ').length !== 2) f.fail(`model.merges[${k}]`, `${JSON.stringify(m.slice(0, 40))} is not two tokens separated by one space`);
        return f.str(m, `model.merges[${k}]`);
      }
      const pair = f.arr(m, `model.merges[${k}]`, 2);
      if (pair.length !== 2) f.fail(`model.merges[${k}]`, 'is not a pair');
      return `${f.str(pair[0], `model.merges[${k}][0]`)} ${f.str(pair[1], `model.merges[${k}][1]`)}`;
    });
    kvs.push({ key: 'tokenizer.ggml.merges', type: GgufValueType.ARRAY, elementType: GgufValueType.STRING, value: merges });
  }
  kvs.push(...specialKvs(files, byId, kind, unkContent));
  return { model: kind, pre, tokens, kvs };
}

/** bos/eos/unk/pad ids, add_bos/add_eos and the chat template from tokenizer_config.json. */
function specialKvs(files: TokenizerFiles, byId: Map<number, string>, kind: 'gpt2' | 'llama', unk: string | undefined): GgufKv[] {
  const out: GgufKv[] = [];
  const ids = new Map<string, number>();
  for (const [id, tok] of byId) if (!ids.has(tok)) ids.set(tok, id);
  const cfgFile = files.tokenizerConfigPath;
  const cfg: Obj = cfgFile ? new Fields(cfgFile).obj(readJsonFile(cfgFile, MAX_TOKENIZER_CONFIG_BYTES), 'tokenizer_config') : {};
  const f = new Fields(cfgFile ?? `${files.dir}/tokenizer_config.json`);
  const idOf = (key: string, fallback?: string): void => {
    const content = tokenContent(f, cfg[key], key) ?? fallback;
    if (content === undefined) return;
    const id = ids.get(content);
    if (id === undefined) f.fail(key, `${JSON.stringify(content.slice(0, 40))} is not a token of tokenizer.json`);
    const ggufKey = key === 'unk_token' ? 'unknown_token_id' : key === 'pad_token' ? 'padding_token_id' : `${key}_id`;
    out.push({ key: `tokenizer.ggml.${ggufKey}`, type: GgufValueType.UINT32, value: id! });
  };
  idOf('bos_token');
  idOf('eos_token');
  idOf('unk_token', kind === 'llama' ? unk : undefined);
  idOf('pad_token');
  for (const k of ['add_bos_token', 'add_eos_token'] as const) {
    const v = cfg[k];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'boolean') f.fail(k, `is not a boolean (${typeof v})`);
    out.push({ key: `tokenizer.ggml.${k}`, type: GgufValueType.BOOL, value: v as boolean });
  }
  const ct = cfg.chat_template;
  if (typeof ct === 'string') out.push({ key: 'tokenizer.chat_template', type: GgufValueType.STRING, value: ct });
  else if (Array.isArray(ct)) {
    // A list of named templates: llama.cpp's key holds the default one.
    const named = f.arr(ct, 'chat_template', 64).map((e, i) => f.obj(e, `chat_template[${i}]`));
    const def = named.find((e) => e.name === 'default') ?? named[0];
    if (def) out.push({ key: 'tokenizer.chat_template', type: GgufValueType.STRING, value: f.str(def.template, 'chat_template.template') });
  } else if (ct !== undefined && ct !== null) f.fail('chat_template', 'is neither a string nor a list of named templates');
  return out;
}

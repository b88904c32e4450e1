/**
 * safetensors: an 8-byte little-endian header length, a JSON header mapping
 * tensor names to {dtype, shape, data_offsets}, then the data. Sharded
 * checkpoints are tied together by a `*.safetensors.index.json` whose
 * weight_map names the shard of every tensor; opening the index or any shard
 * listed in a sibling index shows the whole model.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FormatError, MetadataValue, ModelFile, TensorInfo } from '../types';
import { SAFETENSORS_DTYPES, scalarByteLength } from '../dtypes';
import { LazyModelFile, checkedNumel, fileSize, readAt, type ModelIndex } from '../lazyModelFile';
import { parseTensorName } from '../naming';
import { readJsonFile } from '../jsonFile';
import { DequantizedModelFile, quantizedIndex } from './quantizedView';

/** The reference implementation refuses headers above 100 MB; so do we. */
export const MAX_HEADER_BYTES = 100_000_000;
const MAX_INDEX_BYTES = 100_000_000;

/** Claims a file whose first 8 bytes are a plausible header length followed by '{'. */
export function matchSafetensors(head: Uint8Array, size: number): boolean {
  if (head.length < 9 || size < 10) return false;
  const n = new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true);
  return n > 0n && n <= BigInt(size - 8) && head[8] === 0x7b;
}

interface ShardIndex {
  tensors: TensorInfo[];
  metadata: Record<string, MetadataValue>;
  size: number;
}

/** Parse one .safetensors file's header into tensor infos (no tensor data is read). */
export function readSafetensorsHeader(file: string): ShardIndex {
  const size = fileSize(file);
  if (size < 8) throw new FormatError(file, 'header length', `file is ${size} bytes, shorter than the 8-byte header length`);
  const lenBytes = readAt(file, 0, 8);
  const n = new DataView(lenBytes.buffer, lenBytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(size - 8)) throw new FormatError(file, 'header length', `${n} bytes exceeds the ${size - 8} bytes after it`);
  if (n > BigInt(MAX_HEADER_BYTES)) throw new FormatError(file, 'header length', `${n} bytes exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  const headerLen = Number(n);
  const dataStart = 8 + headerLen;
  const dataLen = size - dataStart;
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(readAt(file, 8, headerLen)));
  } catch (e) {
    throw new FormatError(file, 'header', `malformed JSON: ${(e as Error).message}`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new FormatError(file, 'header', 'is not a JSON object');
  }
  const metadata: Record<string, MetadataValue> = {};
  const tensors: TensorInfo[] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FormatError(file, '__metadata__', 'is not an object');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new FormatError(file, `__metadata__.${k}`, 'value is not a string');
        metadata[k] = v;
      }
      continue;
    }
    const where = `tensor ${name}`;
    if (typeof raw !== 'object' || raw === null) throw new FormatError(file, where, 'entry is not an object');
    const { dtype: dt, shape, data_offsets: offs } = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof dt !== 'string') throw new FormatError(file, where, 'missing dtype');
    const dtype = SAFETENSORS_DTYPES[dt];
    if (!dtype) throw new FormatError(file, where, `unknown dtype ${JSON.stringify(dt)}`);
    if (!Array.isArray(shape)) throw new FormatError(file, where, 'shape is not an array');
    const numel = checkedNumel(file, where, shape as number[]);
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((x) => Number.isSafeInteger(x) && x >= 0)) {
      throw new FormatError(file, where, 'data_offsets is not a pair of non-negative integers');
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) throw new FormatError(file, where, `data_offsets [${begin}, ${end}] end before begin`);
    if (end > dataLen) throw new FormatError(file, where, `data_offsets end ${end} past the ${dataLen}-byte data section`);
    const expect = scalarByteLength(dtype, numel);
    if (end - begin !== expect) {
      throw new FormatError(file, where, `holds ${end - begin} bytes but ${dt} [${(shape as number[]).join(', ')}] needs ${expect}`);
    }
    tensors.push({
      name, dtype, shape: (shape as number[]).slice(), numel, byteLength: expect,
      location: { kind: 'disk', file, offset: dataStart + begin, length: expect },
      source: 'tensor',
      layer: { consumers: [], ...parseTensorName(name), outputChannelAxis: outputChannelAxis(name, shape as number[]) },
    });
  }
  // The spec requires the data section to be covered exactly, without holes or overlaps.
  const sorted = tensors.slice().sort((a, b) => (a.location as { offset: number }).offset - (b.location as { offset: number }).offset);
  let cursor = dataStart;
  for (const t of sorted) {
    const loc = t.location as { offset: number; length: number };
    if (loc.offset !== cursor) {
      throw new FormatError(file, `tensor ${t.name}`, loc.offset < cursor ? 'overlaps the previous tensor' : `leaves a ${loc.offset - cursor}-byte hole before it`);
    }
    cursor += loc.length;
  }
  if (cursor !== size) throw new FormatError(file, 'data section', `${size - cursor} bytes after the last tensor are not indexed`);
  return { tensors, metadata, size };
}

/** A sibling index listing this shard, if there is one. */
function findIndexFor(file: string): string | undefined {
  const dir = path.dirname(file);
  const base = path.basename(file);
  let names: string[];
  try {
    names = fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors.index.json'));
  } catch {
    return undefined;
  }
  for (const n of names.sort()) {
    const p = path.join(dir, n);
    try {
      if (fs.statSync(p).size > MAX_INDEX_BYTES) continue;
      const j = JSON.parse(fs.readFileSync(p, 'utf8')) as { weight_map?: Record<string, unknown> };
      if (j && typeof j.weight_map === 'object' && j.weight_map && Object.values(j.weight_map).includes(base)) return p;
    } catch {
      // A broken unrelated index must not stop the shard from opening alone.
    }
  }
  return undefined;
}

export function openSafetensors(file: string, opts: { standalone?: boolean } = {}): ModelFile {
  const abs = path.resolve(file);
  if (abs.endsWith('.index.json')) return openSafetensorsIndex(abs);
  if (!opts.standalone) {
    const index = findIndexFor(abs);
    if (index) return openSafetensorsIndex(index, abs);
  }
  const { tensors, metadata, size } = readSafetensorsHeader(abs);
  return viewOf({
    path: abs, format: 'safetensors', formatVersion: 'safetensors', files: [abs], sizeOnDisk: size, metadata, tensors,
  }, path.dirname(abs));
}

/** Quantized checkpoints (GPTQ, AWQ, compressed-tensors, bitsandbytes) read as their dequantized weights. */
function viewOf(ix: ModelIndex, dir: string): ModelFile {
  const q = quantizedIndex(ix, dir);
  return q ? new DequantizedModelFile(q) : new LazyModelFile(ix);
}

/** Open a sharded checkpoint through its index; `opened` is the shard the user picked, if any. */
export function openSafetensorsIndex(indexFile: string, opened?: string): ModelFile {
  const j = readJsonFile(indexFile, MAX_INDEX_BYTES);
  const wm = (j as { weight_map?: unknown })?.weight_map;
  if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) throw new FormatError(indexFile, 'weight_map', 'missing or not an object');
  const dir = path.dirname(indexFile);
  const shardNames: string[] = [];
  for (const [name, shard] of Object.entries(wm as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '' || path.isAbsolute(shard) || shard.split(/[\\/]/).includes('..')) {
      throw new FormatError(indexFile, `weight_map.${name}`, `invalid shard name ${JSON.stringify(shard)}`);
    }
    if (!shardNames.includes(shard)) shardNames.push(shard);
  }
  const metadata: Record<string, MetadataValue> = {};
  const im = (j as { metadata?: unknown }).metadata;
  if (im && typeof im === 'object' && !Array.isArray(im)) {
    for (const [k, v] of Object.entries(im as Record<string, unknown>)) {
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') metadata[k] = v;
    }
  }
  const tensors: TensorInfo[] = [];
  const files = [indexFile];
  let sizeOnDisk = fileSize(indexFile);
  for (const shard of shardNames) {
    const sp = path.join(dir, shard);
    if (!fs.existsSync(sp)) throw new FormatError(sp, `shard of ${path.basename(indexFile)}`, 'file not found');
    const ix = readSafetensorsHeader(sp);
    files.push(sp);
    sizeOnDisk += ix.size;
    for (const [k, v] of Object.entries(ix.metadata)) if (!(k in metadata)) metadata[k] = v;
    for (const t of ix.tensors) {
      const listed = Object.prototype.hasOwnProperty.call(wm, t.name) ? (wm as Record<string, string>)[t.name] : undefined;
      if (listed === undefined) throw new FormatError(sp, `tensor ${t.name}`, `not listed in ${path.basename(indexFile)}`);
      if (listed !== shard) throw new FormatError(sp, `tensor ${t.name}`, `${path.basename(indexFile)} places it in ${listed}`);
      tensors.push(t);
    }
  }
  const found = new Set(tensors.map((t) => t.name));
  for (const [name, shard] of Object.entries(wm as Record<string, string>)) {
    if (!found.has(name)) throw new FormatError(path.join(dir, shard), `tensor ${name}`, `listed in ${path.basename(indexFile)} but missing from the shard`);
  }
  return viewOf({
    path: opened ?? indexFile, format: 'safetensors', formatVersion: `safetensors (${shardNames.length} shards)`,
    files: opened ? [opened, ...files.filter((f) => f !== opened)] : files, sizeOnDisk, metadata, tensors,
  }, dir);
}

/**
 * PyTorch stores Linear, Conv and Embedding weights output-channel first
 * ([out, in, ...]); GPT-2's Conv1D layers (c_attn, c_proj, c_fc under
 * transformer.h.N) are the exception, stored [in, out].
 */
export function outputChannelAxis(name: string, shape: number[]): number | undefined {
  if (shape.length < 2) return undefined;
  if (shape.length === 2 && /(?:^|\.)h\.\d+\.(?:attn|mlp)\.c_(?:attn|proj|fc)\.weight$/.test(name)) return 1;
  return 0;
}

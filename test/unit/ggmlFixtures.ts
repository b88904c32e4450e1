/** What the ggml byte-equality tests share: the fixtures ggml itself wrote, where two encodings part, two GGUF files compared. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as assert from 'node:assert/strict';
import { openGguf, readGgufHeader } from '../../src/formats/gguf/reader';

/** Fixtures produced by the real ggml library (test/fixtures/ggml/gen_reference.py). */
export const GGML_FIXTURES = path.resolve(__dirname, '../../../test/fixtures/ggml');

export function readGgmlF32(name: string): Float32Array {
  const b = fs.readFileSync(path.join(GGML_FIXTURES, name));
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

/** The first byte where a and b differ (the shorter length when one is a prefix of the other), or -1. */
export function firstDiff(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

/**
 * Two GGUF files hold the same tensors (names, order, types, dims, bytes) and,
 * unless `tensorsOnly`, the same metadata keys, types and values but those
 * `ignoreKeys` matches; the message names the first difference.
 */
export function assertSameGguf(ours: string, ref: string, opts: { ignoreKeys?: RegExp; tensorsOnly?: boolean } = {}): void {
  const a = readGgufHeader(ours), b = readGgufHeader(ref);
  const keep = (k: string): boolean => !opts.tensorsOnly && !opts.ignoreKeys?.test(k);
  assert.deepEqual(Object.keys(a.metadata).filter(keep), Object.keys(b.metadata).filter(keep), 'metadata keys and order');
  for (const k of Object.keys(b.metadata).filter(keep)) {
    assert.equal(a.metadataTypes[k], b.metadataTypes[k], `type of ${k}`);
    assert.deepEqual(a.metadata[k], b.metadata[k], `value of ${k}`);
  }
  assert.deepEqual(a.rawTensors.map((t) => t.name), b.rawTensors.map((t) => t.name), 'tensor names and order');
  const ma = openGguf(ours), mb = openGguf(ref);
  try {
    for (let i = 0; i < a.rawTensors.length; i++) {
      const ta = a.rawTensors[i], tb = b.rawTensors[i];
      assert.equal(ta.type, tb.type, `${ta.name}: type ${ta.type} vs llama.cpp's ${tb.type}`);
      assert.deepEqual(ta.ne, tb.ne, `${ta.name}: dims`);
      const ba = ma.readBytes(ma.tensors[i]), bb = mb.readBytes(mb.tensors[i]);
      assert.ok(Buffer.from(ba).equals(Buffer.from(bb)), `${ta.name} (${ta.type}): bytes differ from llama.cpp's`);
    }
  } finally {
    ma.close();
    mb.close();
  }
}

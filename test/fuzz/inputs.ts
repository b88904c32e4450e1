/**
 * Fuzz targets beyond the model readers: every other file the converters
 * and the runtime read (calibration arrays, images, tokenizer.json, imatrix
 * files, plans, a checkpoint's config.json and tokenizer, and an ONNX model
 * taken apart and written back by the converter's editor). Each must end in
 * a result or an error that names the file: never a TypeError, a RangeError
 * from deep inside, a hang or a crash.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PNG } from 'pngjs';
import { FormatError } from '../../src/formats/types';
import { loadCalibData, type InputSpec } from '../../src/runtime/calibData';
import { loadTokenizer } from '../../src/runtime/calibText';
import { readImatrix } from '../../src/formats/gguf/imatrix';
import { parsePlan } from '../../src/quant/plan';
import { openHfCheckpoint } from '../../src/formats/hf/checkpoint';
import { mapHfModel } from '../../src/formats/hf/archs';
import { readHfTokenizer } from '../../src/formats/hf/tokenizer';
import { openOnnxForEdit, writeOnnx } from '../../src/formats/onnx/writer';
import { indexGraph } from '../../src/pipelines/onnxGraph';
import { makeCheckpoint } from '../unit/hfFixtures';
import type { FuzzTarget } from './mutate';

/** An error that names the file it is about (the CLI prints it as the message): a rejection, not a bug. */
function named(e: unknown, file: string): boolean {
  if (e instanceof FormatError) return true;
  // The language's own error classes mean a bug (an undefined read, an index out of range), whatever they say.
  const internal = e instanceof TypeError || e instanceof RangeError || e instanceof ReferenceError || e instanceof SyntaxError;
  return e instanceof Error && !internal && e.message.includes(path.basename(file));
}

function guard(file: string, run: () => void): 'opened' | 'rejected' {
  try {
    run();
    return 'opened';
  } catch (e) {
    if (named(e, file)) return 'rejected';
    throw e;
  }
}

/** Builds the seeds in `dir` (a PNG, a tokenizer, an imatrix, a plan, a tiny Llama checkpoint) and returns a target for each input kind. */
export function inputTargets(root: string, dir: string): FuzzTarget[] {
  const calib = path.join(root, 'test/fixtures/calib');
  const image: InputSpec[] = [{ name: 'x', dtype: 'f32', shape: ['batch', 3, 4, 5] }];
  const pair: InputSpec[] = [{ name: 'a', dtype: 'f32', shape: ['n', 3] }, { name: 'b', dtype: 'i64', shape: ['n'] }];

  const png = new PNG({ width: 6, height: 5 });
  for (let i = 0; i < png.data.length; i++) png.data[i] = (i * 37) & 255;
  const pngFile = path.join(dir, 'seed.png');
  fs.writeFileSync(pngFile, PNG.sync.write(png));

  const tok = path.join(dir, 'tok', 'tokenizer.json');
  fs.mkdirSync(path.dirname(tok), { recursive: true });
  fs.writeFileSync(tok, JSON.stringify({
    version: '1.0', added_tokens: [{ id: 0, content: '[UNK]', special: true }], normalizer: null, pre_tokenizer: { type: 'Whitespace' }, post_processor: null, decoder: null,
    model: { type: 'BPE', vocab: { '[UNK]': 0, a: 1, b: 2, c: 3, ab: 4, abc: 5 }, merges: ['a b', 'ab c'], unk_token: '[UNK]' },
  }));

  // A legacy imatrix: n entries of (name length, name, ncall, nval, nval floats), then the chunk count.
  const imat = path.join(dir, 'imatrix.dat');
  const parts: Buffer[] = [Buffer.from(Int32Array.of(2).buffer)];
  for (const name of ['blk.0.attn_q.weight', 'blk.0.ffn_up.weight']) {
    const n = Buffer.from(name);
    parts.push(Buffer.from(Int32Array.of(n.length).buffer), n, Buffer.from(Int32Array.of(4, 8).buffer), Buffer.from(Float32Array.from({ length: 8 }, (_, i) => 1 + i).buffer));
  }
  parts.push(Buffer.from(Int32Array.of(10).buffer));
  fs.writeFileSync(imat, Buffer.concat(parts));

  const plan = path.join(dir, 'plan.json');
  fs.writeFileSync(plan, JSON.stringify({ schema: 'quantscope/plan/v1', target: 'onnx-int4', default: 'int4-g128', tensors: { w1: 'int8-g128', w2: 'keep' } }));

  const ck = path.join(dir, 'ckpt');
  makeCheckpoint(ck, 'llama', { layers: 1, hidden: 64, heads: 2, kvHeads: 1, ffn: 128, merges: 40, dtype: 'F32' });
  const ckFiles = fs.readdirSync(ck).map((f) => path.join(ck, f));
  const checkpoint = (file: string) => guard(file, () => {
    const c = openHfCheckpoint(path.dirname(file));
    try {
      const m = mapHfModel(c);
      readHfTokenizer(c, m.nVocab);
    } finally {
      c.close();
    }
  });

  const onnxSrc = path.join(root, 'test/fixtures/formats/weights.onnx');
  return [
    { name: 'calib-npy', file: path.join(calib, 'x.npy'), exercise: (f) => guard(f, () => loadCalibData(f, image)) },
    { name: 'calib-npz', file: path.join(calib, 'pair_compressed.npz'), exercise: (f) => guard(f, () => loadCalibData(f, pair)) },
    { name: 'calib-png', file: pngFile, exercise: (f) => guard(f, () => loadCalibData(f, image)) },
    { name: 'tokenizer-json', file: tok, exercise: (f) => guard(f, () => loadTokenizer(f).encode('abc ab a')) },
    { name: 'imatrix', file: imat, exercise: (f) => guard(f, () => readImatrix(f)) },
    {
      name: 'plan', file: plan,
      exercise: (f) => guard(f, () => {
        let raw: unknown;
        try { raw = JSON.parse(fs.readFileSync(f, 'utf8')); } catch (e) { throw new FormatError(f, 'JSON', (e as Error).message); }
        parsePlan(raw, f, new Set(['w1', 'w2']));
      }),
    },
    { name: 'hf-config', file: path.join(ck, 'config.json'), siblings: ckFiles.filter((f) => path.basename(f) !== 'config.json'), exercise: checkpoint },
    { name: 'hf-tokenizer', file: path.join(ck, 'tokenizer.json'), siblings: ckFiles.filter((f) => path.basename(f) !== 'tokenizer.json'), exercise: checkpoint },
    {
      name: 'onnx-edit', file: onnxSrc,
      exercise: (f) => guard(f, () => {
        const ed = openOnnxForEdit(f);
        indexGraph(ed);
        const out = `${f}.out.onnx`;
        try { writeOnnx(ed, out); } finally { fs.rmSync(out, { force: true }); }
      }),
    },
  ];
}

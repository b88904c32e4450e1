import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/formats/index';
import { FormatError } from '../../src/formats/types';
import { buildOverview } from '../../src/analysis/overview';
import { isAnalysable, tensorSource } from '../../src/analysis/tensorSource';
import { analyseSource } from '../../src/analysis/weightStats';
import { tensorSensitivity } from '../../src/analysis/sensitivity';
import { f32Bytes, weights, writeSt, type StTensor } from './hfqUtil';

/** float → IEEE half bits, for values exactly representable in half (test-side, from the bit layout). */
function halfBits(x: number): number {
  if (x === 0) return 0;
  const s = x < 0 ? 0x8000 : 0;
  const a = Math.abs(x);
  const e = Math.floor(Math.log2(a));
  const m = a / 2 ** e - 1;
  const bits = s | ((e + 15) << 10) | Math.round(m * 1024);
  assert.equal(Math.round(m * 1024), m * 1024, `${x} is not a half`);
  return bits;
}
const f16 = (v: number[]) => { const b = Buffer.alloc(v.length * 2); v.forEach((x, i) => b.writeUInt16LE(halfBits(x), 2 * i)); return new Uint8Array(b); };
const i32 = (v: number[]) => { const b = Buffer.alloc(v.length * 4); v.forEach((x, i) => b.writeInt32LE(x | 0, 4 * i)); return new Uint8Array(b); };
const f32 = (v: number[]) => f32Bytes(Float32Array.from(v));

function lcg(seed: number) { let x = seed >>> 0; return (n: number) => ((x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 8) % n; }

/** NF4 code values as published in the QLoRA paper / bitsandbytes. */
const NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0];

describe('quantized checkpoints in (formats/safetensors/quantizedView)', () => {
  let tmp: string;
  beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-hfq-read-')); });
  afterEach(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

  it('AutoAWQ GEMM: the interleaved qweight/qzeros decode to the spec\'s values; parts hidden; statistics and sensitivity run on the real weights', () => {
    const inF = 64, out = 32, gs = 32, groups = 2;
    const r = lcg(3);
    const q = Array.from({ length: inF * out }, () => r(16)); // [in, out] codes
    const z = Array.from({ length: groups * out }, () => r(16));
    const s = Array.from({ length: groups * out }, (_, k) => (1 + (k % 7)) / 256);
    // Spec: word j of row i holds columns 8j + [0,2,4,6,1,3,5,7][k] in nibble k.
    const order = [0, 2, 4, 6, 1, 3, 5, 7];
    const pack = (codes: number[], rows: number) => Array.from({ length: rows * (out / 8) }, (_, w) => {
      const row = Math.floor(w / (out / 8)), j = w % (out / 8);
      let word = 0;
      for (let k = 0; k < 8; k++) word += codes[row * out + 8 * j + order[k]] * 2 ** (4 * k);
      return word;
    });
    const m = 'model.layers.0.mlp.down_proj';
    const tensors: StTensor[] = [
      { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [10, inF], data: f32Bytes(weights(10 * inF, 1)) },
      { name: `${m}.qweight`, dtype: 'I32', shape: [inF, out / 8], data: i32(pack(q, inF)) },
      { name: `${m}.qzeros`, dtype: 'I32', shape: [groups, out / 8], data: i32(pack(z, groups)) },
      { name: `${m}.scales`, dtype: 'F16', shape: [groups, out], data: f16(s) },
    ];
    writeSt(path.join(tmp, 'model.safetensors'), tensors);
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({ model_type: 'llama', quantization_config: { quant_method: 'awq', bits: 4, group_size: gs, version: 'gemm', zero_point: true } }));
    const model = openModel(path.join(tmp, 'model.safetensors'));
    try {
      assert.deepEqual(model.tensors.map((t) => t.name), ['model.embed_tokens.weight', `${m}.weight`]);
      const t = model.tensors[1];
      assert.equal(t.dtype, 'q:awq4-g32');
      assert.deepEqual(t.shape, [out, inF]);
      assert.equal(t.byteLength, tensors.slice(1).reduce((a, x) => a + x.data.length, 0));
      const want = Float64Array.from({ length: out * inF }, (_, k) => {
        const o = Math.floor(k / inF), i = k % inF, g = Math.floor(i / gs);
        return s[g * out + o] * (q[i * out + o] - z[g * out + o]);
      });
      const got = model.readFloat32(t);
      assert.deepEqual(Array.from(got), Array.from(want));
      // Chunked reads (what the statistics do) give the same values.
      const parts: number[] = [];
      for (const c of model.iterateFloat32(t, 100)) parts.push(...c.values);
      assert.deepEqual(parts, Array.from(want));
      // Its bytes are the parts', in order; any byte range of them.
      const raw = Buffer.concat(tensors.slice(1).map((x) => Buffer.from(x.data)));
      assert.deepEqual(Buffer.from(model.readBytes(t)), raw);
      assert.deepEqual(Buffer.from(model.readBytes(t, 1020, 50)), raw.subarray(1020, 1070));
      const ov = buildOverview(model).overview;
      assert.equal(ov.quantization, 'AWQ GEMM 4-bit g32');
      assert.ok(isAnalysable(t));
      // Statistics through the inspector's source: the real mean and extremes, not int32 words.
      const st = analyseSource(tensorSource(model, t), {}, undefined);
      const mean = want.reduce((a, b) => a + b, 0) / want.length;
      assert.ok(Math.abs(st.mean - mean) < 1e-6, `${st.mean} vs ${mean}`);
      assert.equal(st.max, Math.max(...want));
      assert.equal(st.min, Math.min(...want));
      const sens = tensorSensitivity(got, t.shape, t.shape, 0);
      // Further quantization of the real (4-bit valued) weights: INT8 per channel is nearly exact, INT2 is not.
      const byId = new Map(sens.configs.map((c) => [c.config, c.sqnrDb]));
      assert.ok(byId.get('int8-channel')! > 30, `int8-channel ${byId.get('int8-channel')}`);
      assert.ok(byId.get('int2-g64')! < byId.get('int4-g32')!, 'fewer bits, more error');
    } finally {
      model.close();
    }
  });

  it('bitsandbytes LLM.int8 and double-quantized NF4: dequantized as bitsandbytes computes them', () => {
    const out = 8, inF = 16, n = out * inF, bs = 64;
    const r = lcg(5);
    const q8 = Int8Array.from({ length: n }, () => r(255) - 127);
    const scb = Array.from({ length: out }, (_, o) => 0.5 + o / 8);
    const codes = Array.from({ length: n }, () => r(16));
    const packed = new Uint8Array(n / 2);
    for (let k = 0; k < n; k += 2) packed[k / 2] = codes[k] * 16 + codes[k + 1]; // first element in the high nibble
    // Double quantization: absmax as uint8 codes into a 256-entry map, scaled per nested block, plus the offset.
    const nestedMap = Array.from({ length: 256 }, (_, i) => (i - 128) / 128);
    const absCodes = Uint8Array.of(200, 150);
    const nestedAbsmax = [0.5];
    const offset = 0.125;
    const qs = { quant_type: 'nf4', blocksize: bs, dtype: 'bfloat16', shape: [out, inF], nested_blocksize: 256, nested_dtype: 'float32', nested_offset: offset };
    writeSt(path.join(tmp, 'model.safetensors'), [
      { name: 'model.layers.0.self_attn.q_proj.SCB', dtype: 'F32', shape: [out], data: f32(scb) },
      { name: 'model.layers.0.self_attn.q_proj.weight', dtype: 'I8', shape: [out, inF], data: new Uint8Array(q8.buffer) },
      { name: 'model.layers.0.self_attn.k_proj.weight', dtype: 'U8', shape: [n / 2, 1], data: packed },
      { name: 'model.layers.0.self_attn.k_proj.weight.absmax', dtype: 'U8', shape: [2], data: absCodes },
      { name: 'model.layers.0.self_attn.k_proj.weight.nested_absmax', dtype: 'F32', shape: [1], data: f32(nestedAbsmax) },
      { name: 'model.layers.0.self_attn.k_proj.weight.nested_quant_map', dtype: 'F32', shape: [256], data: f32(nestedMap) },
      { name: 'model.layers.0.self_attn.k_proj.weight.quant_map', dtype: 'F32', shape: [16], data: f32(NF4) },
      { name: 'model.layers.0.self_attn.k_proj.weight.quant_state.bitsandbytes__nf4', dtype: 'U8', shape: [JSON.stringify(qs).length], data: new Uint8Array(Buffer.from(JSON.stringify(qs))) },
    ]);
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({ quantization_config: { quant_method: 'bitsandbytes', load_in_4bit: true, bnb_4bit_quant_type: 'nf4' } }));
    const model = openModel(path.join(tmp, 'model.safetensors'));
    try {
      assert.deepEqual(model.tensors.map((t) => `${t.name} ${t.dtype} [${t.shape}]`).sort(), [
        'model.layers.0.self_attn.k_proj.weight q:bnb-nf4 [8,16]', 'model.layers.0.self_attn.q_proj.weight q:bnb-int8 [8,16]',
      ]);
      const t8 = model.tensors.find((t) => t.dtype === 'q:bnb-int8')!;
      const inv = Math.fround(7.874015718698502e-3);
      assert.deepEqual(Array.from(model.readFloat32(t8)), Array.from(q8, (v, k) => Math.fround(Math.fround(v * Math.fround(scb[Math.floor(k / inF)])) * inv)));
      const t4 = model.tensors.find((t) => t.dtype === 'q:bnb-nf4')!;
      const absmax = [0, 1].map((b) => Math.fround(Math.fround(Math.fround(nestedMap[absCodes[b]]) * 0.5) + offset));
      const want = codes.map((c, k) => Math.fround(Math.fround(NF4[c]) * absmax[Math.floor(k / bs)]));
      assert.deepEqual(Array.from(model.readFloat32(t4)), want);
      assert.deepEqual(Array.from(model.readFloat32(t4, 61, 7)), want.slice(61, 68));
      assert.match(buildOverview(model).overview.quantization ?? '', /bitsandbytes LLM\.int8; bitsandbytes nf4 blocksize 64 double-quant|bitsandbytes nf4 blocksize 64 double-quant; bitsandbytes LLM\.int8/);
    } finally {
      model.close();
    }
  });

  it('compressed-tensors float-quantized (FP8 per channel) and int-quantized (int8 groups with zero points): (q − zp)·scale from the spec', () => {
    const out = 4, inF = 32;
    const r = lcg(11);
    // FP8 E4M3: sign, 4 exponent bits (bias 7), 3 mantissa bits; 0x7f/0xff are NaN and not used.
    const fp8 = Uint8Array.from({ length: out * inF }, () => { const b = r(256); return (b & 0x7f) === 0x7f ? 0x3c : b; });
    const e4m3 = (b: number) => { const sg = b & 0x80 ? -1 : 1, e = (b >> 3) & 15, m = b & 7; return sg * (e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7)); };
    const chScale = [0.5, 0.25, 0.125, 2];
    const q8 = Int8Array.from({ length: out * inF }, () => r(256) - 128);
    const gScale = Array.from({ length: out * 2 }, (_, k) => (k + 1) / 64);
    const gZero = Int8Array.from({ length: out * 2 }, (_, k) => k - 3);
    writeSt(path.join(tmp, 'model.safetensors'), [
      { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F8_E4M3', shape: [out, inF], data: fp8 },
      { name: 'model.layers.0.mlp.up_proj.weight_scale', dtype: 'F16', shape: [out, 1], data: f16(chScale) },
      { name: 'model.layers.0.mlp.up_proj.input_scale', dtype: 'F32', shape: [1], data: f32([0.1]) },
      { name: 'model.layers.0.mlp.down_proj.weight', dtype: 'I8', shape: [out, inF], data: new Uint8Array(q8.buffer) },
      { name: 'model.layers.0.mlp.down_proj.weight_scale', dtype: 'F16', shape: [out, 2], data: f16(gScale) },
      { name: 'model.layers.0.mlp.down_proj.weight_zero_point', dtype: 'I8', shape: [out, 2], data: new Uint8Array(gZero.buffer) },
      { name: 'model.norm.weight', dtype: 'F32', shape: [inF], data: f32(new Array(inF).fill(1)) },
    ]);
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({ quantization_config: { quant_method: 'compressed-tensors', format: 'naive-quantized', config_groups: {} } }));
    const model = openModel(path.join(tmp, 'model.safetensors'));
    try {
      assert.deepEqual(model.tensors.map((t) => `${t.name} ${t.dtype}`), [
        'model.layers.0.mlp.up_proj.weight q:ct-fp8', 'model.layers.0.mlp.up_proj.input_scale f32', 'model.layers.0.mlp.down_proj.weight q:ct-int8', 'model.norm.weight f32',
      ]);
      const up = model.readFloat32(model.tensors[0]);
      assert.deepEqual(Array.from(up), Array.from(fp8, (b, k) => Math.fround(e4m3(b) * chScale[Math.floor(k / inF)])));
      const down = model.readFloat32(model.tensors[2]);
      assert.deepEqual(Array.from(down), Array.from(q8, (q, k) => {
        const o = Math.floor(k / inF), g = Math.floor((k % inF) / 16);
        return Math.fround((q - gZero[o * 2 + g]) * gScale[o * 2 + g]);
      }));
      assert.match(buildOverview(model).overview.quantization ?? '', /naive-quantized fp8 per channel; compressed-tensors naive-quantized int8 g16 with zero points/);
    } finally {
      model.close();
    }
    // The same names under another exporter's config (FP8 of fbgemm): opened as they are, not reinterpreted.
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({ quantization_config: { quant_method: 'fbgemm_fp8' } }));
    const plain = openModel(path.join(tmp, 'model.safetensors'));
    try {
      assert.equal(plain.tensors.find((t) => t.name === 'model.layers.0.mlp.up_proj.weight')!.dtype, 'f8_e4m3fn');
    } finally {
      plain.close();
    }
  });

  it('without config.json the scheme is read from the tensor names, and says so; mismatched parts are errors naming the shard', () => {
    const out = 8, inF = 16;
    // GPTQ 8-bit: qweight [16/4, 8], qzeros [1, 8/4], scales [1, 8], g_idx [16].
    const m = 'model.layers.0.mlp.up_proj';
    const codes = Array.from({ length: inF * out }, (_, k) => (k * 37) % 256);
    const qweight = Array.from({ length: (inF / 4) * out }, (_, w) => {
      const r = Math.floor(w / out), o = w % out;
      let word = 0;
      for (let j = 0; j < 4; j++) word += codes[(4 * r + j) * out + o] * 2 ** (8 * j);
      return word;
    });
    const zeros = [127, 127, 127, 127, 127, 127, 127, 127]; // stored zero − 1 = 127 → zero 128
    const qzeros = [0, 1].map((w) => zeros.slice(4 * w, 4 * w + 4).reduce((a, z, j) => a + z * 2 ** (8 * j), 0));
    const scales = Array.from({ length: out }, (_, o) => (o + 1) / 512);
    const file = path.join(tmp, 'model.safetensors');
    writeSt(file, [
      { name: `${m}.g_idx`, dtype: 'I32', shape: [inF], data: i32(new Array(inF).fill(0)) },
      { name: `${m}.qweight`, dtype: 'I32', shape: [inF / 4, out], data: i32(qweight) },
      { name: `${m}.qzeros`, dtype: 'I32', shape: [1, out / 4], data: i32(qzeros) },
      { name: `${m}.scales`, dtype: 'F16', shape: [1, out], data: f16(scales) },
    ]);
    const model = openModel(file);
    try {
      const t = model.tensors[0];
      assert.equal(t.dtype, 'q:gptq8');
      assert.deepEqual(Array.from(model.readFloat32(t)), Array.from({ length: out * inF }, (_, k) => {
        const o = Math.floor(k / inF), i = k % inF;
        return scales[o] * (codes[i * out + o] - 128);
      }));
      assert.match(buildOverview(model).overview.quantization ?? '', /GPTQ 8-bit g16 \(v1: zero − 1 stored\) \(no config\.json: read from the tensor names\)/);
    } finally {
      model.close();
    }
    // AutoGPTQ's quantize_config.json beside a config.json without quantization_config: v2 zeros read as such.
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({ model_type: 'llama' }));
    fs.writeFileSync(path.join(tmp, 'quantize_config.json'), JSON.stringify({ bits: 8, group_size: -1, desc_act: false, checkpoint_format: 'gptq_v2' }));
    const m2 = openModel(file);
    try {
      assert.equal(m2.readFloat32(m2.tensors[0], 0, 1)[0], scales[0] * (codes[0] - 127));
      assert.match(buildOverview(m2).overview.quantization ?? '', /^GPTQ 8-bit g16 \(v2\)$/);
    } finally {
      m2.close();
    }
    fs.rmSync(path.join(tmp, 'quantize_config.json'));
    // scales with the wrong width
    writeSt(file, [
      { name: `${m}.g_idx`, dtype: 'I32', shape: [inF], data: i32(new Array(inF).fill(0)) },
      { name: `${m}.qweight`, dtype: 'I32', shape: [inF / 4, out], data: i32(qweight) },
      { name: `${m}.qzeros`, dtype: 'I32', shape: [1, out / 4], data: i32(qzeros) },
      { name: `${m}.scales`, dtype: 'F16', shape: [1, 4], data: f16(scales.slice(0, 4)) },
    ]);
    assert.throws(() => openModel(file), (e: Error) => e instanceof FormatError && e.file === file && /up_proj\.qweight: GPTQ 8-bit parts do not fit/.test(e.message));
    // AWQ in a layout this reader does not decode
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify({ quantization_config: { quant_method: 'awq', bits: 4, version: 'gemv' } }));
    assert.throws(() => openModel(file), (e: Error) => e instanceof FormatError && e.file === path.join(tmp, 'config.json') && /"gemv" layout is not read/.test(e.message));
  });
});

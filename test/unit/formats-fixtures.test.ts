/**
 * The committed fixtures (scripts/gen-fixtures.mjs) read back to exactly the
 * values the generator wrote down in manifest.json, whole and in pieces.
 */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openModel } from '../../src/formats/index';
import { openOnnx } from '../../src/formats/onnx/reader';
import { ModelFile, TensorInfo } from '../../src/formats/types';
import { parseTensorName } from '../../src/formats/naming';

const dir = path.resolve(__dirname, '../../../test/fixtures/formats');
type Expect = Record<string, Record<string, { dtype: string; shape: number[]; values: (number | string)[] }>>;
const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8')) as Expect;

function num(v: number | string): number {
  return v === 'Infinity' ? Infinity : v === '-0' ? -0 : (v as number);
}
function byName(m: ModelFile, name: string): TensorInfo {
  const t = m.tensors.find((x) => x.name === name);
  assert.ok(t, `tensor ${name} missing`);
  return t;
}
function checkValues(m: ModelFile, file: string, skip: (name: string) => boolean = () => false): void {
  for (const [name, e] of Object.entries(manifest[file])) {
    const t = byName(m, name);
    assert.equal(t.dtype, e.dtype, `${name} dtype`);
    assert.deepEqual(t.shape, e.shape, `${name} shape`);
    if (skip(name)) continue;
    const got = Array.from(m.readFloat32(t));
    assert.deepEqual(got, e.values.map((v) => Math.fround(num(v))), `${file} ${name}`);
    // Any sub-range reads the same values.
    if (t.numel > 2) {
      const s = 1, n = t.numel - 2;
      assert.deepEqual(Array.from(m.readFloat32(t, s, n)), got.slice(s, s + n), `${name} sub-range`);
    }
    // Chunked iteration covers the tensor in order.
    const it: number[] = [];
    for (const c of m.iterateFloat32(t, 3)) { assert.equal(c.start, it.length); it.push(...c.values); }
    assert.deepEqual(it, got, `${name} iterate`);
  }
}

describe('fixtures: safetensors', () => {
  it('all dtypes decode exactly; __metadata__ is read', () => {
    const m = openModel(path.join(dir, 'all-dtypes.safetensors'));
    assert.equal(m.format, 'safetensors');
    assert.deepEqual(m.metadata, { format: 'pt', note: 'quantscope fixture' });
    checkValues(m, 'all-dtypes.safetensors');
    m.close();
  });
  it('a sharded checkpoint opens whole from the index and from either shard', () => {
    const names = Object.keys(manifest['sharded/model.safetensors.index.json']);
    for (const f of ['model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) {
      const m = openModel(path.join(dir, 'sharded', f));
      assert.deepEqual(m.tensors.map((t) => t.name).sort(), names.slice().sort(), f);
      assert.equal(m.files.length, 3);
      assert.equal(m.files[0], path.join(dir, 'sharded', f));
      checkValues(m, 'sharded/model.safetensors.index.json');
      const q = byName(m, 'model.layers.0.self_attn.q_proj.weight');
      assert.deepEqual([q.layer.block, q.layer.role, q.layer.layerName], [0, 'q', 'model.layers.0']);
      m.close();
    }
  });
});

describe('fixtures: GGUF', () => {
  it('v3: every metadata value type, alignment, and tensors of each dtype', () => {
    const m = openModel(path.join(dir, 'v3.gguf'));
    assert.equal(m.formatVersion, 'GGUF v3');
    const md = m.metadata;
    assert.equal(md['general.name'], 'quantscope fixture ü');
    assert.equal(md['general.alignment'], 64);
    assert.deepEqual(
      ['test.u8', 'test.i8', 'test.u16', 'test.i16', 'test.u32', 'test.i32', 'test.f32', 'test.bool', 'test.f64'].map((k) => md[k]),
      [200, -100, 60000, -30000, 4000000000, -2000000000, 1.5, true, 0.1],
    );
    assert.equal(md['test.u64'], 18446744073709551615n);
    assert.equal(md['test.i64'], -9007199254740993n);
    assert.deepEqual(md['test.array_i32'], [1, -2, 3]);
    assert.deepEqual(md['test.array_str'], ['a', 'bc', '']);
    assert.deepEqual(md['test.nested'], [[1, 2], [], ['x']]);
    for (const t of m.tensors) {
      assert.equal(t.location.kind, 'disk');
      if (t.location.kind === 'disk') assert.equal(t.location.offset % 64, 0, `${t.name} aligned`);
    }
    checkValues(m, 'v3.gguf', (n) => n === 'blk.1.attn_q.weight');
    const iq = byName(m, 'blk.1.attn_q.weight');
    assert.equal(iq.byteLength, 66);
    assert.throws(() => m.readFloat32(iq), /unsupported GGUF type IQ2_XXS/);
    assert.equal(m.readBytes(iq).length, 66);
    const k = byName(m, 'blk.0.attn_k.weight');
    assert.deepEqual([k.layer.block, k.layer.role, k.layer.layerName, k.layer.outputChannelAxis], [0, 'k', 'blk.0', 0]);
    m.close();
  });
  it('v2 opens with default alignment', () => {
    const m = openModel(path.join(dir, 'v2.gguf'));
    assert.equal(m.formatVersion, 'GGUF v2');
    assert.equal(m.metadata['general.architecture'], 'gpt2');
    checkValues(m, 'v2.gguf');
    m.close();
  });
});

describe('fixtures: ONNX', () => {
  // The plain reader: openModel shows the quantized dq_x and nbits_b dequantized (test/unit/onnx-quantized-view.test.ts).
  it('raw_data, typed fields, Constant nodes and subgraph initializers decode exactly', () => {
    const m = openOnnx(path.join(dir, 'weights.onnx'));
    assert.equal(m.formatVersion, 'IR 10 / opset 21');
    assert.equal(m.metadata.author, 'fixture');
    assert.equal(m.metadata.producer_name, 'quantscope-fixtures');
    checkValues(m, 'weights.onnx');
    const size = fs.statSync(path.join(dir, 'weights.onnx')).size;
    for (const t of m.tensors) {
      if (t.name.startsWith('raw_') || t.name === 'conv_w') {
        assert.equal(t.location.kind, 'disk', t.name);
        if (t.location.kind === 'disk') assert.ok(t.location.offset + t.location.length <= size);
      }
      if (t.name.startsWith('typed_')) assert.equal(t.location.kind, 'inline', t.name);
    }
    assert.equal(byName(m, 'cw').source, 'constant');
    assert.equal(byName(m, 'sub_w').source, 'initializer');
    assert.deepEqual(m.graph?.opsetImports, [{ domain: '', version: 21 }, { domain: 'com.microsoft', version: 1 }]);
    assert.deepEqual(m.graph?.inputs.map((i) => [i.name, i.shape]), [['X', ['N', 1, 4, 4]], ['X2', ['N', 2]], ['cond', []]]);
    assert.equal(m.graph?.nodes.find((n) => n.name === 'gemm')?.attributes.transB, 1);
    m.close();
  });
  it('links every weight to its consumer with the output-channel axis of that op', () => {
    const m = openOnnx(path.join(dir, 'weights.onnx'));
    const link = (n: string): [string | undefined, string | undefined, number | undefined, string | undefined] => {
      const l = byName(m, n).layer;
      return [l.opType, l.layerName, l.outputChannelAxis, l.consumers[0]?.graph];
    };
    assert.deepEqual(link('conv_w'), ['Conv', 'conv', 0, 'main']);
    assert.deepEqual(link('conv_b'), ['Conv', 'conv', 0, 'main']);
    assert.deepEqual(link('convt_w'), ['ConvTranspose', 'convt', 1, 'main']);
    assert.deepEqual(link('cw'), ['MatMul', 'mm_const', 1, 'main']); // through Identity and Cast
    assert.deepEqual(link('gemm_b'), ['Gemm', 'gemm', 0, 'main']); // transB = 1
    assert.deepEqual(link('emb'), ['Gather', 'gather', 0, 'main']);
    assert.deepEqual(link('lstm_w'), ['LSTM', 'lstm', 1, 'main']);
    assert.deepEqual(link('lstm_r'), ['LSTM', 'lstm', 1, 'main']);
    assert.deepEqual(link('dq_x'), ['DequantizeLinear', 'dq', 0, 'main']);
    assert.deepEqual(link('nbits_b'), ['MatMulNBits', 'nbits', 0, 'main']);
    assert.deepEqual(link('sub_w'), ['MatMul', 'sub_mm', 1, 'main/if/then_branch']);
    assert.deepEqual(link('sub_c'), ['Add', 'sub_add', undefined, 'main/if/then_branch']);
    // mm_b is used in the main graph and, by outer-scope reference, inside then_branch.
    const mmb = byName(m, 'mm_b').layer;
    assert.deepEqual(mmb.consumers.map((c) => [c.node, c.graph, c.inputIndex]), [['mm', 'main', 1], ['sub_outer', 'main/if/then_branch', 1]]);
    // Loop body: its own initializer and Constant, and an outer initializer used inside it.
    assert.deepEqual(link('loop_w'), ['Conv', 'loop_conv', 0, 'main/loop/body']);
    assert.deepEqual(link('loop_c'), ['Conv', 'loop_conv', 0, 'main/loop/body']);
    assert.deepEqual(byName(m, 'emb').layer.consumers.map((c) => [c.node, c.opType, c.graph]), [['gather', 'Gather', 'main'], ['loop_gemm', 'Gemm', 'main/loop/body']]);
    assert.deepEqual([byName(m, 'loop_w').graph, byName(m, 'conv_w').graph, byName(m, 'cw').graph], ['main/loop/body', 'main', 'main']);
    assert.equal(byName(m, 'else_out').source, 'constant');
    assert.deepEqual(byName(m, 'else_out').layer.consumers, []);
    m.close();
  });
  it('external data: offsets and lengths into files beside the model', () => {
    const m = openModel(path.join(dir, 'external.onnx'));
    checkValues(m, 'external.onnx');
    assert.deepEqual(m.files.map((f) => path.basename(f)), ['external.onnx', 'external.bin', 'external2.bin']);
    const b = byName(m, 'ext_b');
    assert.deepEqual(b.location, { kind: 'disk', file: path.join(dir, 'external.bin'), offset: 32, length: 4 });
    assert.equal(m.sizeOnDisk, fs.statSync(path.join(dir, 'external.onnx')).size + 36 + 8);
    m.close();
  });
});

describe('naming', () => {
  it('maps the common transformer schemes to (block, role)', () => {
    const cases: [string, number | undefined, string | undefined][] = [
      ['model.layers.12.self_attn.q_proj.weight', 12, 'q'],
      ['model.layers.12.self_attn.k_proj.weight', 12, 'k'],
      ['model.layers.12.self_attn.v_proj.weight', 12, 'v'],
      ['model.layers.12.self_attn.o_proj.weight', 12, 'o'],
      ['model.layers.3.mlp.gate_proj.weight', 3, 'gate'],
      ['model.layers.3.mlp.up_proj.weight', 3, 'up'],
      ['model.layers.3.mlp.down_proj.weight', 3, 'down'],
      ['model.layers.3.input_layernorm.weight', 3, 'norm'],
      ['model.layers.3.post_attention_layernorm.weight', 3, 'norm'],
      ['model.embed_tokens.weight', undefined, 'embed'],
      ['lm_head.weight', undefined, 'lm_head'],
      ['model.norm.weight', undefined, 'norm'],
      ['blk.12.attn_q.weight', 12, 'q'],
      ['blk.12.attn_k.weight', 12, 'k'],
      ['blk.12.attn_v.weight', 12, 'v'],
      ['blk.12.attn_output.weight', 12, 'o'],
      ['blk.0.ffn_gate.weight', 0, 'gate'],
      ['blk.0.ffn_up.weight', 0, 'up'],
      ['blk.0.ffn_down.weight', 0, 'down'],
      ['blk.0.attn_norm.weight', 0, 'norm'],
      ['token_embd.weight', undefined, 'embed'],
      ['output.weight', undefined, 'lm_head'],
      ['output_norm.weight', undefined, 'norm'],
      ['transformer.h.12.attn.c_attn.weight', 12, 'qkv'],
      ['transformer.h.12.attn.c_proj.weight', 12, 'o'],
      ['transformer.h.12.mlp.c_fc.weight', 12, 'ffn_in'],
      ['transformer.h.12.mlp.c_proj.weight', 12, 'ffn_out'],
      ['transformer.h.1.ln_1.weight', 1, 'norm'],
      ['transformer.wte.weight', undefined, 'embed'],
      ['encoder.layer.3.attention.self.query.weight', 3, 'q'],
      ['encoder.layer.3.attention.self.key.bias', 3, 'k'],
      ['encoder.layer.3.attention.self.value.weight', 3, 'v'],
      ['encoder.layer.3.attention.output.dense.weight', 3, 'o'],
      ['encoder.layer.3.attention.output.LayerNorm.weight', 3, 'norm'],
      ['encoder.layer.3.intermediate.dense.weight', 3, 'ffn_in'],
      ['encoder.layer.3.output.dense.weight', 3, 'ffn_out'],
      ['bert.embeddings.word_embeddings.weight', undefined, 'embed'],
    ];
    for (const [name, block, role] of cases) {
      const r = parseTensorName(name);
      assert.deepEqual([r.block, r.role], [block, role], name);
    }
    assert.equal(parseTensorName('model.layers.12.self_attn.q_proj.weight').layerName, 'model.layers.12');
    assert.equal(parseTensorName('blk.7.attn_q.weight').layerName, 'blk.7');
    assert.deepEqual(parseTensorName('conv2d_0.w_0'), {});
  });
});

import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { openModel } from '../../src/formats';

/** A minimal safetensors file written by hand from the spec: u64 header length, JSON header, data. */
function writeSafetensors(file: string, tensors: Record<string, number[]>): void {
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [name, shape] of Object.entries(tensors)) {
    const bytes = shape.reduce((a, b) => a * b, 1) * 4;
    header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  fs.writeFileSync(file, Buffer.concat([len, json, Buffer.alloc(offset)]));
}

describe('safetensors output-channel axis', () => {
  it('is 0 for PyTorch Linear/Conv/Embedding weights, 1 for GPT-2 Conv1D, none for vectors', () => {
    const file = path.join(os.tmpdir(), `qs-axis-${process.pid}.safetensors`);
    writeSafetensors(file, {
      'model.layers.0.self_attn.q_proj.weight': [8, 4],
      'model.embed_tokens.weight': [16, 4],
      'conv1.weight': [6, 3, 3, 3],
      'transformer.h.3.attn.c_attn.weight': [4, 12],
      'transformer.h.3.mlp.c_fc.weight': [4, 16],
      'model.layers.0.input_layernorm.weight': [4],
    });
    try {
      const m = openModel(file);
      const axis = Object.fromEntries(m.tensors.map((t) => [t.name, t.layer.outputChannelAxis]));
      assert.deepEqual(axis, {
        'model.layers.0.self_attn.q_proj.weight': 0,
        'model.embed_tokens.weight': 0,
        'conv1.weight': 0,
        'transformer.h.3.attn.c_attn.weight': 1,
        'transformer.h.3.mlp.c_fc.weight': 1,
        'model.layers.0.input_layernorm.weight': undefined,
      });
      m.close();
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});

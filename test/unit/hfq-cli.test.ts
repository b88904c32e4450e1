import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { assertBuilt, root, runCli } from './cli-spawn';
import { tinyLlama, weights, writeNpz } from './hfqUtil';
import { openModel } from '../../src/formats/index';

/**
 * An unpacker written in Python with torch bit operations from the published
 * layouts (GPTQ v1 qweight/qzeros/scales/g_idx; compressed-tensors
 * weight_packed/weight_scale/weight_zero_point/weight_shape), independent of
 * the TypeScript code: it prints every module's W[out, in] in float64.
 */
const PY_UNPACK = String.raw`
import json, struct, sys, torch
def load(path):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop('__metadata__', None)
    dt = {'I32': torch.int32, 'I64': torch.int64, 'F16': torch.float16, 'BF16': torch.bfloat16, 'F32': torch.float32}
    out = {}
    for k, v in header.items():
        a, b = v['data_offsets']
        out[k] = torch.frombuffer(bytearray(data[a:b]), dtype=dt[v['dtype']]).reshape(v['shape']) if b > a else None
    return out
t = load(sys.argv[1]); kind = sys.argv[2]; bits = int(sys.argv[3])
per = 32 // bits; mask = (1 << bits) - 1
res = {}
if kind == 'gptq':
    for k in [k for k in t if k.endswith('.qweight')]:
        m = k[:-len('.qweight')]
        qw, qz, sc, g = t[m + '.qweight'], t[m + '.qzeros'], t[m + '.scales'].double(), t[m + '.g_idx'].long()
        shifts = torch.arange(0, 32, bits, dtype=torch.int32)
        q = ((qw.unsqueeze(1) >> shifts.view(1, -1, 1)) & mask).reshape(-1, qw.shape[1])        # [in, out]
        z = ((qz.unsqueeze(2) >> shifts.view(1, 1, -1)) & mask).reshape(qz.shape[0], -1) + 1   # v1: stored zero - 1
        w = sc[g] * (q.double() - z[g].double())                                                 # [in, out]
        res[m + '.weight'] = w.t().reshape(-1).tolist()
else:
    for k in [k for k in t if k.endswith('.weight_packed')]:
        m = k[:-len('.weight_packed')]
        wp, sc, shape = t[m + '.weight_packed'], t[m + '.weight_scale'].double(), t[m + '.weight_shape'].tolist()
        out_f, in_f = shape
        shifts = torch.arange(0, 32, bits, dtype=torch.int32)
        q = ((wp.unsqueeze(2) >> shifts.view(1, 1, -1)) & mask).reshape(out_f, -1)[:, :in_f] - (1 << (bits - 1))
        groups = sc.shape[1]; gs = in_f // groups
        zp = t.get(m + '.weight_zero_point')
        if zp is not None:
            z = ((zp.unsqueeze(1) >> shifts.view(1, -1, 1)) & mask).reshape(-1, groups)[:out_f] - (1 << (bits - 1))
        else:
            z = torch.zeros(out_f, groups, dtype=torch.int32)
        gi = torch.arange(in_f) // gs
        w = sc[:, gi] * (q.double() - z[:, gi].double())
        res[m + '.weight'] = w.reshape(-1).tolist()
print(json.dumps(res))
`;

function hasTorch(): boolean {
  if (!fs.existsSync('/usr/bin/python3')) return false;
  return spawnSync('/usr/bin/python3', ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
}

describe('quantscope quantize --target safetensors-* (CLI child process)', function () {
  this.timeout(180_000);
  let tmp: string;
  before(() => assertBuilt());
  beforeEach(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-hfq-cli-')); });
  afterEach(() => { fs.rmSync(tmp, { recursive: true, force: true }); });

  it('writes a compressed-tensors folder (JSON report), the stats command reads it dequantized; an unknown quant_method exits 1 naming config.json', async () => {
    const src = path.join(tmp, 'llama');
    tinyLlama(src, { layers: 1 });
    const out = path.join(tmp, 'w4');
    const r = await runCli(['quantize', src, '-o', out, '--target', 'safetensors-compressed', '--bits', '4', '--block-size', '32', '--asym', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(r.stdout.toString('utf8'));
    assert.equal(rep.schema, 'quantscope/quantize/v1');
    const validate = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true }).compile(JSON.parse(fs.readFileSync(path.join(root, 'schemas', 'quantize.v1.json'), 'utf8')) as object);
    const valid: boolean = validate(rep);
    assert.ok(valid, JSON.stringify(validate.errors));
    assert.equal(rep.target, 'safetensors-compressed');
    assert.equal(rep.output, out);
    assert.equal(rep.totals.tensorsQuantized, 7);
    assert.deepEqual(rep.verification.readBack, { checked: 7, mismatched: [] });
    assert.equal(rep.settings.quantization_config.format, 'pack-quantized');
    const ins = await runCli(['inspect', path.join(out, 'model.safetensors'), '--json']);
    assert.equal(ins.code, 0, ins.stderr);
    const inspectSchema = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true }).compile(JSON.parse(fs.readFileSync(path.join(root, 'schemas', 'inspect.v1.json'), 'utf8')) as object);
    const insDoc: unknown = JSON.parse(ins.stdout.toString('utf8'));
    const insValid: boolean = inspectSchema(insDoc);
    assert.ok(insValid, JSON.stringify(inspectSchema.errors));
    assert.match(ins.stdout.toString('utf8'), /"dtype": ?"q:ct4"/);
    const s = await runCli(['stats', path.join(out, 'model.safetensors'), '--no-cache', '--threads', '1']);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout.toString('utf8'), /model\.layers\.0\.mlp\.down_proj\.weight\s+q:ct4\s+64×128/);
    // GPTQ with act-order on recorded activations, through --calib.
    const npz = path.join(tmp, 'acts.npz');
    const acts: Record<string, { data: Float32Array; dims: number[] }> = {};
    for (const n of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.up_proj']) acts[`model.layers.0.${n}`] = { data: weights(64 * 64, 7, 1), dims: [64, 64] };
    acts['model.layers.0.mlp.down_proj'] = { data: weights(64 * 128, 8, 1), dims: [64, 128] };
    writeNpz(npz, acts);
    const g = await runCli(['quantize', src, '-o', path.join(tmp, 'g'), '--target', 'safetensors-gptq', '--algo', 'gptq', '--act-order', '--calib', npz, '--block-size', '32', '--json']);
    assert.equal(g.code, 0, g.stderr);
    const gr = JSON.parse(g.stdout.toString('utf8')) as { tensors: { choice: string }[]; verification: { readBack: { mismatched: string[] } } };
    assert.ok(gr.tensors.length === 7 && gr.tensors.every((t) => / gptq act-order$/.test(t.choice)), JSON.stringify(gr.tensors.map((t) => t.choice)));
    assert.deepEqual(gr.verification.readBack.mismatched, []);
    const cfg = path.join(src, 'config.json');
    fs.writeFileSync(cfg, JSON.stringify({ ...JSON.parse(fs.readFileSync(cfg, 'utf8')), quantization_config: { quant_method: 'hqq' } }));
    const bad = await runCli(['quantize', src, '-o', path.join(tmp, 'x'), '--target', 'safetensors-gptq']);
    assert.equal(bad.code, 1);
    assert.ok(bad.stderr.includes(cfg), bad.stderr);
    assert.match(bad.stderr, /already quantized \(quantization_config\.quant_method "hqq"\)/);
    assert.ok(!fs.existsSync(path.join(tmp, 'x')), 'no output folder left behind');
  });

  it('an unpacker written in Python/torch from the layouts decodes the written files to the reader\'s values (GPTQ 4 and 8 bits, compressed 4-bit asym)', async function () {
    if (!hasTorch()) this.skip();
    const src = path.join(tmp, 'llama');
    tinyLlama(src, { layers: 1 });
    const py = path.join(tmp, 'unpack.py');
    fs.writeFileSync(py, PY_UNPACK);
    for (const [target, kind, bits, extra] of [
      ['safetensors-gptq', 'gptq', 4, []], ['safetensors-gptq', 'gptq', 8, []], ['safetensors-compressed', 'ct', 4, ['--asym']],
    ] as const) {
      const out = path.join(tmp, `${kind}${bits}`);
      const r = await runCli(['quantize', src, '-o', out, '--target', target, '--bits', String(bits), '--block-size', '32', ...extra]);
      assert.equal(r.code, 0, r.stderr);
      const p = spawnSync('/usr/bin/python3', [py, path.join(out, 'model.safetensors'), kind, String(bits)], { encoding: 'utf8', maxBuffer: 1 << 28 });
      assert.equal(p.status, 0, p.stderr);
      const ref = JSON.parse(p.stdout) as Record<string, number[]>;
      assert.equal(Object.keys(ref).length, 7);
      const m = openModel(path.join(out, 'model.safetensors'));
      try {
        for (const [name, w] of Object.entries(ref)) {
          const got = m.readFloat32(m.tensors.find((t) => t.name === name)!);
          assert.equal(got.length, w.length);
          for (let k = 0; k < w.length; k++) assert.equal(got[k], w[k], `${target} ${bits}-bit ${name}[${k}]`);
        }
      } finally {
        m.close();
      }
    }
  });
});

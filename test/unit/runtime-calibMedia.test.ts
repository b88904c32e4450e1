import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { loadCalibData, parseNpy, type InputSpec } from '../../src/runtime/calibData';
import { decodeImage, imageHeaderSize } from '../../src/runtime/calibImages';
import { loadTokenizer } from '../../src/runtime/calibText';
import { pngWith } from './pngBytes';

const PY = '/usr/bin/python3';
function python(code: string, ...args: string[]): string {
  const r = spawnSync(PY, ['-c', code, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return r.stdout;
}
const havePil = spawnSync(PY, ['-c', 'import PIL, torch, numpy']).status === 0;

describe('runtime calibration data: images and tokenized text', function () {
  this.timeout(120_000);
  let tmp: string;
  before(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-media-')); });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('decodes PNG and JPEG as Pillow does, and resizes + normalises as torch bilinear (align_corners=False) does', function () {
    if (!havePil) this.skip();
    // Pillow writes a random RGB image as PNG and as 4:4:4 JPEG, then gives its own decode and torch's resize of both.
    const py = `
import sys, numpy as np, torch, torch.nn.functional as F
from PIL import Image
d = sys.argv[1]
rng = np.random.default_rng(7)
a = rng.integers(0, 256, size=(23, 37, 3), dtype=np.uint8)
Image.fromarray(a).save(d + '/a.png')
Image.fromarray(a).save(d + '/b.jpg', quality=95, subsampling=0)
for name in ('a.png', 'b.jpg'):
    x = np.asarray(Image.open(d + '/' + name).convert('RGB')).astype(np.float64)
    np.save(d + '/' + name + '.pixels.npy', x.astype(np.float32))
    t = torch.from_numpy(x / 255.0).permute(2, 0, 1)[None]
    y = F.interpolate(t, size=(16, 24), mode='bilinear', align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1).double()
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1).double()
    np.save(d + '/' + name + '.ref.npy', ((y - mean) / std).float().numpy())
`;
    const d = path.join(tmp, 'pil');
    fs.mkdirSync(d);
    python(py, d);
    for (const name of ['a.png', 'b.jpg']) {
      const img = decodeImage(fs.readFileSync(path.join(d, name)), name);
      const pixels = parseNpy(fs.readFileSync(path.join(d, `${name}.pixels.npy`)), name).data as Float32Array;
      assert.equal(img.width, 37);
      assert.equal(img.height, 23);
      let maxd = 0;
      for (let p = 0; p < 37 * 23; p++) for (let c = 0; c < 3; c++) maxd = Math.max(maxd, Math.abs(img.data[p * 4 + c] - pixels[p * 3 + c]));
      // PNG is lossless: exact. JPEG decoders may round their IDCT differently by a level or two.
      assert.ok(name.endsWith('.png') ? maxd === 0 : maxd <= 3, `${name}: decoded pixels differ from Pillow's by up to ${maxd}`);
      if (name.endsWith('.png')) {
        const spec: InputSpec[] = [{ name: 'x', dtype: 'f32', shape: ['n', 3, 16, 24] }];
        const set = loadCalibData(path.join(d, name), spec, { image: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] } });
        assert.equal(set.synthetic, false);
        const got = set.samples[0].x;
        assert.deepEqual(got.dims, [1, 3, 16, 24]);
        const ref = parseNpy(fs.readFileSync(path.join(d, `${name}.ref.npy`)), name).data as Float32Array;
        let err = 0;
        for (let i = 0; i < ref.length; i++) err = Math.max(err, Math.abs((got.data as Float32Array)[i] - ref[i]));
        assert.ok(err < 1e-5, `resize/normalise differs from torch by ${err}`);
      }
    }
  });

  it('a folder of images feeds one 4-D input: NHWC detected, BGR and gray honoured, a symbolic width follows the height\'s scale', () => {
    const { PNG } = require('pngjs') as typeof import('pngjs');
    const d = path.join(tmp, 'folder');
    fs.mkdirSync(d);
    for (const [i, [w, h]] of [[40, 20], [10, 10]].entries()) {
      const png = new PNG({ width: w, height: h });
      for (let p = 0; p < w * h; p++) png.data.set([200, 100, 50, 255], p * 4);
      fs.writeFileSync(path.join(d, `${i}.png`), PNG.sync.write(png));
    }
    // PP-OCR recognition style: [n, 3, 48, W]. The first image (40×20) fixes W = 96 for all.
    const rec = loadCalibData(d, [{ name: 'x', dtype: 'f32', shape: ['n', 3, 48, 'w'] }], { image: { channelOrder: 'bgr' } });
    assert.equal(rec.samples.length, 2);
    for (const s of rec.samples) {
      assert.deepEqual(s.x.dims, [1, 3, 48, 96]);
      const v = s.x.data as Float32Array;
      assert.ok(Math.abs(v[0] - 50 / 255) < 1e-6 && Math.abs(v[48 * 96] - 100 / 255) < 1e-6 && Math.abs(v[2 * 48 * 96] - 200 / 255) < 1e-6, 'BGR order');
    }
    const gray = loadCalibData(d, [{ name: 'img', dtype: 'f32', shape: [1, 8, 8, 1] }], {});
    assert.deepEqual(gray.samples[0].img.dims, [1, 8, 8, 1]);
    assert.ok(Math.abs((gray.samples[0].img.data as Float32Array)[0] - (0.299 * 200 + 0.587 * 100 + 0.114 * 50) / 255) < 1e-6);
    assert.throws(() => loadCalibData(d, [{ name: 'x', dtype: 'f32', shape: [1, 4, 8, 8] }], {}), /0\.png: inputs: input 'x' has 4 channels in NCHW/);
    assert.throws(() => loadCalibData(d, [{ name: 'ids', dtype: 'i64', shape: [1, 8] }], {}), /images feed one 4-D float input/);
  });

  it('refuses image bombs from the header, and corrupt pixel data, naming the file', () => {
    // A PNG that declares 100000×100000 pixels: refused before any inflate.
    const huge = path.join(tmp, 'huge.png');
    fs.writeFileSync(huge, pngWith(100_000, 100_000, zlib.deflateSync(Buffer.alloc(16))));
    const spec: InputSpec[] = [{ name: 'x', dtype: 'f32', shape: [1, 3, 8, 8] }];
    const t0 = Date.now();
    assert.throws(() => loadCalibData(huge, spec), /huge\.png: PNG: declares 100000×100000 pixels, over the 67,108,864-pixel limit/);
    // A 10×10 PNG whose IDAT inflates to 64 MiB: the decoder stops at the declared size.
    const bomb = path.join(tmp, 'bomb.png');
    fs.writeFileSync(bomb, pngWith(10, 10, zlib.deflateSync(Buffer.alloc(64 << 20), { level: 9 })));
    assert.throws(() => loadCalibData(bomb, spec), /bomb\.png: PNG: /);
    // A JPEG whose frame header declares 60000×60000.
    const sof = Buffer.from([0xff, 0xd8, 0xff, 0xc0, 0x00, 0x11, 0x08, 0xea, 0x60, 0xea, 0x60, 0x03, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 0xff, 0xd9]);
    const bigJpeg = path.join(tmp, 'big.jpg');
    fs.writeFileSync(bigJpeg, sof);
    assert.deepEqual(imageHeaderSize(sof, 'big.jpg'), { width: 60000, height: 60000, kind: 'jpeg' });
    assert.throws(() => loadCalibData(bigJpeg, spec), /big\.jpg: JPEG: declares 60000×60000 pixels/);
    const trunc = path.join(tmp, 'trunc.png');
    fs.writeFileSync(trunc, pngWith(8, 8, zlib.deflateSync(Buffer.alloc(8 * 25))).subarray(0, 60));
    assert.throws(() => loadCalibData(trunc, spec), /trunc\.png: PNG: /);
    const notImage = path.join(tmp, 'x.jpg');
    fs.writeFileSync(notImage, 'hello');
    assert.throws(() => loadCalibData(notImage, spec), /x\.jpg: image: not a PNG or JPEG file/);
    assert.ok(Date.now() - t0 < 10_000);
  });

  // A word-level BPE: the vocabulary and merges below are the whole tokenizer; the ids expected are worked out by hand.
  const bpe = {
    version: '1.0',
    added_tokens: [],
    normalizer: null,
    pre_tokenizer: { type: 'Whitespace' },
    post_processor: null,
    decoder: null,
    model: { type: 'BPE', vocab: { '[UNK]': 0, a: 1, b: 2, c: 3, ab: 4, abc: 5, '.': 6 }, merges: ['a b', 'ab c'], unk_token: '[UNK]' },
  };

  it('tokenizes a .txt with the model\'s tokenizer.json and fills attention_mask and position_ids', () => {
    const d = path.join(tmp, 'tok');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'tokenizer.json'), JSON.stringify(bpe));
    fs.writeFileSync(path.join(d, 'corpus.txt'), 'abc ab a. cab abc');
    // abc → 5; ab → 4; a. → 1 6; cab → 3 4; abc → 5  ⇒  5 4 1 6 3 4 5
    const tok = loadTokenizer(path.join(d, 'tokenizer.json'));
    assert.deepEqual(tok.encode('abc ab a. cab abc'), [5, 4, 1, 6, 3, 4, 5]);
    const inputs: InputSpec[] = [
      { name: 'input_ids', dtype: 'i64', shape: ['b', 's'] },
      { name: 'attention_mask', dtype: 'i64', shape: ['b', 's'] },
      { name: 'position_ids', dtype: 'i32', shape: ['b', 's'] },
    ];
    const set = loadCalibData(path.join(d, 'corpus.txt'), inputs, { tokenizer: path.join(d, 'tokenizer.json'), window: 3 });
    assert.equal(set.samples.length, 2);
    assert.deepEqual(Array.from(set.samples[1].input_ids.data as BigInt64Array, Number), [6, 3, 4]);
    assert.deepEqual(Array.from(set.samples[1].attention_mask.data as BigInt64Array, Number), [1, 1, 1]);
    assert.deepEqual(Array.from(set.samples[1].position_ids.data as Int32Array), [0, 1, 2]);
    // Ids beyond the model's embedding table mean the wrong tokenizer.
    assert.throws(() => loadCalibData(path.join(d, 'corpus.txt'), inputs, { tokenizer: path.join(d, 'tokenizer.json'), window: 3, intHigh: { input_ids: 5 } }),
      /tokenizer\.json: vocabulary: token id 5 is outside the model's embedding table of 5 rows/);
  });

  it('refuses hostile tokenizer files with the file named: too big, too deep, wrong types, not JSON', () => {
    const d = path.join(tmp, 'badtok');
    fs.mkdirSync(d);
    const f = (name: string, body: string | null, size?: number): string => {
      const p = path.join(d, name);
      if (body !== null) fs.writeFileSync(p, body);
      else { const fd = fs.openSync(p, 'w'); fs.ftruncateSync(fd, size!); fs.closeSync(fd); } // sparse: large without disk
      return p;
    };
    assert.throws(() => loadTokenizer(f('big.json', null, 300 * 1024 * 1024)), /big\.json: size: 314572800 bytes exceeds the 268435456-byte limit/);
    assert.throws(() => loadTokenizer(f('deep.json', '['.repeat(100_000) + ']'.repeat(100_000))), /deep\.json: tokenizer: (expected a JSON object|nested more than 64)/);
    assert.throws(() => loadTokenizer(f('deep2.json', `{"model":{"type":"BPE","vocab":{},"x":${'['.repeat(5000)}${']'.repeat(5000)}}}`)), /deep2\.json: tokenizer: nested more than 64 levels deep/);
    assert.throws(() => loadTokenizer(f('types.json', JSON.stringify({ ...bpe, model: { ...bpe.model, vocab: 'abc' } }))), /types\.json: model\.vocab: missing or not an object/);
    assert.throws(() => loadTokenizer(f('types2.json', JSON.stringify({ ...bpe, model: { ...bpe.model, merges: 7 } }))), /types2\.json: model\.merges: expected an array/);
    assert.throws(() => loadTokenizer(f('nomodel.json', '{}')), /nomodel\.json: model: missing or not an object/);
    assert.throws(() => loadTokenizer(f('text.json', 'not json')), /text\.json: JSON: /);
    assert.throws(() => loadTokenizer(path.join(d, 'missing.json')), /missing\.json: tokenizer: file not found/);
  });
});

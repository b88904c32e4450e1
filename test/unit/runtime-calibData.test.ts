import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { zipSync } from 'fflate';
import { encodeNpy, hashSamples, loadCalibData, parseNpy, parseNpz, syntheticSamples, InputSpec } from '../../src/runtime/calibData';

// Fixtures written by numpy 1.24 (np.save / np.savez / np.savez_compressed), see test/fixtures/calib.
const dir = path.resolve(__dirname, '../../../test/fixtures/calib');
const read = (f: string) => fs.readFileSync(path.join(dir, f));
/** What numpy wrote into x*.npy: arange(120).reshape(2,3,4,5) / 7 in float32. */
const expectedX = Float32Array.from({ length: 120 }, (_, i) => Math.fround(i / 7));

const image: InputSpec[] = [{ name: 'x', dtype: 'f32', shape: ['batch', 3, 4, 5] }];

describe('runtime calibration data', () => {
  it('reads numpy .npy: little-endian, big-endian and Fortran order give the same C-order values', () => {
    for (const f of ['x.npy', 'x_bigendian.npy', 'x_fortran.npy']) {
      const t = parseNpy(read(f), f);
      assert.equal(t.dtype, 'float32');
      assert.deepEqual(t.dims, [2, 3, 4, 5]);
      assert.deepEqual(Array.from(t.data as Float32Array), Array.from(expectedX), f);
    }
    assert.equal(parseNpy(read('x_f64.npy'), 'x_f64.npy').dtype, 'float64');
  });

  it('refuses object arrays and pickled .npz entries without unpickling', () => {
    assert.throws(() => parseNpy(read('obj.npy'), 'obj.npy'), /obj\.npy: dtype: object array.*refused/);
    assert.throws(() => parseNpz(read('pickled.npz'), 'pickled.npz'), /pickled\.npz.*object array.*refused/);
  });

  it('reads stored and deflated .npz archives', () => {
    for (const f of ['pair.npz', 'pair_compressed.npz']) {
      const m = parseNpz(read(f), f);
      assert.deepEqual([...m.keys()].sort(), ['a', 'b']);
      assert.deepEqual(Array.from(m.get('a')!.data as Float32Array), [0, 1, 2, 3, 4, 5]);
      assert.deepEqual(m.get('a')!.dims, [3, 2]);
      assert.deepEqual(Array.from(m.get('b')!.data as BigInt64Array), [0n, 1n, 2n]);
    }
  });

  it('bounds archive sizes: a declared size over the limit and a bomb-like ratio are refused before inflating', () => {
    // zeros.npz: 4 MiB of zeros deflated to ~4 KB (ratio ~1000:1).
    assert.throws(() => parseNpz(read('zeros.npz'), 'zeros.npz', 1024 * 1024), /zeros\.npz: a\.npy: array of 4194432 bytes exceeds/);
    const bomb = zipSync({ 'a.npy': new Uint8Array(8 * 1024 * 1024) }, { level: 9 });
    assert.throws(() => parseNpz(bomb, 'bomb.npz'), /bomb\.npz: a\.npy: compression ratio .* zip bomb/);
    assert.throws(() => parseNpz(zipSync({ 'a.pkl': new Uint8Array(4) }), 'p.npz'), /p\.npz: a\.pkl: an \.npz holds only \.npy/);
    assert.throws(() => parseNpz(new Uint8Array([1, 2, 3, 4]), 'junk.npz'), /junk\.npz: archive: not a readable \.npz/);
  });

  it('writes .npy that numpy layout rules accept (round trip through our parser keeps bytes)', () => {
    const t = { dtype: 'int64' as const, dims: [2, 2], data: BigInt64Array.from([1n, -2n, 3n, 4n]) };
    const back = parseNpy(encodeNpy(t), 't.npy');
    assert.deepEqual(back.dims, [2, 2]);
    assert.deepEqual(Array.from(back.data as BigInt64Array), [1n, -2n, 3n, 4n]);
    // numpy aligns the data start to 64 bytes.
    const hlen = encodeNpy(t)[8] | (encodeNpy(t)[9] << 8);
    assert.equal((10 + hlen) % 64, 0);
  });

  it('cuts a file along a symbolic leading axis into samples and checks names, ranks, dims and dtypes', () => {
    const set = loadCalibData(path.join(dir, 'x.npy'), image);
    assert.equal(set.synthetic, false);
    assert.equal(set.samples.length, 2);
    assert.deepEqual(set.samples[1].x.dims, [1, 3, 4, 5]);
    assert.deepEqual(Array.from(set.samples[1].x.data as Float32Array), Array.from(expectedX.subarray(60)));
    assert.throws(() => loadCalibData(path.join(dir, 'x_f64.npy'), image), /x_f64\.npy: input 'x': dtype float64, the model expects float32/);
    assert.throws(() => loadCalibData(path.join(dir, 'x.npy'), [{ name: 'x', dtype: 'f32', shape: ['b', 3, 4, 6] }]),
      /x\.npy: input 'x': shape \[2, 3, 4, 5\] differs from the model's \[b, 3, 4, 6\] at axis 3/);
    assert.throws(() => loadCalibData(path.join(dir, 'x.npy'), [{ name: 'x', dtype: 'f32', shape: ['b', 60] }]), /has rank 4, the model expects \[b, 60\]/);
    assert.throws(() => loadCalibData(path.join(dir, 'pair.npz'), [{ name: 'a', dtype: 'f32', shape: ['n', 2] }]), /pair\.npz: array 'b': names no model input/);
    assert.throws(() => loadCalibData(path.join(dir, 'pair.npz'), [{ name: 'a', dtype: 'f32' }, { name: 'b', dtype: 'i64' }, { name: 'c', dtype: 'f32' }]),
      /pair\.npz: input 'c': missing/);
    assert.throws(() => loadCalibData(path.join(dir, 'x.npy'), [{ name: 'a' }, { name: 'b' }]), /x\.npy: inputs: the model has 2 inputs/);
  });

  it('reads JSON samples and folders; the hash follows the bytes', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-calib-'));
    try {
      fs.writeFileSync(path.join(tmp, 'a.json'), JSON.stringify([{ ids: [[1, 2, 3]] }, { ids: [[4, 5, 6]] }]));
      fs.writeFileSync(path.join(tmp, 'b.npy'), encodeNpy({ dtype: 'int64', dims: [1, 3], data: BigInt64Array.from([7n, 8n, 9n]) }));
      const spec: InputSpec[] = [{ name: 'ids', dtype: 'i64', shape: ['batch', 'seq'] }];
      const set = loadCalibData(tmp, spec);
      assert.equal(set.samples.length, 3);
      assert.deepEqual(set.samples.map((s) => Array.from(s.ids.data as BigInt64Array).map(Number)), [[1, 2, 3], [4, 5, 6], [7, 8, 9]]);
      assert.equal(loadCalibData(tmp, spec, { samples: 2 }).samples.length, 2);
      assert.notEqual(loadCalibData(tmp, spec, { samples: 2 }).hash, set.hash);
      assert.equal(loadCalibData(tmp, spec).hash, set.hash);
      fs.writeFileSync(path.join(tmp, 'c.json'), JSON.stringify({ ids: [[1, 2], [3]] }));
      assert.throws(() => loadCalibData(tmp, spec), /c\.json: sample 0: input 'ids': ragged/);
    } finally { fs.rmSync(tmp, { recursive: true, force: true }); }
  });

  it('cuts a .txt into byte windows for a byte-level model, and refuses it for other inputs', () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-calib-'));
    try {
      const f = path.join(tmp, 't.txt');
      fs.writeFileSync(f, 'héllo world!');
      const bytes = Array.from(Buffer.from('héllo world!'));
      const set = loadCalibData(f, [{ name: 'ids', dtype: 'i64', shape: ['b', 's'] }], { window: 4 });
      assert.equal(set.samples.length, Math.floor(bytes.length / 4));
      assert.deepEqual(set.samples[0].ids.dims, [1, 4]);
      assert.deepEqual(set.samples.flatMap((x) => Array.from(x.ids.data as BigInt64Array).map(Number)), bytes.slice(0, 4 * set.samples.length));
      assert.throws(() => loadCalibData(f, image), /t\.txt: inputs: text data feeds one integer token-id input/);
      assert.throws(() => loadCalibData(f, [{ name: 'ids', dtype: 'i64', shape: ['b', 's'] }], { window: 64 }), /t\.txt: size: 13 bytes: shorter than one window of 64/);
    } finally { fs.rmSync(tmp, { recursive: true, force: true }); }
  });

  it('synthesises deterministic labelled inputs from declared shapes', () => {
    const spec: InputSpec[] = [{ name: 'x', dtype: 'f32', shape: ['N', 3, 48, 'W'] }, { name: 'ids', dtype: 'i64', shape: ['N', 'S'] }];
    const a = syntheticSamples(spec, { samples: 3, dims: { W: 320 }, intHigh: { ids: 10 } });
    const b = syntheticSamples(spec, { samples: 3, dims: { W: 320 }, intHigh: { ids: 10 } });
    assert.equal(a.synthetic, true);
    assert.match(a.source, /synthetic/);
    assert.equal(a.hash, b.hash);
    assert.equal(a.hash, hashSamples(b.samples));
    assert.deepEqual(a.samples[0].x.dims, [1, 3, 48, 320]);
    assert.deepEqual(a.samples[0].ids.dims, [1, 32]);
    const ids = Array.from(a.samples[2].ids.data as BigInt64Array).map(Number);
    assert.ok(ids.every((v) => v >= 0 && v < 10) && new Set(ids).size > 3);
    // Standard normal: mean ≈ 0, variance ≈ 1 over 46080 values.
    const x = a.samples[0].x.data as Float32Array;
    const mean = x.reduce((s, v) => s + v, 0) / x.length;
    const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / x.length;
    assert.ok(Math.abs(mean) < 0.02 && Math.abs(variance - 1) < 0.03, `${mean} ${variance}`);
    assert.notEqual(syntheticSamples(spec, { samples: 3, seed: 2 }).hash, a.hash);
  });
});

/** `quantscope inspect`: text and JSON output, exit codes. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { captureCli } from './cliCapture';

const dir = path.resolve(__dirname, '../../../test/fixtures/formats');

const capture = (argv: string[]) => captureCli(['inspect', ...argv]);

describe('quantscope inspect', () => {
  it('prints the summary and one table row per tensor', async () => {
    const r = await capture([path.join(dir, 'v3.gguf')]);
    assert.equal(r.code, 0);
    assert.match(r.out, /format\s+gguf \(GGUF v3\)/);
    assert.match(r.out, /parameters\s+1,240/);
    assert.match(r.out, /blk\.0\.attn_k\.weight\s+gguf:q8_0\s+\[2, 64\]\s+128\s+136 B\s+block 0 k/);
    assert.equal(r.out.split('\n').filter((l) => /^(token_embd|blk\.|output)/.test(l)).length, 8);
  });
  it('--json gives the same numbers as data', async () => {
    const r = await capture([path.join(dir, 'weights.onnx'), '--json']);
    assert.equal(r.code, 0);
    const j = JSON.parse(r.out) as { format: string; parameters: number; tensors: { name: string; numel: number; layer: { opType?: string } }[] };
    assert.equal(j.format, 'onnx');
    assert.equal(j.parameters, j.tensors.reduce((s, t) => s + t.numel, 0));
    assert.equal(j.tensors.find((t) => t.name === 'conv_w')?.layer.opType, 'Conv');
  });
  it('exits 1 with the FormatError message on a bad file', async () => {
    const p = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'qs-inspect-')), 'bad.gguf');
    fs.writeFileSync(p, Buffer.from('GGUF\x01\x00\x00\x00' + '\x00'.repeat(24), 'latin1'));
    const r = await capture([p]);
    assert.equal(r.code, 1);
    assert.match(r.err, /bad\.gguf: version: unsupported GGUF version 1/);
    fs.rmSync(path.dirname(p), { recursive: true });
  });
});

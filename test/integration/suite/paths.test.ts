/** Paths from webviews are accepted only inside the workspace (src/host/workspacePaths.ts), in the real extension host. */
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isInside, workspacePath } from '../../../src/host/workspacePaths';
import { workspaceFile } from './helpers';

describe('paths from webviews', () => {
  it('a file inside the workspace is accepted; outside, traversal, links out, NUL and non-strings are refused', () => {
    const inside = workspaceFile('ppocr/ch_ppocr_mobile_v2.0_cls_infer.onnx').fsPath;
    assert.equal(workspacePath(inside), fs.realpathSync(inside));
    const root = path.dirname(path.dirname(inside));
    assert.equal(workspacePath(path.join(root, 'ppocr', '..', '..', '..', 'package.json')), undefined);
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'qs-outside-'));
    const secret = path.join(outside, 'model.onnx');
    fs.copyFileSync(inside, secret);
    assert.equal(workspacePath(secret), undefined);
    const link = path.join(root, `link-out-${process.pid}.onnx`);
    fs.symlinkSync(secret, link);
    try {
      assert.equal(workspacePath(link), undefined, 'a link inside the workspace to a file outside is refused');
    } finally {
      fs.rmSync(link, { force: true });
      fs.rmSync(outside, { recursive: true, force: true });
    }
    assert.equal(workspacePath(`${inside}\0.txt`), undefined);
    assert.equal(workspacePath(42), undefined);
    assert.equal(workspacePath(path.join(root, 'no-such-file.onnx')), undefined);
    assert.equal(isInside('/a/b', '/a/bc'), false);
    assert.equal(isInside('/a/b', '/a/b/c'), true);
    assert.equal(isInside('/a/b', '/a/b'), true);
  });
});

import * as assert from 'node:assert/strict';
import { parseFromInspector, parseTableView } from '../../src/shared/protocol/inspector';
import { parseFromSensitivity } from '../../src/shared/protocol/sensitivity';
import { pngBytes } from '../../src/shared/protocol/common';

const goodView = { sort: 'sqnr4', descending: true, filter: 'attn', group: 'block', config: 'int4-g128' };
// A 1×1 PNG (signature + IHDR + IDAT + IEND), base64.
const PNG_1x1 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==';

describe('webview protocol validation', () => {
  it('accepts each well-formed message and returns only known fields', () => {
    assert.deepEqual(parseFromInspector({ type: 'ready', extra: 1 }), { type: 'ready' });
    assert.deepEqual(parseFromInspector({ type: 'cancelAnalysis' }), { type: 'cancelAnalysis' });
    assert.deepEqual(parseFromInspector({ type: 'restartAnalysis' }), { type: 'restartAnalysis' });
    assert.deepEqual(parseFromInspector({ type: 'log', level: 'warn', message: 'x' }), { type: 'log', level: 'warn', message: 'x' });
    assert.deepEqual(parseFromInspector({ type: 'command', command: 'exportReport' }), { type: 'command', command: 'exportReport' });
    assert.deepEqual(parseFromInspector({ type: 'selectTensor', name: 'blk.0.attn_q.weight' }), { type: 'selectTensor', name: 'blk.0.attn_q.weight' });
    assert.deepEqual(parseFromInspector({ type: 'exportCsv', view: { ...goodView, evil: '__proto__' } }), { type: 'exportCsv', view: goodView });
    const png = parseFromInspector({ type: 'exportPng', chart: 'layer-sqnr', dataUrl: `data:image/png;base64,${PNG_1x1}` });
    assert.equal(png?.type, 'exportPng');
  });

  const malformed: [string, unknown][] = [
    ['null', null], ['a string', 'ready'], ['an array', [{ type: 'ready' }]], ['a number', 3], ['no type', {}], ['unknown type', { type: 'deleteFile' }],
    ['log with bad level', { type: 'log', level: 'debug', message: 'x' }],
    ['log with huge message', { type: 'log', level: 'info', message: 'x'.repeat(10_001) }],
    ['log with object message', { type: 'log', level: 'info', message: { toString: 'x' } }],
    ['unknown command', { type: 'command', command: 'workbench.action.terminal.new' }],
    ['selectTensor without name', { type: 'selectTensor' }],
    ['revealTensor without file', { type: 'revealTensor', name: 'w' }],
    ['revealTensor with empty name', { type: 'revealTensor', file: '/m/a.onnx', name: '' }],
    ['revealTensor with object file', { type: 'revealTensor', file: { path: '/x' }, name: 'w' }],
    ['revealTensor with huge file', { type: 'revealTensor', file: 'a'.repeat(5000), name: 'w' }],
    ['selectTensor with empty name', { type: 'selectTensor', name: '' }],
    ['selectTensor with number', { type: 'selectTensor', name: 7 }],
    ['selectTensor with huge name', { type: 'selectTensor', name: 'a'.repeat(5000) }],
    ['exportCsv without view', { type: 'exportCsv' }],
    ['exportCsv with unknown sort', { type: 'exportCsv', view: { ...goodView, sort: 'constructor' } }],
    ['exportCsv with string descending', { type: 'exportCsv', view: { ...goodView, descending: 'true' } }],
    ['exportCsv with bad group', { type: 'exportCsv', view: { ...goodView, group: 'file' } }],
    ['exportCsv with config path', { type: 'exportCsv', view: { ...goodView, config: '../../etc/passwd' } }],
    ['exportCsv with huge filter', { type: 'exportCsv', view: { ...goodView, filter: 'a'.repeat(1001) } }],
    ['exportCsv with array view', { type: 'exportCsv', view: [goodView] }],
    ['exportPng with jpeg', { type: 'exportPng', chart: 'size', dataUrl: 'data:image/jpeg;base64,AAAA' }],
    ['exportPng with svg', { type: 'exportPng', chart: 'size', dataUrl: 'data:image/svg+xml,<svg onload=alert(1)>' }],
    ['exportPng with non-base64 payload', { type: 'exportPng', chart: 'size', dataUrl: 'data:image/png;base64,<script>' }],
    ['exportPng with chart id as path', { type: 'exportPng', chart: '../x', dataUrl: `data:image/png;base64,${PNG_1x1}` }],
    ['exportPng without data', { type: 'exportPng', chart: 'size' }],
  ];
  for (const [what, msg] of malformed) {
    it(`rejects ${what}`, () => {
      assert.equal(parseFromInspector(msg), undefined);
      assert.equal(parseFromSensitivity(msg), undefined);
    });
  }

  it('the Sensitivity view speaks ready, log and revealTensor only; the inspector does not reveal', () => {
    const reveal = { type: 'revealTensor', file: '/m/a.gguf', name: 'blk.0.attn_q.weight', extra: 1 };
    assert.deepEqual(parseFromSensitivity(reveal), { type: 'revealTensor', file: '/m/a.gguf', name: 'blk.0.attn_q.weight' });
    assert.equal(parseFromInspector(reveal), undefined);
    assert.deepEqual(parseFromSensitivity({ type: 'ready' }), { type: 'ready' });
    assert.deepEqual(parseFromSensitivity({ type: 'log', level: 'info', message: 'm' }), { type: 'log', level: 'info', message: 'm' });
    for (const t of ['selectTensor', 'exportCsv', 'cancelAnalysis', 'command']) assert.equal(parseFromSensitivity({ type: t, name: 'w' }), undefined, t);
  });

  it('parseTableView requires every field', () => {
    for (const k of Object.keys(goodView)) {
      const v: Record<string, unknown> = { ...goodView };
      delete v[k];
      assert.equal(parseTableView(v), undefined, k);
    }
  });

  it('pngBytes decodes a PNG and refuses other bytes behind a PNG prefix', () => {
    const b = pngBytes(`data:image/png;base64,${PNG_1x1}`);
    assert.deepEqual([...b.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
    assert.equal(b.length, Buffer.from(PNG_1x1, 'base64').length);
    assert.throws(() => pngBytes(`data:image/png;base64,${Buffer.from('GIF89a not a png').toString('base64')}`), /not a PNG/);
  });
});

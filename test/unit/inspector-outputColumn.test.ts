import * as assert from 'node:assert/strict';
import { parseFromInspector, type TableView } from '../../src/shared/protocol/inspector';
import { parseCsv, toCsv, type Row } from '../../src/shared/tableModel';

const row = (name: string, effect?: number): Row => ({
  name, dtype: 'f32', shape: [4, 4], params: 16, bytes: 64, layer: name, opType: 'Conv', analysable: true, quantizable: true, ...(effect === undefined ? {} : { effect }),
});

describe('inspector: Activations messages and the output-space column', () => {
  it('parses the Activations tab\'s messages and refuses bad sample counts', () => {
    assert.deepEqual(parseFromInspector({ type: 'activationsRun', samples: 16 }), { type: 'activationsRun', samples: 16 });
    for (const samples of [0, -1, 1.5, 1025, '16', undefined]) assert.equal(parseFromInspector({ type: 'activationsRun', samples }), undefined, String(samples));
    for (const type of ['activationsCancel', 'activationsChooseData', 'activationsSynthetic'] as const) assert.deepEqual(parseFromInspector({ type, extra: '/etc/passwd' }), { type });
  });

  it('the CSV has the output-space column only when the model was run, sorted largest effect first', () => {
    const view: TableView = { sort: 'effect', descending: true, filter: '', group: 'none', config: 'int8-channel' };
    const weightOnly = parseCsv(toCsv([row('a'), row('b')], view));
    assert.ok(!weightOnly[0].includes('Output-space effect'));
    const measured = parseCsv(toCsv([row('a', 0.01), row('b', 0.5), row('c')], view));
    const col = measured[0].indexOf('Output-space effect');
    assert.ok(col >= 0);
    assert.deepEqual(measured.slice(1).map((r) => [r[measured[0].indexOf('Tensor')], r[col]]), [['b', '0.5'], ['a', '0.01'], ['c', '']]);
  });
});

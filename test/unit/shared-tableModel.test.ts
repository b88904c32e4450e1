import * as assert from 'node:assert/strict';
import { buildView, compileFilter, parseCsv, riskOf, sortRows, toCsv, type Row } from '../../src/shared/tableModel';
import type { TableView } from '../../src/shared/protocol/inspector';

function row(name: string, o: Partial<Row> & { kurt?: number; s8?: number; s4?: number } = {}): Row {
  const r: Row = { name, dtype: 'f32', shape: [4, 4], params: o.params ?? 16, bytes: 64, layer: o.layer ?? `${name}_node`, opType: o.opType ?? 'MatMul', analysable: true, quantizable: true };
  if (o.block !== undefined) r.block = o.block;
  if (o.kurt !== undefined) r.stats = { name, min: -1, max: 1, mean: 0, std: 0.5, kurtosis: o.kurt, outlierShare: 0.001, nan: 0, inf: 0 };
  if (o.s8 !== undefined || o.s4 !== undefined) {
    r.configs = [];
    if (o.s8 !== undefined) r.configs.push({ config: 'int8-channel', bits: 8, reference: 'int8', sqnrDb: o.s8, relError: 0, bytes: 16, bitsPerWeight: 8, calibrator: 'minmax' });
    if (o.s4 !== undefined) r.configs.push({ config: 'int4-g128', bits: 4, reference: 'int4', sqnrDb: o.s4, relError: 0, bytes: 8, bitsPerWeight: 4, calibrator: 'mse' });
  }
  return r;
}

const view = (v: Partial<TableView> = {}): TableView => ({ sort: 'name', descending: false, filter: '', group: 'none', config: 'int8-channel', ...v });
const names = (rows: Row[], v: TableView) => buildView(rows, v).items.map((it) => (it.kind === 'row' ? rows[it.index].name : `[${it.key}]`));

describe('webview table model', () => {
  const rows = [
    row('blk.10.ffn_up.weight', { block: 10, opType: 'ffn_up', kurt: 3, s8: 40, s4: 18, params: 100 }),
    row('blk.2.attn_q.weight', { block: 2, opType: 'q', kurt: 50, s8: 31, s4: 10, params: 10 }),
    row('blk.2.ffn_up.weight', { block: 2, opType: 'ffn_up', kurt: 1, s8: 44, s4: 21, params: 100 }),
    row('token_embd.weight', { opType: 'embed', params: 1000 }),
    row('blk.10.attn_q.weight', { block: 10, opType: 'q', kurt: 7, s8: 36, params: 10 }),
  ];

  it('sorts names in natural order (blk.2 before blk.10), both directions', () => {
    assert.deepEqual(names(rows, view()), ['blk.2.attn_q.weight', 'blk.2.ffn_up.weight', 'blk.10.attn_q.weight', 'blk.10.ffn_up.weight', 'token_embd.weight']);
    assert.deepEqual(names(rows, view({ descending: true })), ['token_embd.weight', 'blk.10.ffn_up.weight', 'blk.10.attn_q.weight', 'blk.2.ffn_up.weight', 'blk.2.attn_q.weight']);
  });

  it('sorts numbers numerically and puts rows without a value last in either direction', () => {
    assert.deepEqual(names(rows, view({ sort: 'sqnr4' })), ['blk.2.attn_q.weight', 'blk.10.ffn_up.weight', 'blk.2.ffn_up.weight', 'token_embd.weight', 'blk.10.attn_q.weight']);
    assert.deepEqual(names(rows, view({ sort: 'sqnr4', descending: true })), ['blk.2.ffn_up.weight', 'blk.10.ffn_up.weight', 'blk.2.attn_q.weight', 'token_embd.weight', 'blk.10.attn_q.weight']);
    assert.deepEqual(names(rows, view({ sort: 'kurtosis', descending: true })).slice(0, 4), ['blk.2.attn_q.weight', 'blk.10.attn_q.weight', 'blk.10.ffn_up.weight', 'blk.2.ffn_up.weight']);
  });

  it('the chosen-config column follows the view config', () => {
    const a = names(rows, view({ sort: 'sqnrSel', config: 'int8-channel' }));
    const b = names(rows, view({ sort: 'sqnrSel', config: 'int4-g128' }));
    assert.equal(a[0], 'blk.2.attn_q.weight');
    assert.equal(a[1], 'blk.10.attn_q.weight'); // 36 dB at INT8, no INT4 figure
    assert.equal(b[1], 'blk.10.ffn_up.weight');
  });

  it('is stable: equal keys keep the model order', () => {
    const idx = sortRows(rows, [0, 1, 2, 3, 4], 'params', false, 'int8-channel');
    assert.deepEqual(idx, [1, 4, 0, 2, 3]);
  });

  it('filters by case-insensitive regex on name and layer; an invalid regex matches as text with an error', () => {
    assert.deepEqual(names(rows, view({ filter: 'ATTN_Q' })), ['blk.2.attn_q.weight', 'blk.10.attn_q.weight']);
    assert.deepEqual(names(rows, view({ filter: '^blk\\.10\\.' })), ['blk.10.attn_q.weight', 'blk.10.ffn_up.weight']);
    assert.deepEqual(names(rows, view({ filter: 'embd\\.weight_node$' })), ['token_embd.weight']);
    const bad = compileFilter('ffn_up(');
    assert.ok(bad.error);
    assert.equal(bad.test(row('x.ffn_up(.w')), true);
    assert.equal(bad.test(row('x.ffn_up.w')), false);
    const built = buildView(rows, view({ filter: '[' }));
    assert.equal(built.matched, 0);
    assert.ok(built.filterError);
  });

  it('groups by block and by op type, with counts, params and the worst SQNR; collapsed groups hide rows', () => {
    const byBlock = buildView(rows, view({ group: 'block', sort: 'sqnr8' }));
    const groups = byBlock.items.filter((i) => i.kind === 'group');
    // Group order follows the sorted rows: block 2 holds the lowest INT8 SQNR.
    assert.deepEqual(groups.map((g) => g.kind === 'group' && [g.key, g.count, g.params, g.worstSqnr]), [
      ['block 2', 2, 110, 31], ['block 10', 2, 110, 36], ['outside blocks', 1, 1000, undefined],
    ]);
    assert.deepEqual(names(rows, view({ group: 'op' })), ['[q]', 'blk.2.attn_q.weight', 'blk.10.attn_q.weight', '[ffn_up]', 'blk.2.ffn_up.weight', 'blk.10.ffn_up.weight', '[embed]', 'token_embd.weight']);
    const folded = buildView(rows, view({ group: 'op' }), new Set(['q']));
    assert.deepEqual(folded.items.map((i) => (i.kind === 'group' ? `[${i.key}]` : rows[i.index].name)), ['[q]', '[ffn_up]', 'blk.2.ffn_up.weight', 'blk.10.ffn_up.weight', '[embed]', 'token_embd.weight']);
    assert.equal(folded.matched, 5);
  });

  it('risk compares SQNR with 6.02·b − 6 dB: > 6 dB short is medium, > 12 dB short is high', () => {
    const r = (s4: number) => riskOf(row('t', { s4 }), 'int4-g128');
    // expected(4) = 18.08 dB
    assert.equal(r(12.2), 'low');
    assert.equal(r(12.0), 'medium');
    assert.equal(r(6.2), 'medium');
    assert.equal(r(6.0), 'high');
    assert.equal(r(NaN), 'high');
    assert.equal(riskOf(row('t'), 'int4-g128'), undefined);
  });

  it('CSV holds every matching row in view order with full-precision numbers and quoting; it parses back', () => {
    const tricky = [...rows, row('name,with "quotes"', { s8: 12.345678901234, kurt: 2 })];
    const csv = toCsv(tricky, view({ sort: 'sqnr8', group: 'op', filter: 'weight|quotes' }));
    const parsed = parseCsv(csv);
    const col = (h: string) => parsed[0].indexOf(h);
    assert.equal(parsed[0][col('Tensor')], 'Tensor');
    assert.ok(col('SQNR chosen: int8-channel (dB)') >= 0);
    assert.equal(parsed.length, 1 + 6);
    assert.deepEqual(parsed.slice(1).map((r) => r[col('Tensor')]), ['name,with "quotes"', 'blk.2.attn_q.weight', 'blk.10.attn_q.weight', 'blk.10.ffn_up.weight', 'blk.2.ffn_up.weight', 'token_embd.weight']);
    assert.equal(Number(parsed[1][col('SQNR int8-channel (dB)')]), 12.345678901234);
    assert.equal(parsed[1][col('SQNR chosen: int8-channel (dB)')], parsed[1][col('SQNR int8-channel (dB)')]);
    assert.equal(parsed[1][col('Risk (chosen format)')], 'high');
    assert.equal(parsed[6][col('SQNR int8-channel (dB)')], '');
    assert.equal(parsed[2][col('Shape')], '4x4');
    assert.ok(parsed.every((r) => r.length === 16));
    assert.ok(csv.includes('"name,with ""quotes"""'));
  });

  it('builds the grouped, filtered, sorted view of 10,000 rows', () => {
    const many: Row[] = [];
    for (let i = 0; i < 10_000; i++) many.push(row(`blk.${i % 80}.t${i}.weight`, { block: i % 80, kurt: (i * 7919) % 101, s8: 30 + ((i * 104729) % 97) / 7, s4: 10 + (i % 13) }));
    // Timing is a benchmark's business, not a test's: only correctness is asserted here.
    const b = buildView(many, view({ sort: 'sqnr4', group: 'block', filter: 't[0-9]*5\\.' }));
    assert.equal(b.matched, 1000);
    // i ≡ 5 (mod 10) falls in blocks 5, 15, …, 75 (i mod 80): 8 groups.
    assert.equal(b.items.length, 1000 + 8);
  });
});

/**
 * The inspector's layer table as data: rows merged from the index and the
 * streamed statistics, sorting, regex filtering, grouping and CSV. DOM-free,
 * so the webview renders it and the host rebuilds the same view for export.
 */
import type { ConfigResult, GroupBy, SortKey, StatsSummary, TableView, TensorRow } from './protocol/inspector';

export interface Row extends TensorRow {
  stats?: StatsSummary;
  configs?: ConfigResult[];
  /** Output-space effect of quantizing only this weight, when the model has been run (Sensitivity panel). */
  effect?: number;
}

export type Risk = 'high' | 'medium' | 'low';

export function resultOf(row: Row, config: string): ConfigResult | undefined {
  return row.configs?.find((c) => c.config === config);
}

export function sqnrOf(row: Row, config: string): number | undefined {
  return resultOf(row, config)?.sqnrDb;
}

/** The config id behind a reference column, as the measured rows carry it. */
export function referenceId(rows: readonly Row[], role: 'int8' | 'int4'): string | undefined {
  for (const r of rows) {
    const c = r.configs?.find((k) => k.reference === role);
    if (c) return c.config;
  }
  return undefined;
}

/** SQNR of the row's reference INT8 / INT4 config. */
export function referenceSqnr(row: Row, role: 'int8' | 'int4'): number | undefined {
  return row.configs?.find((c) => c.reference === role)?.sqnrDb;
}

/**
 * Risk from the SQNR a config reaches on this tensor. A uniform b-bit grid over
 * a well-behaved (near-Gaussian) weight gives roughly 6.02·b − 6 dB; a tensor
 * 6 dB (one bit) short of that loses noticeably more than its neighbours, and
 * 12 dB (two bits) short is where accuracy typically breaks.
 */
export function riskOf(row: Row, config: string): Risk | undefined {
  const c = resultOf(row, config);
  if (c === undefined) return undefined;
  const s = c.sqnrDb;
  const expected = 6.02 * c.bits - 6;
  if (!(s >= expected - 12)) return 'high';
  if (s < expected - 6) return 'medium';
  return 'low';
}

const RISK_RANK: Record<Risk, number> = { low: 0, medium: 1, high: 2 };

export interface Column {
  key: SortKey;
  label: string;
  /** CSV header when it differs from the table's (short) label. */
  csvLabel?: string;
  numeric: boolean;
  value(row: Row, config: string): number | string | undefined;
  /** CSV cell (full precision). */
  csv(row: Row, config: string): string;
}

const num = (v: number | undefined): string => (v === undefined || Number.isNaN(v) ? '' : String(v));
const stat = (k: keyof Omit<StatsSummary, 'name'>) => (r: Row) => r.stats?.[k];

/** Table and CSV columns, most telling first: risk, identity, then the error figures, then the distribution. */
export const COLUMNS: readonly Column[] = [
  { key: 'risk', label: 'Risk', csvLabel: 'Risk (chosen format)', numeric: true, value: (r, c) => { const k = riskOf(r, c); return k === undefined ? undefined : RISK_RANK[k]; }, csv: (r, c) => riskOf(r, c) ?? '' },
  { key: 'name', label: 'Tensor', numeric: false, value: (r) => r.name, csv: (r) => r.name },
  { key: 'layer', label: 'Layer', numeric: false, value: (r) => r.layer, csv: (r) => r.layer },
  { key: 'opType', label: 'Op', numeric: false, value: (r) => r.opType, csv: (r) => r.opType },
  { key: 'dtype', label: 'DType', numeric: false, value: (r) => r.dtype, csv: (r) => r.dtype },
  { key: 'shape', label: 'Shape', numeric: false, value: (r) => r.shape.join('×'), csv: (r) => r.shape.join('x') },
  { key: 'params', label: 'Params', numeric: true, value: (r) => r.params, csv: (r) => String(r.params) },
  { key: 'sqnr8', label: 'INT8 dB', csvLabel: 'SQNR INT8 reference (dB)', numeric: true, value: (r) => referenceSqnr(r, 'int8'), csv: (r) => num(referenceSqnr(r, 'int8')) },
  { key: 'sqnr4', label: 'INT4 dB', csvLabel: 'SQNR INT4 reference (dB)', numeric: true, value: (r) => referenceSqnr(r, 'int4'), csv: (r) => num(referenceSqnr(r, 'int4')) },
  { key: 'sqnrSel', label: 'SQNR chosen', numeric: true, value: (r, c) => sqnrOf(r, c), csv: (r, c) => num(sqnrOf(r, c)) },
  { key: 'effect', label: 'Output effect', csvLabel: 'Output-space effect', numeric: true, value: (r) => r.effect, csv: (r) => num(r.effect) },
  { key: 'kurtosis', label: 'Kurtosis', numeric: true, value: stat('kurtosis'), csv: (r) => num(r.stats?.kurtosis) },
  { key: 'outlierShare', label: 'Outliers', csvLabel: 'Outlier share', numeric: true, value: stat('outlierShare'), csv: (r) => num(r.stats?.outlierShare) },
  { key: 'min', label: 'Min', numeric: true, value: stat('min'), csv: (r) => num(r.stats?.min) },
  { key: 'max', label: 'Max', numeric: true, value: stat('max'), csv: (r) => num(r.stats?.max) },
  { key: 'mean', label: 'Mean', numeric: true, value: stat('mean'), csv: (r) => num(r.stats?.mean) },
  { key: 'std', label: 'Std', numeric: true, value: stat('std'), csv: (r) => num(r.stats?.std) },
];

export function column(key: SortKey): Column {
  const c = COLUMNS.find((x) => x.key === key);
  if (!c) throw new Error(`unknown column ${key}`);
  return c;
}

/** Regex filter (case-insensitive) on tensor and layer names; an invalid pattern matches as plain text. */
export function compileFilter(pattern: string): { test(row: Row): boolean; error?: string } {
  const p = pattern.trim();
  if (!p) return { test: () => true };
  try {
    const re = new RegExp(p, 'i');
    return { test: (r) => re.test(r.name) || re.test(r.layer) };
  } catch (e) {
    const lower = p.toLowerCase();
    return {
      test: (r) => r.name.toLowerCase().includes(lower) || r.layer.toLowerCase().includes(lower),
      error: e instanceof Error ? e.message : String(e),
    };
  }
}

const collator = new Intl.Collator('en', { numeric: true, sensitivity: 'base' });

/** Indices of `rows` in the view's order; rows without a value sort last in both directions. Stable. */
export function sortRows(rows: readonly Row[], indices: number[], key: SortKey, descending: boolean, config: string): number[] {
  const col = column(key);
  const vals = rows.map((r) => col.value(r, config));
  const missing = (v: unknown) => v === undefined || (typeof v === 'number' && Number.isNaN(v));
  return indices.slice().sort((a, b) => {
    const va = vals[a], vb = vals[b];
    const ma = missing(va), mb = missing(vb);
    if (ma || mb) return ma === mb ? a - b : ma ? 1 : -1;
    let c: number;
    if (col.numeric) c = (va as number) - (vb as number);
    else c = collator.compare(String(va), String(vb));
    if (c === 0) return a - b;
    return descending ? -c : c;
  });
}

export function groupKey(row: Row, group: GroupBy): string {
  if (group === 'block') return row.block === undefined ? 'outside blocks' : `block ${row.block}`;
  if (group === 'op') return row.opType || '(no op)';
  return '';
}

export interface GroupItem {
  kind: 'group';
  key: string;
  count: number;
  params: number;
  /** Lowest SQNR of the chosen config in the group. */
  worstSqnr?: number;
  collapsed: boolean;
}
export interface RowItem { kind: 'row'; index: number }
export type Item = GroupItem | RowItem;

export interface BuiltView { items: Item[]; matched: number; filterError?: string }

/**
 * The flat list the table renders (virtualized): rows filtered and sorted, and
 * with grouping, a header item before each group's rows. Groups are ordered by
 * their first row in the sorted order, so sorting by SQNR puts the worst block first.
 */
export function buildView(rows: readonly Row[], view: TableView, collapsed: ReadonlySet<string> = new Set()): BuiltView {
  const f = compileFilter(view.filter);
  const kept: number[] = [];
  for (let i = 0; i < rows.length; i++) if (f.test(rows[i])) kept.push(i);
  const sorted = sortRows(rows, kept, view.sort, view.descending, view.config);
  const out: BuiltView = { items: [], matched: sorted.length };
  if (f.error) out.filterError = f.error;
  if (view.group === 'none') {
    out.items = sorted.map((index) => ({ kind: 'row', index }));
    return out;
  }
  const groups = new Map<string, number[]>();
  for (const i of sorted) {
    const k = groupKey(rows[i], view.group);
    let g = groups.get(k);
    if (!g) groups.set(k, (g = []));
    g.push(i);
  }
  for (const [key, members] of groups) {
    let params = 0;
    let worst: number | undefined;
    for (const i of members) {
      params += rows[i].params;
      const s = sqnrOf(rows[i], view.config);
      if (s !== undefined && (worst === undefined || s < worst)) worst = s;
    }
    const item: GroupItem = { kind: 'group', key, count: members.length, params, collapsed: collapsed.has(key) };
    if (worst !== undefined) item.worstSqnr = worst;
    out.items.push(item);
    if (!item.collapsed) for (const index of members) out.items.push({ kind: 'row', index });
  }
  return out;
}

function csvCell(s: string): string {
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The view as CSV (RFC 4180): every matching row in the view's order, grouping flattened, all columns. */
export function toCsv(rows: readonly Row[], view: TableView): string {
  const built = buildView(rows, { ...view, group: 'none' });
  // Headers name the configs: the reference columns by the id the rows carry.
  const ref = { sqnr8: referenceId(rows, 'int8'), sqnr4: referenceId(rows, 'int4') } as Partial<Record<SortKey, string>>;
  // The output-space column exists only when the model was run.
  const measured = rows.some((r) => r.effect !== undefined);
  const cols = COLUMNS.filter((c) => measured || c.key !== 'effect').map((c) => {
    if (c.key === 'sqnrSel') return { ...c, csvLabel: `SQNR chosen: ${view.config} (dB)` };
    const id = ref[c.key];
    return id ? { ...c, csvLabel: `SQNR ${id} (dB)` } : c;
  });
  const lines = [cols.map((c) => csvCell(c.csvLabel ?? c.label)).join(',')];
  for (const it of built.items) {
    if (it.kind !== 'row') continue;
    const r = rows[it.index];
    lines.push(cols.map((c) => csvCell(c.csv(r, view.config))).join(','));
  }
  return lines.join('\r\n') + '\r\n';
}

/** Parses RFC 4180 CSV (quoted cells, doubled quotes, CRLF); used to check exports. */
export function parseCsv(text: string): string[][] {
  const out: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let i = 0;
  let quoted = false;
  while (i < text.length) {
    const ch = text[i];
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') { cell += '"'; i += 2; continue; }
        quoted = false; i++; continue;
      }
      cell += ch; i++; continue;
    }
    if (ch === '"') { quoted = true; i++; continue; }
    if (ch === ',') { row.push(cell); cell = ''; i++; continue; }
    if (ch === '\r' || ch === '\n') {
      row.push(cell); out.push(row); row = []; cell = '';
      i += ch === '\r' && text[i + 1] === '\n' ? 2 : 1;
      continue;
    }
    cell += ch; i++;
  }
  if (cell !== '' || row.length) { row.push(cell); out.push(row); }
  return out;
}

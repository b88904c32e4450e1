/**
 * The Compare view: two model files weight by weight. A sortable table (worst
 * SQNR first), the histogram of the selected weight in A and in B overlaid,
 * and the outputs of both models on the same data when both ran in ONNX
 * Runtime. Its own bundle (dist/compare.js) and protocol (shared/protocol/compare.ts).
 */
import { Chart, type ChartConfiguration } from 'chart.js';
import { fromWire, type CompareData, type CompareRow, type CompareState, type FromCompare, type ToCompare } from '../../src/shared/protocol/compare';
import { acquireHost } from '../common/vscodeApi';
import { button, el, icon } from '../common/dom';
import { formatBytes, formatCount } from '../common/format';
import { chartPng, readTheme, withAlpha } from '../inspector/charts';

const app = document.getElementById('app') as HTMLElement;
const vscode = acquireHost<FromCompare>();

type SortKey = 'name' | 'typeA' | 'typeB' | 'numel' | 'sqnrDb' | 'cosine' | 'maxAbs';
interface ViewState { persist?: ToCompare['persist']; sort: SortKey; desc: boolean; selected?: string }

const saved = (vscode.getState() ?? {}) as Partial<ViewState>;
const view: ViewState = { sort: saved.sort ?? 'sqnrDb', desc: saved.desc ?? false, selected: saved.selected, persist: saved.persist };
let state: CompareState | undefined;
let chart: Chart | undefined;

function keep(): void { vscode.setState(view); }

function fmt(v: number | undefined, digits = 3): string {
  if (v === undefined || Number.isNaN(v)) return '—';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(2) : v.toPrecision(digits);
}

function sqnrClass(db: number | undefined): string {
  if (db === undefined) return 'qs-risk-high';
  return db < 20 ? 'qs-risk-high' : db < 30 ? 'qs-risk-medium' : 'qs-risk-low';
}

function sorted(rows: CompareRow[]): CompareRow[] {
  const k = view.sort;
  const val = (r: CompareRow): number | string => {
    if (k === 'name' || k === 'typeA' || k === 'typeB') return r[k];
    if (r.error) return -Infinity; // failed pairs count as worst
    return (r[k] as number | undefined) ?? -Infinity;
  };
  const out = [...rows].sort((a, b) => {
    const x = val(a), y = val(b);
    const c = typeof x === 'string' ? x.localeCompare(y as string) : x === y ? 0 : x < (y as number) ? -1 : 1;
    return c || a.name.localeCompare(b.name);
  });
  return view.desc ? out.reverse() : out;
}

function header(s: CompareState): HTMLElement {
  const running = s.phase === 'running';
  const bar = el('div', { class: 'qs-toolbar', role: 'toolbar', 'aria-label': 'Comparison actions' });
  const cancel = button('qs-cmp-cancel', 'debug-stop', 'Cancel', () => vscode.postMessage({ type: 'cancel' }));
  cancel.hidden = !running;
  bar.append(
    cancel,
    button('qs-cmp-rerun', 'refresh', 'Run again', () => vscode.postMessage({ type: 'rerun' })),
    button('qs-cmp-swap', 'arrow-swap', 'Swap A and B', () => vscode.postMessage({ type: 'swap' }), 'Make B the reference'),
    button('qs-cmp-data', 'database', s.data ? 'Change data…' : 'Choose data…', () => vscode.postMessage({ type: 'chooseData' }), 'Inputs for the output comparison'),
    button('qs-cmp-csv', 'export', 'Export CSV…', () => vscode.postMessage({ type: 'exportCsv' })),
  );
  for (const id of ['qs-cmp-rerun', 'qs-cmp-swap', 'qs-cmp-data', 'qs-cmp-csv']) (bar.querySelector(`#${id}`) as HTMLButtonElement).disabled = running;
  (bar.querySelector('#qs-cmp-csv') as HTMLButtonElement).disabled = !s.result;
  return el('header', {},
    el('div', { class: 'qs-header' }, icon('diff'), el('h1', { id: 'qs-cmp-title' }, `${s.nameA} ↔ ${s.nameB}`)),
    el('p', { class: 'qs-muted qs-path' }, 'A is the reference: SQNR, cosine and max |Δ| measure B against it.'),
    bar);
}

function progress(s: CompareState): HTMLElement {
  const p = s.progress;
  const bar = el('progress', { id: 'qs-cmp-progress', 'aria-label': 'Comparison progress' }) as HTMLProgressElement;
  if (p && p.total > 0) { bar.max = p.total; bar.value = p.done; }
  return el('div', { class: 'qs-progress', role: 'status' }, bar,
    el('span', { id: 'qs-cmp-progress-text' }, p && p.total ? `${p.done} of ${p.total} · ${p.what}` : p?.what ?? 'Starting…'));
}

function facts(d: CompareData): HTMLElement {
  const dl = el('dl', { class: 'qs-facts', id: 'qs-cmp-facts' });
  const add = (k: string, v: string) => dl.append(el('dt', {}, k), el('dd', {}, v));
  add('A', `${d.a.file} · ${d.a.format} · ${formatBytes(d.a.sizeOnDisk)} · ${formatCount(d.a.weights)} weights`);
  add('B', `${d.b.file} · ${d.b.format} · ${formatBytes(d.b.sizeOnDisk)} · ${formatCount(d.b.weights)} weights`);
  const failed = d.tensors.filter((t) => t.error).length;
  add('Paired', `${formatCount(d.tensors.length)}${failed ? ` (${failed} not comparable)` : ''} · only in A: ${d.onlyA.length} · only in B: ${d.onlyB.length}`);
  const worst = d.tensors.find((t) => !t.error && t.sqnrDb !== undefined && Number.isFinite(t.sqnrDb));
  add('Worst weight', worst ? `${worst.name}: ${fmt(worst.sqnrDb)} dB` : 'none differ');
  return dl;
}

const COLS: { key: SortKey; label: string; num?: boolean }[] = [
  { key: 'name', label: 'Tensor' }, { key: 'typeA', label: 'A type' }, { key: 'typeB', label: 'B type' },
  { key: 'numel', label: 'Elements', num: true }, { key: 'sqnrDb', label: 'SQNR dB', num: true },
  { key: 'cosine', label: 'Cosine', num: true }, { key: 'maxAbs', label: 'Max |Δ|', num: true },
];

function table(d: CompareData): HTMLElement {
  const rows = sorted(d.tensors);
  if (!view.selected || !rows.some((r) => r.name === view.selected)) view.selected = rows[0]?.name;
  const t = el('table', { id: 'qs-cmp-table', class: 'qs-mini qs-cmp-table', role: 'grid', 'aria-label': 'Weights of A and B, compared', tabindex: '0' });
  const head = el('tr', {});
  for (const c of COLS) {
    const dir = view.sort === c.key ? (view.desc ? 'descending' : 'ascending') : 'none';
    const b = el('button', { class: 'qs-sort', type: 'button', 'data-key': c.key }, c.label,
      ...(view.sort === c.key ? [icon(view.desc ? 'arrow-down' : 'arrow-up')] : []));
    b.addEventListener('click', () => {
      view.desc = view.sort === c.key ? !view.desc : false;
      view.sort = c.key;
      keep();
      render();
    });
    head.append(el('th', { class: c.num ? 'num' : '', 'aria-sort': dir, scope: 'col' }, b));
  }
  const body = el('tbody', {});
  for (const r of rows) {
    const sel = r.name === view.selected;
    const tr = el('tr', { class: `qs-cmp-row${sel ? ' qs-selected' : ''}`, 'data-name': r.name, 'aria-selected': String(sel), title: r.error ?? `${r.name}${r.nameB ? ` ~ ${r.nameB} (naming map)` : ''} [${r.shapeA.join('×')}]${r.transposed ? ', B transposed' : ''}${r.ropeReordered ? ', GGUF q/k rows put back in Hugging Face order' : ''}` },
      el('td', { 'data-col': 'name', class: 'qs-cmp-name' }, r.nameB ? `${r.name} ~ ${r.nameB}` : r.name),
      el('td', { 'data-col': 'typeA', title: r.typeA }, r.typeA),
      el('td', { 'data-col': 'typeB', title: r.typeB }, r.typeB),
      el('td', { 'data-col': 'numel', class: 'num' }, formatCount(r.numel)),
      el('td', { 'data-col': 'sqnrDb', class: `num ${sqnrClass(r.sqnrDb)}` }, r.error ? 'not comparable' : fmt(r.sqnrDb)),
      el('td', { 'data-col': 'cosine', class: 'num' }, r.cosine === undefined ? '—' : r.cosine.toFixed(6)),
      el('td', { 'data-col': 'maxAbs', class: 'num' }, fmt(r.maxAbs)));
    tr.addEventListener('click', () => select(r.name));
    body.append(tr);
  }
  t.append(el('thead', {}, head), body);
  t.addEventListener('keydown', (e: KeyboardEvent) => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp' && e.key !== 'Home' && e.key !== 'End') return;
    e.preventDefault();
    const i = rows.findIndex((r) => r.name === view.selected);
    const j = e.key === 'Home' ? 0 : e.key === 'End' ? rows.length - 1 : Math.max(0, Math.min(rows.length - 1, i + (e.key === 'ArrowDown' ? 1 : -1)));
    if (rows[j]) select(rows[j].name, true);
  });
  return el('div', { class: 'qs-cmp-scroll' }, t);
}

function select(name: string, focus = false): void {
  view.selected = name;
  keep();
  for (const tr of Array.from(document.querySelectorAll('.qs-cmp-row')) as HTMLElement[]) {
    const on = tr.dataset.name === name;
    tr.classList.toggle('qs-selected', on);
    tr.setAttribute('aria-selected', String(on));
    if (on && focus) tr.scrollIntoView({ block: 'nearest' });
  }
  drawHistogram();
}

function histogramCard(): HTMLElement {
  const card = el('section', { class: 'qs-card', id: 'qs-cmp-hist-card', 'aria-labelledby': 'qs-cmp-hist-title' },
    el('div', { class: 'qs-card-head' }, el('h3', { id: 'qs-cmp-hist-title' }, 'Histogram'),
      button('qs-cmp-png', 'file-media', 'PNG…', () => {
        const c = document.getElementById('qs-cmp-hist') as HTMLCanvasElement | null;
        if (c && chart) vscode.postMessage({ type: 'exportPng', chart: 'compare-histogram', dataUrl: chartPng(c, readTheme().bg) });
      }, 'Export the histogram as PNG')),
    el('div', { class: 'qs-chart-box' }, el('canvas', { id: 'qs-cmp-hist', role: 'img', 'aria-label': 'Histogram of the selected weight in A and B' }),
      el('p', { id: 'qs-cmp-hist-empty', class: 'qs-empty qs-muted', hidden: '' }, '')),
    el('p', { id: 'qs-cmp-hist-caption', class: 'qs-caption qs-muted' }, ''));
  return card;
}

function drawHistogram(): void {
  const d = state?.result;
  const canvas = document.getElementById('qs-cmp-hist') as HTMLCanvasElement | null;
  if (!d || !canvas) return;
  const r = d.tensors.find((t) => t.name === view.selected);
  const empty = document.getElementById('qs-cmp-hist-empty') as HTMLElement;
  chart?.destroy();
  chart = undefined;
  (document.getElementById('qs-cmp-hist-title') as HTMLElement).textContent = r ? `Histogram · ${r.name}` : 'Histogram';
  if (!r?.histogram) {
    empty.hidden = false;
    empty.textContent = r?.error ? `Not comparable: ${r.error}` : 'Select a weight in the table.';
    document.body.dataset.histogram = '';
    return;
  }
  empty.hidden = true;
  const h = r.histogram;
  const n = h.a.length;
  const w = (h.max - h.min) / n;
  const labels = Array.from({ length: n }, (_, i) => fmt(h.min + (i + 0.5) * w, 2));
  const t = readTheme();
  const cfg: ChartConfiguration<'bar'> = {
    type: 'bar',
    data: {
      labels,
      datasets: [
        { label: `A · ${r.typeA}`, data: h.a, backgroundColor: withAlpha(t.blue, 0.55), borderColor: t.blue, borderWidth: 1, grouped: false, categoryPercentage: 1, barPercentage: 1 },
        { label: `B · ${r.typeB}`, data: h.b, backgroundColor: withAlpha(t.orange, 0.45), borderColor: t.orange, borderWidth: 1, grouped: false, categoryPercentage: 1, barPercentage: 1 },
      ],
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { labels: { color: t.fg, boxWidth: 12 } }, tooltip: { intersect: false, mode: 'index' } },
      scales: {
        x: { ticks: { color: t.muted, maxTicksLimit: 6, maxRotation: 0 }, grid: { color: withAlpha(t.grid, 0.3) }, title: { display: true, text: 'value', color: t.muted } },
        y: { ticks: { color: t.muted }, grid: { color: withAlpha(t.grid, 0.3) }, title: { display: true, text: 'elements', color: t.muted } },
      },
    },
  };
  chart = new Chart(canvas, cfg);
  document.body.dataset.histogram = r.name;
  (document.getElementById('qs-cmp-hist-caption') as HTMLElement).textContent =
    `${formatCount(r.numel)} elements in ${n} bins over [${fmt(h.min)}, ${fmt(h.max)}] · SQNR ${fmt(r.sqnrDb)} dB · cosine ${r.cosine?.toFixed(6) ?? '—'} · max |Δ| ${fmt(r.maxAbs)}`;
}

function outputsSection(d: CompareData): HTMLElement {
  const sec = el('section', { id: 'qs-cmp-outputs', 'aria-labelledby': 'qs-cmp-outputs-title' }, el('h2', { id: 'qs-cmp-outputs-title' }, 'Outputs'));
  const o = d.outputs;
  if (!o) {
    sec.append(el('p', { class: 'qs-muted', id: 'qs-cmp-outputs-skipped' }, `Not compared: ${d.outputsSkipped ?? 'the models were not run'}.`));
    return sec;
  }
  const label = el('p', { id: 'qs-cmp-outputs-data', 'data-data': o.data },
    icon(o.data === 'synthetic' ? 'warning' : 'database'),
    o.data === 'synthetic'
      ? ` Both models ran on ${o.samples} SYNTHETIC samples (${o.dataSource}): choose data for real inputs.`
      : ` Both models ran on ${o.samples} samples of ${o.dataSource}.`);
  const t = el('table', { class: 'qs-mini', id: 'qs-cmp-outputs-table', 'aria-label': 'Outputs of A and B on the same data' },
    el('thead', {}, el('tr', {}, ...['Output', 'Kind', 'KL (nats)', 'SQNR dB', 'Cosine', 'Max |Δ|'].map((h, i) => el('th', { scope: 'col', class: i > 1 ? 'num' : '' }, h)))));
  const body = el('tbody', {});
  for (const m of o.outputs) {
    body.append(el('tr', { 'data-output': m.output }, el('td', {}, m.output), el('td', {}, m.kind), el('td', { class: 'num' }, fmt(m.kl)),
      el('td', { class: `num ${sqnrClass(m.sqnrDb)}` }, fmt(m.sqnrDb)), el('td', { class: 'num' }, m.cosine.toFixed(6)), el('td', { class: 'num' }, fmt(m.maxAbs))));
  }
  t.append(body);
  sec.append(label, t);
  return sec;
}

function render(): void {
  chart?.destroy();
  chart = undefined;
  const s = state;
  if (!s) {
    app.replaceChildren(el('p', { class: 'qs-muted' }, 'Loading…'));
    return;
  }
  document.body.dataset.state = s.phase;
  const parts: HTMLElement[] = [header(s)];
  if (s.phase === 'running') parts.push(progress(s));
  if (s.phase === 'error') parts.push(el('div', { class: 'qs-error', role: 'alert', id: 'qs-cmp-error' }, icon('error'), ` Could not compare: ${s.error ?? 'unknown error'}`));
  if (s.phase === 'cancelled') parts.push(el('p', { class: 'qs-muted', id: 'qs-cmp-cancelled' }, icon('circle-slash'), ' Cancelled. Run again to compare.'));
  const d = s.result;
  if (s.phase === 'done' && d) {
    parts.push(facts(d));
    if (d.tensors.length === 0) {
      parts.push(el('p', { class: 'qs-muted', id: 'qs-cmp-none' }, 'No weight of A has a counterpart in B (by name or through the naming map).'), outputsSection(d));
    } else {
      parts.push(table(d), el('div', { class: 'qs-cmp-lower' }, histogramCard(), outputsSection(d)));
    }
    if (d.onlyA.length || d.onlyB.length) {
      parts.push(el('details', { id: 'qs-cmp-unpaired' }, el('summary', {}, `Unpaired weights (${d.onlyA.length} only in A, ${d.onlyB.length} only in B)`),
        el('ul', { class: 'qs-muted' }, ...d.onlyA.slice(0, 200).map((w) => el('li', {}, `A: ${w.name} (${w.type})`)), ...d.onlyB.slice(0, 200).map((w) => el('li', {}, `B: ${w.name} (${w.type})`)))));
    }
  }
  app.replaceChildren(...parts);
  drawHistogram();
}

window.addEventListener('message', (ev: MessageEvent<ToCompare>) => {
  if (ev.data?.type !== 'compareState') return;
  const prevPhase = state?.phase;
  state = fromWire(ev.data.state);
  view.persist = ev.data.persist;
  keep();
  // Progress ticks update the bar in place; anything else re-renders.
  if (prevPhase === 'running' && state.phase === 'running' && document.getElementById('qs-cmp-progress')) {
    const p = state.progress;
    const bar = document.getElementById('qs-cmp-progress') as HTMLProgressElement;
    if (p && p.total > 0) { bar.max = p.total; bar.value = p.done; }
    (document.getElementById('qs-cmp-progress-text') as HTMLElement).textContent = p && p.total ? `${p.done} of ${p.total} · ${p.what}` : p?.what ?? '';
    return;
  }
  render();
});
new MutationObserver(() => drawHistogram()).observe(document.body, { attributes: true, attributeFilter: ['class'] });
render();
vscode.postMessage({ type: 'ready' });

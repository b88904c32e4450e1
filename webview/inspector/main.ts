import type { AnalysisProgress, ConfigInfo, FromInspector, GroupBy, MixedSummary, ModelOverview, OutputEffects, TableView, TensorDetail, TensorRow, ToInspector } from '../../src/shared/protocol/inspector';
import { riskOf, sqnrOf, type Row } from '../../src/shared/tableModel';
import { acquireHost } from '../common/vscodeApi';
import { button, el, icon } from '../common/dom';
import { formatBytes, formatCount } from '../common/format';
import { LayerTable } from './table';
import { ActivationsPanel } from './activations';
import {
  ChartSlot, chartPng, channelConfig, configBarsConfig, histogramConfig, layerSqnrConfig, layerTailsConfig, readTheme, sizeConfig,
  type HistogramSettings, type LayerPoint,
} from './charts';

const app = document.getElementById('app') as HTMLElement;
const vscode = acquireHost<FromInspector>();

/** What survives the webview being hidden and restored (the host re-sends the data). */
interface SavedState {
  view: TableView;
  selected?: string;
  collapsed: string[];
  scrollTop: number;
  hist: { log: boolean; range: 'minmax' | 'percentile' };
  tab: 'weights' | 'activations';
  acts?: ReturnType<ActivationsPanel['saved']>;
}

function loadState(): SavedState {
  const s = vscode.getState() as Partial<SavedState> | undefined;
  // Worst first: the point of the inspector is where quantization will hurt.
  const view: TableView = { sort: 'sqnrSel', descending: false, filter: '', group: 'none', config: '', ...(s?.view ?? {}) };
  return { view, selected: s?.selected, collapsed: s?.collapsed ?? [], scrollTop: s?.scrollTop ?? 0, hist: s?.hist ?? { log: false, range: 'percentile' }, tab: s?.tab ?? 'weights', acts: s?.acts };
}

const state = loadState();
let overview: ModelOverview | undefined;
/** The config catalogue, as the host sends it with the overview. */
let configs: ConfigInfo[] = [];
const configInfo = (id: string) => configs.find((c) => c.id === id);
let rows: Row[] = [];
const rowIndex = new Map<string, number>();
let detail: TensorDetail | undefined;
let mixed: MixedSummary | undefined;
let analysis: { running: boolean; progress?: AnalysisProgress; done?: Extract<ToInspector, { type: 'analysisDone' }> } = { running: true };
let table: LayerTable | undefined;
const slots = new Map<string, ChartSlot>();
let scrollSave: number | undefined;
/** The Sensitivity panel's output-space measurement of this model, when one exists. */
let output: OutputEffects | undefined;
const acts = new ActivationsPanel((m) => vscode.postMessage(m), state.acts, () => saveState());

function saveState(): void {
  if (table) {
    state.view = table.view;
    state.selected = table.selected;
    state.collapsed = [...table.collapsed];
    state.scrollTop = table.scrollTop;
  }
  state.acts = acts.saved();
  vscode.setState(state);
}

function select<T extends string>(id: string, label: string, options: [T, string][], value: T, onChange: (v: T) => void): HTMLElement {
  const s = el('select', { id, 'aria-label': label });
  for (const [v, text] of options) {
    const o = el('option', { value: v }, text);
    if (v === value) o.selected = true;
    s.append(o);
  }
  s.addEventListener('change', () => onChange(s.value as T));
  return el('label', { class: 'qs-field' }, `${label} `, s);
}

/** A titled chart card with a PNG export button. */
function chartCard(id: string, title: string, extra: Node[] = [], caption?: string): HTMLElement {
  const canvas = el('canvas', { id: `qs-chart-${id}`, role: 'img', 'aria-label': title });
  const exportBtn = el('button', { class: 'qs-icon-button', type: 'button', title: `Export "${title}" as PNG`, 'aria-label': `Export ${title} as PNG`, 'data-export': id }, icon('desktop-download'));
  exportBtn.addEventListener('click', () => {
    vscode.postMessage({ type: 'exportPng', chart: id, dataUrl: chartPng(canvas, readTheme().bg) });
  });
  const empty = el('p', { class: 'qs-muted qs-empty', id: `qs-empty-${id}` });
  empty.hidden = true;
  const card = el('section', { class: 'qs-card', 'aria-label': title },
    el('div', { class: 'qs-card-head' }, el('h3', {}, title), ...extra, exportBtn),
    el('div', { class: 'qs-chart-box' }, canvas, empty));
  if (caption) card.append(el('p', { class: 'qs-muted qs-caption' }, caption));
  slots.set(id, new ChartSlot(canvas, empty));
  return card;
}

// --- overview --------------------------------------------------------------------

function renderShell(o: ModelOverview): void {
  for (const s of slots.values()) s.destroy();
  slots.clear();
  const facts: [string, string, string][] = [
    ['format', 'Format', `${o.format} (${o.formatVersion})`],
    ['size', 'Size on disk', `${formatBytes(o.sizeOnDisk)} (${formatCount(o.sizeOnDisk)} bytes)`],
    ['tensors', 'Tensors', formatCount(o.tensorCount)],
    ['params', 'Parameters', formatCount(o.parameterCount)],
    ['quantizable', 'Quantizable weights', `${formatCount(o.quantizableTensors)} tensors`],
    ['size-int8', 'At INT8 per-channel', `${formatBytes(o.sizeAtInt8)} (${((100 * o.sizeAtInt8) / o.sizeOnDisk).toFixed(1)}%)`],
    ['size-int4', 'At INT4 group 128', `${formatBytes(o.sizeAtInt4g128)} (${((100 * o.sizeAtInt4g128) / o.sizeOnDisk).toFixed(1)}%)`],
    ['size-mixed', 'Best mixed precision', 'after the analysis'],
    ['metric', 'Sensitivity', 'weight-space (SQNR of each weight)'],
    ['metadata', 'Metadata entries', formatCount(o.metadataKeys)],
  ];
  if (o.quantization) facts.splice(1, 0, ['quantization', 'Quantization', `${o.quantization}; weights shown dequantized`]);
  const dl = el('dl', { class: 'qs-facts' });
  for (const [id, k, v] of facts) dl.append(el('dt', { id: `qs-${id}-label` }, k), el('dd', { id: `qs-${id}` }, v));
  const dtypes = el('ul', { class: 'qs-dtypes', 'aria-label': 'Bytes by data type' });
  for (const [d, b] of Object.entries(o.bytesByDtype).sort((a, b) => b[1] - a[1])) dtypes.append(el('li', {}, el('code', {}, d), ` ${formatBytes(b)}`));

  const configSelect = select('qs-config', 'Format', configs.map((c) => [c.id, `${c.label} (${c.id})`] as [string, string]), state.view.config, (v) => {
    if (!table) return;
    table.view.config = v;
    table.refresh();
    saveState();
    renderDetail();
    renderModelCharts();
  });
  const progress = el('div', { class: 'qs-progress', id: 'qs-progress-area', role: 'status', 'aria-live': 'polite' },
    el('progress', { id: 'qs-progress', max: '1', value: '0', 'aria-label': 'Analysis progress' }),
    el('span', { id: 'qs-progress-text' }, 'Starting analysis…'),
    button('qs-cancel', 'debug-stop', 'Cancel', () => vscode.postMessage({ type: 'cancelAnalysis' }), 'Cancel the analysis'),
    button('qs-resume', 'debug-restart', 'Resume', () => { vscode.postMessage({ type: 'restartAnalysis' }); analysis = { running: true }; renderProgress(); }, 'Analyse the remaining tensors'));

  const toolbar = el('div', { class: 'qs-toolbar' },
    configSelect,
    button('qs-export-csv', 'table', 'Export CSV', () => table && vscode.postMessage({ type: 'exportCsv', view: { ...table.view } })),
    button('qs-export-report', 'markdown', 'Export Report', () => vscode.postMessage({ type: 'command', command: 'exportReport' })),
    el('span', { id: 'qs-notice', class: 'qs-muted', role: 'status' }));

  const filter = el('input', { id: 'qs-filter', type: 'search', placeholder: 'Filter by name (regex)', 'aria-label': 'Filter tensors by name (regular expression)', value: state.view.filter });
  let filterTimer: number | undefined;
  filter.addEventListener('input', () => {
    clearTimeout(filterTimer);
    filterTimer = window.setTimeout(() => {
      if (!table) return;
      table.view.filter = filter.value;
      table.refresh();
      renderTableStatus();
      saveState();
    }, 120);
  });
  const group = select<GroupBy>('qs-group', 'Group by', [['none', 'nothing'], ['block', 'transformer block'], ['op', 'op type']], state.view.group, (v) => {
    if (!table) return;
    table.view.group = v;
    table.refresh();
    renderTableStatus();
    saveState();
  });

  table = new LayerTable(state.view, {
    onSelect: (r) => { detail = undefined; renderDetailPlaceholder(r); vscode.postMessage({ type: 'selectTensor', name: r.name }); saveState(); },
    onViewChange: () => { renderTableStatus(); saveState(); },
    onScroll: () => { clearTimeout(scrollSave); scrollSave = window.setTimeout(saveState, 200); },
  });
  table.collapsed = new Set(state.collapsed);

  const histLog = el('input', { id: 'qs-hist-log', type: 'checkbox', 'aria-label': 'Logarithmic count axis' });
  histLog.checked = state.hist.log;
  histLog.addEventListener('change', () => { state.hist.log = histLog.checked; saveState(); renderDetail(); });
  const histRange = select<'minmax' | 'percentile'>('qs-hist-range', 'Range', [['percentile', '0.01–99.99 percentile'], ['minmax', 'min–max']], state.hist.range, (v) => { state.hist.range = v; saveState(); renderDetail(); });

  const tab = (id: 'weights' | 'activations', label: string) => {
    const b = el('button', { id: `qs-tab-${id}`, class: 'qs-tab', type: 'button', role: 'tab', 'aria-selected': String(state.tab === id), 'aria-controls': `qs-view-${id}` }, label);
    b.addEventListener('click', () => showTab(id));
    return b;
  };
  const weightsView = el('div', { id: 'qs-view-weights', role: 'tabpanel', 'aria-labelledby': 'qs-tab-weights' });
  const actsView = el('div', { id: 'qs-view-activations', role: 'tabpanel', 'aria-labelledby': 'qs-tab-activations' },
    el('p', { class: 'qs-muted' }, 'Runs the model on calibration data and collects every intermediate tensor: its range, percentiles, histogram with the clip points each activation calibrator would choose, and channels far above the median channel.'),
    acts.root);
  app.replaceChildren(
    el('header', { class: 'qs-header' }, icon('graph'), el('h1', { id: 'qs-filename' }, o.fileName)),
    el('p', { class: 'qs-muted qs-path' }, o.path),
    toolbar,
    progress,
    el('section', { 'aria-label': 'Overview', class: 'qs-overview' }, dl, el('div', {}, el('h2', {}, 'Bytes by dtype'), dtypes)),
    el('nav', { class: 'qs-tabs', role: 'tablist', 'aria-label': 'Inspector views' }, tab('weights', 'Weights'), tab('activations', 'Activations')),
    weightsView,
    actsView,
  );
  weightsView.append(
    el('section', { 'aria-label': 'Tensor table', class: 'qs-table-section' },
      el('div', { class: 'qs-table-tools' }, el('h2', {}, 'Tensors'), filter, group, el('span', { id: 'qs-table-status', class: 'qs-muted', 'aria-live': 'polite' })),
      table.root),
    el('section', { id: 'qs-detail', class: 'qs-detail', 'aria-label': 'Tensor detail' },
      el('h2', { id: 'qs-detail-title' }, 'Tensor detail'),
      el('p', { id: 'qs-detail-hint', class: 'qs-muted' }, 'Select a row (click, or arrow keys and Enter) to see its histogram, channels and outliers.'),
      el('div', { class: 'qs-cards' },
        chartCard('histogram', 'Histogram', [el('label', { class: 'qs-field' }, histLog, ' log'), histRange],
          'Orange lines: the levels of the chosen format with its scale set by the range shown (per-channel and per-group scales are finer). Shaded: values a percentile range would clip.'),
        chartCard('channels', 'Per-channel range', [], 'Each output channel\'s min and max against the tensor-wide ±absmax: the gap is resolution per-tensor scaling wastes.'),
        el('section', { class: 'qs-card', 'aria-label': 'Top outliers' }, el('div', { class: 'qs-card-head' }, el('h3', {}, 'Top outliers')), el('div', { id: 'qs-outliers', class: 'qs-outliers' })),
        chartCard('configs', 'Error of each candidate configuration'))),
    el('section', { class: 'qs-model', 'aria-label': 'Model charts' },
      el('h2', {}, 'Model'),
      el('div', { class: 'qs-cards' },
        chartCard('layer-sqnr', 'Per-layer SQNR (chosen format)'),
        chartCard('layer-tails', 'Per-layer kurtosis and outlier share'),
        chartCard('size', 'Size breakdown'))),
  );
  // Not saved here: the new table has no selection yet, and saving now would drop the restored one.
  showTab(state.tab, false);
  document.body.dataset.state = 'ready';
}

function showTab(id: 'weights' | 'activations', save = true): void {
  state.tab = id;
  for (const t of ['weights', 'activations'] as const) {
    const view = document.getElementById(`qs-view-${t}`);
    if (view) view.hidden = t !== id;
    document.getElementById(`qs-tab-${t}`)?.setAttribute('aria-selected', String(t === id));
  }
  document.body.dataset.tab = id;
  if (save) saveState();
}

/** The table's effect column and the overview's sensitivity line follow the output-space measurement. */
function renderOutput(): void {
  for (const r of rows) delete r.effect;
  if (output) for (const r of rows) { const e = output.effects[r.name]; if (e !== undefined) r.effect = e; }
  const dd = document.getElementById('qs-metric');
  if (dd) {
    dd.textContent = output
      ? `output-space: ${output.metric} with only that weight at ${output.config}, measured on ${output.data === 'synthetic' ? 'SYNTHETIC data' : 'real data'} (${output.dataSource}, ${output.samples} samples); weight-space SQNR beside it`
      : 'weight-space (SQNR of each weight); run the model from the Sensitivity panel for output-space effects';
    dd.dataset.metric = output ? 'output' : 'weight';
  }
  table?.setEffect(output ? { config: output.config, title: `${output.metric} at ${output.config} on ${output.data} data, ${output.samples} samples` } : undefined);
  renderTableStatus();
}

function renderTableStatus(): void {
  const s = document.getElementById('qs-table-status');
  if (!s || !table) return;
  const analysed = rows.filter((r) => r.stats).length;
  const measured = rows.filter((r) => r.configs).length;
  s.dataset.rows = String(rows.length);
  s.dataset.analysed = String(analysed);
  s.dataset.measured = String(measured);
  s.dataset.matched = String(table.matched);
  let t = `${formatCount(table.matched)} of ${formatCount(rows.length)} tensors · ${formatCount(analysed)} with statistics · ${formatCount(measured)} measured`;
  if (table.filterError) t += ` · not a valid regex, matching as text (${table.filterError})`;
  s.textContent = t;
}

function renderProgress(): void {
  const bar = document.getElementById('qs-progress') as HTMLProgressElement | null;
  const text = document.getElementById('qs-progress-text');
  const cancel = document.getElementById('qs-cancel');
  const resume = document.getElementById('qs-resume');
  const area = document.getElementById('qs-progress-area');
  if (!bar || !text || !cancel || !resume || !area) return;
  area.dataset.state = analysis.running ? 'running' : analysis.done?.state ?? 'idle';
  cancel.hidden = !analysis.running;
  resume.hidden = analysis.running || analysis.done?.state === 'complete';
  if (analysis.running) {
    const p = analysis.progress;
    // Statistics are the first half of the bar, sensitivity the second.
    const f = p ? (p.phase === 'statistics' ? 0.5 * p.fraction : 0.5 + 0.5 * p.fraction) : 0;
    bar.value = f;
    bar.hidden = false;
    text.textContent = p ? `${p.phase === 'statistics' ? 'Statistics' : 'Quantization error'}: ${formatCount(p.tensorsDone)} / ${formatCount(p.tensorsTotal)} tensors (${(100 * f).toFixed(0)}%)` : 'Starting analysis…';
  } else {
    bar.hidden = true;
    const d = analysis.done;
    text.textContent = !d ? '' : d.state === 'complete' ? `Analysis complete${d.failed ? `; ${d.failed} tensors could not be analysed, first: ${d.firstFailure ?? '?'} (all in the QuantScope log)` : ''}.`
      : d.state === 'cancelled' ? 'Analysis cancelled; the table shows the tensors analysed so far.' : `Analysis failed: ${d.message ?? 'unknown error'}`;
  }
}

// --- detail ----------------------------------------------------------------------

function renderDetailPlaceholder(r: Row): void {
  const title = document.getElementById('qs-detail-title');
  if (title) title.textContent = `Tensor detail: ${r.name}`;
  const hint = document.getElementById('qs-detail-hint');
  if (hint) hint.textContent = r.analysable ? 'Loading…' : `${r.dtype} tensor: no statistics for non-floating-point data.`;
}

function renderDetail(): void {
  const d = detail;
  const hint = document.getElementById('qs-detail-hint');
  const outl = document.getElementById('qs-outliers');
  if (!d || !table || !hint || !outl) return;
  const theme = readTheme();
  const row = rows[rowIndex.get(d.name) ?? -1];
  const s = row?.stats;
  hint.textContent = s
    ? `shape ${d.shape.join('×')} · mean ${s.mean.toPrecision(4)} · std ${s.std.toPrecision(4)} · kurtosis ${s.kurtosis.toFixed(2)} · ${(100 * s.outlierShare).toFixed(3)}% beyond ${d.outlierSigma}σ` +
      (sqnrOf(row, table.view.config) !== undefined ? ` · SQNR ${table.view.config} ${sqnrOf(row, table.view.config)!.toFixed(1)} dB (${riskOf(row, table.view.config)} risk)` : '')
    : row?.analysable ? 'Statistics not computed yet.' : 'No statistics for this dtype.';
  const hs: HistogramSettings = { log: state.hist.log, config: configInfo(table.view.config), range: state.hist.range };
  slots.get('histogram')?.show(d.histogram.counts.length ? histogramConfig(d, hs, theme) : undefined, 'No statistics for this tensor.');
  slots.get('channels')?.show(channelConfig(d, theme), d.shape.length < 2 ? 'A 1-D tensor has no output channels.' : 'No per-channel statistics (the output-channel axis is unknown).');
  slots.get('configs')?.show(d.configs?.length ? configBarsConfig(d.configs, table.view.config, theme) : undefined,
    row?.quantizable ? (analysis.running ? 'Not measured yet.' : 'Not measured.') : 'Not measured: weight-only quantization leaves 1-D tensors (biases, norms) in full precision.');
  const t = el('table', { class: 'qs-mini', 'aria-label': 'Largest magnitudes' }, el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, '#'), el('th', { scope: 'col' }, 'value'), el('th', { scope: 'col' }, 'index'))));
  const body = el('tbody', {});
  d.top.forEach((x, i) => body.append(el('tr', {}, el('td', { class: 'num' }, String(i + 1)), el('td', { class: 'num' }, x.value.toPrecision(6)), el('td', {}, `[${x.index.join(', ')}]`))));
  t.append(body);
  const chans = d.channels?.outlierChannels.length ? el('p', { class: 'qs-muted' }, `Outlier channels (abs-max > 4× median): ${d.channels.outlierChannels.join(', ')}`) : '';
  outl.replaceChildren(d.top.length ? t : el('p', { class: 'qs-muted' }, 'None.'), chans);
}

// --- model charts ------------------------------------------------------------------

let modelChartsTimer: number | undefined;
let modelChartsAt = 0;

/** While results stream, redraw at most once a second; a redraw of 10,000 bars is not free. */
function scheduleModelCharts(): void {
  if (modelChartsTimer !== undefined) return;
  const wait = Math.max(0, 1000 - (Date.now() - modelChartsAt));
  modelChartsTimer = window.setTimeout(() => { modelChartsTimer = undefined; renderModelCharts(); }, wait);
}

function renderModelCharts(): void {
  if (!table || !overview) return;
  modelChartsAt = Date.now();
  const theme = readTheme();
  const config = table.view.config;
  const points: LayerPoint[] = rows.map((r) => {
    const p: LayerPoint = { name: r.name };
    const s = sqnrOf(r, config);
    if (s !== undefined) { p.sqnr = s; p.risk = riskOf(r, config); }
    if (r.stats) { p.kurtosis = r.stats.kurtosis; p.outlierShare = r.stats.outlierShare; }
    return p;
  });
  const info = configInfo(config);
  slots.get('layer-sqnr')?.show(info && layerSqnrConfig(points, info, theme));
  slots.get('layer-tails')?.show(layerTailsConfig(points, theme));
  const o = overview;
  const weights = rows.filter((r) => r.quantizable).reduce((a, r) => a + r.bytes, 0);
  const rest = o.sizeOnDisk - weights;
  slots.get('size')?.show(sizeConfig([
    { label: 'as stored', weights, rest },
    { label: 'INT8 per-channel', weights: o.sizeAtInt8 - rest, rest },
    { label: 'INT4 group 128', weights: o.sizeAtInt4g128 - rest, rest },
  ], theme));
}

// --- messages --------------------------------------------------------------------

let tableTimer: number | undefined;
function scheduleTableRefresh(): void {
  if (tableTimer !== undefined) return;
  tableTimer = window.setTimeout(() => {
    tableTimer = undefined;
    const keep = table?.scrollTop ?? 0;
    table?.refresh();
    if (table) table.scrollTop = keep;
    renderTableStatus();
  }, 150);
}

function onOverview(o: ModelOverview, tensors: TensorRow[], cfgs: ConfigInfo[]): void {
  overview = o;
  mixed = undefined;
  configs = cfgs;
  if (!configInfo(state.view.config)) state.view.config = (configs.find((c) => c.reference === 'int8') ?? configs[0]).id;
  rows = tensors.map((t) => ({ ...t }));
  rowIndex.clear();
  rows.forEach((r, i) => rowIndex.set(r.name, i));
  analysis = { running: true };
  renderShell(o);
  table!.rows = rows;
  table!.refresh();
  table!.scrollTop = state.scrollTop;
  renderTableStatus();
  renderProgress();
  renderModelCharts();
  renderOutput();
  if (state.selected && rowIndex.has(state.selected)) table!.select(state.selected);
}

/** The overview line for the knapsack search's best per-layer assignment. */
function renderMixed(): void {
  const dd = document.getElementById('qs-size-mixed');
  const dt = document.getElementById('qs-size-mixed-label');
  if (!dd || !dt || !mixed || !overview) return;
  dt.textContent = `Best mixed (≤ ${mixed.averageBits} bits/weight)`;
  const ratio = mixed.int4g128Error > 0 ? mixed.error / mixed.int4g128Error : NaN;
  const counts = Object.entries(mixed.counts).sort((a, b) => b[1] - a[1]).map(([k, n]) => `${n}× ${k}`).join(', ');
  dd.textContent = `${formatBytes(mixed.modelBytes)} (${((100 * mixed.modelBytes) / overview.sizeOnDisk).toFixed(1)}%) · ` +
    (Number.isFinite(ratio) ? `${(100 * ratio).toFixed(0)}% of uniform INT4-g128's weight error · ` : '') + counts;
}

window.addEventListener('message', (ev: MessageEvent<ToInspector>) => {
  const m = ev.data;
  switch (m.type) {
    case 'loading':
      app.replaceChildren(el('p', { class: 'qs-muted' }, `Loading ${m.fileName}…`));
      break;
    case 'overview':
      onOverview(m.overview, m.tensors, m.configs);
      break;
    case 'stats':
      for (const s of m.items) { const i = rowIndex.get(s.name); if (i !== undefined) rows[i].stats = s; }
      scheduleTableRefresh();
      scheduleModelCharts();
      break;
    case 'sensitivity':
      for (const s of m.items) { const i = rowIndex.get(s.name); if (i !== undefined) rows[i].configs = s.configs; }
      scheduleTableRefresh();
      scheduleModelCharts();
      // The selected tensor's candidate chart needs its new figures.
      if (table?.selected && m.items.some((s) => s.name === table!.selected)) vscode.postMessage({ type: 'selectTensor', name: table.selected });
      break;
    case 'mixed':
      mixed = m.mixed;
      renderMixed();
      break;
    case 'reveal':
      // From the Sensitivity panel: clear a filter that would hide the tensor, then select it.
      if (table && rowIndex.has(m.name)) {
        const f = document.getElementById('qs-filter') as HTMLInputElement | null;
        if (f && f.value) {
          f.value = '';
          f.dispatchEvent(new Event('input'));
        }
        table.reveal(m.name);
      }
      break;
    case 'progress':
      analysis = { running: true, progress: m.progress };
      renderProgress();
      break;
    case 'analysisDone':
      analysis = { running: false, done: m };
      document.body.dataset.analysis = m.state;
      renderProgress();
      scheduleTableRefresh();
      renderModelCharts();
      if (table?.selected) vscode.postMessage({ type: 'selectTensor', name: table.selected });
      break;
    case 'detail':
      if (m.detail.name !== table?.selected) break;
      detail = m.detail;
      renderDetail();
      document.body.dataset.detail = m.detail.name;
      break;
    case 'exported': {
      const n = document.getElementById('qs-notice');
      if (n) n.textContent = `Exported ${m.what.toUpperCase()} to ${m.path}`;
      break;
    }
    case 'activations':
      acts.update(m.state);
      break;
    case 'outputEffects':
      output = m.output ?? undefined;
      renderOutput();
      break;
    case 'error':
      app.replaceChildren(el('div', { class: 'qs-error', role: 'alert' }, icon('error'), ` ${m.message}`));
      document.body.dataset.state = 'error';
      break;
  }
});

// Theme switches change the body class: charts re-read their colours.
new MutationObserver(() => { renderDetail(); renderModelCharts(); acts.redraw(); }).observe(document.body, { attributes: true, attributeFilter: ['class'] });
window.addEventListener('beforeunload', saveState);


vscode.postMessage({ type: 'ready' });

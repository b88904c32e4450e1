/**
 * The Experiment view: a checkbox grid of catalogue configs (format ×
 * granularity), weight-range calibrators and algorithms (RTN; GPTQ and AWQ
 * once real data is chosen), the data (or synthetic, labelled), Run with
 * progress and Cancel; then a size-vs-error scatter with its Pareto frontier
 * (a point per config, calibrator and algorithm), the weight-space error per
 * layer per config, a table, and CSV / PNG / Markdown exports. Its own bundle
 * (dist/experiment.js).
 */
import { Chart, ScatterController, type ChartConfiguration } from 'chart.js';
import {
  algorithmLabel, calibratedNotes, experimentRuns, paretoFrontier, type ExperimentAlgorithmId, type ExperimentResult, type ExperimentState, type FromExperiment, type ToExperiment,
} from '../../src/shared/protocol/experiment';
import { acquireHost } from '../common/vscodeApi';
import { button, el, icon, replaceKeepingFocus } from '../common/dom';
import { chartPng, readTheme, withAlpha } from '../inspector/charts';

Chart.register(ScatterController);

const app = document.getElementById('app') as HTMLElement;
const vscode = acquireHost<FromExperiment>();
let state: ExperimentState | undefined;
const charts: Chart[] = [];
// Ticked boxes survive re-renders and hide/show (setState).
const saved = (vscode.getState() ?? {}) as { file?: string; configs?: string[]; calibrators?: string[]; algorithms?: ExperimentAlgorithmId[]; activations?: boolean };
let picked: { configs: Set<string>; calibrators: Set<string>; algorithms: Set<ExperimentAlgorithmId>; activations: boolean } | undefined = saved.configs
  ? { configs: new Set(saved.configs), calibrators: new Set(saved.calibrators ?? []), algorithms: new Set(saved.algorithms ?? ['rtn']), activations: !!saved.activations }
  : undefined;

function keep(): void {
  vscode.setState({ file: state?.file ?? saved.file, ...(picked ? { configs: [...picked.configs], calibrators: [...picked.calibrators], algorithms: [...picked.algorithms], activations: picked.activations } : {}) });
}

/** The algorithms ticked that can run: GPTQ and AWQ only with data chosen. */
function activeAlgorithms(s: ExperimentState): ExperimentState['algorithms'] {
  return s.algorithms.filter((a) => picked?.algorithms.has(a.id) && (!a.needsData || !!s.data));
}

/** The whole-model runs the ticked boxes ask for. */
function selectedRuns(s: ExperimentState): ReturnType<typeof experimentRuns> {
  return experimentRuns(s.configs.filter((c) => picked?.configs.has(c.id)), s.calibrators.filter((c) => picked?.calibrators.has(c)), activeAlgorithms(s));
}

const POINT_STYLE: Record<string, 'circle' | 'triangle' | 'rectRot'> = { rtn: 'circle', gptq: 'triangle', awq: 'rectRot' };

function revive(v: unknown): unknown {
  return JSON.parse(JSON.stringify(v), (_k, x: unknown) => (x === 'Infinity' ? Infinity : x === '-Infinity' ? -Infinity : x));
}

function fmt(v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return '—';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  const a = Math.abs(v);
  return v === 0 ? '0' : a >= 1e4 || a < 1e-3 ? v.toExponential(2) : v.toPrecision(3);
}

function grid(s: ExperimentState): HTMLElement {
  picked ??= { configs: new Set(s.selection.configs), calibrators: new Set(s.selection.calibrators), algorithms: new Set(s.selection.algorithms), activations: !!s.selection.activations };
  const running = s.phase === 'running';
  const fieldset = el('fieldset', { class: 'qs-exp-grid', id: 'qs-exp-configs' }, el('legend', {}, 'Configs (format × granularity)'));
  const formats = [...new Set(s.configs.map((c) => c.format))];
  for (const f of formats) {
    const row = el('div', { class: 'qs-exp-row', role: 'group', 'aria-label': f }, el('span', { class: 'qs-exp-format' }, f.toUpperCase()));
    for (const c of s.configs.filter((x) => x.format === f)) {
      const box = el('input', { type: 'checkbox', id: `qs-cfg-${c.id}`, 'data-config': c.id }) as HTMLInputElement;
      box.checked = picked.configs.has(c.id);
      box.disabled = running;
      box.addEventListener('change', () => { if (box.checked) picked!.configs.add(c.id); else picked!.configs.delete(c.id); keep(); updateRun(); });
      row.append(el('label', { class: 'qs-exp-check', for: `qs-cfg-${c.id}`, title: c.label }, box, ` ${c.bits}-bit ${c.granularity}`));
    }
    fieldset.append(row);
  }
  const cal = el('fieldset', { class: 'qs-exp-grid', id: 'qs-exp-calibrators' }, el('legend', {}, 'Weight-range calibrator'));
  for (const c of s.calibrators) {
    const box = el('input', { type: 'checkbox', id: `qs-cal-${c}`, 'data-calibrator': c }) as HTMLInputElement;
    box.checked = picked.calibrators.has(c);
    box.disabled = running;
    box.addEventListener('change', () => { if (box.checked) picked!.calibrators.add(c); else picked!.calibrators.delete(c); keep(); updateRun(); });
    cal.append(el('label', { class: 'qs-exp-check', for: `qs-cal-${c}` }, box, ` ${c}`));
  }
  const alg = el('fieldset', { class: 'qs-exp-grid', id: 'qs-exp-algorithms' }, el('legend', {}, 'Algorithm'));
  const off = 'GPTQ and AWQ fit the weights to the inputs each layer sees: choose calibration data to enable them (synthetic inputs would fit them to noise).';
  for (const a of s.algorithms) {
    const enabled = !a.needsData || !!s.data;
    const box = el('input', { type: 'checkbox', id: `qs-alg-${a.id}`, 'data-algorithm': a.id }) as HTMLInputElement;
    box.checked = picked.algorithms.has(a.id) && enabled;
    box.disabled = running || !enabled;
    box.addEventListener('change', () => { if (box.checked) picked!.algorithms.add(a.id); else picked!.algorithms.delete(a.id); keep(); updateRun(); });
    const tip = a.id === 'rtn' ? 'Round to nearest with each config\'s numerics' : enabled
      ? `${a.label} on the chosen data, as Quantize Model… writes it (onnx-int4): integer configs, ${a.calibrators?.join('/') ?? 'any'} calibrator; weights it cannot take round to nearest`
      : off;
    alg.append(el('label', { class: `qs-exp-check${enabled ? '' : ' qs-disabled'}`, for: `qs-alg-${a.id}`, title: tip }, box, ` ${a.label}`));
  }
  alg.append(el('p', { class: 'qs-muted qs-caption', id: 'qs-exp-algorithms-note' }, s.data
    ? 'GPTQ and AWQ record the inputs of each MatMul/Gemm on the data, then quantize each weight as Quantize Model… writes it (integer configs, minmax calibrator); other weights round to nearest.'
    : off));
  const act = el('input', { type: 'checkbox', id: 'qs-exp-activations' }) as HTMLInputElement;
  act.checked = picked.activations;
  act.disabled = running;
  act.addEventListener('change', () => { picked!.activations = act.checked; keep(); });
  cal.append(el('label', { class: 'qs-exp-check', for: 'qs-exp-activations' }, act, ' Also compare activation calibrators (min-max, percentile, MSE, entropy clip ranges, uint8 per-tensor)'));
  const data = el('div', { class: 'qs-toolbar', id: 'qs-exp-data' },
    icon(s.data ? 'database' : 'warning'),
    el('span', { id: 'qs-exp-data-label' }, s.data ? `Data: ${s.data}` : 'Data: synthetic inputs from the declared shapes (every result is labelled synthetic)'),
    button('qs-exp-choose', 'folder-opened', s.data ? 'Change…' : 'Choose data…', () => vscode.postMessage({ type: 'chooseData' })));
  if (s.data) data.append(button('qs-exp-clear', 'close', 'Use synthetic', () => vscode.postMessage({ type: 'clearData' })));
  const run = button('qs-exp-run', 'play', 'Run experiment', () => {
    vscode.postMessage({
      type: 'run', configs: s.configs.map((c) => c.id).filter((id) => picked!.configs.has(id)), calibrators: s.calibrators.filter((c) => picked!.calibrators.has(c)),
      algorithms: activeAlgorithms(s).map((a) => a.id), activations: picked!.activations,
    });
  });
  run.classList.add('qs-primary');
  const cancel = button('qs-exp-cancel', 'debug-stop', 'Cancel', () => vscode.postMessage({ type: 'cancel' }));
  cancel.hidden = !running;
  run.hidden = running;
  return el('section', { 'aria-label': 'Experiment settings' }, fieldset, cal, alg, data, el('div', { class: 'qs-toolbar' }, run, cancel, el('span', { id: 'qs-exp-count', class: 'qs-muted' }, '')));
}

function updateRun(): void {
  const n = state ? selectedRuns(state).length : 0;
  const run = document.getElementById('qs-exp-run') as HTMLButtonElement | null;
  if (run) run.disabled = n === 0;
  const c = document.getElementById('qs-exp-count');
  if (c) c.textContent = n ? `${n} whole-model run${n === 1 ? '' : 's'}` : 'Tick at least one config, one calibrator and one algorithm that applies to them';
}

function scatter(r: ExperimentResult): ChartConfiguration<'scatter'> {
  const t = readTheme();
  const palette = [t.blue, t.orange, t.green, t.purple, t.red, t.yellow];
  // One series per calibrator and algorithm: colour by series, marker by algorithm (circle RTN, triangle GPTQ, diamond AWQ).
  const series = [...new Set(r.rows.map((x) => `${x.calibrator}\u0000${x.algorithm}`))].map((k) => k.split('\u0000'));
  const front = paretoFrontier(r.rows);
  return {
    type: 'scatter',
    data: {
      datasets: [
        ...series.map(([c, a], i) => ({
          label: `${c} · ${algorithmLabel(a)}`, data: r.rows.filter((x) => x.calibrator === c && x.algorithm === a).map((x) => ({ x: x.bytes / 1e6, y: x.effect, config: `${x.config} ${algorithmLabel(x.algorithm)}` })),
          backgroundColor: withAlpha(palette[i % palette.length], 0.8), borderColor: palette[i % palette.length], pointStyle: POINT_STYLE[a] ?? 'circle', pointRadius: 6, pointHoverRadius: 8,
        })),
        { label: 'Pareto frontier', type: 'line' as const, data: front.map((x) => ({ x: x.bytes / 1e6, y: x.effect })), borderColor: t.fg, borderDash: [4, 3], borderWidth: 1, pointRadius: 0, fill: false },
      ] as ChartConfiguration<'scatter'>['data']['datasets'],
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: {
        legend: { labels: { color: t.fg, boxWidth: 12, usePointStyle: true } },
        tooltip: { callbacks: { label: (c) => `${(c.raw as { config?: string }).config ?? "frontier"}: ${fmt(c.parsed.x ?? undefined)} MB, effect ${fmt(c.parsed.y ?? undefined)}` } },
      },
      scales: {
        x: { type: 'linear', title: { display: true, text: 'size (MB)', color: t.muted }, ticks: { color: t.muted }, grid: { color: withAlpha(t.grid, 0.3) } },
        y: { type: 'logarithmic', title: { display: true, text: 'output effect (measured, lower is better)', color: t.muted }, ticks: { color: t.muted }, grid: { color: withAlpha(t.grid, 0.3) } },
      },
    },
  };
}

function perLayer(r: ExperimentResult): ChartConfiguration<'line'> {
  const t = readTheme();
  const palette = [t.blue, t.orange, t.green, t.purple, t.red, t.yellow];
  return {
    type: 'line',
    data: {
      labels: r.layers.map((_, i) => String(i)),
      datasets: Object.entries(r.layerSqnr).map(([c, v], i) => ({ label: c, data: v.map((x) => (Number.isFinite(x) ? x : null)), borderColor: palette[i % palette.length], backgroundColor: palette[i % palette.length], pointRadius: 1.5, borderWidth: 1.5 })),
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { labels: { color: t.fg, boxWidth: 12 } }, tooltip: { mode: 'index', intersect: false, callbacks: { title: (items) => r.layers[items[0]?.dataIndex ?? 0] ?? '' } } },
      scales: {
        x: { title: { display: true, text: 'layer (model order)', color: t.muted }, ticks: { color: t.muted, maxTicksLimit: 12 }, grid: { color: withAlpha(t.grid, 0.3) } },
        y: { title: { display: true, text: 'weight SQNR dB (higher is better)', color: t.muted }, ticks: { color: t.muted }, grid: { color: withAlpha(t.grid, 0.3) } },
      },
    },
  };
}

function activationsChart(r: ExperimentResult): ChartConfiguration<'bar'> {
  const t = readTheme();
  const a = r.activations!;
  const palette = [t.blue, t.orange, t.green, t.purple];
  return {
    type: 'bar',
    data: {
      labels: a.names.map((_, i) => String(i)),
      datasets: Object.entries(a.ranges).map(([m, v], i) => ({ label: m, data: v.map(([lo, hi]) => [lo, hi] as [number, number]), backgroundColor: withAlpha(palette[i % palette.length], 0.7), borderColor: palette[i % palette.length], borderWidth: 1 })),
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { labels: { color: t.fg, boxWidth: 12 } }, tooltip: { callbacks: { title: (items) => a.names[items[0]?.dataIndex ?? 0] ?? '', label: (c) => { const [lo, hi] = c.raw as [number, number]; return `${c.dataset.label}: [${fmt(lo)}, ${fmt(hi)}]`; } } } },
      scales: {
        x: { title: { display: true, text: 'activation (widest first)', color: t.muted }, ticks: { color: t.muted }, grid: { color: withAlpha(t.grid, 0.3) } },
        y: { title: { display: true, text: 'clip range', color: t.muted }, ticks: { color: t.muted }, grid: { color: withAlpha(t.grid, 0.3) } },
      },
    },
  };
}

function chartCard(id: string, title: string, caption: string): HTMLElement {
  return el('section', { class: 'qs-card', 'aria-labelledby': `${id}-title` },
    el('div', { class: 'qs-card-head' }, el('h3', { id: `${id}-title` }, title),
      button(`${id}-png`, 'file-media', 'PNG…', () => {
        const c = document.getElementById(id) as HTMLCanvasElement | null;
        if (c) vscode.postMessage({ type: 'exportPng', chart: id.replace(/^qs-/, ''), dataUrl: chartPng(c, readTheme().bg) });
      }, `Export ${title} as PNG`)),
    el('div', { class: 'qs-chart-box' }, el('canvas', { id, role: 'img', 'aria-label': title })),
    el('p', { class: 'qs-caption qs-muted' }, caption));
}

function results(r: ExperimentResult): HTMLElement {
  const front = new Set(paretoFrontier(r.rows));
  const label = el('p', { id: 'qs-exp-label', 'data-data': r.data }, icon(r.data === 'synthetic' ? 'warning' : 'database'),
    r.data === 'synthetic' ? ` Measured on ${r.samples} SYNTHETIC samples (${r.dataSource}): says nothing about real inputs.` : ` Measured on ${r.samples} samples of ${r.dataSource}.`,
    r.cached ? el('span', { class: 'qs-muted', id: 'qs-exp-cached' }, ' · reopened from the results cache') : '');
  const table = el('table', { class: 'qs-mini', id: 'qs-exp-table', 'aria-label': 'Experiment results' },
    el('thead', {}, el('tr', {}, ...['Config', 'Calibrator', 'Algorithm', 'Size MB', '% of float', 'Effect', 'SQNR dB', 'Cosine', 'Pareto', 's'].map((h, i) => el('th', { scope: 'col', class: i > 2 && i !== 8 ? 'num' : '' }, h)))));
  const body = el('tbody', {});
  for (const x of [...r.rows].sort((a, b) => a.bytes - b.bytes || a.effect - b.effect)) {
    const c = x.calibrated;
    const algTitle = c ? `${c.weights} of ${c.weights + c.roundedToNearest.length} weights by ${algorithmLabel(x.algorithm)}${c.roundedToNearest.length ? `; rounded to nearest: ${c.roundedToNearest.map((w) => `${w.name} (${w.reason})`).join(', ')}` : ''}` : 'round to nearest';
    body.append(el('tr', { 'data-config': x.config, 'data-calibrator': x.calibrator, 'data-algorithm': x.algorithm, 'data-pareto': String(front.has(x)) },
      el('td', {}, x.config), el('td', {}, x.calibrator), el('td', { title: algTitle }, algorithmLabel(x.algorithm)), el('td', { class: 'num' }, (x.bytes / 1e6).toFixed(3)), el('td', { class: 'num' }, `${((100 * x.bytes) / x.floatBytes).toFixed(1)}%`),
      el('td', { class: 'num' }, fmt(x.effect)), el('td', { class: 'num' }, fmt(x.outputs[0]?.sqnrDb)), el('td', { class: 'num' }, x.outputs[0]?.cosine.toFixed(5) ?? '—'),
      el('td', {}, front.has(x) ? '★' : ''), el('td', { class: 'num' }, x.seconds.toFixed(1))));
  }
  table.append(body);
  const notes = [...calibratedNotes(r), ...(r.notRun ?? []).map((n) => `not run: ${n}`)];
  const noteList = notes.length ? el('ul', { class: 'qs-muted qs-caption', id: 'qs-exp-notes' }, ...notes.map((n) => el('li', {}, n))) : '';
  return el('section', { id: 'qs-exp-results', 'aria-label': 'Results' }, el('h2', {}, 'Results'), label, noteList,
    el('div', { class: 'qs-toolbar' },
      button('qs-exp-csv', 'export', 'Export CSV…', () => vscode.postMessage({ type: 'exportCsv' })),
      button('qs-exp-md', 'markdown', 'Export Markdown report…', () => vscode.postMessage({ type: 'exportMarkdown' }))),
    el('div', { class: 'qs-cards' },
      chartCard('qs-exp-scatter', 'Size vs output effect', 'Each point is the whole model quantized under one config, calibrator and algorithm (circle RTN, triangle GPTQ, diamond AWQ); the dashed line joins the runs nothing beats on both size and error.'),
      chartCard('qs-exp-layers', 'Weight SQNR per layer', 'Weight-space error of every planned layer under each config (one line per config).'),
      ...(r.activations ? [chartCard('qs-exp-acts', 'Activation clip range per calibrator', `The ${r.activations.names.length} widest activations (${r.activations.target}, ${r.activations.samples} samples): the range each calibrator would clip to.`)] : [])),
    table);
}

function drawCharts(): void {
  while (charts.length) charts.pop()!.destroy();
  const r = state?.result;
  if (!r) return;
  const s = document.getElementById('qs-exp-scatter') as HTMLCanvasElement | null;
  const l = document.getElementById('qs-exp-layers') as HTMLCanvasElement | null;
  if (s) charts.push(new Chart(s, scatter(r)));
  if (l && r.layers.length) charts.push(new Chart(l, perLayer(r)));
  const a = document.getElementById('qs-exp-acts') as HTMLCanvasElement | null;
  if (a && r.activations) charts.push(new Chart(a, activationsChart(r)));
  document.body.dataset.points = String(r.rows.length);
}

function render(): void {
  const s = state;
  if (!s) { app.replaceChildren(el('p', { class: 'qs-muted' }, 'Loading…')); return; }
  document.body.dataset.state = s.phase;
  const parts: HTMLElement[] = [
    el('div', { class: 'qs-header' }, icon('beaker'), el('h1', {}, `Experiment · ${s.fileName}`)),
    el('p', { class: 'qs-muted qs-path' }, s.file),
  ];
  if (s.unavailable) {
    parts.push(el('p', { class: 'qs-error', id: 'qs-exp-unavailable', role: 'alert' }, icon('info'), ` Experiments are not available here: ${s.unavailable}.`));
    app.replaceChildren(...parts);
    return;
  }
  parts.push(grid(s));
  if (s.phase === 'running') {
    const p = s.progress;
    const bar = el('progress', { id: 'qs-exp-progress', 'aria-label': 'Experiment progress' }) as HTMLProgressElement;
    if (p?.total) { bar.max = p.total; bar.value = p.done; }
    parts.push(el('div', { class: 'qs-progress', role: 'status' }, bar, el('span', { id: 'qs-exp-progress-text' }, p ? `${p.done} of ${p.total} · ${p.what}` : 'Starting…')));
  }
  if (s.phase === 'error') parts.push(el('div', { class: 'qs-error', role: 'alert', id: 'qs-exp-error' }, icon('error'), ` The experiment failed: ${s.error ?? 'unknown error'}`));
  if (s.phase === 'cancelled') parts.push(el('p', { class: 'qs-muted', id: 'qs-exp-cancelled' }, icon('circle-slash'), ' Cancelled.'));
  if (s.phase === 'setup' && !s.result) parts.push(el('p', { class: 'qs-muted', id: 'qs-exp-empty' }, 'Tick configs, calibrators and algorithms, then Run: every weight matrix is quantized under each, the model runs on the data, and the size and output error of each choice are charted here.'));
  if (s.result) parts.push(results(s.result));
  replaceKeepingFocus(app, ...parts);
  updateRun();
  drawCharts();
}

window.addEventListener('message', (ev: MessageEvent<ToExperiment>) => {
  if (ev.data?.type !== 'experimentState') return;
  const prev = state?.phase;
  state = revive(ev.data.state) as ExperimentState;
  keep();
  if (prev === 'running' && state.phase === 'running' && document.getElementById('qs-exp-progress')) {
    const p = state.progress;
    const bar = document.getElementById('qs-exp-progress') as HTMLProgressElement;
    if (p?.total) { bar.max = p.total; bar.value = p.done; }
    (document.getElementById('qs-exp-progress-text') as HTMLElement).textContent = p ? `${p.done} of ${p.total} · ${p.what}` : '';
    return;
  }
  render();
});
new MutationObserver(() => drawCharts()).observe(document.body, { attributes: true, attributeFilter: ['class'] });
render();
vscode.postMessage({ type: 'ready' });

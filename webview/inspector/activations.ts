/**
 * The inspector's Activations tab: run the model on calibration data (or
 * synthetic inputs, labelled SYNTHETIC) in the host's worker pool, then a
 * table of every activation (range, percentiles, outlier channels) sorted by
 * range width or outlier ratio; a row's histogram shows each calibrator's
 * clip points side by side.
 */
import type { ActivationRow, ActivationsState, FromInspector } from '../../src/shared/protocol/inspector';
import { button, el, icon } from '../common/dom';
import { formatCount } from '../common/format';
import { ChartSlot, activationHistogramConfig, calibratorColor, chartPng, readTheme } from './charts';

type SortBy = 'width' | 'outlier' | 'name';
const CALIBRATOR_LABELS: Record<string, string> = { minmax: 'min-max', percentile: 'percentile', mse: 'MSE', entropy: 'entropy' };
/** Rows beyond this are summarised (a large LLM has tens of thousands of activations). */
const MAX_ROWS = 2000;

function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined || Number.isNaN(v)) return '—';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(2) : v.toPrecision(4);
}

const width = (r: ActivationRow) => r.max - r.min;
/** Outlier ratio for sorting: a null ratio (median channel all zero, another not) is the most extreme. */
const ratioKey = (r: ActivationRow) => (r.outliers.ratio === null ? Infinity : r.outliers.ratio);

export class ActivationsPanel {
  readonly root: HTMLElement;
  private state: ActivationsState | undefined;
  private selected: string | undefined;
  private sortBy: SortBy = 'width';
  private log = false;
  private readonly slot: ChartSlot;
  private readonly canvas: HTMLCanvasElement;
  private readonly body: HTMLElement;
  private readonly detail: HTMLElement;
  private shownResult: unknown;

  constructor(private readonly post: (m: FromInspector) => void, saved?: { selected?: string; sortBy?: SortBy; log?: boolean }, private readonly onSave?: () => void) {
    this.selected = saved?.selected;
    this.sortBy = saved?.sortBy ?? 'width';
    this.log = saved?.log ?? false;
    this.canvas = el('canvas', { id: 'qs-chart-act-hist', role: 'img', 'aria-label': 'Histogram of the selected activation with the calibrators\' clip points' });
    const empty = el('p', { class: 'qs-muted qs-empty', id: 'qs-empty-act-hist' });
    empty.hidden = true;
    this.slot = new ChartSlot(this.canvas, empty);
    this.body = el('div', { id: 'qs-acts-body' });
    const logBox = el('input', { id: 'qs-acts-log', type: 'checkbox', 'aria-label': 'Logarithmic count axis' });
    logBox.checked = this.log;
    logBox.addEventListener('change', () => { this.log = logBox.checked; this.onSave?.(); this.drawDetail(); });
    const exportBtn = el('button', { class: 'qs-icon-button', type: 'button', title: 'Export the activation histogram as PNG', 'aria-label': 'Export the activation histogram as PNG', 'data-export': 'activation' }, icon('desktop-download'));
    exportBtn.addEventListener('click', () => this.post({ type: 'exportPng', chart: `activation-${(this.selected ?? 'none').replace(/[^\w.-]+/g, '_').slice(0, 80)}`, dataUrl: chartPng(this.canvas, readTheme().bg) }));
    this.detail = el('section', { class: 'qs-card qs-acts-detail', 'aria-label': 'Activation detail' },
      el('div', { class: 'qs-card-head' }, el('h3', { id: 'qs-acts-detail-title' }, 'Select an activation'), el('label', { class: 'qs-field' }, logBox, ' log'), exportBtn),
      el('div', { class: 'qs-chart-box' }, this.canvas, empty),
      el('div', { id: 'qs-acts-clips' }),
      el('div', { id: 'qs-acts-channels' }));
    this.root = el('section', { id: 'qs-acts', class: 'qs-acts', 'aria-label': 'Activations' }, this.body);
  }

  saved(): { selected?: string; sortBy: SortBy; log: boolean } {
    return { selected: this.selected, sortBy: this.sortBy, log: this.log };
  }

  update(s: ActivationsState): void {
    const prev = this.state;
    this.state = s;
    document.body.dataset.acts = s.phase;
    // Progress alone updates in place: a full re-render would take the Cancel button from under the pointer.
    if (prev && prev.phase === s.phase && s.phase === 'running' && prev.data === s.data) { this.renderProgress(); return; }
    this.render();
  }

  /** Theme change: colours are re-read. */
  redraw(): void {
    if (this.state?.result) this.drawDetail();
  }

  private renderProgress(): void {
    const s = this.state;
    const bar = document.getElementById('qs-acts-progress') as HTMLProgressElement | null;
    const text = document.getElementById('qs-acts-status');
    if (!s || !bar || !text) return;
    const p = s.progress;
    bar.value = p && p.total > 0 ? p.done / p.total : 0;
    text.textContent = p ? `Running the model: ${formatCount(p.done)} of ${formatCount(p.total)} samples` : 'Running the model…';
  }

  private render(): void {
    const s = this.state;
    if (!s) return;
    if (s.unavailable) {
      this.body.replaceChildren(el('p', { id: 'qs-acts-why', class: 'qs-muted' }, `Activations are not available: ${s.unavailable}.`));
      return;
    }
    const running = s.phase === 'running';
    const samples = el('input', { id: 'qs-acts-samples', type: 'number', min: '1', max: '1024', step: '1', value: String(s.samples), 'aria-label': 'Samples to run' });
    const run = button('qs-acts-run', 'play', 'Run', () => {
      const n = Math.max(1, Math.min(1024, Math.round(Number(samples.value) || s.samples)));
      this.post({ type: 'activationsRun', samples: n });
    }, 'Run the model on the data and collect every activation');
    run.disabled = running;
    const cancel = button('qs-acts-cancel', 'debug-stop', 'Cancel', () => this.post({ type: 'activationsCancel' }), 'Stop the run');
    cancel.hidden = !running;
    const choose = button('qs-acts-choose', 'folder-opened', 'Choose data…', () => this.post({ type: 'activationsChooseData' }), 'Calibration data: .npy, .npz, .json, images, .txt, or a folder');
    const synth = button('qs-acts-synthetic', 'beaker', 'Use synthetic inputs', () => this.post({ type: 'activationsSynthetic' }));
    synth.hidden = s.data === undefined;
    const data = el('span', { id: 'qs-acts-data' }, s.data === undefined ? 'Data: synthetic inputs from the declared shapes' : `Data: ${s.data}`);
    const toolbar = el('div', { class: 'qs-toolbar' }, data, choose, synth, el('label', { class: 'qs-field' }, 'Samples ', samples), run, cancel);
    const progress = el('div', { class: 'qs-progress', role: 'status', 'aria-live': 'polite' });
    if (running) progress.append(el('progress', { id: 'qs-acts-progress', max: '1', value: '0', 'aria-label': 'Activation run progress' }));
    const status = el('span', { id: 'qs-acts-status' });
    progress.append(status);
    status.textContent = s.phase === 'idle' ? 'Not run yet: Run executes the model in the worker pool (never in the editor\'s process).'
      : s.phase === 'cancelled' ? 'Cancelled.' : s.phase === 'error' ? `Failed: ${s.error ?? 'unknown error'}` : '';
    if (s.phase === 'error') status.setAttribute('role', 'alert');
    const parts: HTMLElement[] = [toolbar, progress];
    const r = s.result;
    if (r && s.phase === 'done') {
      const synthetic = r.data === 'synthetic';
      const label = el('p', { id: 'qs-acts-label', class: synthetic ? 'qs-acts-label qs-synthetic' : 'qs-acts-label' });
      if (synthetic) label.append(el('strong', {}, 'SYNTHETIC'), ` data: ${r.samples} deterministic samples generated from the declared input shapes (${r.dataSource}); ranges and outliers say nothing about real inputs.`);
      else label.append(`Real data: ${r.samples} samples from ${r.dataSource}.`);
      label.append(` ${formatCount(r.rows.length)} activations · clip points for ${r.target} (percentile ${r.percentile}) · ${r.provider.toUpperCase()}${r.providerNote ? ` (${r.providerNote})` : ''} · ${r.seconds.toFixed(1)} s`);
      if (r.cached) label.append(el('span', { id: 'qs-acts-cached', class: 'qs-muted' }, ' · from the cache'));
      if (r.empty) label.append(` · ${r.empty} captured tensors held no finite value`);
      const sort = el('select', { id: 'qs-acts-sort', 'aria-label': 'Sort activations by' });
      for (const [v, t] of [['width', 'range width (max − min)'], ['outlier', 'outlier ratio (largest channel / median)'], ['name', 'name (model order)']] as const) {
        const o = el('option', { value: v }, t);
        if (v === this.sortBy) o.selected = true;
        sort.append(o);
      }
      sort.addEventListener('change', () => { this.sortBy = sort.value as SortBy; this.onSave?.(); this.renderTable(); });
      parts.push(label, el('div', { class: 'qs-table-tools' }, el('label', { class: 'qs-field' }, 'Sort by ', sort)),
        el('div', { class: 'qs-acts-lower' }, el('div', { class: 'qs-acts-table-box', id: 'qs-acts-table-box' }), this.detail));
    }
    this.body.replaceChildren(...parts);
    this.renderProgress();
    if (r && s.phase === 'done') {
      this.renderTable();
      if (this.shownResult !== r || !this.selected || !r.rows.some((x) => x.name === this.selected)) {
        this.shownResult = r;
        if (!this.selected || !r.rows.some((x) => x.name === this.selected)) this.selected = undefined;
      }
      this.drawDetail();
    } else {
      document.body.dataset.actsRows = '0';
      delete document.body.dataset.actsDetail;
    }
  }

  private sorted(rows: ActivationRow[]): ActivationRow[] {
    if (this.sortBy === 'name') return rows;
    const key = this.sortBy === 'width' ? width : ratioKey;
    return rows.slice().sort((a, b) => key(b) - key(a) || a.name.localeCompare(b.name));
  }

  private renderTable(): void {
    const box = document.getElementById('qs-acts-table-box');
    const r = this.state?.result;
    if (!box || !r) return;
    const heads = ['Activation', 'Min', 'Max', 'Range width', 'Outlier ratio', 'Outlier channels', 'p0.1', 'p1', 'p99', 'p99.9', 'Shape'];
    const table = el('table', { id: 'qs-acts-table', class: 'qs-mini qs-acts-table', 'aria-label': 'Activations' },
      el('thead', {}, el('tr', {}, ...heads.map((h) => el('th', { scope: 'col' }, h)))));
    const body = el('tbody', {});
    const rows = this.sorted(r.rows);
    for (const a of rows.slice(0, MAX_ROWS)) {
      const p = (q: number) => a.percentiles.find((x) => x.q === q)?.value;
      const o = a.outliers;
      const tr = el('tr', { 'data-name': a.name, tabindex: '0', class: a.name === this.selected ? 'qs-selected' : '' },
        el('td', { class: 'qs-acts-name', title: a.name }, a.name),
        el('td', { class: 'num', 'data-col': 'min' }, fmt(a.min)), el('td', { class: 'num', 'data-col': 'max' }, fmt(a.max)),
        el('td', { class: 'num', 'data-col': 'width' }, fmt(width(a))),
        el('td', { class: 'num', 'data-col': 'ratio' }, o.ratio === null ? '∞' : `${o.ratio.toFixed(1)}×`),
        el('td', { class: 'num' }, o.channels ? `${o.flagged} of ${o.channels}` : '—'),
        el('td', { class: 'num' }, fmt(p(0.1))), el('td', { class: 'num' }, fmt(p(1))), el('td', { class: 'num' }, fmt(p(99))), el('td', { class: 'num' }, fmt(p(99.9))),
        el('td', {}, a.dims.join('×')));
      tr.addEventListener('click', () => this.select(a.name));
      tr.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); this.select(a.name); } });
      body.append(tr);
    }
    table.append(body);
    box.replaceChildren(table);
    if (rows.length > MAX_ROWS) box.append(el('p', { class: 'qs-muted' }, `First ${formatCount(MAX_ROWS)} of ${formatCount(rows.length)} activations in this order.`));
    document.body.dataset.actsRows = String(r.rows.length);
  }

  private select(name: string): void {
    this.selected = name;
    for (const tr of document.querySelectorAll<HTMLElement>('#qs-acts-table tbody tr')) tr.classList.toggle('qs-selected', tr.dataset.name === name);
    this.onSave?.();
    this.drawDetail();
  }

  private drawDetail(): void {
    const r = this.state?.result;
    const a = r?.rows.find((x) => x.name === this.selected);
    const title = document.getElementById('qs-acts-detail-title');
    const clips = document.getElementById('qs-acts-clips');
    const chans = document.getElementById('qs-acts-channels');
    if (!r || !title || !clips || !chans) return;
    if (!a) {
      title.textContent = 'Select an activation';
      this.slot.show(undefined, 'Click a row to see its histogram and the calibrators\' clip points.');
      clips.replaceChildren();
      chans.replaceChildren();
      delete document.body.dataset.actsDetail;
      return;
    }
    const t = readTheme();
    title.textContent = a.name;
    title.title = a.name;
    this.slot.show(activationHistogramConfig(a.histogram, a.clips, this.log, t));
    const ct = el('table', { class: 'qs-mini', 'aria-label': 'Clip points per calibrator' },
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Calibrator'), el('th', { scope: 'col' }, 'clip low'), el('th', { scope: 'col' }, 'clip high'), el('th', { scope: 'col' }, 'values clipped (est.)'))));
    const cb = el('tbody', {});
    const clipped = (lo: number, hi: number) => {
      // Estimated from the display histogram, each bin's values spread evenly over its part of [min, max].
      const w = (a.histogram.hi - a.histogram.lo) / Math.max(1, a.histogram.counts.length);
      let n = 0;
      a.histogram.counts.forEach((c, i) => {
        const b0 = Math.max(a.min, a.histogram.lo + i * w), b1 = Math.min(a.max, a.histogram.lo + (i + 1) * w);
        if (!(c > 0)) return;
        if (!(b1 > b0)) { if (b0 < lo || b0 > hi) n += c; return; }
        n += (c * (Math.max(0, Math.min(b1, lo) - b0) + Math.max(0, b1 - Math.max(b0, hi)))) / (b1 - b0);
      });
      return n / a.count;
    };
    for (const name of r.calibrators) {
      const c = a.clips[name];
      if (!c) continue;
      const swatch = el('span', { class: 'qs-swatch', 'aria-hidden': 'true' });
      swatch.style.background = calibratorColor(name, t);
      cb.append(el('tr', { 'data-calibrator': name }, el('td', {}, swatch, ` ${CALIBRATOR_LABELS[name] ?? name}`), el('td', { class: 'num' }, fmt(c.lo)), el('td', { class: 'num' }, fmt(c.hi)), el('td', { class: 'num' }, `${(100 * clipped(c.lo, c.hi)).toFixed(3)}%`)));
    }
    ct.append(cb);
    clips.replaceChildren(ct);
    const o = a.outliers;
    if (!o.channels) chans.replaceChildren(el('p', { class: 'qs-muted' }, 'No channel axis.'));
    else {
      const list = el('ol', { class: 'qs-acts-top' });
      for (const c of o.top) list.append(el('li', {}, `channel ${c.channel}: max |x| ${fmt(c.max)} (${c.ratio === null ? '∞' : `${c.ratio.toFixed(1)}×`} the median channel)`));
      chans.replaceChildren(
        el('p', { class: 'qs-muted' }, `Channels on axis ${a.channelAxis}: ${o.channels}; median channel max |x| ${fmt(o.median)}; ${o.flagged} at ≥ 4× the median (outlier channels). Largest:`),
        list);
    }
    document.body.dataset.actsDetail = a.name;
  }
}

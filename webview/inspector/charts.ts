/**
 * chart.js charts of the inspector, coloured from the VS Code theme. Only the
 * parts of chart.js in use are registered, to keep the bundle small.
 */
import {
  Chart, BarController, BarElement, LineController, LineElement, PointElement, LinearScale, LogarithmicScale,
  CategoryScale, Filler, Legend, Tooltip, type ChartConfiguration, type Plugin,
} from 'chart.js';
import type { ConfigInfo, ConfigResult, TensorDetail } from '../../src/shared/protocol/inspector';

Chart.register(BarController, BarElement, LineController, LineElement, PointElement, LinearScale, LogarithmicScale, CategoryScale, Filler, Legend, Tooltip);

export interface Theme {
  fg: string; muted: string; grid: string; bg: string; font: string;
  blue: string; red: string; orange: string; green: string; yellow: string; purple: string;
}

function cssVar(name: string, fallback: string): string {
  const v = getComputedStyle(document.body).getPropertyValue(name).trim();
  return v || fallback;
}

/** Colours of the current theme (re-read when the theme changes). */
export function readTheme(): Theme {
  return {
    fg: cssVar('--vscode-foreground', '#cccccc'),
    muted: cssVar('--vscode-descriptionForeground', '#999999'),
    grid: cssVar('--vscode-editorWidget-border', cssVar('--vscode-panel-border', '#80808040')),
    bg: cssVar('--vscode-editor-background', '#1e1e1e'),
    font: cssVar('--vscode-font-family', 'sans-serif'),
    blue: cssVar('--vscode-charts-blue', '#3794ff'),
    red: cssVar('--vscode-charts-red', '#f14c4c'),
    orange: cssVar('--vscode-charts-orange', '#d18616'),
    green: cssVar('--vscode-charts-green', '#89d185'),
    yellow: cssVar('--vscode-charts-yellow', '#cca700'),
    purple: cssVar('--vscode-charts-purple', '#b180d7'),
  };
}

/** `#rrggbb` (or `#rrggbbaa`) with a new alpha; other colour syntaxes are returned unchanged. */
export function withAlpha(color: string, alpha: number): string {
  const m = /^#([0-9a-f]{6})([0-9a-f]{2})?$/i.exec(color.trim());
  if (!m) return color;
  return `#${m[1]}${Math.round(alpha * 255).toString(16).padStart(2, '0')}`;
}

function baseOptions(t: Theme, title: string) {
  Chart.defaults.color = t.fg;
  Chart.defaults.font.family = t.font;
  Chart.defaults.borderColor = withAlpha(t.grid, 0.5);
  return {
    responsive: true,
    maintainAspectRatio: false,
    animation: false as const,
    plugins: {
      legend: { labels: { color: t.fg, boxWidth: 12 } },
      title: { display: false, text: title },
      tooltip: { intersect: false, mode: 'index' as const },
    },
  };
}

// --- quantization grid --------------------------------------------------------

/** The 16 NF4 levels (QLoRA): quantiles of a standard normal, normalised to [-1, 1]. */
const NF4 = [-1, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0,
  0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1];

/** Non-negative float8 E4M3 (FN) values: 4 exponent bits (bias 7), 3 mantissa bits, max 448. */
function e4m3Values(): number[] {
  const out: number[] = [];
  for (let e = 0; e < 16; e++) {
    for (let m = 0; m < 8; m++) {
      if (e === 15 && m === 7) continue; // NaN
      out.push(e === 0 ? (m / 8) * 2 ** -6 : (1 + m / 8) * 2 ** (e - 7));
    }
  }
  return out;
}

/**
 * Levels a config can represent when its scale is set by the tensor-wide range
 * [lo, hi] (symmetric configs use max(|lo|, |hi|)). Per-channel and per-group
 * scales are finer than this; the chart shows the coarsest grid of the tensor.
 */
export function gridLevels(config: ConfigInfo | undefined, lo: number, hi: number): number[] {
  const a = Math.max(Math.abs(lo), Math.abs(hi));
  if (!(hi > lo) || !config) return [];
  if (config.format === 'nf4') return NF4.map((v) => v * a);
  if (config.format === 'fp8_e4m3') {
    const pos = e4m3Values().map((v) => (v * a) / 448);
    return [...pos.slice(1).map((v) => -v).reverse(), ...pos];
  }
  const bits = config.bits;
  if (config.symmetric) {
    const q = 2 ** (bits - 1) - 1;
    return Array.from({ length: 2 * q + 1 }, (_, k) => ((k - q) * a) / q);
  }
  const n = 2 ** bits - 1;
  return Array.from({ length: n + 1 }, (_, k) => lo + ((hi - lo) * k) / n);
}

interface OverlayOptions { levels: number[]; clipLo?: number; clipHi?: number; lineColor: string; shadeColor: string }

/** Draws the grid lines and shades the clipped tails over the histogram's plot area. */
const quantOverlay: Plugin<'line'> = {
  id: 'quantOverlay',
  afterDatasetsDraw(chart, _args, opts) {
    const o = opts as unknown as OverlayOptions;
    if (!o?.levels) return;
    const { ctx, chartArea: area, scales } = chart;
    const x = scales.x;
    ctx.save();
    ctx.beginPath();
    ctx.rect(area.left, area.top, area.right - area.left, area.bottom - area.top);
    ctx.clip();
    ctx.fillStyle = o.shadeColor;
    if (o.clipLo !== undefined && o.clipLo > x.min) {
      const px = x.getPixelForValue(o.clipLo);
      ctx.fillRect(area.left, area.top, px - area.left, area.bottom - area.top);
    }
    if (o.clipHi !== undefined && o.clipHi < x.max) {
      const px = x.getPixelForValue(o.clipHi);
      ctx.fillRect(px, area.top, area.right - px, area.bottom - area.top);
    }
    ctx.strokeStyle = o.lineColor;
    ctx.lineWidth = 1;
    const xs = o.levels.filter((v) => v >= x.min && v <= x.max).map((v) => x.getPixelForValue(v));
    let gap = Infinity;
    for (let i = 1; i < xs.length; i++) gap = Math.min(gap, xs[i] - xs[i - 1]);
    // A grid finer than a few pixels would paint the plot solid: show it as a rug of ticks along the axis instead.
    const top = gap >= 5 ? area.top : area.bottom - 10;
    ctx.beginPath();
    for (const p of xs) {
      const px = Math.round(p) + 0.5;
      ctx.moveTo(px, top);
      ctx.lineTo(px, area.bottom);
    }
    ctx.stroke();
    ctx.restore();
  },
};

export interface HistogramSettings { log: boolean; config: ConfigInfo | undefined; range: 'minmax' | 'percentile' }

/** Histogram of a tensor with the chosen config's grid overlaid and the percentile-clipped tails shaded. */
export function histogramConfig(d: TensorDetail, s: HistogramSettings, t: Theme): ChartConfiguration<'line'> {
  const { min, max, counts } = d.histogram;
  const w = counts.length ? (max - min) / counts.length : 0;
  const pts = counts.map((c, i) => ({ x: min + (i + 0.5) * w, y: s.log ? (c > 0 ? c : NaN) : c }));
  const p = (q: number) => d.percentiles.find((x) => x.q === q)?.value;
  const lo = s.range === 'percentile' ? (p(0.01) ?? min) : min;
  const hi = s.range === 'percentile' ? (p(99.99) ?? max) : max;
  const overlay: OverlayOptions = {
    levels: gridLevels(s.config, lo, hi),
    lineColor: withAlpha(t.orange, 0.45),
    shadeColor: withAlpha(t.red, 0.18),
  };
  if (s.range === 'percentile') { overlay.clipLo = lo; overlay.clipHi = hi; }
  const base = baseOptions(t, 'Histogram');
  return {
    type: 'line',
    data: {
      datasets: [{
        label: 'elements', data: pts, stepped: 'middle', borderColor: t.blue, backgroundColor: withAlpha(t.blue, 0.35),
        fill: s.log ? false : 'origin', pointRadius: 0, borderWidth: 1, spanGaps: false,
      }],
    },
    options: {
      ...base,
      parsing: false,
      plugins: { ...base.plugins, legend: { display: false }, quantOverlay: overlay } as never,
      scales: {
        x: { type: 'linear', min, max, ticks: { color: t.muted, maxTicksLimit: 9 }, grid: { display: false }, title: { display: true, text: 'value', color: t.muted } },
        y: s.log
          ? { type: 'logarithmic', min: 0.5, ticks: { color: t.muted }, title: { display: true, text: 'count (log)', color: t.muted } }
          : { type: 'linear', beginAtZero: true, ticks: { color: t.muted }, title: { display: true, text: 'count', color: t.muted } },
      },
    },
    plugins: [quantOverlay],
  };
}

/** The colour of each activation calibrator's clip markers (the view's legend uses the same). */
export function calibratorColor(name: string, t: Theme): string {
  return ({ minmax: t.red, percentile: t.orange, mse: t.green, entropy: t.purple } as Record<string, string>)[name] ?? t.fg;
}

interface ClipMarkerOptions { markers: { name: string; lo: number; hi: number; color: string }[] }

/**
 * Each calibrator's clip points as vertical lines, side by side: coinciding
 * points (min-max and percentile often agree) are nudged apart a few pixels
 * so every calibrator stays visible. The canvas records how many it drew.
 */
const clipMarkers: Plugin<'line'> = {
  id: 'clipMarkers',
  afterDatasetsDraw(chart, _args, opts) {
    const o = opts as unknown as ClipMarkerOptions;
    if (!o?.markers) return;
    const { ctx, chartArea: area, scales } = chart;
    const x = scales.x;
    ctx.save();
    ctx.lineWidth = 2;
    let drawn = 0;
    const n = o.markers.length;
    o.markers.forEach((m, i) => {
      ctx.strokeStyle = m.color;
      ctx.setLineDash(i % 2 ? [5, 3] : []);
      const nudge = (i - (n - 1) / 2) * 2.5;
      for (const v of [m.lo, m.hi]) {
        if (!(v >= x.min && v <= x.max)) continue;
        const px = Math.min(area.right - 1, Math.max(area.left + 1, Math.round(x.getPixelForValue(v) + nudge) + 0.5));
        ctx.beginPath();
        ctx.moveTo(px, area.top);
        ctx.lineTo(px, area.bottom);
        ctx.stroke();
        drawn++;
      }
    });
    ctx.restore();
    chart.canvas.dataset.clipMarkers = String(drawn);
  },
};

/** Histogram of one activation over [lo, hi] with every calibrator's clip range drawn as vertical lines. */
export function activationHistogramConfig(h: { lo: number; hi: number; counts: number[] }, clips: Record<string, { lo: number; hi: number }>, log: boolean, t: Theme): ChartConfiguration<'line'> {
  const w = h.counts.length ? (h.hi - h.lo) / h.counts.length : 0;
  const pts = h.counts.map((c, i) => ({ x: h.lo + (i + 0.5) * w, y: log ? (c > 0 ? c : NaN) : c }));
  // The clip points may reach past the histogram's outer bins (min-max is the exact extremes): the axis holds both.
  const all = Object.values(clips).flatMap((c) => [c.lo, c.hi]).filter(Number.isFinite);
  const min = Math.min(h.lo, ...all), max = Math.max(h.hi, ...all);
  const pad = (max - min) * 0.01 || 1e-6;
  const markers: ClipMarkerOptions = { markers: Object.entries(clips).map(([name, c]) => ({ name, lo: c.lo, hi: c.hi, color: calibratorColor(name, t) })) };
  const base = baseOptions(t, 'Activation histogram');
  return {
    type: 'line',
    data: {
      datasets: [{
        label: 'values', data: pts, stepped: 'middle', borderColor: t.blue, backgroundColor: withAlpha(t.blue, 0.35),
        fill: log ? false : 'origin', pointRadius: 0, borderWidth: 1, spanGaps: false,
      }],
    },
    options: {
      ...base,
      parsing: false,
      plugins: { ...base.plugins, legend: { display: false }, clipMarkers: markers } as never,
      scales: {
        x: { type: 'linear', min: min - pad, max: max + pad, ticks: { color: t.muted, maxTicksLimit: 9 }, grid: { display: false }, title: { display: true, text: 'activation value', color: t.muted } },
        y: log
          ? { type: 'logarithmic', min: 0.5, ticks: { color: t.muted }, title: { display: true, text: 'count (log)', color: t.muted } }
          : { type: 'linear', beginAtZero: true, ticks: { color: t.muted }, title: { display: true, text: 'count', color: t.muted } },
      },
    },
    plugins: [clipMarkers],
  };
}

/** Per-output-channel min and max with the tensor-wide range: the gap is what per-tensor scaling wastes. */
export function channelConfig(d: TensorDetail, t: Theme): ChartConfiguration<'line'> | undefined {
  const c = d.channels;
  if (!c) return undefined;
  const absMax = Math.max(...c.max.map(Math.abs), ...c.min.map(Math.abs));
  const n = c.min.length;
  const base = baseOptions(t, 'Per-channel range');
  return {
    type: 'line',
    data: {
      labels: Array.from({ length: n }, (_, i) => String(i)),
      datasets: [
        { label: 'channel max', data: c.max, borderColor: t.blue, backgroundColor: withAlpha(t.blue, 0.25), pointRadius: 0, borderWidth: 1, fill: '+1' },
        { label: 'channel min', data: c.min, borderColor: t.purple, pointRadius: 0, borderWidth: 1, fill: false },
        { label: 'tensor ±absmax', data: Array(n).fill(absMax), borderColor: t.red, borderDash: [4, 3], pointRadius: 0, borderWidth: 1, fill: false },
        { label: '', data: Array(n).fill(-absMax), borderColor: t.red, borderDash: [4, 3], pointRadius: 0, borderWidth: 1, fill: false },
      ],
    },
    options: {
      ...base,
      plugins: { ...base.plugins, legend: { labels: { color: t.fg, boxWidth: 12, filter: (item) => item.text !== '' } } },
      scales: {
        x: { ticks: { color: t.muted, maxTicksLimit: 12 }, grid: { display: false }, title: { display: true, text: `channel (axis ${c.axis})`, color: t.muted } },
        y: { ticks: { color: t.muted } },
      },
    },
  };
}

/** SQNR of each candidate config on this tensor, coloured by the risk threshold of its bit width. */
export function configBarsConfig(configs: ConfigResult[], chosen: string, t: Theme): ChartConfiguration<'bar'> {
  const base = baseOptions(t, 'Candidate configurations');
  return {
    type: 'bar',
    data: {
      labels: configs.map((c) => `${c.config} (${c.bitsPerWeight.toFixed(2)} b/w)`),
      datasets: [{
        label: 'SQNR (dB)', data: configs.map((c) => (Number.isFinite(c.sqnrDb) ? Math.min(c.sqnrDb, 100) : 100)),
        backgroundColor: configs.map((c) => (c.config === chosen ? t.orange : withAlpha(t.blue, 0.7))), borderWidth: 0,
      }],
    },
    options: {
      ...base, indexAxis: 'y',
      plugins: { ...base.plugins, legend: { display: false } },
      scales: { x: { ticks: { color: t.muted }, title: { display: true, text: 'SQNR (dB), higher is better', color: t.muted } }, y: { ticks: { color: t.fg } } },
    },
  };
}

export interface LayerPoint { name: string; sqnr?: number; kurtosis?: number; outlierShare?: number; risk?: 'high' | 'medium' | 'low' }

export function layerSqnrConfig(points: LayerPoint[], config: ConfigInfo, t: Theme): ChartConfiguration<'bar'> {
  const p = points.filter((x) => x.sqnr !== undefined && Number.isFinite(x.sqnr));
  const base = baseOptions(t, 'Per-layer SQNR');
  const top = Math.max(0, ...p.map((x) => x.sqnr!));
  const cap = 6.02 * config.bits + 24;
  const clamped = top > cap;
  const yMax = Math.ceil((Math.min(top, cap) + 1) / 10) * 10;
  return {
    type: 'bar',
    data: {
      labels: p.map((x) => x.name),
      datasets: [{
        label: `SQNR ${config.id} (dB)`, data: p.map((x) => x.sqnr!), borderWidth: 0,
        backgroundColor: p.map((x) => (x.risk === 'high' ? t.red : x.risk === 'medium' ? t.yellow : t.blue)),
      }],
    },
    options: {
      ...base,
      // Tiny groups can be near-lossless (100+ dB); clamping keeps the tensors that matter readable.
      scales: { x: { ticks: { display: false }, grid: { display: false }, title: { display: true, text: 'weight tensors, model order', color: t.muted } }, y: { min: 0, max: yMax, ticks: { color: t.muted }, title: { display: true, text: clamped ? 'dB (clamped)' : 'dB', color: t.muted } } },
    },
  };
}

export function layerTailsConfig(points: LayerPoint[], t: Theme): ChartConfiguration<'bar' | 'line'> {
  const p = points.filter((x) => x.kurtosis !== undefined);
  const base = baseOptions(t, 'Per-layer kurtosis and outliers');
  return {
    type: 'bar',
    data: {
      labels: p.map((x) => x.name),
      datasets: [
        // Plain kurtosis (excess + 3) is positive, so a log axis can show 3 (Gaussian) and 6,000 (one huge outlier) together.
        { type: 'bar', label: 'kurtosis (Gaussian = 3)', data: p.map((x) => Math.max(1, x.kurtosis! + 3)), backgroundColor: withAlpha(t.purple, 0.75), borderWidth: 0, yAxisID: 'y' },
        { type: 'line', label: 'outlier share (%)', data: p.map((x) => 100 * (x.outlierShare ?? 0)), borderColor: t.orange, pointRadius: 0, borderWidth: 1.5, yAxisID: 'y1' },
      ],
    },
    options: {
      ...base,
      scales: {
        x: { ticks: { display: false }, grid: { display: false }, title: { display: true, text: 'tensors, model order', color: t.muted } },
        y: { type: 'logarithmic', position: 'left', min: 1, ticks: { color: t.muted }, title: { display: true, text: 'kurtosis (log)', color: t.muted } },
        y1: { position: 'right', ticks: { color: t.muted }, grid: { display: false }, title: { display: true, text: 'outliers %', color: t.muted } },
      },
    },
  } as ChartConfiguration<'bar' | 'line'>;
}

export function sizeConfig(sizes: { label: string; weights: number; rest: number }[], t: Theme): ChartConfiguration<'bar'> {
  const base = baseOptions(t, 'Size breakdown');
  const mib = (b: number) => b / 1048576;
  return {
    type: 'bar',
    data: {
      labels: sizes.map((s) => s.label),
      datasets: [
        { label: 'quantizable weights', data: sizes.map((s) => mib(s.weights)), backgroundColor: t.blue, borderWidth: 0 },
        { label: 'kept as is (other tensors, graph)', data: sizes.map((s) => mib(s.rest)), backgroundColor: withAlpha(t.green, 0.8), borderWidth: 0 },
      ],
    },
    options: {
      ...base, indexAxis: 'y',
      scales: { x: { stacked: true, ticks: { color: t.muted }, title: { display: true, text: 'MiB', color: t.muted } }, y: { stacked: true, ticks: { color: t.fg } } },
    },
  };
}

/** A chart living in a canvas, replaced when its config changes. */
export class ChartSlot {
  chart: Chart | undefined;
  constructor(readonly canvas: HTMLCanvasElement, private readonly empty: HTMLElement) {}
  /** Draws the chart, or says why there is none. */
  show(config: ChartConfiguration<never> | ChartConfiguration<'line'> | ChartConfiguration<'bar'> | ChartConfiguration<'bar' | 'line'> | undefined, why = ''): void {
    this.chart?.destroy();
    this.chart = config ? new Chart(this.canvas, config as ChartConfiguration) : undefined;
    this.empty.textContent = config ? '' : why;
    this.empty.hidden = !!config;
  }
  destroy(): void { this.chart?.destroy(); this.chart = undefined; }
}

/** PNG of a chart on the theme's background (the canvas itself is transparent). */
export function chartPng(canvas: HTMLCanvasElement, bg: string): string {
  const out = document.createElement('canvas');
  out.width = canvas.width;
  out.height = canvas.height;
  const ctx = out.getContext('2d')!;
  ctx.fillStyle = bg;
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.drawImage(canvas, 0, 0);
  return out.toDataURL('image/png');
}

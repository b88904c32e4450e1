/**
 * The wizard's two charts (chart.js, theme colours): the knapsack's Pareto
 * frontier (size vs predicted error) with the uniform configs as reference
 * points and the chosen plan marked; and, on the result page, the per-weight
 * SQNR the plan predicted against the SQNR of the written codes.
 */
import {
  Chart, ScatterController, LineController, BarController, BarElement, LineElement, PointElement, LinearScale, LogarithmicScale, CategoryScale,
  Legend, Tooltip, type ChartConfiguration,
} from 'chart.js';
import { readTheme, withAlpha } from '../inspector/charts';

Chart.register(ScatterController, LineController, BarController, BarElement, LineElement, PointElement, LinearScale, LogarithmicScale, CategoryScale, Legend, Tooltip);

const MB = 1e6;

export interface FrontierChartData {
  points: { bytes: number; error: number }[];
  uniform: { config: string; bytes: number; error: number }[];
  chosen?: { bytes: number; error: number };
  /** What the errors are (the y axis says it). */
  metric: 'weight' | 'output';
  metricLabel: string;
}

function base(): { t: ReturnType<typeof readTheme> } {
  const t = readTheme();
  Chart.defaults.color = t.fg;
  Chart.defaults.font.family = t.font;
  Chart.defaults.borderColor = withAlpha(t.grid, 0.5);
  return { t };
}

/** Errors of 0 (every weight kept) cannot sit on a log axis: they are drawn at the smallest positive error / 10. */
function floorOf(d: FrontierChartData): number {
  const pos = [...d.points, ...d.uniform].map((p) => p.error).filter((e) => e > 0);
  return pos.length ? Math.min(...pos) / 10 : 1e-12;
}

export function frontierChart(canvas: HTMLCanvasElement, d: FrontierChartData, onPick: (index: number) => void): Chart {
  const { t } = base();
  const lo = floorOf(d);
  const y = (e: number) => Math.max(e, lo);
  const config: ChartConfiguration<'scatter'> = {
    type: 'scatter',
    data: {
      datasets: [
        { label: `Pareto frontier (knapsack), ${d.metricLabel}`, data: d.points.map((p) => ({ x: p.bytes / MB, y: y(p.error) })), showLine: true, borderColor: t.blue, backgroundColor: t.blue, pointRadius: 2, pointHoverRadius: 5, borderWidth: 1.5 },
        { label: 'Uniform configs', data: d.uniform.map((u) => ({ x: u.bytes / MB, y: y(u.error) })), borderColor: t.orange, backgroundColor: t.orange, pointRadius: 5, pointStyle: 'rectRot' },
        { label: 'Chosen plan', data: d.chosen ? [{ x: d.chosen.bytes / MB, y: y(d.chosen.error) }] : [], borderColor: t.green, backgroundColor: withAlpha(t.green, 0.4), pointRadius: 8, borderWidth: 2 },
      ],
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      scales: {
        x: { type: 'linear', title: { display: true, text: 'size of the planned weights (MB)' }, grid: { color: withAlpha(t.grid, 0.4) } },
        y: { type: 'logarithmic', title: { display: true, text: d.metric === 'output' ? 'predicted Σ output effect' : 'predicted Σ squared weight error' }, grid: { color: withAlpha(t.grid, 0.4) }, ticks: { callback: (v) => (Math.abs(Math.log10(Number(v)) - Math.round(Math.log10(Number(v)))) < 1e-9 ? Number(v).toExponential(0) : '') } },
      },
      plugins: {
        legend: { labels: { color: t.fg, boxWidth: 10 } },
        tooltip: {
          callbacks: {
            label: (c) => {
              const x = c.parsed.x ?? 0;
              const e = c.parsed.y ?? 0;
              const name = c.datasetIndex === 1 ? d.uniform[c.dataIndex]?.config : c.datasetIndex === 2 ? 'chosen' : 'frontier';
              return `${name}: ${x.toFixed(2)} MB, error ${e.toExponential(2)}`;
            },
          },
        },
      },
      onClick: (_ev, els) => {
        const hit = els.find((e) => e.datasetIndex === 0);
        if (hit) onPick(hit.index);
      },
    },
  };
  return new Chart(canvas, config);
}

export function perLayerChart(canvas: HTMLCanvasElement, rows: { name: string; plannedDb?: number; writtenDb: number }[]): Chart {
  const { t } = base();
  const cap = (v: number | undefined) => (v === undefined ? null : Number.isFinite(v) ? v : 150);
  const config: ChartConfiguration<'bar'> = {
    type: 'bar',
    data: {
      labels: rows.map((r) => r.name),
      datasets: [
        { label: 'predicted by the plan (sensitivity table)', data: rows.map((r) => cap(r.plannedDb)), backgroundColor: withAlpha(t.blue, 0.7) },
        { label: 'measured on the written file (codes read back)', data: rows.map((r) => cap(r.writtenDb)), backgroundColor: withAlpha(t.orange, 0.7) },
      ],
    },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false,
      scales: { x: { ticks: { display: rows.length <= 24, autoSkip: true } }, y: { title: { display: true, text: 'weight SQNR (dB), higher is better' } } },
      plugins: { legend: { labels: { color: t.fg, boxWidth: 10 } } },
    },
  };
  return new Chart(canvas, config);
}

/**
 * The Sensitivity view (QuantScope panel): the weights of the inspector the
 * user looked at last, least INT4-reference SQNR first (or largest measured
 * output effect); a click reveals one in the inspector. A budget slider marks
 * which weights the knapsack would lower or keep, and "Quantize with this
 * plan" hands that plan to the Quantize wizard. Its own bundle (dist/sensitivity.js) and protocol.
 */
import type { FromSensitivity, SensitivityPanelData, ToSensitivity } from '../../src/shared/protocol/sensitivity';
import { acquireHost } from '../common/vscodeApi';
import { button, el, icon, replaceKeepingFocus } from '../common/dom';
import { formatBytes } from '../common/format';

const app = document.getElementById('app') as HTMLElement;
const vscode = acquireHost<FromSensitivity>();

function renderSensitivity(): void {
  app.replaceChildren(
    el('p', {}, 'No model is open in the inspector.'),
    el('p', { class: 'qs-muted' }, 'Open a model file (.onnx, .safetensors, .gguf): its weights are listed here, most sensitive to INT4 first.'),
  );
}

// The slider lives across renders, so dragging it is never interrupted by the host's answer.
const slider = el('input', { type: 'range', id: 'qs-budget', step: '0.01', 'aria-label': 'Budget in bits per weight' }) as HTMLInputElement;
const sliderValue = el('span', { id: 'qs-budget-value', class: 'num' });
let dragging = false;
let sendTimer: number | undefined;
let current: SensitivityPanelData | null = null;
slider.addEventListener('pointerdown', () => { dragging = true; });
let deferred: SensitivityPanelData | null | undefined;
slider.addEventListener('pointerup', () => {
  dragging = false;
  if (deferred !== undefined) { const d = deferred; deferred = undefined; renderSensitivityPanel(d); }
});
slider.addEventListener('input', () => {
  sliderValue.textContent = `${Number(slider.value).toFixed(2)} bits/weight`;
  window.clearTimeout(sendTimer);
  sendTimer = window.setTimeout(() => vscode.postMessage({ type: 'setBudget', bitsPerWeight: Number(slider.value), target: current?.budget?.target }), 60);
});

/**
 * SQNR in dB. An exact weight has +∞ dB, which the JSON channel to the webview
 * turns into null: both read as ∞ (and −∞ for a weight that is all error).
 */
function fmtDb(v: number | null | undefined): string {
  if (v === null || v === undefined || v === Infinity) return '∞';
  return v === -Infinity ? '−∞' : v.toFixed(1);
}

function fmtEffect(v: number): string {
  return v === 0 ? '0' : Math.abs(v) >= 1e3 || Math.abs(v) < 1e-3 ? v.toExponential(2) : v.toPrecision(3);
}

function metricSwitch(d: SensitivityPanelData): HTMLElement {
  const group = el('div', { class: 'qs-seg', role: 'radiogroup', 'aria-label': 'Error metric', id: 'qs-metric' });
  const outDone = d.output?.state === 'done';
  for (const [m, label, tip] of [['weight', 'Weight-space', 'SQNR of each weight alone (no data needed)'], ['output', 'Output-space', 'How far the model\'s outputs move when only that weight is quantized (measured)']] as const) {
    const on = d.metric === m;
    const b = el('button', { type: 'button', role: 'radio', 'aria-checked': String(on), class: `qs-seg-item${on ? ' qs-seg-on' : ''}`, 'data-metric': m, title: tip }, label);
    if (m === 'output' && !outDone) { b.setAttribute('disabled', ''); b.title = d.outputWhy ?? 'Measure it first: the model runs once per weight and config'; }
    b.addEventListener('click', () => vscode.postMessage({ type: 'setMetric', metric: m }));
    group.append(b);
  }
  const row = el('div', { class: 'qs-toolbar' }, group);
  const o = d.output;
  if (!o) row.append(el('span', { class: 'qs-muted', id: 'qs-output-why' }, `Output-space: ${d.outputWhy ?? 'not available'}.`));
  else if (o.state === 'running') {
    const bar = el('progress', { id: 'qs-output-progress', 'aria-label': 'Output-space measurement' }) as HTMLProgressElement;
    if (o.total) { bar.max = o.total; bar.value = o.done ?? 0; }
    row.append(bar, el('span', { class: 'qs-muted' }, o.total ? `${o.done} of ${o.total}` : 'starting…'), button('qs-output-cancel', 'debug-stop', 'Cancel', () => vscode.postMessage({ type: 'cancelOutput' })));
  } else if (o.state === 'done') {
    row.append(el('span', { class: 'qs-muted', id: 'qs-output-label' }, icon(o.data === 'synthetic' ? 'warning' : 'database'),
      ` measured at ${o.config ?? '?'} on ${o.samples} ${o.data === 'synthetic' ? 'SYNTHETIC' : 'real'} samples`));
  } else {
    row.append(button('qs-output-measure', 'play', 'Measure output-space', () => vscode.postMessage({ type: 'measureOutput' }), 'Run the model (synthetic inputs) once per weight and config'));
    if (o.state === 'error') row.append(el('span', { class: 'qs-error-text', role: 'alert' }, o.error ?? 'failed'));
  }
  return row;
}

function budgetSection(d: SensitivityPanelData): HTMLElement {
  const sec = el('section', { id: 'qs-budget-section', 'aria-label': 'Budget' });
  const b = d.budget;
  if (!b) {
    sec.append(el('p', { class: 'qs-muted', id: 'qs-budget-why' }, `Budget: ${d.budgetWhy ?? 'waiting for the sensitivity of the weights'}.`));
    return sec;
  }
  slider.min = b.minBits.toFixed(3);
  slider.max = b.maxBits.toFixed(3);
  if (!dragging && document.activeElement !== slider) slider.value = String(b.bitsPerWeight);
  sliderValue.textContent = `${Number(slider.value).toFixed(2)} bits/weight`;
  slider.setAttribute('aria-valuetext', `${b.bitsPerWeight.toFixed(2)} bits per weight: lowers ${b.lowered}, keeps ${b.kept}`);
  const head = el('div', { class: 'qs-toolbar' }, el('label', { for: 'qs-budget' }, 'Budget'), slider, sliderValue);
  if (b.targets.length > 1) {
    const sel = el('select', { id: 'qs-budget-target', 'aria-label': 'Conversion target' }) as HTMLSelectElement;
    for (const t of b.targets) sel.append(el('option', t === b.target ? { value: t, selected: '' } : { value: t }, t));
    sel.addEventListener('change', () => vscode.postMessage({ type: 'setBudget', bitsPerWeight: Number(slider.value), target: sel.value }));
    head.prepend(sel);
  } else head.prepend(el('span', { class: 'qs-muted' }, b.target));
  sec.append(head,
    el('p', { id: 'qs-budget-summary', class: 'qs-muted', 'data-lowered': String(b.lowered), 'data-kept': String(b.kept) },
      `The knapsack lowers ${b.lowered} and keeps ${b.kept} weight${b.kept === 1 ? '' : 's'} · ${formatBytes(b.bytes)} planned · predicted error ${fmtEffect(b.error)} (${d.metric === 'output' ? 'output-space' : 'weight-space'})`),
    el('div', { class: 'qs-toolbar' }, button('qs-quantize-plan', 'zap', 'Quantize with this plan', () => vscode.postMessage({ type: 'quantizeWithPlan' }), 'Open Quantize Model… with this per-weight plan')));
  return sec;
}

/** The Sensitivity panel: the active model's weights, least INT4 SQNR first; a click reveals one in the inspector. */
function renderSensitivityPanel(d: SensitivityPanelData | null): void {
  current = d;
  if (!d) {
    renderSensitivity();
    document.body.dataset.state = 'empty';
    return;
  }
  const ranked = d.metric === 'output' ? `ranked by output effect at ${d.output?.config ?? d.config}` : `ranked by ${d.config} SQNR`;
  const head = el('p', { id: 'qs-sens-head' }, el('strong', {}, d.fileName), ` · ${d.measured} of ${d.quantizable} weights measured · ${ranked}`);
  if (d.rows.length === 0) {
    app.replaceChildren(head, el('p', { class: 'qs-muted' }, 'Waiting for the quantization error of its weights…'));
    document.body.dataset.state = 'waiting';
    return;
  }
  const list = el('ol', { id: 'qs-sens-list', class: 'qs-sens-list', 'aria-label': `Most sensitive weights of ${d.fileName}` });
  for (const r of d.rows) {
    const value = d.metric === 'output' && r.effect !== undefined ? fmtEffect(r.effect) : `${fmtDb(r.sqnrDb)} dB`;
    const mark = r.mark === undefined ? el('span', { class: 'qs-mark qs-mark-none' }, '')
      : el('span', { class: `qs-mark ${r.mark === 'keep' ? 'qs-mark-keep' : 'qs-mark-lower'}`, title: r.mark === 'keep' ? 'the plan keeps it as it is' : `the plan lowers it to ${r.mark}` }, r.mark);
    const b = el('button', { class: 'qs-sens-row', 'data-name': r.name, 'data-mark': r.mark ?? '', title: `${r.name} (${r.layer || r.opType})`, 'aria-label': `${r.name}: ${value}${d.metric === 'output' ? ' output effect' : ` at ${d.config}`}${r.mark ? `, plan: ${r.mark}` : ''}` },
      el('span', { class: `qs-dot qs-dot-${r.risk ?? 'none'}`, 'aria-hidden': 'true' }),
      el('span', { class: 'qs-sens-name' }, r.name),
      mark,
      el('span', { class: 'qs-sens-db num' }, value),
      el('span', { class: 'qs-sens-db8 num qs-muted' }, d.metric === 'weight' && r.sqnrInt8 !== undefined ? `INT8 ${fmtDb(r.sqnrInt8)}` : ''));
    b.addEventListener('click', () => vscode.postMessage({ type: 'revealTensor', file: d.file, name: r.name }));
    list.append(el('li', {}, b));
  }
  // A part that cannot be drawn says so and is logged; the ranking still shows.
  const part = (what: string, f: () => HTMLElement): HTMLElement => {
    try {
      return f();
    } catch (e) {
      vscode.postMessage({ type: 'log', level: 'error', message: `${what}: ${e instanceof Error ? e.stack ?? e.message : String(e)}` });
      return el('p', { class: 'qs-error-text' }, `${what} could not be drawn: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  replaceKeepingFocus(app, head, part('Metric switch', () => metricSwitch(d)), part('Budget', () => budgetSection(d)), list);
  document.body.dataset.state = 'ready';
  document.body.dataset.metric = d.metric;
}

window.addEventListener('message', (ev: MessageEvent<ToSensitivity>) => {
  if (ev.data?.type !== 'sensitivityPanel') return;
  // While the slider is dragged, the newest answer waits for the release (re-parenting the slider would drop the drag).
  if (dragging) deferred = ev.data.data;
  else renderSensitivityPanel(ev.data.data);
});
renderSensitivity();
vscode.postMessage({ type: 'ready' });

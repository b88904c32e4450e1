/**
 * The Quantize wizard: one page of six sections (target, data, budget, plan
 * table, algorithm, quantize) and a result page. The host owns the state and
 * sends it whole; the slider picks a frontier point here at once (the
 * frontier and its assignments are already in the state) and tells the host.
 */
import type { Chart } from 'chart.js';
import { pointAtBudget, type FromWizard, type ToWizard, type WizardState } from '../../src/shared/protocol/wizard';
import { acquireHost } from '../common/vscodeApi';
import { button, el, icon } from '../common/dom';
import { formatCount } from '../common/format';
import { frontierChart, perLayerChart } from './charts';

const app = document.getElementById('app') as HTMLElement;
const host = acquireHost<FromWizard>();
const send = (m: FromWizard) => host.postMessage(m);

let state: WizardState | undefined;
let charts: Chart[] = [];
/** Tensors ticked in the plan table, for "Tie selected". */
const ticked = new Set<string>();

const MB = (b: number) => `${(b / 1e6).toFixed(b >= 1e8 ? 0 : 2)} MB`;
const db = (v: number | undefined) => (v === undefined ? '—' : Number.isFinite(v) ? `${v.toFixed(1)} dB` : '∞');

function section(id: string, n: number, title: string, ...body: (Node | string)[]): HTMLElement {
  return el('section', { id, class: 'qs-wz-step', 'aria-labelledby': `${id}-h` }, el('h2', { id: `${id}-h` }, el('span', { class: 'qs-wz-n' }, String(n)), ` ${title}`), ...body);
}

function banner(s: WizardState): HTMLElement[] {
  const out: HTMLElement[] = [];
  if (s.error) out.push(el('div', { id: 'qs-wz-error', class: 'qs-wz-banner qs-wz-bad', role: 'alert' }, icon('error'), ` ${s.error}`));
  if (s.notice) out.push(el('div', { id: 'qs-wz-notice', class: 'qs-wz-banner', role: 'status' }, icon('info'), ` ${s.notice}`));
  return out;
}

function params(s: WizardState): number {
  return s.layers.reduce((a, l) => a + l.params, 0);
}

function totals(s: WizardState, a: number[]): { bytes: number; error: number; keepBytes: number } {
  let bytes = 0;
  let error = 0;
  let keepBytes = 0;
  s.layers.forEach((l, i) => {
    const o = l.options[a[i] ?? 0];
    bytes += o.bytes;
    error += o.error;
    keepBytes += l.options[0].bytes;
  });
  return { bytes, error, keepBytes };
}

function assignmentOf(s: WizardState, k: number): number[] {
  const n = s.layers.length;
  return s.frontier ? s.frontier.choices.slice(k * n, (k + 1) * n) : [];
}

function targetStep(s: WizardState): HTMLElement {
  const group = el('div', { role: 'radiogroup', 'aria-label': 'Target', class: 'qs-wz-targets' });
  for (const t of s.targets) {
    const id = `qs-wz-target-${t.id}`;
    const input = el('input', { type: 'radio', name: 'target', id, value: t.id });
    input.checked = s.target === t.id;
    input.disabled = s.phase === 'running';
    input.addEventListener('change', () => send({ type: 'setTarget', target: t.id }));
    group.append(el('label', { for: id, class: 'qs-wz-target' }, input, el('strong', {}, t.id), ` ${t.label}`, el('div', { class: 'qs-muted' }, `Loaded by ${t.loadedBy}`)));
  }
  const body: HTMLElement[] = [group];
  if (s.target === 'gguf') {
    const sel = el('select', { id: 'qs-wz-preset', 'aria-label': 'llama.cpp preset' });
    for (const p of s.presets) sel.append(el('option', { value: p }, p));
    sel.value = s.preset ?? 'Q4_K_M';
    sel.addEventListener('change', () => send({ type: 'setPreset', preset: sel.value }));
    body.push(el('p', {}, 'Preset ', sel, el('span', { class: 'qs-muted' }, ' llama.cpp\'s per-tensor choices (attention V and FFN down promoted, output and embeddings by its rules).')));
  }
  if (s.format === 'onnx') body.push(el('p', { class: 'qs-muted' }, 'Only targets that read this model\'s format are listed.'));
  return section('qs-wz-target', 1, 'Target', ...body);
}

function dataStep(s: WizardState): HTMLElement {
  return section('qs-wz-data', 2, 'Data',
    el('p', { id: 'qs-wz-data-label' }, el('span', { class: `qs-wz-tag ${s.data.kind === 'real' ? 'qs-wz-real' : ''}` }, s.data.kind === 'real' ? 'real data' : 'synthetic'), ` ${s.data.label}`),
    el('div', { class: 'qs-wz-row' },
      button('qs-wz-pick-data', 'folder-opened', 'Choose file or folder…', () => send({ type: 'pickData' })),
      button('qs-wz-no-data', 'circle-slash', 'No data', () => send({ type: 'clearData' }))),
    el('p', { class: 'qs-muted' }, 'The plan is made from the weight-space sensitivity (each weight quantized alone, its squared error), or, once measured (step 3), from the output-space effect of each weight on this data (synthetic without data); data also enables GPTQ/AWQ and compares the written model\'s outputs on real inputs instead of synthetic ones.'));
}

function budgetStep(s: WizardState, a: number[], rerender: (a: number[], k: number) => void): HTMLElement {
  if (!s.plannable) {
    return section('qs-wz-budget', 3, 'Budget', el('p', { class: 'qs-muted' }, s.target === 'gguf'
      ? 'GGUF: the size follows the preset (the knapsack plans over the ONNX targets\' configs; per-tensor GGUF types go through the CLI\'s --tensor-type or an exported plan).'
      : `${s.target}: every MatMul/Gemm weight becomes dynamic INT8; there is no per-weight choice to plan.`));
  }
  if (s.analysing) {
    return section('qs-wz-budget', 3, 'Budget',
      el('p', { id: 'qs-wz-analysing', role: 'status' }, icon('loading codicon-modifier-spin'), ` Measuring the weight-space sensitivity: ${s.analysing.done} / ${s.analysing.total} weights`),
      el('progress', { max: String(s.analysing.total), value: String(s.analysing.done), 'aria-label': 'sensitivity progress' }));
  }
  const f = s.frontier;
  if (!f || !f.points.length) return section('qs-wz-budget', 3, 'Budget', el('p', { class: 'qs-muted' }, s.layers.length ? 'Solving the frontier…' : 'No weight to plan.'));
  const P = params(s);
  const bpw = (b: number) => (8 * b) / P;
  const t = totals(s, a);
  // Rounded up to the slider's step, so its ends reach the first and last frontier points.
  const min = Math.ceil(bpw(f.points[0].bytes) * 100) / 100;
  const max = Math.ceil(bpw(f.points[f.points.length - 1].bytes) * 100) / 100;
  const slider = el('input', { type: 'range', id: 'qs-wz-slider', min: min.toFixed(2), max: max.toFixed(2), step: '0.01', 'aria-label': 'Budget in bits per weight' });
  slider.value = bpw(t.bytes).toFixed(3);
  const readout = el('output', { id: 'qs-wz-budget-readout', for: 'qs-wz-slider' }, `${bpw(t.bytes).toFixed(2)} bits/weight · ${MB(t.bytes)} of ${MB(t.keepBytes)}`);
  slider.setAttribute('aria-valuetext', readout.textContent ?? '');
  slider.addEventListener('input', () => {
    const k = pointAtBudget(f.points, (Number(slider.value) * P) / 8);
    if (k < 0) return;
    const na = assignmentOf(s, k);
    const nt = totals(s, na);
    readout.textContent = `${bpw(nt.bytes).toFixed(2)} bits/weight · ${MB(nt.bytes)} of ${MB(nt.keepBytes)}`;
    slider.setAttribute('aria-valuetext', readout.textContent);
    rerender(na, k);
  });
  slider.addEventListener('change', () => {
    const k = pointAtBudget(f.points, (Number(slider.value) * P) / 8);
    if (k >= 0) send({ type: 'select', point: k });
  });
  const uniform = el('input', { type: 'checkbox', id: 'qs-wz-uniform' });
  uniform.checked = s.uniformMode;
  uniform.addEventListener('change', () => send({ type: 'setUniform', uniform: uniform.checked }));
  const canvas = el('canvas', { id: 'qs-wz-frontier', role: 'img', 'aria-label': `Pareto frontier: ${f.points.length} plans from ${min.toFixed(2)} to ${max.toFixed(2)} bits per weight, predicted error ${s.metric.label}; uniform configs as reference points`, 'data-metric': s.metric.kind });
  const wrap = el('div', { class: 'qs-wz-chart' }, canvas);
  queueMicrotask(() => charts.push(frontierChart(canvas, { points: f.points, uniform: f.uniform, chosen: { bytes: t.bytes, error: t.error }, metric: s.metric.kind, metricLabel: s.metric.label }, (k) => send({ type: 'select', point: k }))));
  return section('qs-wz-budget', 3, 'Budget',
    metricControls(s),
    el('div', { class: 'qs-wz-row' }, el('label', { for: 'qs-wz-slider' }, 'Bits per weight '), slider, readout),
    el('p', { class: 'qs-muted', id: 'qs-wz-budget-note' }, budgetNote(s, s.selected, t)),
    wrap,
    el('label', { class: 'qs-wz-check' }, uniform, s.target === 'gguf' ? ' No plan: the preset from step 1 decides every tensor, as llama-quantize does' : ' One setting for every weight, no plan (bits, group size and symmetry from step 5)'));
}

/** What the plan's errors are, and the output-space measurement: offer it, its progress with Cancel, or the choice between the two metrics. */
function metricControls(s: WizardState): HTMLElement {
  const e = s.outputEffect;
  const out = s.metric.kind === 'output';
  const parts: (Node | string)[] = [el('span', { id: 'qs-wz-metric', class: `qs-wz-tag ${out ? 'qs-wz-real' : ''}`, 'data-metric': s.metric.kind }, `errors: ${s.metric.label}`)];
  const onData = s.data.kind === 'real' ? `on ${s.data.path?.split(/[\\/]/).pop() ?? 'your data'} (real data)` : 'on synthetic inputs (no data chosen; labelled as such)';
  if (e.state === 'unavailable') parts.push(el('span', { class: 'qs-muted' }, ` Output-space effects cannot be measured: ${e.why}.`));
  else if (e.state === 'running') {
    parts.push(
      el('span', { id: 'qs-wz-measuring', role: 'status' }, icon('loading codicon-modifier-spin'), ` Measuring the output effect ${onData}: ${e.done} / ${e.total || '?'} runs `),
      el('progress', { max: String(e.total || 1), value: String(e.done), 'aria-label': 'output-space measurement progress' }),
      button('qs-wz-measure-cancel', 'stop-circle', 'Cancel', () => send({ type: 'cancelMeasure' })));
  } else if (e.state === 'done') {
    const group = el('span', { role: 'radiogroup', 'aria-label': 'Error metric of the plan', class: 'qs-wz-row' });
    for (const [m, text] of [['output', `output-space (${e.samples} ${e.data} samples${e.cached ? ', from the cache' : ''})`], ['weight', 'weight-space']] as const) {
      const r = el('input', { type: 'radio', name: 'metric', id: `qs-wz-metric-${m}`, value: m });
      r.checked = s.metric.kind === m || (m === 'weight' && !s.preferOutput);
      r.disabled = m === 'output' && !!s.metric.note && s.preferOutput;
      r.addEventListener('change', () => send({ type: 'setMetric', metric: m }));
      group.append(el('label', { for: `qs-wz-metric-${m}` }, r, ` ${text}`));
    }
    parts.push(' ', group);
  } else {
    parts.push(' ', button('qs-wz-measure', 'play', 'Measure output effect', () => send({ type: 'measureOutput' }), `Run the model once per weight and config ${onData}; the plan then uses the effect on its output`),
      el('span', { class: 'qs-muted' }, ` ${onData}`));
    if (e.state === 'error') parts.push(el('div', { id: 'qs-wz-measure-error', class: 'qs-wz-banner qs-wz-bad' }, icon('error'), ` Output-space measurement failed: ${e.error}`));
  }
  const what = out
    ? `Each weight's error is its measured effect on the model's output ${e.state === 'done' ? `'${e.output}' (${e.outputKind === 'values' ? 'noise-to-signal power ratio' : 'KL divergence'})` : ''}, quantized alone; the plan sums them. Every option of every weight was measured.`
    : 'Each weight\'s error is its squared weight error (Σ over the tensor); the plan sums them.';
  return el('div', { id: 'qs-wz-metric-box' }, el('div', { class: 'qs-wz-row' }, ...parts),
    el('p', { class: 'qs-muted', id: 'qs-wz-metric-note' }, what, s.metric.note ? ` ${s.metric.note}` : ''));
}

function budgetNote(s: WizardState, k: number, t: { error: number }): string {
  const f = s.frontier!;
  const bpw = (b: number) => (8 * b) / params(s);
  return `${k >= 0 ? `Frontier point ${k + 1} of ${f.points.length}` : 'Preloaded plan (not a frontier point)'} · predicted error ${t.error.toExponential(3)}, ${s.metric.label} · ${f.method === 'hull' ? 'convex-hull sweep, each point optimal for its size' : f.exact ? 'exact knapsack DP' : 'knapsack DP on a byte grid'} in ${f.ms.toFixed(0)} ms (worker). Uniform: ${f.uniform.map((u) => `${u.config} ${bpw(u.bytes).toFixed(2)} b/w`).join(', ')}.`;
}

function planStep(s: WizardState, a: number[]): HTMLElement {
  if (!s.plannable || !s.layers.length || s.analysing) return section('qs-wz-plan', 4, 'Plan', el('p', { class: 'qs-muted' }, s.plannable ? 'The plan table appears once the weights are measured.' : 'No per-weight plan for this target.'));
  const tiedOf = new Map<string, number>();
  s.edits.tied.forEach((g, i) => g.forEach((n) => tiedOf.set(n, i)));
  const pinned = new Set(s.edits.pinned);
  const table = el('table', { id: 'qs-wz-table', class: 'qs-wz-table', role: 'grid', 'aria-label': `Plan: every weight with its format, bytes and predicted error (${s.metric.label})` });
  // The error column's header names the metric; the caption says it in full (what was measured, on what data).
  table.append(el('caption', { id: 'qs-wz-table-caption', class: 'qs-muted' }, `Predicted error per weight: ${s.metric.label}`),
    el('thead', {}, el('tr', {}, ...['', 'weight', 'format', 'bytes', `error (${s.metric.kind === 'output' ? 'output' : 'weight'}-space)`, 'weight SQNR', 'constraint', 'layer', 'params']
      .map((h, i) => el('th', i === 4 ? { scope: 'col', id: 'qs-wz-error-h', title: s.metric.label } : { scope: 'col' }, h)))));
  const body = el('tbody');
  const t = totals(s, a);
  s.layers.forEach((l, i) => {
    const o = l.options[a[i] ?? 0];
    const tick = el('input', { type: 'checkbox', 'aria-label': `select ${l.name} for tying` });
    tick.checked = ticked.has(l.name);
    tick.addEventListener('change', () => (tick.checked ? ticked.add(l.name) : ticked.delete(l.name)));
    const sel = el('select', { class: 'qs-wz-force', 'aria-label': `constraint of ${l.name}` });
    sel.append(el('option', { value: '' }, 'auto (knapsack)'), el('option', { value: 'keep' }, 'pin: full precision'));
    for (const x of l.options.slice(1)) sel.append(el('option', { value: x.label }, `force ${x.label}`));
    sel.value = pinned.has(l.name) ? 'keep' : s.edits.forced[l.name] ?? '';
    sel.disabled = s.phase === 'running';
    sel.addEventListener('change', () => {
      if (sel.value === 'keep') send({ type: 'pin', name: l.name, pinned: true });
      else if (sel.value === '') {
        if (pinned.has(l.name)) send({ type: 'pin', name: l.name, pinned: false });
        else send({ type: 'force', name: l.name, config: null });
      } else send({ type: 'force', name: l.name, config: sel.value });
    });
    const g = tiedOf.get(l.name);
    const tie = g === undefined ? '' : el('button', { class: 'qs-wz-link', type: 'button', title: `untie ${l.name}` }, icon('link'), ` tie ${g + 1}`);
    if (tie) tie.addEventListener('click', () => send({ type: 'untie', name: l.name }));
    body.append(el('tr', { 'data-name': l.name, class: o.label === 'keep' ? 'qs-wz-kept' : '' },
      el('td', {}, tick), el('td', { class: 'qs-wz-name', title: l.name }, l.name),
      el('td', { 'data-col': 'format' }, o.label), el('td', { class: 'num', 'data-col': 'bytes' }, formatCount(o.bytes)),
      el('td', { class: 'num', 'data-col': 'error', 'data-value': String(o.error) }, o.error === 0 ? '0' : o.error.toExponential(3)),
      el('td', { class: 'num', 'data-col': 'sqnr' }, o.label === 'keep' ? '∞' : db(o.sqnrDb)), el('td', {}, sel, ' ', tie),
      el('td', { class: 'qs-muted qs-wz-layer', title: l.op ?? '' }, l.op ?? ''), el('td', { class: 'num', 'data-col': 'params' }, formatCount(l.params))));
  });
  table.append(body, el('tfoot', {}, el('tr', { id: 'qs-wz-totals' }, el('td'), el('th', { scope: 'row' }, `${s.layers.length} weights`),
    el('td', {}, `${((8 * t.bytes) / params(s)).toFixed(2)} b/w`), el('td', { class: 'num', 'data-col': 'bytes' }, formatCount(t.bytes)), el('td', { class: 'num', 'data-col': 'error', 'data-value': String(t.error) }, `Σ ${t.error.toExponential(3)}`), el('td'),
    el('td'), el('td'), el('td', { class: 'num', 'data-col': 'params' }, formatCount(params(s))))));
  return section('qs-wz-plan', 4, 'Plan',
    el('div', { class: 'qs-wz-row' },
      button('qs-wz-tie', 'link', 'Tie selected', () => {
        const names = [...ticked].filter((n) => s.layers.some((l) => l.name === n));
        if (names.length >= 2) send({ type: 'tie', names });
        ticked.clear();
      }, 'The ticked weights take one choice together'),
      button('qs-wz-tie-qkv', 'link', 'Tie q/k/v per block', () => send({ type: 'tieQkv' })),
      el('span', { class: 'qs-muted' }, ' Pins, forced formats and ties re-solve the frontier; totals follow.')),
    el('div', { class: 'qs-wz-tablewrap' }, table));
}

function algorithmStep(s: WizardState): HTMLElement {
  const a = s.algorithm;
  const algo = el('div', { role: 'radiogroup', 'aria-label': 'Algorithm', class: 'qs-wz-row' });
  const nbits = s.target === 'onnx-int4';
  for (const x of ['rtn', 'gptq', 'awq'] as const) {
    const id = `qs-wz-algo-${x}`;
    const r = el('input', { type: 'radio', name: 'algo', id, value: x });
    r.checked = a.algo === x;
    r.disabled = x !== 'rtn' && (!s.data.path || !nbits);
    r.addEventListener('change', () => send({ type: 'setAlgorithm', ...a, algo: x }));
    algo.append(el('label', { for: id, title: x === 'rtn' ? 'round to nearest' : s.data.path ? '' : 'needs calibration data (step 2)' }, r, ` ${x.toUpperCase()}`));
  }
  const bits = el('select', { id: 'qs-wz-bits', 'aria-label': 'bits' });
  for (const b of [8, 4, 2]) bits.append(el('option', { value: String(b) }, `INT${b}`));
  bits.value = String(a.bits);
  const group = el('select', { id: 'qs-wz-group', 'aria-label': 'group size' });
  for (const g of [16, 32, 64, 128, 256]) group.append(el('option', { value: String(g) }, String(g)));
  group.value = String(a.groupSize);
  const sym = el('input', { type: 'checkbox', id: 'qs-wz-sym' });
  sym.checked = a.symmetric;
  const update = () => send({ type: 'setAlgorithm', algo: a.algo, bits: Number(bits.value) as 2 | 4 | 8, groupSize: Number(group.value), symmetric: sym.checked });
  for (const c of [bits, group, sym]) {
    c.addEventListener('change', update);
    c.disabled = s.plannable && !s.uniformMode;
  }
  const note = s.plannable && !s.uniformMode
    ? 'With a plan, each weight\'s bits, group size and symmetry come from its config (int4-g128: groups of 128, asymmetric).'
    : s.target === 'onnx-dynamic' || s.target === 'gguf' ? 'Set by the target.' : 'Used for every weight.';
  return section('qs-wz-algo', 5, 'Algorithm', algo,
    el('div', { class: 'qs-wz-row' }, el('label', { for: 'qs-wz-bits' }, 'Bits '), bits, el('label', { for: 'qs-wz-group' }, ' Group size '), group, el('label', { for: 'qs-wz-sym' }, ' ', sym, ' symmetric')),
    el('p', { class: 'qs-muted' }, note, nbits ? '' : ' GPTQ/AWQ: onnx-int4 only.'));
}

function quantizeStep(s: WizardState): HTMLElement {
  if (s.phase === 'running') {
    const p = s.progress;
    return section('qs-wz-run', 6, 'Quantize',
      el('p', { id: 'qs-wz-progress-text', role: 'status' }, progressText(p)),
      el('progress', { id: 'qs-wz-progress', max: String(p?.total || 1), value: String(p?.done ?? 0), 'aria-label': 'quantization progress' }),
      el('div', { class: 'qs-wz-row' }, button('qs-wz-cancel', 'stop-circle', 'Cancel', () => send({ type: 'cancel' }))));
  }
  const b = button('qs-wz-quantize', 'zap', 'Quantize', () => send({ type: 'quantize' }));
  b.classList.add('qs-wz-primary');
  b.disabled = !s.target || !!s.analysing;
  // The outcome of the last run (cancelled, failed verification) also where the user clicked, not only at the top.
  const last = s.error ? el('p', { id: 'qs-wz-run-error', class: 'qs-wz-banner qs-wz-bad' }, icon('error'), ` ${s.error}`) : '';
  return section('qs-wz-run', 6, 'Quantize', last, el('p', { class: 'qs-muted' }, `Writes next to the source; every tensor is read back and the model is run ${s.data.kind === 'real' ? 'on your data' : 'on synthetic inputs'} before the file gets its name.`),
    el('div', { class: 'qs-wz-row' }, b, exportControls(s), button('qs-wz-load-plan', 'folder-opened', 'Load Plan…', () => send({ type: 'loadPlan' }))));
}

function progressText(p: WizardState['progress']): string {
  if (!p) return 'Starting…';
  return `${p.phase}${p.total ? ` ${p.done} / ${p.total}` : ''}${p.tensor ? `: ${p.tensor}` : ''}`;
}

function exportControls(s: WizardState): HTMLElement {
  const sel = el('select', { id: 'qs-wz-export-format', 'aria-label': 'export format' });
  sel.append(el('option', { value: 'plan' }, 'QuantScope plan JSON'));
  if (s.target === 'gguf') sel.append(el('option', { value: 'llamacpp' }, 'llama-quantize --tensor-type'));
  else sel.append(el('option', { value: 'ort' }, 'ONNX Runtime nodes_to_exclude + tensor_quant_overrides'));
  const b = button('qs-wz-export', 'export', 'Export Plan…', () => send({ type: 'exportPlan', format: sel.value as 'plan' | 'ort' | 'llamacpp' }));
  return el('span', { class: 'qs-wz-row' }, sel, b);
}

function resultPage(s: WizardState): (HTMLElement | string)[] {
  const r = s.result!;
  const rt = r.runtime;
  const measured = rt
    ? el('table', { id: 'qs-wz-measured', class: 'qs-wz-table', 'aria-label': 'Measured output error' },
      el('thead', {}, el('tr', {}, ...['output', 'cosine', 'SQNR', 'max abs error', 'top-1 agreement', 'mean KL'].map((h) => el('th', { scope: 'col' }, h)))),
      el('tbody', {}, ...rt.outputs.map((o) => el('tr', {}, el('td', {}, o.name), el('td', { class: 'num' }, o.cosine?.toFixed(6) ?? '—'), el('td', { class: 'num' }, db(o.sqnrDb)),
        el('td', { class: 'num' }, o.maxAbs?.toPrecision(3) ?? '—'), el('td', { class: 'num' }, o.top1Agreement !== undefined ? `${(100 * o.top1Agreement).toFixed(1)} %` : '—'), el('td', { class: 'num' }, o.meanKl?.toPrecision(3) ?? '—')))))
    : el('p', { id: 'qs-wz-measured' }, `Not run: ${r.runtimeSkipped ?? 'unknown reason'}.`);
  const worstPlanned = Math.min(...r.perLayer.map((x) => x.plannedDb ?? Infinity));
  const worstWritten = Math.min(...r.perLayer.map((x) => x.writtenDb));
  const canvas = el('canvas', { id: 'qs-wz-perlayer', role: 'img', 'aria-label': 'Per-weight SQNR: predicted by the plan and measured on the written file' });
  queueMicrotask(() => charts.push(perLayerChart(canvas, r.perLayer)));
  const open = button('qs-wz-open', 'go-to-file', 'Open in Inspector', () => send({ type: 'openOutput' }));
  open.classList.add('qs-wz-primary');
  return [
    el('h1', { id: 'qs-wz-result-h' }, icon('pass'), ` Wrote ${r.outputName}`),
    el('p', { id: 'qs-wz-file' }, el('code', {}, r.output), ` · ${MB(r.fileBytesBefore)} → ${MB(r.fileBytesAfter)} (${((100 * r.fileBytesAfter) / Math.max(1, r.fileBytesBefore)).toFixed(1)} %) · ${r.tensorsQuantized} weights quantized, ${r.tensorsKept} other tensors as they were · ${r.seconds.toFixed(1)} s`, r.planFile ? el('span', {}, ' · plan ', el('code', {}, r.planFile)) : ''),
    el('div', { class: 'qs-wz-row' }, open, button('qs-wz-compare', 'diff', 'Compare with Original', () => send({ type: 'compare' })), exportControls(s), button('qs-wz-back', 'arrow-left', 'Back to the plan', () => send({ type: 'back' }))),
    el('h2', {}, 'Predicted vs measured'),
    predictedLine(r),
    el('p', { id: 'qs-wz-pvm' },
      el('strong', {}, 'Predicted'), ` (weight space, from the sensitivity table before writing): worst weight SQNR ${db(Number.isFinite(worstPlanned) ? worstPlanned : undefined)}. `,
      el('strong', {}, 'Measured'), ` on the written file: worst weight SQNR ${db(worstWritten)} (codes read back); outputs ${rt ? `in ${rt.runtime} on ${rt.data === 'calibration' ? 'real' : 'synthetic'} inputs (${rt.data})` : 'not run'}:`),
    measured,
    rt ? el('p', { class: 'qs-muted' }, rt.inputs.join('; ')) : '',
    el('h2', {}, 'Per weight'),
    el('div', { class: 'qs-wz-chart' }, canvas),
  ];
}

/** The plan's predicted total error in its metric; output-space: the same effect measured on the written model's output. */
function predictedLine(r: NonNullable<WizardState['result']>): HTMLElement | string {
  const p = r.predicted;
  if (!p) return '';
  const rt = r.runtime;
  return el('p', { id: 'qs-wz-predicted', 'data-metric': p.metric },
    el('strong', {}, 'Predicted'), ` (${p.label}): Σ error ${p.error.toExponential(3)}`,
    p.metric === 'output'
      ? p.measured !== undefined
        ? ` on output '${p.output}'; measured on the written model (${p.measuredWhat}, all weights at once${rt ? `, ${rt.data === 'calibration' ? 'real' : 'synthetic'} inputs` : ''}): ${p.measured.toExponential(3)}.`
        : ` on output '${p.output}'; the written model's output was not compared in the same measure.`
      : ' (squared weight error summed over the planned weights; no output-space measurement for this plan).');
}

function render(s: WizardState, a = s.assignment, k = s.selected): void {
  for (const c of charts) c.destroy();
  charts = [];
  host.setState({ file: s.file });
  document.body.dataset.phase = s.phase;
  const head = el('header', { class: 'qs-wz-head' }, el('h1', {}, icon('zap'), ' Quantize ', el('span', { id: 'qs-wz-file-name' }, s.fileName)), s.format ? el('span', { class: 'qs-wz-tag' }, s.format) : '');
  if (s.phase === 'loading') {
    app.replaceChildren(head, el('p', { role: 'status' }, icon('loading codicon-modifier-spin'), ' Opening the model…'));
    return;
  }
  if (s.phase === 'error') {
    app.replaceChildren(head, el('div', { id: 'qs-wz-fatal', class: 'qs-wz-banner qs-wz-bad', role: 'alert' }, icon('error'), ` ${s.noTargets ?? s.error ?? 'This model cannot be quantized.'}`));
    return;
  }
  if (s.phase === 'done' && s.result) {
    app.replaceChildren(head, ...banner(s), ...resultPage(s));
    return;
  }
  // The slider moves without rebuilding itself: the plan table, the note and the chart's chosen point follow.
  const rerender = (na: number[], nk: number) => {
    const t = totals(s, na);
    document.getElementById('qs-wz-plan')?.replaceWith(planStep(s, na));
    const note = document.getElementById('qs-wz-budget-note');
    if (note) note.textContent = budgetNote(s, nk, t);
    const chart = charts[0];
    if (chart) {
      chart.data.datasets[2].data = t.error > 0 ? [{ x: t.bytes / 1e6, y: t.error }] : [];
      chart.update('none');
    }
  };
  app.replaceChildren(head, ...banner(s), targetStep(s), dataStep(s), budgetStep({ ...s, selected: k }, a, rerender), planStep(s, a), algorithmStep(s), quantizeStep(s));
}

window.addEventListener('message', (ev: MessageEvent<ToWizard>) => {
  const m = ev.data;
  if (m?.type === 'state') {
    state = m.state;
    render(state);
  } else if (m?.type === 'progress' && state) {
    state.progress = m.progress;
    const p = document.getElementById('qs-wz-progress') as HTMLProgressElement | null;
    const t = document.getElementById('qs-wz-progress-text');
    if (p) {
      p.max = m.progress.total || 1;
      p.value = m.progress.done;
    }
    if (t) t.textContent = progressText(m.progress);
  }
});
// Charts follow theme changes (the body's class changes with the theme).
new MutationObserver(() => state && render(state)).observe(document.body, { attributes: true, attributeFilter: ['class'] });
send({ type: 'ready' });

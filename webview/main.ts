import type { ToWebview, ModelOverview, TensorRow } from '../src/shared/protocol';
import { vscode } from './vscodeApi';
import { formatBytes, formatCount } from './format';

const app = document.getElementById('app') as HTMLElement;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function renderOverview(o: ModelOverview, tensors: TensorRow[]): void {
  const facts: [string, string, string][] = [
    ['format', 'Format', `${o.format} (${o.formatVersion})`],
    ['size', 'Size on disk', `${formatBytes(o.sizeOnDisk)} (${formatCount(o.sizeOnDisk)} bytes)`],
    ['tensors', 'Tensors', formatCount(o.tensorCount)],
    ['params', 'Parameters', formatCount(o.parameterCount)],
    ['metadata', 'Metadata entries', formatCount(o.metadataKeys)],
  ];
  const dl = el('dl', { class: 'qs-facts' });
  for (const [id, k, v] of facts) dl.append(el('dt', {}, k), el('dd', { id: `qs-${id}` }, v));
  const dtypes = el('ul', { class: 'qs-dtypes', 'aria-label': 'Bytes by data type' });
  for (const [d, b] of Object.entries(o.bytesByDtype).sort((a, b) => b[1] - a[1])) dtypes.append(el('li', {}, el('code', {}, d), ` ${formatBytes(b)}`));

  const table = el('table', { class: 'qs-table', 'aria-label': 'Tensors' });
  const head = el('tr', {});
  for (const h of ['Name', 'Layer', 'Op', 'DType', 'Shape', 'Params', 'Bytes']) head.append(el('th', { scope: 'col' }, h));
  table.append(el('thead', {}, head));
  const body = el('tbody', {});
  const shown = tensors.slice(0, 500);
  for (const t of shown) {
    body.append(el('tr', {}, el('td', {}, t.name), el('td', {}, t.layer), el('td', {}, t.opType), el('td', {}, t.dtype), el('td', {}, `[${t.shape.join(', ')}]`), el('td', { class: 'num' }, formatCount(t.params)), el('td', { class: 'num' }, formatBytes(t.bytes))));
  }
  table.append(body);
  const more = tensors.length > shown.length ? el('p', { class: 'qs-muted' }, `Showing the first ${shown.length} of ${formatCount(tensors.length)} tensors.`) : '';

  app.replaceChildren(
    el('header', { class: 'qs-header' }, el('span', { class: 'codicon codicon-graph', 'aria-hidden': 'true' }), el('h1', { id: 'qs-filename' }, o.fileName)),
    el('p', { class: 'qs-muted qs-path' }, o.path),
    el('section', { 'aria-label': 'Overview' }, dl, el('h2', {}, 'Bytes by dtype'), dtypes),
    el('section', { 'aria-label': 'Tensor table' }, el('h2', {}, 'Tensors'), table, more),
  );
  document.body.dataset.state = 'ready';
}

function renderError(message: string): void {
  app.replaceChildren(el('div', { class: 'qs-error', role: 'alert' }, el('span', { class: 'codicon codicon-error', 'aria-hidden': 'true' }), ` ${message}`));
  document.body.dataset.state = 'error';
}

function renderSensitivity(): void {
  app.replaceChildren(
    el('p', {}, 'Per-layer quantization sensitivity is not computed in this version yet.'),
    el('p', { class: 'qs-muted' }, 'Open a model file (.onnx, .safetensors, .gguf) to inspect its tensors.'),
  );
}

window.addEventListener('message', (ev: MessageEvent<ToWebview>) => {
  const m = ev.data;
  switch (m.type) {
    case 'loading':
      app.replaceChildren(el('p', { class: 'qs-muted' }, `Loading ${m.fileName}…`));
      break;
    case 'overview':
      renderOverview(m.overview, m.tensors);
      break;
    case 'error':
      renderError(m.message);
      break;
  }
});

if (document.body.dataset.entry === 'sensitivity') renderSensitivity();
else vscode.postMessage({ type: 'ready' });

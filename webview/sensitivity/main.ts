/**
 * The Sensitivity view (QuantScope panel): the weights of the inspector the
 * user looked at last, least INT4-reference SQNR first; a click reveals one
 * in the inspector. Its own bundle (dist/sensitivity.js) and protocol.
 */
import type { FromSensitivity, SensitivityPanelData, ToSensitivity } from '../../src/shared/protocol/sensitivity';
import { acquireHost } from '../common/vscodeApi';
import { el } from '../common/dom';

const app = document.getElementById('app') as HTMLElement;
const vscode = acquireHost<FromSensitivity>();

function renderSensitivity(): void {
  app.replaceChildren(
    el('p', {}, 'No model is open in the inspector.'),
    el('p', { class: 'qs-muted' }, 'Open a model file (.onnx, .safetensors, .gguf): its weights are listed here, most sensitive to INT4 first.'),
  );
}

/** The Sensitivity panel: the active model's weights, least INT4 SQNR first; a click reveals one in the inspector. */
function renderSensitivityPanel(d: SensitivityPanelData | null): void {
  if (!d) {
    renderSensitivity();
    document.body.dataset.state = 'empty';
    return;
  }
  const head = el('p', { id: 'qs-sens-head' }, el('strong', {}, d.fileName), ` · ${d.measured} of ${d.quantizable} weights measured · ranked by ${d.config} SQNR`);
  if (d.rows.length === 0) {
    app.replaceChildren(head, el('p', { class: 'qs-muted' }, 'Waiting for the quantization error of its weights…'));
    document.body.dataset.state = 'waiting';
    return;
  }
  const list = el('ol', { id: 'qs-sens-list', class: 'qs-sens-list', 'aria-label': `Most sensitive weights of ${d.fileName}` });
  for (const r of d.rows) {
    const b = el('button', { class: 'qs-sens-row', 'data-name': r.name, title: `${r.name} (${r.layer || r.opType})`, 'aria-label': `${r.name}: ${r.sqnrDb.toFixed(1)} dB at ${d.config}` },
      el('span', { class: `qs-dot qs-dot-${r.risk ?? 'none'}`, 'aria-hidden': 'true' }),
      el('span', { class: 'qs-sens-name' }, r.name),
      el('span', { class: 'qs-sens-db num' }, `${r.sqnrDb.toFixed(1)} dB`),
      el('span', { class: 'qs-sens-db8 num qs-muted' }, r.sqnrInt8 !== undefined ? `INT8 ${r.sqnrInt8.toFixed(1)}` : ''));
    b.addEventListener('click', () => vscode.postMessage({ type: 'revealTensor', file: d.file, name: r.name }));
    list.append(el('li', {}, b));
  }
  app.replaceChildren(head, list);
  document.body.dataset.state = 'ready';
}

window.addEventListener('message', (ev: MessageEvent<ToSensitivity>) => {
  if (ev.data?.type === 'sensitivityPanel') renderSensitivityPanel(ev.data.data);
});
renderSensitivity();
vscode.postMessage({ type: 'ready' });

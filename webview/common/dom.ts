/** Small DOM helpers every view uses. */

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

export function icon(name: string): HTMLElement {
  return el('span', { class: `codicon codicon-${name}`, 'aria-hidden': 'true' });
}

export function button(id: string, iconName: string, label: string, onClick: () => void, title = label): HTMLButtonElement {
  const b = el('button', { id, class: 'qs-button', type: 'button', title }, icon(iconName), ` ${label}`);
  b.addEventListener('click', onClick);
  return b;
}

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

/**
 * Replaces a container's children and gives focus back to the control that had it (matched by id):
 * a view that re-renders on every host message must not drop a keyboard user's focus, and a key
 * pressed on a slider just before a re-render must still reach the new slider.
 */
export function replaceKeepingFocus(container: HTMLElement, ...children: (Node | string)[]): void {
  const active = document.activeElement as HTMLElement | null;
  const id = active && active !== document.body && container.contains(active) ? active.id : '';
  container.replaceChildren(...children);
  if (id) (document.getElementById(id) as HTMLElement | null)?.focus({ preventScroll: true });
}

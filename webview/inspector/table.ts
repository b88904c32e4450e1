/**
 * The layer table: an ARIA grid whose rows are virtualized (only the rows in
 * view exist in the DOM), so 10,000 tensors scroll as smoothly as 10.
 * Sorting, filtering and grouping live in src/shared/tableModel.ts.
 */
import type { SortKey, TableView } from '../../src/shared/protocol/inspector';
import { COLUMNS, buildView, riskOf, sqnrOf, type Item, type Row } from '../../src/shared/tableModel';
import { formatCount } from '../common/format';

const ROW_H = 24;
const OVERSCAN = 8;
const HEAD_H = 28;

function fmt(v: number | undefined, digits = 4): string {
  if (v === undefined || Number.isNaN(v)) return '';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e4 || a < 1e-3 ? v.toExponential(2) : v.toPrecision(digits);
}
const db = (v: number | undefined) => (v === undefined ? '' : Number.isFinite(v) ? v.toFixed(1) : v > 0 ? '∞' : '−∞');

export interface TableCallbacks {
  onSelect(row: Row): void;
  onViewChange(): void;
  onScroll?(): void;
}

export class LayerTable {
  readonly root: HTMLElement;
  private readonly header: HTMLElement;
  private readonly viewport: HTMLElement;
  private readonly spacer: HTMLElement;
  private items: Item[] = [];
  private rendered = new Map<number, HTMLElement>();
  private active = 0;
  private renderQueued = false;
  rows: Row[] = [];
  selected: string | undefined;
  collapsed = new Set<string>();
  matched = 0;
  filterError: string | undefined;

  constructor(public view: TableView, private readonly cb: TableCallbacks) {
    this.root = document.createElement('div');
    this.root.className = 'qs-grid';
    this.root.setAttribute('role', 'grid');
    this.root.setAttribute('aria-label', 'Weight tensors');
    this.root.setAttribute('aria-colcount', String(COLUMNS.length));
    this.root.id = 'qs-grid';
    this.header = document.createElement('div');
    this.header.className = 'qs-row qs-head';
    this.header.setAttribute('role', 'row');
    this.header.setAttribute('aria-rowindex', '1');
    this.viewport = document.createElement('div');
    this.viewport.className = 'qs-viewport';
    this.viewport.setAttribute('role', 'rowgroup');
    // The grid is the scroller (header sticky), so both scrollbars stay in view.
    this.root.tabIndex = 0;
    this.root.setAttribute('aria-description', 'Arrow keys move, Enter shows the tensor, Space folds a group');
    this.spacer = document.createElement('div');
    this.spacer.className = 'qs-spacer';
    this.viewport.append(this.spacer);
    this.root.append(this.header, this.viewport);
    this.root.addEventListener('scroll', () => { this.queueRender(); this.cb.onScroll?.(); });
    this.root.addEventListener('keydown', (e) => this.onKey(e));
    this.viewport.addEventListener('click', (e) => {
      const rowEl = (e.target as HTMLElement).closest<HTMLElement>('.qs-row');
      if (!rowEl?.dataset.item) return;
      this.activate(Number(rowEl.dataset.item), true);
    });
    new ResizeObserver(() => this.queueRender()).observe(this.root);
    this.renderHeader();
  }

  /** The output-space column: shown with its config and what it measured, or hidden (weight-space only). */
  private effectLabel: { config: string; title: string } | undefined;
  setEffect(label: { config: string; title: string } | undefined): void {
    this.effectLabel = label;
    this.root.classList.toggle('qs-has-effect', !!label);
    this.refresh();
  }

  get scrollTop(): number { return this.root.scrollTop; }
  set scrollTop(v: number) { this.root.scrollTop = v; }
  private get bodyHeight(): number { return Math.max(ROW_H, (this.root.clientHeight || 450) - HEAD_H); }

  private renderHeader(): void {
    this.header.replaceChildren();
    COLUMNS.forEach((c, i) => {
      const cell = document.createElement('div');
      cell.className = `qs-cell qs-col-${c.key}${c.numeric ? ' num' : ''}`;
      cell.setAttribute('role', 'columnheader');
      cell.setAttribute('aria-colindex', String(i + 1));
      const sorted = this.view.sort === c.key;
      cell.setAttribute('aria-sort', sorted ? (this.view.descending ? 'descending' : 'ascending') : 'none');
      const b = document.createElement('button');
      b.className = 'qs-sort';
      b.dataset.sort = c.key;
      b.textContent = c.key === 'sqnrSel' ? this.view.config : c.label;
      b.title = c.key === 'sqnrSel' ? `Sort by weight SQNR at ${this.view.config} (the chosen format)` : c.key.startsWith('sqnr') ? `Sort by weight SQNR at ${c.label.replace(' dB', '')}`
        : c.key === 'effect' && this.effectLabel ? `Sort by the output-space effect (${this.effectLabel.title})` : `Sort by ${c.label}`;
      if (sorted) {
        const icon = document.createElement('span');
        icon.className = `codicon codicon-arrow-${this.view.descending ? 'down' : 'up'}`;
        icon.setAttribute('aria-hidden', 'true');
        b.append(icon);
      }
      b.addEventListener('click', () => this.sortBy(c.key));
      cell.append(b);
      this.header.append(cell);
    });
  }

  sortBy(key: SortKey): void {
    if (this.view.sort === key) this.view.descending = !this.view.descending;
    else {
      this.view.sort = key;
      // Worst first for the error figures, A→Z for names.
      this.view.descending = key === 'risk' || key === 'kurtosis' || key === 'outlierShare' || key === 'params' || key === 'effect';
    }
    this.refresh();
    this.cb.onViewChange();
  }

  /** Recompute the visible item list (after data, sort, filter, group or config changes). */
  refresh(): void {
    const built = buildView(this.rows, this.view, this.collapsed);
    this.items = built.items;
    this.matched = built.matched;
    this.filterError = built.filterError;
    this.root.setAttribute('aria-rowcount', String(this.items.length + 1));
    this.spacer.style.height = `${this.items.length * ROW_H}px`;
    if (this.active >= this.items.length) this.active = Math.max(0, this.items.length - 1);
    this.renderHeader();
    for (const el of this.rendered.values()) el.remove();
    this.rendered.clear();
    this.render();
  }

  private queueRender(): void {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => { this.renderQueued = false; this.render(); });
  }

  private render(): void {
    const top = this.root.scrollTop;
    const h = this.bodyHeight;
    const first = Math.max(0, Math.floor(top / ROW_H) - OVERSCAN);
    const last = Math.min(this.items.length, Math.ceil((top + h) / ROW_H) + OVERSCAN);
    for (const [i, el] of this.rendered) {
      if (i < first || i >= last) { el.remove(); this.rendered.delete(i); }
    }
    for (let i = first; i < last; i++) {
      if (this.rendered.has(i)) continue;
      const el = this.renderItem(i);
      this.rendered.set(i, el);
      this.spacer.append(el);
    }
    const act = this.rendered.get(this.active);
    if (act) this.root.setAttribute('aria-activedescendant', act.id);
    else this.root.removeAttribute('aria-activedescendant');
  }

  private renderItem(i: number): HTMLElement {
    const it = this.items[i];
    const el = document.createElement('div');
    el.id = `qs-item-${i}`;
    el.dataset.item = String(i);
    el.setAttribute('role', 'row');
    el.setAttribute('aria-rowindex', String(i + 2));
    el.style.transform = `translateY(${i * ROW_H}px)`;
    if (i === this.active) el.classList.add('qs-active');
    if (it.kind === 'group') {
      el.className = 'qs-row qs-group' + (i === this.active ? ' qs-active' : '');
      el.setAttribute('aria-expanded', String(!it.collapsed));
      const cell = document.createElement('div');
      cell.className = 'qs-cell qs-group-cell';
      cell.setAttribute('role', 'gridcell');
      cell.setAttribute('aria-colspan', String(COLUMNS.length));
      const icon = document.createElement('span');
      icon.className = `codicon codicon-chevron-${it.collapsed ? 'right' : 'down'}`;
      icon.setAttribute('aria-hidden', 'true');
      const worst = it.worstSqnr === undefined ? '' : ` · worst SQNR ${db(it.worstSqnr)} dB`;
      cell.append(icon, ` ${it.key} — ${formatCount(it.count)} tensors, ${formatCount(it.params)} params${worst}`);
      el.append(cell);
      return el;
    }
    const r = this.rows[it.index];
    el.className = 'qs-row qs-data' + (i === this.active ? ' qs-active' : '') + (r.name === this.selected ? ' qs-selected' : '');
    el.setAttribute('aria-selected', String(r.name === this.selected));
    el.dataset.name = r.name;
    const risk = riskOf(r, this.view.config);
    COLUMNS.forEach((c, ci) => {
      const cell = document.createElement('div');
      cell.className = `qs-cell qs-col-${c.key}${c.numeric ? ' num' : ''}`;
      cell.setAttribute('role', 'gridcell');
      cell.setAttribute('aria-colindex', String(ci + 1));
      cell.dataset.col = c.key;
      let text: string;
      switch (c.key) {
        case 'name': text = r.name; cell.title = r.name; break;
        case 'layer': text = r.layer; cell.title = r.layer; break;
        case 'opType': text = r.opType; break;
        case 'dtype': text = r.dtype; break;
        case 'shape': text = r.shape.join('×'); break;
        case 'params': text = r.params >= 1e6 ? `${(r.params / 1e6).toFixed(2)} M` : formatCount(r.params); cell.title = formatCount(r.params); break;
        case 'min': case 'max': case 'mean': case 'std': text = fmt(r.stats?.[c.key]); break;
        case 'kurtosis': text = r.stats ? r.stats.kurtosis.toFixed(2) : ''; break;
        case 'outlierShare': text = r.stats ? `${(100 * r.stats.outlierShare).toFixed(3)}%` : ''; break;
        case 'sqnr8': text = db(c.value(r, this.view.config) as number | undefined); break;
        case 'sqnr4': text = db(c.value(r, this.view.config) as number | undefined); break;
        case 'sqnrSel': text = db(sqnrOf(r, this.view.config)); break;
        case 'effect': text = fmt(r.effect, 3); break;
        case 'risk': {
          text = '';
          if (risk) {
            const icon = document.createElement('span');
            icon.className = `codicon ${risk === 'high' ? 'codicon-error' : risk === 'medium' ? 'codicon-warning' : 'codicon-pass'} qs-risk-${risk}`;
            icon.setAttribute('aria-hidden', 'true');
            cell.append(icon, ` ${risk}`);
            cell.setAttribute('aria-label', `risk ${risk}`);
          }
          break;
        }
      }
      if (text) cell.append(text);
      if (!r.analysable && (c.key === 'min' || c.key === 'max' || c.key === 'mean' || c.key === 'std' || c.key === 'kurtosis' || c.key === 'outlierShare')) cell.classList.add('qs-na');
      el.append(cell);
    });
    return el;
  }

  private scrollToItem(i: number): void {
    const top = i * ROW_H;
    const h = this.bodyHeight;
    if (top < this.root.scrollTop) this.root.scrollTop = top;
    else if (top + ROW_H > this.root.scrollTop + h) this.root.scrollTop = top + ROW_H - h;
  }

  private activate(i: number, select: boolean): void {
    if (i < 0 || i >= this.items.length) return;
    this.rendered.get(this.active)?.classList.remove('qs-active');
    this.active = i;
    this.scrollToItem(i);
    this.render();
    this.rendered.get(i)?.classList.add('qs-active');
    const act = this.rendered.get(i);
    if (act) this.root.setAttribute('aria-activedescendant', act.id);
    const it = this.items[i];
    if (!select) return;
    if (it.kind === 'group') { this.toggleGroup(it.key); return; }
    this.select(this.rows[it.index].name);
  }

  /** Scroll a tensor's row into view and select it (selects it anyway when a folded group hides it). */
  reveal(name: string): void {
    const i = this.items.findIndex((it) => it.kind !== 'group' && this.rows[it.index].name === name);
    if (i >= 0) this.activate(i, true);
    else this.select(name);
  }

  select(name: string): void {
    this.selected = name;
    for (const el of this.rendered.values()) {
      const on = el.dataset.name === name;
      el.classList.toggle('qs-selected', on);
      if (el.dataset.name !== undefined) el.setAttribute('aria-selected', String(on));
    }
    const row = this.rows.find((r) => r.name === name);
    if (row) this.cb.onSelect(row);
  }

  private toggleGroup(key: string): void {
    if (this.collapsed.has(key)) this.collapsed.delete(key); else this.collapsed.add(key);
    this.refresh();
    this.cb.onViewChange();
  }

  private onKey(e: KeyboardEvent): void {
    const page = Math.max(1, Math.floor(this.bodyHeight / ROW_H) - 1);
    let next: number | undefined;
    switch (e.key) {
      case 'ArrowDown': next = this.active + 1; break;
      case 'ArrowUp': next = this.active - 1; break;
      case 'PageDown': next = this.active + page; break;
      case 'PageUp': next = this.active - page; break;
      case 'Home': next = 0; break;
      case 'End': next = this.items.length - 1; break;
      case 'Enter': case ' ': this.activate(this.active, true); e.preventDefault(); return;
      default: return;
    }
    e.preventDefault();
    this.activate(Math.max(0, Math.min(this.items.length - 1, next)), false);
  }

  focus(): void { this.root.focus(); }
}

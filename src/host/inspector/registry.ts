/**
 * Which models are open in inspectors, which one the user looked at last,
 * and what the side views and commands ask of them (the Sensitivity panel's
 * ranking, reveal, the report, CSV export). Side views depend on this, not on
 * the provider (the vscode-hexeditor split).
 */
import * as vscode from 'vscode';
import * as path from 'node:path';
import { readinessReport } from '../../analysis/report';
import { referenceConfig } from '../../quant/configs';
import type { SensitivityPanelData } from '../../shared/protocol/sensitivity';
import { parseTableView, type ModelOverview, type TableView, type ToInspector } from '../../shared/protocol/inspector';
import { referenceSqnr, riskOf, sqnrOf, toCsv } from '../../shared/tableModel';
import type { ModelDocument } from './document';
import { writeFileAtomicSync } from '../../formats/atomicWrite';
import { log } from '../log';

export interface OpenInspector { overview?: ModelOverview; error?: string; panel: vscode.WebviewPanel; document: ModelDocument }

export class InspectorRegistry implements vscode.Disposable {
  /** Open inspectors by file path, with what they show (used by commands and tests). */
  readonly open = new Map<string, OpenInspector>();
  /** Fires when what the Sensitivity panel shows may have changed (results, the active inspector). */
  private readonly changed = new vscode.EventEmitter<void>();
  readonly onDidChange = this.changed.event;
  /** The inspector the user looked at last. */
  private lastActive: string | undefined;

  add(key: string, entry: OpenInspector): void {
    this.open.set(key, entry);
    this.setActive(key);
  }

  remove(key: string, entry: OpenInspector): void {
    if (this.open.get(key) === entry) this.open.delete(key);
    this.changed.fire();
  }

  setActive(key: string): void {
    if (this.lastActive === key) return;
    this.lastActive = key;
    this.changed.fire();
  }

  fireChanged(): void {
    this.changed.fire();
  }

  dispose(): void {
    this.changed.dispose();
  }

  documentFor(file: unknown): ModelDocument | undefined {
    const p = file instanceof vscode.Uri ? file.fsPath : typeof file === 'string' ? file : undefined;
    if (p !== undefined) return this.open.get(p)?.document;
    return [...this.open.values()].find((e) => e.panel.active)?.document;
  }

  /** The last active inspector's weights, least INT4 SQNR first (the Sensitivity panel's content). */
  sensitivityPanelData(limit = 25): SensitivityPanelData | null {
    const key = this.lastActive && this.open.has(this.lastActive) ? this.lastActive : [...this.open.keys()].pop();
    const doc = key ? this.open.get(key)?.document : undefined;
    if (!key || !doc?.built) return null;
    const int4 = referenceConfig('int4').id;
    const rows = doc.rows().filter((r) => sqnrOf(r, int4) !== undefined);
    rows.sort((a, b) => sqnrOf(a, int4)! - sqnrOf(b, int4)! || a.name.localeCompare(b.name));
    return {
      file: key,
      fileName: path.basename(key),
      config: int4,
      metric: 'weight',
      measured: rows.length,
      quantizable: doc.built.tensors.filter((t) => t.quantizable).length,
      rows: rows.slice(0, limit).map((r) => {
        const out: SensitivityPanelData['rows'][number] = { name: r.name, layer: r.layer, opType: r.opType, params: r.params, sqnrDb: sqnrOf(r, int4)! };
        const s8 = referenceSqnr(r, 'int8');
        if (s8 !== undefined) out.sqnrInt8 = s8;
        const risk = riskOf(r, int4);
        if (risk) out.risk = risk;
        return out;
      }),
    };
  }

  /** Bring an inspector forward with one tensor selected (from the Sensitivity panel). */
  reveal(file: string, name: string): boolean {
    const e = this.open.get(file);
    if (!e || !e.document.built?.tensors.some((t) => t.name === name)) return false;
    e.panel.reveal(e.panel.viewColumn, false);
    void e.panel.webview.postMessage({ type: 'reveal', name } satisfies ToInspector);
    return true;
  }

  writeCsv(doc: ModelDocument, target: string, view: TableView): void {
    // The save dialog (or the caller of exportCsv) chose to replace an existing file.
    writeFileAtomicSync(target, toCsv(doc.rows(), view), { overwrite: true });
    log().info(`Exported the tensor table of ${doc.uri.fsPath} to ${target}`);
  }

  exportCsvTo(file: unknown, target: unknown, view?: unknown): string {
    const doc = this.documentFor(file);
    if (!doc) throw new Error('quantscope.inspector.exportCsv: no open inspector for that model');
    if (typeof target !== 'string' || !path.isAbsolute(target)) throw new Error('quantscope.inspector.exportCsv: the target must be an absolute path');
    const v: TableView | undefined = view === undefined ? { sort: 'name', descending: false, filter: '', group: 'none', config: referenceConfig('int8').id } : parseTableView(view);
    if (!v) throw new Error('quantscope.inspector.exportCsv: malformed table view');
    this.writeCsv(doc, target, v);
    return target;
  }

  /** The Markdown readiness report of an open model (undefined if it is not open in an inspector). */
  reportFor(file: vscode.Uri | string | undefined): { markdown: string; path: string } | undefined {
    const doc = this.documentFor(file);
    if (!doc?.built) return undefined;
    return { markdown: readinessReport(doc.built.overview, doc.rows(), { complete: doc.state === 'complete', generated: new Date() }), path: doc.uri.fsPath };
  }
}

/**
 * The inspector's Activations view for one model: runs the model on the
 * chosen calibration data (or synthetic inputs, labelled) in the host pool
 * through pipelines/activationReport (never on this thread), with progress
 * and Cancel. The data chosen is remembered per file, and a result is cached
 * by file identity + data + settings, so reopening the model shows it at once.
 */
import * as vscode from 'vscode';
import type { ActivationsState, ToInspector } from '../../shared/protocol/inspector';
import type { ModelDocument } from './document';
import { type HostPool, runtimeProvider, warnProvider } from '../workerPool';
import { log } from '../log';

const DEFAULT_SAMPLES = 16;

export class ModelActivationsView {
  state: ActivationsState;
  private running: AbortController | undefined;
  private last: Promise<void> = Promise.resolve();

  constructor(
    private readonly doc: ModelDocument,
    private readonly pool: HostPool,
    private readonly cacheDir: string | undefined,
    private readonly memento: vscode.Memento | undefined,
  ) {
    const file = doc.uri.fsPath;
    const remembered = memento?.get<{ data?: string; samples?: number }>(this.key);
    const model = doc.model;
    this.state = {
      phase: 'idle', samples: remembered?.samples ?? DEFAULT_SAMPLES, data: remembered?.data,
      unavailable: !model ? 'the model could not be opened' : model.format !== 'onnx' ? `activations come from running the model in ONNX Runtime: ${model.format} files do not run here`
        : !vscode.workspace.isTrusted ? 'the workspace is not trusted: models are not run' : undefined,
    };
    if (!file) this.state.unavailable = 'no file';
  }

  private get key(): string { return `quantscope.activations:${this.doc.uri.fsPath}`; }

  private post(): void {
    this.doc.broadcast(this.message());
  }

  message(): ToInspector {
    return { type: 'activations', state: this.state };
  }

  private set(s: Partial<ActivationsState>): void {
    this.state = { ...this.state, ...s };
    this.post();
  }

  /** The data set of the current choice (loaded here: file reads and decoding; the model runs in the pool). */
  private calib() {
    const { modelCalib } = require('../../pipelines/evaluate') as typeof import('../../pipelines/evaluate');
    return modelCalib(this.doc.model!, this.state.data, { samples: this.state.samples });
  }

  /** Show the cached result of the current choice, if there is one; never runs the model. */
  async showCached(): Promise<void> {
    if (this.state.unavailable || this.state.phase !== 'idle') return;
    try {
      const { activationReport } = require('../../pipelines/activationReport') as typeof import('../../pipelines/activationReport');
      const hit = await activationReport(this.doc.model!, this.calib(), { pool: this.pool.get(), cacheDir: this.cacheDir, provider: runtimeProvider(), cacheOnly: true });
      if (hit && this.state.phase === 'idle') this.set({ phase: 'done', result: hit });
    } catch (e) {
      log().warn(`Activations of ${this.doc.uri.fsPath}: no cached result (${e instanceof Error ? e.message : String(e)})`);
    }
  }

  /** Runs one at a time: a Run while another is running (or stopping) cancels it and waits for it first. */
  run(samples: number): Promise<void> {
    this.running?.abort();
    this.last = this.last.then(() => this.runNow(samples));
    return this.last;
  }

  private async runNow(samples: number): Promise<void> {
    if (this.state.unavailable || !this.doc.model) return;
    const ctl = new AbortController();
    this.running = ctl;
    this.state.samples = samples;
    await this.memento?.update(this.key, { data: this.state.data, samples });
    this.set({ phase: 'running', progress: { done: 0, total: samples }, error: undefined, result: undefined });
    try {
      const { activationReport } = require('../../pipelines/activationReport') as typeof import('../../pipelines/activationReport');
      const set = this.calib();
      this.set({ progress: { done: 0, total: set.samples.length } });
      const result = await activationReport(this.doc.model, set, {
        pool: this.pool.get(), cacheDir: this.cacheDir, provider: runtimeProvider(), signal: ctl.signal,
        onProgress: (done, total) => { if (this.running === ctl && !ctl.signal.aborted) this.set({ progress: { done, total } }); },
      });
      warnProvider(result?.providerNote);
      // A data change while this ran took over the view.
      if (this.running !== ctl) return;
      if (ctl.signal.aborted) this.set({ phase: 'cancelled', progress: undefined });
      else this.set({ phase: 'done', result, progress: undefined });
      if (result) log().info(`Activations of ${this.doc.uri.fsPath}: ${result.rows.length} on ${result.samples} ${result.data} samples in ${result.seconds.toFixed(1)} s${result.cached ? ' (cached)' : ''}`);
    } catch (e) {
      if (this.running !== ctl) return;
      if (ctl.signal.aborted) this.set({ phase: 'cancelled', progress: undefined });
      else {
        const msg = e instanceof Error ? e.message : String(e);
        log().error(`Activations of ${this.doc.uri.fsPath}: ${msg}`);
        this.set({ phase: 'error', error: msg, progress: undefined });
      }
    } finally {
      if (this.running === ctl) this.running = undefined;
    }
  }

  cancel(): void {
    this.running?.abort();
  }

  async chooseData(): Promise<void> {
    const picked = await vscode.window.showOpenDialog({
      title: 'Calibration data for the activations (.npy, .npz, .json, images, .txt, or a folder of them)',
      canSelectFiles: true, canSelectFolders: true, canSelectMany: false,
    });
    if (picked?.[0]) await this.setData(picked[0].fsPath);
  }

  /** A data choice (undefined: synthetic inputs); the cached result of that choice shows at once. */
  async setData(data: string | undefined): Promise<void> {
    this.running?.abort();
    this.running = undefined;
    await this.memento?.update(this.key, { data, samples: this.state.samples });
    this.set({ data, phase: 'idle', result: undefined, error: undefined, progress: undefined });
    await this.showCached();
  }

  dispose(): void {
    this.running?.abort();
  }
}

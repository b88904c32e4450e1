import type { FromWebview } from '../../src/shared/protocol/inspector';

interface VsCodeApi {
  postMessage(msg: FromWebview): void;
  getState(): unknown;
  setState(state: unknown): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

/** The one handle on the host; acquireVsCodeApi may be called only once. */
export const vscode: VsCodeApi = acquireVsCodeApi();

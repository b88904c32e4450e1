/** The handle on the extension host, typed by the messages the view may send. */
export interface HostApi<Out> {
  postMessage(msg: Out): void;
  getState(): unknown;
  setState(state: unknown): void;
}
declare function acquireVsCodeApi(): HostApi<unknown>;

let api: HostApi<unknown> | undefined;

/** acquireVsCodeApi may be called only once per webview: every caller shares the handle. */
export function acquireHost<Out>(): HostApi<Out> {
  api ??= acquireVsCodeApi();
  return api as HostApi<Out>;
}

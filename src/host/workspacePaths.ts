/**
 * Paths that come back from a webview (its saved state after a reload, a
 * message) are data from a page, not choices the user made in a dialog:
 * they are resolved and accepted only inside a folder of the open workspace.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';

/** Whether `p` (absolute, normalised) lies inside `root` (the root itself included), by path segments, not string prefix. */
export function isInside(root: string, p: string): boolean {
  const rel = path.relative(path.resolve(root), path.resolve(p));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/** The real path of `p` when it is a string naming an existing file inside a workspace folder (symbolic links followed); otherwise undefined. */
export function workspacePath(p: unknown): string | undefined {
  if (typeof p !== 'string' || !p || p.includes('\0')) return undefined;
  let real: string;
  try { real = fs.realpathSync(path.resolve(p)); } catch { return undefined; }
  const roots = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => {
    try { return fs.realpathSync(f.uri.fsPath); } catch { return f.uri.fsPath; }
  });
  return roots.some((r) => isInside(r, real)) ? real : undefined;
}

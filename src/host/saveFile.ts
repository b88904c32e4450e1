/**
 * Saving a file the user asked for (CSV, PNG, report): local files go through
 * the atomic writer (temp file, fsync, rename), so a failed or cancelled save
 * never leaves half a file; other schemes (a remote workspace) through VS Code.
 * Replacing an existing file is allowed: the save dialog asked the user.
 */
import * as vscode from 'vscode';
import { writeFileAtomic } from '../formats/atomicWrite';

export async function saveFile(target: vscode.Uri, data: Uint8Array | string): Promise<void> {
  if (target.scheme === 'file') {
    await writeFileAtomic(target.fsPath, data, { overwrite: true });
    return;
  }
  await vscode.workspace.fs.writeFile(target, typeof data === 'string' ? new TextEncoder().encode(data) : data);
}

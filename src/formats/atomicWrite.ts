/**
 * The one way QuantScope writes a file: into a temp file beside the
 * destination, fsync, then rename over it (or link, when it must not replace
 * an existing file), then fsync the folder. A reader sees the old file or the
 * whole new one, never a part; a failed, cancelled or killed write leaves at
 * most its temp file (removed on error, on abort and at process exit), and an
 * existing destination is untouched unless `overwrite` is set.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface AtomicWriteOptions {
  /** Replace an existing destination (default false: DestinationExistsError). */
  overwrite?: boolean;
  /** Abort removes the temp file and rejects with the signal's reason. */
  signal?: AbortSignal;
  /** File mode of a new file (before umask); default 0o666. */
  mode?: number;
}

export class DestinationExistsError extends Error {
  readonly code = 'EEXIST';
  constructor(readonly file: string) {
    super(`${file}: already exists (pass overwrite / --overwrite to replace it)`);
    this.name = 'DestinationExistsError';
  }
}

/** Temp files of writes in progress in this process, removed by removePendingTempFiles (the CLI calls it at exit). */
const pending = new Set<string>();

export function removePendingTempFiles(): void {
  for (const p of pending) {
    try { fs.rmSync(p, { force: true }); } catch { /* best effort at exit */ }
  }
  pending.clear();
}

/** Temp files are dot-files named after the destination, so a leftover (after SIGKILL) is recognisable: `.NAME.qstmp-PID-RANDOM`. */
export function tempPathFor(dest: string): string {
  return path.join(path.dirname(dest), `.${path.basename(dest)}.qstmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
}
export const TEMP_FILE_PATTERN = /^\..+\.qstmp-\d+-[0-9a-f]{8}$/;

/**
 * Removes temp files in `dir` left by writers that no longer run (a SIGKILL,
 * a power cut): those of a PID that is not alive on this machine. Returns the
 * names removed.
 */
export function removeStaleTempFiles(dir: string): string[] {
  const removed: string[] = [];
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return removed; }
  for (const name of names) {
    if (!TEMP_FILE_PATTERN.test(name)) continue;
    const pid = Number(/\.qstmp-(\d+)-/.exec(name)?.[1]);
    if (pid === process.pid || isAlive(pid)) continue;
    try { fs.rmSync(path.join(dir, name), { force: true }); removed.push(name); } catch { /* another process got it first */ }
  }
  return removed;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // Some file systems refuse fsync on a directory (EINVAL/EISDIR); the rename itself is still atomic.
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** Moves the finished temp file to `dest`: rename (overwrite) or hard link + unlink, which fails if `dest` exists. */
function publish(tmp: string, dest: string, overwrite: boolean): void {
  if (overwrite) {
    fs.renameSync(tmp, dest);
  } else {
    try {
      fs.linkSync(tmp, dest);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw new DestinationExistsError(dest);
      if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'EXDEV') throw e;
      // No hard links here (some mounted file systems): check, then rename.
      if (fs.existsSync(dest)) throw new DestinationExistsError(dest);
      fs.renameSync(tmp, dest);
      return;
    }
    fs.rmSync(tmp, { force: true });
  }
}

/**
 * Gives a finished file written beside `dest` (by a streaming format writer,
 * then verified) its name: hard link + unlink, which refuses an existing
 * `dest`, or rename with `overwrite`; then fsync of the folder.
 */
export function publishFile(tmp: string, dest: string, overwrite: boolean): void {
  publish(tmp, dest, overwrite);
  fsyncDir(path.dirname(dest));
}

/** Names the destination in an error that does not (ENOSPC/EFBIG from write say only "write"). */
function named(e: unknown, dest: string): unknown {
  if (e instanceof Error && !(e instanceof DestinationExistsError) && !e.message.includes(dest)) e.message = `${dest}: ${e.message}`;
  return e;
}

function refuseExisting(dest: string, overwrite: boolean): void {
  if (!overwrite && fs.existsSync(dest)) throw new DestinationExistsError(dest);
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Error('write cancelled');
}

/** Writes `data` to `dest` atomically (synchronous). */
export function writeFileAtomicSync(dest: string, data: string | Uint8Array, opts: Omit<AtomicWriteOptions, 'signal'> = {}): void {
  const overwrite = !!opts.overwrite;
  refuseExisting(dest, overwrite);
  const tmp = tempPathFor(dest);
  pending.add(tmp);
  let fd: number | undefined;
  try {
    fd = fs.openSync(tmp, 'wx', opts.mode ?? 0o666);
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let done = 0;
    while (done < bytes.length) done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 24));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = undefined;
    publish(tmp, dest, overwrite);
    fsyncDir(path.dirname(dest));
  } catch (e) {
    if (fd !== undefined) { try { fs.closeSync(fd); } catch { /* already failing */ } }
    fs.rmSync(tmp, { force: true });
    throw named(e, dest);
  } finally {
    pending.delete(tmp);
  }
}

/** Writes `data` to `dest` atomically. */
export async function writeFileAtomic(dest: string, data: string | Uint8Array, opts: AtomicWriteOptions = {}): Promise<void> {
  const w = await openAtomic(dest, opts);
  try {
    await w.write(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  } catch (e) {
    await w.abort();
    throw e;
  }
  await w.commit();
}

/** A file being written: chunks go to the temp file; `commit` publishes it, `abort` removes it. */
export interface AtomicFile {
  readonly dest: string;
  readonly tempPath: string;
  /** Bytes written so far. */
  readonly bytesWritten: number;
  write(chunk: Uint8Array): Promise<void>;
  /** fsync, close, rename into place, fsync the folder. */
  commit(): Promise<void>;
  /** Close and remove the temp file; the destination is untouched. Safe to call twice or after a failure. */
  abort(): Promise<void>;
}

/** Starts a streamed atomic write of `dest`. Any failing write or an abort of `signal` removes the temp file. */
export async function openAtomic(dest: string, opts: AtomicWriteOptions = {}): Promise<AtomicFile> {
  const overwrite = !!opts.overwrite;
  const signal = opts.signal;
  if (signal?.aborted) throw abortReason(signal);
  refuseExisting(dest, overwrite);
  const tmp = tempPathFor(dest);
  pending.add(tmp);
  let fh: fs.promises.FileHandle | undefined;
  try {
    fh = await fs.promises.open(tmp, 'wx', opts.mode ?? 0o666);
  } catch (e) {
    pending.delete(tmp);
    throw named(e, dest);
  }
  let state: 'open' | 'committed' | 'aborted' = 'open';
  let written = 0;
  const cleanup = async () => {
    if (state !== 'open') return;
    state = 'aborted';
    signal?.removeEventListener('abort', onAbort);
    // Unlink first (POSIX allows it while open), so the temp is gone as soon as abort is seen; again after close for Windows.
    try { fs.rmSync(tmp, { force: true }); } catch { /* open on Windows: removed below */ }
    try { await fh?.close(); } catch { /* already closed or failing */ }
    try { fs.rmSync(tmp, { force: true }); } catch { /* nothing more to do */ }
    pending.delete(tmp);
  };
  const onAbort = () => { void cleanup(); };
  signal?.addEventListener('abort', onAbort, { once: true });
  const guard = () => {
    if (signal?.aborted) throw abortReason(signal);
    if (state !== 'open') throw new Error(`${dest}: write already ${state}`);
  };
  return {
    dest,
    tempPath: tmp,
    get bytesWritten() { return written; },
    async write(chunk) {
      guard();
      try {
        let done = 0;
        while (done < chunk.length) {
          const { bytesWritten } = await (fh as fs.promises.FileHandle).write(chunk, done, chunk.length - done);
          done += bytesWritten;
        }
        written += chunk.length;
      } catch (e) {
        await cleanup();
        throw named(e, dest);
      }
      guard();
    },
    async commit() {
      guard();
      try {
        await (fh as fs.promises.FileHandle).sync();
        await (fh as fs.promises.FileHandle).close();
        guard();
        publish(tmp, dest, overwrite);
        state = 'committed';
        signal?.removeEventListener('abort', onAbort);
        pending.delete(tmp);
        fsyncDir(path.dirname(dest));
      } catch (e) {
        if (state === 'open') {
          state = 'aborted';
          signal?.removeEventListener('abort', onAbort);
          fs.rmSync(tmp, { force: true });
          pending.delete(tmp);
        }
        throw signal?.aborted ? abortReason(signal) : named(e, dest);
      }
    },
    abort: cleanup,
  };
}

/**
 * What a command writes through: stdout with back-pressure (a slow reader is
 * waited for, never dropped; a closed one stops the command quietly), notes
 * and progress on stderr (progress only on a terminal or with --progress),
 * colour only on a terminal and never under NO_COLOR.
 */
import { BrokenPipeError } from './exitCodes';

export interface OutStream {
  write(chunk: string, cb?: (err?: Error | null) => void): boolean;
  on(event: 'error', fn: (e: Error) => void): unknown;
  once(event: 'drain' | 'close' | 'error', fn: (...a: unknown[]) => void): unknown;
  off(event: 'drain' | 'close' | 'error', fn: (...a: unknown[]) => void): unknown;
  isTTY?: boolean;
  writableLength?: number;
}

export interface CliIO {
  /** Writes to stdout, waiting while the reader is slow; throws BrokenPipeError once the reader has gone. */
  out(text: string): Promise<void>;
  /** `out(text + '\n')`. */
  line(text?: string): Promise<void>;
  /** A JSON document on stdout whose first key is `"schema": schema`; NaN/±Inf print as null, typed arrays as arrays, bigints as strings. */
  json(schema: string, value: object): Promise<void>;
  /** A line on stderr (a warning, a note): never results. */
  note(text: string): void;
  /** Shows a progress line on stderr when progress is on (throttled); `force` draws even within the throttle interval. */
  progress(text: string, force?: boolean): void;
  /** Clears the progress line. */
  progressDone(): void;
  readonly showProgress: boolean;
  /** Whether stderr output may use ANSI colour. */
  readonly color: boolean;
  /** `text` in the colour given (an SGR number: 31 red, 33 yellow, 1 bold) when colour is on. */
  paint(sgr: number, text: string): string;
}

/** Writes above this size are cut so back-pressure applies between pieces. */
const PIECE = 1 << 16;

/** stdout wrapper: tracks the reader going away (EPIPE) and waits for drain. */
export class Output {
  private broken = false;
  private failure: Error | undefined;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly stream: OutStream, private readonly onBroken: (e: Error) => void = () => {}) {
    stream.on('error', (e: Error) => {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ECONNRESET') this.broken = true;
      else this.failure = e;
      for (const w of [...this.waiters]) w();
      this.onBroken(this.broken ? new BrokenPipeError() : e);
    });
  }

  get isBroken(): boolean { return this.broken; }
  /** A write error other than the reader going away (a full disk for `> file`). */
  get error(): Error | undefined { return this.failure; }

  async write(text: string): Promise<void> {
    for (let i = 0; i < text.length; i += PIECE) {
      this.check();
      if (!this.stream.write(i === 0 && text.length <= PIECE ? text : text.slice(i, i + PIECE))) await this.wait('drain');
    }
    this.check();
  }

  /** Resolves once everything written so far has left the process (or the reader has gone). */
  async flush(): Promise<void> {
    if (this.broken || this.failure) return;
    await new Promise<void>((resolve) => {
      const done = () => { this.waiters.delete(done); resolve(); };
      this.waiters.add(done);
      try { this.stream.write('', () => done()); } catch { done(); }
    });
  }

  private check(): void {
    if (this.broken) throw new BrokenPipeError();
    if (this.failure) throw this.failure;
  }

  private wait(event: 'drain'): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.waiters.delete(done);
        this.stream.off(event, done);
        this.stream.off('close', done);
        resolve();
      };
      this.waiters.add(done);
      this.stream.once(event, done);
      this.stream.once('close', done);
    });
  }
}

export interface IOSettings {
  stdout: OutStream;
  stderr: OutStream;
  env: Record<string, string | undefined>;
  /** --progress / --no-progress; undefined: on when stderr is a terminal. */
  progress?: boolean;
  /** Called once when stdout's reader goes away or stdout fails. */
  onBroken?(e: Error): void;
}

/** https://no-color.org: a present, non-empty NO_COLOR turns colour off; so does TERM=dumb or a stderr that is not a terminal. */
export function useColor(stderr: OutStream, env: Record<string, string | undefined>): boolean {
  return !!stderr.isTTY && !env.NO_COLOR && env.TERM !== 'dumb';
}

export function jsonText(schema: string, value: object, indent?: number): string {
  return JSON.stringify({ schema, ...value }, (_k, v: unknown) => {
    if (typeof v === 'number') return Number.isFinite(v) ? v : null;
    if (typeof v === 'bigint') return v.toString();
    if (ArrayBuffer.isView(v) && !(v instanceof DataView)) return Array.from(v as unknown as ArrayLike<number>);
    return v;
  }, indent);
}

export function createIO(s: IOSettings): CliIO & { stdout: Output; flush(): Promise<void> } {
  const stdout = new Output(s.stdout, (e) => s.onBroken?.(e));
  const tty = !!s.stderr.isTTY;
  const showProgress = s.progress ?? tty;
  const color = useColor(s.stderr, s.env);
  let drawn = false;
  let last = 0;
  const errWrite = (t: string) => { try { s.stderr.write(t); } catch { /* stderr gone: nothing to tell */ } };
  s.stderr.on('error', () => { /* a closed stderr must not crash the command */ });
  return {
    stdout,
    showProgress,
    color,
    out: (text) => stdout.write(text),
    line: (text = '') => stdout.write(`${text}\n`),
    json: (schema, value) => stdout.write(`${jsonText(schema, value)}\n`),
    paint: (sgr, text) => (color ? `\x1b[${sgr}m${text}\x1b[0m` : text),
    note(text) {
      if (drawn) { errWrite('\r\x1b[K'); drawn = false; }
      errWrite(`${text}\n`);
    },
    progress(text, force = false) {
      if (!showProgress) return;
      const now = Date.now();
      if (!force && now - last < (tty ? 100 : 1000)) return;
      last = now;
      if (tty) { errWrite(`\r\x1b[K${text}`); drawn = true; } else errWrite(`${text}\n`);
    },
    progressDone() {
      if (drawn) errWrite('\r\x1b[K');
      drawn = false;
    },
    flush: () => stdout.flush(),
  };
}

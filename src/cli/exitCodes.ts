/**
 * The CLI's exit codes, the one place they are defined (README "Exit codes"
 * lists the same table). Commands return one of these or throw an error that
 * `exitCodeOf` maps to one.
 */
import { FormatError } from '../formats/types';
import { CancelledError } from '../jobs/cancel';
import { ConvertInputError, VerificationError } from '../pipelines/errors';
import { PlanError } from '../quant/plan';

export const EXIT = {
  /** Done, and the output is complete. */
  ok: 0,
  /** Bad input: a file that is missing, unreadable or malformed, data or a plan that cannot be used; also an unexpected internal error. */
  badInput: 1,
  /** Bad usage: unknown command or option, missing or extra arguments, an option value of the wrong kind. */
  usage: 2,
  /** Verification failed: a written model whose measured error is off from the prediction, or that the runtime refuses. */
  verificationFailed: 3,
  /** Cancelled by SIGINT (Ctrl+C): the running pipeline was aborted and its temp files removed. */
  cancelled: 130,
  /** The reader of stdout went away (EPIPE, e.g. `| head`): 128 + SIGPIPE, what a shell reports for any tool stopped that way. */
  brokenPipe: 141,
  /** Terminated by SIGTERM: cancelled as for SIGINT, 128 + SIGTERM. */
  terminated: 143,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** Wrong command line: exit 2, the message followed by the command's usage line. */
export class UsageError extends Error {
  constructor(message: string) { super(message); this.name = 'UsageError'; }
}

/** Input that cannot be used and is not a model file (a plan, a calibration set, a missing file): exit 1. */
export class InputError extends Error {
  constructor(message: string) { super(message); this.name = 'InputError'; }
}

/** A written output failed its check (measured error off from the prediction, runtime refused it): exit 3. One class with the pipelines'. */
export { VerificationError };

/** stdout's reader closed; the command stops quietly. */
export class BrokenPipeError extends Error {
  constructor() { super('stdout closed by its reader'); this.name = 'BrokenPipeError'; }
}

/** The exit code for an error thrown by a command (or the reason its signal was aborted with). */
export function exitCodeOf(e: unknown): ExitCode {
  if (e instanceof UsageError) return EXIT.usage;
  if (e instanceof VerificationError) return EXIT.verificationFailed;
  if (e instanceof BrokenPipeError) return EXIT.brokenPipe;
  if (e instanceof CancelledError || (e instanceof Error && e.name === 'AbortError')) return EXIT.cancelled;
  return EXIT.badInput;
}

/** Errors whose message says it all; anything else is a bug, reported with its stack under QUANTSCOPE_DEBUG=1. */
export function isExpectedError(e: unknown): boolean {
  if (e instanceof FormatError || e instanceof InputError || e instanceof UsageError || e instanceof VerificationError || e instanceof CancelledError || e instanceof ConvertInputError || e instanceof PlanError) return true;
  const code = (e as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

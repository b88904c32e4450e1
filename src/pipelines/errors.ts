/**
 * The errors a pipeline reports beyond FormatError and CancelledError; the
 * CLI maps each to its exit code (src/cli/exitCodes.ts), the extension to its
 * message.
 */

/** A written output failed its check (read back differs from the prediction, the runtime refuses it): nothing is kept. CLI exit 3. */
export class VerificationError extends Error {
  constructor(message: string, readonly report?: unknown) {
    super(message);
    this.name = 'VerificationError';
  }
}

/** A request that cannot be carried out as given (a missing file, a bad option value, a plan or budget that does not fit): CLI exit 1. */
export class ConvertInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConvertInputError';
  }
}

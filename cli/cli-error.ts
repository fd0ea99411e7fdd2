import { StreamgradError } from '../core/errors.ts';

/** Exit codes: 0 done, 1 the run failed after it started, 2 bad command line, option value or input file. */
export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/**
 * An error the CLI reports as one line on stderr, `streamgrad: <message>`, then exits with
 * `exitCode`. The message names the option or file at fault, e.g. `--lr: must be a finite
 * number > 0, got -1`.
 */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(message: string, readonly exitCode: number = EXIT_USAGE, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Throws a usage error about `option` (exit 2). */
export function usage(option: string, message: string): never {
  throw new CliError(`${option}: ${message}`);
}

/**
 * Re-labels a `StreamgradError` raised by the engine's config checks with the command-line
 * option it came from: `optimizer.learningRate: must be …` becomes `--lr: must be …`.
 * `options` maps engine field names to option names; other errors pass through unchanged.
 */
export function asOptionError(error: unknown, options: Readonly<Record<string, string>>): unknown {
  if (!(error instanceof StreamgradError) || error.field === undefined) return error;
  const option = options[error.field];
  if (option === undefined) return error;
  const prefix = `${error.field}: `;
  const detail = error.message.startsWith(prefix) ? error.message.slice(prefix.length) : error.message;
  return new CliError(`${option}: ${detail}`, EXIT_USAGE, { cause: error });
}

/** The first line of an error's message (reports stay one line even for unexpected errors). */
export function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n', 1)[0].trim();
}

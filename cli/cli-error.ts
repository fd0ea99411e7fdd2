import { StreamgradError } from '../core/errors.ts';
import { ConfigError, oneLine, OutputError } from '../runtime/errors.ts';

export { oneLine };

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

/**
 * The exit status an error ends a command with: a `CliError`'s own, 2 for the runtime's
 * `ConfigError` (a bad config value, option or input file), 1 for its `OutputError` (an
 * output not written); undefined for anything else (an internal error).
 */
export function exitCodeOf(error: unknown): number | undefined {
  if (error instanceof CliError) return error.exitCode;
  if (error instanceof ConfigError) return EXIT_USAGE;
  if (error instanceof OutputError) return EXIT_FAILURE;
  return undefined;
}

/**
 * The runtime's errors as the CLI reports them: a `CliError` with the same message and
 * the exit status of `exitCodeOf` (the runtime error is its cause); other errors pass.
 *
 * @example try { return build(settings); } catch (error) { throw cliErrorOf(error); }
 */
export function cliErrorOf(error: unknown): unknown {
  if (error instanceof CliError) return error;
  const exitCode = exitCodeOf(error);
  return exitCode === undefined ? error : new CliError((error as Error).message, exitCode, { cause: error });
}

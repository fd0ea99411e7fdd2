import { StreamgradError } from '../core/errors.ts';

/**
 * The runtime's own errors: a config value, an option the CLI compiled into the config, or
 * an input file it cannot use (`SG_ERR_CONFIG`), and an output it could not write or serve
 * once the run went (`SG_ERR_OUTPUT`). Both are `StreamgradError`s, so a program switches
 * on `code`; the message names the field, option or file at fault exactly as `streamgrad`
 * prints it (`models[0].save: …`, `--lr: …`), and the CLI exits 2 and 1 on them.
 */

/** The field a message starts with: `--lr` of `--lr: must be …`, `models[0].save` of `models[0].save: …`. */
function fieldOf(message: string): string | undefined {
  return /^(--[\w-]+|[\w$]+(?:\[\d+\]|\.[\w$]+)*)[ :]/.exec(message)?.[1];
}

/**
 * A config value, option or input file the runtime cannot use (`SG_ERR_CONFIG`): the
 * message starts with what is at fault, and `field` is that name when it is one.
 *
 * @example
 * try { await runExperiment(config); } catch (e) { if (e instanceof ConfigError) console.error(e.field, e.message); }
 */
export class ConfigError extends StreamgradError {
  constructor(message: string, options?: { cause?: unknown; field?: string }) {
    super('SG_ERR_CONFIG', message, options?.field ?? fieldOf(message), options);
  }
}

/**
 * An output the run could not write or serve after it started (`SG_ERR_OUTPUT`): a saved
 * model, the predictions file, the live view's server. The run's result is lost or partial.
 *
 * @example
 * if (error instanceof OutputError) console.error(`not written: ${error.message}`);
 */
export class OutputError extends StreamgradError {
  constructor(message: string, options?: { cause?: unknown; field?: string }) {
    super('SG_ERR_OUTPUT', message, options?.field ?? fieldOf(message), options);
  }
}

/** Throws a `ConfigError` about `field`: `invalid('--lr', 'must be > 0')` says `--lr: must be > 0`. */
export function invalid(field: string, message: string): never {
  throw new ConfigError(`${field}: ${message}`, { field });
}

/**
 * The first line of an error's message (reports stay one line even for unexpected errors),
 * `printable`: a message may quote what a file or a message held (JSON.parse quotes the bytes
 * it choked on), and raw control bytes would reach the terminal.
 */
export function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return printable(text.split('\n', 1)[0].trim());
}

/**
 * `text` with the characters a terminal acts on escaped (`\x1b`, `\u202e`): C0 controls but
 * tab, DEL, C1 controls and the bidirectional overrides and isolates, which reorder what is
 * shown. For anything written to a terminal that may hold bytes from outside.
 *
 * @example
 * printable('\x7fELF\x02\x1b[2J'); // '\\x7fELF\\x02\\x1b[2J'
 */
export function printable(text: string): string {
  return text.replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const code = c.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`;
  });
}

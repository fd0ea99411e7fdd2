/**
 * Typed errors with stable codes. Every error streamgrad raises on purpose is a
 * `StreamgradError`: scripts and dashboards switch on `code`, people read `message`,
 * and `field` names the offending input (`x[2]`, `layers[1].weights`, `--lr`).
 */
export type ErrorCode =
  /** A sample holds NaN or ±Infinity (including `1e309` parsed from text). */
  | 'SG_ERR_NONFINITE_INPUT'
  /** A sample has more or fewer features / targets than the model. */
  | 'SG_ERR_ARITY'
  /** A value has the wrong type (a string, null, boolean, object where a number belongs). */
  | 'SG_ERR_TYPE'
  /** A required field is absent. */
  | 'SG_ERR_MISSING'
  /** A line or message is not valid JSON. */
  | 'SG_ERR_BAD_JSON'
  /** Too many consecutive steps had a non-finite loss or gradient. */
  | 'SG_ERR_DIVERGED'
  /** A configuration value is invalid (learning rate, batch size, layer list, ...). */
  | 'SG_ERR_CONFIG'
  /** A model document is malformed or its shapes do not fit together. */
  | 'SG_ERR_MODEL'
  /** A command that the run's current state does not allow (a step while running, a checkpoint with nowhere to go). */
  | 'SG_ERR_STATE'
  /** A checkpoint is truncated, corrupt, of another model, or could not be written. */
  | 'SG_ERR_CHECKPOINT'
  /** The sample source failed (a file read error, a closed socket). */
  | 'SG_ERR_SOURCE'
  /** A data line is longer than the line limit (`--max-line-bytes`, 16 MiB by default): rejected, skipped to the next line. */
  | 'SG_ERR_LINE_TOO_LONG'
  /** An output could not be written or served once the run went: a saved model, the predictions file, the live view's server. */
  | 'SG_ERR_OUTPUT'
  /** A model cannot be exported in the format asked for (an activation the format lacks), or the export could not be written. */
  | 'SG_ERR_EXPORT'
  /** Delayed labels: features with an id that is already waiting for its label, or a second label for one id (`LabelJoin`). */
  | 'SG_ERR_DUPLICATE_ID'
  /** Delayed labels: a label whose features never came (or were turned away) while it was held (`LabelJoin`). */
  | 'SG_ERR_UNKNOWN_ID'
  /** Delayed labels: features whose label did not come in time (the `dead-letter` policy), or a label that came after its features expired (`LabelJoin`). */
  | 'SG_ERR_LABEL_TIMEOUT';

/** Every `ErrorCode`, for checking a code that came from outside (a producer's rejection envelope). */
export const ERROR_CODES = [
  'SG_ERR_NONFINITE_INPUT', 'SG_ERR_ARITY', 'SG_ERR_TYPE', 'SG_ERR_MISSING', 'SG_ERR_BAD_JSON', 'SG_ERR_DIVERGED', 'SG_ERR_CONFIG',
  'SG_ERR_MODEL', 'SG_ERR_STATE', 'SG_ERR_CHECKPOINT', 'SG_ERR_SOURCE', 'SG_ERR_LINE_TOO_LONG', 'SG_ERR_OUTPUT', 'SG_ERR_EXPORT',
  'SG_ERR_DUPLICATE_ID', 'SG_ERR_UNKNOWN_ID', 'SG_ERR_LABEL_TIMEOUT',
] as const satisfies readonly ErrorCode[];

// the list above holds every code of the type (a code added to one and not the other does not compile)
const everyCode: [Exclude<ErrorCode, (typeof ERROR_CODES)[number]>] extends [never] ? true : never = true;
void everyCode;

const KNOWN_CODES: ReadonlySet<string> = new Set(ERROR_CODES);

/**
 * Whether `code` is one of streamgrad's error codes.
 *
 * @example isErrorCode('SG_ERR_FAKE') // false
 */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && KNOWN_CODES.has(code);
}

/**
 * Every error streamgrad raises on purpose: a stable `code` (`SG_ERR_*`), a message naming the field or line at fault, and the `field` when there is one.
 *
 * @example if (error instanceof StreamgradError && error.code === 'SG_ERR_DIVERGED') restart();
 */
export class StreamgradError extends Error {
  override readonly name = 'StreamgradError';
  /**
   * `message` without the text that came from outside, for an answer that must never echo
   * its client's input (a server's: server/PROTOCOL.md, "error"). Where `message` quotes a
   * value a record held (`temp: must be a number, got the string "warm"`: useful on a local
   * user's terminal and in a dead letter), this only says what it was (`temp: must be a
   * number, got a string`); the same as `message` when that quotes nothing from outside.
   */
  readonly publicMessage: string;
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** The field the error is about, when there is one. */
    readonly field?: string,
    options: { cause?: unknown; publicMessage?: string } = {},
  ) {
    const { publicMessage = message, ...errorOptions } = options;
    super(message, errorOptions);
    this.publicMessage = publicMessage;
  }
}

/**
 * What a value is, for a message: `null`, `an array`, `an object`, `a number`, … and a
 * string quoted, cut to 20 characters (`the string "warm"`), or only `a string` when
 * `quote` is false (for a message that must not echo what came from outside).
 *
 * @example describeValue('warm'); // 'the string "warm"'
 */
export function describeValue(v: unknown, quote = true): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return quote ? `the string ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)}` : 'a string';
  if (typeof v === 'object') return 'an object';
  return typeof v === 'bigint' ? 'a bigint' : `a ${typeof v}`;
}

/**
 * `SG_ERR_TYPE` at `field` for a value of the wrong type: `${field}: ${expected}, got …`
 * (`describeValue`), a string value quoted in `message` and not in `publicMessage`.
 *
 * @example typeError('temp', 'must be a number', 'warm').publicMessage; // 'temp: must be a number, got a string'
 */
export function typeError(field: string, expected: string, value: unknown): StreamgradError {
  const text = (quote: boolean) => `${field}: ${expected}, got ${describeValue(value, quote)}`;
  return new StreamgradError('SG_ERR_TYPE', text(true), field, { publicMessage: text(false) });
}

/** Throws `SG_ERR_CONFIG` naming `field` unless `ok`. */
export function requireConfig(ok: boolean, field: string, message: string): asserts ok {
  if (!ok) throw new StreamgradError('SG_ERR_CONFIG', `${field}: ${message}`, field);
}

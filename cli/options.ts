import { parseArgs } from 'node:util';
import { CliError, usage } from './cli-error.ts';
import { nearest } from '../runtime/suggest.ts';

/**
 * Command-line parsing: `node:util` `parseArgs` in strict mode (unknown options, missing
 * values and stray arguments are errors), plus strict readers for numbers, integers and
 * choices. Every error names its option, e.g. `--lr: must be a number, got "abc"`.
 */
export type OptionSpec = Readonly<Record<string, { readonly type: 'string' | 'boolean'; readonly short?: string }>>;

/** The options given on a command line: raw strings for valued options, `true` for flags. */
export type Options = ReadonlyMap<string, string | true>;

/** A number as people write it: `1`, `-0.5`, `.5`, `1e-3`. Not `NaN`, `Infinity`, `0x10`, `1_000` or blanks. */
const NUMBER = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const INTEGER = /^[+-]?\d+$/;

/**
 * Parses `args` against `spec`. `command` (e.g. `streamgrad train`) goes into the hint
 * for unknown options. A word with one leading dash after a valued option (`--lr -1`)
 * is taken as its value, as people expect, rather than as an option.
 */
export function parseOptions(args: readonly string[], spec: OptionSpec, command: string): Options {
  const normalized: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const name = arg.startsWith('--') ? arg.slice(2) : '';
    if (spec[name]?.type === 'string' && i + 1 < args.length && isDashValue(args[i + 1], spec)) {
      normalized.push(`${arg}=${args[++i]}`);
    } else {
      normalized.push(arg);
    }
  }
  let tokens;
  try {
    ({ tokens } = parseArgs({ args: normalized, options: spec, strict: true, allowPositionals: false, tokens: true }));
  } catch (error) {
    throw describeParseError(error, command, spec);
  }
  const options = new Map<string, string | true>();
  for (const token of tokens) {
    if (token.kind !== 'option') continue;
    if (options.has(token.name)) usage(`--${token.name}`, 'given more than once');
    options.set(token.name, token.value ?? true);
  }
  return options;
}

/** `-1`, `-.5`, `-Infinity`: a value starting with one dash, not a known short option like `-h`. */
function isDashValue(arg: string, spec: OptionSpec): boolean {
  return /^-[^-]/.test(arg) && !Object.values(spec).some((o) => o.short !== undefined && arg === `-${o.short}`);
}

function describeParseError(error: unknown, command: string, spec: OptionSpec): unknown {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : '';
  // parseArgs quotes the option as '--lr', '--lr <value>' or '-h, --help'
  const option = /'(?:-\w, )?(-[^' <]+)/.exec(message)?.[1] ?? 'option';
  const hint = `see ${command} --help`;
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION': {
      const near = option.startsWith('--') ? nearest(option.slice(2), Object.keys(spec)) : undefined;
      return new CliError(`${option}: unknown option for ${command} (${near !== undefined ? `did you mean --${near}? ` : ''}${hint})`);
    }
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      return new CliError(`${option}: ${message.includes('does not take') ? 'takes no value' : 'needs a value'} (${hint})`);
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL': {
      const arg = /argument '([^']*)'/.exec(message)?.[1] ?? '';
      return new CliError(`unexpected argument ${JSON.stringify(arg)}: ${command} takes only options (${hint})`);
    }
    default:
      return error;
  }
}

/** The raw value of a valued option, or undefined when it was not given. */
export function text(options: Options, name: string): string | undefined {
  const value = options.get(name);
  return typeof value === 'string' ? value : undefined;
}

export function flag(options: Options, name: string): boolean {
  return options.get(name) === true;
}

/** A finite number, strictly parsed; `fallback` when the option is absent. */
export function number(options: Options, name: string): number | undefined;
export function number(options: Options, name: string, fallback: number): number;
export function number(options: Options, name: string, fallback?: number): number | undefined {
  const raw = text(options, name);
  if (raw === undefined) return fallback;
  const value = NUMBER.test(raw) ? Number(raw) : NaN;
  if (!Number.isFinite(value)) usage(`--${name}`, `must be a finite number, got ${JSON.stringify(raw)}`);
  return value;
}

/** A safe integer ≥ `min`, strictly parsed; `fallback` when the option is absent. */
export function integer(options: Options, name: string, min: number): number | undefined;
export function integer(options: Options, name: string, min: number, fallback: number): number;
export function integer(options: Options, name: string, min: number, fallback?: number): number | undefined {
  const raw = text(options, name);
  if (raw === undefined) return fallback;
  const value = INTEGER.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min) {
    usage(`--${name}`, `must be an integer ≥ ${min}, got ${JSON.stringify(raw)}`);
  }
  return value;
}

/**
 * An integer option with both its bounds, named in any refusal: `1e9`, `-1` and `2000000`
 * for `--label-capacity` all say `must be an integer from 1 to 1000000`.
 *
 * @example integerWithin(options, 'label-capacity', 1, MAX_PENDING_CAPACITY, DEFAULT_PENDING_CAPACITY)
 */
export function integerWithin(options: Options, name: string, min: number, max: number, fallback: number): number {
  const raw = text(options, name);
  if (raw === undefined) return fallback;
  const value = INTEGER.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) usage(`--${name}`, `must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
  return value;
}

export { MAX_TIMER_SECONDS } from '../runtime/timer-limit.ts';

/**
 * `value`, unless it is above `max`, a documented bound (memory that a size allocates,
 * the longest timer): then a usage error naming the option, before anything is allocated.
 *
 * @example const window = atMost(integer(options, 'window', 1, 1000), 'window', MAX_WINDOW);
 */
export function atMost<T extends number | undefined>(value: T, name: string, max: number): T {
  if (value !== undefined && value > max) usage(`--${name}`, `must be at most ${max}, got ${value}`);
  return value;
}

/** One of `allowed`; `fallback` when the option is absent. */
export function choice<T extends string>(options: Options, name: string, allowed: readonly T[], fallback: T): T {
  const raw = text(options, name);
  if (raw === undefined) return fallback;
  if (!(allowed as readonly string[]).includes(raw)) {
    usage(`--${name}`, `unknown value ${JSON.stringify(raw)}; use ${allowed.join(', ')}`);
  }
  return raw as T;
}

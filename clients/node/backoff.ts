/** How long to wait between reconnection attempts. */
export interface BackoffOptions {
  /** Delay before the first retry, in ms (default 250). */
  readonly initialMs?: number;
  /** Longest delay, in ms (default 10 000). */
  readonly maxMs?: number;
  /** Growth per failed attempt (default 2). */
  readonly factor?: number;
  /**
   * Fraction of each delay drawn at random (default 0.2): the delay is uniform in
   * `[d·(1 − jitter), d]`, so clients that lost one server together do not all come back
   * in the same millisecond, and no delay ever exceeds `maxMs`.
   */
  readonly jitter?: number;
}

/**
 * Exponential backoff with jitter: `initialMs · factor^n`, capped at `maxMs`, minus a random
 * share of up to `jitter`. `reset()` after a connection that worked starts over from `initialMs`.
 *
 * @example
 * const backoff = new Backoff({ initialMs: 100 });
 * setTimeout(reconnect, backoff.next()); // ≈ 80–100 ms, then 160–200, 320–400, …
 */
export class Backoff {
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly jitter: number;
  private attempt = 0;

  /** Throws a `RangeError` naming the option for a value that makes no sense. */
  constructor(options: BackoffOptions = {}, private readonly random: () => number = Math.random) {
    this.initialMs = check('backoff.initialMs', options.initialMs ?? 250, (v) => v >= 0, 'a finite number ≥ 0');
    this.maxMs = check('backoff.maxMs', options.maxMs ?? Math.max(10_000, this.initialMs), (v) => v >= this.initialMs, `a finite number ≥ backoff.initialMs (${this.initialMs})`);
    this.factor = check('backoff.factor', options.factor ?? 2, (v) => v >= 1, 'a finite number ≥ 1');
    this.jitter = check('backoff.jitter', options.jitter ?? 0.2, (v) => v >= 0 && v <= 1, 'a number from 0 to 1');
  }

  /** Attempts since the last `reset()`. */
  get attempts(): number {
    return this.attempt;
  }

  /** The delay before the next attempt, in ms; each call counts one attempt. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt);
    this.attempt++;
    return base * (1 - this.jitter * this.random());
  }

  reset(): void {
    this.attempt = 0;
  }
}

function check(name: string, value: number, ok: (v: number) => boolean, expected: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) {
    throw new RangeError(`${name}: must be ${expected}, got ${String(value)}`);
  }
  return value;
}

import { afterAll, beforeAll } from 'vitest';

/**
 * How long a file's `afterAll` may take to stop what it started: a start still under way
 * (a broker has up to 10 s to listen), then SIGTERM and the grace time. Its own time: a
 * hook timeout that cut the start must not cut the stop.
 */
export const STOP_TIMEOUT_MS = 20_000;

/** Something a test file starts once (a broker, a browser, a connection) and stops at the end. */
export interface Shared<T> {
  /** The running thing; throws, naming it, before `start()` has brought it up. */
  current(): T;
  /** Starts it (once). */
  start(): Promise<void>;
  /** Stops what `start()` brings up, waiting for a start still under way; nothing if it failed or never ran. */
  stop(): Promise<void>;
}

/**
 * Keeps `start()`'s promise, so that `stop()` stops what it brings up even when the start
 * outlives its `beforeAll`: vitest gives up on the hook at its timeout and runs `afterAll` at
 * once, but the process the hook was starting comes up all the same, and a `let server` set
 * at the end of the hook would still be undefined there — the process outlived the run.
 *
 * @example
 * const shared = sharedStart('the nats-server of this file', () => startNatsServer(binary), (s) => s.stop());
 * void shared.start(); // cut short
 * await shared.stop(); // the server it brings up is stopped
 */
export function sharedStart<T>(what: string, start: () => Promise<T>, stop: (running: T) => Promise<void>): Shared<T> {
  let starting: Promise<T> | undefined;
  let running: T | undefined;
  return {
    current() {
      if (running === undefined) throw new Error(`${what} is not running: it is started in beforeAll, so read it in tests and hooks`);
      return running;
    },
    async start() {
      starting = start();
      running = await starting;
    },
    async stop() {
      const started = await starting?.catch(() => undefined);
      if (started !== undefined) await stop(started);
    },
  };
}

/**
 * Hooks `shared` (a {@link sharedStart}) into the calling file (or `describe` block):
 * started in `beforeAll`, stopped in `afterAll` (with {@link STOP_TIMEOUT_MS}) — also when
 * a test fails, and when the start outlives `beforeAll`'s timeout. Returns a reader of the
 * running thing: call it in tests and hooks, not while the file is collected. Several in one
 * file stop in reverse order (vitest runs `afterAll` hooks as a stack).
 *
 * @example
 * const browser = forThisFile(sharedStart('the Chromium of this file', () => launch(), (b) => b.close()));
 * it('renders', async () => { const page = await browser().newPage(); … });
 */
export function forThisFile<T>(shared: Shared<T>): () => T {
  beforeAll(shared.start);
  afterAll(shared.stop, STOP_TIMEOUT_MS);
  return shared.current;
}

/**
 * An object that reads every field and method of the one `current()` returns at the time,
 * so a file can hold its broker or browser in a `const` while the thing behind it starts
 * late, or restarts (a spread would keep the first one's fields, and throw before the start).
 *
 * @example
 * const shared = sharedStart('the Chromium of this file', () => launch(), (b) => b.close());
 * const browser = reading(shared.current); // browser.newPage() once shared.start() is done
 */
export function reading<T extends object>(current: () => T): T {
  return new Proxy({} as T, {
    get(_target, key) {
      if (key === 'then') return undefined; // not a promise: `await` must not read a thing that is not up yet
      const running = current();
      const value: unknown = Reflect.get(running, key, running);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(running) : value;
    },
  });
}

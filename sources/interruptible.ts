/**
 * A pull source whose pending read can be given up: `interrupt()` ends it now, even while
 * it waits for a record that may never come (standard input that is open but idle, a
 * pipe from a quiet producer). The consumer's waiting `next()` resolves as the end of the
 * stream at once, so a run stops at its step boundary, writes its checkpoint and saves its
 * model, as at the end of the data. What the abandoned read brings later is dropped.
 *
 * @example
 * const { records, interrupt } = interruptible(stdinRecords());
 * process.once('SIGINT', () => { interrupt(); process.stdin.destroy(); });
 * for await (const record of records) handle(record);
 */
export interface Interruptible<T> {
  readonly records: AsyncIterable<T>;
  /** Ends the stream now: a pending read resolves as its end, and the source is closed. */
  interrupt(): void;
  /** Whether `interrupt()` has been called. */
  readonly interrupted: boolean;
}

/** Wraps `source` so that its reading can be interrupted (see `Interruptible`); `onInterrupt` releases what it reads from (e.g. destroys the stream). */
export function interruptible<T>(source: AsyncIterable<T>, onInterrupt: () => void = () => undefined): Interruptible<T> {
  let interrupted = false;
  let wake: (() => void) | null = null;
  const stopped = new Promise<IteratorResult<T>>((resolve) => {
    wake = () => resolve({ done: true, value: undefined });
  });
  let iterator: AsyncIterator<T> | null = null;
  return {
    get interrupted() {
      return interrupted;
    },
    interrupt() {
      if (interrupted) return;
      interrupted = true;
      wake!();
      onInterrupt();
      // the abandoned read may still fail (its stream is gone): nobody is waiting for it
      void Promise.resolve(iterator?.return?.()).catch(() => undefined);
    },
    records: {
      [Symbol.asyncIterator](): AsyncIterator<T> {
        iterator = source[Symbol.asyncIterator]();
        const inner = iterator;
        return {
          next: () => {
            if (interrupted) return Promise.resolve({ done: true, value: undefined });
            const next = inner.next();
            next.catch(() => undefined);
            return Promise.race([next, stopped]);
          },
          return: async () => {
            if (!interrupted) await inner.return?.();
            return { done: true, value: undefined };
          },
        };
      },
    },
  };
}

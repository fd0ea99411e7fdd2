import { asyncScheduler, Observable, type OperatorFunction, type SchedulerLike, type Subscription } from 'rxjs';
import { requireConfig } from '../core/errors.ts';
import { subscribeToSource } from './source-subscriber.ts';

/**
 * The largest batch: 65,536 samples. A batch is held in memory until it is full, so its
 * size bounds what a stream can make training hold (`checkBatchFits` in
 * `core/workspace.ts` also bounds it against the model's width).
 */
export const MAX_BATCH = 65_536;

/** The largest batch whose slots are reserved at once (see `reserve` in `batch`). */
const MAX_RESERVE = 4096;

/** How `batch` groups samples. */
export interface BatchConfig {
  /** Emit as soon as this many samples are buffered (the batch size). */
  readonly count?: number;
  /**
   * Emit at most this many milliseconds after a batch's first sample arrived, however
   * few samples it holds. No timer runs while nothing is buffered, so an idle stream
   * costs nothing and never emits empty batches.
   */
  readonly timeMs?: number;
  /** With `timeMs` alone: the largest batch a window may grow to (default 1024). With `count`, `count` is the maximum. */
  readonly maxSize?: number;
  /** What happens to a partial batch when the source completes: emit it (default) or drop it. */
  readonly partial?: 'emit' | 'drop';
  /** Scheduler for the time window (tests pass a `TestScheduler`). */
  readonly scheduler?: SchedulerLike;
  /**
   * Each emission ends the batch being gathered: a partial batch is emitted at once (an
   * empty one is not). A cut that comes from the data (a marker in the stream) keeps the
   * batches a function of the data, where `timeMs` makes them depend on timing.
   */
  readonly cut?: Observable<unknown>;
}

/**
 * Groups a stream of samples into batches: by count, by time window, or both
 * (whichever comes first).
 *
 * A partial batch is flushed when the source completes (or dropped, if configured),
 * never when it errors: an error discards the buffer and passes the error on at once.
 * Unsubscribing clears the pending timer and releases the buffer. The buffer is
 * replaced before each emission, so a consumer that synchronously feeds the source
 * again starts a new batch instead of corrupting the one it holds.
 *
 * @example
 * samples.pipe(batch(32))                               // 32 at a time
 * samples.pipe(batch({ timeMs: 100, maxSize: 256 }))    // ≤ 100 ms latency, ≤ 256 per batch
 * @see https://rxjs.dev/api/operators/bufferCount
 * @param config the batch size, or a {@link BatchConfig}
 */
export function batch<T>(count: number): OperatorFunction<T, T[]>;
export function batch<T>(config: BatchConfig): OperatorFunction<T, T[]>;
export function batch<T>(config: number | BatchConfig): OperatorFunction<T, T[]>;
export function batch<T>(config: number | BatchConfig): OperatorFunction<T, T[]> {
  const c: BatchConfig = typeof config === 'number' ? { count: config } : config;
  const { count, timeMs, partial = 'emit', scheduler = asyncScheduler } = c;
  requireConfig(count !== undefined || timeMs !== undefined, 'batch', 'give a count, a timeMs, or both');
  requireConfig(count === undefined || (Number.isSafeInteger(count) && count >= 1), 'batch.count', `must be an integer ≥ 1, got ${String(count)}`);
  requireConfig(count === undefined || count <= MAX_BATCH, 'batch.count', `must be at most ${MAX_BATCH}, got ${String(count)}`);
  requireConfig(timeMs === undefined || (Number.isFinite(timeMs) && timeMs > 0), 'batch.timeMs', `must be a number of milliseconds > 0, got ${String(timeMs)}`);
  requireConfig(c.maxSize === undefined || (Number.isSafeInteger(c.maxSize) && c.maxSize >= 1), 'batch.maxSize', `must be an integer ≥ 1, got ${String(c.maxSize)}`);
  requireConfig(c.maxSize === undefined || c.maxSize <= MAX_BATCH, 'batch.maxSize', `must be at most ${MAX_BATCH}, got ${String(c.maxSize)}`);
  requireConfig(c.maxSize === undefined || count === undefined, 'batch.maxSize', 'give either count or maxSize: with a count, the count is the largest batch');
  requireConfig(partial === 'emit' || partial === 'drop', 'batch.partial', `must be "emit" or "drop", got ${String(partial)}`);
  const size = count ?? c.maxSize ?? 1024;
  // With a count, a batch starts with all its slots: growing one push at a time copies it
  // through arrays of 1, 17, 41, 77… slots, which at 64 samples a step was most of a step's
  // garbage. Not beyond MAX_RESERVE (V8 makes a large `new Array(n)` a slow dictionary),
  // nor for a time window, whose size is not known (that one starts with one slot). Never
  // as an array literal (`[value]`): V8 may pretenure a literal's allocation site for good
  // when a full GC in a stream's first steps finds its recent batches alive, and then puts
  // every batch in the old generation (measured at W1: the whole process ~1.4× slower;
  // see CountersCopy in pipeline/train.ts); `new Array(n)` was never pretenured in the
  // same test (`--stress-incremental-marking`), and `Array.of` cost 0.3 µs a step.
  const reserve = count !== undefined && count <= MAX_RESERVE ? count : 0;

  return (source) =>
    new Observable<T[]>((subscriber) => {
      // null between batches; see `reserve` for how a batch starts
      let buffer: T[] | null = null;
      let filled = 0;
      let timer: Subscription | null = null;
      const stopTimer = () => {
        if (timer !== null) {
          timer.unsubscribe();
          timer = null;
        }
      };
      const flush = () => {
        stopTimer();
        const full = buffer!;
        if (full.length !== filled) full.length = filled; // a partial batch of reserved slots
        buffer = null;
        filled = 0;
        subscriber.next(full);
      };
      const cuts = c.cut?.subscribe(() => {
        if (buffer !== null) flush();
      });
      subscribeToSource(source, subscriber, {
        next(value) {
          if (buffer !== null) buffer[filled++] = value;
          else {
            (buffer = new Array<T>(reserve > 1 ? reserve : 1))[0] = value;
            filled = 1;
          }
          if (filled >= size) flush();
          else if (timeMs !== undefined && timer === null) timer = scheduler.schedule(flush, timeMs);
        },
        error(err) {
          stopTimer();
          buffer = null;
          filled = 0;
          subscriber.error(err);
        },
        complete() {
          stopTimer();
          if (buffer !== null && partial === 'emit') flush();
          buffer = null;
          filled = 0;
          subscriber.complete();
        },
      });
      return () => {
        cuts?.unsubscribe();
        stopTimer();
        buffer = null;
        filled = 0;
      };
    });
}

import { Observable } from 'rxjs';
import { requireConfig } from '../core/errors.ts';
import { nextTurn } from '../pipeline/next-turn.ts';
import { Rng } from '../core/rng.ts';
import type { Sample } from '../core/sample.ts';

/** Options every simulated sensor takes. */
export interface SimulatedOptions {
  /** Seed of the stream (default 0): the same seed gives the same samples, bit for bit. */
  readonly seed?: number;
  /** Samples emitted per turn of the event loop by the Observable form (default 256). */
  readonly chunkSize?: number;
  /** Complete after this many samples (default: never). */
  readonly limit?: number;
}

/** A pull source of simulated samples: an iterator that knows when it has no more. */
export interface SampleIterator<T extends Sample = Sample> extends IterableIterator<T> {
  /** True once `limit` samples have been drawn. */
  readonly done: boolean;
  /** Samples drawn so far. */
  readonly count: number;
}

/** Checks `seed` and `limit` and gives the generator for `seed`. */
export function seeded(options: SimulatedOptions): { rng: Rng; limit: number } {
  const { seed = 0, limit = Infinity } = options;
  requireConfig(Number.isSafeInteger(seed), 'seed', `must be a safe integer, got ${seed}`);
  requireConfig(limit === Infinity || (Number.isSafeInteger(limit) && limit >= 0), 'limit', `must be an integer ≥ 0, got ${limit}`);
  return { rng: new Rng(seed), limit };
}

/** An iterator drawing `draw(n)` for n = 0, 1, ... up to `limit` samples. */
export function sampleIterator<T extends Sample>(limit: number, draw: (n: number) => T): SampleIterator<T> {
  let emitted = 0;
  const samples: SampleIterator<T> = {
    get done() {
      return emitted >= limit;
    },
    get count() {
      return emitted;
    },
    next(): IteratorResult<T> {
      if (emitted >= limit) return { done: true, value: undefined };
      const value = draw(emitted);
      emitted++;
      return { done: false, value };
    },
    [Symbol.iterator]() {
      return samples;
    },
  };
  return samples;
}

/**
 * The Observable form of a pull source of samples: `chunkSize` samples per turn of the
 * event loop, yielding (`nextTurn`: `setImmediate`, or a message in a browser) between chunks so timers, I/O and signals keep
 * being served however fast the consumers are. Each subscription gets its own iterator
 * from `make` (so the same seed gives the same samples to each); nothing is emitted
 * synchronously; unsubscribing cancels the pending chunk.
 */
export function chunked<T>(make: () => Iterator<T> & { readonly done: boolean }, chunkSize = 256): Observable<T> {
  requireConfig(Number.isSafeInteger(chunkSize) && chunkSize >= 1, 'chunkSize', `must be an integer ≥ 1, got ${chunkSize}`);
  return new Observable<T>((subscriber) => {
    const samples = make();
    let cancel: (() => void) | null = null;
    const emitChunk = () => {
      cancel = null;
      for (let i = 0; i < chunkSize && !subscriber.closed; i++) {
        const next = samples.next();
        if (next.done === true) {
          subscriber.complete();
          return;
        }
        subscriber.next(next.value);
      }
      if (subscriber.closed) return;
      // the limit reached exactly at the end of a chunk completes now, not a turn later
      if (samples.done) subscriber.complete();
      else cancel = nextTurn(emitChunk);
    };
    cancel = nextTurn(emitChunk);
    return () => {
      cancel?.();
      cancel = null;
    };
  });
}

/** Checks a `[lo, hi]` range option. */
export function checkRange(field: string, range: readonly [number, number]): void {
  const [lo, hi] = range;
  requireConfig(Number.isFinite(lo) && Number.isFinite(hi) && lo <= hi, field, `must be a range [lo, hi] with lo ≤ hi, got [${lo}, ${hi}]`);
}

/** Checks a noise level (a standard deviation ≥ 0). */
export function checkNoise(noise: number, field = 'noise'): void {
  requireConfig(Number.isFinite(noise) && noise >= 0, field, `must be a finite number ≥ 0, got ${noise}`);
}

/** How a class label is given as a target: `[k]`-style binary `[0|1]` (two classes), or one-hot over the classes. */
export type LabelEncoding = 'binary' | 'one-hot';

export function encodeLabel(label: number, classes: number, encoding: LabelEncoding): number[] {
  if (encoding === 'binary') return [label];
  const y = new Array<number>(classes).fill(0);
  y[label] = 1;
  return y;
}

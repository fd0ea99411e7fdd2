import { requireConfig } from '../core/errors.ts';
import type { LabelledRecord } from '../core/label-join.ts';
import { Rng } from '../core/rng.ts';
import type { Sample } from '../core/sample.ts';

/** How `delayLabels` delays the labels of a stream of samples. */
export interface DelayLabelsOptions {
  /** Samples that come between a sample's features and its label, at least (an integer ≥ 0). */
  readonly delay: number;
  /** Up to this many more, at random (default 0): labels then come out of order. */
  readonly jitter?: number;
  /** The fraction of labels that never come (default 0). */
  readonly lost?: number;
  /** Seed of the jitter and the losses (default 0). */
  readonly seed?: number;
  /** The id field of both records (default `id`). */
  readonly idField?: string;
}

/**
 * A deployment's delayed labels, simulated from any stream of samples: sample i becomes a
 * features record `{id: i, x}` at once and a label record `{id: i, y}` (marked `stream:
 * 'labels'`) `delay` (+ up to `jitter`) samples later; a `lost` fraction never get one.
 * Seeded, so a stream and its labels are the same on every run (and on a resume). The
 * labels still due when the samples end come after them, in order of when they were due.
 *
 * @example
 * const records = delayLabels(michaelisMenten({ seed: 1, limit: 10_000 }), { delay: 50, jitter: 20, lost: 0.01 });
 * // → joinLabels(new LabelJoin({ idField: 'id', timeoutSamples: 200 }), predict)
 */
export function delayLabels(samples: Iterable<Sample>, options: DelayLabelsOptions): Iterable<LabelledRecord> {
  const { delay, jitter = 0, lost = 0, seed = 0, idField = 'id' } = options;
  requireConfig(Number.isSafeInteger(delay) && delay >= 0, 'delay', `must be an integer ≥ 0 (samples), got ${String(delay)}`);
  requireConfig(Number.isSafeInteger(jitter) && jitter >= 0, 'jitter', `must be an integer ≥ 0 (samples), got ${String(jitter)}`);
  requireConfig(typeof lost === 'number' && lost >= 0 && lost <= 1, 'lost', `must be a fraction from 0 to 1, got ${String(lost)}`);
  return {
    *[Symbol.iterator]() {
      const rng = new Rng(seed);
      // labels due, by the sample index after which they come (a small sorted queue: due times are near each other)
      const due: { at: number; id: number; y: Sample['y'] }[] = [];
      let i = 0;
      const labelsDue = function* (upTo: number) {
        while (due.length > 0 && due[0].at <= upTo) {
          const { id, y } = due.shift()!;
          yield { value: { [idField]: id, y: typeof y === 'number' ? y : Array.from(y) }, origin: { source: 'simulated labels', line: id + 1 }, stream: 'labels' } satisfies LabelledRecord;
        }
      };
      for (const sample of samples) {
        yield { value: { [idField]: i, x: Array.from(sample.x) }, origin: { source: 'simulated', line: i + 1 } } satisfies LabelledRecord;
        const extra = jitter === 0 ? 0 : Math.floor(rng.next() * (jitter + 1));
        const gone = lost > 0 && rng.next() < lost;
        if (!gone) {
          const at = i + delay + extra;
          let k = due.length;
          while (k > 0 && (due[k - 1].at > at || (due[k - 1].at === at && due[k - 1].id > i))) k--;
          due.splice(k, 0, { at, id: i, y: sample.y });
        }
        yield* labelsDue(i);
        i++;
      }
      yield* labelsDue(Infinity);
    },
  };
}

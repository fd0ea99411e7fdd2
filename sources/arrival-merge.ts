import type { LabelledRecord } from '../core/label-join.ts';
import type { IngestRecord } from '../core/record.ts';

/** Options of `mergeArrivals`. */
export interface MergeArrivalsOptions {
  /**
   * Features still waiting for their labels (`() => join.stats().waiting`): once the
   * features end, the merge goes on while some wait, and ends when none do (or the labels
   * end). Without it, the merge ends with the features.
   */
  readonly waiting?: () => number;
}

/**
 * Merges a features source with a live labels stream (e.g. the labels sensors send to
 * `/ingest`) in the order their records arrive, each record of `labels` marked `stream:
 * 'labels'` for `joinLabels`. Neither side waits for the other: a feature is passed on as
 * soon as it is read, a label as soon as it comes. Pulls each side one record ahead at
 * most. Unlike `mergeLabelled` (two files, a deterministic order), the order depends on
 * timing: a checkpoint's source offset cannot place a resume in it.
 *
 * @example
 * const records = mergeArrivals(mqttFeatures, relay, { waiting: () => join.stats().waiting });
 */
export function mergeArrivals(features: AsyncIterable<IngestRecord>, labels: AsyncIterable<IngestRecord>, options: MergeArrivalsOptions = {}): AsyncIterable<LabelledRecord> {
  return {
    async *[Symbol.asyncIterator]() {
      const sides = { features: features[Symbol.asyncIterator](), labels: labels[Symbol.asyncIterator]() };
      type Side = keyof typeof sides;
      // one handler per pull: a side that is slow never piles up listeners while the other streams
      const ready: ({ side: Side; result: IteratorResult<IngestRecord> } | { side: Side; error: unknown })[] = [];
      let wake: (() => void) | null = null;
      const pull = (side: Side) => {
        sides[side].next().then((result) => ready.push({ side, result }), (error: unknown) => ready.push({ side, error })).finally(() => {
          const w = wake;
          wake = null;
          w?.();
        });
      };
      const open = { features: true, labels: true };
      pull('features');
      pull('labels');
      try {
        for (;;) {
          if (!open.features && (!open.labels || (options.waiting?.() ?? 0) === 0)) return;
          while (ready.length === 0) await new Promise<void>((resolve) => { wake = resolve; });
          const item = ready.shift()!;
          if ('error' in item) throw item.error;
          if (item.result.done === true) {
            open[item.side] = false;
            continue;
          }
          pull(item.side);
          yield item.side === 'labels' ? { ...item.result.value, stream: 'labels' } as LabelledRecord : item.result.value;
        }
      } finally {
        for (const side of ['features', 'labels'] as const) if (open[side]) void sides[side].return?.()?.catch?.(() => undefined);
      }
    },
  };
}

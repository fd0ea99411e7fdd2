import type { LabelledRecord } from '../core/label-join.ts';
import type { IngestRecord } from '../core/record.ts';
import { compileTopicFilters } from './topic-filter.ts';

/** How `mergeLabelled` interleaves a features source and a labels source. */
export interface MergeLabelledOptions {
  /**
   * A field both kinds of record carry with the time they happened (a number, e.g. ms
   * since the epoch): records are taken in order of it, features first on a tie, so a
   * replay of two logs delivers each label as late as it really came. A record without a
   * usable time (missing, not a number or numeric text, not finite) keeps the place of the
   * one before it in its own source, and is marked `untimed` (the join counts it), never
   * dropped: its features or label are still good. Without it, the
   * sources take turns, one record each (when one ends, the other goes on alone).
   */
  readonly timeField?: string;
}

/**
 * Merges a features source and a labels source into one pull source of `LabelledRecord`s
 * for `joinLabels` (labels marked `stream: 'labels'`). Deterministic: the same two files
 * give the same order every time, so a checkpoint's source offset (records of the merged
 * stream) points at the same place on a resume. Pulls only as fast as it is pulled (at
 * most one record ahead per source with `timeField`).
 *
 * @example
 * const records = mergeLabelled(ndjsonFile('features.ndjson'), ndjsonFile('labels.ndjson'), { timeField: 'ts' });
 * @param features the records predictions are made on
 * @param labels the records that bring their labels later
 */
export function mergeLabelled(features: AsyncIterable<IngestRecord>, labels: AsyncIterable<IngestRecord>, options: MergeLabelledOptions = {}): AsyncIterable<LabelledRecord> {
  const { timeField } = options;
  return {
    async *[Symbol.asyncIterator]() {
      const sources = [features[Symbol.asyncIterator](), labels[Symbol.asyncIterator]()];
      const heads: (LabelledRecord | null | undefined)[] = [undefined, undefined]; // undefined: not pulled; null: ended
      const times = [-Infinity, -Infinity];
      const pull = async (i: number): Promise<void> => {
        const next = await sources[i].next();
        heads[i] = next.done === true ? null : next.value;
        if (heads[i] != null && timeField !== undefined) {
          const t = timeOf(heads[i]!, timeField);
          if (t !== null) times[i] = Math.max(times[i], t);
          // kept with its source's last time, but marked, so that it is counted (a record the
          // source could not read is turned away by the join anyway: not marked)
          else if (heads[i]!.error === undefined) heads[i] = { ...heads[i]!, untimed: true };
        }
      };
      const tag = (i: number, record: LabelledRecord): LabelledRecord => (i === 1 ? { ...record, stream: 'labels' } : record);
      try {
        if (timeField === undefined) {
          for (let turn = 0; heads[0] !== null || heads[1] !== null; turn = 1 - turn) {
            const i = heads[turn] === null ? 1 - turn : turn;
            await pull(i);
            const record = heads[i];
            if (record != null) yield tag(i, record);
          }
          return;
        }
        await pull(0);
        await pull(1);
        while (heads[0] !== null || heads[1] !== null) {
          const i = heads[1] === null || (heads[0] !== null && times[0] <= times[1]) ? 0 : 1;
          const record = heads[i]!;
          await pull(i);
          yield tag(i, record);
        }
      } finally {
        await Promise.all(sources.map(async (s) => s.return?.().catch(() => undefined)));
      }
    },
  };
}

/**
 * Marks the records of one source that are labels: those `isLabel` says are (e.g. by MQTT
 * topic, see `topicMatcher`). One MQTT subscription can carry both features and labels.
 *
 * @example
 * tagLabels(mqttSource, topicMatcher(['plant/labels']))
 */
export function tagLabels(records: AsyncIterable<IngestRecord>, isLabel: (record: IngestRecord) => boolean): AsyncIterable<LabelledRecord> {
  return {
    async *[Symbol.asyncIterator]() {
      for await (const record of records) yield isLabel(record) ? { ...record, stream: 'labels' as const } : record;
    },
  };
}

/**
 * Whether an MQTT record came on one of `filters` (MQTT topic filters: `+` one level,
 * `#` the rest, see `compileTopicFilters`), by its `origin.topic`.
 *
 * @example topicMatcher(['labels/#'])({ value: {}, origin: { topic: 'labels/line-1' } }) // true
 */
export function topicMatcher(filters: readonly string[]): (record: IngestRecord) => boolean {
  const first = compileTopicFilters(filters);
  return (record) => {
    const topic = record.origin.topic;
    return topic !== undefined && first(topic) >= 0;
  };
}

function timeOf(record: IngestRecord, field: string): number | null {
  const value = record.value;
  if (typeof value !== 'object' || value === null) return null;
  const raw = (value as Record<string, unknown>)[field];
  const t = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
  return Number.isFinite(t) ? t : null;
}

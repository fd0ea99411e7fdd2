import { describe, expect, it } from 'vitest';
import type { IngestRecord } from '../../core/record.ts';
import { delayLabels } from '../../sources/delayed-labels.ts';
import { mergeLabelled, topicMatcher } from '../../sources/labelled.ts';
import { topicFiltersOverlap } from '../../sources/topic-filter.ts';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { LABEL_COUNTER_NAMES, LabelJoin } from '../../core/label-join.ts';
import { labelSummary } from '../../runtime/delayed-labels.ts';

async function* records(values: readonly unknown[], source: string): AsyncGenerator<IngestRecord> {
  for (const [i, value] of values.entries()) yield { value, origin: { source, line: i + 1 } };
}
async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of iterable) out.push(x);
  return out;
}
const show = (r: IngestRecord & { stream?: string }) => `${r.stream === 'labels' ? 'L' : 'F'}${(r.value as { id: number }).id}`;

describe('mergeLabelled', () => {
  it('without a time field, the sources take turns; when one ends the other goes on alone', async () => {
    const merged = await collect(mergeLabelled(records([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }], 'f'), records([{ id: 1 }, { id: 2 }], 'l')));
    expect(merged.map(show)).toEqual(['F1', 'L1', 'F2', 'L2', 'F3', 'F4']);
  });

  it('with a time field, in order of it (features first on a tie; a record without a time keeps its place)', async () => {
    const f = [{ id: 1, ts: 0 }, { id: 2, ts: 5 }, { id: 3, ts: 'x' }, { id: 4, ts: 9 }];
    const l = [{ id: 1, ts: '5' }, { id: 2, ts: 8 }, { id: 3, ts: 20 }];
    const merged = await collect(mergeLabelled(records(f, 'f'), records(l, 'l'), { timeField: 'ts' }));
    expect(merged.map(show)).toEqual(['F1', 'F2', 'F3', 'L1', 'L2', 'F4', 'L3']);
  });

  it('with a time field, marks each record without a usable time (missing, non-numeric text, not finite) as untimed, keeps it, and the join counts it', async () => {
    // before: such a record silently took its source's last time; nothing counted it
    const f = [{ id: 1, ts: 0 }, { id: 2 }, { id: 3, ts: 'soon' }, { id: 4, ts: 1e999 }, { id: 5, ts: '7' }, { id: 6, ts: null }];
    const l = [{ id: 1, ts: 1 }, { id: 2, ts: Number.NaN }, { id: 3, ts: 9 }];
    const merged = await collect(mergeLabelled(records(f, 'f'), records(l, 'l'), { timeField: 'ts' }));
    expect(merged.map(show)).toEqual(['F1', 'F2', 'F3', 'F4', 'L1', 'L2', 'F5', 'F6', 'L3']);
    expect(merged.filter((r) => r.untimed === true).map(show)).toEqual(['F2', 'F3', 'F4', 'L2', 'F6']);
    const join = new LabelJoin({ idField: 'id' });
    for (const r of merged) r.stream === 'labels' ? join.label(r) : join.features(r, () => ({ z: Float64Array.of(0), a: Float64Array.of(0), step: 0 }));
    expect(join.stats()).toMatchObject({ untimed: 5, joined: 3 });
    expect(LABEL_COUNTER_NAMES).toContain('untimed'); // so /metrics has streamgrad_labels_total{kind="untimed"}
    expect(labelSummary(join.stats(), 'dead-letter')).toMatch(/; 5 without a usable time \(kept in their place\)$/);
    // a checkpoint from before the counter restores with none counted
    const { untimed: _untimed, ...older } = join.state().counters;
    const resumed = new LabelJoin({ idField: 'id' });
    resumed.restore({ ...join.state(), counters: older as typeof join.counters });
    expect(resumed.stats().untimed).toBe(0);
  });

  it('closes both sources when the consumer stops early', async () => {
    const closed: string[] = [];
    const source = (name: string): AsyncIterable<IngestRecord> => ({
      [Symbol.asyncIterator]: () => {
        const inner = records([{ id: 1 }, { id: 2 }], name);
        return { next: () => inner.next(), return: async () => { closed.push(name); return { done: true, value: undefined }; } };
      },
    });
    for await (const _ of mergeLabelled(source('f'), source('l'))) break;
    expect(closed.sort()).toEqual(['f', 'l']);
  });
});

describe('topicMatcher', () => {
  it('matches MQTT topic filters by their origin topic (+ one level, # the rest)', () => {
    const is = topicMatcher(['plant/+/labels', 'verdicts/#']);
    const on = (topic?: string): IngestRecord => ({ value: {}, origin: topic === undefined ? {} : { topic } });
    expect([on('plant/a/labels'), on('verdicts'), on('verdicts/x/y')].map(is)).toEqual([true, true, true]);
    expect([on('plant/a/b/labels'), on('plant/a/features'), on('other'), on()].map(is)).toEqual([false, false, false, false]);
  });
});

describe('topicFiltersOverlap', () => {
  it('is true when some topic matches both filters (a broker would deliver it once per subscription), and agrees with topicMatcher', () => {
    const cases: [string, string, boolean][] = [
      ['plant/#', 'plant/labels/#', true], ['#', 'anything', true], ['plant/+', 'plant/labels', true], ['plant/labels/#', 'plant/labels', true],
      ['plant/+/x', 'plant/labels/+', true], ['plant/features/#', 'plant/labels/#', false], ['plant/+/features', 'plant/labels/#', true],
      ['plant/+/features', 'plant/labels/verdict', false], ['a/b', 'a/b/c', false], ['a/+', 'a/b/c', false], ['a', 'a', true],
    ];
    for (const [a, b, expected] of cases) {
      expect(topicFiltersOverlap(a, b), `${a} ~ ${b}`).toBe(expected);
      expect(topicFiltersOverlap(b, a), `${b} ~ ${a}`).toBe(expected);
    }
    // a witness topic for the overlapping ones matches both, by the matcher the run uses
    const on = (topic: string): IngestRecord => ({ value: {}, origin: { topic } });
    expect(topicMatcher(['plant/#'])(on('plant/labels/x')) && topicMatcher(['plant/labels/#'])(on('plant/labels/x'))).toBe(true);
  });

  it('streamgrad train refuses overlapping features and labels filters at start, exit 2 naming --labels-topic (before: each label came twice, the second a SG_ERR_DUPLICATE_ID dead letter)', async () => {
    const work = mkdtempSync(join(tmpdir(), 'streamgrad-topics-'));
    try {
      const run = await runCli(work, ['train', '--mqtt', 'mqtt://127.0.0.1:1', '--topic', 'plant/#', '--labels-topic', 'plant/labels/#', '--id-field', 'id',
        '--features', 'a,b', '--targets', 'y', '--layers', '2,1:linear']);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(/^streamgrad: --labels-topic: "plant\/labels\/#" overlaps the features' topic filter "plant\/#": /);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('delayLabels', () => {
  const samples = Array.from({ length: 500 }, (_, i) => ({ x: [i], y: [2 * i] }));

  it('sends each label delay to delay + jitter samples after its features, seeded; lost ones never come', () => {
    const out = [...delayLabels(samples, { delay: 10, jitter: 5, lost: 0.1, seed: 4 })];
    expect([...delayLabels(samples, { delay: 10, jitter: 5, lost: 0.1, seed: 4 })]).toEqual(out);
    const featuresAt = new Map<number, number>();
    let seen = -1;
    let labels = 0;
    for (const r of out) {
      const { id, y } = r.value as { id: number; y: number[] };
      if (r.stream !== 'labels') { featuresAt.set(id, ++seen); continue; }
      labels++;
      expect(y).toEqual([2 * id]);
      if (seen < samples.length - 1) { // after the end, the rest come at once
        expect(seen - featuresAt.get(id)!).toBeGreaterThanOrEqual(10);
        expect(seen - featuresAt.get(id)!).toBeLessThanOrEqual(15);
      }
    }
    expect(featuresAt.size).toBe(500);
    expect(labels).toBeGreaterThan(420);
    expect(labels).toBeLessThan(480);
  });

  it('refuses bad settings with SG_ERR_CONFIG naming the field', () => {
    expect(() => delayLabels(samples, { delay: -1 })).toThrow(expect.objectContaining({ code: 'SG_ERR_CONFIG', field: 'delay' }));
    expect(() => delayLabels(samples, { delay: 1, lost: 2 })).toThrow(expect.objectContaining({ field: 'lost' }));
  });
});

import { describe, expect, it } from 'vitest';
import { ModelVersions } from '../../server/model-versions.ts';

/** The versions store behind predictions (issue 12): monotonic, immutable, bounded, labels with a history for rollback. */
const topology = { inputSize: 2, layers: [{ units: 1, activation: 'linear' as const }] };
const params = (v: number) => Float64Array.of(v, v, v);

describe('ModelVersions', () => {
  it('numbers versions 1, 2, 3…; the same step, samples and weights make none; a version is a copy, never changed by later writes', () => {
    const store = new ModelVersions('m', topology);
    const live = params(1);
    expect(store.offer(live, null, { step: 0, samples: 0, time: 10 })?.version).toBe(1);
    expect(store.offer(live, null, { step: 0, samples: 0, time: 11 })).toBeNull();
    live[0] = 2; // a reset: the same step, other weights
    expect(store.offer(live, null, { step: 0, samples: 0, time: 12 })?.version).toBe(2);
    live[0] = 3;
    expect(store.resolve(2)).toMatchObject({ version: 2 });
    expect(Array.from((store.resolve(2) as { artifact: { model: { params: Float64Array } } }).artifact.model.params)).toEqual([2, 1, 1]);
    expect(store.resolve('latest')).toBe(store.resolve(undefined));
    expect(store.resolve(9)).toMatchObject({ code: 'SG_ERR_UNKNOWN_VERSION' });
    expect(store.resolve('stable')).toMatchObject({ code: 'SG_ERR_UNKNOWN_VERSION' });
    expect(store.resolve('Not A Label')).toMatchObject({ code: 'SG_ERR_SCHEMA' });
  });

  it('keeps the last `keep` versions plus labelled ones (and their history, `keep` deep); forgotten versions are reported once', () => {
    const evicted: number[] = [];
    const store = new ModelVersions('m', topology, { keep: 3, onEvict: (v) => evicted.push(v.version) });
    for (let i = 1; i <= 4; i++) store.offer(params(i), null, { step: i, samples: i, time: i });
    expect(evicted).toEqual([1]);
    expect(store.promote(2)).toEqual({ label: 'stable', version: 2, previous: null });
    expect(store.promote(4, 'canary')).toEqual({ label: 'canary', version: 4, previous: null });
    for (let i = 5; i <= 8; i++) store.offer(params(i), null, { step: i, samples: i, time: i });
    // 2 and 4 are held by labels; 3 and 5 went
    expect(evicted).toEqual([1, 3, 5]);
    expect(store.list().map((v) => [v.version, v.labels])).toEqual([[2, ['stable']], [4, ['canary']], [6, []], [7, []], [8, []]]);
    expect(store.promote(7)).toEqual({ label: 'stable', version: 7, previous: 2 });
    expect(store.rollback()).toEqual({ label: 'stable', version: 2, from: 7 });
    expect(store.rollback()).toMatchObject({ code: 'SG_ERR_STATE' });
    expect(store.promote(1)).toMatchObject({ code: 'SG_ERR_UNKNOWN_VERSION' });
    expect(store.promote(7, 'latest')).toMatchObject({ code: 'SG_ERR_SCHEMA' });
    // a label's history is bounded too: promoting 4 versions with keep 3 lets the oldest go
    store.promote(6);
    store.promote(8);
    store.promote(7);
    expect(store.labelled()).toEqual({ stable: 7, canary: 4 });
    for (let i = 9; i <= 12; i++) store.offer(params(i), null, { step: i, samples: i, time: i });
    expect(store.list().length).toBeLessThanOrEqual(3 + 3 + 1);
    expect(new Set(evicted).size).toBe(evicted.length);
  });
});

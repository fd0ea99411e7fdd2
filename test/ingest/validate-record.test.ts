import { from, lastValueFrom, Subject, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { validateRecords } from '../../operators/validate-record.ts';
import { MemoryDeadLetters } from '../../core/dead-letter.ts';
import { StreamgradError } from '../../core/errors.ts';
import { FeatureMap } from '../../core/features.ts';
import { createIngestCounters, type IngestRecord } from '../../core/record.ts';
import type { Sample } from '../../core/sample.ts';

const shape = { inputs: 2, outputs: 1 };
const rec = (value: unknown, line = 1): IngestRecord => ({ value, origin: { source: 'test', line, raw: JSON.stringify(value) ?? String(value) } });
const run = async (records: IngestRecord[], options: Partial<Parameters<typeof validateRecords>[0]> = {}) => {
  const deadLetters = new MemoryDeadLetters();
  const counters = createIngestCounters();
  const out = await lastValueFrom(from(records).pipe(validateRecords({ shape, deadLetters, counters, clock: () => new Date(0), ...options }), toArray()));
  return { out, letters: deadLetters.letters, counters };
};

describe('validateRecords: positional samples', () => {
  it.each([
    ['NaN', { x: [0.1, NaN], y: [1] }, 'SG_ERR_NONFINITE_INPUT', 'x[1]'],
    ['Infinity', { x: [0.1, 2], y: [Infinity] }, 'SG_ERR_NONFINITE_INPUT', 'y[0]'],
    ['short x', { x: [1], y: [1] }, 'SG_ERR_ARITY', 'x'],
    ['long x', { x: [1, 2, 3], y: [1] }, 'SG_ERR_ARITY', 'x'],
    ['string', { x: ['1.0', 2], y: [1] }, 'SG_ERR_TYPE', 'x[0]'],
    ['null', { x: [null, 2], y: [1] }, 'SG_ERR_TYPE', 'x[0]'],
    ['boolean', { x: [1, true], y: [1] }, 'SG_ERR_TYPE', 'x[1]'],
    ['missing y', { x: [1, 2] }, 'SG_ERR_MISSING', 'y'],
    ['not an object', 42, 'SG_ERR_TYPE', 'sample'],
  ])('%s → %s at %s, dead-lettered with its line and raw text; the stream goes on', async (_, bad, code, field) => {
    const { out, letters, counters } = await run([rec({ x: [1, 2], y: [3] }, 1), rec(bad, 2), rec({ x: [4, 5], y: 6 }, 3)]);
    expect(out.map((s) => s.x)).toEqual([[1, 2], [4, 5]]);
    expect(letters).toEqual([{ time: '1970-01-01T00:00:00.000Z', code, field, message: expect.any(String), source: 'test', line: 2, raw: JSON.stringify(bad) }]);
    expect(counters).toMatchObject({ read: 3, accepted: 2, rejected: 1, rejectedByCode: { [code]: 1 } });
  });

  it('passes a source\'s parse errors on as dead letters (bad JSON keeps its line)', async () => {
    const bad: IngestRecord = { error: new StreamgradError('SG_ERR_BAD_JSON', 'line 7: Unexpected token', 'line'), origin: { line: 7, raw: '{"x":' } };
    const { out, letters } = await run([bad, rec({ x: [1, 2], y: [0] }, 8)]);
    expect(out).toHaveLength(1);
    expect(letters[0]).toMatchObject({ code: 'SG_ERR_BAD_JSON', field: 'line', line: 7, raw: '{"x":' });
  });

  it('cuts a huge raw text in the dead letter and says so', async () => {
    const { letters } = await run([{ value: { x: 'y'.repeat(10_000) }, origin: { raw: 'y'.repeat(10_000) } }]);
    expect(letters[0].raw).toHaveLength(4096);
    expect(letters[0].truncated).toBe(true);
  });

  it('fails the stream when the dead-letter sink throws (a rejection is never lost silently)', async () => {
    const sink = { write: () => { throw new Error('ENOSPC'); }, close: async () => undefined };
    await expect(lastValueFrom(from([rec({ x: [1] }, 1)]).pipe(validateRecords({ shape, deadLetters: sink })))).rejects.toThrow('ENOSPC');
  });

  it('refuses a feature map that does not fit the model, before anything subscribes', () => {
    const features = new FeatureMap({ features: ['a'], targets: ['y'] });
    expect(() => validateRecords({ shape, features })).toThrow(/features: 1 features → 1 targets do not fit a model of 2 inputs/);
  });
});

describe('validateRecords: named records through a FeatureMap', () => {
  const features = () => new FeatureMap({ features: ['a', 'b'], targets: ['y'] });

  it('maps by name: key order is irrelevant, unknown keys are ignored and counted', async () => {
    const { out, counters } = await run([rec({ b: 2, y: 3, a: 1 }), rec({ id: 'k', a: 4, b: 5, y: 6, note: 'x' })], { features: features() });
    expect(out.map((s) => [Array.from(s.x), Array.from(s.y as ArrayLike<number>)])).toEqual([[[1, 2], [3]], [[4, 5], [6]]]);
    expect(counters.unknownKeys).toBe(2);
  });

  it.each([
    [{ a: 1, y: 3 }, 'SG_ERR_MISSING', 'b'],
    [{ a: 1, b: 2 }, 'SG_ERR_MISSING', 'y'],
    [{ a: '1', b: 2, y: 3 }, 'SG_ERR_TYPE', 'a'],
    [{ a: null, b: 2, y: 3 }, 'SG_ERR_TYPE', 'a'],
    [{ a: 1, b: 2, y: [3] }, 'SG_ERR_TYPE', 'y'],
    [[1, 2, 3], 'SG_ERR_TYPE', 'record'],
    [JSON.parse('{"__proto__": {"a": 1}, "b": 2, "y": 3}'), 'SG_ERR_MISSING', 'a'],
  ])('%j → %s at %s', async (bad, code, field) => {
    const { out, letters } = await run([rec(bad)], { features: features() });
    expect(out).toHaveLength(0);
    expect(letters[0]).toMatchObject({ code, field });
    expect(({} as Record<string, unknown>).a).toBeUndefined(); // Object.prototype untouched
  });

  it('missing policy: mean imputes the running mean of observed values, last repeats the last one; before any value, both reject', async () => {
    const map = new FeatureMap({ features: ['a', 'b'], targets: ['y'], missing: { a: 'mean', b: 'last' } });
    const { out, letters, counters } = await run([rec({ b: 1, y: 0 }, 1), rec({ a: 2, b: 1, y: 0 }, 2), rec({ a: 4, b: 7, y: 0 }, 3), rec({ y: 0 }, 4), rec({ a: 9, y: 0 }, 5)], { features: map });
    expect(letters).toEqual([expect.objectContaining({ line: 1, code: 'SG_ERR_MISSING', field: 'a', message: 'a: missing, and no value seen yet to impute (mean)' })]);
    expect(out.map((s) => Array.from(s.x))).toEqual([[2, 1], [4, 7], [3, 7], [9, 7]]);
    expect(counters.imputed).toBe(3);
    // imputed values do not feed the statistics: the mean is still that of 2, 4, 9
    expect(map.state().mean[0]).toBe(5);
    expect(map.state().seen).toEqual([3, 2]);
  });

  it('a rejected record changes no imputation statistic', async () => {
    const map = new FeatureMap({ features: ['a', 'b'], targets: ['y'], missing: 'mean' });
    await run([rec({ a: 1, b: 1, y: 0 }), rec({ a: 100, b: 'oops', y: 0 }), rec({ a: 100, b: 1, y: NaN })], { features: map });
    expect(map.state()).toEqual({ features: ['a', 'b'], seen: [1, 1], mean: [1, 1], last: [1, 1] });
  });

  it('one-hot encodes a categorical target over the stated classes; an unknown label is a type error', async () => {
    const map = new FeatureMap({ features: ['a', 'b'], targets: ['weather'], classes: ['rain', 'sun', 'fog'] });
    const { out, letters } = await run([rec({ a: 1, b: 2, weather: 'sun' }), rec({ a: 1, b: 2, weather: 'hail' })], { features: map, shape: { inputs: 2, outputs: 3 } });
    expect(Array.from(out[0].y as ArrayLike<number>)).toEqual([0, 1, 0]);
    expect(letters[0]).toMatchObject({ code: 'SG_ERR_TYPE', field: 'weather', message: 'weather: "hail" is not one of the classes (rain, sun, fog)' });
  });

  it('parses text cells strictly: "" is missing, NaN/inf/1e309 non-finite, words a type error', async () => {
    const map = new FeatureMap({ features: ['a', 'b'], targets: ['y'] });
    const cells = (a: string, line: number): IngestRecord => ({ value: { a, b: '2', y: '3' }, origin: { line }, text: true });
    const { out, letters } = await run([cells(' 1.5 ', 1), cells('', 2), cells('NaN', 3), cells('-inf', 4), cells('1e309', 5), cells('abc', 6), cells('0x10', 7), cells('.5e-1', 8)], { features: map });
    expect(out.map((s) => s.x[0])).toEqual([1.5, 0.05]);
    expect(letters.map((l) => [l.line, l.code])).toEqual([
      [2, 'SG_ERR_MISSING'], [3, 'SG_ERR_NONFINITE_INPUT'], [4, 'SG_ERR_NONFINITE_INPUT'], [5, 'SG_ERR_NONFINITE_INPUT'], [6, 'SG_ERR_TYPE'], [7, 'SG_ERR_TYPE'],
    ]);
  });

  it('refuses bad feature lists at construction, naming the field', () => {
    expect(() => new FeatureMap({ features: [], targets: ['y'] })).toThrow(/features: must be a non-empty list/);
    expect(() => new FeatureMap({ features: ['a', 'a'], targets: ['y'] })).toThrow(/features: names must be distinct/);
    expect(() => new FeatureMap({ features: ['a'], targets: ['a'] })).toThrow(/targets: "a" is also a feature/);
    expect(() => new FeatureMap({ features: ['a'], targets: ['y', 'z'], classes: ['p', 'q'] })).toThrow(/classes: a categorical target is one field/);
    expect(() => new FeatureMap({ features: ['a'], targets: ['y'], missing: { b: 'mean' } })).toThrow(/missing\.b: is not a feature/);
    expect(() => new FeatureMap({ features: ['a'], targets: ['y'], missing: 'median' as never })).toThrow(/missing\.a: must be one of reject, mean, last/);
  });

  it('state() and restore() round-trip the imputation statistics; another feature list is refused', () => {
    const map = new FeatureMap({ features: ['a', 'b'], targets: ['y'], missing: 'last' });
    map.map({ a: 1, b: 2, y: 0 });
    const copy = new FeatureMap({ features: ['a', 'b'], targets: ['y'], missing: 'last' });
    copy.restore(JSON.parse(JSON.stringify(map.state())));
    expect(copy.state()).toEqual(map.state());
    expect(Array.from(copy.map({ y: 1 }).sample!.x)).toEqual([1, 2]);
    expect(() => new FeatureMap({ features: ['b', 'a'], targets: ['y'] }).restore(map.state())).toThrow(/saved feature list \[a, b\] is not this map's \[b, a\]/);
  });
});

describe('validateRecords: marbles', () => {
  const good = rec({ x: [1, 2], y: [3] });
  const bad = rec({ x: [1], y: [3] });
  // a sample names its record (for per-sample output)
  const passed = { ...(good.value as Sample), origin: good.origin };
  const testScheduler = () => new TestScheduler((actual, expected) => expect(actual).toEqual(expected));

  it('happy path, rejections in between, completion and errors pass through', () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<IngestRecord>('a-b-a-|', { a: good, b: bad });
      expectObservable(source.pipe(validateRecords({ shape }))).toBe('a---a-|', { a: passed });
      expectSubscriptions(source.subscriptions).toBe('^-----!');
      const failing = cold<IngestRecord>('a-#', { a: good }, new Error('boom'));
      expectObservable(failing.pipe(validateRecords({ shape }))).toBe('a-#', { a: passed }, new Error('boom'));
      expectObservable(cold<IngestRecord>('|').pipe(validateRecords({ shape }))).toBe('|');
      expectObservable(cold<IngestRecord>('-').pipe(validateRecords({ shape }))).toBe('-');
    });
  });

  it('early unsubscribe ends the source subscription', () => {
    testScheduler().run(({ hot, expectObservable, expectSubscriptions }) => {
      const source = hot<IngestRecord>('-a-a-a-a-', { a: good });
      expectObservable(source.pipe(validateRecords({ shape })), '^--!').toBe('-a-', { a: passed });
      expectSubscriptions(source.subscriptions).toBe('^--!');
    });
  });

  it('stays synchronous: a record is through before the next one is pushed', () => {
    const input = new Subject<IngestRecord>();
    const seen: Sample[] = [];
    input.pipe(validateRecords({ shape })).subscribe((s) => seen.push(s));
    input.next(good);
    expect(seen).toHaveLength(1);
  });
});

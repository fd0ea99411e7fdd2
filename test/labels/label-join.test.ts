import fc from 'fast-check';
import { from, lastValueFrom, Subject, toArray } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { describe, expect, it } from 'vitest';
import { joinLabels } from '../../operators/join-labels.ts';
import { invalidSummary } from '../../runtime/delayed-labels.ts';
import { StreamgradError } from '../../core/errors.ts';
import type { FeaturePredictor, FeatureTimePrediction } from '../../core/feature-time-prediction.ts';
import { FeatureMap } from '../../core/features.ts';
import { DEFAULT_PENDING_CAPACITY, GONE_IDS_PER_CAPACITY, goneIdsBound, type JoinedRecord, labelCheck, LabelJoin, type LabelJoinConfig, type LabelledRecord, MAX_GONE_IDS, MAX_PENDING_CAPACITY } from '../../core/label-join.ts';

/** A predictor that stamps each prediction with a running number, so a test can tell which moment made it. */
function stamping(): FeaturePredictor & { made: number } {
  const predict = ((record) => {
    if (record.error !== undefined) return record.error;
    const x = (record.value as { x?: unknown }).x;
    if (!Array.isArray(x)) return new StreamgradError('SG_ERR_MISSING', 'x: missing', 'x');
    predict.made++;
    return { z: Float64Array.of(predict.made), a: Float64Array.of(predict.made), step: predict.made } satisfies FeatureTimePrediction;
  }) as FeaturePredictor & { made: number };
  predict.made = 0;
  return predict;
}

let line = 0;
const features = (id: unknown, x: number[] = [1]): LabelledRecord => ({ value: { id, x }, origin: { source: 'f', line: ++line } });
const label = (id: unknown, y: number[] = [0]): LabelledRecord => ({ value: { id, y }, origin: { source: 'l', line: ++line }, stream: 'labels' });

function feed(join: LabelJoin, records: readonly LabelledRecord[], predict: FeaturePredictor = stamping()): JoinedRecord[] {
  const out: JoinedRecord[] = [];
  for (const r of records) out.push(...(r.stream === 'labels' ? join.label(r) : join.features(r, predict)));
  return out;
}

const codes = (out: readonly JoinedRecord[]) => out.map((r) => r.error?.code ?? 'joined');

describe('LabelJoin', () => {
  it('joins a label with its features, carrying the prediction made when the features came', () => {
    const join = new LabelJoin({ idField: 'id' });
    const predict = stamping();
    expect(join.features(features('a', [1, 2]), predict)).toEqual([]);
    expect(join.features(features('b', [3, 4]), predict)).toEqual([]);
    const [b] = join.label(label('b', [7]));
    expect(b.value).toEqual({ x: [3, 4], y: [7] }); // the id is not a field of the sample
    expect(b.prediction!.a[0]).toBe(2); // b's own prediction, made second
    expect(b.origin).toMatchObject({ source: 'f' }); // the features record names the sample
    const [a] = join.label(label('a', [5]));
    expect(a.prediction!.a[0]).toBe(1);
    expect(join.counters).toMatchObject({ features: 2, labels: 2, joined: 2, outOfOrder: 1, early: 0 });
    expect(join.balance()).toBe(0);
  });

  it('with labelFields, a label brings only those fields: the features the prediction was made with are the ones trained on', () => {
    const join = new LabelJoin({ idField: 'id', labelFields: ['y'] });
    const predict = stamping();
    const out = feed(join, [
      { value: { id: 1, x: [1], t: 100, y: [9] }, origin: { source: 'f', line: 1 } }, // a stale target in the features
      { value: { id: 2, x: [2], t: 200 }, origin: { source: 'f', line: 2 } },
      { value: { id: 1, y: [3], x: [7], t: 150, note: 'late' }, origin: { source: 'l', line: 1 }, stream: 'labels' }, // alters a feature
      { value: { id: 2, t: 250 }, origin: { source: 'l', line: 2 }, stream: 'labels' }, // no target at all
    ], predict);
    expect(out.map((r) => r.value)).toEqual([{ x: [1], t: 100, y: [3] }, { x: [2], t: 200 }]);
    // without labelFields (a join that knows nothing of the model), the label's fields go over the features'
    const plain = feed(new LabelJoin({ idField: 'id' }), [features(5, [1]), { value: { id: 5, y: [3], x: [7] }, origin: { source: 'l', line: 3 }, stream: 'labels' }]);
    expect(plain.map((r) => r.value)).toEqual([{ x: [7], y: [3] }]);
    // the default label of expired features goes through the same rule
    const expiring = new LabelJoin({ idField: 'id', labelFields: ['y'], timeoutSamples: 1, expired: 'default', defaultLabel: { y: [0], x: [42] } });
    const defaulted = feed(expiring, [features(6, [1]), features(7, [2])]);
    expect(defaulted.map((r) => r.value)).toEqual([{ x: [1], y: [0] }]);
  });

  it('treats a number id and its decimal text as one id (CSV cells are text)', () => {
    const join = new LabelJoin({ idField: 'id' });
    feed(join, [features(17)]);
    expect(codes(join.label({ value: { id: '17', y: '3' }, origin: {} }))).toEqual(['joined']);
  });

  it.each([
    ['drop', [], { dropped: 1 }],
    ['dead-letter', ['SG_ERR_LABEL_TIMEOUT'], { deadLettered: 1 }],
    ['default', ['joined'], { defaulted: 1 }],
  ] as const)('expires features after timeoutSamples later features records: %s', (policy, expected, counted) => {
    const config: LabelJoinConfig = { idField: 'id', timeoutSamples: 3, expired: policy, ...(policy === 'default' && { defaultLabel: { y: [9] } }) };
    const join = new LabelJoin(config);
    expect(feed(join, [features('a'), features('b'), features('c')])).toEqual([]);
    const out = feed(join, [features('d')]); // a has now seen 3 features records after it
    expect(codes(out)).toEqual(expected);
    if (policy === 'default') expect(out[0]).toMatchObject({ value: { x: [1], y: [9] } });
    if (policy === 'dead-letter') expect(out[0].error!.message).toMatch(/id "a": no label came in time/);
    expect(join.counters).toMatchObject({ expired: 1, ...counted });
    expect(join.waiting).toBe(3);
    // a label after its features expired is late, whatever the policy
    expect(codes(join.label(label('a')))).toEqual(['SG_ERR_LABEL_TIMEOUT']);
    expect(join.counters.late).toBe(1);
    expect(join.balance()).toBe(0);
  });

  it('a label after its features were pushed out of the full map is late (SG_ERR_LABEL_TIMEOUT) for the last GONE_IDS_PER_CAPACITY × capacity such ids, joined ids between them or not; past that bound, an unknown id', () => {
    // probe: the expired ids shared the memory of joined ids, capped at capacity, so with
    // capacity 2 the third eviction back was "no features came for this label before 2 later labels pushed it out"
    expect(goneIdsBound(2)).toBe(2 * GONE_IDS_PER_CAPACITY);
    expect(goneIdsBound(DEFAULT_PENDING_CAPACITY)).toBe(100_000);
    expect(goneIdsBound(MAX_PENDING_CAPACITY)).toBe(Math.max(MAX_PENDING_CAPACITY, MAX_GONE_IDS));
    const join = new LabelJoin({ idField: 'id', capacity: 2 });
    const bound = join.goneCapacity; // 20
    const records: LabelledRecord[] = [];
    // ids 0..24 lose their label (pushed out); every id lost is followed by one that is joined at once
    for (let i = 0; i < 25; i++) records.push(features(`lost-${i}`), features(`kept-${i}`), label(`kept-${i}`));
    records.push(features('x'), features('y')); // push the last lost ones out too
    const out = feed(join, records);
    expect(join.counters.evicted).toBe(25);
    expect(codes(out).filter((c) => c === 'joined')).toHaveLength(25);
    const late = codes(feed(join, Array.from({ length: 25 }, (_, i) => label(`lost-${24 - i}`))));
    // the 20 most recently pushed out are late; the 5 oldest are past the bound: held as for an
    // id never seen (the hold takes 2; 3 pushed out of it are unknown ids)
    expect(late).toEqual([...Array(bound).fill('SG_ERR_LABEL_TIMEOUT'), ...Array(3).fill('SG_ERR_UNKNOWN_ID')]);
    expect(join.counters.late).toBe(bound);
    // a checkpoint keeps the memory: a restored join classifies the same way
    const again = new LabelJoin({ idField: 'id', capacity: 2 });
    again.restore(join.state());
    expect(codes(again.label(label('lost-10')))).toEqual(['SG_ERR_LABEL_TIMEOUT']);
    expect(join.balance()).toBe(0);
  });

  it('expires by the clock it is given (timeoutMs), when the next record arrives', () => {
    let now = 1000;
    const join = new LabelJoin({ idField: 'id', timeoutMs: 500, clock: () => now });
    feed(join, [features('a')]);
    now = 1400;
    feed(join, [features('b')]);
    expect(join.counters.expired).toBe(0);
    now = 1500;
    expect(codes(join.label(label('b')))).toEqual(['SG_ERR_LABEL_TIMEOUT', 'joined']); // a expires first, then b joins
    expect(join.counters).toMatchObject({ expired: 1, joined: 1 });
  });

  it('bounds the pending map: a full map pushes out the oldest features by the policy', () => {
    const join = new LabelJoin({ idField: 'id', capacity: 2 });
    expect(codes(feed(join, [features('a'), features('b'), features('c')]))).toEqual(['SG_ERR_LABEL_TIMEOUT']);
    expect(join.waiting).toBe(2);
    expect(join.counters).toMatchObject({ expired: 1, evicted: 1 });
  });

  it('keeps the first of duplicate features and turns the second away', () => {
    const join = new LabelJoin({ idField: 'id' });
    const out = feed(join, [features('a', [1]), features('a', [2]), label('a')]);
    expect(codes(out)).toEqual(['SG_ERR_DUPLICATE_ID', 'joined']);
    expect(out[1].value).toMatchObject({ x: [1] });
    expect(join.counters.duplicateFeatures).toBe(1);
  });

  it('turns a second label for an id away as a duplicate', () => {
    const join = new LabelJoin({ idField: 'id' });
    expect(codes(feed(join, [features('a'), label('a'), label('a')]))).toEqual(['joined', 'SG_ERR_DUPLICATE_ID']);
    expect(join.counters.duplicateLabels).toBe(1);
  });

  it('holds a label that came before its features, and joins it when they come (with the prediction made then)', () => {
    const join = new LabelJoin({ idField: 'id' });
    const predict = stamping();
    expect(feed(join, [features('x'), label('a', [4])], predict)).toEqual([]);
    expect(join.holding).toBe(1);
    const [joined] = feed(join, [features('a', [2])], predict);
    expect(joined).toMatchObject({ value: { x: [2], y: [4] } });
    expect(joined.prediction!.a[0]).toBe(2);
    expect(join.counters).toMatchObject({ early: 1, joined: 1 });
    // a second early label for one id is a duplicate
    expect(codes(feed(join, [label('b'), label('b')]))).toEqual(['SG_ERR_DUPLICATE_ID']);
  });

  it('turns away a held label whose features never come: unknown id (time-out, capacity, end of stream)', () => {
    const join = new LabelJoin({ idField: 'id', timeoutSamples: 2, holdCapacity: 1 });
    expect(codes(feed(join, [label('u'), label('v')]))).toEqual(['SG_ERR_UNKNOWN_ID']); // u pushed out by v
    expect(codes(feed(join, [features('a'), features('b')]))).toEqual(['SG_ERR_UNKNOWN_ID']); // v timed out
    expect(join.counters.unknownLabels).toBe(2);
    feed(join, [label('w')]);
    expect(codes(join.flush())).toEqual(['SG_ERR_LABEL_TIMEOUT', 'SG_ERR_LABEL_TIMEOUT', 'SG_ERR_UNKNOWN_ID']);
    expect(join.waiting + join.holding).toBe(0);
    expect(join.balance()).toBe(0);
  });

  it('checkLabel: a label that comes before its features is checked as training reads its targets; one that cannot train is turned away at once with that error, never held, and pushes nothing out', () => {
    // probe: a held label kept its target unchecked, up to a line (16 MiB) long, until its features came or it timed out
    const join = new LabelJoin({ idField: 'id', labelFields: ['y'], holdCapacity: 1, checkLabel: labelCheck(1) });
    expect(feed(join, [label('a', [4])])).toEqual([]);
    const bad: LabelledRecord[] = [label('b', [1, 2]), label('c', Array<number>(1e6).fill(0)), { value: { id: 'd', y: [Infinity] }, origin: { line: 90 }, stream: 'labels' }, { value: { id: 'e', y: 'z'.repeat(1e6) }, origin: { line: 91 }, stream: 'labels' }];
    const out = feed(join, bad);
    expect(out.map((r) => [r.error?.code, r.error?.field])).toEqual([['SG_ERR_ARITY', 'y'], ['SG_ERR_ARITY', 'y'], ['SG_ERR_NONFINITE_INPUT', 'y[0]'], ['SG_ERR_TYPE', 'y']]);
    expect(out[0].error!.message).toBe('y: has 2 values, the model takes 1');
    expect(out.map((r) => r.origin)).toEqual(bad.map((r) => r.origin));
    expect(join.holding).toBe(1); // a is still held: a refused label pushes nothing out
    expect(join.counters).toMatchObject({ labels: 5, invalid: 4, refusedLabels: 4, unusableId: 0, deadLettered: 4, unknownLabels: 0 });
    // a's features join it; b's wait (its label was refused) and a corrected label joins them
    expect(feed(join, [features('a', [1]), features('b', [2]), label('b', [3])]).map((r) => r.value)).toEqual([{ x: [1], y: [4] }, { x: [2], y: [3] }]);
    expect(join.balance()).toBe(0);
  });

  it('checkLabel with a feature map: class names and named targets as training reads them; a CSV cell is held as the number it stands for, not its text', () => {
    const classes = new LabelJoin({ idField: 'id', labelFields: ['kind'], checkLabel: labelCheck(2, new FeatureMap({ features: ['a'], targets: ['kind'], classes: ['cat', 'dog'] })) });
    const out = classes.label({ value: { id: 1, kind: 'cow' }, origin: {}, stream: 'labels' });
    expect(out[0].error).toMatchObject({ code: 'SG_ERR_TYPE', field: 'kind', message: 'kind: "cow" is not one of the classes (cat, dog)' });
    expect(classes.label({ value: { id: 2, kind: 'dog', note: 'x' }, origin: {}, stream: 'labels' })).toEqual([]);
    expect(classes.state().held.map((h) => h.record.value)).toEqual([{ id: 2, kind: 'dog' }]);
    const numbers = new LabelJoin({ idField: 'id', labelFields: ['t'], checkLabel: labelCheck(1, new FeatureMap({ features: ['a'], targets: ['t'] })) });
    const line = `5,0.${'0'.repeat(100_000)}25e100003`;
    const cells = (id: string, t: string): LabelledRecord => ({ value: { id, t }, origin: { line: 2, raw: line }, text: true, stream: 'labels' });
    expect(codes(numbers.label(cells('6', 'nan')))).toEqual(['SG_ERR_NONFINITE_INPUT']);
    expect(numbers.label(cells('5', `0.${'0'.repeat(100_000)}25e100003`))).toEqual([]);
    const [held] = numbers.state().held;
    expect(held.record).toEqual({ value: { id: '5', t: 250 }, origin: { line: 2, raw: line.slice(0, 1024), rawCut: true } });
    expect(feed(numbers, [{ value: { id: 5, x: [1], a: 0.5 }, origin: {} }]).map((r) => r.value)).toEqual([{ x: [1], a: 0.5, t: 250 }]);
  });

  it('with holdCapacity 0, rejects a label without waiting features at once', () => {
    const join = new LabelJoin({ idField: 'id', holdCapacity: 0 });
    expect(codes(feed(join, [label('a')]))).toEqual(['SG_ERR_UNKNOWN_ID']);
  });

  it('turns away records without a usable id, and passes on what the source could not read', () => {
    const join = new LabelJoin({ idField: 'id' });
    const unreadable: LabelledRecord = { error: new StreamgradError('SG_ERR_BAD_JSON', 'not JSON'), origin: { line: 9 }, stream: 'labels' };
    const out = feed(join, [features(undefined), features({}), label(''), unreadable]);
    expect(codes(out)).toEqual(['SG_ERR_MISSING', 'SG_ERR_TYPE', 'SG_ERR_MISSING', 'SG_ERR_BAD_JSON']);
    expect(out[0].error).toMatchObject({ field: 'id' });
    expect(out[3]).toBe(unreadable);
    expect(join.counters).toMatchObject({ invalid: 4, unusableId: 3, unreadable: 1, refusedFeatures: 0, refusedLabels: 0 });
    expect(join.balance()).toBe(0);
  });

  it('refuses a numeric id that is not a whole number (3.5, -0, Infinity) on both sides, SG_ERR_TYPE naming the id field; as a string it joins', () => {
    // probe: {"id": 3.5} was taken as the id "3.5", and a fraction JSON rounds (…0001) as another record's id
    const join = new LabelJoin({ idField: 'id' });
    const out = feed(join, [features(3.5), label(3.5), features(-0), label(-0), features(Infinity), label(-Infinity), features(1.0000000000000002)]);
    expect(codes(out)).toEqual(Array(7).fill('SG_ERR_TYPE'));
    for (const r of out) expect(r.error).toMatchObject({ field: 'id' });
    expect(out[0].error!.message).toBe('id: the number 3.5 is not a whole number: a fraction keeps about 17 significant digits once JSON is read (3.14159265358979323 and …324 become one number), so distinct ids could become one; send it as a string ("id": "…")');
    expect(out[2].error!.message).toMatch(/^id: the number -0 is read as 0, so it would take the label of id 0; send it as a string/);
    expect(out[4].error!.message).toMatch(/^id: must be a string .* or a whole number within ±9007199254740991/);
    expect(join.counters).toMatchObject({ invalid: 7, unusableId: 7, deadLettered: 7 });
    expect(join.waiting + join.holding).toBe(0);
    // the same ids as strings are ids like any other (string ids are taken as written)
    expect(codes(feed(join, [features('3.5'), label('3.5'), features('-0'), label('-0')]))).toEqual(['joined', 'joined']);
    expect(join.balance()).toBe(0);
  });

  it('turns away features it cannot predict on, and their label later as unknown', () => {
    const join = new LabelJoin({ idField: 'id' });
    const out = feed(join, [{ value: { id: 'a' }, origin: {} }, label('a')]);
    expect(codes(out)).toEqual(['SG_ERR_MISSING', 'SG_ERR_UNKNOWN_ID']);
    expect(out[1].error!.message).toMatch(/turned away/);
    // its id was usable: counted as features the model cannot predict on, not as "without a usable id"
    expect(join.counters).toMatchObject({ invalid: 1, refusedFeatures: 1, unusableId: 0, unknownLabels: 1 });
  });

  it('refuses labelFields that are empty, not names, or the id field', () => {
    for (const labelFields of [[], [''], ['id'], [3]] as unknown as string[][]) {
      expect(() => new LabelJoin({ idField: 'id', labelFields })).toThrow(expect.objectContaining({ code: 'SG_ERR_CONFIG', field: 'labelFields' }));
    }
  });

  it('refuses bad configurations with SG_ERR_CONFIG naming the field', () => {
    const bad = (config: LabelJoinConfig, field: string) => expect(() => new LabelJoin(config)).toThrow(expect.objectContaining({ code: 'SG_ERR_CONFIG', field }));
    bad({ idField: '' }, 'idField');
    bad({ idField: 'id', capacity: 0 }, 'capacity');
    bad({ idField: 'id', holdCapacity: -1 }, 'holdCapacity');
    bad({ idField: 'id', timeoutSamples: 1.5 }, 'timeoutSamples');
    bad({ idField: 'id', timeoutMs: -1 }, 'timeoutMs');
    bad({ idField: 'id', expired: 'keep' as never }, 'expired');
    bad({ idField: 'id', expired: 'default' }, 'defaultLabel');
  });

  it('state() and restore() put back what waits: a resumed join continues as the uninterrupted one', () => {
    const records = [features('a'), label('z'), features('b'), features('c'), label('b'), features('d'), label('a'), label('c'), features('z'), features('e'), label('e'), label('e'), features('f')];
    const config: LabelJoinConfig = { idField: 'id', timeoutSamples: 4, expired: 'default', defaultLabel: { y: [-1] } };
    const whole = new LabelJoin(config);
    const expected = feed(whole, records, stamping());
    expected.push(...whole.flush());
    for (let cut = 0; cut <= records.length; cut++) {
      const predict = stamping();
      const first = new LabelJoin(config);
      const out = feed(first, records.slice(0, cut), predict);
      const saved = JSON.parse(JSON.stringify(first.state()));
      const second = new LabelJoin(config);
      second.restore(saved);
      out.push(...feed(second, records.slice(cut), predict), ...second.flush());
      expect(out.map((r) => [r.error?.code, r.value, r.prediction === undefined ? null : Array.from(r.prediction.a)])).toEqual(
        expected.map((r) => [r.error?.code, r.value, r.prediction === undefined ? null : Array.from(r.prediction.a)]),
      );
      expect(second.counters).toEqual(whole.counters);
    }
  });

  it('keeps non-finite predictions exactly through state()', () => {
    const join = new LabelJoin({ idField: 'id' });
    join.features(features('a'), () => ({ z: Float64Array.of(NaN), a: Float64Array.of(Infinity), user: Float64Array.of(-Infinity), step: 3 }));
    const again = new LabelJoin({ idField: 'id' });
    again.restore(JSON.parse(JSON.stringify(join.state())));
    const [joined] = again.label(label('a'));
    expect(joined.prediction).toEqual({ z: Float64Array.of(NaN), a: Float64Array.of(Infinity), user: Float64Array.of(-Infinity), step: 3 });
  });

  it('restore() refuses a malformed state with SG_ERR_CHECKPOINT naming the field', () => {
    const join = new LabelJoin({ idField: 'id' });
    feed(join, [features('a')]);
    const state = JSON.parse(JSON.stringify(join.state()));
    state.pending[0].prediction.a = ['x'];
    expect(() => new LabelJoin({ idField: 'id' }).restore(state)).toThrow(expect.objectContaining({ code: 'SG_ERR_CHECKPOINT', field: 'labels.pending[0].prediction.a[0]' }));
    expect(() => new LabelJoin({ idField: 'id' }).restore({ ...state, counters: { ...state.counters, joined: -1 } })).toThrow(/labels.counters.joined/);
  });

  it('restore() of a state written before the reasons of invalid were counted: they start at 0, the total stays, and the labels line says what it cannot tell apart', () => {
    const join = new LabelJoin({ idField: 'id' });
    feed(join, [features(undefined), features('a'), label('')]);
    const state = JSON.parse(JSON.stringify(join.state()));
    expect(state.counters).toMatchObject({ invalid: 2, unusableId: 2 });
    for (const name of ['unusableId', 'refusedFeatures', 'refusedLabels', 'unreadable']) delete state.counters[name];
    const resumed = new LabelJoin({ idField: 'id' });
    resumed.restore(state);
    feed(resumed, [features({})]);
    expect(resumed.counters).toMatchObject({ invalid: 3, unusableId: 1, refusedFeatures: 0, refusedLabels: 0, unreadable: 0 });
    expect(invalidSummary(resumed.stats())).toBe('3 invalid (1 without a usable id, 2 counted before a resume from an older checkpoint, reasons not kept)');
    expect(invalidSummary(join.stats())).toBe('2 invalid (2 without a usable id)');
    expect(invalidSummary(new LabelJoin({ idField: 'id' }).stats())).toBe('0 invalid');
    // reasons that add up to more than the total are a malformed state
    expect(() => new LabelJoin({ idField: 'id' }).restore({ ...state, counters: { ...state.counters, refusedLabels: 3 } })).toThrow(expect.objectContaining({ code: 'SG_ERR_CHECKPOINT', field: 'labels.counters.invalid' }));
  });

  it('a refused restore() changes nothing: what waited still waits, balanced', () => {
    // before: `recent` was checked after the maps were replaced, so a state refused there left
    // the other state's waiting features behind with this join's counters (balance ≠ 0)
    const join = new LabelJoin({ idField: 'id' });
    feed(join, [features('a'), features('b')]);
    const other = new LabelJoin({ idField: 'id' });
    feed(other, [features('c')]);
    const state = JSON.parse(JSON.stringify(other.state()));
    state.recent = [['c', 'unheard-of']];
    expect(() => join.restore(state)).toThrow(expect.objectContaining({ code: 'SG_ERR_CHECKPOINT', field: 'labels.recent[0]' }));
    expect([join.waiting, join.balance()]).toEqual([2, 0]);
    expect(join.state().pending.map((e) => e.id)).toEqual(['a', 'b']);
  });

  it('restore() refuses a state over its capacity or holdCapacity, naming the field, and changes nothing', () => {
    // before: only the CLI refused such a resume; a library caller restoring a larger run's
    // state into a smaller join got a map past its bound that never shrank back
    const big = new LabelJoin({ idField: 'id', capacity: 4 });
    feed(big, [features('a'), features('b'), features('c'), label('z1'), label('z2'), label('z3')]);
    const state = JSON.parse(JSON.stringify(big.state()));
    const join = new LabelJoin({ idField: 'id', capacity: 2, holdCapacity: 4 });
    feed(join, [features('k')]);
    expect(() => join.restore(state)).toThrow(expect.objectContaining({ code: 'SG_ERR_CHECKPOINT', field: 'labels.pending' }));
    const holder = new LabelJoin({ idField: 'id', capacity: 4, holdCapacity: 2 });
    expect(() => holder.restore(state)).toThrow(expect.objectContaining({ code: 'SG_ERR_CHECKPOINT', field: 'labels.held' }));
    expect([holder.waiting, holder.holding]).toEqual([0, 0]);
    expect([join.waiting, join.balance()]).toEqual([1, 0]);
    expect(join.state().pending.map((e) => e.id)).toEqual(['k']);
    const same = new LabelJoin({ idField: 'id', capacity: 3, holdCapacity: 3 });
    same.restore(state);
    expect([same.waiting, same.holding]).toEqual([3, 3]);
  });

  it('abandon() (a stop without checkpoints) turns what waits away by the policy: dead letters (default too: nothing trains after a stop), or dropped; held labels as unknown ids', () => {
    for (const expired of ['dead-letter', 'default', 'drop'] as const) {
      const join = new LabelJoin({ idField: 'id', expired, ...(expired === 'default' && { defaultLabel: { y: [0] } }) });
      feed(join, [features('a'), features('b'), label('a'), label('z')]);
      expect([join.waiting, join.holding]).toEqual([1, 1]);
      const out = join.abandon();
      expect(codes(out)).toEqual(expired === 'drop' ? ['SG_ERR_UNKNOWN_ID'] : ['SG_ERR_LABEL_TIMEOUT', 'SG_ERR_UNKNOWN_ID']);
      if (expired !== 'drop') expect(out[0].error!.message).toMatch(/id "b": the run stopped before its label came, and no checkpoint holds it/);
      expect([join.waiting, join.holding, join.balance()]).toEqual([0, 0, 0]);
      expect(join.stats()).toMatchObject({ expired: 1, unknownLabels: 1, dropped: expired === 'drop' ? 1 : 0, defaulted: 0 });
    }
  });

  it('property: nothing vanishes, and the maps stay within their bounds', () => {
    const event = fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 12 }), fc.boolean());
    fc.assert(fc.property(fc.array(event, { maxLength: 200 }), fc.constantFrom('drop', 'dead-letter', 'default'), (events, expired) => {
      const join = new LabelJoin({ idField: 'id', capacity: 4, holdCapacity: 3, timeoutSamples: 6, expired, defaultLabel: { y: [0] } });
      const predict = stamping();
      let out = 0;
      for (const [isLabel, id, broken] of events) {
        const value = broken ? { x: [1] } : { id: `k${id}`, x: [1], y: [1] };
        out += (isLabel ? join.label({ value, origin: {} }) : join.features({ value, origin: {} }, predict)).length;
        expect(join.waiting).toBeLessThanOrEqual(4);
        expect(join.holding).toBeLessThanOrEqual(3);
        expect(join.balance()).toBe(0);
      }
      out += join.flush().length;
      const c = join.counters;
      expect(out).toBe(c.joined + c.defaulted + c.deadLettered);
      expect(c.features + c.labels).toBe(2 * c.joined + c.defaulted + c.deadLettered + c.dropped);
      expect(c.invalid).toBe(c.unusableId + c.refusedFeatures + c.refusedLabels + c.unreadable);
    }));
  });
});

describe('joinLabels', () => {
  const run = (records: LabelledRecord[], config: LabelJoinConfig = { idField: 'id' }) => lastValueFrom(from(records).pipe(joinLabels(new LabelJoin(config), stamping()), toArray()));

  it('emits joined records and, at the end of the stream, every waiting entry by the policy', async () => {
    const out = await run([features('a'), features('b'), label('a'), label('c')]);
    expect(codes(out)).toEqual(['joined', 'SG_ERR_LABEL_TIMEOUT', 'SG_ERR_UNKNOWN_ID']);
  });

  it('leaves waiting entries in the join when unsubscribed (a stopped run checkpoints them)', () => {
    const join = new LabelJoin({ idField: 'id' });
    const input = new Subject<LabelledRecord>();
    const seen: JoinedRecord[] = [];
    const subscription = input.pipe(joinLabels(join, stamping())).subscribe((r) => seen.push(r));
    input.next(features('a'));
    subscription.unsubscribe();
    expect(seen).toEqual([]);
    expect(join.waiting).toBe(1);
  });

  it('passes errors on and never emits after them; an error in the join errors the stream', () => {
    new TestScheduler((a, b) => expect(a).toEqual(b)).run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold<LabelledRecord>('-a-#', { a: features('a') });
      expectObservable(source.pipe(joinLabels(new LabelJoin({ idField: 'id' }), stamping()))).toBe('---#');
      expectSubscriptions(source.subscriptions).toBe('^--!');
      const never = cold<LabelledRecord>('-');
      expectObservable(never.pipe(joinLabels(new LabelJoin({ idField: 'id' }), stamping()))).toBe('-');
    });
    const failing: FeaturePredictor = () => { throw new Error('boom'); };
    return expect(lastValueFrom(from([features('a')]).pipe(joinLabels(new LabelJoin({ idField: 'id' }), failing)))).rejects.toThrow('boom');
  });

  it('stops emitting a burst when the subscriber unsubscribes in the middle of it', () => {
    const join = new LabelJoin({ idField: 'id', timeoutSamples: 1 });
    const input = new Subject<LabelledRecord>();
    const seen: JoinedRecord[] = [];
    const subscription = input.pipe(joinLabels(join, stamping())).subscribe((r) => { seen.push(r); subscription.unsubscribe(); });
    input.next(label('u'));
    input.next(label('v'));
    input.next(features('a')); // both held labels expire in one burst
    expect(seen).toHaveLength(1);
  });
});

describe('checkpoints without a labels section', () => {
  it('load as before: nothing absorbed, nothing waiting', async () => {
    const { absorbedBy, labelsState } = await import('../../runtime/delayed-labels.ts');
    expect(absorbedBy({ counters: { read: 3 } })).toBe(0);
    const join = new LabelJoin({ idField: 'id' });
    labelsState(join).restore({ normalizer: null });
    expect(join.waiting + join.holding).toBe(0);
    feed(join, [features('a'), label('z')]);
    const saved = labelsState(join).save() as { labels: unknown };
    expect(absorbedBy(saved as Record<string, unknown>)).toBe(2); // one waiting features record, one held label
    expect(() => absorbedBy({ labels: { counters: {} } })).toThrow(expect.objectContaining({ code: 'SG_ERR_CHECKPOINT' }));
  });
});

import { from, Subject } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { detectDrift, type DriftEvent } from '../../operators/detect-drift.ts';
import { Ddm } from '../../core/drift/ddm.ts';
import { PageHinkley } from '../../core/drift/page-hinkley.ts';
import { PythonRandom } from '../helpers/python-random.ts';

let scheduler: TestScheduler;
beforeEach(() => {
  scheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
});

/** A Page-Hinkley that alarms fast: 4 values of warm-up, then a jump of 10 crosses λ = 5. */
const quick = { kind: 'page-hinkley', minInstances: 4, threshold: 5, mode: 'up' } as const;

function collect(values: readonly number[], detector: Parameters<typeof detectDrift>[0], start?: number): DriftEvent[] {
  const out: DriftEvent[] = [];
  from(values).pipe(detectDrift(detector, start)).subscribe((e) => out.push(e));
  return out;
}

describe('detectDrift', () => {
  it('emits a drift event at the index of the value that raised it, with the evidence', () => {
    const events = collect([0, 0, 0, 0, 0, 10, 0], quick);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'drift', detector: 'page-hinkley', index: 5, value: 10 });
    expect(events[0].evidence.increase).toBeGreaterThan(5);
  });

  it('marbles: values pass through the detector; only alarms come out; complete and error pass', () => {
    scheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const values = cold('a-a-a-a-a-b-a-|', { a: 0, b: 10 });
      const subs = '       ^-------------!';
      expectObservable(values.pipe(detectDrift(quick))).toBe('----------d---|', { d: expect.objectContaining({ type: 'drift', index: 5 }) });
      expectSubscriptions(values.subscriptions).toBe(subs);
    });
  });

  it.each([['a-#', '--#'], ['|', '|'], ['-', '-']])('marbles: %s gives %s', (input, output) => {
    scheduler.run(({ cold, expectObservable }) => expectObservable(cold<number>(input, { a: 0 }).pipe(detectDrift(quick))).toBe(output));
  });

  it('unsubscribing stops it: later values reach no detector', () => {
    const shared = new PageHinkley(quick);
    const subject = new Subject<number>();
    const sub = subject.pipe(detectDrift(shared)).subscribe();
    subject.next(1);
    sub.unsubscribe();
    subject.next(2);
    expect(shared.evidence().count).toBe(1);
  });

  it('a config gives each subscription its own detector; a detector is shared', () => {
    const values = from([0, 0, 0, 0, 0, 10]);
    const piped = values.pipe(detectDrift(quick));
    const a: DriftEvent[] = [], b: DriftEvent[] = [];
    piped.subscribe((e) => a.push(e));
    piped.subscribe((e) => b.push(e));
    expect(a.map((e) => e.index)).toEqual([5]);
    expect(b.map((e) => e.index)).toEqual([5]);
    const shared = new PageHinkley(quick);
    values.pipe(detectDrift(shared)).subscribe();
    expect(shared.evidence().count).toBe(6);
  });

  it('skips values that are not finite (a skipped step\'s loss) but counts them in the index; start offsets it', () => {
    const events = collect([0, NaN, 0, 0, Infinity, 0, 0, 10], quick, 100);
    expect(events.map((e) => e.index)).toEqual([107]);
  });

  it('emits a warning once per warning zone, then the drift (River\'s DDM example: 1084, 1334, 1492)', () => {
    const rng = new PythonRandom(42);
    const errors = [...rng.choices([0, 1], 1000), ...rng.choices([0, 1], 1000, [0.3, 0.7])];
    const events = collect(errors, new Ddm());
    const firstWarnings = events.filter((e, i) => e.type === 'warning' && (i === 0 || events[i - 1].type === 'drift'));
    expect(firstWarnings.map((e) => e.index)).toEqual([1084, 1492]);
    expect(events.filter((e) => e.type === 'drift').map((e) => e.index)).toEqual([1334]);
    // no two warnings in a row: one event per warning zone
    for (let i = 1; i < events.length; i++) expect(events[i].type === 'warning' && events[i - 1].type === 'warning' && events[i].index === events[i - 1].index + 1).toBe(false);
  });
});

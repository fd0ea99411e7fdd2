import fc from 'fast-check';
import { defer, finalize, from, map, mergeMap, Observable, of, Subject, take, throwError } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { beforeEach, describe, expect, it } from 'vitest';
import { batch, type BatchConfig } from '../operators/batch.ts';
import { collectSync, expectSgError, ManualScheduler, thrown } from './helpers/streams.ts';

let testScheduler: TestScheduler;
beforeEach(() => {
  testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
});

describe('batch by count (marbles)', () => {
  it('groups the source into batches of `count`', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -a-b-c-d-e-f-|');
      const subs = '     ^------------!';
      const expected = ' ---x---y---z-|';
      expectObservable(e1.pipe(batch(2))).toBe(expected, { x: ['a', 'b'], y: ['c', 'd'], z: ['e', 'f'] });
      expectSubscriptions(e1.subscriptions).toBe(subs);
    });
  });

  it('flushes the partial batch when the source completes', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -a-b-c-d-e-|');
      const subs = '     ^----------!';
      const expected = ' ---x---y---(z|)';
      expectObservable(e1.pipe(batch(2))).toBe(expected, { x: ['a', 'b'], y: ['c', 'd'], z: ['e'] });
      expectSubscriptions(e1.subscriptions).toBe(subs);
    });
  });

  it('a cut ends the partial batch at once; a cut with nothing gathered emits nothing', () => {
    testScheduler.run(({ cold, hot, expectObservable }) => {
      const e1 = cold('  -a-b-c-d-e-|');
      const cut = hot('  --x-----x-x');
      const expected = ' --u----v--w|';
      expectObservable(e1.pipe(batch({ count: 3, cut }))).toBe(expected, { u: ['a'], v: ['b', 'c', 'd'], w: ['e'] });
    });
  });

  it("drops the partial batch on complete with partial: 'drop'", () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const e1 = cold('  -a-b-c-d-e-|');
      const expected = ' ---x---y---|';
      expectObservable(e1.pipe(batch({ count: 2, partial: 'drop' }))).toBe(expected, { x: ['a', 'b'], y: ['c', 'd'] });
    });
  });

  it('an empty source completes with no batch (never an empty batch)', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  |');
      expectObservable(e1.pipe(batch(3))).toBe('|');
      expectObservable(e1.pipe(batch({ count: 3, partial: 'drop' }))).toBe('|');
      expectSubscriptions(e1.subscriptions).toBe(['(^!)', '(^!)']);
    });
  });

  it('a source that never emits never emits', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -');
      expectObservable(e1.pipe(batch(3))).toBe('-');
      expectSubscriptions(e1.subscriptions).toBe('^');
    });
  });

  it('on error: drops the buffered samples (no flush) and passes the error on at once', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -a-b-c-#', undefined, new Error('source broke'));
      const subs = '     ^------!';
      const expected = ' ---x---#';
      expectObservable(e1.pipe(batch(2))).toBe(expected, { x: ['a', 'b'] }, new Error('source broke'));
      expectSubscriptions(e1.subscriptions).toBe(subs);
    });
  });

  it('an error thrown upstream in the middle of a batch discards that batch', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -a-b-c-d-e-|');
      const subs = '     ^------!';
      const expected = ' -----x-#';
      const boom = new Error('bad sample d');
      const result = e1.pipe(
        map((v) => { if (v === 'd') throw boom; return v; }),
        batch(3),
      );
      expectObservable(result).toBe(expected, { x: ['a', 'b', 'c'] }, boom);
      expectSubscriptions(e1.subscriptions).toBe(subs);
    });
  });

  it('an error thrown by a downstream user function tears the source down', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const e1 = cold('  -a-b-c-d-e-|');
      const subs = '     ^------!';
      const expected = ' ---x---#';
      const boom = new Error('consumer broke');
      const result = e1.pipe(batch(2), map((b) => { if (b[0] === 'c') throw boom; return b.join(''); }));
      expectObservable(result).toBe(expected, { x: 'ab' }, boom);
      expectSubscriptions(e1.subscriptions).toBe(subs);
    });
  });

  it('early unsubscribe: stops the source and emits nothing more', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   --a--b--c--d--e--|');
      const unsub = '    ----------!';
      const subs = '     ^---------!';
      const expected = ' -----x-----';
      expectObservable(e1.pipe(batch(2)), unsub).toBe(expected, { x: ['a', 'b'] });
      expectSubscriptions(e1.subscriptions).toBe(subs);
    });
  });

  it('unsubscription chain: unsubscribing through mergeMap stops the source', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   --a--b--c--d--e--|');
      const unsub = '    ----------!';
      const subs = '     ^---------!';
      const expected = ' -----x-----';
      const result = e1.pipe(
        mergeMap((v) => of(v)),
        batch(2),
        mergeMap((b) => of(b)),
      );
      expectObservable(result, unsub).toBe(expected, { x: ['a', 'b'] });
      expectSubscriptions(e1.subscriptions).toBe(subs);
    });
  });

  it('take downstream unsubscribes from the source at the taken batch', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   --a--b--c--d--e--|');
      const subs = '     ^-------!';
      const expected = ' --------(x|)';
      expectObservable(e1.pipe(batch(3), take(1))).toBe(expected, { x: ['a', 'b', 'c'] });
      expectSubscriptions(e1.subscriptions).toBe(subs);
    });
  });

  it('a synchronous source stops as soon as the consumer has what it wants', () => {
    // rxjs spec "should stop listening to a synchronous observable when unsubscribed"
    const sideEffects: number[] = [];
    const synchronous = new Observable<number>((subscriber) => {
      for (let i = 0; !subscriber.closed && i < 10; i++) {
        sideEffects.push(i);
        subscriber.next(i);
      }
    });
    const got = collectSync(synchronous.pipe(batch(1), take(2)));
    expect(got.values).toEqual([[0], [1]]);
    expect(sideEffects).toEqual([0, 1]);
  });
});

describe('batch by time (marbles)', () => {
  it('emits a window timeMs after its first sample, then completes with the partial window', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   -a--b------c---|');
      const subs = '     ^--------------!';
      const expected = ' ------x--------(y|)';
      expectObservable(e1.pipe(batch({ timeMs: 5, scheduler: testScheduler }))).toBe(expected, { x: ['a', 'b'], y: ['c'] });
      expectSubscriptions(e1.subscriptions).toBe(subs);
    });
  });

  it('the window starts at the first sample, and an idle stream emits no empty batches', () => {
    testScheduler.run(({ hot, expectObservable }) => {
      // a opens a window at 1 that closes at 4 with a, b; nothing while idle;
      // c opens one at 26 that closes at 29, ahead of complete
      const e1 = hot('   -a-b 22ms c-d 7ms |');
      const expected = ' ----x 24ms y 6ms |';
      expectObservable(e1.pipe(batch({ timeMs: 3, scheduler: testScheduler }))).toBe(expected, { x: ['a', 'b'], y: ['c', 'd'] });
    });
  });

  it('maxSize caps a window: a full window is emitted at once and its timer cancelled', () => {
    testScheduler.run(({ hot, expectObservable }) => {
      const e1 = hot('   -abc-----------|');
      const expected = ' --x----------y-|';
      expectObservable(e1.pipe(batch({ timeMs: 10, maxSize: 2, scheduler: testScheduler }))).toBe(expected, { x: ['a', 'b'], y: ['c'] });
    });
  });

  it('count and time together: whichever comes first', () => {
    testScheduler.run(({ hot, expectObservable }) => {
      const e1 = hot('   -abc--d---------ef--|');
      // a,b,c fill the count at 3; d opens a window at 6 that times out at 11;
      // e opens one at 16 and the source completes at 20 before its timer (21)
      const expected = ' ---x-------y--------(z|)';
      expectObservable(e1.pipe(batch({ count: 3, timeMs: 5, scheduler: testScheduler }))).toBe(expected, { x: ['a', 'b', 'c'], y: ['d'], z: ['e', 'f'] });
    });
  });

  it('uses the virtualised asyncScheduler when no scheduler is given', () => {
    testScheduler.run(({ hot, expectObservable }) => {
      const e1 = hot('   -a-b----|');
      expectObservable(e1.pipe(batch({ timeMs: 4 }))).toBe('-----x--|', { x: ['a', 'b'] });
    });
  });

  it("drops the pending window on complete with partial: 'drop'", () => {
    testScheduler.run(({ hot, expectObservable }) => {
      const e1 = hot('   -a-------b-|');
      const expected = ' ----x------|';
      expectObservable(e1.pipe(batch({ timeMs: 3, partial: 'drop', scheduler: testScheduler }))).toBe(expected, { x: ['a'] });
    });
  });

  it('error with a pending window: no flush, error at once, and the timer never fires', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   -a--#', undefined, new Error('source broke'));
      const subs = '     ^---!';
      const expected = ' ----#';
      expectObservable(e1.pipe(batch({ timeMs: 10, scheduler: testScheduler }))).toBe(expected, undefined, new Error('source broke'));
      expectSubscriptions(e1.subscriptions).toBe(subs);
    });
  });

  it('early unsubscribe with a pending window: nothing emitted afterwards', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   -a-b-------c---|');
      const unsub = '    -----!';
      const subs = '     ^----!';
      expectObservable(e1.pipe(batch({ timeMs: 8, scheduler: testScheduler })), unsub).toBe('------');
      expectSubscriptions(e1.subscriptions).toBe(subs);
    });
  });

  it('unsubscription chain in time mode (mergeMap on both sides)', () => {
    testScheduler.run(({ hot, expectObservable, expectSubscriptions }) => {
      const e1 = hot('   -a-b-------c---|');
      const unsub = '    ----------!';
      const subs = '     ^---------!';
      const result = e1.pipe(mergeMap((v) => of(v)), batch({ timeMs: 3, scheduler: testScheduler }), mergeMap((b) => of(b)));
      expectObservable(result, unsub).toBe('----x-----', { x: ['a', 'b'] });
      expectSubscriptions(e1.subscriptions).toBe(subs);
    });
  });
});

describe('batch timers (a counting scheduler)', () => {
  it('unsubscribing releases the pending timer: no action left, nothing emitted later', () => {
    const sched = new ManualScheduler();
    const source = new Subject<number>();
    const out: number[][] = [];
    const sub = source.pipe(batch({ timeMs: 10, scheduler: sched.asScheduler })).subscribe((b) => out.push(b));
    source.next(1);
    source.next(2);
    expect(sched.scheduled).toBe(1); // one window, one timer
    expect(sched.pending.size).toBe(1);
    sub.unsubscribe();
    expect(sched.pending.size).toBe(0);
    expect(sched.cancelled).toBe(1);
    expect(source.observed).toBe(false);
    sched.advance(1000);
    expect(sched.ran).toBe(0);
    expect(out).toEqual([]);
  });

  it('no timer runs while idle; a count-full window cancels its timer', () => {
    const sched = new ManualScheduler();
    const source = new Subject<number>();
    const out: number[][] = [];
    source.pipe(batch({ count: 2, timeMs: 10, scheduler: sched.asScheduler })).subscribe((b) => out.push(b));
    sched.advance(500);
    expect(sched.scheduled).toBe(0);
    source.next(1);
    source.next(2); // full by count
    expect(out).toEqual([[1, 2]]);
    expect(sched.cancelled).toBe(1);
    expect(sched.pending.size).toBe(0);
    source.next(3);
    sched.advance(9);
    expect(out).toEqual([[1, 2]]);
    sched.advance(1); // 10 ms after 3 arrived
    expect(out).toEqual([[1, 2], [3]]);
    expect(sched.pending.size).toBe(0);
    sched.advance(1000);
    expect(out).toEqual([[1, 2], [3]]); // no empty batches while idle
    expect(sched.scheduled).toBe(2);
  });

  it('error and complete both cancel the pending timer', () => {
    for (const end of ['error', 'complete'] as const) {
      const sched = new ManualScheduler();
      const source = new Subject<number>();
      const out: number[][] = [];
      let failed: unknown = null;
      source.pipe(batch({ timeMs: 10, scheduler: sched.asScheduler })).subscribe({ next: (b) => out.push(b), error: (e) => { failed = e; } });
      source.next(1);
      if (end === 'error') source.error(new Error('x'));
      else source.complete();
      expect(sched.pending.size).toBe(0);
      expect(sched.cancelled).toBe(1);
      sched.advance(100);
      expect(out).toEqual(end === 'error' ? [] : [[1]]);
      expect(failed === null).toBe(end === 'complete');
    }
  });
});

describe('batch re-entrancy', () => {
  it('regression: a consumer that synchronously pushes into the source gets consistent, non-overlapping batches', () => {
    const source = new Subject<number>();
    const received: number[][] = [];
    const heldIntact: boolean[] = [];
    let nextValue = 0;
    const push = (k: number) => { for (let i = 0; i < k && nextValue < 40; i++) source.next(nextValue++); };
    source.pipe(batch(3)).subscribe((b) => {
      const snapshot = [...b];
      received.push(snapshot);
      push(4); // re-enters batch while it is emitting `b`
      heldIntact.push(b.length === snapshot.length && b.every((v, i) => v === snapshot[i]));
    });
    push(3);
    source.complete();
    const flat = received.flat();
    expect(flat).toEqual(Array.from({ length: 40 }, (_, i) => i)); // nothing lost, nothing duplicated, in order
    expect(received.slice(0, -1).every((b) => b.length === 3)).toBe(true);
    expect(received[received.length - 1].length).toBe(40 % 3);
    expect(heldIntact.every(Boolean)).toBe(true); // the batch a consumer holds is never refilled
  });

  it('re-entrant pushes from a timed flush start a new window', () => {
    const sched = new ManualScheduler();
    const source = new Subject<string>();
    const received: string[][] = [];
    source.pipe(batch({ timeMs: 5, scheduler: sched.asScheduler })).subscribe((b) => {
      received.push([...b]);
      if (b[0] === 'a') source.next('c');
    });
    source.next('a');
    source.next('b');
    sched.advance(5);
    expect(received).toEqual([['a', 'b']]);
    expect(sched.pending.size).toBe(1);
    sched.advance(5);
    expect(received).toEqual([['a', 'b'], ['c']]);
  });
});

describe('batch config validation', () => {
  const cases: [string, BatchConfig | number, string][] = [
    ['count 0', 0, 'batch.count'],
    ['count -1', -1, 'batch.count'],
    ['count 1.5', 1.5, 'batch.count'],
    ['count NaN', NaN, 'batch.count'],
    ['count Infinity', { count: Infinity }, 'batch.count'],
    ['timeMs NaN', { timeMs: NaN }, 'batch.timeMs'],
    ['timeMs 0', { timeMs: 0 }, 'batch.timeMs'],
    ['timeMs -5', { timeMs: -5 }, 'batch.timeMs'],
    ['timeMs Infinity', { timeMs: Infinity }, 'batch.timeMs'],
    ['maxSize 0', { timeMs: 10, maxSize: 0 }, 'batch.maxSize'],
    ['maxSize 2.5', { timeMs: 10, maxSize: 2.5 }, 'batch.maxSize'],
    ['partial "keep"', { count: 2, partial: 'keep' as 'emit' }, 'batch.partial'],
    ['neither count nor timeMs', {}, 'batch'],
  ];
  for (const [name, config, field] of cases) {
    it(`${name} → SG_ERR_CONFIG naming ${field}, thrown when the operator is built`, () => {
      const err = expectSgError(thrown(() => batch(config)), 'SG_ERR_CONFIG', field);
      expect(err.message).toContain(field);
    });
  }
});

describe('batch properties (fast-check)', () => {
  it('concatenated batches equal the input; all but the last are full; the last is non-empty', () => {
    fc.assert(fc.property(fc.array(fc.integer(), { maxLength: 60 }), fc.integer({ min: 1, max: 12 }), (input, count) => {
      const { values, completed } = collectSync(from(input).pipe(batch(count)));
      expect(completed).toBe(true);
      expect(values.flat()).toEqual(input);
      expect(values.length).toBe(Math.ceil(input.length / count));
      values.slice(0, -1).forEach((b) => expect(b.length).toBe(count));
      if (values.length > 0) {
        const last = values[values.length - 1].length;
        expect(last).toBeGreaterThanOrEqual(1);
        expect(last).toBeLessThanOrEqual(count);
      }
    }));
  });

  it("with partial: 'drop' only full batches come out, and they are the input's prefix", () => {
    fc.assert(fc.property(fc.array(fc.integer(), { maxLength: 60 }), fc.integer({ min: 1, max: 12 }), (input, count) => {
      const { values } = collectSync(from(input).pipe(batch({ count, partial: 'drop' })));
      expect(values.every((b) => b.length === count)).toBe(true);
      expect(values.flat()).toEqual(input.slice(0, Math.floor(input.length / count) * count));
    }));
  });

  it('finalize count == subscribe count, and nothing is emitted after the terminal event', () => {
    const ending = fc.constantFrom('complete', 'error', 'take', 'unsubscribe');
    fc.assert(fc.property(fc.array(fc.integer(), { maxLength: 30 }), fc.integer({ min: 1, max: 6 }), ending, fc.nat(30), (input, count, end, cut) => {
      let subscribed = 0, finalized = 0, afterTerminal = 0, terminated = false;
      const subject = new Subject<number>();
      const source = defer(() => {
        subscribed++;
        return subject.pipe(finalize(() => { finalized++; }));
      });
      const sub = source.pipe(batch(count), end === 'take' ? take(1 + (cut % 3)) : (o) => o).subscribe({
        next: () => { if (terminated) afterTerminal++; },
        error: () => { terminated = true; },
        complete: () => { terminated = true; },
      });
      input.slice(0, cut).forEach((v) => subject.next(v));
      if (end === 'complete') subject.complete();
      else if (end === 'error') subject.error(new Error('stop'));
      else if (end === 'unsubscribe') { sub.unsubscribe(); terminated = true; }
      input.forEach((v) => subject.next(v)); // ignored after a terminal event
      if (end !== 'take') expect(finalized).toBe(1); // terminal by itself, before any cleanup of ours
      sub.unsubscribe();
      expect(subscribed).toBe(1);
      expect(finalized).toBe(subscribed);
      expect(afterTerminal).toBe(0);
      expect(subject.observed).toBe(false);
    }));
  });

  it('a failing source never has its buffered tail flushed', () => {
    fc.assert(fc.property(fc.array(fc.integer(), { maxLength: 40 }), fc.integer({ min: 1, max: 8 }), (input, count) => {
      const err = new Error('stop');
      const source = new Observable<number>((s) => { input.forEach((v) => s.next(v)); s.error(err); });
      const { values, error } = collectSync(source.pipe(batch(count)));
      expect(error).toBe(err);
      expect(values.flat()).toEqual(input.slice(0, Math.floor(input.length / count) * count));
    }));
  });

  it('throwError on subscribe passes the error through untouched', () => {
    const err = new Error('at once');
    const { values, error } = collectSync(throwError(() => err).pipe(batch(4)));
    expect(values).toEqual([]);
    expect(error).toBe(err);
  });
});

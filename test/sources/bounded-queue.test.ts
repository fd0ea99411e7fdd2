import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BoundedQueue, type OverflowPolicy } from '../../sources/bounded-queue.ts';

const drain = async <T>(queue: BoundedQueue<T>) => {
  const out: T[] = [];
  for await (const item of queue) out.push(item);
  return out;
};

describe('BoundedQueue', () => {
  it.each<[OverflowPolicy, number[], number]>([
    ['drop-oldest', [3, 4, 5], 2],
    ['drop-newest', [1, 2, 3], 2],
  ])('%s keeps %j of 1..5 in a queue of 3 and counts %i dropped', async (policy, kept, dropped) => {
    const queue = new BoundedQueue<number>({ capacity: 3, policy });
    for (let i = 1; i <= 5; i++) queue.push(i);
    queue.end();
    expect(await drain(queue)).toEqual(kept);
    expect(queue.stats).toMatchObject({ dropped, pushed: policy === 'drop-oldest' ? 5 : 3, highWater: 3, size: 0 });
  });

  it('error: overflow fails the stream with SG_ERR_SOURCE at the next pull', async () => {
    const queue = new BoundedQueue<number>({ capacity: 2, policy: 'error' });
    expect(queue.push(1)).toBe(true);
    expect(queue.push(2)).toBe(true);
    expect(queue.push(3)).toBe(false);
    await expect(drain(queue)).rejects.toMatchObject({ code: 'SG_ERR_SOURCE', message: expect.stringMatching(/queue full: more than 2/) });
    expect(queue.dropped).toBe(3); // the overflowing item and the two discarded
  });

  it('block: room() waits until the consumer takes an item', async () => {
    const queue = new BoundedQueue<number>({ capacity: 2, policy: 'block' });
    queue.push(1);
    queue.push(2);
    let roomy = false;
    const waiting = queue.room().then(() => { roomy = true; });
    await Promise.resolve();
    expect(roomy).toBe(false);
    const it = queue[Symbol.asyncIterator]();
    expect(await it.next()).toEqual({ done: false, value: 1 });
    await waiting;
    expect(roomy).toBe(true);
  });

  it('hands an item straight to a waiting consumer, ends after the queued items, and has one consumer', async () => {
    const queue = new BoundedQueue<string>({ capacity: 1 });
    const it = queue[Symbol.asyncIterator]();
    const next = it.next();
    queue.push('a');
    expect(await next).toEqual({ done: false, value: 'a' });
    queue.push('b');
    queue.end();
    expect(queue.push('c')).toBe(false);
    expect(await it.next()).toEqual({ done: false, value: 'b' });
    expect(await it.next()).toEqual({ done: true, value: undefined });
    expect(() => queue[Symbol.asyncIterator]()).toThrow(/one consumer/);
  });

  it('property: never holds more than capacity (non-blocking policies), and pushed − dropped = taken + size', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.constantFrom<OverflowPolicy>('drop-oldest', 'drop-newest'),
        fc.array(fc.boolean(), { maxLength: 200 }),
        (capacity, policy, ops) => {
          const queue = new BoundedQueue<number>({ capacity, policy });
          const it = queue[Symbol.asyncIterator]();
          let taken = 0, offered = 0;
          for (const push of ops) {
            if (push) { queue.push(offered++); }
            else if (queue.size > 0) { void it.next(); taken++; }
            expect(queue.size).toBeLessThanOrEqual(capacity);
          }
          expect(offered - queue.dropped).toBe(taken + queue.size);
        },
      ),
    );
  });

  it('refuses bad options', () => {
    expect(() => new BoundedQueue({ capacity: 0 })).toThrow(/capacity: must be an integer ≥ 1/);
    expect(() => new BoundedQueue({ policy: 'drop-random' as OverflowPolicy })).toThrow(/policy: must be one of/);
  });
});

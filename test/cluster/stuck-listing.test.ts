// A KV listing that never ends, on a real nats-server: the client's keys() ends a listing at
// the entry that reports nothing pending or at a heartbeat, and on a bucket rewritten while
// it lists that end once failed to come; the worker's balancing round then waited for good
// and the worker never took a partition again (a parked partition, cleared, stayed idle in
// failures.test.ts under load). The stuck call is injected here, over the real bucket.
import { describe, expect, it } from 'vitest';
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import type { ClusterEvent } from '../../cluster/events.ts';
import { listKeys } from '../../cluster/kv-keys.ts';
import { type Cluster, openCluster } from '../../cluster/open.ts';
import { ClusterWorker } from '../../cluster/worker.ts';
import { StreamgradError } from '../../core/errors.ts';
import { natsForThisFile, testModel, until } from './fixture.ts';

let nc: NatsConnection;
natsForThisFile((connection) => { nc = connection; });

/** A keys() iterator that yields nothing and never ends until stopped (then throws the stop's error). */
function endlessListing(): { listing: Awaited<ReturnType<KV['keys']>>; stopped: () => boolean } {
  let stop: ((error?: Error) => void) | undefined;
  let stopped = false;
  const ended = new Promise<IteratorResult<string>>((_, reject) => {
    stop = (error) => {
      stopped = true;
      reject(error ?? new Error('stopped'));
    };
  });
  ended.catch(() => undefined);
  const listing = {
    [Symbol.asyncIterator]: () => ({ next: () => ended }),
    stop: (error?: Error) => stop!(error),
  } as unknown as Awaited<ReturnType<KV['keys']>>;
  return { listing, stopped: () => stopped };
}

/** `kv` whose first `count` listings never end (each stopped only by whoever listed). */
function withStuckListings(kv: KV, count: number, made: Array<() => boolean>): KV {
  let left = count;
  return new Proxy(kv, {
    get(target, key) {
      if (key === 'keys' && left > 0) {
        left--;
        return async () => {
          const { listing, stopped } = endlessListing();
          made.push(stopped);
          return listing;
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

describe('a KV listing that never ends', () => {
  it('listKeys lists a real bucket once per key, and gives up when every listing is stuck with SG_ERR_SOURCE naming the bucket, stopping each', async () => {
    const cluster = await openCluster(nc, { name: 'listing', partitions: 2, leaseTtlMs: 1000 });
    await cluster.failures.put('p0', '{}');
    await cluster.failures.put('p1', '{}');
    await cluster.failures.put('p1', '{"again":true}');
    expect([...await listKeys(cluster.failures, 'failures')].sort()).toEqual(['p0', 'p1']);

    const made: Array<() => boolean> = [];
    const stuck = withStuckListings(cluster.failures, 3, made);
    const started = Date.now();
    const error = await listKeys(stuck, 'failures', 300).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(StreamgradError);
    expect(error).toMatchObject({ code: 'SG_ERR_SOURCE', field: 'failures', message: expect.stringMatching(/failures.*300 ms \(3 listings, each stopped after 100 ms\)/) });
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(made).toHaveLength(3);
    expect(made.every((stopped) => stopped())).toBe(true); // no consumer behind them is left running
  });

  it('a listing stuck once is stopped after its slice of the time and a fresh one lists the bucket', async () => {
    const cluster = await openCluster(nc, { name: 'listing-again', partitions: 2, leaseTtlMs: 1000 });
    await cluster.failures.put('p0', '{}');
    await cluster.failures.put('p1', '{}');
    const made: Array<() => boolean> = [];
    const stuck = withStuckListings(cluster.failures, 1, made);
    const started = Date.now();
    expect([...await listKeys(stuck, 'failures', 3000)].sort()).toEqual(['p0', 'p1']);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(990); // the stuck one had its slice, 1000 ms
    expect(took).toBeLessThan(3000); // and the whole bound was not waited out
    expect(made).toHaveLength(1);
    expect(made[0]!()).toBe(true);
  });

  it('a worker whose balancing round is stuck on a listing forgets it after a lease TTL and takes its partitions', async () => {
    const real = await openCluster(nc, { name: 'stuck', partitions: 2, leaseTtlMs: 1000 });
    const made: Array<() => boolean> = [];
    // the worker's first round lists the workers bucket and waits there (listKeys itself would begin a fresh listing only after 3.3 s)
    const cluster: Cluster = { ...real, workers: withStuckListings(real.workers, 1, made) };
    const events: ClusterEvent[] = [];
    const worker = new ClusterWorker({ cluster, id: 'w', model: testModel, checkpointEveryMs: 100 });
    worker.events.subscribe((e) => events.push(e));
    const started = Date.now();
    void worker.start();
    try {
      await until('both partitions acquired', () => events.filter((e) => e.type === 'acquired').length === 2, 9_000);
      expect(made).toHaveLength(1); // the round did get stuck
      expect(made[0]!()).toBe(false); // and listKeys had not yet given up on it for a fresh listing: the worker moved on by itself
      expect(Date.now() - started).toBeLessThan(9_000);
    } finally {
      await worker.stop();
    }
  });
});

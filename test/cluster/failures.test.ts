// Partitions that keep failing, on a real nats-server: the failure record in KV backs a
// partition off (for every worker) and parks it after too many failures in a row, status
// shows it, an operator clears it; an Object Store that refuses puts fails the run after
// a few refused commits instead of training on without ever committing.
import { describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { readCommit } from '../../cluster/commits.ts';
import type { ClusterEvent } from '../../cluster/events.ts';
import { clearFailures, readFailure } from '../../cluster/failures.ts';
import { partitionKey } from '../../cluster/names.ts';
import { type Cluster, openCluster } from '../../cluster/open.ts';
import { ClusterPublisher } from '../../cluster/publisher.ts';
import { startGateway } from '../../cluster/gateway.ts';
import { clusterStatus } from '../../cluster/status.ts';
import { ClusterWorker } from '../../cluster/worker.ts';
import { BATCH, natsForThisFile, readings, testModel, until as untilFixture } from './fixture.ts';

let nc: NatsConnection;
natsForThisFile((connection) => { nc = connection; });

const until = (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 40_000) => untilFixture(what, check, timeoutMs);

/** `count` good readings (whole batches) on `partition`. */
async function publish(cluster: Cluster, partition: number, count: number, seed: number): Promise<void> {
  const publisher = new ClusterPublisher(cluster, { batchSize: 20, producer: `p${partition}-${seed}` });
  for (const r of readings(count, 1, seed)) await publisher.addTo(partition, r.line);
  await publisher.flush();
}

describe('partitions that keep failing', () => {
  it('a checkpoint that cannot load: backoff between tries across workers, parked after the cap, shown by status, trained again once cleared', async () => {
    const cluster = await openCluster(nc, { name: 'poison', partitions: 2, leaseTtlMs: 1000 });
    // partition 0's commit record names a checkpoint that is not in the Object Store
    await cluster.commits.create(partitionKey(0), JSON.stringify({ partition: 0, epoch: 1, owner: 'gone', seq: 0, within: 0, records: 0, steps: 0, samples: 0, object: 'p0/e1.1', digest: 'x', time: Date.now() }));
    await publish(cluster, 0, 10 * BATCH, 1);
    await publish(cluster, 1, 10 * BATCH, 2);
    const backoff = { baseMs: 400, maxMs: 5000, maxFailures: 3 };
    const events: ClusterEvent[] = [];
    const workers = ['a', 'b'].map((id) => new ClusterWorker({ cluster, id, model: testModel, checkpointEveryMs: 100, backoff }));
    const gateway = await startGateway({ cluster, port: 0 });
    const metrics = async () => (await fetch(`${gateway.url.replace(/\/$/, '')}/metrics`)).text();
    for (const w of workers) {
      w.events.subscribe((e) => events.push(e));
      void w.start();
    }
    try {
      await until('partition 0 parked', () => events.some((e) => e.type === 'partition-parked' && e.partition === 0));
      await until('partition 1 committed', async () => (await readCommit(cluster, 1))?.record.records === 10 * BATCH);
      const failures = events.filter((e) => e.type === 'partition-failed' && e.partition === 0);
      expect(failures.map((e) => e.detail?.failures)).toEqual([1, 2, 3]);
      expect(failures.every((e) => e.detail?.code === 'SG_ERR_CHECKPOINT' && /missing/.test(String(e.detail?.message)))).toBe(true);
      expect(failures.map((e) => e.detail?.parked)).toEqual([false, false, true]);
      // each try waited for the backoff of the failure before it, 400 ms then 800 ms (whichever
      // worker tried), as the failure record's clock has it: an event is stamped a few ms after
      // the record (399 < 400 was seen between two events' stamps)
      const retryAt = failures.map((e) => Number(e.detail?.retryAt));
      expect(failures[1]!.time).toBeGreaterThanOrEqual(retryAt[0]!);
      expect(failures[2]!.time).toBeGreaterThanOrEqual(retryAt[1]!);
      expect(retryAt[1]! - retryAt[0]!).toBeGreaterThanOrEqual(800); // the second try came after the first backoff, and doubled it
      // parked: nobody tries again, however long
      await new Promise((r) => setTimeout(r, 2500));
      expect(events.filter((e) => e.type === 'partition-failed' && e.partition === 0)).toHaveLength(3);
      expect(events.some((e) => e.type === 'partition-failed' && e.partition === 1)).toBe(false);
      const failure = await readFailure(cluster, 0);
      expect(failure!.record).toMatchObject({ partition: 0, failures: 3, parked: true, last: { code: 'SG_ERR_CHECKPOINT' } });
      const status = await clusterStatus(cluster);
      expect(status.rows[0]).toMatchObject({ partition: 0, owner: null, failures: 3, parked: true, retryAt: null, lastFailure: { code: 'SG_ERR_CHECKPOINT' } });
      expect(status.rows[1]).toMatchObject({ partition: 1, records: 10 * BATCH, failures: 0, parked: false, lastFailure: null });
      // a gateway's /metrics shows it
      await until('/metrics shows the parked partition', async () => (await metrics()).includes('streamgrad_cluster_partition_parked{partition="0"} 1'));
      expect(await metrics()).toContain('streamgrad_cluster_partition_failures{partition="0"} 3');

      // the operator repairs the partition (here: drops its broken commit record) and clears it
      await cluster.commits.purge(partitionKey(0));
      expect(await clearFailures(cluster)).toEqual([0]);
      await until('partition 0 trained and committed', async () => (await readCommit(cluster, 0))?.record.records === 10 * BATCH);
      // progress clears the record: the next failure counts from 1 again
      await until('the failure record cleared', async () => (await readFailure(cluster, 0)) === null);
      expect(events.filter((e) => e.type === 'partition-failed')).toHaveLength(3);
      await until('/metrics no longer shows it', async () => !(await metrics()).includes('streamgrad_cluster_partition_parked{partition="0"}'));
    } finally {
      await gateway.close();
      await Promise.all(workers.map((w) => w.stop()));
    }
  }, 90_000);

  it('an Object Store that refuses every put fails the run after 3 refused commits; the failure is counted and training resumes once puts go through', async () => {
    const cluster = await openCluster(nc, { name: 'full', partitions: 1, leaseTtlMs: 1000 });
    const objects = `OBJ_${cluster.names.checkpoints}`;
    const config = (await cluster.jsm.streams.info(objects)).config;
    await cluster.jsm.streams.update(objects, { ...config, max_bytes: 1000 }); // smaller than any checkpoint
    const events: ClusterEvent[] = [];
    const worker = new ClusterWorker({ cluster, id: 'w', model: testModel, checkpointEveryMs: 100, backoff: { baseMs: 2000, maxMs: 2000, maxFailures: 5 } });
    worker.events.subscribe((e) => events.push(e));
    void worker.start();
    try {
      // a live stream: a commit is tried at a step boundary at least every 100 ms while data comes
      let sent = 0;
      await until('the partition failed', async () => {
        if (sent < 40) await publish(cluster, 0, BATCH, 100 + sent++);
        return events.some((e) => e.type === 'partition-failed');
      });
      const total = sent * BATCH;
      const refused = events.filter((e) => e.type === 'commit-failed');
      expect(refused.length).toBe(3);
      expect(refused.every((e) => e.detail?.refused === true && /maximum bytes exceeded/.test(String(e.detail?.message)))).toBe(true);
      const failed = events.find((e) => e.type === 'partition-failed')!;
      expect(failed.detail).toMatchObject({ code: 'SG_ERR_CHECKPOINT', failures: 1, parked: false });
      expect((await readCommit(cluster, 0))!.record.object).toBeNull(); // nothing committed
      const record = (await readFailure(cluster, 0))!.record;
      expect(record.failures).toBe(1);
      expect(record.retryAt - record.last.time).toBe(2000);
      // the store has room again: after the backoff the partition trains, commits, and its failure record goes
      await cluster.jsm.streams.update(objects, { ...config, max_bytes: -1 });
      await until('committed', async () => (await readCommit(cluster, 0))?.record.records === total);
      await until('the failure record cleared', async () => (await readFailure(cluster, 0)) === null);
      const acquired = events.filter((e) => e.type === 'acquired').map((e) => e.time);
      expect(acquired).toHaveLength(2);
      // not before the backoff's end as the record has it (the failure event is stamped a few ms after the record's clock)
      expect(acquired[1]!).toBeGreaterThanOrEqual(record.retryAt);
    } finally {
      await worker.stop();
    }
  }, 90_000);
});

// A live stream's last partial batch, on a real nats-server: the publisher sends a partial
// message after its linger, the partition's owner marks the quiet stream with a cut and
// trains the partial batch there, and a new owner after a failover cuts at the same place
// (the cut is in the stream), so the models stay bitwise a single-process replay.
import { describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { fence, readCommit } from '../../cluster/commits.ts';
import type { ClusterEvent } from '../../cluster/events.ts';
import { type Cluster, openCluster } from '../../cluster/open.ts';
import { PartitionRun } from '../../cluster/partition-run.ts';
import { CUT_HEADER } from '../../cluster/partition-source.ts';
import { ClusterPublisher } from '../../cluster/publisher.ts';
import { ClusterWorker } from '../../cluster/worker.ts';
import { hashOf } from '../helpers/streams.ts';
import { BATCH, committed, cutsOf, natsForThisFile, readings, replay, testModel, until } from './fixture.ts';

let nc: NatsConnection;
natsForThisFile((connection) => { nc = connection; });

/** The partition's stored messages: records per message, `'cut'` for a cut marker. */
async function messages(cluster: Cluster, partition: number): Promise<(number | 'cut')[]> {
  const consumer = await cluster.js.consumers.get(cluster.names.stream, { filter_subjects: cluster.names.subject(partition) });
  const out: (number | 'cut')[] = [];
  for (;;) {
    const msg = await consumer.next({ expires: 1000 });
    if (msg === null) return out;
    out.push(msg.headers?.get(CUT_HEADER) === '1' ? 'cut' : msg.string().split('\n').length);
  }
}

describe('a live stream that goes quiet', () => {
  it('the publisher sends a partial message after its linger; nothing is sent before', async () => {
    const cluster = await openCluster(nc, { name: 'pub-linger', partitions: 1 });
    const publisher = new ClusterPublisher(cluster, { batchSize: 50, lingerMs: 1500, producer: 'quiet' });
    const added = Date.now();
    for (const r of readings(10, 1, 1)) publisher.addTo(0, r.line);
    const stored = async () => (await cluster.jsm.streams.info(cluster.names.stream)).state.messages;
    expect(await stored()).toBe(0); // still lingering
    await until('the partial message stored', async () => (await stored()) === 1);
    expect(Date.now() - added).toBeGreaterThanOrEqual(1500);
    await until('the partial message stored', async () => (await messages(cluster, 0)).length === 1);
    expect(await messages(cluster, 0)).toEqual([10]);
    expect(publisher.stats).toMatchObject({ records: 10, batches: 1 });
  });

  it('a worker trains the 10 records a producer sent before going quiet, and commits them', async () => {
    const cluster = await openCluster(nc, { name: 'quiet', partitions: 1 });
    const events: ClusterEvent[] = [];
    const worker = new ClusterWorker({ cluster, id: 'w', model: testModel, checkpointEveryMs: 100, lingerMs: 300 });
    worker.events.subscribe((e) => events.push(e));
    void worker.start();
    try {
      const publisher = new ClusterPublisher(cluster, { batchSize: 50, producer: 'sensor' }); // its default 20 ms linger
      const lines = readings(23, 1, 2).map((r) => r.line);
      for (const line of lines.slice(0, 10)) publisher.addTo(0, line); // no flush: the producer just goes quiet
      await until('10 records committed', async () => (await readCommit(cluster, 0))?.record.records === 10);
      expect((await readCommit(cluster, 0))!.record.steps).toBe(2); // a batch of 8 and the partial one of 2
      for (const line of lines.slice(10)) publisher.addTo(0, line);
      await until('23 records committed', async () => (await readCommit(cluster, 0))?.record.records === 23);
      expect(cutsOf(events, 0)).toEqual([10, 23]);
      await until('purged up to the commit, markers included', async () => (await messages(cluster, 0)).length === 0);
      const remote = (await committed(cluster, 0))!.fingerprint;
      expect(remote).toEqual((await replay(0, lines, [10, 23])).fingerprint);
      expect(remote.steps).toBe(4); // 8 + 2 (cut), 8 + 5 (cut)
      expect(BATCH).toBe(8);
    } finally {
      await worker.stop();
    }
  });

  it('after a failover the new owner cuts where the marker is, not where its own timer would', async () => {
    const cluster = await openCluster(nc, { name: 'cut-failover', partitions: 1 });
    const events: ClusterEvent[] = [];
    const onEvent = (e: ClusterEvent) => events.push(e);
    // the first owner cuts after the quiet but commits only on request (never, here)
    const first = await PartitionRun.start({ cluster, partition: 0, owner: 'a', model: testModel, checkpointEveryMs: 3_600_000, lingerMs: 200, purge: false, onEvent });
    const publisher = new ClusterPublisher(cluster, { batchSize: 50, producer: 'p' });
    const lines = readings(30, 1, 4).map((r) => r.line);
    for (const line of lines.slice(0, 11)) publisher.addTo(0, line);
    await publisher.flush();
    await until('the first owner cut', () => events.some((e) => e.type === 'cut'));
    await until('the first owner trained the partial batch', () => first.run.trainer.counters.samples === 11);
    const firstParams = hashOf(first.run.trainer.model.params);
    // it dies without a commit; a successor fences the partition and starts over from nothing committed
    await fence(cluster, 0, 'b');
    first.abort('gone');
    await first.finished;
    for (const line of lines.slice(11, 19)) publisher.addTo(0, line); // more records right behind the marker
    await publisher.flush();
    const second = await PartitionRun.start({ cluster, partition: 0, owner: 'b', model: testModel, checkpointEveryMs: 100, lingerMs: 60_000, purge: false, onEvent });
    // with a linger of a minute its own timer cuts nothing here: the marker in the stream does
    await until('the successor committed 19 records', async () => (await readCommit(cluster, 0))?.record.records === 19);
    expect(events.filter((e) => e.type === 'cut').map((e) => [e.worker, e.detail?.records])).toEqual([['a', 11], ['b', 11]]);
    expect(hashOf(second.run.trainer.model.params)).not.toBe(firstParams); // it went on past the cut
    await second.stop();
    expect((await messages(cluster, 0))).toEqual([11, 'cut', 8]);
    // batches of 8 and 3 (the cut), then 8: bitwise the replay with its cut
    const remote = (await committed(cluster, 0))!.fingerprint;
    expect(remote.steps).toBe(3);
    expect(remote).toEqual((await replay(0, lines.slice(0, 19), [11])).fingerprint);
  });
});

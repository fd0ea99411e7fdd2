// Cluster runs on a real nats-server (test/helpers/nats-server.ts), in one process: the
// commit protocol, exact resume across owners, dead letters, fencing.
import { describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { fence, readCommit } from '../../cluster/commits.ts';
import type { ClusterEvent } from '../../cluster/events.ts';
import { Leases } from '../../cluster/leases.ts';
import { type Cluster, openCluster } from '../../cluster/open.ts';
import { PartitionRun } from '../../cluster/partition-run.ts';
import { ClusterPublisher } from '../../cluster/publisher.ts';
import { ClusterWorker } from '../../cluster/worker.ts';
import { StreamgradError } from '../../core/errors.ts';
import { byPartition, committed, cutsOf, natsForThisFile, padding, readings, replay, testModel, until } from './fixture.ts';

let nc: NatsConnection;
natsForThisFile((connection) => { nc = connection; });

async function publishAll(cluster: Cluster, lines: { key: string; line: string }[], batchSize = 20): Promise<ClusterPublisher> {
  const publisher = new ClusterPublisher(cluster, { batchSize, producer: 'test' });
  for (const r of lines) await publisher.add(r.key, r.line);
  await publisher.flush();
  return publisher;
}

describe('cluster on nats-server', () => {
  it('opening checks its settings: a cluster run keeps the partitions it was created with', async () => {
    await openCluster(nc, { name: 'settings', partitions: 4 });
    const again = await openCluster(nc, { name: 'settings' });
    expect(again.partitions).toBe(4);
    await expect(openCluster(nc, { name: 'settings', partitions: 5 })).rejects.toMatchObject({ code: 'SG_ERR_CONFIG', field: 'cluster.partitions' });
    await expect(openCluster(nc, { name: 'missing' })).rejects.toMatchObject({ code: 'SG_ERR_CONFIG', field: 'cluster.partitions' });
    await expect(openCluster(nc, { name: 'a.b', partitions: 1 })).rejects.toThrow(StreamgradError);
  });

  it('a batch published twice with its message id is stored once', async () => {
    const cluster = await openCluster(nc, { name: 'dedup', partitions: 2 });
    const data = readings(100, 5);
    const first = await publishAll(cluster, data);
    const again = await publishAll(cluster, data); // same producer id, same batches: a replay after a crash
    expect(first.stats.duplicates).toBe(0);
    expect(again.stats.duplicates).toBe(again.stats.batches);
    const info = await cluster.jsm.streams.info(cluster.names.stream);
    expect(info.state.messages).toBe(first.stats.batches);
  });

  it('one worker trains every partition; each committed model is bitwise a single-process run over its samples, bad records dead-lettered as locally', async () => {
    const partitions = 3;
    const cluster = await openCluster(nc, { name: 'single', partitions, leaseTtlMs: 3000 });
    const data = readings(3000, 12, 5, true);
    const expected = byPartition(data, partitions);
    const pads = await Promise.all(expected.map((lines, p) => padding(p, lines)));
    const publisher = new ClusterPublisher(cluster, { batchSize: 25, producer: 'p1' });
    // every 310 steps (inside a 25-record batch) as well as by time, so commits land mid-stream however fast the machine is
    const worker = new ClusterWorker({ cluster, id: 'solo', model: testModel, checkpointEveryMs: 150, checkpointEverySteps: 310 });
    const events: ClusterEvent[] = [];
    worker.events.subscribe((e) => events.push(e));
    void worker.start();
    // publish while it trains: a live stream, commits land in the middle of batches
    for (const [i, r] of data.entries()) {
      await publisher.add(r.key, r.line);
      if (i % 500 === 0) await new Promise((r) => setTimeout(r, 30));
    }
    for (const [p, lines] of pads.entries()) for (const line of lines) await publisher.addTo(p, line);
    await publisher.flush();
    for (const [p, lines] of pads.entries()) expected[p]!.push(...lines);
    await until('every partition committed to its end', async () => {
      for (let p = 0; p < partitions; p++) if ((await readCommit(cluster, p))?.record.records !== expected[p]!.length) return false;
      return true;
    });
    expect(worker.partitions()).toEqual([0, 1, 2]);
    for (let p = 0; p < partitions; p++) {
      const local = await replay(p, expected[p]!, cutsOf(events, p));
      const remote = await committed(cluster, p);
      expect(remote!.fingerprint).toEqual(local.fingerprint);
      expect(local.fingerprint.rejected).toBeGreaterThan(0);
      // the same typed rejections as the local run: code, field and the record's text
      const dead = await deadLetters(cluster, p);
      expect(dead.map((d) => [d.code, d.field, d.raw])).toEqual(local.letters.letters.map((d) => [d.code, d.field, d.raw]));
      expect(dead.every((d) => d.source === 'nats' && /^\d+:\d+$/.test(d.messageId))).toBe(true);
    }
    // at least one commit per partition (how many more depends on how fast this machine trains
    // against the publisher; the bitwise checks above hold however the commits fell)
    expect(events.filter((e) => e.type === 'committed').length).toBeGreaterThanOrEqual(partitions);
    // retention bounded by progress: the committed messages are purged
    const info = await cluster.jsm.streams.info(cluster.names.stream);
    expect(info.state.messages).toBeLessThan(publisher.stats.batches);
    await worker.stop();
    expect(events.at(-1)?.type).toBe('left');
    expect((await new Leases(cluster, 'x').holders()).size).toBe(0);
  });

  it('a new owner continues from the committed checkpoint, and the old owner, fenced, cannot commit over it', async () => {
    const cluster = await openCluster(nc, { name: 'fence', partitions: 1 });
    const data = readings(800, 3, 9);
    const lines = data.map((r) => r.line);
    const publisher = new ClusterPublisher(cluster, { batchSize: 30, producer: 'p' });
    for (const r of data.slice(0, 400)) await publisher.addTo(0, r.line);
    await publisher.flush();
    const events: ClusterEvent[] = [];
    const onEvent = (e: ClusterEvent) => events.push(e);
    const first = await PartitionRun.start({ cluster, partition: 0, owner: 'a', model: testModel, checkpointEveryMs: 100, onEvent });
    await until('a commit of all 400', async () => (await readCommit(cluster, 0))?.record.records === 400);
    // a successor takes over (as after a lost lease) while the first, a zombie, still runs
    const successor = await fence(cluster, 0, 'b');
    expect(successor.record.epoch).toBe(2);
    for (const r of data.slice(400, 504)) await publisher.addTo(0, r.line); // whole batches of 8: the zombie reaches a step boundary and tries to commit
    await publisher.flush();
    await first.finished;
    expect(events.some((e) => e.type === 'commit-rejected' && e.worker === 'a')).toBe(true);
    expect(first.run.state).toBe('failed');
    expect(first.run.error).toMatchObject({ code: 'SG_ERR_CHECKPOINT', field: 'commit' });
    expect((await readCommit(cluster, 0))!.record).toMatchObject({ owner: 'b', records: 400 });
    // the successor's run (epoch 3 after its own fence) restores the commit and trains the rest
    const second = await PartitionRun.start({ cluster, partition: 0, owner: 'b', model: testModel, checkpointEveryMs: 100, onEvent });
    for (const r of data.slice(504)) await publisher.addTo(0, r.line);
    await publisher.flush();
    await until('a commit of all 800', async () => (await readCommit(cluster, 0))?.record.records === 800);
    await second.stop();
    expect((await committed(cluster, 0))!.fingerprint).toEqual((await replay(0, lines, cutsOf(events, 0))).fingerprint);
    expect(events.filter((e) => e.type === 'restored' && e.worker === 'b')).toHaveLength(1);
  });
});

async function deadLetters(cluster: Cluster, partition: number): Promise<Record<string, string>[]> {
  const consumer = await cluster.js.consumers.get(cluster.names.deadStream, { filter_subjects: cluster.names.deadSubject(partition) });
  const out: Record<string, string>[] = [];
  for (;;) {
    const msg = await consumer.next({ expires: 1000 });
    if (msg === null) break;
    out.push(msg.json());
  }
  return out;
}

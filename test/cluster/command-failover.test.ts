// Commands across a failover: the partition's owner saves the command ids it applied (and
// their outcomes) in the checkpoint it commits, with the state those commands changed, and
// the next owner loads them before it answers a command. A client that got no ack from an
// owner that died resends the same id to the next one and is acked `duplicate: true`,
// without a second application, as long as the commit it continues from holds the command;
// a command the last commit did not hold is lost with its effect and applied again.
import { afterAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { readCommit } from '../../cluster/commits.ts';
import { startGateway } from '../../cluster/gateway.ts';
import { type Cluster, openCluster } from '../../cluster/open.ts';
import { ClusterPublisher } from '../../cluster/publisher.ts';
import { createHash } from 'node:crypto';
import type { ClusterEvent } from '../../cluster/events.ts';
import { partitionKey } from '../../cluster/names.ts';
import { ClusterWorker } from '../../cluster/worker.ts';
import { type CheckpointHeader, decodeCheckpoint, encodeCheckpoint, restoreCheckpoint } from '../../pipeline/checkpoint.ts';
import { commandKey } from '../../server/applied-once.ts';
import type { ServerMessage } from '../../server/protocol.ts';
import type { NatsServer } from '../helpers/nats-server.ts';
import { connect, type TestClient, TOKEN } from '../server/helpers.ts';
import { BATCH, natsForThisFile, owned, readings, startWorkerProcess, testModel, until, type WorkerProcess } from './fixture.ts';

let nc: NatsConnection;
let server: NatsServer;
natsForThisFile((connection, started) => { nc = connection; server = started; });
const workers: WorkerProcess[] = [];
afterAll(() => {
  for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
});

/**
 * Sends `command` until an owner answers it: right after a failover the gateway may still
 * wait for the dead owner's lease to expire and answer `SG_ERR_STATE` (not sent, or no
 * answer) — the protocol's client then resends with the same id, as here.
 */
async function resend(client: TestClient, command: { type: string; id: string; [k: string]: unknown }): Promise<ServerMessage> {
  let answer: ServerMessage | undefined;
  await until(`an owner's answer to ${command.id}`, async () => {
    answer = await client.command(command);
    return !(answer.type === 'error' && answer.code === 'SG_ERR_STATE');
  });
  return answer!;
}

/** The header of partition `p`'s committed checkpoint. */
async function committedHeader(cluster: Cluster, p: number): Promise<CheckpointHeader> {
  const commit = await readCommit(cluster, p);
  return decodeCheckpoint((await cluster.checkpoints.getBlob(commit!.record.object!))!).header;
}

// Once, under the default backend: this is about the commands' memory, not the kernels.
describe.skipIf(process.env.STREAMGRAD_BACKEND === 'js')('commands across a failover', () => {
  it('an owner killed after committing a reset and two learning rates: the next owner acks the same ids again with duplicate: true and the first outcomes, nothing reset or set back; a command after the last commit is applied again, as its effect was lost', async () => {
    const name = 'cmdfail';
    const cluster = await openCluster(nc, { name, partitions: 1, leaseTtlMs: 1500 });
    const a = startWorkerProcess(server.servers, name, 'a');
    workers.push(a);
    await until('worker a owns p0', () => owned(a).has(0));
    const gateway = await startGateway({ cluster, id: `${name}-g`, port: 0, token: TOKEN });
    const publisher = new ClusterPublisher(cluster, { batchSize: 20, producer: name, lingerMs: 0 });
    const client = await connect(gateway, { token: TOKEN });
    // the resends go through another gateway (the client lost its own too): one that never saw the ids
    const other = await startGateway({ cluster, id: `${name}-h`, port: 0, token: TOKEN });
    const again = await connect(other, { token: TOKEN });
    try {
      const publish = async (count: number, seed: number, total: number) => {
        for (const r of readings(count, 1, seed)) await publisher.add(r.key, r.line);
        await publisher.flush();
        await until(`${total} records committed`, async () => (await readCommit(cluster, 0))?.record.records === total);
      };
      await publish(160, 41, 160);
      await until('both gateways serve p0', () => [gateway, other].every((g) => g.runs().includes('p0')));

      const reset = await resend(client, { type: 'reset', id: 'reset-1', run: 'p0' });
      expect(reset).toMatchObject({ type: 'ack', duplicate: false, result: { step: 20 } });
      // training goes on after the reset: applied again, it would throw that away
      await publish(80, 42, 240);
      expect(await client.command({ type: 'setLearningRate', id: 'lr-1', run: 'p0', learningRate: 0.005 })).toMatchObject({ type: 'ack', duplicate: false });
      expect(await client.command({ type: 'setLearningRate', id: 'lr-2', run: 'p0', learningRate: 0.002 })).toMatchObject({ type: 'ack', duplicate: false });
      // the ids applied so far are in the commit this command asks for (its own goes with the next)
      expect(await client.command({ type: 'checkpoint', id: 'ckpt-1', run: 'p0' })).toMatchObject({ type: 'ack', duplicate: false });
      const before = await committedHeader(cluster, 0);
      expect(before.optimizer).toMatchObject({ learningRate: 0.002, t: 10 });
      // newest first; ckpt-1 was being applied while its commit was written: it goes with the next
      expect(before.sections.commands).toEqual([
        { key: commandKey('p0', 'lr-2'), result: { learningRate: 0.002 } },
        { key: commandKey('p0', 'lr-1'), result: { learningRate: 0.005 } },
        { key: commandKey('p0', 'reset-1'), result: { step: 20 } },
      ]);
      // applied after the last commit (a learning rate is no progress: nothing commits it)
      expect(await client.command({ type: 'setLearningRate', id: 'lr-3', run: 'p0', learningRate: 0.003 })).toMatchObject({ type: 'ack', duplicate: false });

      a.child.kill('SIGKILL');
      const b = startWorkerProcess(server.servers, name, 'b');
      workers.push(b);
      await until('worker b took p0 over', () => owned(b).has(0), 20_000);

      // the client never got these acks (its owner died): it resends the same ids
      expect(await resend(again, { type: 'reset', id: 'reset-1', run: 'p0' })).toMatchObject({ type: 'ack', id: 'reset-1', duplicate: true, result: { step: 20 } });
      expect(await resend(again, { type: 'setLearningRate', id: 'lr-1', run: 'p0', learningRate: 0.005 })).toMatchObject({ type: 'ack', duplicate: true, result: { learningRate: 0.005 } });
      // lost with the owner that applied it, and with its effect: applied again, once
      expect(await resend(again, { type: 'setLearningRate', id: 'lr-3', run: 'p0', learningRate: 0.003 })).toMatchObject({ type: 'ack', duplicate: false, result: { learningRate: 0.003 } });
      expect(await resend(again, { type: 'setLearningRate', id: 'lr-3', run: 'p0', learningRate: 0.003 })).toMatchObject({ type: 'ack', duplicate: true });
      expect(await resend(again, { type: 'checkpoint', id: 'ckpt-2', run: 'p0' })).toMatchObject({ type: 'ack', duplicate: false });
      const after = await committedHeader(cluster, 0);
      // not reset (t and the steps since the reset kept), the learning rate lr-3's
      expect(after.optimizer).toMatchObject({ learningRate: 0.003, t: 10 });
      expect(after.counters.steps).toBe(before.counters.steps);
      expect(b.events.filter((e) => e.type === 'partition-failed')).toEqual([]);
    } finally {
      client.ws.close();
      again.ws.close();
      await publisher.flush().catch(() => undefined);
      await gateway.close();
      await other.close();
      for (const w of workers) w.child.kill('SIGKILL');
    }
  }, 90_000);

  it('a committed checkpoint whose commands section is malformed (a key twice) is refused by the next owner with SG_ERR_CHECKPOINT naming the entry: the partition fails, never trained on a memory nobody wrote', async () => {
    const cluster = await openCluster(nc, { name: 'cmdbad', partitions: 1, leaseTtlMs: 1000 });
    const publisher = new ClusterPublisher(cluster, { batchSize: 20, producer: 'cmdbad', lingerMs: 0 });
    for (const r of readings(4 * BATCH, 1, 43)) await publisher.add(r.key, r.line);
    await publisher.flush();
    const first = new ClusterWorker({ cluster, id: 'cmdbad-a', model: testModel, checkpointEveryMs: 100 });
    void first.start();
    await until('the first owner committed', async () => (await readCommit(cluster, 0))?.record.records === 4 * BATCH);
    await first.stop();

    // the committed checkpoint again, with a section no owner writes: the same key twice
    const { record } = (await readCommit(cluster, 0))!;
    const checkpoint = decodeCheckpoint((await cluster.checkpoints.getBlob(record.object!))!);
    const { trainer } = testModel(0);
    restoreCheckpoint(trainer, checkpoint);
    const key = commandKey('p0', 'c-1');
    const arrays = Object.fromEntries([...checkpoint.arrays].filter(([name]) => name.startsWith('metrics.')));
    const bytes = encodeCheckpoint({ trainer, sourceOffset: checkpoint.header.sourceOffset, arrays, sections: { ...checkpoint.header.sections, commands: [{ key, result: { step: 1 } }, { key, result: { step: 2 } }] } });
    const object = `${record.object!}.forged`;
    await cluster.checkpoints.putBlob({ name: object }, bytes);
    await cluster.commits.put(partitionKey(0), JSON.stringify({ ...record, object, digest: createHash('sha256').update(bytes).digest('hex') }));

    const events: ClusterEvent[] = [];
    const next = new ClusterWorker({ cluster, id: 'cmdbad-b', model: testModel, checkpointEveryMs: 100, backoff: { baseMs: 200, maxMs: 400, maxFailures: 1 } });
    next.events.subscribe((e) => events.push(e));
    void next.start();
    try {
      await until('the partition failed', () => events.some((e) => e.type === 'partition-failed'));
      expect(events.find((e) => e.type === 'partition-failed')?.detail).toMatchObject({ code: 'SG_ERR_CHECKPOINT', message: expect.stringMatching(/sections\.commands\[1\]\.key: appears twice/) });
      expect(events.some((e) => e.type === 'acquired')).toBe(false);
      expect((await readCommit(cluster, 0))!.record.object).toBe(object); // nothing committed over it
    } finally {
      await next.stop();
    }
  }, 60_000);
});

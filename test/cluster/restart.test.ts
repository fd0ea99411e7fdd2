// nats-server restarted mid-run with its store on disk: the producer retries (same message
// ids), the worker reconnects and continues, nothing is lost or trained twice.
import { afterAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { readCommit } from '../../cluster/commits.ts';
import type { ClusterEvent } from '../../cluster/events.ts';
import { connectNats, openCluster } from '../../cluster/open.ts';
import { ClusterPublisher } from '../../cluster/publisher.ts';
import { ClusterWorker } from '../../cluster/worker.ts';
import { natsServerForThisFile } from '../helpers/nats-server.ts';
import { byPartition, committed, cutsOf, padding, readings, replay, testModel } from './fixture.ts';

const server = natsServerForThisFile();
const connections: NatsConnection[] = [];

afterAll(async () => {
  for (const nc of connections) await nc.close().catch(() => undefined);
});

// Once, under the default backend: this tests the transport and the command line, which do not
// depend on the kernels; the bitwise tests (cluster.test.ts, failover.test.ts) run under both.
describe.skipIf(process.env.STREAMGRAD_BACKEND === 'js')('a nats-server restart mid-run', () => {
  it('workers reconnect and continue; every sample trained once, models bitwise single-process', async () => {
    const partitions = 2;
    const producerNc = await connectNats(server.servers, 'producer');
    const workerNc = await connectNats(server.servers, 'worker');
    connections.push(producerNc, workerNc);
    const producerSide = await openCluster(producerNc, { name: 'restart', partitions, leaseTtlMs: 3000 });
    const workerSide = await openCluster(workerNc, { name: 'restart' });
    const data = readings(8000, 20, 21, true);
    const expected = byPartition(data, partitions);
    const pads = await Promise.all(expected.map((lines, p) => padding(p, lines)));
    for (const [p, lines] of pads.entries()) expected[p]!.push(...lines);

    const worker = new ClusterWorker({ cluster: workerSide, id: 'steady', model: testModel, checkpointEveryMs: 200 });
    const events: ClusterEvent[] = [];
    worker.events.subscribe((e) => events.push(e));
    void worker.start();

    const publisher = new ClusterPublisher(producerSide, { batchSize: 40, producer: 'steady-producer' });
    let restarted = false;
    for (let i = 0; i < data.length; i++) {
      const waiting = publisher.add(data[i]!.key, data[i]!.line);
      if (waiting !== undefined) await waiting;
      if (i % 500 === 499) await new Promise((r) => setTimeout(r, 100));
      if (i === 4000) {
        // mid-run, with batches in flight: stop the server (SIGTERM, store kept) and bring it back
        void (async () => {
          await server.halt();
          await new Promise((r) => setTimeout(r, 1000));
          await server.start();
          restarted = true;
        })();
      }
    }
    for (const [p, lines] of pads.entries()) for (const line of lines) await publisher.addTo(p, line);
    await publisher.flush();
    expect(restarted).toBe(true);
    expect(publisher.stats.retries).toBeGreaterThan(0);

    const started = Date.now();
    for (;;) {
      const commits = await Promise.all([0, 1].map((p) => readCommit(workerSide, p).catch(() => null)));
      if (commits.every((c, p) => c?.record.records === expected[p]!.length)) break;
      if (Date.now() - started > 40_000) throw new Error(`not all committed: ${JSON.stringify(commits.map((c) => c?.record.records))} of ${expected.map((e) => e.length)}; ${events.filter((e) => e.type !== 'committed').map((e) => `${e.type}:${e.partition}`).join(' ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (let p = 0; p < partitions; p++) {
      expect((await committed(workerSide, p))!.fingerprint, `partition ${p}`).toEqual((await replay(p, expected[p]!, cutsOf(events, p))).fingerprint);
    }
    await worker.stop();
  }, 90_000);
});

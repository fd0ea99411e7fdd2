// Commands through several gateways: the promise of server/PROTOCOL.md ("applied at most
// once per (run, id), also from a new connection") holds in a cluster run, where a client
// that loses its gateway resends through another one. Each gateway remembers only what
// went through it; the partition's owner remembers what it applied, so the same id
// through a second gateway is acked again with `duplicate: true` and not applied twice.
import { describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { readCommit } from '../../cluster/commits.ts';
import { ClusterPublisher } from '../../cluster/publisher.ts';
import { decodeCheckpoint } from '../../pipeline/checkpoint.ts';
import { connect, TOKEN } from '../server/helpers.ts';
import { natsForThisFile, readings, until, workerAndTwoGateways } from './fixture.ts';

let nc: NatsConnection;
natsForThisFile((connection) => { nc = connection; });

// Once, under the default backend: this is about routing commands, not the kernels.
describe.skipIf(process.env.STREAMGRAD_BACKEND === 'js')('commands through two gateways', () => {
  it('the same command id through gateway A, then gateway B (and through both at once), is applied once by the partition\'s owner and acked twice, the second with duplicate: true; a request on the owner\'s control subject that is not a command is refused with the protocol\'s codes', async () => {
    const { cluster, worker, gateways } = await workerAndTwoGateways(nc, 'once', 1, TOKEN);
    const publisher = new ClusterPublisher(cluster, { batchSize: 20, producer: 'once', lingerMs: 0 });
    try {
      const [a, b] = [await connect(gateways[0]!, { token: TOKEN }), await connect(gateways[1]!, { token: TOKEN })];
      for (const r of readings(200, 4, 31)) await publisher.add(r.key, r.line);
      await publisher.flush();
      const steps = () => worker.run(0)?.run.trainer.counters.steps ?? 0;
      await until('the partition trains', () => steps() > 0);
      await until('both gateways serve p0', () => gateways.every((g) => g.runs().includes('p0')));
      expect(await a.command({ type: 'pause', id: 'pause-1', run: 'p0' })).toMatchObject({ type: 'ack', duplicate: false, result: { state: 'paused' } });
      // more data while paused: a step has a batch to train
      for (const r of readings(400, 4, 32)) await publisher.add(r.key, r.line);
      await publisher.flush();
      const paused = steps();

      const first = await a.command({ type: 'step', id: 'step-1', run: 'p0' });
      expect(first).toMatchObject({ type: 'ack', id: 'step-1', command: 'step', duplicate: false, result: { step: paused + 1 } });
      expect(steps()).toBe(paused + 1);
      // the ack was lost; the client reconnected to the other gateway and resends the same id
      const again = await b.command({ type: 'step', id: 'step-1', run: 'p0' });
      expect(again).toMatchObject({ type: 'ack', id: 'step-1', command: 'step', duplicate: true, result: { step: paused + 1 } });
      expect(steps()).toBe(paused + 1);

      // through both gateways at once, before either was answered: still one step
      a.send({ type: 'step', id: 'step-2', run: 'p0' });
      b.send({ type: 'step', id: 'step-2', run: 'p0' });
      const acks = [await a.next('ack', (m) => m.id === 'step-2'), await b.next('ack', (m) => m.id === 'step-2')];
      expect(acks.map((m) => m.duplicate).sort()).toEqual([false, true]);
      expect(acks.map((m) => m.result)).toEqual([{ step: paused + 2, loss: expect.any(Number) }, { step: paused + 2, loss: expect.any(Number) }]);
      expect(steps()).toBe(paused + 2);

      // a learning rate set through A, resent through B after another one was set: not set back
      expect(await a.command({ type: 'setLearningRate', id: 'lr-1', run: 'p0', learningRate: 0.005 })).toMatchObject({ duplicate: false, result: { learningRate: 0.005 } });
      expect(await a.command({ type: 'setLearningRate', id: 'lr-2', run: 'p0', learningRate: 0.002 })).toMatchObject({ duplicate: false, result: { learningRate: 0.002 } });
      expect(await b.command({ type: 'setLearningRate', id: 'lr-1', run: 'p0', learningRate: 0.005 })).toMatchObject({ duplicate: true, result: { learningRate: 0.005 } });
      expect(worker.run(0)!.run.trainer.optimizer.learningRate).toBe(0.002);

      // a new id is a new command, through either gateway
      expect(await b.command({ type: 'step', id: 'step-3', run: 'p0' })).toMatchObject({ type: 'ack', duplicate: false, result: { step: paused + 3 } });
      expect(steps()).toBe(paused + 3);

      // anybody on the server can send to the owner's control subject: what is not a command is
      // refused with the protocol's codes, never handed to the run (before: `5` got result undefined)
      const ask = async (body: string) => JSON.parse((await nc.request(cluster.names.control(0), body, { timeout: 5000 })).string()) as unknown;
      expect(await ask('5')).toMatchObject({ ok: false, code: 'SG_ERR_SCHEMA' });
      expect(await ask('{"type":')).toMatchObject({ ok: false, code: 'SG_ERR_BAD_JSON' });
      expect(await ask('{"type":"fly","run":"p0","id":"x"}')).toMatchObject({ ok: false, code: 'SG_ERR_UNKNOWN_TYPE' });
      expect(await ask('{"type":"step","run":"p0"}')).toMatchObject({ ok: false, code: 'SG_ERR_SCHEMA' });
      expect(await ask('{"type":"subscribe","run":"p0","channels":["metrics"]}')).toMatchObject({ ok: false, code: 'SG_ERR_SCHEMA', message: expect.stringMatching(/one of the commands pause, resume, step/) });
      expect(steps()).toBe(paused + 3);
      expect(await ask('{"type":"step","run":"p0","id":"raw-1"}')).toMatchObject({ ok: true, result: { step: paused + 4 } });
    } finally {
      await publisher.flush().catch(() => undefined);
      for (const g of gateways) await g.close();
      await worker.stop();
    }
  }, 60_000);

  it('a `checkpoint` and a `step` sent together to a paused partition: the commit holds one moment (its record\'s position is the checkpoint\'s source offset), the step trains after it', async () => {
    // A `checkpoint` command on a paused partition commits outside the run's training loop.
    // before: the step trained during the commit's awaits, so the record (and the cluster
    // section the next owner resumes the source from) said the records before the step
    // while the checkpoint's weights and offset were after it: the next owner trained them twice
    const { cluster, worker, gateways } = await workerAndTwoGateways(nc, 'pausedcommit', 1, TOKEN);
    const publisher = new ClusterPublisher(cluster, { batchSize: 50, producer: 'pc', lingerMs: 0 });
    try {
      for (const r of readings(200, 4, 41)) await publisher.add(r.key, r.line);
      await publisher.flush();
      const steps = () => worker.run(0)?.run.trainer.counters.steps ?? 0;
      await until('the partition trains', () => steps() > 0);
      const ask = async (body: unknown) => JSON.parse((await nc.request(cluster.names.control(0), JSON.stringify(body), { timeout: 10_000 })).string()) as { ok: boolean; result: Record<string, unknown> };
      expect(await ask({ type: 'pause', id: 'pause-1', run: 'p0' })).toMatchObject({ ok: true });
      for (const r of readings(400, 4, 42)) await publisher.add(r.key, r.line);
      await publisher.flush();
      // one step, so that the run holds records it has read already (a batch message)
      expect(await ask({ type: 'step', id: 'step-0', run: 'p0' })).toMatchObject({ ok: true });
      for (let i = 1; i <= 5; i++) {
        const [saved, stepped] = await Promise.all([ask({ type: 'checkpoint', id: `ck-${i}`, run: 'p0' }), ask({ type: 'step', id: `step-${i}`, run: 'p0' })]);
        expect(saved).toMatchObject({ ok: true });
        expect(stepped).toMatchObject({ ok: true });
        const commit = await readCommit(cluster, 0);
        const { header } = decodeCheckpoint((await cluster.checkpoints.getBlob(commit!.record.object!))!);
        expect({ records: commit!.record.records, steps: commit!.record.steps }, `round ${i}`).toEqual({ records: header.sourceOffset, steps: header.counters.steps });
      }
    } finally {
      await publisher.flush().catch(() => undefined);
      for (const g of gateways) await g.close();
      await worker.stop();
    }
  }, 60_000);
});

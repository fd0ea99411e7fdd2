// Gateways: today's server fed from NATS. Two gateways serve every partition of a cluster
// run to protocol clients; a control command travels gateway → NATS request → the
// partition's owner, with the same token and acks as a local server; one gateway going
// away leaves the other serving everything.
import { firstValueFrom, filter } from 'rxjs';
import { describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { connect } from '../../clients/node/client.ts';
import { listGateways } from '../../cluster/gateways.ts';
import { ClusterPublisher } from '../../cluster/publisher.ts';
import { natsForThisFile, readings, workerAndTwoGateways } from './fixture.ts';

let nc: NatsConnection;
natsForThisFile((connection) => { nc = connection; });

const TOKEN = 'cluster-gateway-token-0123456789';

// Once, under the default backend: the gateways carry state, they do not train.
describe.skipIf(process.env.STREAMGRAD_BACKEND === 'js')('cluster gateways', () => {
  it('two gateways serve every partition; commands reach the owner with the same token and acks; one gateway gone, the other still serves', async () => {
    const { cluster, worker, gateways } = await workerAndTwoGateways(nc, 'gw', 3, TOKEN);
    // each announces itself in the cluster run's gateways bucket: where dashboards can connect
    expect((await listGateways(cluster)).map((g) => [g.id, g.wsUrl])).toEqual([['gw-a', gateways[0]!.wsUrl], ['gw-b', gateways[1]!.wsUrl]]);
    const client = connect(gateways[0]!.wsUrl, { token: TOKEN });
    const other = connect(gateways[1]!.wsUrl, { token: TOKEN });
    try {
      for (const c of [client, other]) {
        const runs = await firstValueFrom(c.runs$.pipe(filter((list) => list.length === 3)));
        expect(runs.map((r) => r.id).sort()).toEqual(['p0', 'p1', 'p2']);
      }
      // metrics of a partition, from its owner through NATS, as the data arrives
      await client.subscribe('p1', ['metrics']);
      const publisher = new ClusterPublisher(cluster, { batchSize: 20, producer: 'gw' });
      for (const r of readings(3000, 9, 4)) await publisher.add(r.key, r.line);
      await publisher.flush();
      const metrics = await firstValueFrom(client.metrics$('p1').pipe(filter((m) => m.step > 0)));
      expect(metrics.run).toBe('p1');
      // a command: gateway → NATS request → owner, applied at a step boundary, acked
      const ack = await client.command('p1', 'pause');
      expect(ack).toMatchObject({ type: 'ack', command: 'pause', duplicate: false });
      expect(worker.run(1)!.run.state).toBe('paused');
      expect((await other.command('p1', 'resume')).type).toBe('ack');
      expect(worker.run(1)!.run.state).not.toBe('paused');
      await expect(client.command('p9', 'pause')).rejects.toMatchObject({ code: 'SG_ERR_UNKNOWN_RUN' });
      // the same token as a local server: without it, read-only
      const anonymous = connect(gateways[1]!.wsUrl);
      await expect(anonymous.command('p1', 'pause')).rejects.toMatchObject({ code: 'SG_ERR_FORBIDDEN' });
      await anonymous.close();
      expect(worker.run(1)!.run.state).not.toBe('paused');
      // the first gateway goes away: the other still serves every partition and its commands
      await gateways[0]!.close();
      expect((await listGateways(cluster)).map((g) => g.id)).toEqual(['gw-b']);
      expect((await other.command('p0', 'pause')).type).toBe('ack');
      expect(worker.run(0)!.run.state).toBe('paused');
      expect((await other.command('p0', 'resume')).type).toBe('ack');
    } finally {
      await client.close();
      await other.close();
      for (const g of gateways) await g.close();
      await worker.stop();
    }
  }, 60_000);
});

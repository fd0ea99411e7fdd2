// A partition's owner publishes its state for gateways at its telemetry rate while it trains
// flat out (the training loop yields by time, so the timer is not starved), and its states
// carry only the scalar rows a gateway's whole-run history could keep (`scalarStride`),
// not every step's row.
import { describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { openCluster } from '../../cluster/open.ts';
import { ClusterPublisher } from '../../cluster/publisher.ts';
import { scalarStride, type TelemetryState } from '../../cluster/telemetry.ts';
import { decodeWire } from '../../cluster/wire.ts';
import { ClusterWorker } from '../../cluster/worker.ts';
import { SCALAR_COLUMNS, ScalarHistory } from '../../server/scalar-history.ts';
import { natsForThisFile, readings, testModel, until } from './fixture.ts';

let nc: NatsConnection;
natsForThisFile((connection) => { nc = connection; });

const WIDTH = SCALAR_COLUMNS.length;

describe('scalarStride', () => {
  it('never drops a step a history that saw the whole run keeps', () => {
    for (const capacity of [4, 16, 1024]) {
      const history = new ScalarHistory(capacity);
      const row = new Float64Array(WIDTH);
      const wrong: string[] = [];
      for (let step = 0; step <= 100 * capacity; step++) {
        row[0] = step;
        history.record(row);
        const stride = scalarStride(step, capacity);
        // both powers of two, the history's the larger (or both 1 early on): every step it keeps is one that is sent
        if (history.stride % stride !== 0 || (history.stride === stride && stride > 1)) wrong.push(`capacity ${capacity}, step ${step}: ${history.stride} vs ${stride}`);
      }
      expect(wrong).toEqual([]);
      expect(history.stride).toBeGreaterThan(scalarStride(100 * capacity, capacity));
    }
    expect(scalarStride(0)).toBe(1);
    expect(scalarStride(100_000)).toBe(64);
  });
});

// Once, under the default backend: this is about the worker's event loop, not the kernels.
describe.skipIf(process.env.STREAMGRAD_BACKEND === 'js')('partition telemetry while training flat out', () => {
  it('publishes states at its rate while it trains a backlog flat out, with far fewer scalar rows than steps', async () => {
    const cluster = await openCluster(nc, { name: 'tm', partitions: 2 });
    // the backlog first, so the worker trains flat out from its first record
    const publisher = new ClusterPublisher(cluster, { batchSize: 50, producer: 'tm', lingerMs: 0 });
    for (const [i, r] of readings(80_000, 8, 21).entries()) {
      const waiting = publisher.addTo(i % 2, r.line);
      if (waiting !== undefined) await waiting;
    }
    await publisher.flush();
    const states = new Map<string, { at: number; state: TelemetryState }[]>();
    const subscription = nc.subscribe(cluster.names.telemetry('*'), {
      callback: (error, msg) => {
        if (error !== null) return;
        const state = decodeWire<TelemetryState>(msg.string());
        const list = states.get(state.publish.run) ?? [];
        list.push({ at: performance.now(), state });
        states.set(state.publish.run, list);
      },
    });
    // batches of 1: many steps per second, the case where every step's row would be a lot
    const worker = new ClusterWorker({ cluster, id: 'tm-w', model: (p) => ({ ...testModel(p), train: { batch: 1 } }), telemetryHz: 20, checkpointEveryMs: 1000 });
    void worker.start();
    try {
      const trained = () => [...states.values()].reduce((sum, list) => sum + (list.at(-1)?.state.publish.counters.samples ?? 0), 0);
      await until('every sample trained', () => trained() === 80_000, 120_000);
      for (const [run, list] of states) {
        // while training: from the first state with samples to the first with all of its samples
        const total = list.at(-1)!.state.publish.counters.samples;
        const from = list.findIndex((s) => s.state.publish.counters.samples > 0);
        const to = list.findIndex((s) => s.state.publish.counters.samples === total);
        const seconds = (list[to]!.at - list[from]!.at) / 1000;
        expect(seconds).toBeGreaterThan(0.5); // 40,000 samples take longer than that
        // 20 Hz asked; a slow machine trains longer, it does not publish less often (margin ×2)
        expect((to - from) / seconds, `${run}: states per second while training`).toBeGreaterThan(10);
        let previousSteps = list[from - 1]?.state.publish.counters.steps ?? 0, rows = 0, steps = 0;
        for (const { state } of list.slice(from)) {
          rows += state.publish.scalars?.count ?? 0;
          steps += state.publish.counters.steps - previousSteps;
          previousSteps = state.publish.counters.steps;
        }
        // every step's row would be `steps` rows; on the stride (4 and up after 8,192 steps, 16 after 32,768) far fewer
        expect(steps).toBeGreaterThan(30_000);
        expect(rows, `${run}: scalar rows sent for ${steps} steps`).toBeLessThan(steps / 2);
      }
    } finally {
      subscription.unsubscribe();
      await worker.stop();
    }
  }, 180_000);
});

import { once } from 'node:events';
import { pipe } from 'rxjs';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { joinLabels } from '../../operators/join-labels.ts';
import { MemoryDeadLetters } from '../../core/dead-letter.ts';
import { featurePredictor } from '../../core/feature-time-prediction.ts';
import { ingest } from '../../pipeline/ingest.ts';
import { LabelJoin } from '../../core/label-join.ts';
import { createIngestCounters, ingestStats } from '../../core/record.ts';
import { TrainingRun } from '../../pipeline/run.ts';
import { createTrainer } from '../../core/trainer.ts';
import { serve } from '../../server/server.ts';
import { WebSocketIngest } from '../../sources/websocket-ingest.ts';
import { seededModel } from '../helpers/streams.ts';

const TOKEN = 'ingest-token-0123456789';
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('delayed labels at /ingest', () => {
  it('features as samples, labels as {"type":"labels"} messages: joined and trained; the join counters in /metrics', async () => {
    const source = new WebSocketIngest({ token: TOKEN });
    const server = await serve({ port: 0, staticDir: '/nonexistent', ingest: source });
    cleanups.push(() => server.close());
    const trainer = createTrainer({ model: seededModel(2, [[4, 'tanh'], [1, 'linear']], 1), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.01 } });
    const deadLetters = new MemoryDeadLetters();
    const counters = createIngestCounters();
    const join = new LabelJoin({ idField: 'id' });
    const run = new TrainingRun({
      id: 'ws', trainer, source,
      prepare: pipe(joinLabels(join, featurePredictor({ trainer })), ingest({ trainer, deadLetters, counters })),
      ingest: ingestStats(counters, () => source.queue.dropped, () => join.stats()),
    });
    server.addRun(run);
    const done = run.start();
    const ws = new WebSocket(server.wsUrl.replace(/\/ws$/, '/ingest'), { headers: { Authorization: `Bearer ${TOKEN}` } });
    cleanups.push(() => ws.terminate());
    const acks: unknown[] = [];
    ws.on('message', (data) => acks.push(JSON.parse(String(data))));
    await once(ws, 'open');
    ws.send(JSON.stringify([{ id: 'a', x: [1, 2] }, { id: 'b', x: [3, 4] }, { id: 'c', x: [0, 1] }]));
    ws.send(JSON.stringify({ type: 'labels', labels: [{ id: 'b', y: [1] }, { id: 'zz', y: [0] }] }));
    ws.send(JSON.stringify({ type: 'labels', labels: { id: 'a', y: [2] } }));
    ws.send(JSON.stringify({ type: 'labels', labels: { id: 'a', y: [2] } })); // again
    // ids with a fraction, features and a label: refused
    ws.send(JSON.stringify({ id: 2.5, x: [5, 6] }));
    ws.send(JSON.stringify({ type: 'labels', labels: { id: 0.25, y: [1] } }));
    for (const started = Date.now(); acks.length < 6 || trainer.counters.samples < 2;) {
      if (Date.now() - started > 10_000) throw new Error(`waited: ${acks.length} acks, ${trainer.counters.samples} samples`);
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(acks[1]).toMatchObject({ type: 'ack', received: 2, queued: 2 });
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain('streamgrad_labels_total{run="ws",kind="joined"} 2');
    expect(metrics).toContain('streamgrad_labels_total{run="ws",kind="outOfOrder"} 1');
    expect(metrics).toContain('streamgrad_labels_total{run="ws",kind="duplicateLabels"} 1');
    expect(metrics).toContain('streamgrad_labels_waiting{run="ws",side="features"} 1');
    expect(metrics).toContain('streamgrad_labels_waiting{run="ws",side="labels"} 1');
    await source.close();
    await done;
    // the ids with a fraction at once; at the end of the stream: c expired, zz never found its features
    expect(deadLetters.letters.map((l) => [l.messageId, l.code, l.field])).toEqual([['c1:4', 'SG_ERR_DUPLICATE_ID', 'id'], ['c1:5', 'SG_ERR_TYPE', 'id'], ['c1:6', 'SG_ERR_TYPE', 'id'], ['c1:1.2', 'SG_ERR_LABEL_TIMEOUT', 'id'], ['c1:2.1', 'SG_ERR_UNKNOWN_ID', 'id']]);
    expect(trainer.counters.samples).toBe(2);
    expect(run.ingest?.labels).toMatchObject({ features: 4, labels: 5, joined: 2, invalid: 2, unusableId: 2, waiting: 0, holding: 0 });
  });
});

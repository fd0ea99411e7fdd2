// `streamgrad cluster publish` bridges the sources the rest of streamgrad reads, on a real
// nats-server (and a real mosquitto): a CSV file given with --data and --targets (rows as
// text cells, rejected rows with their local codes), and an MQTT subscription given with
// --mqtt and --topic, whose last partial batch goes out after the publish linger.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { connectAsync } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { decodeBatch } from '../../cluster/batch.ts';
import { readCommit } from '../../cluster/commits.ts';
import { type Cluster, openCluster } from '../../cluster/open.ts';
import { partitionOf } from '../../cluster/partition-of.ts';
import { ClusterWorker } from '../../cluster/worker.ts';
import { partitionModels } from '../../cli/cluster-command.ts';
import { planExperiment } from '../../runtime/experiment-plan.ts';
import { MemoryDeadLetters } from '../../core/dead-letter.ts';
import { createIngestCounters, type IngestRecord } from '../../core/record.ts';
import { decodeCheckpoint } from '../../pipeline/checkpoint.ts';
import { ingest } from '../../pipeline/ingest.ts';
import { restoreRun } from '../../pipeline/run-checkpoint.ts';
import { TrainingRun } from '../../pipeline/run.ts';
import { csvRecords } from '../../sources/csv.ts';
import { BIN, killWhenTestEnds, runCli } from '../helpers/cli.ts';
import { mosquittoForThisFile } from '../helpers/mosquitto.ts';
import type { NatsServer } from '../helpers/nats-server.ts';
import { hashOf } from '../helpers/streams.ts';
import { natsForThisFile, until as untilFixture } from './fixture.ts';

const broker = mosquittoForThisFile();
let server: NatsServer;
let nc: NatsConnection;
natsForThisFile((connection, started) => {
  nc = connection;
  server = started;
});
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sg-cluster-publish-'));
});

afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

function config(name: string, extra: Record<string, unknown> = {}): string {
  const file = join(dir, `${name}.json`);
  writeFileSync(join(dir, 'unused.ndjson'), ''); // the config's own source: --data and --mqtt replace it
  writeFileSync(file, JSON.stringify({
    source: { ndjson: 'unused.ndjson', features: ['a', 'b'], targets: ['y'] },
    models: [{ layers: [{ units: 4, activation: 'tanh' }, { units: 1, activation: 'linear' }], loss: 'mse', optimizer: { type: 'adam', lr: 0.01 }, batch: 1 }],
    cluster: { name, partitions: 2, nats: server.servers, key: 'sensor', checkpointEverySeconds: 0.2, ...extra },
  }));
  return file;
}

/** Every record stored on the cluster run's subjects, by partition, as a worker decodes them. */
async function stored(cluster: Cluster): Promise<IngestRecord[][]> {
  const out: IngestRecord[][] = Array.from({ length: cluster.partitions }, () => []);
  for (let p = 0; p < cluster.partitions; p++) {
    const consumer = await cluster.js.consumers.get(cluster.names.stream, { filter_subjects: cluster.names.subject(p) });
    for (;;) {
      const msg = await consumer.next({ expires: 1000 });
      if (msg === null) break;
      out[p]!.push(...decodeBatch(msg.data, msg.subject, msg.seq));
    }
  }
  return out;
}

const until = (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 40_000) => untilFixture(what, check, timeoutMs);

describe('streamgrad cluster publish', () => {
  it('--data FILE.csv --targets: rows as text cells; each partition bitwise a local run over its rows, rejections as locally', async () => {
    const rows = ['sensor,a,b,y'];
    for (let i = 0; i < 120; i++) {
      if (i === 17) rows.push('s1,0.5,oops,1'); // a cell that is not a number
      else if (i === 40) rows.push('s2,1,2'); // a row one cell short
      else rows.push(`s${i % 4},${Math.sin(i).toFixed(4)},${Math.cos(i).toFixed(4)},${(Math.sin(i) * Math.cos(i)).toFixed(4)}`);
    }
    writeFileSync(join(dir, 'data.csv'), `${rows.join('\n')}\n`);
    const file = config('csv');
    const published = await runCli(dir, ['cluster', 'publish', file, '--data', 'data.csv', '--targets', 'y', '--features', 'a,b', '--id', 'csv1']);
    expect(published.stderr).toBe('');
    expect(published.code).toBe(0);
    expect(published.stdout).toMatch(/^published 120 records in \d+ batches to SG_csv \(2 partitions\)/);

    const plan = await planExperiment(file);
    if (!plan.ok) throw new Error('plan');
    const cluster = await openCluster(nc, { name: 'csv' });
    const worker = new ClusterWorker({ cluster, id: 'w', model: partitionModels(plan.plan), checkpointEveryMs: 100 });
    void worker.start();
    try {
      const byPartition: string[][] = [[], []];
      for (const row of rows.slice(1)) byPartition[partitionOf(row.split(',')[0]!, 2)]!.push(row);
      await until('every row committed', async () => {
        for (let p = 0; p < 2; p++) if ((await readCommit(cluster, p))?.record.records !== byPartition[p]!.length) return false;
        return true;
      });
      const letters: { code: string; raw: string }[] = [];
      for (let p = 0; p < 2; p++) {
        // the local way: the CSV reader, the local ingest, the same model, over the partition's rows
        const model = partitionModels(plan.plan)(p);
        const local = new MemoryDeadLetters();
        const run = new TrainingRun({
          id: 'local', trainer: model.trainer, source: csvRecords(Readable.from([`${rows[0]}\n${byPartition[p]!.join('\n')}\n`]), { source: 'data.csv', require: ['a', 'b', 'y'] }),
          prepare: ingest({ trainer: model.trainer, features: model.features, normalizer: model.normalizer, deadLetters: local, counters: createIngestCounters() }),
          train: { ...model.train, window: model.window },
        });
        await run.start();
        const commit = (await readCommit(cluster, p))!.record;
        const remote = partitionModels(plan.plan)(p);
        restoreRun(decodeCheckpoint((await cluster.checkpoints.getBlob(commit.object!))!), remote.trainer, remote.window ?? 1000);
        expect(hashOf(remote.trainer.model.params), `partition ${p}`).toBe(hashOf(model.trainer.model.params));
        expect(remote.trainer.counters).toEqual(model.trainer.counters);
        letters.push(...local.letters.map((l) => ({ code: l.code, raw: l.raw ?? '' })));
        // the cluster's dead letters: the same codes and raw rows
        const consumer = await cluster.js.consumers.get(cluster.names.deadStream, { filter_subjects: cluster.names.deadSubject(p) });
        const dead: { code: string; raw: string }[] = [];
        for (let msg = await consumer.next({ expires: 1000 }); msg !== null; msg = await consumer.next({ expires: 1000 })) {
          const d = msg.json<{ code: string; raw: string }>();
          dead.push({ code: d.code, raw: d.raw });
        }
        expect(dead).toEqual(local.letters.map((l) => ({ code: l.code, raw: l.raw })));
      }
      expect(letters.map((l) => l.raw).sort()).toEqual(['s1,0.5,oops,1', 's2,1,2']);
    } finally {
      await worker.stop();
    }
  }, 90_000);

  it('--mqtt URL --topic: messages bridged until Ctrl-C, the last partial batch after the linger, a bad payload re-rejected by the worker', async () => {
    const file = config('mqtt', { publishBatch: 50, publishLingerSeconds: 0.2 });
    const topic = 'plant/+/reading';
    // the bridge's persistent session exists before anything is published: nothing is missed
    const session = await connectAsync(broker.url, { clientId: 'bridge-1', protocolVersion: 5, clean: false, properties: { sessionExpiryInterval: 600 } });
    await session.subscribeAsync(topic, { qos: 1 });
    await session.endAsync();
    const sensors = await connectAsync(broker.url);
    for (let i = 0; i < 30; i++) {
      const payload = i === 9 ? '{"sensor":"s1","a":1,' : JSON.stringify({ sensor: `s${i % 3}`, a: i / 30, b: 1 - i / 30, y: i % 2 });
      await sensors.publishAsync(`plant/s${i % 3}/reading`, payload, { qos: 1 });
    }
    const bridge = spawn(process.execPath, [BIN, 'cluster', 'publish', file, '--mqtt', broker.url, '--topic', topic, '--mqtt-client-id', 'bridge-1', '--id', 'mq'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    killWhenTestEnds(bridge);
    let out = '';
    let err = '';
    bridge.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    bridge.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const exited = new Promise<number | null>((resolve) => bridge.once('exit', (code) => resolve(code)));
    const cluster = await openCluster(nc, { name: 'mqtt', partitions: 2 });
    try {
      // 30 records, fewer than a batch per partition: they go out after the 0.2 s linger, while the bridge still runs
      await until('30 records stored', async () => (await cluster.jsm.streams.info(cluster.names.stream)).state.messages > 0 && (await stored(cluster)).flat().length === 30);
      expect(bridge.exitCode).toBeNull();
      for (let i = 30; i < 35; i++) await sensors.publishAsync(`plant/s${i % 3}/reading`, JSON.stringify({ sensor: `s${i % 3}`, a: 0, b: 0, y: 1 }), { qos: 1 });
      await until('35 records stored', async () => (await stored(cluster)).flat().length === 35);
    } finally {
      await sensors.endAsync();
      bridge.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    expect(err).toBe('');
    expect(out).toMatch(/^published 35 records in \d+ batches to SG_mqtt \(2 partitions\)/);
    expect(out).toMatch(/mqtt client bridge-1: 35 messages received/);
    const records = await stored(cluster);
    for (const [p, list] of records.entries()) {
      for (const r of list) if (r.value !== undefined) expect(partitionOf((r.value as { sensor: string }).sensor, 2)).toBe(p);
    }
    const bad = records.flat().filter((r) => r.error !== undefined);
    expect(bad.map((r) => [r.error!.code, r.origin.raw])).toEqual([['SG_ERR_BAD_JSON', '{"sensor":"s1","a":1,']]);
  }, 90_000);

  // one case a test, two command lines each (before: the two cases' four one after another)
  const rows = (n: number, shift: number) => Array.from({ length: n }, (_, i) => JSON.stringify({ sensor: `s${i % 3}`, a: i + shift, b: 1, y: 2 })).join('\n') + '\n';

  it('--data FILE twice without --id is stored once (the default id is the file\'s identity)', async () => {
    writeFileSync(join(dir, 'twice.ndjson'), rows(120, 0));
    const file = config('twice');
    const cluster = await openCluster(nc, { name: 'twice', partitions: 2 });
    const count = async () => (await cluster.jsm.streams.info(cluster.names.stream)).state.messages;
    const first = await runCli(dir, ['cluster', 'publish', file, '--data', 'twice.ndjson']);
    expect(first.code).toBe(0);
    const messages = await count();
    const again = await runCli(dir, ['cluster', 'publish', file, '--data', 'twice.ndjson']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(new RegExp(`in ${messages} batches .*; ${messages} batches already stored`));
    expect(await count()).toBe(messages);
  }, 90_000);

  it('other data under a reused --id is stored, never reported as a duplicate', async () => {
    const file = config('reused');
    const cluster = await openCluster(nc, { name: 'reused', partitions: 2 });
    const count = async () => (await cluster.jsm.streams.info(cluster.names.stream)).state.messages;
    // the same --id over other data: every batch differs, so every batch is stored
    writeFileSync(join(dir, 'one.ndjson'), rows(60, 0));
    writeFileSync(join(dir, 'other.ndjson'), rows(60, 1000));
    expect((await runCli(dir, ['cluster', 'publish', file, '--data', 'one.ndjson', '--id', 'rp2'])).code).toBe(0);
    const before = await count();
    const other = await runCli(dir, ['cluster', 'publish', file, '--data', 'other.ndjson', '--id', 'rp2']);
    expect(other.code).toBe(0);
    expect(other.stdout).toMatch(/; 0 batches already stored/);
    expect(await count()).toBeGreaterThan(before);
    const values = (await stored(cluster)).flat().map((r) => (r.value as { a: number }).a);
    expect(values.filter((a) => a >= 1000)).toHaveLength(60);
  }, 90_000);
});

// Hostile and damaged input on a real nats-server (an outside probe's cases): anybody on
// the server can answer a control request, write a KV key or publish to a subject of the
// cluster run. Each such message or value is refused with a typed error naming what it
// is, counted or shown, and costs nothing but itself: no gateway dies, no worker stalls,
// `status` reports it with everything else, no record vanishes.
import { firstValueFrom, filter } from 'rxjs';
import { describe, expect, it, vi } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { connect } from '../../clients/node/client.ts';
import { headers } from '@nats-io/transport-node';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { DeadLetter } from '../../core/dead-letter.ts';
import { ENVELOPE } from '../../cluster/batch.ts';
import { type CommitRecord, fence, readCommit } from '../../cluster/commits.ts';
import { CUT_HEADER } from '../../cluster/partition-source.ts';
import type { ClusterEvent } from '../../cluster/events.ts';
import { readFailure } from '../../cluster/failures.ts';
import { startGateway } from '../../cluster/gateway.ts';
import { partitionKey } from '../../cluster/names.ts';
import { type Cluster, openCluster } from '../../cluster/open.ts';
import { ClusterPublisher } from '../../cluster/publisher.ts';
import { ClusterDeadLetters } from '../../cluster/dead-letters.ts';
import { clusterStatus } from '../../cluster/status.ts';
import { PartitionTelemetry, type TelemetryState } from '../../cluster/telemetry.ts';
import { decodeWire, encodeWire } from '../../cluster/wire.ts';
import { ClusterWorker } from '../../cluster/worker.ts';
import { TrainingRun } from '../../pipeline/run.ts';
import type { EventMessage } from '../../server/protocol.ts';
import { BATCH, natsForThisFile, readings, testModel, until } from './fixture.ts';

let nc: NatsConnection;
natsForThisFile((connection) => { nc = connection; });

const TOKEN = 'cluster-hostile-token-0123456789';

/** `count` good readings on `partition`. */
async function publish(cluster: Cluster, partition: number, count: number, seed: number): Promise<void> {
  const publisher = new ClusterPublisher(cluster, { batchSize: 20, producer: `p${partition}-${seed}` });
  for (const r of readings(count, 1, seed)) await publisher.addTo(partition, r.line);
  await publisher.flush();
}


/** One hostile batch message and what followed it, as a worker trained them: its commit and the partition's dead letters. */
async function trainMessages(name: string, messages: readonly { data: Uint8Array | string; cut?: boolean }[], records: number): Promise<{ commit: CommitRecord; letters: DeadLetter[] }> {
  const cluster = await openCluster(nc, { name, partitions: 1 });
  for (const m of messages) {
    const h = headers();
    if (m.cut === true) h.set(CUT_HEADER, '1');
    await cluster.js.publish(cluster.names.subject(0), m.data, m.cut === true ? { headers: h } : {});
  }
  const worker = new ClusterWorker({ cluster, id: `${name}-w`, model: testModel, checkpointEveryMs: 100 });
  void worker.start();
  try {
    await until(`${records} records committed`, async () => (await readCommit(cluster, 0))?.record.records === records);
  } finally {
    await worker.stop();
  }
  const letters: DeadLetter[] = [];
  const consumer = await cluster.js.consumers.get(cluster.names.deadStream, { filter_subjects: cluster.names.deadSubject(0) });
  for (;;) {
    const msg = await consumer.next({ expires: 1000 });
    if (msg === null) break;
    letters.push(JSON.parse(msg.string()) as DeadLetter);
  }
  return { commit: (await readCommit(cluster, 0))!.record, letters };
}

/**
 * A one-partition cluster run `name` (lease TTL 1 s) whose partition worker `a` took and
 * committed (`first`), with a gateway (commands wait 5 s for an owner) and a client of it.
 * `start` starts another worker (`workers`); `close` ends everything.
 */
async function ownedBy(name: string, a: string, seed: number) {
  const cluster = await openCluster(nc, { name, partitions: 1, leaseTtlMs: 1000 });
  const gateway = await startGateway({ cluster, port: 0, token: TOKEN, commandTimeoutMs: 5000 });
  const client = connect(gateway.wsUrl, { token: TOKEN });
  const workers: ClusterWorker[] = [];
  const close = async () => {
    await client.close();
    await gateway.close();
    for (const worker of workers) await worker.stop();
  };
  const start = (id: string) => {
    const worker = new ClusterWorker({ cluster, id, model: testModel, checkpointEveryMs: 100, telemetryHz: 10 });
    workers.push(worker);
    void worker.start();
  };
  try {
    await publish(cluster, 0, 4 * BATCH, seed);
    start(a);
    await until('the first owner committed', async () => (await readCommit(cluster, 0))?.record.records === 4 * BATCH);
    await firstValueFrom(client.runs$.pipe(filter((list) => list.length === 1)));
    return { cluster, gateway, client, workers, start, first: (await readCommit(cluster, 0))!.record, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/**
 * `ownedBy` after a failover: worker `a` stopped, and worker `b` fenced the partition
 * (`second`). `firstState` is the latest state `a` sent.
 */
async function failedOver(name: string, a: string, b: string, seed: number) {
  const owned = await ownedBy(name, a, seed);
  const { cluster, workers, start, first, close } = owned;
  try {
    const last = await cluster.jsm.streams.getMessage(cluster.names.telemetryStream, { last_by_subj: cluster.names.telemetry(0) });
    await workers[0]!.stop();
    start(b);
    await until('the second owner fenced', async () => (await readCommit(cluster, 0))?.record.owner === b);
    const second = (await readCommit(cluster, 0))!.record;
    expect(second.epoch).toBe(first.epoch + 1);
    return { ...owned, second, firstState: last!.string() };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Headers claiming a partition for `owner` at `epoch`, as its owner's telemetry and events carry them. */
function claim(owner: string, epoch: number): { headers: ReturnType<typeof headers> } {
  const h = headers();
  h.set('Sg-Owner', owner);
  h.set('Sg-Epoch', String(epoch));
  return { headers: h };
}

/** `n` good readings' lines. */
const good = (n: number, seed: number) => readings(n, 1, seed).map((r) => r.line);

describe.skipIf(process.env.STREAMGRAD_BACKEND === 'js')('hostile peers and damaged records', () => {
  it('a control reply that is not an outcome is refused to its command (never quoted), counted, and the gateway goes on; telemetry of runs that are no partition is refused', async () => {
    const cluster = await openCluster(nc, { name: 'rogue', partitions: 2, leaseTtlMs: 30_000 });
    const worker = new ClusterWorker({ cluster, id: 'rogue-w', model: testModel, checkpointEveryMs: 200, telemetryHz: 10 });
    void worker.start();
    const gateway = await startGateway({ cluster, port: 0, token: TOKEN, commandTimeoutMs: 2000 });
    const client = connect(gateway.wsUrl, { token: TOKEN });
    let rogue: ReturnType<NatsConnection['subscribe']> | undefined;
    try {
      await firstValueFrom(client.runs$.pipe(filter((list) => list.length === 2)));
      // the owner goes, and another worker has just taken its lease (its fence not written yet):
      // commands wait for it; a rogue answers the partition's control subject with garbage
      await worker.stop();
      await cluster.leases.create(partitionKey(0), JSON.stringify({ owner: 'rogue-next', since: Date.now() }));
      rogue = nc.subscribe(cluster.names.control(0), { callback: (_e, msg) => void msg.respond('garbage') });
      await nc.flush();
      // refused without a word of it: the client learns that no owner answered, not what the rogue said
      const refused = await client.command('p0', 'pause').catch((error: unknown) => error);
      expect(refused).toMatchObject({ code: 'SG_ERR_STATE', message: expect.stringMatching(/no answer from its owner within 2000 ms \(1 other reply refused\)/) });
      expect((refused as Error).message).not.toMatch(/garbage/);
      await expect(client.command('p0', 'resume')).rejects.toMatchObject({ code: 'SG_ERR_STATE' });
      expect(gateway.unreadable()['control-reply']).toBe(2);
      // JSON, but not an outcome, is refused the same way
      rogue.unsubscribe();
      rogue = nc.subscribe(cluster.names.control(0), { callback: (_e, msg) => void msg.respond('{"ok":false,"code":7}') });
      await nc.flush();
      await expect(client.command('p0', 'pause')).rejects.toMatchObject({ code: 'SG_ERR_STATE' });
      // runs that are no partition of the cluster run: refused, never served
      const state = { describe: {}, publish: { run: 'evil' }, params: new Float64Array(2), grads: new Float64Array(2) };
      // one at a time: the stream keeps the last per subject, and takes only the partitions' (p77's is none)
      for (const [p, body] of [[0, encodeWire(state)], [0, encodeWire({ ...state, publish: { run: 'p77' } })], [1, encodeWire({ ...state, publish: { run: 'p0' } })], [1, 'garbage']] as const) {
        const refused = gateway.unreadable().telemetry;
        nc.publish(cluster.names.telemetry(p), body);
        await until('the telemetry refused', () => gateway.unreadable().telemetry > refused);
      }
      expect(gateway.runs()).toEqual(['p0', 'p1']);
      // the gateway serves on, and its /metrics counts what it refused
      expect((await fetch(`${gateway.url.replace(/\/$/, '')}/healthz`)).status).toBe(200);
      const metrics = await (await fetch(`${gateway.url.replace(/\/$/, '')}/metrics`)).text();
      expect(metrics).toContain('streamgrad_cluster_gateway_unreadable{kind="control-reply"} 3');
      expect(metrics).toMatch(/streamgrad_cluster_gateway_unreadable\{kind="telemetry"\} [4-9]/);
    } finally {
      rogue?.unsubscribe();
      await client.close();
      await gateway.close();
      await worker.stop();
    }
  }, 60_000);

  it('a failure record that is not one costs only its partition nothing: workers take every partition (said as an event), status reports it, the next progress replaces it', async () => {
    const cluster = await openCluster(nc, { name: 'badfail', partitions: 2, leaseTtlMs: 1000 });
    // p0's record is a real one (backing off briefly), p1's is garbage
    await cluster.failures.put(partitionKey(0), JSON.stringify({ partition: 0, failures: 1, last: { code: 'SG_ERR_SOURCE', message: 'x', worker: 'w', time: Date.now() }, retryAt: Date.now() + 500, parked: false }));
    await cluster.failures.put(partitionKey(1), 'garbage');
    const failure = await readFailure(cluster, 1);
    expect(failure?.damaged).toMatchObject({ code: 'SG_ERR_SOURCE', field: 'sg_badfail_failures/p1', message: expect.stringMatching(/sg_badfail_failures key p1: not a failure record/) });
    const status = await clusterStatus(cluster);
    expect(status.rows[1]).toMatchObject({ partition: 1, failures: 0, parked: false, damaged: [{ code: 'SG_ERR_SOURCE', field: 'sg_badfail_failures/p1' }] });
    expect(status.rows[0]).toMatchObject({ partition: 0, failures: 1, damaged: [] });
    await publish(cluster, 0, 4 * BATCH, 1);
    await publish(cluster, 1, 4 * BATCH, 2);
    const events: ClusterEvent[] = [];
    const worker = new ClusterWorker({ cluster, id: 'bf-w', model: testModel, checkpointEveryMs: 100 });
    worker.events.subscribe((e) => events.push(e));
    void worker.start();
    try {
      await until('both partitions committed', async () => (await readCommit(cluster, 0))?.record.records === 4 * BATCH && (await readCommit(cluster, 1))?.record.records === 4 * BATCH);
      expect(events.find((e) => e.type === 'record-damaged')).toMatchObject({ partition: 1, detail: { code: 'SG_ERR_SOURCE', field: 'sg_badfail_failures/p1' } });
      await until('progress removed the damaged record', async () => (await readFailure(cluster, 1)) === null);
    } finally {
      await worker.stop();
    }
  }, 60_000);

  it('a commit record that is not one: the partition fails with a typed code naming bucket and key, status reports it and the other partitions', async () => {
    const cluster = await openCluster(nc, { name: 'badcommit', partitions: 2, leaseTtlMs: 1000 });
    await cluster.commits.put(partitionKey(1), 'not json');
    await publish(cluster, 0, 4 * BATCH, 3);
    const events: ClusterEvent[] = [];
    const worker = new ClusterWorker({ cluster, id: 'bc-w', model: testModel, checkpointEveryMs: 100, backoff: { baseMs: 200, maxMs: 400, maxFailures: 2 } });
    worker.events.subscribe((e) => events.push(e));
    void worker.start();
    try {
      await until('partition 1 parked', () => events.some((e) => e.type === 'partition-parked' && e.partition === 1));
      await until('partition 0 committed', async () => (await readCommit(cluster, 0))?.record.records === 4 * BATCH);
      const failed = events.find((e) => e.type === 'partition-failed' && e.partition === 1);
      expect(failed?.detail).toMatchObject({ code: 'SG_ERR_CHECKPOINT', message: expect.stringMatching(/sg_badcommit_commits key p1: not a commit record/) });
      expect((await readFailure(cluster, 1))?.record.last.code).toBe('SG_ERR_CHECKPOINT');
      const status = await clusterStatus(cluster);
      expect(status.rows[0]).toMatchObject({ partition: 0, records: 4 * BATCH, damaged: [] });
      expect(status.rows[1]).toMatchObject({ partition: 1, parked: true, damaged: [{ code: 'SG_ERR_CHECKPOINT', field: 'sg_badcommit_commits/p1' }] });
    } finally {
      await worker.stop();
    }
  }, 60_000);

  it('a message that ends in rejections is committed like any other: its records are accounted for, its dead letters stored once, also after a restart past the duplicate window', async () => {
    const cluster = await openCluster(nc, { name: 'tailrej', partitions: 1, duplicateWindowMs: 1000 });
    const publisher = new ClusterPublisher(cluster, { batchSize: 100, producer: 'tail' });
    for (const r of readings(BATCH, 1, 7)) publisher.addTo(0, r.line);
    await publisher.flush();
    const deadCount = async () => (await cluster.jsm.streams.info(cluster.names.deadStream)).state.messages;
    const first = new ClusterWorker({ cluster, id: 'tail-a', model: testModel, checkpointEveryMs: 100 });
    void first.start();
    try {
      await until('the good records committed', async () => (await readCommit(cluster, 0))?.record.records === BATCH);
      // then a message of rejections only: no step follows it
      for (const line of ['{"x":[1,2', '{"x":[1,2],"y":[0]}', '{"x":[1,"a",3],"y":[1]}']) publisher.addTo(0, line);
      await publisher.flush();
      await until('the rejections committed', async () => (await readCommit(cluster, 0))?.record.records === BATCH + 3);
      expect((await readCommit(cluster, 0))?.record).toMatchObject({ seq: 2, within: 0 });
      expect(await deadCount()).toBe(3);
    } finally {
      await first.stop();
    }
    await new Promise((r) => setTimeout(r, 1500)); // past the duplicate window
    const second = new ClusterWorker({ cluster, id: 'tail-b', model: testModel, checkpointEveryMs: 100 });
    const events: ClusterEvent[] = [];
    second.events.subscribe((e) => events.push(e));
    void second.start();
    try {
      await until('the second worker took the partition', () => events.some((e) => e.type === 'acquired'));
      await new Promise((r) => setTimeout(r, 500));
      expect(await deadCount()).toBe(3);
    } finally {
      await second.stop();
    }
  }, 60_000);

  it('dead letters re-rejected by a new owner are not stored again, whatever the duplicate window', async () => {
    const cluster = await openCluster(nc, { name: 'deadonce', partitions: 1, duplicateWindowMs: 1000 });
    const letter = (messageId: string) => ({ code: 'SG_ERR_BAD_JSON' as const, message: 'x', field: 'line', time: new Date(0).toISOString(), messageId, topic: 't', source: 'nats' });
    const first = await ClusterDeadLetters.open(cluster, 0);
    for (const id of ['2:1', '2:2', '2:3']) first.write(letter(id));
    await first.flush(); // the owner dies before its commit: the records are read again by the next
    await new Promise((r) => setTimeout(r, 1500)); // past the duplicate window
    const next = await ClusterDeadLetters.open(cluster, 0);
    for (const id of ['2:1', '2:2', '2:3', '3:1']) next.write(letter(id));
    await next.flush();
    expect(next.skipped).toBe(3);
    expect((await cluster.jsm.streams.info(cluster.names.deadStream)).state.messages).toBe(4);
  }, 30_000);

  it('a cut marker with records in its body is refused: one dead letter with its bytes, counted, never a silent cut', async () => {
    const body = '{"x":[1,2,3],"y":[1]}\n{"x":[1,2,3],"y":[2]}';
    const { commit, letters } = await trainMessages('cutbody', [{ data: body, cut: true }, { data: good(BATCH, 11).join('\n') }], 1 + BATCH);
    expect(commit).toMatchObject({ records: 1 + BATCH, samples: BATCH });
    expect(letters).toMatchObject([{ code: 'SG_ERR_SOURCE', field: 'Sg-Cut', messageId: '1:1', raw: body }]);
  }, 30_000);

  it('a batch message that is not UTF-8 costs only its bad lines: each a dead letter with its raw text, the rest trained', async () => {
    const lines = good(BATCH, 12);
    const data = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`{"a":1}\n${lines.join('\n')}`)]);
    const { commit, letters } = await trainMessages('notutf8', [{ data }], 1 + BATCH);
    expect(commit).toMatchObject({ records: 1 + BATCH, samples: BATCH });
    expect(letters).toMatchObject([{ code: 'SG_ERR_BAD_JSON', field: 'line', messageId: '1:1', raw: '\ufffd\ufffd{"a":1}', message: expect.stringMatching(/not UTF-8/) }]);
  }, 30_000);

  it('a rejection envelope is believed only with a known code and a string message', async () => {
    const envelope = (rejected: unknown, raw: string) => `${ENVELOPE}${JSON.stringify({ rejected, raw })}`;
    const lines = [
      envelope({ code: 'SG_ERR_FAKE', message: 'fake' }, 'r1'),
      envelope({ code: 7 }, 'r2'),
      envelope({ code: 'SG_ERR_TYPE', message: 5 }, 'r3'),
      envelope({ code: 'SG_ERR_TYPE', message: 'a: not a number', field: 'a' }, 'r4'),
      ...good(BATCH, 13),
    ];
    const { commit, letters } = await trainMessages('envelope', [{ data: lines.join('\n') }], 4 + BATCH);
    expect(commit).toMatchObject({ records: 4 + BATCH, samples: BATCH });
    expect(letters.map((l) => [l.code, l.field, l.raw])).toEqual([
      ['SG_ERR_SOURCE', 'rejected.code', 'r1'],
      ['SG_ERR_SOURCE', 'rejected.code', 'r2'],
      ['SG_ERR_SOURCE', 'rejected.message', 'r3'],
      ['SG_ERR_TYPE', 'a', 'r4'],
    ]);
    expect(letters[0]!.message).toMatch(/SG_ERR_FAKE/);
  }, 30_000);

  it('a cluster run\'s streams take only its partitions\' subjects: a message of no partition (`p.99`, `p.abc`) or of another run is never stored in them', async () => {
    const cluster = await openCluster(nc, { name: 'own', partitions: 2 });
    const other = await openCluster(nc, { name: 'other', partitions: 2 });
    await publish(cluster, 1, 20, 14);
    const line = '{"x":[1,2,3],"y":[1]}';
    for (const subject of ['sg.own.p.2', 'sg.own.p.99', 'sg.own.p.abc', 'sg.own.p.-1', 'sg.own.dead.9', 'sg.own.tm.9', 'sg.other.p.0']) nc.publish(subject, line);
    await nc.flush();
    const stored = async (stream: string) => (await cluster.jsm.streams.info(stream, { subjects_filter: '>' })).state.subjects ?? {};
    expect(await stored(cluster.names.stream)).toEqual({ 'sg.own.p.1': 1 });
    expect(await stored(cluster.names.deadStream)).toEqual({});
    expect(await stored(cluster.names.telemetryStream)).toEqual({});
    expect(await stored(other.names.stream)).toEqual({ 'sg.other.p.0': 1 }); // its own run's stream took it
    const status = await clusterStatus(cluster);
    expect(status.stray).toEqual([]);
    expect(status.rows.map((r) => r.stored)).toEqual([0, 1]);
  }, 30_000);

  it('a stream made by an older version (`sg.NAME.p.*`) is narrowed to the partitions\' subjects when the run is opened, its messages kept and its stray ones shown; a stream of other subjects is refused naming what to do', async () => {
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: 'SG_older', subjects: ['sg.older.p.*'] });
    for (const p of ['0', '99']) await jetstream(nc).publish(`sg.older.p.${p}`, '{"x":[1,2,3],"y":[1]}');
    const cluster = await openCluster(nc, { name: 'older', partitions: 2 });
    expect((await jsm.streams.info('SG_older')).config.subjects).toEqual(['sg.older.p.0', 'sg.older.p.1']);
    nc.publish('sg.older.p.99', 'after'); // not stored any more
    await nc.flush();
    const status = await clusterStatus(cluster);
    expect(status.stray).toEqual([{ subject: 'sg.older.p.99', messages: 1 }]); // what the older stream took: shown, trained by nobody
    expect(status.rows.map((r) => r.stored)).toEqual([1, 0]);
    await jsm.streams.add({ name: 'SG_alien', subjects: ['alien.>'] });
    await expect(openCluster(nc, { name: 'alien', partitions: 2 })).rejects.toMatchObject({
      code: 'SG_ERR_CONFIG', field: 'SG_alien', message: expect.stringMatching(/stream SG_alien takes \["alien\.>"\], not the subjects of cluster run alien's 2 partitions \(sg\.alien\.p\.0 to sg\.alien\.p\.1\): give it exactly those subjects, or delete it/),
    });
    expect((await jsm.streams.info('SG_alien')).config.subjects).toEqual(['alien.>']);
  }, 30_000);

  it('telemetry is believed only from the partition\'s lease holder: a stale owner\'s or an impostor\'s state is ignored and counted, one that is not telemetry refused and counted; status says whose the latest is', async () => {
    const { cluster, gateway, client, workers, first, second, firstState, close } = await failedOver('tmtrust', 'tt-a', 'tt-b', 21);
    try {
      // a state of the first owner, as it would go on sending it after losing the partition
      const state = decodeWire<TelemetryState>(firstState);
      await publish(cluster, 0, 4 * BATCH, 22);
      await client.subscribe('p0', ['metrics']);
      const seen: number[] = [];
      client.metrics$('p0').subscribe((m) => seen.push(m.step));
      await until('the second owner\'s steps served', () => seen.includes(8));
      const forged = encodeWire({ ...state, publish: { ...state.publish, latest: { ...state.publish.latest!, counters: { ...state.publish.latest!.counters, steps: 987_654 } } } });
      const before = gateway.unreadable();
      const judged = () => gateway.unreadable()['telemetry-not-holder'] + gateway.unreadable().telemetry;
      // one at a time (the stream keeps the last per subject: a state replaced before the gateway read it is never read)
      for (const [body, options] of [
        [forged, claim('tt-a', first.epoch)], // the stale owner
        [forged, claim('tt-b', second.epoch + 5)], // the holder's name, an epoch of no commit
        [forged, {}], // no claim at all: an older version, a stray publisher
        ['garbage', claim('tt-b', second.epoch)], // the holder's claim on a body that is no state
      ] as const) {
        const count = judged();
        nc.publish(cluster.names.telemetry(0), body, options);
        await until('the state judged', () => {
          expect(seen).not.toContain(987_654); // never served
          return judged() > count;
        });
      }
      await new Promise((r) => setTimeout(r, 300));
      expect(seen).not.toContain(987_654);
      expect(gateway.unreadable()['telemetry-not-holder'] - before['telemetry-not-holder']).toBe(2);
      expect(gateway.unreadable().telemetry - before.telemetry).toBe(2);
      expect(gateway.runs()).toEqual(['p0']);
      const metrics = await (await fetch(`${gateway.url.replace(/\/$/, '')}/metrics`)).text();
      expect(metrics).toMatch(/streamgrad_cluster_gateway_unreadable\{kind="telemetry-not-holder"\} [2-9]/);
      // status: whose the latest state is, and what the gateways ignored (announced every lease TTL)
      await workers[1]!.stop(); // nobody publishes after this: the latest state is what status finds
      expect((await clusterStatus(cluster)).rows[0]!.telemetry).toEqual({ owner: 'tt-b', epoch: second.epoch, believed: true });
      nc.publish(cluster.names.telemetry(0), forged, claim('tt-a', first.epoch));
      await nc.flush();
      const status = await clusterStatus(cluster);
      expect(status.rows[0]!.telemetry).toEqual({ owner: 'tt-a', epoch: first.epoch, believed: false });
      await until('the gateway announced what it ignored', async () => ((await clusterStatus(cluster)).gateways[0]?.unreadable?.['telemetry-not-holder'] ?? 0) >= 3);
      nc.publish(cluster.names.telemetry(0), forged);
      await nc.flush();
      const damaged = (await clusterStatus(cluster)).rows[0]!;
      expect(damaged.telemetry).toBeNull();
      expect(damaged.damaged).toMatchObject([{ code: 'SG_ERR_SOURCE', field: 'sg.tmtrust.tm.0', message: expect.stringMatching(/Sg-Owner/) }]);
    } finally {
      await close();
    }
  }, 60_000);

  it('events are forwarded only from the partition\'s owner: a former owner\'s after a failover, an impostor\'s or one without a claim never reach a subscriber, one that is not an event is refused; each is counted, and status shows the counts', async () => {
    const { cluster, gateway, client, first, second, close } = await failedOver('evtrust', 'ev-a', 'ev-b', 31);
    let zombie: PartitionTelemetry | undefined;
    try {
      await client.subscribe('p0', ['events']);
      const seen: EventMessage[] = [];
      client.events$('p0').subscribe((e) => seen.push(e));
      // the owner's events come through (its commits' checkpoint events, sent with its claim)
      await publish(cluster, 0, 4 * BATCH, 32);
      await until('the second owner\'s events forwarded', () => seen.some((e) => e.event === 'checkpoint' && e.step > 4));
      // the first owner's side of the gateways as a worker that lost the partition without
      // noticing keeps it (paused past its lease, then resumed): its run's events go out with its claim
      const stale = new TrainingRun({ id: partitionKey(0), trainer: testModel(0).trainer, source: [] });
      zombie = new PartitionTelemetry(cluster, 0, stale, { owner: 'ev-a', epoch: first.epoch }, 10);
      const before = gateway.unreadable();
      const judged = () => gateway.unreadable()['event-not-holder'] + gateway.unreadable().event;
      const never = () => {
        expect(seen.map((e) => e.event)).not.toContain('paused');
        expect(seen.map((e) => e.step)).not.toContain(987_654);
      };
      let count = judged();
      stale.pause(); // a 'paused' event of run p0, from ev-a at the first epoch
      await until('the former owner\'s event judged', () => {
        never();
        return judged() > count;
      });
      // by hand, one at a time
      const event = (fields: Record<string, unknown> = {}) => encodeWire({ type: 'drift', run: 'p0', step: 987_654, time: Date.now(), ...fields });
      for (const [body, options] of [
        [event(), claim('ev-a', first.epoch)], // the former owner
        [event(), claim('ev-b', second.epoch + 5)], // the owner's name, an epoch of no commit
        [event(), {}], // no claim: an older version, a stray publisher
        ['garbage', claim('ev-b', second.epoch)], // the owner's claim on a body that is no event
        [event({ type: '<b>evil</b>' }), claim('ev-b', second.epoch)], // a type no run emits
        [event({ run: 'p1' }), claim('ev-b', second.epoch)], // another run's event on p0's subject
        [event({ step: '1' }), claim('ev-b', second.epoch)], // a step that is no count
        [event({ detail: ['x'] }), claim('ev-b', second.epoch)], // a detail that is no object
      ] as const) {
        count = judged();
        nc.publish(cluster.names.events(0), body, options);
        await until('the event judged', () => {
          never();
          return judged() > count;
        });
      }
      // the owner's claim on an event: forwarded, after everything before it
      nc.publish(cluster.names.events(0), event({ step: 123_456 }), claim('ev-b', second.epoch));
      await until('the owner\'s event forwarded', () => seen.some((e) => e.step === 123_456));
      never();
      expect(gateway.unreadable()['event-not-holder'] - before['event-not-holder']).toBe(3);
      expect(gateway.unreadable().event - before.event).toBe(6);
      const metrics = await (await fetch(`${gateway.url.replace(/\/$/, '')}/metrics`)).text();
      expect(metrics).toMatch(/streamgrad_cluster_gateway_unreadable\{kind="event-not-holder"\} 3/);
      // a flood of claims of no commit: those that came before a read of the buckets share it
      const reads = vi.spyOn(cluster.commits, 'get');
      for (let i = 0; i < 200; i++) nc.publish(cluster.names.events(0), event(), claim('ev-b', second.epoch + 5));
      await until('the flood judged', () => gateway.unreadable()['event-not-holder'] - before['event-not-holder'] === 203);
      expect(reads.mock.calls.length).toBeLessThan(50);
      reads.mockRestore();
      never();
      await until('the gateway announced what it ignored', async () => ((await clusterStatus(cluster)).gateways[0]?.unreadable?.['event-not-holder'] ?? 0) === 203);
    } finally {
      zombie?.dispose();
      await close();
    }
  }, 60_000);

  it('a command\'s outcome is taken only from the partition\'s owner: rogues that answer first (the former owner\'s claim, the owner\'s name at an epoch of no commit, no claim) are ignored and counted, never reach the client', async () => {
    const { cluster, gateway, client, workers, first, second, close } = await failedOver('ctltrust', 'ct-a', 'ct-b', 41);
    const rogues: ReturnType<NatsConnection['subscribe']>[] = [];
    try {
      // each answers at once, before the owner (which answers once the command is applied at a step boundary)
      const rogue = (body: string, options: { headers?: ReturnType<typeof headers> }) => rogues.push(nc.subscribe(cluster.names.control(0), { callback: (_e, msg) => void msg.respond(body, options) }));
      const lie = JSON.stringify({ ok: false, code: 'SG_ERR_STATE', message: 'rogue: the partition is gone' });
      rogue(lie, claim('ct-a', first.epoch)); // the former owner, as a worker that lost its lease would answer
      rogue(lie, claim('ct-b', second.epoch + 5)); // the owner's name, an epoch of no commit
      rogue('rogue garbage', {}); // no claim: a stray client
      await nc.flush();
      const before = gateway.unreadable();
      // the owner's ack, not the first reply
      expect(await client.command('p0', 'pause')).toMatchObject({ type: 'ack', command: 'pause', duplicate: false });
      expect(workers[1]!.run(0)!.run.state).toBe('paused');
      expect(gateway.unreadable()['control-not-holder'] - before['control-not-holder']).toBe(2);
      expect(gateway.unreadable()['control-reply'] - before['control-reply']).toBe(1);
      expect((await client.command('p0', 'resume')).type).toBe('ack');
      expect(workers[1]!.run(0)!.run.state).not.toBe('paused');
      const metrics = await (await fetch(`${gateway.url.replace(/\/$/, '')}/metrics`)).text();
      expect(metrics).toContain('streamgrad_cluster_gateway_unreadable{kind="control-not-holder"} 4');
    } finally {
      for (const r of rogues) r.unsubscribe();
      await close();
    }
  }, 60_000);

  it('a command of a partition no worker holds is answered at once (`SG_ERR_STATE` "has no owner now", not sent), whoever else answers its subject; once a worker holds it, commands wait for it again', async () => {
    const { cluster, gateway, client, workers, start, first, close } = await ownedBy('noowner', 'no-a', 51);
    const rogues: ReturnType<NatsConnection['subscribe']>[] = [];
    try {
      await workers[0]!.stop(); // hands its lease back: nobody owns partition 0 now
      const asked: string[] = [];
      const lie = JSON.stringify({ ok: false, code: 'SG_ERR_STATE', message: 'rogue: the partition is gone' });
      rogues.push(nc.subscribe(cluster.names.control(0), { callback: (_e, msg) => { asked.push(msg.string()); msg.respond(lie, claim('no-a', first.epoch)); } })); // the former owner's claim
      rogues.push(nc.subscribe(cluster.names.control(0), { callback: (_e, msg) => void msg.respond('rogue garbage') }));
      await nc.flush();
      const before = gateway.unreadable();
      for (const command of ['pause', 'resume'] as const) {
        const started = performance.now();
        const refused = await client.command('p0', command).catch((error: unknown) => error);
        expect(performance.now() - started).toBeLessThan(1000); // not the command's 5 s
        expect(refused).toMatchObject({ code: 'SG_ERR_STATE', message: expect.stringMatching(/partition 0 has no owner now: no worker holds its lease \(free since \d{4}-\d\d-\d\dT[\d:.]+Z; its last owner was no-a, epoch 1\); the command was not sent, nothing changed$/) });
      }
      expect(asked).toEqual([]); // never sent: a worker taking the partition later does not apply it
      expect(gateway.unreadable()).toEqual(before);
      // nobody answers at all: the same, at once
      for (const r of rogues.splice(0)) r.unsubscribe();
      const started = performance.now();
      await expect(client.command('p0', 'pause')).rejects.toMatchObject({ code: 'SG_ERR_STATE', message: expect.stringMatching(/has no owner now/) });
      expect(performance.now() - started).toBeLessThan(1000);
      // a lease its holder stopped renewing (a worker killed before it fenced): the server removes
      // it one TTL after it was written and no entry says so (the gateway's watch saw it written)
      await cluster.leases.create(partitionKey(0), JSON.stringify({ owner: 'no-ghost', since: Date.now() }));
      const written = (await cluster.leases.get(partitionKey(0)))!.created.getTime();
      await until('the lease expired', async () => (await cluster.leases.get(partitionKey(0))) === null, 5000);
      await expect(client.command('p0', 'pause')).rejects.toMatchObject({ message: expect.stringContaining(`free since ${new Date(written + 1000).toISOString()}; its last owner was no-a, epoch 1`) });
      // a worker takes the partition: the command waits for it and is applied
      start('no-b');
      await until('the second owner fenced', async () => (await readCommit(cluster, 0))?.record.owner === 'no-b');
      await until('the second owner answers', async () => (await client.command('p0', 'pause').then(() => true, () => false)));
      expect(workers[1]!.run(0)!.run.state).toBe('paused');
    } finally {
      for (const r of rogues) r.unsubscribe();
      await close();
    }
  }, 60_000);

  it('an owner that loses the partition while a command waits is believed on its reply to it: the client gets that reply ("not applied"), not the command\'s timeout', async () => {
    const { cluster, gateway, client, first, close } = await ownedBy('midloss', 'ml-a', 61);
    let seen: ReturnType<NatsConnection['subscribe']> | undefined;
    try {
      expect((await client.command('p0', 'pause')).type).toBe('ack');
      // a step while paused waits for a batch that does not come: the command is in the owner's hands
      let sent!: () => void;
      const reached = new Promise<void>((resolve) => (sent = resolve));
      seen = nc.subscribe(cluster.names.control(0), { callback: () => sent() }); // sees the request, never answers
      await nc.flush();
      const started = performance.now();
      const step = client.command('p0', 'step').catch((error: unknown) => error);
      await reached;
      // meanwhile another worker takes the partition (its lease, then its fence): ml-a's next renewal is refused
      await cluster.leases.delete(partitionKey(0));
      await cluster.leases.create(partitionKey(0), JSON.stringify({ owner: 'ml-b', since: Date.now() }));
      expect((await fence(cluster, 0, 'ml-b')).record.epoch).toBe(first.epoch + 1);
      // ml-a answers the command it was sent (with its claim, now of an older epoch): that is what the client gets
      const answer = await step;
      expect(performance.now() - started).toBeLessThan(4000); // not the command's 5 s
      expect(answer).toMatchObject({ code: 'SG_ERR_STATE', message: expect.stringMatching(/the partition changed owner before the command was done: not applied/) });
      expect(gateway.unreadable()['control-not-holder']).toBe(0);
    } finally {
      seen?.unsubscribe();
      await close();
    }
  }, 60_000);
});

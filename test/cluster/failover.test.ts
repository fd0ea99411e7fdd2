// Three worker processes on a real nats-server, one producer, 30k samples over 6
// partitions: kill -9 the busiest worker mid-run, SIGSTOP another past its lease TTL and
// SIGCONT it later. Every sample is trained exactly once into the committed models, each
// bitwise equal to a single-process run over its partition's samples, and the paused
// worker's late commit is rejected.
import type { ChildProcess } from 'node:child_process';
import { filter, firstValueFrom } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { connect } from '../../clients/node/client.ts';
import { startGateway } from '../../cluster/gateway.ts';
import type { NatsConnection } from '@nats-io/transport-node';
import { readCommit } from '../../cluster/commits.ts';
import type { ClusterEvent } from '../../cluster/events.ts';
import { openCluster } from '../../cluster/open.ts';
import { ClusterPublisher } from '../../cluster/publisher.ts';
import type { NatsServer } from '../helpers/nats-server.ts';
import { byPartition, committed, cutsOf, natsForThisFile, owned, padding, readings, replay, startWorkerProcess, until, type WorkerProcess } from './fixture.ts';

let server: NatsServer;
let nc: NatsConnection;
natsForThisFile((connection, running) => { nc = connection; server = running; });
const children: ChildProcess[] = [];

afterAll(async () => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
    }
  }
});

type Worker = WorkerProcess;

function startWorker(id: string, name: string): Worker {
  const worker = startWorkerProcess(server.servers, name, id);
  children.push(worker.child);
  return worker;
}

/** A worker-process progress line: steps trained and committed in one owned partition. */
interface Progress { readonly type: 'progress'; readonly partition: number; readonly detail: { readonly steps: number; readonly committed: number } }
const isProgress = (e: { readonly type: string }): e is Progress => e.type === 'progress';

/**
 * SIGSTOPs the worker at a moment it has trained steps past its last commit in some
 * partition, judged from its own lines (written synchronously, so none is in flight once the
 * process is stopped and a short drain has passed): a progress line newer than the
 * partition's last `committed` event, with more steps. Otherwise it continues it and tries
 * again. Returns the number of its events before the pause.
 */
async function pauseHoldingUncommitted(worker: Worker): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    await until('the worker holds uncommitted steps', () => holdsUncommitted(worker), 20_000);
    worker.child.kill('SIGSTOP');
    await new Promise((r) => setTimeout(r, 150)); // read what it wrote before the stop
    if (holdsUncommitted(worker)) return worker.events.length;
    worker.child.kill('SIGCONT');
  }
  throw new Error(`${worker.id} never held uncommitted steps when paused`);
}

function holdsUncommitted(worker: Worker): boolean {
  const lines = worker.events as readonly { readonly type: string }[];
  for (const p of owned(worker)) {
    for (let i = lines.length - 1; i >= 0; i--) {
      const e = lines[i] as ClusterEvent | Progress;
      if (e.partition !== p) continue;
      if (isProgress(e)) { if (e.detail.steps > e.detail.committed) return true; break; }
      if (e.type === 'committed' || e.type === 'acquired') break; // a commit (or a start) after the last progress line
    }
  }
  return false;
}

describe('failover across worker processes', () => {
  it('kill -9 and a SIGSTOP zombie: nothing lost, nothing twice, bitwise single-process models, the zombie fenced', async () => {
    const partitions = 6;
    const name = 'chaos';
    const ttl = 2000;
    const cluster = await openCluster(nc, { name, partitions, leaseTtlMs: ttl });
    const data = readings(30_000, 60, 11, true);
    const expected = byPartition(data, partitions);
    const pads = await Promise.all(expected.map((lines, p) => padding(p, lines)));
    for (const [p, lines] of pads.entries()) expected[p]!.push(...lines);

    const workers = ['w1', 'w2', 'w3'].map((id) => startWorker(id, name));
    await until('all partitions owned, two each', () => workers.every((w) => owned(w).size === 2), 30_000);
    // a gateway and a protocol client watching every partition through it, across the failovers
    const gateway = await startGateway({ cluster, port: 0 });
    const viewer = connect(gateway.wsUrl);
    const seen = new Map<string, number>();
    const runs = await firstValueFrom(viewer.runs$.pipe(filter((list) => list.length === partitions)));
    for (const run of runs) {
      await viewer.subscribe(run.id, ['metrics']);
      viewer.metrics$(run.id).subscribe((m) => seen.set(run.id, Math.max(seen.get(run.id) ?? 0, m.step)));
    }

    const publisher = new ClusterPublisher(cluster, { batchSize: 40, producer: 'chaos' });
    const publishing = (async () => {
      for (let i = 0; i < data.length; i++) {
        await publisher.add(data[i]!.key, data[i]!.line);
        if (i % 1000 === 999) await new Promise((r) => setTimeout(r, 200)); // a live stream: about 6 s
      }
      for (const [p, lines] of pads.entries()) for (const line of lines) await publisher.addTo(p, line);
      await publisher.flush();
    })();

    // kill -9 the busiest worker (most samples committed) mid-run
    await new Promise((r) => setTimeout(r, 1500));
    const committedBy = (w: Worker) => w.events.filter((e) => e.type === 'committed').reduce((s, e) => s + Number(e.detail?.samples ?? 0), 0);
    const busiest = [...workers].sort((a, b) => committedBy(b) - committedBy(a))[0]!;
    const killedPartitions = owned(busiest);
    const killedAt = Date.now();
    busiest.child.kill('SIGKILL');
    const others = workers.filter((w) => w !== busiest);
    await until('the killed worker\'s partitions taken over', () => [...killedPartitions].every((p) => others.some((w) => owned(w).has(p))), 20_000);
    const failoverMs = Date.now() - killedAt;

    // SIGSTOP another past its lease TTL: the last one takes everything. It is paused only
    // while it holds steps it has not committed, so a late commit of its is sure to come
    // (paused just after a commit, with no new data, it would have nothing to commit).
    const [zombie, survivor] = others as [Worker, Worker];
    const stoppedAt = await pauseHoldingUncommitted(zombie);
    const zombiePartitions = owned(zombie);
    await until('the paused worker\'s partitions taken over', () => owned(survivor).size === partitions, 20_000);
    await new Promise((r) => setTimeout(r, 300));
    zombie.child.kill('SIGCONT');

    await publishing;
    try {
      await until('every partition committed to its end', async () => {
        for (let p = 0; p < partitions; p++) if ((await readCommit(cluster, p))?.record.records !== expected[p]!.length) return false;
        return true;
      }, 45_000);
    } catch (error) {
      for (let p = 0; p < partitions; p++) console.log(p, expected[p]!.length, JSON.stringify((await readCommit(cluster, p))?.record));
      for (const w of workers) console.log(w.id, w.events.filter((e) => e.type !== 'committed' && !isProgress(e)).map((e) => `${e.type}:${e.partition ?? ''}${e.detail?.message ?? ''}`).join(' '));
      throw error;
    }

    // the zombie found out: its leases were lost and its late commit refused
    const noticed = (p: number) => zombie.events.slice(stoppedAt).some((e) => e.partition === p && (e.type === 'lease-lost' || e.type === 'partition-failed'));
    await until('the zombie noticed', () => [...zombiePartitions].every(noticed), 10_000).catch((error: unknown) => {
      console.log('the zombie\'s partitions and its events since the pause:', [...zombiePartitions], JSON.stringify(zombie.events.slice(stoppedAt - 3).filter((e) => e.type !== 'committed' && !isProgress(e))));
      throw error;
    });
    // fenced: nothing it commits after the pause under a lease it held before is accepted
    // past the commit its successor started from. (A commit it sent just before the stop can
    // be acked while it is stopped and reported once it runs again, as CI saw: that commit
    // landed while the lease was still its own, and the successor continued from it.)
    // Whether it tries a late commit at all depends on where its run was cut when the lease
    // loss stopped it (CI saw none once although it held uncommitted steps); the CAS refusal
    // itself is tested in-process, deterministically, in cluster.test.ts. Once back, it may
    // rejoin and take partitions under new leases (new epochs): those commits are its own.
    const heldBefore = new Set(zombie.events.slice(0, stoppedAt).filter((e) => e.type === 'acquired').map((e) => `${e.partition}/${String(e.detail?.epoch)}`));
    const successorStart = (p: number) => Math.max(-1, ...survivor.events.filter((e) => e.type === 'acquired' && e.partition === p).map((e) => Number(e.detail?.seq)));
    const lateUnderOldLeases = zombie.events.slice(stoppedAt).filter((e) => e.type === 'committed' && heldBefore.has(`${e.partition}/${String(e.detail?.epoch)}`)
      && Number(e.detail?.seq) > successorStart(e.partition!));
    expect(lateUnderOldLeases).toEqual([]);
    const rejected = zombie.events.filter((e) => e.type === 'commit-rejected');
    expect(rejected.every((e) => zombiePartitions.has(e.partition!))).toBe(true);

    let trained = 0;
    for (let p = 0; p < partitions; p++) {
      const remote = await committed(cluster, p);
      const local = await replay(p, expected[p]!, cutsOf(workers.flatMap((w) => w.events), p));
      expect(remote!.fingerprint, `partition ${p}`).toEqual(local.fingerprint);
      trained += remote!.fingerprint.samples + remote!.fingerprint.rejected;
    }
    expect(trained).toBe(expected.reduce((s, lines) => s + lines.length, 0));
    // the gateway followed every partition to its last step, whichever worker owned it
    await until('the gateway showed every partition\'s last step', async () => {
      for (let p = 0; p < partitions; p++) if ((seen.get(`p${p}`) ?? -1) < (await committed(cluster, p))!.fingerprint.steps - 1) return false;
      return true;
    }, 20_000).catch((error: unknown) => {
      console.log('steps the gateway showed:', JSON.stringify([...seen]));
      throw error;
    });
    await viewer.close();
    await gateway.close();
    console.log(`failover after kill -9: ${failoverMs} ms (lease TTL ${ttl} ms)`);
    expect(failoverMs).toBeLessThan(ttl + 8000);

    for (const w of [zombie, survivor]) w.child.kill('SIGTERM');
    await Promise.all([zombie, survivor].map((w) => new Promise((r) => (w.child.exitCode !== null ? r(null) : w.child.once('exit', r)))));
  }, 120_000);
});

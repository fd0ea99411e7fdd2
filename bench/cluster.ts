// Cluster benchmark (issue #14), side by side in one run on a private nats-server:
//  1. aggregate samples/s, publish → all committed, of 1 worker vs 2 worker processes
//     (W1-sized models: 8 → 32 → 32 → 1, batch 1; 4 partitions; batches of 50 records);
//  2. publish → committed latency p50/p99 of a paced stream (commits every 200 ms), 2 workers;
//  3. failover with the default lease settings (TTL 3 s): kill -9 of one of the 2 workers →
//     the other owns its partitions and trains them;
//  4. snapshot fan-out: 1 worker trains the 4 partitions flat out (a feeder keeps a bounded
//     backlog published ahead of it), 2 gateway processes serve them, and 250 WebSocket clients
//     per gateway (one child process each, bench/cluster-fanout.ts) subscribe to every
//     partition's snapshots at 10 Hz: snapshots per client per second, latency from the
//     worker's publish of a step's state on NATS to the client holding it, dropped frames, the
//     gateways' CPU and the worker's samples/s with 0 vs 500 clients.
// Usage: npm run bench:cluster [-- --quick] [--json]. Numbers depend on the machine's load:
// the ratio needs two idle cores (the workers are separate processes, nats-server a third).
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { readCommit } from '../cluster/commits.ts';
import type { ClusterEvent } from '../cluster/events.ts';
import { type Cluster, connectNats, openCluster } from '../cluster/open.ts';
import { ClusterPublisher } from '../cluster/publisher.ts';
import type { TelemetryState } from '../cluster/telemetry.ts';
import { decodeWire } from '../cluster/wire.ts';
import { Rng } from '../core/rng.ts';
import type { FromClients, FromGateway, ToClients, ToGateway } from './cluster-fanout.ts';
import { type Forked, forkSelf, mean, quantile, sleep } from './harness.ts';
import { findNatsServer, startNatsServer } from '../test/helpers/nats-server.ts';

const quick = process.argv.includes('--quick');
const json = process.argv.includes('--json');
const PARTITIONS = 4;
const N = quick ? 8_000 : 60_000;
const binary = findNatsServer();
if (binary === null) throw new Error('nats-server is not installed (apt-get install nats-server)');
const server = await startNatsServer(binary);
const nc = await connectNats(server.servers, 'bench');
const children: ChildProcess[] = [];

interface Worker { readonly child: ChildProcess; readonly events: ClusterEvent[] }

function startWorker(name: string, id: string, everyMs: number): Worker {
  const child = spawn(process.execPath, ['--import', 'tsx/esm', 'bench/cluster-worker.ts', server.servers, name, id, String(everyMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  const events: ClusterEvent[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => events.push(JSON.parse(line) as ClusterEvent));
  return { child, events };
}

function owned(w: Worker): Set<number> {
  const held = new Set<number>();
  for (const e of w.events) {
    if (e.type === 'acquired') held.add(e.partition!);
    if (e.type === 'lease-lost' || e.type === 'released' || e.type === 'partition-failed') held.delete(e.partition!);
  }
  return held;
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function sample(rng: Rng): string {
  const x = Array.from({ length: 8 }, () => rng.uniform(-1, 1));
  return JSON.stringify({ x, y: [x.reduce((s, v, i) => s + v * (i % 3 - 1), 0)] });
}

async function committedRecords(cluster: Cluster): Promise<number> {
  let total = 0;
  for (let p = 0; p < PARTITIONS; p++) total += (await readCommit(cluster, p))?.record.records ?? 0;
  return total;
}

async function stopAll(workers: Worker[]): Promise<void> {
  await Promise.all(workers.map((w) => new Promise((resolve) => {
    if (w.child.exitCode !== null || w.child.signalCode !== null) return resolve(null);
    w.child.once('exit', resolve);
    w.child.kill('SIGTERM');
  })));
}

/** 1. publish N records into a balanced cluster of `count` workers; samples/s until all are committed. */
async function throughput(count: number): Promise<{ workers: number; samplesPerSecond: number; publishPerSecond: number }> {
  const name = `tp${count}`;
  const cluster = await openCluster(nc, { name, partitions: PARTITIONS });
  const workers = Array.from({ length: count }, (_, i) => startWorker(name, `${name}-w${i}`, 500));
  await until(() => workers.every((w) => owned(w).size === PARTITIONS / count), 60_000, 'balanced leases');
  const rng = new Rng(5);
  const publisher = new ClusterPublisher(cluster, { batchSize: 50, producer: name, lingerMs: 0 });
  const started = performance.now();
  for (let i = 0; i < N; i++) {
    const waiting = publisher.addTo(i % PARTITIONS, sample(rng));
    if (waiting !== undefined) await waiting;
  }
  await publisher.flush();
  const published = performance.now();
  await until(async () => (await committedRecords(cluster)) === N, 300_000, 'all committed');
  const seconds = (performance.now() - started) / 1000;
  await stopAll(workers);
  return { workers: count, samplesPerSecond: N / seconds, publishPerSecond: N / ((published - started) / 1000) };
}

/** 2 and 3: a paced stream into 2 workers; latency publish → committed, then kill -9 one. */
async function pacedAndFailover(): Promise<{ p50: number; p99: number; failoverMs: number }> {
  const name = 'paced';
  const cluster = await openCluster(nc, { name, partitions: PARTITIONS });
  const workers = [startWorker(name, 'paced-a', 200), startWorker(name, 'paced-b', 200)];
  await until(() => workers.every((w) => owned(w).size === PARTITIONS / 2), 60_000, 'balanced leases');
  const rng = new Rng(9);
  const sent: { partition: number; seq: number; at: number }[] = [];
  const perSecond = 2000;
  const seconds = quick ? 3 : 6;
  // publish batch by batch with its own ack, to know each batch's stream sequence
  for (let t = 0; t < seconds * 10; t++) {
    const tickStart = performance.now();
    for (let p = 0; p < PARTITIONS; p++) {
      const lines = Array.from({ length: perSecond / 10 / PARTITIONS }, () => sample(rng));
      const at = Date.now();
      const ack = await cluster.js.publish(cluster.names.subject(p), new TextEncoder().encode(lines.join('\n')), { msgID: `paced:${p}:${t}` });
      sent.push({ partition: p, seq: ack.seq, at });
    }
    await new Promise((r) => setTimeout(r, Math.max(0, 100 - (performance.now() - tickStart))));
  }
  await until(async () => (await committedRecords(cluster)) === sent.length * perSecond / 10 / PARTITIONS, 60_000, 'paced stream committed');
  const commits = workers.flatMap((w) => w.events.filter((e) => e.type === 'committed'));
  const latencies = sent.map((s) => {
    const first = commits.filter((c) => c.partition === s.partition && Number(c.detail!.seq) >= s.seq).sort((a, b) => a.time - b.time)[0];
    return first === undefined ? NaN : first.time - s.at;
  }).filter(Number.isFinite).sort((a, b) => a - b);
  // failover: kill -9 one worker, time until the other owns everything
  const [victim, survivor] = workers as [Worker, Worker];
  const killedAt = Date.now();
  victim.child.kill('SIGKILL');
  await until(() => owned(survivor).size === PARTITIONS, 30_000, 'failover');
  const failoverMs = Date.now() - killedAt;
  await stopAll([survivor]);
  return { p50: latencies[Math.floor(latencies.length * 0.5)]!, p99: latencies[Math.floor(latencies.length * 0.99)]!, failoverMs };
}

/** The fan-out section's result (section 4). */
interface Fanout {
  readonly clients: number;
  readonly askedPerClientPerSecond: number;
  /** The states of a partition the worker published on NATS per second (a gateway cannot send more): 0 clients, 500, 0 again. */
  readonly statesPerPartitionPerSecond: { readonly noClientsBefore: number; readonly withClients: number; readonly noClientsAfter: number };
  readonly snapshotsPerClientPerSecond: { readonly mean: number; readonly min: number };
  readonly latencyMs: { readonly p50: number; readonly p99: number; readonly samples: number };
  readonly droppedFrames: number;
  /** CPU time of each gateway process per second of wall time (1 = a whole core), idle and with its 250 clients. */
  readonly gatewayCpu: { readonly idle: number[]; readonly withClients: number[] };
  /** The worker's samples/s with 0 clients (before and after) and with 500. */
  readonly workerSamplesPerSecond: { readonly noClientsBefore: number; readonly withClients: number; readonly noClientsAfter: number };
}

/** The `streamgrad_dropped_frames_total` of a gateway's `/metrics` (0 when not there yet). */
async function droppedFrames(url: string): Promise<number> {
  const text = await (await fetch(new URL('/metrics', url))).text();
  const line = /^streamgrad_dropped_frames_total(?:\{[^}]*\})? (\S+)$/m.exec(text);
  return line === null ? 0 : Number(line[1]);
}

/** 4. snapshot fan-out through 2 gateways × `perGateway` clients while 1 worker trains flat out. */
async function fanout(perGateway: number): Promise<Fanout> {
  const name = 'fanout';
  const window = quick ? 2 : 8;
  const cluster = await openCluster(nc, { name, partitions: PARTITIONS });
  const worker = startWorker(name, 'fanout-w', 500);
  // the worker's state as it publishes it (seen by a NATS subscriber, as the gateways see it):
  // its sample counters, and when each (partition, step) went out, for the latency
  const samples = new Map<string, number>();
  const publishedAt = new Map<string, number>();
  let states = 0;
  const telemetry = nc.subscribe(cluster.names.telemetry('*'), {
    callback: (error, msg) => {
      if (error !== null) return;
      const state = decodeWire<TelemetryState>(msg.string());
      samples.set(state.publish.run, state.publish.counters.samples);
      states++;
      publishedAt.set(`${state.publish.run}:${state.publish.counters.steps}`, performance.timeOrigin + performance.now());
    },
  });
  const trained = () => [...samples.values()].reduce((a, b) => a + b, 0);
  // flat out: a feeder keeps at most BACKLOG records published ahead of the worker
  const BACKLOG = 20_000;
  const rng = new Rng(13);
  const pool = Array.from({ length: 1024 }, () => sample(rng));
  const publisher = new ClusterPublisher(cluster, { batchSize: 50, producer: name, lingerMs: 0 });
  let feeding = true, published = 0;
  const feeder = (async () => {
    while (feeding) {
      if (published - trained() > BACKLOG) {
        await sleep(20);
        continue;
      }
      for (let i = 0; i < 1000; i++, published++) {
        const waiting = publisher.addTo(published % PARTITIONS, pool[published % pool.length]!);
        if (waiting !== undefined) await waiting;
      }
    }
    await publisher.flush();
  })();
  const gateways: Forked<FromGateway>[] = [];
  const clientProcesses: Forked<FromClients>[] = [];
  try {
    await until(() => owned(worker).size === PARTITIONS && samples.size === PARTITIONS, 60_000, 'the worker training every partition');
    for (let g = 0; g < 2; g++) gateways.push(forkSelf<FromGateway>(new URL('./cluster-fanout.ts', import.meta.url).href, ['--gateway', server.servers, name]));
    const addresses = await Promise.all(gateways.map((g) => g.next('ready')));
    const offered: number[] = [];
    const rate = async (): Promise<number> => {
      const n0 = trained(), s0 = states, t0 = performance.now();
      await sleep(window * 1000);
      const ms = performance.now() - t0;
      offered.push(Number(((states - s0) * 1000 / ms / PARTITIONS).toFixed(2)));
      return (trained() - n0) * 1000 / ms;
    };
    const gatewayCpu = async (during: Promise<unknown>): Promise<number[]> => {
      for (const g of gateways) g.kid.send({ type: 'cpu-start' } satisfies ToGateway);
      await during;
      for (const g of gateways) g.kid.send({ type: 'cpu' } satisfies ToGateway);
      return (await Promise.all(gateways.map((g) => g.next('cpu')))).map((c) => Number(c.cores.toFixed(3)));
    };
    await sleep(1000); // warm-up
    const before = rate();
    const idleCpu = await gatewayCpu(before);
    for (const { wsUrl, url } of addresses) clientProcesses.push(forkSelf<FromClients>(new URL('./cluster-fanout.ts', import.meta.url).href, ['--clients', wsUrl, url, String(perGateway)]));
    await Promise.all(clientProcesses.map((c) => c.next('ready')));
    const dropped0 = (await Promise.all(addresses.map((a) => droppedFrames(a.url)))).reduce((a, b) => a + b, 0);
    for (const c of clientProcesses) c.kid.send({ type: 'measure' } satisfies ToClients);
    const loaded = rate();
    const loadedCpu = await gatewayCpu(loaded);
    for (const c of clientProcesses) c.kid.send({ type: 'report' } satisfies ToClients);
    const reports = await Promise.all(clientProcesses.map((c) => c.next('report')));
    const dropped = (await Promise.all(addresses.map((a) => droppedFrames(a.url)))).reduce((a, b) => a + b, 0) - dropped0;
    for (const c of clientProcesses) c.kid.send({ type: 'exit' } satisfies ToClients);
    await Promise.all(clientProcesses.map((c) => new Promise((r) => c.kid.exitCode !== null ? r(null) : c.kid.once('exit', r))));
    await sleep(500);
    const after = await rate();
    const perClient = reports.flatMap((r) => r.frames.map((f) => f / r.seconds));
    const latencies: number[] = [];
    for (const r of reports) {
      for (let i = 0; i < r.received.length; i += 3) {
        const at = publishedAt.get(`${r.runs[r.received[i]!]}:${r.received[i + 1]}`);
        if (at !== undefined) latencies.push(r.received[i + 2]! - at);
      }
    }
    return {
      clients: perClient.length,
      askedPerClientPerSecond: 10 * PARTITIONS,
      statesPerPartitionPerSecond: { noClientsBefore: offered[0]!, withClients: offered[1]!, noClientsAfter: offered[2]! },
      snapshotsPerClientPerSecond: { mean: Number(mean(perClient).toFixed(2)), min: Number(Math.min(...perClient).toFixed(2)) },
      latencyMs: { p50: Number(quantile(latencies, 0.5)!.toFixed(1)), p99: Number(quantile(latencies, 0.99)!.toFixed(1)), samples: latencies.length },
      droppedFrames: dropped,
      gatewayCpu: { idle: idleCpu, withClients: loadedCpu },
      workerSamplesPerSecond: { noClientsBefore: Math.round(await before), withClients: Math.round(await loaded), noClientsAfter: Math.round(after) },
    };
  } finally {
    feeding = false;
    for (const c of clientProcesses) if (c.kid.exitCode === null) c.kid.kill('SIGKILL');
    // a gateway closes itself when told; one that does not within 5 s (e.g. not started yet) is killed
    await Promise.all(gateways.map((g) => new Promise((resolve) => {
      if (g.kid.exitCode !== null || g.kid.signalCode !== null) return resolve(null);
      const kill = setTimeout(() => g.kid.kill('SIGKILL'), 5000);
      g.kid.once('exit', () => { clearTimeout(kill); resolve(null); });
      if (g.kid.connected) g.kid.send({ type: 'exit' } satisfies ToGateway);
    })));
    await feeder.catch(() => undefined);
    telemetry.unsubscribe();
    await stopAll([worker]);
  }
}

try {
  const one = await throughput(1);
  const two = await throughput(2);
  const paced = await pacedAndFailover();
  const fan = await fanout(250);
  const result = {
    samples: N, partitions: PARTITIONS,
    oneWorker: Math.round(one.samplesPerSecond), twoWorkers: Math.round(two.samplesPerSecond), scaling: two.samplesPerSecond / one.samplesPerSecond,
    publishPerSecond: Math.round(Math.max(one.publishPerSecond, two.publishPerSecond)),
    latencyP50Ms: paced.p50, latencyP99Ms: paced.p99, failoverMs: paced.failoverMs,
    fanout: fan,
  };
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write([
      `cluster bench: ${N} samples over ${PARTITIONS} partitions, W1 models (8→32→32→1, batch 1), batches of 50 records`,
      `  1 worker : ${result.oneWorker} samples/s (publish → all committed)`,
      `  2 workers: ${result.twoWorkers} samples/s, ×${result.scaling.toFixed(2)} (target ≥ 1.7 on two idle cores)`,
      `  publish alone: ${result.publishPerSecond} records/s`,
      `  publish → committed, 2,000 samples/s paced, commits every 200 ms: p50 ${result.latencyP50Ms} ms, p99 ${result.latencyP99Ms} ms`,
      `  failover after kill -9 (lease TTL 3 s): ${result.failoverMs} ms until the survivor owns every partition`,
      `  fan-out, 2 gateways × ${fan.clients / 2} clients, every partition's snapshots at 10 Hz, 1 worker training flat out:`,
      `    snapshots per client per second: mean ${fan.snapshotsPerClientPerSecond.mean}, min ${fan.snapshotsPerClientPerSecond.min} (asked: ${fan.askedPerClientPerSecond}; the worker published ${fan.statesPerPartitionPerSecond.withClients} states per partition per second meanwhile, ${fan.statesPerPartitionPerSecond.noClientsBefore} with no clients)`,
      `    latency (worker publishes the step's state on NATS → client holds it): p50 ${fan.latencyMs.p50} ms, p99 ${fan.latencyMs.p99} ms over ${fan.latencyMs.samples} snapshots`,
      `    dropped frames: ${fan.droppedFrames}; gateways' CPU (cores): ${fan.gatewayCpu.withClients.join(', ')} with clients, ${fan.gatewayCpu.idle.join(', ')} without`,
      `    worker: ${fan.workerSamplesPerSecond.withClients} samples/s with ${fan.clients} clients, ${fan.workerSamplesPerSecond.noClientsBefore} / ${fan.workerSamplesPerSecond.noClientsAfter} with none (before / after)`,
      '',
    ].join('\n'));
  }
} finally {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await nc.close();
  await server.stop();
}

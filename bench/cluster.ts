// Cluster benchmark (issue #14), side by side in one run on a private nats-server:
//  1. aggregate samples/s of 1 worker vs 2 worker processes (W1-sized models: 8 → 32 → 32 → 1,
//     batch 1; 4 partitions; batches of 50 records): a backlog published first with nothing else
//     running, then the workers told to go at one moment (each takes P ÷ workers partitions),
//     timed from the first to the last trained sample, with the cores each process used
//     meanwhile (/proc: workers, nats-server, this process; the machine's busy cores, others),
//     the states per partition per second the workers published, 1 and 2 workers alternating
//     for --rounds rounds (default 3). SG_BENCH_CPU_PROF=DIR profiles the workers (--cpu-prof);
//  2. publish → committed latency p50/p99 of a paced stream (commits every 200 ms), 2 workers;
//  3. failover with the default lease settings (TTL 3 s): kill -9 of one of the 2 workers →
//     the other owns its partitions and trains them;
//  4. snapshot fan-out: 1 worker trains the 4 partitions flat out (a feeder keeps a bounded
//     backlog published ahead of it), 2 gateway processes serve them, and 250 WebSocket clients
//     per gateway (one child process each, bench/cluster-fanout.ts) subscribe to every
//     partition's snapshots at 10 Hz: snapshots per client per second, latency from the
//     worker's publish of a step's state on NATS to the client holding it, dropped frames, the
//     gateways' CPU and the worker's samples/s with 0 vs 500 clients.
// Usage: npm run bench:cluster [-- --quick] [--rounds R] [--only throughput|paced|fanout] [--json].
// Numbers depend on the machine's load:
// the ratio needs two idle cores (the workers are separate processes, nats-server a third).
import { type ChildProcess, spawn } from 'node:child_process';
import { loadavg } from 'node:os';
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
import { CpuSampler } from './proc-cpu.ts';
import { findNatsServer, startNatsServer } from '../test/helpers/nats-server.ts';

const quick = process.argv.includes('--quick');
const json = process.argv.includes('--json');
const PARTITIONS = 4;
const N = quick ? 8_000 : 60_000;
/** Rounds of section 1 (1 worker, then 2), `--rounds R` (default 3, 1 with --quick). */
const ROUNDS = Number(argValue('--rounds') ?? (quick ? 1 : 3));
/** `--only throughput|paced|fanout`: one section. */
const only = argValue('--only');
function argValue(flag: string): string | null {
  const i = process.argv.indexOf(flag);
  return i === -1 ? null : process.argv[i + 1] ?? null;
}
const binary = findNatsServer();
if (binary === null) throw new Error('nats-server is not installed (apt-get install nats-server)');
const server = await startNatsServer(binary);
const nc = await connectNats(server.servers, 'bench');
const children: ChildProcess[] = [];

interface Worker { readonly child: ChildProcess; readonly events: ClusterEvent[]; readonly lines: Record<string, unknown>[] }

/**
 * A worker process (bench/cluster-worker.ts). `gate`: it joins only when told `go` (`release`),
 * taking at most `maxPartitions`. SG_BENCH_CPU_PROF=DIR runs it under `node --cpu-prof` into DIR.
 */
function startWorker(name: string, id: string, everyMs: number, gate?: { maxPartitions: number }): Worker {
  const profile = process.env.SG_BENCH_CPU_PROF;
  const child = spawn(process.execPath, [
    ...(profile !== undefined && profile !== '' ? ['--cpu-prof', '--cpu-prof-dir', profile] : []),
    '--import', 'tsx/esm', 'bench/cluster-worker.ts', server.servers, name, id, String(everyMs),
    ...(gate !== undefined ? [String(gate.maxPartitions), '--gate'] : []),
  ], { stdio: [gate !== undefined ? 'pipe' : 'ignore', 'pipe', 'inherit'] });
  children.push(child);
  const events: ClusterEvent[] = [];
  const lines: Record<string, unknown>[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const parsed = JSON.parse(line) as Record<string, unknown>;
    if (typeof parsed.type === 'string' && parsed.type.startsWith('bench-')) lines.push(parsed);
    else events.push(parsed as unknown as ClusterEvent);
  });
  return { child, events, lines };
}

function owned(w: Worker): Set<number> {
  const held = new Set<number>();
  for (const e of w.events) {
    if (e.type === 'acquired') held.add(e.partition!);
    if (e.type === 'lease-lost' || e.type === 'released' || e.type === 'partition-failed') held.delete(e.partition!);
  }
  return held;
}

async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 20): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`bench: timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
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

const wallNow = () => performance.timeOrigin + performance.now();
const load = () => Number(loadavg()[0]!.toFixed(2));

/** Section 1's result for `workers` worker processes. */
interface Throughput {
  readonly workers: number;
  /** Samples trained ÷ (last trained sample − first trained sample, over all workers). */
  readonly samplesPerSecond: number;
  /** Samples per second of worker CPU (samples/s ÷ the workers' cores): what a worker costs, whatever the machine's load. */
  readonly perWorkerCore: number;
  /** Each worker's own samples/s, from its first to its last trained sample. */
  readonly perWorker: number[];
  /** Samples ÷ (workers told to go → everything committed): leases, restores and the last commit included. */
  readonly goToCommittedPerSecond: number;
  /** Publishing the backlog, nothing else running: records/s and nats-server's cores meanwhile. */
  readonly publish: { readonly perSecond: number; readonly natsServerCores: number; readonly publisherCores: number };
  /** Cores used while the workers trained (first → last sample): each worker, nats-server, the bench (idle publisher), and the whole machine. */
  readonly cpu: { readonly workers: number[]; readonly natsServer: number; readonly bench: number; readonly machine: number; readonly others: number };
  /** States (telemetry for gateways) each partition's owner published per second while training flat out. */
  readonly statesPerPartitionPerSecond: number;
  /** Their mean size (kB). */
  readonly stateKilobytes: number;
  /** 1-minute load average before and after. */
  readonly load: readonly [number, number];
}

/**
 * 1. A backlog of N records published first (nothing else running), then `count` worker
 * processes told to go at one moment, each taking P ÷ count partitions: samples/s from the
 * first to the last trained sample, with the CPU every process used meanwhile.
 */
async function throughput(count: number, round: number): Promise<Throughput> {
  const load0 = load();
  const name = `tp${count}r${round}`;
  const cluster = await openCluster(nc, { name, partitions: PARTITIONS });
  const rng = new Rng(5);
  const publisher = new ClusterPublisher(cluster, { batchSize: 50, producer: name, lingerMs: 0 });
  const natsPid = server.pid!;
  const pubCpu = new CpuSampler({ nats: natsPid, bench: process.pid });
  const started = wallNow();
  for (let i = 0; i < N; i++) {
    const waiting = publisher.addTo(i % PARTITIONS, sample(rng));
    if (waiting !== undefined) await waiting;
  }
  await publisher.flush();
  const published = wallNow();
  pubCpu.stop();
  const pub = pubCpu.between(started, published);
  const workers = Array.from({ length: count }, (_, i) => startWorker(name, `${name}-w${i}`, 500, { maxPartitions: PARTITIONS / count }));
  await until(() => workers.every((w) => w.lines.some((l) => l.type === 'bench-ready')), 60_000, 'workers ready');
  // the states the workers publish for gateways while they train flat out
  const stateTimes: number[] = [];
  let stateBytes = 0;
  const states = nc.subscribe(cluster.names.telemetry('*'), {
    callback: (_error, msg) => {
      stateTimes.push(wallNow());
      stateBytes += msg.data.length;
    },
  });
  const pids: Record<string, number> = { nats: natsPid, bench: process.pid };
  workers.forEach((w, i) => (pids[`w${i}`] = w.child.pid!));
  const cpu = new CpuSampler(pids);
  const go = wallNow();
  for (const w of workers) w.child.stdin!.write('go\n');
  // polled gently: the bench's own requests must not take CPU from the workers it measures
  await until(async () => (await committedRecords(cluster)) === N, 300_000, 'all committed', 250);
  const committed = wallNow();
  cpu.stop();
  states.unsubscribe();
  await stopAll(workers);
  const trained = workers.map((w) => w.lines.find((l) => l.type === 'bench-trained') as { first: number; last: number; samples: number });
  const first = Math.min(...trained.map((t) => t.first)), last = Math.max(...trained.map((t) => t.last));
  const samples = trained.reduce((a, t) => a + t.samples, 0);
  if (samples !== N) throw new Error(`bench: the workers trained ${samples} samples, ${N} were published`);
  const used = cpu.between(first, last);
  const statesInWindow = stateTimes.filter((t) => t >= first && t <= last).length;
  const workerCores = workers.map((_, i) => used.processes[`w${i}`]!);
  const ours = workerCores.reduce((a, b) => a + b, 0) + used.processes.nats! + used.processes.bench!;
  await cluster.jsm.streams.delete(cluster.names.stream).catch(() => undefined); // the next round's backlog has the store to itself
  return {
    workers: count,
    samplesPerSecond: Math.round(N / ((last - first) / 1000)),
    perWorkerCore: Math.round(N / ((last - first) / 1000) / workerCores.reduce((a, b) => a + b, 0)),
    perWorker: trained.map((t) => Math.round(t.samples / ((t.last - t.first) / 1000))),
    goToCommittedPerSecond: Math.round(N / ((committed - go) / 1000)),
    publish: { perSecond: Math.round(N / ((published - started) / 1000)), natsServerCores: pub.processes.nats!, publisherCores: pub.processes.bench! },
    cpu: { workers: workerCores, natsServer: used.processes.nats!, bench: used.processes.bench!, machine: used.machine, others: Number(Math.max(0, used.machine - ours).toFixed(3)) },
    statesPerPartitionPerSecond: Number((statesInWindow / ((last - first) / 1000) / PARTITIONS).toFixed(2)),
    stateKilobytes: Number((stateBytes / Math.max(1, stateTimes.length) / 1024).toFixed(1)),
    load: [load0, load()],
  };
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

const median = (xs: readonly number[]) => quantile([...xs].sort((a, b) => a - b), 0.5)!;

try {
  // 1 and 2 workers alternately, so that a change in the machine's load hits both alike
  const ones: Throughput[] = [], twos: Throughput[] = [];
  if (only === null || only === 'throughput') {
    for (let r = 0; r < ROUNDS; r++) {
      ones.push(await throughput(1, r));
      twos.push(await throughput(2, r));
    }
  }
  const paced = only === null || only === 'paced' ? await pacedAndFailover() : null;
  const fan = only === null || only === 'fanout' ? await fanout(250) : null;
  const one = ones.length > 0 ? median(ones.map((t) => t.samplesPerSecond)) : NaN;
  const two = twos.length > 0 ? median(twos.map((t) => t.samplesPerSecond)) : NaN;
  const result = {
    samples: N, partitions: PARTITIONS, rounds: ROUNDS,
    oneWorker: one, twoWorkers: two, scaling: two / one,
    throughput: { one: ones, two: twos },
    publishPerSecond: median([...ones, ...twos].map((t) => t.publish.perSecond)),
    ...(paced !== null && { latencyP50Ms: paced.p50, latencyP99Ms: paced.p99, failoverMs: paced.failoverMs }),
    ...(fan !== null && { fanout: fan }),
  };
  if (json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    const out = [`cluster bench: ${N} samples over ${PARTITIONS} partitions, W1 models (8→32→32→1, batch 1), batches of 50 records`];
    if (ones.length > 0) {
      const row = (t: Throughput) => `    ${t.workers} worker${t.workers > 1 ? 's' : ' '}: ${t.samplesPerSecond} samples/s (each: ${t.perWorker.join(', ')}; ${t.perWorkerCore} per worker core; go → all committed ${t.goToCommittedPerSecond}/s)`
        + `, ${t.statesPerPartitionPerSecond} states/partition/s of ${t.stateKilobytes} kB — cores: worker${t.workers > 1 ? 's' : ''} ${t.cpu.workers.join(' + ')}, nats-server ${t.cpu.natsServer}, bench ${t.cpu.bench}; machine busy ${t.cpu.machine} (others ${t.cpu.others}); load ${t.load.join(' → ')}`;
      out.push(
        `  backlog published first (${median([...ones, ...twos].map((t) => t.publish.perSecond))} records/s, nats-server ${median([...ones, ...twos].map((t) => t.publish.natsServerCores))} cores, publisher ${median([...ones, ...twos].map((t) => t.publish.publisherCores))}), then the workers, timed from the first to the last trained sample:`,
        ...ones.flatMap((t, i) => [row(t), row(twos[i]!)]),
        `  median of ${ROUNDS}: 1 worker ${one} samples/s, 2 workers ${two}, ×${(two / one).toFixed(2)} (target ≥ 1.7 on two idle cores); per worker core ${median(ones.map((t) => t.perWorkerCore))} vs ${median(twos.map((t) => t.perWorkerCore))}`,
      );
    }
    if (paced !== null) {
      out.push(
        `  publish → committed, 2,000 samples/s paced, commits every 200 ms: p50 ${paced.p50} ms, p99 ${paced.p99} ms`,
        `  failover after kill -9 (lease TTL 3 s): ${paced.failoverMs} ms until the survivor owns every partition`,
      );
    }
    if (fan !== null) {
      out.push(
        `  fan-out, 2 gateways × ${fan.clients / 2} clients, every partition's snapshots at 10 Hz, 1 worker training flat out:`,
        `    snapshots per client per second: mean ${fan.snapshotsPerClientPerSecond.mean}, min ${fan.snapshotsPerClientPerSecond.min} (asked: ${fan.askedPerClientPerSecond}; the worker published ${fan.statesPerPartitionPerSecond.withClients} states per partition per second meanwhile, ${fan.statesPerPartitionPerSecond.noClientsBefore} with no clients)`,
        `    latency (worker publishes the step's state on NATS → client holds it): p50 ${fan.latencyMs.p50} ms, p99 ${fan.latencyMs.p99} ms over ${fan.latencyMs.samples} snapshots`,
        `    dropped frames: ${fan.droppedFrames}; gateways' CPU (cores): ${fan.gatewayCpu.withClients.join(', ')} with clients, ${fan.gatewayCpu.idle.join(', ')} without`,
        `    worker: ${fan.workerSamplesPerSecond.withClients} samples/s with ${fan.clients} clients, ${fan.workerSamplesPerSecond.noClientsBefore} / ${fan.workerSamplesPerSecond.noClientsAfter} with none (before / after)`,
      );
    }
    process.stdout.write(`${out.join('\n')}\n`);
  }
} finally {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await nc.close();
  await server.stop();
}

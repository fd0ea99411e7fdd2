// Cluster benchmark (issue #14), side by side in one run on a private nats-server:
//  1. aggregate samples/s, publish → all committed, of 1 worker vs 2 worker processes
//     (W1-sized models: 8 → 32 → 32 → 1, batch 1; 4 partitions; batches of 50 records);
//  2. publish → committed latency p50/p99 of a paced stream (commits every 200 ms), 2 workers;
//  3. failover with the default lease settings (TTL 3 s): kill -9 of one of the 2 workers →
//     the other owns its partitions and trains them.
// Usage: npm run bench:cluster [-- --quick] [--json]. Numbers depend on the machine's load:
// the ratio needs two idle cores (the workers are separate processes, nats-server a third).
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { readCommit } from '../cluster/commits.ts';
import type { ClusterEvent } from '../cluster/events.ts';
import { type Cluster, connectNats, openCluster } from '../cluster/open.ts';
import { ClusterPublisher } from '../cluster/publisher.ts';
import { Rng } from '../core/rng.ts';
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

try {
  const one = await throughput(1);
  const two = await throughput(2);
  const paced = await pacedAndFailover();
  const result = {
    samples: N, partitions: PARTITIONS,
    oneWorker: Math.round(one.samplesPerSecond), twoWorkers: Math.round(two.samplesPerSecond), scaling: two.samplesPerSecond / one.samplesPerSecond,
    publishPerSecond: Math.round(Math.max(one.publishPerSecond, two.publishPerSecond)),
    latencyP50Ms: paced.p50, latencyP99Ms: paced.p99, failoverMs: paced.failoverMs,
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
      '',
    ].join('\n'));
  }
} finally {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await nc.close();
  await server.stop();
}

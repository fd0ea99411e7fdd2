// The model and data every cluster test trains, shared by the in-process tests, the
// worker processes they start (worker-process.ts) and the single-process replays the
// results are compared with; and the nats-server of the in-process test files.
import { decodeCheckpoint } from '../../pipeline/checkpoint.ts';
import { createIngestCounters } from '../../core/record.ts';
import { ingest } from '../../pipeline/ingest.ts';
import { Normalizer } from '../../core/normalizer.ts';
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { ndjsonRecords } from '../../sources/ndjson.ts';
import { restoreRun } from '../../pipeline/run-checkpoint.ts';
import { TrainingRun } from '../../pipeline/run.ts';
import { Rng } from '../../core/rng.ts';
import { MemoryDeadLetters } from '../../core/dead-letter.ts';
import type { PartitionModel } from '../../cluster/partition-run.ts';
import type { ClusterEvent } from '../../cluster/events.ts';
import { CUT } from '../../pipeline/cut.ts';
import type { Cluster } from '../../cluster/open.ts';
import { openCluster } from '../../cluster/open.ts';
import { ClusterWorker } from '../../cluster/worker.ts';
import { type Gateway, startGateway } from '../../cluster/gateway.ts';
import { readCommit } from '../../cluster/commits.ts';
import { partitionOf } from '../../cluster/partition-of.ts';
import { hashOf, tinyTrainer } from '../helpers/streams.ts';
import { beforeAll } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectNats } from '../../cluster/open.ts';
import { forThisFile, sharedStart } from '../helpers/for-this-file.ts';
import { type NatsServer, natsServerForThisFile } from '../helpers/nats-server.ts';

export const WINDOW = 50;
export const BATCH = 8;

/** The model of partition `p`: 3 inputs → 8 tanh → 1, Adam, normalised inputs and target, batches of 8. */
export function testModel(partition: number): PartitionModel {
  const trainer = tinyTrainer({ inputs: 3, layers: [[8, 'tanh'], [1, 'linear']], optimizer: { type: 'adam', learningRate: 0.01 }, seed: 1 + partition });
  return { trainer, window: WINDOW, train: { batch: BATCH }, normalizer: new Normalizer({ inputs: 3, outputs: 1, target: true }) };
}

/** One reading: its sensor key and its NDJSON line. */
export interface Reading {
  readonly key: string;
  readonly line: string;
}

/**
 * `count` seeded readings from `sensors` sensors, round robin with a seeded jitter; with
 * `bad`, every 97th is a bad record (not JSON, wrong arity, a string, NaN via 1e999).
 */
export function readings(count: number, sensors: number, seed = 3, bad = false): Reading[] {
  const rng = new Rng(seed);
  const out: Reading[] = [];
  for (let i = 0; i < count; i++) {
    const key = `sensor-${Math.floor(rng.uniform(0, sensors))}`;
    if (bad && i % 97 === 50) {
      const kind = (i / 97) % 4 | 0;
      out.push({ key, line: ['{"x":[1,2', '{"x":[1,2],"y":[0]}', '{"x":[1,"a",3],"y":[1]}', '{"x":[1,1e999,3],"y":[1]}'][kind]! });
      continue;
    }
    const x = [rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(-1, 1)];
    const y = [0.8 * x[0]! - 0.5 * x[1]! + 0.3 * Math.sin(3 * x[2]!) + 2];
    out.push({ key, line: JSON.stringify({ x, y }) });
  }
  return out;
}

/** The readings of each partition, in order. */
export function byPartition(all: readonly Reading[], partitions: number): string[][] {
  const out: string[][] = Array.from({ length: partitions }, () => []);
  for (const r of all) out[partitionOf(r.key, partitions)]!.push(r.line);
  return out;
}

/** What must be equal bit for bit between a partition's committed model and its single-process replay. */
export interface Fingerprint {
  readonly params: string;
  readonly m: string;
  readonly v: string;
  readonly t: number;
  readonly steps: number;
  readonly samples: number;
  readonly rejected: number;
}

function fingerprintOf(model: PartitionModel): Fingerprint {
  const { model: m, optimizer, counters } = model.trainer;
  return { params: hashOf(m.params), m: hashOf(optimizer.m), v: hashOf(optimizer.v), t: optimizer.t, steps: counters.steps, samples: counters.samples, rejected: counters.rejected };
}

/** The record offsets where workers read cut markers of `partition` (a cut is in the stream: every owner reads it at the same place). */
export function cutsOf(events: readonly ClusterEvent[], partition: number): number[] {
  const at = new Set<number>();
  for (const e of events) if (e.type === 'cut' && e.partition === partition) at.add(e.detail!.records as number);
  return [...at].sort((a, b) => a - b);
}

/** `records` with `CUT` after each of the offsets `cuts`. */
async function* withCutsAt<T>(records: AsyncIterable<T>, cuts: readonly number[]): AsyncGenerator<T | typeof CUT> {
  let offset = 0;
  let next = 0;
  for await (const record of records) {
    while (next < cuts.length && cuts[next]! <= offset) if (cuts[next++] === offset) yield CUT;
    yield record;
    offset++;
  }
  while (next < cuts.length) if (cuts[next++] === offset) yield CUT;
}

/**
 * A single-process run over one partition's lines, the local way: the NDJSON reader
 * (`streamgrad train --data file.ndjson`), the local ingest with its dead letters, the same
 * model; with `cuts`, a partial batch is trained after each of those record offsets (where
 * the cluster read cut markers: `cutsOf`).
 */
export async function replay(partition: number, lines: readonly string[], cuts: readonly number[] = []): Promise<{ fingerprint: Fingerprint; letters: MemoryDeadLetters }> {
  const model = testModel(partition);
  const letters = new MemoryDeadLetters();
  const run = new TrainingRun({
    id: 'replay', trainer: model.trainer, source: withCutsAt(ndjsonRecords(Readable.from([lines.join('\n') + '\n'])), cuts),
    prepare: ingest({ trainer: model.trainer, normalizer: model.normalizer, deadLetters: letters, counters: createIngestCounters() }),
    train: { ...model.train, window: WINDOW },
  });
  await run.start();
  return { fingerprint: fingerprintOf(model), letters };
}

/** The committed model of `partition`, restored from its commit record's checkpoint. */
export async function committed(cluster: Cluster, partition: number): Promise<{ fingerprint: Fingerprint; records: number } | null> {
  const commit = await readCommit(cluster, partition);
  if (commit === null || commit.record.object === null) return null;
  const bytes = await cluster.checkpoints.getBlob(commit.record.object);
  if (bytes === null) return null;
  const model = testModel(partition);
  restoreRun(decodeCheckpoint(bytes), model.trainer, WINDOW);
  return { fingerprint: fingerprintOf(model), records: commit.record.records };
}

/**
 * Good readings to append to a partition's lines so that its samples fill whole batches:
 * a live stream never ends, so its last partial batch waits for more data (and is not
 * committed), where a file's is trained at the end.
 */
export async function padding(partition: number, lines: readonly string[]): Promise<string[]> {
  const { fingerprint } = await replay(partition, lines);
  const missing = (BATCH - (fingerprint.samples % BATCH)) % BATCH;
  return readings(missing, 1, 1000 + partition).map((r) => r.line);
}

/**
 * A private nats-server (JetStream) and a connection to it for the calling test file:
 * started before its tests, closed after them — also when their start outlives `beforeAll`'s
 * timeout (`natsServerForThisFile`). `ready` gets both once they are up (tests
 * keep them in `let`s of their own). Fails, rather than skips, where nats-server is missing:
 * the cluster is a promise we test.
 *
 * @example
 * let nc: NatsConnection;
 * natsForThisFile((connection) => { nc = connection; });
 */
export function natsForThisFile(ready: (nc: NatsConnection, server: NatsServer) => void): void {
  const server = natsServerForThisFile();
  // its own start and stop: a connection cut short by the hook's timeout is closed too, before the server stops
  const nc = forThisFile(sharedStart('the NATS connection of this file', () => connectNats(server.servers), (connection) => connection.close()));
  beforeAll(() => ready(nc(), server));
}

/**
 * Cluster run `name` of `partitions`: one worker `NAME-w` training every partition
 * (fixture model, commits every 200 ms, telemetry at 10 Hz) and two gateways `NAME-a`,
 * `NAME-b` on port 0 with control token `token`. The caller closes the gateways, then stops the worker.
 *
 * @example const { worker, gateways } = await workerAndTwoGateways(nc, 'gw', 3, TOKEN);
 */
export async function workerAndTwoGateways(nc: NatsConnection, name: string, partitions: number, token: string): Promise<{ cluster: Cluster; worker: ClusterWorker; gateways: Gateway[] }> {
  const cluster = await openCluster(nc, { name, partitions });
  const worker = new ClusterWorker({ cluster, id: `${name}-w`, model: testModel, checkpointEveryMs: 200, telemetryHz: 10 });
  void worker.start();
  const gateways = [await startGateway({ cluster, id: `${name}-a`, port: 0, token }), await startGateway({ cluster, id: `${name}-b`, port: 0, token })];
  return { cluster, worker, gateways };
}

/** Polls `check` every 50 ms until it holds; fails naming `what` after `timeoutMs`. */
export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 30_000): Promise<void> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A worker process of the tests (worker-process.ts) and the events it printed so far. */
export interface WorkerProcess {
  readonly id: string;
  readonly child: ChildProcess;
  readonly events: ClusterEvent[];
}

/**
 * Starts worker `id` of cluster run `name` as a process of its own (so that a test can
 * kill -9 it), committing every `checkpointEveryMs`. The caller kills it at the end.
 *
 * @example const w = startWorkerProcess(server.servers, 'chaos', 'w1'); // … w.child.kill('SIGKILL')
 */
export function startWorkerProcess(servers: string, name: string, id: string, checkpointEveryMs = 200): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx/esm', 'test/cluster/worker-process.ts', servers, name, id, String(checkpointEveryMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const events: ClusterEvent[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => events.push(JSON.parse(line) as ClusterEvent));
  return { id, child, events };
}

/** Partitions a worker process holds by its own events (acquired, minus lost, handed back or failed). */
export function owned(worker: WorkerProcess): Set<number> {
  const held = new Set<number>();
  for (const e of worker.events) {
    if (e.type === 'acquired') held.add(e.partition!);
    if (e.type === 'lease-lost' || e.type === 'released' || e.type === 'partition-failed') held.delete(e.partition!);
  }
  return held;
}

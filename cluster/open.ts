import { type JetStreamClient, type JetStreamManager, jetstream, jetstreamManager, StorageType, type StreamConfig, type StreamInfo } from '@nats-io/jetstream';
import { type KV, Kvm } from '@nats-io/kv';
import { type ObjectStore, Objm } from '@nats-io/obj';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { StreamgradError } from '../core/errors.ts';
import { type ClusterNames, clusterNames } from './names.ts';

/** A cluster run's fixed settings, chosen when it is created and kept on the server (commits bucket, key `settings`). */
export interface ClusterSettings {
  /** The cluster run's name (`clusterNames`). */
  readonly name: string;
  /** Partitions, fixed at creation (1–1024). Leave out to join an existing cluster run with its own. */
  readonly partitions?: number;
  /**
   * How long a lease lives without renewal (ms, default 3000, 500–60000): the leases
   * bucket's max-age. A worker renews every third of it; a dead worker's partitions are
   * free again after at most this long (plus the server's expiry sweep).
   */
  readonly leaseTtlMs?: number;
  /** JetStream's de-duplication window for batch message ids (ms, default 120000). */
  readonly duplicateWindowMs?: number;
}

/** The handles of an open cluster run: its JetStream stream, KV buckets and Object Store. */
export interface Cluster {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly names: ClusterNames;
  readonly partitions: number;
  readonly leaseTtlMs: number;
  readonly duplicateWindowMs: number;
  readonly leases: KV;
  readonly workers: KV;
  readonly commits: KV;
  /** Failure records of partitions (`failures.ts`): backoff and parking. */
  readonly failures: KV;
  /** Live gateways (`gateway.ts`): where dashboards can connect. */
  readonly gateways: KV;
  readonly checkpoints: ObjectStore;
}

/** Default lease TTL (ms): failover after a `kill -9` takes about this long plus a renewal period. */
export const DEFAULT_LEASE_TTL_MS = 3000;
/** Default de-duplication window (ms). */
export const DEFAULT_DUPLICATE_WINDOW_MS = 120_000;

const NANOS = 1_000_000;

/**
 * Connects to NATS for a long-lived cluster process: reconnects for ever (a restarted
 * nats-server is found again), `servers` as `host:port` or `nats://host:port`, one or a
 * comma-separated list. An unreachable server at the start is `SG_ERR_SOURCE`.
 *
 * @example const nc = await connectNats('127.0.0.1:4222');
 */
export async function connectNats(servers: string, name = 'streamgrad'): Promise<NatsConnection> {
  try {
    return await connect({
      servers: servers.split(',').map((s) => s.trim()).filter((s) => s !== ''),
      name,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      timeout: 5000,
    });
  } catch (error) {
    throw new StreamgradError('SG_ERR_SOURCE', `nats ${servers}: ${error instanceof Error ? error.message : String(error)}`, 'servers', { cause: error });
  }
}

function checkInteger(value: number | undefined, field: string, min: number, max: number): void {
  if (value !== undefined && !(Number.isSafeInteger(value) && value >= min && value <= max)) {
    throw new StreamgradError('SG_ERR_CONFIG', `cluster.${field}: an integer from ${min} to ${max}, got ${JSON.stringify(value)}`, `cluster.${field}`);
  }
}

/**
 * Opens cluster run `settings.name` on `nc`, creating what is missing: the settings record
 * first (a create: two processes creating at once agree on one), then the streams,
 * buckets and store made from them. Joining with other `partitions` or `leaseTtlMs` than
 * the run was created with is `SG_ERR_CONFIG` (a partition's data would move); creating
 * without `partitions` is too. Each stream takes its partitions' subjects only; one left
 * by an older version (`sg.NAME.p.*`) is narrowed to them, one of other subjects is
 * `SG_ERR_CONFIG` naming it (`ensureStream`). Everything used is in nats-server 2.9.
 *
 * @example const cluster = await openCluster(nc, { name: 'sensors', partitions: 8 });
 */
export async function openCluster(nc: NatsConnection, settings: ClusterSettings): Promise<Cluster> {
  const names = clusterNames(settings.name);
  checkInteger(settings.partitions, 'partitions', 1, 1024);
  checkInteger(settings.leaseTtlMs, 'leaseTtlMs', 500, 60_000);
  checkInteger(settings.duplicateWindowMs, 'duplicateWindowMs', 1000, 86_400_000);
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const kvm = new Kvm(nc);
  const commits = await kvm.create(names.commits, { history: 1 });
  const wanted = {
    partitions: settings.partitions,
    leaseTtlMs: settings.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS,
    duplicateWindowMs: settings.duplicateWindowMs ?? DEFAULT_DUPLICATE_WINDOW_MS,
  };
  // a damaged settings record is refused naming it (the run's partitions are unknown), never an untyped crash
  const readSettings = async (): Promise<typeof wanted | null> => {
    const entry = await commits.get('settings');
    if (entry === null || entry.operation !== 'PUT') return null;
    let value: Record<string, unknown> | null = null;
    try {
      value = JSON.parse(entry.string()) as Record<string, unknown>;
    } catch {
      // refused below
    }
    const ok = typeof value === 'object' && value !== null && Number.isSafeInteger(value.partitions) && Number.isSafeInteger(value.leaseTtlMs) && Number.isSafeInteger(value.duplicateWindowMs);
    if (!ok) throw new StreamgradError('SG_ERR_CONFIG', `${names.commits} key settings: not the cluster run's settings (${JSON.stringify(entry.string().slice(0, 64))})`, `${names.commits}/settings`);
    return value as typeof wanted;
  };
  let stored = await readSettings();
  if (stored === null) {
    if (wanted.partitions === undefined) {
      throw new StreamgradError('SG_ERR_CONFIG', `cluster.partitions: cluster run ${names.name} does not exist yet; creating it needs the number of partitions`, 'cluster.partitions');
    }
    try {
      await commits.create('settings', JSON.stringify(wanted));
      stored = wanted;
    } catch {
      stored = (await readSettings())!; // another process created it first
    }
  }
  for (const field of ['partitions', 'leaseTtlMs', 'duplicateWindowMs'] as const) {
    const given = settings[field];
    if (given !== undefined && given !== stored[field]) {
      throw new StreamgradError('SG_ERR_CONFIG', `cluster.${field}: cluster run ${names.name} was created with ${stored[field]}, not ${given}`, `cluster.${field}`);
    }
  }
  const partitions = stored.partitions!;
  // each stream takes its partitions' subjects only: a message of no partition (`sg.NAME.p.99`) is not stored
  const streams = { name: names.name, partitions, duplicateWindowMs: stored.duplicateWindowMs };
  await ensureStream(jsm, names.stream, names.subject, streams);
  await ensureStream(jsm, names.deadStream, names.deadSubject, streams);
  // telemetry for gateways: the latest state of each partition, in memory (owners republish it)
  await ensureStream(jsm, names.telemetryStream, names.telemetry, streams, { max_msgs_per_subject: 1, storage: StorageType.Memory });
  // The lease TTL is the bucket's max-age: nats-server 2.9 has no per-key TTL, and a
  // server-side age needs no agreement between the workers' clocks (see leases.ts).
  const leases = await kvm.create(names.leases, { history: 1, ttl: stored.leaseTtlMs });
  const workers = await kvm.create(names.workers, { history: 1, ttl: stored.leaseTtlMs });
  const failures = await kvm.create(names.failures, { history: 1 });
  const gateways = await kvm.create(names.gateways, { history: 1, ttl: 3 * stored.leaseTtlMs });
  const checkpoints = await new Objm(nc).create(names.checkpoints);
  return { nc, js, jsm, names, partitions, leaseTtlMs: stored.leaseTtlMs, duplicateWindowMs: stored.duplicateWindowMs, leases, workers, commits, failures, gateways, checkpoints };
}

/**
 * Makes stream `name` take exactly the subjects `subject(p)` of the run's partitions. A
 * stream made by an older version took `subject('*')` (any token: messages of no partition
 * were stored and trained by nobody); it is narrowed in place, its messages kept, since
 * every subject a partition uses stays. A stream of any other subjects was not made for
 * this run: `SG_ERR_CONFIG` naming it and what to do, and it is left as it is.
 */
async function ensureStream(jsm: JetStreamManager, name: string, subject: (p: number | '*') => string, run: { name: string; partitions: number; duplicateWindowMs: number }, extra: Partial<StreamConfig> = {}): Promise<void> {
  const subjects = Array.from({ length: run.partitions }, (_, p) => subject(p));
  let found: StreamInfo;
  try {
    found = await jsm.streams.info(name);
  } catch (error) {
    if (!/not found/i.test(error instanceof Error ? error.message : String(error))) throw error;
    try {
      await jsm.streams.add({ name, subjects, duplicate_window: run.duplicateWindowMs * NANOS, ...extra });
      return;
    } catch (added) {
      // created meanwhile by another process: checked like any stream found
      found = await jsm.streams.info(name).catch(() => { throw added; });
    }
  }
  const taken = found.config.subjects ?? [];
  if (taken.length === subjects.length && subjects.every((s) => taken.includes(s))) return;
  if (taken.length === 1 && taken[0] === subject('*')) {
    await jsm.streams.update(name, { subjects });
    return;
  }
  throw new StreamgradError('SG_ERR_CONFIG', `stream ${name} takes ${JSON.stringify(taken)}, not the subjects of cluster run ${run.name}'s ${run.partitions} partitions (${subjects[0]} to ${subjects.at(-1)}): give it exactly those subjects, or delete it (its messages with it), or give the run another name`, name);
}

import { randomBytes } from 'node:crypto';
import { Subject } from 'rxjs';
import { StreamgradError } from '../core/errors.ts';
import type { ClusterEvent } from './events.ts';
import { type BackoffPolicy, backoffPolicy, clearFailureAt, type Failed, mayTake, readFailures, recordFailure } from './failures.ts';
import { listKeys } from './kv-keys.ts';
import { type Lease, Leases } from './leases.ts';
import type { Cluster } from './open.ts';
import { PartitionRun, type PartitionModelFactory } from './partition-run.ts';

/** Options of a `ClusterWorker`. */
export interface WorkerOptions {
  readonly cluster: Cluster;
  /** The worker's id (default: random), unique among the cluster run's workers. */
  readonly id?: string;
  readonly model: PartitionModelFactory;
  /** Commit every this long (ms, default 1000), also when the stream goes quiet. */
  readonly checkpointEveryMs?: number;
  readonly checkpointEverySteps?: number;
  /** Never own more partitions than this (default: no limit besides the fair share). */
  readonly maxPartitions?: number;
  /** Purge a partition's subject up to each commit (default true). */
  readonly purge?: boolean;
  /** Telemetry for gateways per partition (Hz, default 20; 0: none; `PartitionRunOptions.telemetryHz`). */
  readonly telemetryHz?: number;
  /**
   * How a partition whose training fails (a checkpoint that cannot load, a model that
   * throws, commits that keep failing) backs off before any worker tries it again, and
   * after how many failures in a row it is parked (`failures.ts`; default 1 s doubling to
   * 60 s, parked after 5).
   */
  readonly backoff?: BackoffPolicy;
  /** A partition's partial batch is trained after it has been quiet this long (ms, default 1000; 0: only full batches; `PartitionRunOptions.lingerMs`). */
  readonly lingerMs?: number;
}

interface Owned {
  readonly lease: Lease;
  run: PartitionRun | null;
  /** Being handed back: still renewed until its last commit is in. */
  leaving: boolean;
  /** The partition's failure record when this worker took it: cleared once the run commits past where it started. */
  failed: Failed | null;
  /** Records of the commit the run started from. */
  startRecords: number | null;
}

/**
 * A worker process's share of a cluster run: it announces itself (workers bucket, same
 * TTL as leases), takes free partitions up to its fair share ⌈partitions ÷ live
 * workers⌉ with a create, renews each lease by CAS every third of the TTL, stops a
 * partition's consumer the moment a renewal is refused (or has not succeeded for a whole
 * TTL), and hands partitions back when it holds more than its share, so that a new
 * worker gets work. Each partition it holds is a `PartitionRun`.
 *
 * @example
 * const worker = new ClusterWorker({ cluster, model: (p) => ({ trainer: makeTrainer(), train: { batch: 16 } }) });
 * worker.events.subscribe((e) => console.log(JSON.stringify(e)));
 * await worker.start(); // until worker.stop()
 */
export class ClusterWorker {
  readonly id: string;
  /** What the worker does (hot; completes when it has left). */
  readonly events = new Subject<ClusterEvent>();
  private readonly leases: Leases;
  private readonly owned = new Map<number, Owned>();
  private readonly tickMs: number;
  private readonly renewMs: number;
  private stopping = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private done: Promise<void> | null = null;
  private finish: (() => void) | null = null;
  private ticks = 0;
  /** The balancing round in progress (one at a time; the ticks do not wait for a slow one, and forget one stuck past a TTL). */
  private balancing: Promise<void> | null = null;
  private readonly backoff: Required<BackoffPolicy>;

  constructor(private readonly options: WorkerOptions) {
    this.id = options.id ?? `w-${randomBytes(4).toString('hex')}`;
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(this.id)) throw new StreamgradError('SG_ERR_CONFIG', `cluster.worker.id: 1 to 64 of A-Z a-z 0-9 _ -, got ${JSON.stringify(this.id)}`, 'cluster.worker.id');
    const max = options.maxPartitions;
    if (max !== undefined && !(Number.isSafeInteger(max) && max >= 1)) throw new StreamgradError('SG_ERR_CONFIG', `cluster.worker.maxPartitions: an integer ≥ 1, got ${max}`, 'cluster.worker.maxPartitions');
    this.backoff = backoffPolicy(options.backoff);
    const linger = options.lingerMs;
    if (linger !== undefined && !(Number.isSafeInteger(linger) && linger >= 0)) throw new StreamgradError('SG_ERR_CONFIG', `cluster.worker.lingerMs: an integer ≥ 0, got ${linger}`, 'cluster.worker.lingerMs');
    this.leases = new Leases(options.cluster, this.id);
    const ttl = options.cluster.leaseTtlMs;
    this.renewMs = Math.floor(ttl / 3);
    this.tickMs = Math.min(500, Math.floor(ttl / 6));
  }

  /** The partitions this worker trains now. */
  partitions(): number[] {
    return [...this.owned.keys()].sort((a, b) => a - b);
  }

  /** The partition run of `partition`, when this worker owns it. */
  run(partition: number): PartitionRun | null {
    return this.owned.get(partition)?.run ?? null;
  }

  /** Joins the cluster run and works until `stop()`; resolves when it has left. */
  start(): Promise<void> {
    this.done ??= new Promise<void>((resolve) => {
      this.finish = resolve;
      this.emit('joined', undefined, { partitions: this.options.cluster.partitions, leaseTtlMs: this.options.cluster.leaseTtlMs });
      void this.tick();
    });
    return this.done;
  }

  /** Hands every partition back (each committed at a step boundary first) and leaves. */
  async stop(): Promise<void> {
    if (this.stopping) return this.done ?? undefined;
    this.stopping = true;
    clearTimeout(this.timer);
    await Promise.all([...this.owned.keys()].map((p) => this.handBack(p, 'shutdown')));
    await this.options.cluster.workers.delete(this.id).catch(() => undefined);
    this.emit('left');
    this.events.complete();
    this.finish?.();
  }

  private emit(type: ClusterEvent['type'], partition?: number, detail?: Record<string, unknown>): void {
    this.events.next({ type, worker: this.id, ...(partition !== undefined && { partition }), time: Date.now(), ...(detail !== undefined && { detail }) });
  }

  private async tick(): Promise<void> {
    if (this.stopping) return;
    let reachable = true;
    try {
      await this.options.cluster.workers.put(this.id, JSON.stringify({ partitions: this.partitions(), time: Date.now() }));
    } catch {
      reachable = false; // renewals still run: a lease not renewed for a whole TTL stops its partition
    }
    await this.renewAll();
    this.reapFinished();
    try {
      // the first tick only announces this worker: peers starting together count each other before anyone takes
      // bounded: a listing stuck on a consumer the server reset (this process was paused)
      // must not stop the ticks, which renew the leases
      if (reachable && this.ticks++ > 0 && this.balancing === null) {
        const round = this.balance().catch(() => undefined);
        this.balancing = round;
        const forget = () => {
          if (this.balancing === round) this.balancing = null; // never a newer round's
        };
        void round.finally(forget);
        // a round still running after a TTL is forgotten, so the next tick starts another: an
        // await on the server that never ends (a listing, once) must not stop this worker taking
        // partitions for good; a late round's takes are CAS-guarded like any other
        if (await withTimeout(round.then(() => true), this.options.cluster.leaseTtlMs) === undefined) forget();
      }
    } catch {
      // the server went away meanwhile: the next tick tries again
    }
    if (!this.stopping) this.timer = setTimeout(() => void this.tick(), this.tickMs);
  }

  private async renewAll(): Promise<void> {
    const now = performance.now();
    await Promise.all([...this.owned.entries()].map(async ([p, owned]) => {
      if (now - owned.lease.renewedAt < this.renewMs) return;
      const outcome = await this.leases.renew(owned.lease);
      const stale = performance.now() - owned.lease.renewedAt >= this.options.cluster.leaseTtlMs;
      if (outcome === 'lost' || (outcome === 'unreachable' && stale)) {
        this.owned.delete(p);
        owned.run?.abort('lease lost');
        this.emit('lease-lost', p, { outcome });
      }
    }));
  }

  /** Partitions whose run ended by itself (a failure) are handed back for another try elsewhere. */
  private reapFinished(): void {
    for (const [p, owned] of this.owned) {
      const run = owned.run;
      if (run === null || owned.leaving) continue;
      const state = run.run.state;
      if (state === 'failed' || state === 'completed' || state === 'stopped') {
        this.owned.delete(p);
        const error = run.run.error ?? new StreamgradError('SG_ERR_STATE', `partition ${p}: the run ended by itself (${state})`, 'run');
        void this.failed(p, owned, error, { state });
      }
    }
  }

  private async balance(): Promise<void> {
    const { cluster } = this.options;
    const live = (await listKeys(cluster.workers, 'workers')).size;
    let share = Math.ceil(cluster.partitions / Math.max(1, live));
    if (this.options.maxPartitions !== undefined) share = Math.min(share, this.options.maxPartitions);
    const active = [...this.owned.entries()].filter(([, o]) => !o.leaving);
    if (active.length > share) {
      // hand back the newest first; one per tick, so the others have time to take them
      const [p] = active.at(-1)!;
      void this.handBack(p, 'fair share');
      return;
    }
    if (active.length >= share) return;
    const holders = await this.leases.holders();
    let free: number[] = [];
    for (let p = 0; p < cluster.partitions; p++) if (!holders.has(p) && !this.owned.has(p)) free.push(p);
    if (free.length === 0) return;
    // a partition backing off after failures (or parked) is left alone by every worker until its time
    const failures = await readFailures(cluster);
    const now = Date.now();
    free = free.filter((p) => mayTake(failures.get(p)?.record, now));
    // start at a place of this worker's own, so that workers starting together try different partitions first
    const offset = free.length === 0 ? 0 : hash(this.id) % free.length;
    const order = [...free.slice(offset), ...free.slice(0, offset)];
    for (const p of order) {
      if (this.stopping || [...this.owned.values()].filter((o) => !o.leaving).length >= share) break;
      const lease = await this.leases.take(p);
      if (lease === null) continue;
      const owned: Owned = { lease, run: null, leaving: false, failed: failures.get(p) ?? null, startRecords: null };
      const damaged = owned.failed?.damaged;
      // said, not silent: the partition is taken as one that never failed, its record replaced at the next failure
      if (damaged !== undefined) this.emit('record-damaged', p, { code: damaged.code, message: damaged.message, field: damaged.field });
      this.owned.set(p, owned);
      try {
        owned.run = await PartitionRun.start({
          cluster, partition: p, owner: this.id, model: this.options.model,
          ...(this.options.checkpointEveryMs !== undefined && { checkpointEveryMs: this.options.checkpointEveryMs }),
          ...(this.options.checkpointEverySteps !== undefined && { checkpointEverySteps: this.options.checkpointEverySteps }),
          ...(this.options.purge !== undefined && { purge: this.options.purge }),
          ...(this.options.telemetryHz !== undefined && { telemetryHz: this.options.telemetryHz }),
          ...(this.options.lingerMs !== undefined && { lingerMs: this.options.lingerMs }),
          onEvent: (e) => {
            this.events.next(e);
            if (e.type === 'committed') this.progressed(owned, e);
          },
        });
        owned.startRecords = owned.run.lastCommit.records;
        if (this.owned.get(p) !== owned || owned.leaving) owned.run.abort('handed back while starting');
      } catch (error) {
        this.owned.delete(p);
        await this.failed(p, owned, error, { state: 'starting' });
      }
    }
  }

  /**
   * A run that commits past the commit it started from made progress: the partition's
   * earlier failures were not in a row, its failure record goes.
   */
  private progressed(owned: Owned, event: ClusterEvent): void {
    const failed = owned.failed;
    const records = event.detail?.records;
    if (failed === null || owned.startRecords === null || typeof records !== 'number' || records <= owned.startRecords) return;
    owned.failed = null;
    void clearFailureAt(this.options.cluster, owned.lease.partition, failed.revision).catch(() => undefined);
  }

  /**
   * A partition's run failed (or could not start): unless this worker merely lost it to
   * a successor (its commit was fenced), the failure is counted in the partition's
   * failure record (backoff for every worker, parked after too many in a row), and only
   * then is the lease handed back, so no worker takes it again before the backoff is in.
   */
  private async failed(partition: number, owned: Owned, error: unknown, detail: Record<string, unknown>): Promise<void> {
    const code = error instanceof StreamgradError ? error.code : null;
    const message = error instanceof Error ? error.message : String(error);
    const fenced = error instanceof StreamgradError && error.code === 'SG_ERR_CHECKPOINT' && error.field === 'commit';
    let record: Awaited<ReturnType<typeof recordFailure>> | null = null;
    // a worker that lost the partition meanwhile (paused past its lease) does not count its failure against it
    if (!fenced && await this.leases.renew(owned.lease) !== 'lost') {
      try {
        record = await recordFailure(this.options.cluster, partition, this.id, error, this.backoff);
      } catch {
        // the server is away: the partition is free again after the TTL; the failure is not counted
      }
    }
    this.emit('partition-failed', partition, {
      ...detail, message, ...(code !== null && { code }),
      ...(record !== null && { failures: record.failures, retryAt: record.retryAt, retryInMs: Math.max(0, record.retryAt - Date.now()), parked: record.parked }),
    });
    if (record?.parked === true) this.emit('partition-parked', partition, { failures: record.failures, message, ...(code !== null && { code }) });
    await this.leases.release(owned.lease);
  }

  private async handBack(partition: number, reason: string): Promise<void> {
    const owned = this.owned.get(partition);
    if (owned === undefined || owned.leaving) return;
    owned.leaving = true;
    this.emit('handback', partition, { reason });
    await owned.run?.stop();
    if (this.owned.get(partition) === owned) {
      this.owned.delete(partition);
      await this.leases.release(owned.lease);
      this.emit('released', partition, { commit: owned.run?.lastCommit.records ?? null });
    }
  }
}

/** `promise`, or undefined after `ms` (the promise goes on by itself). */
async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms)));
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

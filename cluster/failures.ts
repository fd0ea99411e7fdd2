import { parseObject } from './wire.ts';
import { StreamgradError } from '../core/errors.ts';
import { listKeys } from './kv-keys.ts';
import { isConflict } from './leases.ts';
import { partitionKey } from './names.ts';
import type { Cluster } from './open.ts';

/**
 * A partition's failure record (failures bucket, key `p<N>`): how often in a row its
 * training failed without progress, the last failure, when the next try may start and
 * whether it is parked. Every worker reads it before taking the partition, so the backoff
 * holds across workers (a partition that fails does not hop from worker to worker at once).
 */
export interface FailureRecord {
  readonly partition: number;
  /** Failures in a row without a commit that went further than the commit they started from. */
  readonly failures: number;
  /** The last failure: its code (when typed), message, worker and wall-clock time. */
  readonly last: { readonly code: string | null; readonly message: string; readonly worker: string; readonly time: number };
  /** Wall-clock time (ms since the epoch) before which no worker takes the partition. */
  readonly retryAt: number;
  /** After `maxFailures` in a row: taken by nobody until an operator clears it (`clearFailures`). */
  readonly parked: boolean;
}

/** How failing partitions back off (`ClusterWorker` options; the same in every worker of a cluster run, ideally). */
export interface BackoffPolicy {
  /** The wait after the first failure (ms, default 1000); doubled after each further one. */
  readonly baseMs?: number;
  /** The longest wait (ms, default 60000). */
  readonly maxMs?: number;
  /** Failures in a row after which the partition is parked (default 5). */
  readonly maxFailures?: number;
}

/** Defaults of `BackoffPolicy`. */
export const DEFAULT_BACKOFF = { baseMs: 1000, maxMs: 60_000, maxFailures: 5 } as const;

/** A failure record with the revision it was read at (for a compare-and-swap). */
export interface Failed {
  readonly record: FailureRecord;
  readonly revision: number;
  /**
   * Set when the stored value is not a failure record (not JSON, or not of this shape):
   * `SG_ERR_SOURCE` naming the bucket and key. `record` is then a fresh one (no failures,
   * not parked), so the partition is taken like one that never failed, and the damaged
   * value is replaced (by CAS on `revision`) at its next failure, or removed by its next
   * progress or by `clearFailures`.
   */
  readonly damaged?: StreamgradError;
}

/**
 * The failure record in a stored value, or null when it is not one (not JSON, a field
 * missing or of the wrong type, another partition's).
 *
 * @example parseFailureRecord('garbage', 1) // null
 */
export function parseFailureRecord(text: string, partition: number): FailureRecord | null {
  const r = parseObject(text);
  if (r === null) return null;
  const last = r.last as Record<string, unknown> | null | undefined;
  const ok = r.partition === partition && Number.isSafeInteger(r.failures) && (r.failures as number) >= 0
    && typeof r.retryAt === 'number' && Number.isFinite(r.retryAt) && typeof r.parked === 'boolean'
    && typeof last === 'object' && last !== null && (last.code === null || typeof last.code === 'string')
    && typeof last.message === 'string' && typeof last.worker === 'string' && typeof last.time === 'number';
  return ok ? (r as unknown as FailureRecord) : null;
}

/**
 * The failure policy with its defaults, checked (`SG_ERR_CONFIG` naming the field).
 *
 * @example backoffPolicy({ maxFailures: 3 }) // { baseMs: 1000, maxMs: 60000, maxFailures: 3 }
 */
export function backoffPolicy(policy: BackoffPolicy = {}): Required<BackoffPolicy> {
  const full = { ...DEFAULT_BACKOFF, ...policy };
  for (const [field, value, min] of [['baseMs', full.baseMs, 1], ['maxMs', full.maxMs, 1], ['maxFailures', full.maxFailures, 1]] as const) {
    if (!(Number.isSafeInteger(value) && value >= min)) throw new StreamgradError('SG_ERR_CONFIG', `cluster.backoff.${field}: an integer ≥ ${min}, got ${value}`, `cluster.backoff.${field}`);
  }
  if (full.maxMs < full.baseMs) throw new StreamgradError('SG_ERR_CONFIG', `cluster.backoff.maxMs: at least baseMs (${full.baseMs}), got ${full.maxMs}`, 'cluster.backoff.maxMs');
  return full;
}

/**
 * The wait before try `failures + 1`: `baseMs · 2^(failures − 1)`, at most `maxMs`.
 *
 * @example backoffDelay(3, { baseMs: 1000, maxMs: 60000, maxFailures: 5 }) // 4000
 */
export function backoffDelay(failures: number, policy: Required<BackoffPolicy>): number {
  return Math.min(policy.maxMs, policy.baseMs * 2 ** Math.min(30, Math.max(0, failures - 1)));
}

/** The failure record of `partition`, or null when it has none (never failed, or cleared). */
export async function readFailure(cluster: Cluster, partition: number): Promise<Failed | null> {
  const key = partitionKey(partition);
  const entry = await cluster.failures.get(key);
  if (entry === null || entry.operation !== 'PUT') return null;
  const record = parseFailureRecord(entry.string(), partition);
  if (record !== null) return { record, revision: entry.revision };
  // one damaged record costs nothing but itself: never a worker's balancing round (which
  // once took no partition at all, silently) nor `cluster status`
  const bucket = cluster.names.failures;
  const damaged = new StreamgradError('SG_ERR_SOURCE', `${bucket} key ${key}: not a failure record (${JSON.stringify(entry.string().slice(0, 64))}); read as none, replaced at the partition's next failure`, `${bucket}/${key}`);
  return { record: { partition, failures: 0, last: { code: damaged.code, message: damaged.message, worker: '', time: entry.created.getTime() }, retryAt: 0, parked: false }, revision: entry.revision, damaged };
}

/** Every partition's failure record, by partition (those that have one). */
export async function readFailures(cluster: Cluster): Promise<Map<number, Failed>> {
  const out = new Map<number, Failed>();
  const keys = await listKeys(cluster.failures, 'failures');
  await Promise.all([...keys].map(async (key) => {
    const partition = Number(key.slice(1));
    if (!Number.isSafeInteger(partition)) return;
    const failed = await readFailure(cluster, partition);
    if (failed !== null) out.set(partition, failed);
  }));
  return out;
}

/** Whether a partition with this failure record may be taken at `now` (ms since the epoch). */
export function mayTake(record: FailureRecord | undefined, now = Date.now()): boolean {
  return record === undefined || (!record.parked && now >= record.retryAt);
}

/**
 * Counts one more failure of `partition` (by compare-and-swap, so two workers failing at
 * once both count): sets the next try after the backoff and parks the partition once
 * `maxFailures` failed in a row. Resolves with the record written.
 *
 * @example const record = await recordFailure(cluster, 3, 'w-1', error, backoffPolicy());
 */
export async function recordFailure(cluster: Cluster, partition: number, worker: string, error: unknown, policy: Required<BackoffPolicy>): Promise<FailureRecord> {
  const key = partitionKey(partition);
  for (;;) {
    const current = await readFailure(cluster, partition);
    const failures = (current?.record.failures ?? 0) + 1;
    const now = Date.now();
    const record: FailureRecord = {
      partition,
      failures,
      last: {
        code: error instanceof StreamgradError ? error.code : null,
        message: (error instanceof Error ? error.message : String(error)).slice(0, 500),
        worker,
        time: now,
      },
      retryAt: now + backoffDelay(failures, policy),
      parked: failures >= policy.maxFailures,
    };
    try {
      if (current === null) await cluster.failures.create(key, JSON.stringify(record));
      else await cluster.failures.update(key, JSON.stringify(record), current.revision);
      return record;
    } catch (error) {
      if (!isConflict(error)) throw error;
    }
  }
}

/**
 * Clears the failure record of `partition` that was read at `revision` (a worker whose
 * run made progress: the failures were not "in a row"); a newer record is left alone.
 */
export async function clearFailureAt(cluster: Cluster, partition: number, revision: number): Promise<void> {
  try {
    await cluster.failures.delete(partitionKey(partition), { previousSeq: revision });
  } catch (error) {
    if (!isConflict(error)) throw error;
  }
}

/**
 * The operator's command: clears the failure records (the backoff and the parking) of
 * `partitions`, or of every partition that has one; a worker takes them at its next
 * round. Resolves with the partitions cleared.
 *
 * @example await clearFailures(cluster, [3]) // partition 3 is trained again
 */
export async function clearFailures(cluster: Cluster, partitions?: readonly number[]): Promise<number[]> {
  const failed = await readFailures(cluster);
  const cleared: number[] = [];
  for (const p of partitions ?? [...failed.keys()]) {
    if (!(Number.isSafeInteger(p) && p >= 0 && p < cluster.partitions)) {
      throw new StreamgradError('SG_ERR_CONFIG', `partition ${p} is not in 0..${cluster.partitions - 1}`, 'partition');
    }
    if (!failed.has(p)) continue;
    await cluster.failures.purge(partitionKey(p));
    cleared.push(p);
  }
  return cleared.sort((a, b) => a - b);
}

import { StreamgradError } from '../core/errors.ts';
import { type CommitRecord, readCommit } from './commits.ts';
import { type FailureRecord, readFailures } from './failures.ts';
import { type GatewayInfo, listGateways } from './gateways.ts';
import { listKeys } from './kv-keys.ts';
import { Leases } from './leases.ts';
import type { Cluster } from './open.ts';
import { believed, telemetryClaim, telemetryState } from './telemetry-owner.ts';

/** One partition's line of `cluster status`. */
export interface PartitionStatus {
  readonly partition: number;
  readonly owner: string | null;
  readonly records: number;
  readonly steps: number;
  readonly samples: number;
  readonly seq: number;
  /** Messages still stored on the partition's subject: not yet committed, or committed and not yet purged. */
  readonly stored: number;
  readonly committedAt: number | null;
  /** Failures in a row (0: none), with the backoff and parking (`failures.ts`). */
  readonly failures: number;
  /** Parked after too many failures in a row: trained by nobody until `clearFailures` (`streamgrad cluster unpark`). */
  readonly parked: boolean;
  /** When a partition backing off may be taken again (ms since the epoch), null when it is not backing off. */
  readonly retryAt: number | null;
  /** The last failure, when it has a failure record. */
  readonly lastFailure: FailureRecord['last'] | null;
  /**
   * The partition's records that are not readable (a commit or failure record that is not
   * JSON or not of its shape): each a typed error naming its bucket and key. A damaged
   * commit record leaves `records`, `steps`, `samples` and `seq` at 0 (unknown). The latest
   * message on its telemetry subject when it is not a worker's state: `SG_ERR_SOURCE` naming the subject.
   */
  readonly damaged: readonly { readonly code: string; readonly message: string; readonly field: string | null }[];
  /**
   * The latest state on the partition's telemetry subject (what a gateway starting now
   * reads first): the worker it says it is from, and whether gateways believe it — the
   * partition's owner's (the commit record's owner and epoch, and no other worker holds
   * the lease). A state of anybody else (a worker that lost the partition, an impostor)
   * is ignored by gateways and counted (`gateways[].unreadable`). Null when there is none.
   */
  readonly telemetry: { readonly owner: string; readonly epoch: number; readonly believed: boolean } | null;
}

/** Messages on a subject of the samples stream that is no partition of the cluster run (`sg.NAME.p.99`, `.p.abc`): nobody trains them. */
export interface StraySubject {
  readonly subject: string;
  readonly messages: number;
}

/** What `clusterStatus` finds: the cluster run's settings, its live workers and every partition. */
export interface ClusterStatus {
  readonly cluster: string;
  readonly partitions: number;
  readonly workers: number;
  readonly leaseTtlMs: number;
  readonly rows: readonly PartitionStatus[];
  /** The live gateways, where dashboards connect. */
  readonly gateways: readonly GatewayInfo[];
  /** Subjects of the samples stream holding messages that no partition consumes (a producer that is not `ClusterPublisher`, or of another partition count). */
  readonly stray: readonly StraySubject[];
}

/**
 * The state of a cluster run as its buckets tell it: each partition's owner (lease),
 * committed records and steps (commit record), messages stored on its subject, and its
 * failures (backing off, or parked), records of it that are damaged; the live gateways;
 * and messages on subjects that are no partition's (nobody trains them).
 *
 * @example for (const row of (await clusterStatus(cluster)).rows) if (row.parked) console.log(`p${row.partition} parked`);
 */
export async function clusterStatus(cluster: Cluster): Promise<ClusterStatus> {
  const [holders, failures, gateways, info, states] = await Promise.all([
    new Leases(cluster, 'status').holders(),
    readFailures(cluster),
    listGateways(cluster),
    cluster.jsm.streams.info(cluster.names.stream, { subjects_filter: cluster.names.subject('*') }),
    Promise.all(Array.from({ length: cluster.partitions }, (_, p) => cluster.jsm.streams.getMessage(cluster.names.telemetryStream, { last_by_subj: cluster.names.telemetry(p) }))),
  ]);
  const stored = info.state.subjects ?? {};
  const now = Date.now();
  const rows: PartitionStatus[] = [];
  for (let p = 0; p < cluster.partitions; p++) {
    const damaged: { code: string; message: string; field: string | null }[] = [];
    const typed = (error: unknown) => ({ code: error instanceof StreamgradError ? error.code : 'SG_ERR_SOURCE', message: error instanceof Error ? error.message : String(error), field: error instanceof StreamgradError ? error.field ?? null : null });
    let commit: CommitRecord | undefined;
    try {
      commit = (await readCommit(cluster, p))?.record;
    } catch (error) {
      if (!(error instanceof StreamgradError && error.field === `${cluster.names.commits}/p${p}`)) throw error;
      damaged.push(typed(error)); // reported with the others, not a failed status
    }
    const failed = failures.get(p);
    if (failed?.damaged !== undefined) damaged.push(typed(failed.damaged));
    const failure = failed?.damaged === undefined ? failed?.record : undefined;
    let telemetry: PartitionStatus['telemetry'] = null;
    const state = states[p];
    if (state != null) {
      try {
        const { claim } = telemetryClaim(cluster, state.subject, state.header);
        telemetryState(state.string(), p, state.subject);
        telemetry = { ...claim, believed: believed(claim, commit ?? null, holders.get(p) ?? null) };
      } catch (error) {
        damaged.push(typed(error));
      }
    }
    rows.push({
      partition: p, owner: holders.get(p) ?? null, records: commit?.records ?? 0, steps: commit?.steps ?? 0, samples: commit?.samples ?? 0,
      seq: commit?.seq ?? 0, stored: stored[cluster.names.subject(p)] ?? 0, committedAt: commit?.object == null ? null : commit.time,
      failures: failure?.failures ?? 0, parked: failure?.parked ?? false,
      retryAt: failure !== undefined && !failure.parked && failure.retryAt > now ? failure.retryAt : null,
      lastFailure: failure?.last ?? null,
      damaged, telemetry,
    });
  }
  const partitionSubjects = new Set(Array.from({ length: cluster.partitions }, (_, p) => cluster.names.subject(p)));
  const stray = Object.entries(stored).filter(([subject]) => !partitionSubjects.has(subject)).map(([subject, messages]) => ({ subject, messages })).sort((a, b) => a.subject.localeCompare(b.subject));
  const live = await listKeys(cluster.workers, 'workers');
  return { cluster: cluster.names.name, partitions: cluster.partitions, workers: live.size, leaseTtlMs: cluster.leaseTtlMs, rows, gateways, stray };
}

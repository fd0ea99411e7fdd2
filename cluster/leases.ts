import { listKeys } from './kv-keys.ts';
import type { Cluster } from './open.ts';
import { partitionKey } from './names.ts';

/** A partition held by this worker: the lease key's revision is the proof, renewed by compare-and-swap. */
export interface Lease {
  readonly partition: number;
  revision: number;
  /** `performance.now()` of the last successful take or renewal. */
  renewedAt: number;
}

/** What a renewal found: still ours, taken by someone else (or expired), or no answer from the server. */
export type RenewOutcome = 'renewed' | 'lost' | 'unreachable';

/** Whether a KV error is a failed compare-and-swap (the key moved on, or is gone) rather than no answer. */
export function isConflict(error: unknown): boolean {
  const message = error instanceof Error ? error.message : String(error);
  return /wrong last sequence|key exists|expected last/i.test(message);
}

/**
 * Partition leases in the cluster's leases bucket, one key per partition, value
 * `{owner, since}`.
 *
 * **TTL.** nats-server 2.9 has no per-key TTL, so the lease TTL is the bucket's max-age:
 * the server itself removes a lease that was not rewritten for a TTL, whoever's clock is
 * wrong. (The alternative, an expiry time stamp in the value that a taker checks and then
 * replaces by CAS, depends on the workers' clocks agreeing; a clock that runs ahead would
 * steal live leases.) Taking is a create (put-if-absent); renewing is an update with the
 * revision last seen (CAS), so it fails once the key expired or was taken; handing back
 * is a delete that expects that revision. Safety does not rest on the TTL: a worker that
 * lost its lease without noticing (paused, partitioned) is stopped by the commit
 * record's CAS (`commits.ts`), never by timing.
 */
export class Leases {
  constructor(private readonly cluster: Cluster, readonly owner: string) {}

  /** Takes partition `p` when nobody holds it; null when someone does. */
  async take(partition: number): Promise<Lease | null> {
    try {
      const revision = await this.cluster.leases.create(partitionKey(partition), JSON.stringify({ owner: this.owner, since: Date.now() }));
      return { partition, revision, renewedAt: performance.now() };
    } catch (error) {
      if (isConflict(error)) return null;
      throw error;
    }
  }

  /** Renews `lease` by CAS on its revision (a put also restarts the max-age clock). */
  async renew(lease: Lease): Promise<RenewOutcome> {
    try {
      lease.revision = await this.cluster.leases.update(partitionKey(lease.partition), JSON.stringify({ owner: this.owner, since: Date.now() }), lease.revision);
      lease.renewedAt = performance.now();
      return 'renewed';
    } catch (error) {
      return isConflict(error) ? 'lost' : 'unreachable';
    }
  }

  /** Hands `lease` back (a delete expecting its revision: never deletes a successor's lease). */
  async release(lease: Lease): Promise<void> {
    try {
      await this.cluster.leases.delete(partitionKey(lease.partition), { previousSeq: lease.revision });
    } catch {
      // gone already, or taken: either way no longer ours; the TTL cleans up otherwise
    }
  }

  /** The current holder of every leased partition. */
  async holders(): Promise<Map<number, string>> {
    const holders = new Map<number, string>();
    const keys = await listKeys(this.cluster.leases, 'leases');
    await Promise.all([...keys].map(async (key) => {
      const entry = await this.cluster.leases.get(key);
      if (entry === null || entry.operation !== 'PUT') return;
      const partition = Number(key.slice(1));
      try {
        holders.set(partition, (entry.json<{ owner: string }>()).owner);
      } catch {
        holders.set(partition, '?');
      }
    }));
    return holders;
  }
}

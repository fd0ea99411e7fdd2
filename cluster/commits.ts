import { parseObject } from './wire.ts';
import { StreamgradError } from '../core/errors.ts';
import type { Cluster } from './open.ts';
import { partitionKey } from './names.ts';

/**
 * A partition's commit record (commits bucket, key `p<N>`): where its committed model is
 * and how far into the partition's subject it has trained. Replaced only by
 * compare-and-swap, so the records of one partition form one chain, each written by the
 * owner of its time.
 */
export interface CommitRecord {
  readonly partition: number;
  /** Bumped by every new owner (the fence); part of checkpoint object names. */
  readonly epoch: number;
  readonly owner: string;
  /** Stream sequence of the last batch message fully trained (0: none). */
  readonly seq: number;
  /** Records of the message after `seq` already trained (a checkpoint can fall inside a batch). */
  readonly within: number;
  /** Records of the partition accounted for in all (trained or rejected): the run's source offset. */
  readonly records: number;
  readonly steps: number;
  readonly samples: number;
  /** Checkpoint object in the Object Store, null before the first commit. */
  readonly object: string | null;
  /** SHA-256 (hex) of the checkpoint object's bytes. */
  readonly digest: string | null;
  /** Wall-clock time of the write (ms since the epoch). */
  readonly time: number;
}

/** A commit record with the revision it was read or written at. */
export interface Committed {
  readonly record: CommitRecord;
  readonly revision: number;
}

/**
 * The commit record of `partition`, or null before anybody owned it. A stored value that
 * is not a commit record (not JSON, a field missing or of the wrong type) is
 * `SG_ERR_CHECKPOINT` naming the bucket and key: the partition's progress is unknown, so
 * it is never trained from scratch over it (its owner fails, backs off, is parked; the
 * operator repairs or purges the key, `cluster status` shows it).
 *
 * @example const commit = await readCommit(cluster, 3); // null before partition 3's first owner
 */
export async function readCommit(cluster: Cluster, partition: number): Promise<Committed | null> {
  const key = partitionKey(partition);
  const entry = await cluster.commits.get(key);
  if (entry === null || entry.operation !== 'PUT') return null;
  const record = parseCommitRecord(entry.string(), partition);
  if (record === null) {
    const bucket = cluster.names.commits;
    throw new StreamgradError('SG_ERR_CHECKPOINT', `${bucket} key ${key}: not a commit record (${JSON.stringify(entry.string().slice(0, 64))}); repair or purge it`, `${bucket}/${key}`);
  }
  return { record, revision: entry.revision };
}

/**
 * The commit record in a stored value, or null when it is not one of `partition`.
 *
 * @example parseCommitRecord('not json', 1) // null
 */
export function parseCommitRecord(text: string, partition: number): CommitRecord | null {
  const r = parseObject(text);
  if (r === null) return null;
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  const ok = r.partition === partition && count(r.epoch) && typeof r.owner === 'string'
    && count(r.seq) && count(r.within) && count(r.records) && count(r.steps) && count(r.samples)
    && (r.object === null || typeof r.object === 'string') && (r.digest === null || typeof r.digest === 'string') && typeof r.time === 'number';
  return ok ? (r as unknown as CommitRecord) : null;
}

/**
 * Makes `owner` the only one who can commit `partition` from now on: rewrites the commit
 * record (same checkpoint, epoch + 1, new owner) by CAS, retrying on a conflict (the
 * previous owner committed meanwhile: its commit is then the one to continue from).
 * Any commit prepared by an earlier owner expects an older revision and fails.
 */
export async function fence(cluster: Cluster, partition: number, owner: string): Promise<Committed> {
  const key = partitionKey(partition);
  for (;;) {
    const current = await readCommit(cluster, partition);
    const record: CommitRecord = current === null
      ? { partition, epoch: 1, owner, seq: 0, within: 0, records: 0, steps: 0, samples: 0, object: null, digest: null, time: Date.now() }
      : { ...current.record, epoch: current.record.epoch + 1, owner, time: Date.now() };
    try {
      const revision = current === null
        ? await cluster.commits.create(key, JSON.stringify(record))
        : await cluster.commits.update(key, JSON.stringify(record), current.revision);
      return { record, revision };
    } catch (error) {
      if (!/wrong last sequence|key exists/i.test(error instanceof Error ? error.message : String(error))) throw error;
    }
  }
}

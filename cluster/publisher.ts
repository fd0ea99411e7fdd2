import { createHash } from 'node:crypto';
import { StreamgradError } from '../core/errors.ts';
import { encodeBatch } from './batch.ts';
import type { Cluster } from './open.ts';
import { partitionOf } from './partition-of.ts';

/** Options of a `ClusterPublisher`. */
export interface PublisherOptions {
  /**
   * The producer's id, part of every message id (`PRODUCER:PARTITION:BATCH:DIGEST`).
   * Default: a random one (`cluster publish --data FILE` derives it from the file's path,
   * size and mtime: `fileProducerId`). A producer that re-publishes the same records with
   * the same id and the same batching (count only, no `lingerMs`) within the
   * de-duplication window is stored once: replaying a file after a crash duplicates
   * nothing. `DIGEST` is a hash of the batch's bytes, so a batch with *other* records
   * under a reused id is never taken for a duplicate (it was dropped, silently, before).
   */
  readonly producer?: string;
  /** Records per message (default 50): one acknowledged publish per record caps ingest near 13k/s. */
  readonly batchSize?: number;
  /** Send a partial batch this long after its first record (ms, default 20; 0: only full batches and `flush`). */
  readonly lingerMs?: number;
  /** Batches published and not yet acknowledged, at most (default 256): `add` then returns a promise to wait on. */
  readonly maxInFlight?: number;
  /** How long a batch is retried (same message id) while the server is unreachable (ms, default 60000). */
  readonly retryForMs?: number;
}

/** What a publisher has done so far. */
export interface PublisherStats {
  records: number;
  batches: number;
  /** Batches the server had already (a retry or a replay within the de-duplication window). */
  duplicates: number;
  /** Publish attempts that failed and were retried. */
  retries: number;
}

interface Pending {
  lines: string[];
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * Producer side of a cluster run: records go to the partition of their key
 * (`partitionOf`), are gathered into batches (NDJSON, `batch.ts`) and published to the
 * partition's subject with a message id, so a retried publish is stored once. Batches of
 * one partition are published one after another (each waits for its acknowledgement), so
 * a partition's records are stored in the order they were added even across retries;
 * partitions publish in parallel.
 *
 * @example
 * const publisher = new ClusterPublisher(cluster, { batchSize: 50 });
 * for (const r of readings) await publisher.add(r.sensor, r);
 * await publisher.close();
 */
export class ClusterPublisher {
  readonly stats: PublisherStats = { records: 0, batches: 0, duplicates: 0, retries: 0 };
  private readonly producer: string;
  private readonly batchSize: number;
  private readonly lingerMs: number;
  private readonly maxInFlight: number;
  private readonly retryForMs: number;
  private readonly pending: Pending[];
  private readonly chains: Promise<void>[];
  private readonly batchNumbers: number[];
  private inFlight = 0;
  private failure: unknown = null;
  private drained: (() => void)[] = [];

  constructor(private readonly cluster: Cluster, options: PublisherOptions = {}) {
    this.producer = options.producer ?? Math.random().toString(36).slice(2, 12);
    this.batchSize = options.batchSize ?? 50;
    this.lingerMs = options.lingerMs ?? 20;
    this.maxInFlight = options.maxInFlight ?? 256;
    this.retryForMs = options.retryForMs ?? 60_000;
    for (const [field, value, min] of [['batchSize', this.batchSize, 1], ['lingerMs', this.lingerMs, 0], ['maxInFlight', this.maxInFlight, 1], ['retryForMs', this.retryForMs, 0]] as const) {
      if (!(Number.isSafeInteger(value) && value >= min)) throw new StreamgradError('SG_ERR_CONFIG', `cluster.publish.${field}: an integer ≥ ${min}, got ${value}`, `cluster.publish.${field}`);
    }
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(this.producer)) throw new StreamgradError('SG_ERR_CONFIG', `cluster.publish.producer: 1 to 64 of A-Z a-z 0-9 _ . -, got ${JSON.stringify(this.producer)}`, 'cluster.publish.producer');
    const n = cluster.partitions;
    this.pending = Array.from({ length: n }, () => ({ lines: [], timer: undefined }));
    this.chains = Array.from({ length: n }, () => Promise.resolve());
    this.batchNumbers = new Array<number>(n).fill(0);
  }

  /**
   * Adds one record (a JSON value, or its text as it arrived) for stream `key`. Returns a
   * promise when too many batches are unacknowledged: await it (back-pressure). Throws
   * once a batch has failed for good (`SG_ERR_SOURCE`).
   */
  add(key: string, record: unknown): Promise<void> | undefined {
    return this.addTo(partitionOf(key, this.cluster.partitions), record);
  }

  /** `add` to a given partition (0 ≤ partition < partitions). */
  addTo(partition: number, record: unknown): Promise<void> | undefined {
    if (this.failure !== null) throw this.failure;
    if (!(Number.isSafeInteger(partition) && partition >= 0 && partition < this.cluster.partitions)) {
      throw new StreamgradError('SG_ERR_CONFIG', `partition ${partition} is not in 0..${this.cluster.partitions - 1}`, 'partition');
    }
    const line = typeof record === 'string' ? record.replace(/\r?\n/g, ' ') : JSON.stringify(record);
    const pending = this.pending[partition]!;
    pending.lines.push(line);
    this.stats.records++;
    if (pending.lines.length >= this.batchSize) this.send(partition);
    else if (pending.lines.length === 1 && this.lingerMs > 0) pending.timer = setTimeout(() => this.send(partition), this.lingerMs);
    if (this.inFlight < this.maxInFlight) return undefined;
    return new Promise((resolve) => this.drained.push(resolve));
  }

  /** Sends every partial batch and resolves once all batches are acknowledged (rejects with the first failure). */
  async flush(): Promise<void> {
    for (let p = 0; p < this.pending.length; p++) if (this.pending[p]!.lines.length > 0) this.send(p);
    await Promise.all(this.chains);
    if (this.failure !== null) throw this.failure;
  }

  /** `flush`, then stop: the connection stays the caller's. */
  async close(): Promise<void> {
    await this.flush();
  }

  private send(partition: number): void {
    const pending = this.pending[partition]!;
    clearTimeout(pending.timer);
    pending.timer = undefined;
    const lines = pending.lines;
    if (lines.length === 0) return;
    pending.lines = [];
    const data = encodeBatch(lines);
    // the content is part of the id: JetStream reports a duplicate by id alone, so other
    // data under a reused producer id and batch number would be acked and dropped
    const msgID = `${this.producer}:${partition}:${this.batchNumbers[partition]!++}:${batchDigest(data)}`;
    const subject = this.cluster.names.subject(partition);
    this.inFlight++;
    this.chains[partition] = this.chains[partition]!.then(async () => {
      if (this.failure !== null) return;
      try {
        const ack = await this.publish(subject, data, msgID);
        this.stats.batches++;
        if (ack.duplicate) this.stats.duplicates++;
      } catch (error) {
        this.failure ??= new StreamgradError('SG_ERR_SOURCE', `publish to ${subject} failed for ${this.retryForMs} ms: ${error instanceof Error ? error.message : String(error)}`, 'publish', { cause: error });
      } finally {
        this.inFlight--;
        if (this.inFlight < this.maxInFlight || this.failure !== null) for (const resolve of this.drained.splice(0)) resolve();
      }
    });
  }

  private async publish(subject: string, data: Uint8Array, msgID: string): Promise<{ duplicate: boolean }> {
    const deadline = Date.now() + this.retryForMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.cluster.js.publish(subject, data, { msgID, timeout: 5000 });
      } catch (error) {
        if (Date.now() >= deadline || this.cluster.nc.isClosed()) throw error;
        this.stats.retries++;
        await new Promise((r) => setTimeout(r, Math.min(1000, 50 * 2 ** attempt)));
      }
    }
  }
}

/**
 * The part of a batch's message id that names its content: 16 hex digits (64 bits) of
 * the SHA-256 of its bytes.
 *
 * @example batchDigest(encodeBatch(['{"x":[1],"y":[2]}'])) // e.g. '3f1c…' (16 hex digits)
 */
export function batchDigest(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 16);
}

/**
 * The default producer id of a file's publish: `f-` and 20 hex digits of a hash of its
 * absolute path, size and modification time (ms). Publishing the same file again, unchanged,
 * uses the same id, so its batches are de-duplicated within the window (the id was random
 * before, and the file was trained twice); a file that changed gets another id.
 *
 * @example fileProducerId({ path: '/data/a.ndjson', size: 1234, mtimeMs: 1700000000000 }) // 'f-…'
 */
export function fileProducerId(file: { readonly path: string; readonly size: number; readonly mtimeMs: number }): string {
  return `f-${createHash('sha256').update(`${file.path}\u0000${file.size}\u0000${Math.round(file.mtimeMs)}`).digest('hex').slice(0, 20)}`;
}

import type { KV } from '@nats-io/kv';
import type { MsgHdrs } from '@nats-io/transport-node';
import { StreamgradError } from '../core/errors.ts';
import type { RunEvent } from '../pipeline/run.ts';
import { RUN_EVENT_TYPES } from '../pipeline/run-event-types.ts';
import type { OwnerReading } from './command-addressee.ts';
import { parseCommitRecord } from './commits.ts';
import { partitionKey } from './names.ts';
import type { Cluster } from './open.ts';
import { EPOCH_HEADER, OWNER_HEADER, type TelemetryClaim, type TelemetryState } from './telemetry.ts';
import { decodeWire, parseObject } from './wire.ts';

/**
 * The partition and the claim of a message on a partition's telemetry subject
 * (`sg.NAME.tm.P`, a state), on its events subject with `of: 'events'` (`sg.NAME.ev.P`,
 * a run event), or of a reply to a request on its control subject with `of: 'control'`
 * (`sg.NAME.ctl.P`, the subject asked: a reply comes on an inbox). A subject that is no
 * partition's, or headers that are no worker's claim (missing: a stray publisher or
 * responder, or an older version) are `SG_ERR_SOURCE` naming the subject.
 *
 * @example telemetryClaim(cluster, 'sg.sensors.tm.3', msg.headers) // { partition: 3, claim: { owner: 'w-1', epoch: 2 } }
 */
export function telemetryClaim(cluster: Cluster, subject: string, headers: MsgHdrs | undefined, of: 'telemetry' | 'events' | 'control' = 'telemetry'): { partition: number; claim: TelemetryClaim } {
  const partition = Number(/\.(0|[1-9]\d{0,3})$/.exec(subject)?.[1] ?? -1);
  if (!(partition >= 0 && partition < cluster.partitions && subject === cluster.names[of](partition))) {
    throw new StreamgradError('SG_ERR_SOURCE', `${subject}: not the ${of} subject of a partition of cluster run ${cluster.names.name}`, subject);
  }
  const owner = headers?.get(OWNER_HEADER) ?? '';
  const epoch = headers?.get(EPOCH_HEADER) ?? '';
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(owner) || !/^[1-9]\d{0,14}$/.test(epoch)) {
    throw new StreamgradError('SG_ERR_SOURCE', `${subject}: not a worker's ${{ telemetry: 'state', events: 'event', control: 'control reply' }[of]} (headers ${OWNER_HEADER} ${JSON.stringify(owner.slice(0, 64))}, ${EPOCH_HEADER} ${JSON.stringify(epoch.slice(0, 16))})`, subject);
  }
  return { partition, claim: { owner, epoch: Number(epoch) } };
}

/**
 * The state in a message's body, or `SG_ERR_SOURCE` naming the subject when it is not
 * `partition`'s (not the wire encoding, another run's, weights and gradients that do not match).
 *
 * @example telemetryState('garbage', 0, 'sg.sensors.tm.0') // throws SG_ERR_SOURCE
 */
export function telemetryState(text: string, partition: number, subject: string): TelemetryState {
  let state: TelemetryState | null = null;
  try {
    state = decodeWire<TelemetryState>(text);
  } catch {
    // refused below
  }
  const ok = typeof state === 'object' && state !== null && typeof state.describe === 'object' && state.publish?.run === partitionKey(partition)
    && state.params instanceof Float64Array && state.grads instanceof Float64Array && state.params.length === state.grads.length;
  if (!ok) throw new StreamgradError('SG_ERR_SOURCE', `${subject}: not a state of partition ${partition} (${JSON.stringify(text.slice(0, 64))})`, subject);
  return state!;
}

const EVENT_TYPES: ReadonlySet<string> = new Set(RUN_EVENT_TYPES);

/**
 * The run event in a message's body, or `SG_ERR_SOURCE` naming the subject when it is not
 * one of `partition`'s run (not the wire encoding, a type no run emits, another run's, a
 * step or time that is no number, a detail that is no object). Only the fields of a
 * `RunEvent` are kept.
 *
 * @example runEvent('{"type":"paused","run":"p0","step":4,"time":1}', 0, 'sg.sensors.ev.0') // { type: 'paused', run: 'p0', step: 4, time: 1 }
 */
export function runEvent(text: string, partition: number, subject: string): RunEvent {
  let event: Partial<Record<keyof RunEvent, unknown>> | null = null;
  try {
    event = decodeWire<Partial<Record<keyof RunEvent, unknown>> | null>(text);
  } catch {
    // refused below
  }
  const { type, run, step, time, detail } = typeof event === 'object' && event !== null && !Array.isArray(event) ? event : {};
  const ok = typeof type === 'string' && EVENT_TYPES.has(type) && run === partitionKey(partition)
    && Number.isSafeInteger(step) && (step as number) >= 0 && Number.isFinite(time)
    && (detail === undefined || (typeof detail === 'object' && detail !== null && !Array.isArray(detail)));
  if (!ok) throw new StreamgradError('SG_ERR_SOURCE', `${subject}: not a run event of partition ${partition} (${JSON.stringify(text.slice(0, 64))})`, subject);
  return { type: type as RunEvent['type'], run: partitionKey(partition), step: step as number, time: time as number, ...(detail !== undefined && { detail: detail as RunEvent['detail'] }) };
}

/**
 * Whether a state, event or control reply claiming `claim` is the partition's: the owner and epoch of its commit
 * record (the fence a new owner writes before it trains, so a worker that lost the
 * partition has an older epoch), and no other worker holds the lease (while nobody holds
 * it, the last owner's states stand).
 *
 * @example believed({ owner: 'w-a', epoch: 1 }, { owner: 'w-b', epoch: 2 }, 'w-b') // false: w-a lost the partition
 */
export function believed(claim: TelemetryClaim, commit: TelemetryClaim | null, holder: string | null): boolean {
  return commit !== null && claim.owner === commit.owner && claim.epoch === commit.epoch && (holder === null || holder === claim.owner);
}

/**
 * A gateway's knowledge of every partition's commit record (owner, epoch) and lease
 * holder, kept by watching both buckets, to judge each state, event and control reply by `believed`
 * without a request per message. A claim newer than what it knows (a new owner whose fence
 * the watch has not brought yet) is judged again on a fresh read; an older epoch never
 * (epochs only grow). A read started after a message came knows every fence written
 * before it was sent, so the messages that came before a read share it: a flood of
 * claims of no commit costs one read at a time per partition, not one per message. A
 * control command reads both keys before it is sent (`reading`): the watch never hears
 * of a lease the server removed for its age, and may not have brought one just written.
 */
export class PartitionOwners {
  /** The latest fresh read of each partition: when it started (`performance.now()`) and when it is done. */
  private readonly reads = new Map<number, { readonly at: number; readonly done: Promise<boolean> }>();

  private constructor(private readonly commits: Followed<TelemetryClaim>, private readonly leases: Followed<string>) {}

  /** Starts watching `cluster`'s commits and leases buckets. */
  static async watch(cluster: Cluster): Promise<PartitionOwners> {
    const commits = new Followed(cluster, cluster.commits, (text, p) => parseCommitRecord(text, p));
    const leases = new Followed(cluster, cluster.leases, (text) => {
      const owner = parseObject(text)?.owner;
      return typeof owner === 'string' ? owner : null;
    }, cluster.leaseTtlMs);
    await Promise.all([commits.watch(), leases.watch()]);
    return new PartitionOwners(commits, leases);
  }

  /**
   * Whether a state, event or control reply of `partition` claiming `claim` is its owner's; `came` is
   * when the message came (`performance.now()`; by default now, which is never too early).
   */
  async believes(partition: number, claim: TelemetryClaim, came = performance.now()): Promise<boolean> {
    const judge = () => believed(claim, this.commits.get(partition), this.leases.get(partition));
    if (judge()) return true;
    if (claim.epoch < (this.commits.get(partition)?.epoch ?? 0)) return false;
    await this.read(partition, came);
    return judge();
  }

  /**
   * What is known of `partition`'s owner after a read of both buckets started now (a
   * control command is sent, or not, on it: `addressee`). The watch alone could miss a
   * lease written a moment ago, and never hears of one the server removed for its age.
   */
  async reading(partition: number): Promise<OwnerReading> {
    const fresh = await this.read(partition, performance.now());
    const holder = this.leases.get(partition);
    return { commit: this.commits.get(partition), holder, freeSince: holder === null ? this.leases.goneSince(partition) : null, fresh };
  }

  /** A read of `partition`'s keys started after `came`, shared by everyone who waits for one; whether both answered. */
  private read(partition: number, came: number): Promise<boolean> {
    let read = this.reads.get(partition);
    if (read === undefined || read.at <= came) {
      read = { at: performance.now(), done: Promise.all([this.commits.refresh(partition), this.leases.refresh(partition)]).then(([a, b]) => a && b) };
      this.reads.set(partition, read);
    }
    return read.done;
  }

  stop(): void {
    this.commits.stop();
    this.leases.stop();
  }
}

/**
 * The latest value of each partition's key in a KV bucket, with the revision it was read at
 * (a late watch entry never replaces a newer read) and when it was written (server time).
 */
class Followed<T> {
  /** `present`: the key has a value (parsed or not); `at`: when its latest entry (value or delete) was written. */
  private readonly known = new Map<number, { value: T | null; revision: number; present: boolean; at: number | null }>();
  private watching: { stop(): void } | null = null;

  /** `maxAgeMs`: the bucket's max age (the server removes a value that old, and no entry says so). */
  constructor(private readonly cluster: Cluster, private readonly kv: KV, private readonly parse: (text: string, partition: number) => T | null, private readonly maxAgeMs: number | null = null) {}

  async watch(): Promise<void> {
    const watch = await this.kv.watch();
    this.watching = watch;
    void (async () => {
      for await (const entry of watch) {
        const partition = Number(/^p(0|[1-9]\d{0,3})$/.exec(entry.key)?.[1] ?? -1);
        if (partition >= 0 && partition < this.cluster.partitions) this.keep(partition, entry.operation === 'PUT' ? entry.string() : null, entry.revision, entry.created.getTime());
      }
    })();
  }

  get(partition: number): T | null {
    return this.known.get(partition)?.value ?? null;
  }

  /** Since when (server time) the key has had no value, when known: deleted then, or removed for its age. */
  goneSince(partition: number): number | null {
    const known = this.known.get(partition);
    return known !== undefined && !known.present ? known.at : null;
  }

  /** Reads the key now; whether the server answered (on no answer, what is known stays). */
  async refresh(partition: number): Promise<boolean> {
    try {
      const entry = await this.kv.get(partitionKey(partition));
      const known = this.known.get(partition);
      if (entry !== null) this.keep(partition, entry.operation === 'PUT' ? entry.string() : null, entry.revision, entry.created.getTime());
      // gone for good (a lease past its max-age leaves no entry): none, at the revision known,
      // since the delete known, or since the value known turned a max-age old
      else if (known?.present === false) this.keep(partition, null, known.revision, known.at);
      else this.keep(partition, null, known?.revision ?? 0, known?.at != null && this.maxAgeMs !== null ? known.at + this.maxAgeMs : null);
      return true;
    } catch {
      return false; // judged on what is known
    }
  }

  stop(): void {
    this.watching?.stop();
  }

  private keep(partition: number, text: string | null, revision: number, at: number | null): void {
    if (revision < (this.known.get(partition)?.revision ?? 0)) return;
    this.known.set(partition, { value: text === null ? null : this.parse(text, partition), revision, present: text !== null, at });
  }
}

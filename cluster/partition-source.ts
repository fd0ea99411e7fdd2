import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { StreamgradError } from '../core/errors.ts';
import { CUT, type Cut } from '../pipeline/cut.ts';
import type { ReadyIterator } from '../pipeline/run.ts';
import type { IngestRecord } from '../core/record.ts';
import { decodeBatch } from './batch.ts';
import type { Cluster } from './open.ts';

/** Where a partition's training starts: after message `seq` and `within` records of the next one, `records` accounted in all. */
export interface PartitionStart {
  readonly seq: number;
  readonly within: number;
  readonly records: number;
}

/** A point of the partition's subject: the last message fully accounted for, and records of the next one. */
export interface PartitionPosition {
  readonly seq: number;
  readonly within: number;
}

/** The header that makes a message a cut marker (no records): the partial training batch ends there. */
export const CUT_HEADER = 'Sg-Cut';

/** How a `PartitionSource` ends partial batches of a quiet stream (`PartitionRun` wires it to its run). */
export interface PartitionCuts {
  /**
   * When no message has come for this long (ms) after a message with records, and a
   * partial batch waits (`partial()`), a cut marker is published to the partition's
   * subject (0: never).
   */
  readonly lingerMs: number;
  /** Whether the run holds records in a partial batch now. */
  readonly partial: () => boolean;
  /** A cut marker was read: message `seq`, after `records` records of the partition. */
  readonly onCut?: (seq: number, records: number) => void;
}

const LINGERED = Symbol('lingered');

/**
 * One partition's records as a pull source for a `TrainingRun`: an ordered JetStream
 * consumer (no acks: the commit record is the progress) on the partition's subject from
 * the message after the committed one, each batch message decoded into its records and
 * the first message's already trained records skipped. It remembers where each message
 * ends, so `position(run.sourceOffset)` names the stream sequence a checkpoint reached.
 * `abort` makes the pull in progress (or the next) throw: a worker that lost its lease
 * stops consuming at once.
 *
 * **Cuts.** A live stream that goes quiet would hold its last records in a partial batch
 * until more come. After `cuts.lingerMs` of quiet with a partial batch waiting, the
 * source publishes a *cut marker* (an empty message with header `Sg-Cut`, message id
 * `~cut:P:SEQ` so two owners cutting after the same message store one) to the
 * partition's subject, and yields `CUT` wherever it reads one: the run trains its partial
 * batch there. The cut is in the stream, not in a timer, so a new owner after a failover
 * (or a replay of the stream) cuts at the same place and the models stay bitwise equal.
 */
export class PartitionSource implements AsyncIterable<IngestRecord | Cut> {
  private messages: ConsumerMessages | null = null;
  private iterator: AsyncIterator<JsMsg> | null = null;
  private buffer: IngestRecord[] = [];
  private index = 0;
  private skip: number;
  /** The last message whose records are all accounted for, by the run's offset. */
  private complete: { seq: number; end: number };
  /** Messages read after `complete`, with the offset at their end. */
  private readonly ends: { seq: number; end: number }[] = [];
  private lastSeq: number;
  private aborted: unknown = null;
  private onAbort: ((error: unknown) => void) | null = null;
  private closed = false;
  /** The pull of the next message, kept across cut timers. */
  private pendingNext: Promise<IteratorResult<JsMsg>> | null = null;
  /** A message with records was read since the last cut (a cut marker may be due when the stream goes quiet). */
  private sinceCut = false;
  /** Records yielded, counting from the start's `records`. */
  private offset: number;

  constructor(private readonly cluster: Cluster, readonly partition: number, start: PartitionStart, private readonly cuts?: PartitionCuts) {
    this.skip = start.within;
    this.complete = { seq: start.seq, end: start.records - start.within };
    this.lastSeq = start.seq;
    this.offset = start.records;
  }

  /** Records yielded so far, counting from the start's `records`: more than the run's `sourceOffset` while a partial batch waits. */
  get yielded(): number {
    return this.offset;
  }

  /** The position of record offset `offset` (the run's `sourceOffset`, at a clean cut). */
  position(offset: number): PartitionPosition {
    while (this.ends.length > 0 && this.ends[0]!.end <= offset) this.complete = this.ends.shift()!;
    return { seq: this.complete.seq, within: offset - this.complete.end };
  }

  /** Stops consuming: the waiting or next pull throws `error`. */
  abort(error: unknown): void {
    if (this.aborted !== null) return;
    this.aborted = error;
    this.onAbort?.(error);
  }

  [Symbol.asyncIterator](): ReadyIterator<IngestRecord | Cut> {
    return {
      next: () => this.next(),
      takeReady: () => this.takeReady(),
      return: async () => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  /** The next record of the message in hand, without waiting (undefined when the next message has to be pulled). */
  private takeReady(): IteratorResult<IngestRecord> | undefined {
    if (this.aborted !== null) throw this.aborted;
    if (this.index >= this.buffer.length) return undefined;
    this.offset++;
    return { done: false, value: this.buffer[this.index++]! };
  }

  private async next(): Promise<IteratorResult<IngestRecord | Cut>> {
    for (;;) {
      if (this.aborted !== null) throw this.aborted;
      if (this.index < this.buffer.length) {
        const value = this.buffer[this.index++]!;
        this.offset++;
        return { done: false, value };
      }
      const msg = await this.nextMessage();
      if (msg === null) return { done: true, value: undefined };
      if (msg.seq <= this.lastSeq) continue; // redelivered after a consumer reset
      this.lastSeq = msg.seq;
      const base = this.ends.at(-1)?.end ?? this.complete.end;
      const marked = msg.headers !== undefined && msg.headers.get(CUT_HEADER) !== '';
      // a cut marker carries no records: one with a body (a hostile or broken producer) is
      // refused as one rejected record (a dead letter with its bytes, counted), never a cut
      // that drops them, silently
      const cut = marked && msg.data.length > 0 ? refusedCut(msg.data, msg.subject, msg.seq) : undefined;
      if (marked && cut === undefined) {
        this.ends.push({ seq: msg.seq, end: base });
        this.sinceCut = false;
        this.cuts?.onCut?.(msg.seq, this.offset);
        return { done: false, value: CUT };
      }
      let records = cut === undefined ? decodeBatch(msg.data, msg.subject, msg.seq) : [cut];
      this.ends.push({ seq: msg.seq, end: base + records.length });
      if (records.length > 0) this.sinceCut = true;
      if (this.skip > 0 && records.length > 0) {
        records = records.slice(this.skip);
        this.skip = 0;
      }
      this.buffer = records;
      this.index = 0;
    }
  }

  private async nextMessage(): Promise<JsMsg | null> {
    if (this.iterator === null) {
      const { names } = this.cluster;
      const consumer = await this.cluster.js.consumers.get(names.stream, {
        filter_subjects: names.subject(this.partition),
        opt_start_seq: this.lastSeq + 1,
        inactive_threshold: 30_000,
      });
      this.messages = await consumer.consume({ max_messages: 64 });
      this.iterator = this.messages[Symbol.asyncIterator]();
    }
    const aborted = new Promise<never>((_, reject) => (this.onAbort = reject));
    aborted.catch(() => undefined);
    try {
      const next = (this.pendingNext ??= this.iterator.next());
      for (;;) {
        const lingerMs = this.cuts?.lingerMs ?? 0;
        let timer: ReturnType<typeof setTimeout> | undefined;
        const lingered = lingerMs > 0 && this.sinceCut && this.cuts!.partial()
          ? [new Promise<typeof LINGERED>((resolve) => (timer = setTimeout(() => resolve(LINGERED), lingerMs)))]
          : [];
        const result = await Promise.race([next, aborted, ...lingered]);
        clearTimeout(timer);
        if (result === LINGERED) {
          await this.publishCut();
          continue;
        }
        this.pendingNext = null;
        return result.done === true ? null : result.value;
      }
    } catch (error) {
      this.pendingNext = null;
      if (error === this.aborted) throw error;
      throw new StreamgradError('SG_ERR_SOURCE', `partition ${this.partition}: ${error instanceof Error ? error.message : String(error)}`, 'source', { cause: error });
    } finally {
      this.onAbort = null;
    }
  }

  /** Marks the quiet stream with a cut after the last message read (once; a failed publish is tried again after the next linger). */
  private async publishCut(): Promise<void> {
    this.sinceCut = false;
    const h = headers();
    h.set(CUT_HEADER, '1');
    try {
      await this.cluster.js.publish(this.cluster.names.subject(this.partition), new Uint8Array(0), { msgID: `~cut:${this.partition}:${this.lastSeq}`, headers: h, timeout: 5000 });
    } catch {
      this.sinceCut = this.aborted === null;
    }
  }

  private async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // stop, not close: close() waits until its iterator is read to the end, which nobody
    // does any more; the ephemeral consumer is deleted by the server after its inactive
    // threshold (30 s)
    this.messages?.stop();
    await Promise.resolve();
  }
}

/** The rejected record of a cut marker with a body (`SG_ERR_SOURCE`, field `Sg-Cut`), its bytes as text in `raw`. */
function refusedCut(data: Uint8Array, subject: string, seq: number): IngestRecord {
  const raw = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8');
  const error = new StreamgradError('SG_ERR_SOURCE', `message ${seq}: a cut marker (header ${CUT_HEADER}) must be empty, this one carries ${data.length} bytes; refused, not trained`, CUT_HEADER);
  return { error, origin: { source: 'nats', topic: subject, messageId: `${seq}:1`, raw } };
}

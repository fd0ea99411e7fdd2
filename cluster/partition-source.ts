import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream';
import { StreamgradError } from '../core/errors.ts';
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

/**
 * One partition's records as a pull source for a `TrainingRun`: an ordered JetStream
 * consumer (no acks: the commit record is the progress) on the partition's subject from
 * the message after the committed one, each batch message decoded into its records and
 * the first message's already trained records skipped. It remembers where each message
 * ends, so `position(run.sourceOffset)` names the stream sequence a checkpoint reached.
 * `abort` makes the pull in progress (or the next) throw: a worker that lost its lease
 * stops consuming at once.
 */
export class PartitionSource implements AsyncIterable<IngestRecord> {
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

  constructor(private readonly cluster: Cluster, readonly partition: number, start: PartitionStart) {
    this.skip = start.within;
    this.complete = { seq: start.seq, end: start.records - start.within };
    this.lastSeq = start.seq;
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

  [Symbol.asyncIterator](): AsyncIterator<IngestRecord> {
    return {
      next: () => this.next(),
      return: async () => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  private async next(): Promise<IteratorResult<IngestRecord>> {
    for (;;) {
      if (this.aborted !== null) throw this.aborted;
      if (this.index < this.buffer.length) {
        const value = this.buffer[this.index++]!;
        return { done: false, value };
      }
      const msg = await this.nextMessage();
      if (msg === null) return { done: true, value: undefined };
      if (msg.seq <= this.lastSeq) continue; // redelivered after a consumer reset
      this.lastSeq = msg.seq;
      let records = decodeBatch(msg.data, msg.subject, msg.seq);
      const base = this.ends.at(-1)?.end ?? this.complete.end;
      this.ends.push({ seq: msg.seq, end: base + records.length });
      if (this.skip > 0) {
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
      const result = await Promise.race([this.iterator.next(), aborted]);
      return result.done === true ? null : result.value;
    } catch (error) {
      if (error === this.aborted) throw error;
      throw new StreamgradError('SG_ERR_SOURCE', `partition ${this.partition}: ${error instanceof Error ? error.message : String(error)}`, 'source', { cause: error });
    } finally {
      this.onAbort = null;
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

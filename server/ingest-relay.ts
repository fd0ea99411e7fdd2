import { StreamgradError, type ErrorCode } from '../core/errors.ts';
import type { LabelledRecord } from '../core/label-join.ts';
import type { IngestRecord, Origin } from '../core/record.ts';

/**
 * `/ingest` on the threaded server (`serveInThread({ ingest })`): the sockets live on the
 * server thread (a `WebSocketIngest` there, with its token, Origin rules, pools and bounded
 * queue), the records they bring are wanted on the thread that trains. The server thread
 * pumps its queue to this thread only as far as this thread has granted credit
 * (`INGEST_CREDIT` records ahead, given back as they are consumed): the backlog stays in the
 * endpoint's own queue, where its overflow policy applies and its acks tell the sensors
 * what was queued or dropped, and memory stays bounded on both threads.
 *
 * @example
 * const labels = new IngestRelay();
 * const server = await serveInThread({ port: 8080, ingest: { token, relay: labels } });
 * for await (const record of labels) … // the records sensors sent to /ingest
 */

/** Records the training thread lets the server thread send ahead of what it consumed. */
export const INGEST_CREDIT = 256;

/** A record as it crosses threads: an error is sent as its code, message and field (a class does not survive a structured clone). */
export type WireRecord =
  | { readonly value: unknown; readonly origin: Origin; readonly text?: boolean; readonly stream?: 'features' | 'labels' }
  | { readonly error: { readonly code: ErrorCode; readonly message: string; readonly field?: string }; readonly origin: Origin; readonly stream?: 'features' | 'labels' };

/** A record for `postMessage`. */
export function recordToWire(record: LabelledRecord): WireRecord {
  const stream = record.stream === undefined ? {} : { stream: record.stream };
  if (record.error !== undefined) return { error: { code: record.error.code, message: record.error.message, ...(record.error.field !== undefined && { field: record.error.field }) }, origin: record.origin, ...stream };
  return { value: record.value, origin: record.origin, ...(record.text !== undefined && { text: record.text }), ...stream };
}

/** A record back from `postMessage`, its error a `StreamgradError` again. */
export function recordFromWire(wire: WireRecord): LabelledRecord {
  if ('error' in wire) return { error: new StreamgradError(wire.error.code, wire.error.message, wire.error.field), origin: wire.origin, ...(wire.stream !== undefined && { stream: wire.stream }) } as LabelledRecord;
  return wire as LabelledRecord;
}

/**
 * The training thread's end of `/ingest` on the threaded server: an async iterable of the
 * records sensors sent (one consumer), ended when the server closes. `records` tells how
 * many came, `waiting` how many wait here to be pulled.
 */
export class IngestRelay implements AsyncIterable<LabelledRecord> {
  private readonly items: LabelledRecord[] = [];
  private head = 0;
  private ended = false;
  private wake: (() => void) | null = null;
  private grant: ((n: number) => void) | null = null;
  private consumed = 0;
  private iterating = false;
  /** Records that came from the server thread. */
  received = 0;

  /** Connects the relay to a server thread (`serveInThread` calls it): `grant` sends credit. */
  attach(grant: (n: number) => void): void {
    if (this.grant !== null) throw new Error('IngestRelay: already attached to a server');
    this.grant = grant;
    grant(INGEST_CREDIT);
  }

  /** Records from the server thread. */
  deliver(records: readonly WireRecord[]): void {
    if (this.ended) return;
    for (const r of records) this.items.push(recordFromWire(r));
    this.received += records.length;
    this.wakeUp();
  }

  /** No more records (the server closed): the iterator ends after those that wait. */
  end(): void {
    this.ended = true;
    this.wakeUp();
  }

  get waiting(): number {
    return this.items.length - this.head;
  }

  [Symbol.asyncIterator](): AsyncIterator<LabelledRecord> {
    if (this.iterating) throw new Error('IngestRelay: only one consumer may iterate');
    this.iterating = true;
    return {
      next: async (): Promise<IteratorResult<LabelledRecord>> => {
        while (this.head === this.items.length) {
          if (this.ended) return { done: true, value: undefined };
          await new Promise<void>((resolve) => { this.wake = resolve; });
        }
        const value = this.items[this.head++];
        // compact now and then: the array never holds more than the credit and what was consumed since
        if (this.head >= 1024 && this.head * 2 >= this.items.length) {
          this.items.splice(0, this.head);
          this.head = 0;
        }
        if (++this.consumed >= INGEST_CREDIT / 4) {
          this.grant?.(this.consumed);
          this.consumed = 0;
        }
        return { done: false, value };
      },
      return: async (): Promise<IteratorResult<LabelledRecord>> => {
        this.end();
        return { done: true, value: undefined };
      },
    };
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}

/**
 * The server thread's end: pulls `source` (the `WebSocketIngest`'s queue) as far as the
 * credit goes, and posts the records in batches (those that are there in one turn).
 * Returns `credit(n)`, to call when the training thread grants more.
 */
export function pumpIngest(source: AsyncIterable<IngestRecord>, post: (records: WireRecord[]) => void): { credit(n: number): void } {
  let credits = 0;
  let wake: (() => void) | null = null;
  let batch: WireRecord[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (batch.length === 0) return;
    const out = batch;
    batch = [];
    post(out);
  };
  void (async () => {
    const iterator = source[Symbol.asyncIterator]();
    for (;;) {
      while (credits === 0) await new Promise<void>((resolve) => { wake = resolve; });
      const next = await iterator.next();
      if (next.done === true) break;
      credits--;
      batch.push(recordToWire(next.value));
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    }
    flush();
  })();
  return {
    credit(n: number) {
      credits += n;
      const w = wake;
      wake = null;
      w?.();
    },
  };
}

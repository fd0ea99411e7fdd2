import { requireConfig, StreamgradError } from '../core/errors.ts';

/**
 * What a full queue does with one more item:
 * - `drop-oldest`: evicts the oldest queued item (the freshest data wins; sensor streams);
 * - `drop-newest`: refuses the new item (what is queued is kept);
 * - `error`: fails the stream with `SG_ERR_SOURCE` (nothing may be lost silently);
 * - `block`: takes it, and producers that can wait (`await queue.room()`) hold back
 *   until there is room again: an MQTT client delays its PUBACKs, a WebSocket stops
 *   reading, and TCP pushes back on the sender.
 * Every item lost is counted in `dropped`.
 */
export type OverflowPolicy = 'drop-oldest' | 'drop-newest' | 'error' | 'block';
/** Every overflow policy, for option parsing and help texts. */
export const OVERFLOW_POLICIES: readonly OverflowPolicy[] = ['drop-oldest', 'drop-newest', 'error', 'block'];

/** Options of a `BoundedQueue`. */
export interface BoundedQueueOptions {
  /** Most items held (default 1024). */
  readonly capacity?: number;
  /** What a full queue does (default `drop-oldest`). */
  readonly policy?: OverflowPolicy;
}

/** Counters of a queue, for metrics. */
export interface QueueStats {
  readonly size: number;
  readonly capacity: number;
  /** Items accepted by `push`. */
  readonly pushed: number;
  /** Items lost to the overflow policy. */
  readonly dropped: number;
  /** The largest size reached. */
  readonly highWater: number;
}

/** The largest queue: 1,048,576 items (its ring is allocated up front, and a full queue holds that many records). */
export const MAX_QUEUE = 1_048_576;

/**
 * The bridge from a live push source (MQTT, WebSocket ingest) to a pull consumer
 * (`TrainingRun`): producers `push`, the consumer iterates with `for await`. RxJS has no
 * backpressure, so this is where memory is bounded: at most `capacity` items wait, and
 * the `policy` says what happens to more (RELIABILITY 29). A ring buffer: no array
 * grows or shifts.
 *
 * The iterator ends after `end()` once the queued items are consumed, and throws the
 * error of `fail(error)` (or the overflow of the `error` policy) at the next pull.
 * Only one consumer may iterate.
 *
 * @example
 * const queue = new BoundedQueue<IngestRecord>({ capacity: 1000, policy: 'drop-oldest' });
 * client.on('message', (topic, payload) => queue.push(toRecord(topic, payload)));
 * new TrainingRun({ id: 'mqtt', trainer, source: queue });
 */
export class BoundedQueue<T> implements AsyncIterable<T> {
  readonly capacity: number;
  readonly policy: OverflowPolicy;
  pushed = 0;
  dropped = 0;
  highWater = 0;
  private readonly ring: (T | undefined)[];
  private head = 0;
  private count = 0;
  private ended = false;
  private failure: unknown = null;
  private waiting: ((result: IteratorResult<T>) => void) | null = null;
  private waitingFail: ((error: unknown) => void) | null = null;
  private roomWaiters: (() => void)[] = [];
  private iterating = false;

  constructor(options: BoundedQueueOptions = {}) {
    const { capacity = 1024, policy = 'drop-oldest' } = options;
    requireConfig(Number.isSafeInteger(capacity) && capacity >= 1, 'capacity', `must be an integer ≥ 1, got ${String(capacity)}`);
    requireConfig(capacity <= MAX_QUEUE, 'capacity', `must be at most ${MAX_QUEUE}, got ${capacity}`);
    requireConfig(OVERFLOW_POLICIES.includes(policy), 'policy', `must be one of ${OVERFLOW_POLICIES.join(', ')}, got ${String(policy)}`);
    this.capacity = capacity;
    this.policy = policy;
    this.ring = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.count;
  }

  get full(): boolean {
    return this.count >= this.capacity;
  }

  /** True once `end()` or `fail()` was called. */
  get closed(): boolean {
    return this.ended || this.failure !== null;
  }

  get stats(): QueueStats {
    return { size: this.count, capacity: this.capacity, pushed: this.pushed, dropped: this.dropped, highWater: this.highWater };
  }

  /**
   * Offers an item; returns false when it was dropped (by `drop-newest`, `error`, or a
   * closed queue). With `block` a full queue still takes it: producers that can wait
   * call `await room()` first, so the queue only overshoots by what they had in hand.
   */
  push(item: T): boolean {
    if (this.closed) {
      this.dropped++;
      return false;
    }
    if (this.waiting !== null) {
      // a consumer is waiting: hand over directly
      const resolve = this.waiting;
      this.waiting = this.waitingFail = null;
      this.pushed++;
      this.highWater = Math.max(this.highWater, 1);
      resolve({ done: false, value: item });
      return true;
    }
    if (this.count >= this.capacity && this.policy !== 'block') {
      if (this.policy === 'drop-newest') {
        this.dropped++;
        return false;
      }
      if (this.policy === 'error') {
        this.dropped++;
        this.fail(new StreamgradError('SG_ERR_SOURCE', `queue full: more than ${this.capacity} samples waiting (overflow policy "error")`, 'queue'));
        return false;
      }
      // drop-oldest
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.ring.length;
      this.count--;
      this.dropped++;
    }
    if (this.count >= this.capacity) this.grow(); // block: overshoot by what producers had in hand
    this.ring[(this.head + this.count) % this.ring.length] = item;
    this.count++;
    this.pushed++;
    if (this.count > this.highWater) this.highWater = this.count;
    return true;
  }

  /** Resolves once the queue holds fewer than `capacity` items (at once if it does). */
  room(): Promise<void> {
    if (this.count < this.capacity || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push(resolve));
  }

  /** No more items will come: the iterator ends once the queued ones are taken. */
  end(): void {
    this.ended = true;
    this.settleWaiters();
  }

  /** The source failed: the iterator throws `error` at the next pull; queued items are discarded (and counted as dropped). */
  fail(error: unknown): void {
    if (this.failure !== null) return;
    this.failure = error ?? new Error('queue failed');
    this.dropped += this.count;
    this.ring.fill(undefined);
    this.count = 0;
    this.settleWaiters();
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.iterating) throw new StreamgradError('SG_ERR_STATE', 'a bounded queue has one consumer; it is already being iterated', 'queue');
    this.iterating = true;
    return {
      next: () => this.take(),
      return: () => {
        this.end();
        return Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  private take(): Promise<IteratorResult<T>> {
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.count > 0) {
      const item = this.ring[this.head] as T;
      this.ring[this.head] = undefined;
      this.head = (this.head + 1) % this.ring.length;
      this.count--;
      if (this.roomWaiters.length > 0 && this.count < this.capacity) {
        for (const resolve of this.roomWaiters.splice(0)) resolve();
      }
      return Promise.resolve({ done: false, value: item });
    }
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.waitingFail = reject;
    });
  }

  private settleWaiters(): void {
    for (const resolve of this.roomWaiters.splice(0)) resolve();
    const resolve = this.waiting, reject = this.waitingFail;
    this.waiting = this.waitingFail = null;
    if (this.failure !== null) reject?.(this.failure);
    else resolve?.({ done: true, value: undefined });
  }

  /** `block` overshoot: grows the ring (rare; bounded by what blocked producers held). */
  private grow(): void {
    const size = this.ring.length;
    const items: (T | undefined)[] = [];
    for (let i = 0; i < this.count; i++) items.push(this.ring[(this.head + i) % size]);
    this.ring.length = size * 2;
    this.ring.fill(undefined);
    items.forEach((item, i) => (this.ring[i] = item));
    this.head = 0;
  }
}

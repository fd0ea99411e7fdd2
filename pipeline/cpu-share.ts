/**
 * A few words of shared memory through which a thread that serves (`serveInThread`'s
 * server thread) asks the thread that trains for the CPU, and the training thread gives
 * it, cooperatively and only while asked (issue 17 item 6, issue 12).
 *
 * The server thread `raise()`s a demand when it has work waiting and no core to run it
 * on (server/cpu-demand.ts decides when), and `lower()`s it — waking the trainer at once —
 * when it has caught up. Between its slices the training loop (`TrainingRun`) calls
 * `yieldAfter(sliceMs)`: with no demand that is one atomic load and nothing else, so an
 * idle server costs training nothing; with a demand it sleeps in `Atomics.wait` (the core
 * goes to whoever is runnable, the server first) for at most as long as the slice it just
 * trained, so while the demand is up training keeps at least half of its time, and within
 * a budget that refills at `sustainedShare` of the wall clock, so a demand that never
 * drops (a server flooded for minutes) takes at most that share in the long run.
 *
 * Layout (Int32 words, then BigInt64 counters): `DEMAND` (0/1), `WAKE` (bumped at each
 * lower, what a sleeping trainer waits on), `RAISES`; then the microseconds yielded and
 * the number of yields, written only by the training thread.
 *
 * @example
 * const share = new CpuShare();                 // on the training thread
 * worker.postMessage({ cpu: share.buffer });    // the server thread: new CpuShare(buffer).raise()
 * run.shareCpu(share);                          // TrainingRun: yields between slices while raised
 */
export class CpuShare {
  /** The memory both threads hold (post it to the other thread; it is shared, not copied). */
  readonly buffer: SharedArrayBuffer;
  private readonly words: Int32Array;
  private readonly totals: BigInt64Array;
  private readonly maxSleepMs: number;
  private readonly sustainedShare: number;
  private readonly budgetCapMs: number;
  /** Ms of sleep this thread may still take (refills at `sustainedShare` of the wall clock). */
  private budgetMs: number;
  private budgetAt = performance.now();

  /**
   * `buffer`: the other thread's, to share it; a new one without. The limits matter only on
   * the side that yields: `maxSleepMs` per yield (default 8), `sustainedShare` of the wall
   * clock yielded in the long run (default 0.05), `budgetMs` yielded at most at once before
   * that share applies (default 250: a burst of demand gets up to half the time for ~0.5 s;
   * a steady load of requests costs training at most about 5%).
   */
  constructor(buffer?: SharedArrayBuffer, limits: { readonly maxSleepMs?: number; readonly sustainedShare?: number; readonly budgetMs?: number } = {}) {
    this.buffer = buffer ?? new SharedArrayBuffer(BYTES);
    if (this.buffer.byteLength < BYTES) throw new RangeError(`CpuShare: the buffer holds ${this.buffer.byteLength} bytes, ${BYTES} needed`);
    this.words = new Int32Array(this.buffer, 0, 4);
    this.totals = new BigInt64Array(this.buffer, 16, 2);
    this.maxSleepMs = limits.maxSleepMs ?? 8;
    this.sustainedShare = limits.sustainedShare ?? 0.05;
    this.budgetCapMs = this.budgetMs = limits.budgetMs ?? 250;
    if (!(this.maxSleepMs > 0) || !(this.sustainedShare >= 0 && this.sustainedShare <= 0.5) || !(this.budgetCapMs >= 0)) {
      throw new RangeError(`CpuShare: maxSleepMs must be > 0, sustainedShare from 0 to 0.5, budgetMs ≥ 0; got ${this.maxSleepMs}, ${this.sustainedShare}, ${this.budgetCapMs}`);
    }
  }

  /** Whether the serving side asks for the CPU now. */
  get demanded(): boolean {
    return Atomics.load(this.words, DEMAND) !== 0;
  }

  /** The serving side has work waiting and no core to run it on: ask for the CPU. */
  raise(): void {
    if (Atomics.compareExchange(this.words, DEMAND, 0, 1) === 0) Atomics.add(this.words, RAISES, 1);
  }

  /** The serving side caught up: stop asking, and wake a trainer that sleeps for it. */
  lower(): void {
    if (Atomics.compareExchange(this.words, DEMAND, 1, 0) !== 1) return;
    Atomics.add(this.words, WAKE, 1);
    Atomics.notify(this.words, WAKE);
  }

  /**
   * Called by the training thread after a slice of `sliceMs` of training: while a demand
   * is up, sleeps (blocking this thread, so its core is free) for at most `sliceMs`,
   * `maxSleepMs` and what the budget allows, waking as soon as the demand is lowered.
   * Returns the ms slept (0 when nothing was asked).
   */
  yieldAfter(sliceMs: number): number {
    if (Atomics.load(this.words, DEMAND) === 0) return 0;
    const now = performance.now();
    this.budgetMs = Math.min(this.budgetCapMs, this.budgetMs + (now - this.budgetAt) * this.sustainedShare);
    this.budgetAt = now;
    const sleep = Math.min(sliceMs, this.maxSleepMs);
    // a sleep the budget cannot pay whole is not taken: slivers of sleep cost a wake-up each,
    // and on a loaded machine a wake-up can take longer than the sleep itself
    if (!(sleep >= MIN_SLEEP_MS) || this.budgetMs < sleep) return 0;
    const wake = Atomics.load(this.words, WAKE);
    // lowered between the two loads: the wake was already given, do not wait for the next one
    if (Atomics.load(this.words, DEMAND) === 0) return 0;
    Atomics.wait(this.words, WAKE, wake, sleep);
    const slept = performance.now() - now;
    this.budgetMs -= slept;
    Atomics.add(this.totals, YIELDED_US, BigInt(Math.round(slept * 1000)));
    Atomics.add(this.totals, YIELDS, 1n);
    return slept;
  }

  /** Counters for /metrics and tests: demands raised, yields taken and the ms they slept. */
  stats(): CpuShareStats {
    return {
      demanded: this.demanded,
      raises: Atomics.load(this.words, RAISES),
      yields: Number(Atomics.load(this.totals, YIELDS)),
      yieldedMs: Number(Atomics.load(this.totals, YIELDED_US)) / 1000,
    };
  }
}

/** What `CpuShare.stats()` tells. */
export interface CpuShareStats {
  /** Whether the serving side asks for the CPU now. */
  readonly demanded: boolean;
  /** Times the serving side raised a demand. */
  readonly raises: number;
  /** Times the training side slept for it. */
  readonly yields: number;
  /** Ms it slept in all. */
  readonly yieldedMs: number;
}

const DEMAND = 0, WAKE = 1, RAISES = 2;
const YIELDED_US = 0, YIELDS = 1;
const BYTES = 32;
/** Shorter sleeps cost more in wake-ups than they give. */
const MIN_SLEEP_MS = 0.25;

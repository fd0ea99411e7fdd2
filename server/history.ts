/** One past snapshot: the trainer's step count when it was taken, and its encoded `history` frame. */
export interface HistoryEntry {
  readonly step: number;
  readonly data: Buffer;
}

export interface HistoryOptions {
  /** Ms between two captures at first (0: every capture offered is taken until the first thinning). */
  readonly intervalMs: number;
  /** Most entries kept (≥ 2). */
  readonly capacity: number;
  /** Most bytes of frames kept (at least one frame is always kept). */
  readonly maxBytes: number;
}

/**
 * A bounded history of one run's parameters, for dashboards to look back at how the
 * weights were (the timeline scrubber). Each entry is an `SGF1` frame encoded once when
 * it is captured, and the same bytes go to every client that asks.
 *
 * It spans the whole run at an even spacing: captures are at least `intervalMs` apart,
 * and when the history is full (by count or by bytes) every second entry is dropped —
 * the first (the initial weights) and the newest stay — and the interval doubles, so the
 * spacing stays even and the memory bounded however long the run goes.
 */
export class SnapshotHistory {
  private entries: HistoryEntry[] = [];
  private bytes = 0;
  private interval: number;
  private lastCapture = -Infinity;

  constructor(private readonly options: HistoryOptions) {
    if (!(options.capacity >= 2)) throw new RangeError(`history capacity must be at least 2, got ${options.capacity}`);
    this.interval = options.intervalMs;
  }

  /** Ms between captures now. */
  get intervalMs(): number {
    return this.interval;
  }

  get capacity(): number {
    return this.options.capacity;
  }

  get size(): number {
    return this.entries.length;
  }

  get byteLength(): number {
    return this.bytes;
  }

  /** Whether a capture at `now` would be taken (so the caller encodes only then). */
  due(now: number): boolean {
    return now - this.lastCapture >= this.interval;
  }

  /**
   * Adds an entry (when `force` or the interval has elapsed); `encode` runs only then and
   * may return null to skip (non-finite parameters are never kept). Returns whether it was added.
   */
  capture(step: number, encode: () => Buffer | null, now: number, force = false): boolean {
    if (!force && !this.due(now)) return false;
    const data = encode();
    if (data === null) return false;
    this.lastCapture = now;
    this.entries.push({ step, data });
    this.bytes += data.byteLength;
    while (this.entries.length > 2 && (this.entries.length > this.options.capacity || this.bytes > this.options.maxBytes)) this.thin();
    // two frames over the byte cap: keep the newest only
    if (this.entries.length === 2 && this.bytes > this.options.maxBytes) {
      this.bytes -= this.entries[0].data.byteLength;
      this.entries.shift();
    }
    return true;
  }

  /** Steps of every entry, oldest first. */
  steps(): number[] {
    return this.entries.map((e) => e.step);
  }

  /**
   * Up to `limit` entries from the first whose step is ≥ `fromStep` (default: the oldest),
   * in order, stopping before the total would pass `maxBytes` (but always at least one).
   */
  query(fromStep: number | undefined, limit: number, maxBytes: number): HistoryEntry[] {
    if (limit <= 0) return [];
    let start = 0;
    if (fromStep !== undefined) {
      start = this.entries.findIndex((e) => e.step >= fromStep);
      if (start === -1) start = Math.max(0, this.entries.length - 1); // past the newest: the newest
    }
    const out: HistoryEntry[] = [];
    let total = 0;
    for (let i = start; i < this.entries.length && out.length < limit; i++) {
      const size = this.entries[i].data.byteLength;
      if (out.length > 0 && total + size > maxBytes) break;
      out.push(this.entries[i]);
      total += size;
    }
    return out;
  }

  clear(): void {
    this.entries = [];
    this.bytes = 0;
    this.lastCapture = -Infinity;
    this.interval = this.options.intervalMs;
  }

  /** Drops every second entry between the first and the newest and doubles the interval. */
  private thin(): void {
    const last = this.entries.length - 1;
    const kept = this.entries.filter((_, i) => i === 0 || i === last || i % 2 === 0);
    this.bytes = kept.reduce((sum, e) => sum + e.data.byteLength, 0);
    this.entries = kept;
    this.interval = Math.max(this.interval * 2, 1);
  }
}

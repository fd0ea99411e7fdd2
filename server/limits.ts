/**
 * A per-connection message budget: at most `burst` (default `perMinute`) messages in any
 * burst, refilled continuously at `perMinute` per minute (a token bucket). Constant memory
 * and time, however many messages arrive.
 */
export class RateLimit {
  private tokens: number;
  private last: number;
  private readonly perMs: number;

  constructor(perMinute: number, private readonly clock: () => number = performance.now.bind(performance), private readonly burst = perMinute) {
    this.tokens = burst;
    this.last = clock();
    this.perMs = perMinute / 60_000;
  }

  /** Spends one message; false when the budget is used up (nothing is spent then). */
  take(): boolean {
    const now = this.clock();
    this.tokens = Math.min(this.burst, this.tokens + (now - this.last) * this.perMs);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/**
 * A bounded map that forgets its least recently used entries beyond `capacity`
 * (a `Map` keeps insertion order: re-inserting on access moves an entry to the end).
 */
export class LruMap<K, V> {
  private readonly map = new Map<K, V>();
  /** The most recently used key (the map's last), when `hasNewest`. */
  private newest: K | undefined = undefined;
  private hasNewest = false;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.map.size;
  }

  get(key: K): V | undefined {
    const value = this.map.get(key);
    // already the most recent (one client asking again and again): re-inserting it would only
    // grow the map's table, a long-lived object, and send it to the old generation (issue 12)
    if (value !== undefined && !(this.hasNewest && this.newest === key)) {
      this.map.delete(key);
      this.map.set(key, value);
      this.newest = key;
      this.hasNewest = true;
    }
    return value;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    this.newest = key;
    this.hasNewest = true;
    while (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K);
  }

  /** The entries, least recently used first (reading them does not count as a use). */
  entries(): IterableIterator<[K, V]> {
    return this.map.entries();
  }

  delete(key: K): void {
    this.map.delete(key);
    if (this.hasNewest && this.newest === key) {
      this.newest = undefined;
      this.hasNewest = false;
    }
  }
}

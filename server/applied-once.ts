import { LruMap } from './limits.ts';
import type { Outcome } from './protocol.ts';

/** What `AppliedOnce.apply` ended with: the outcome, and whether it is one of an earlier application. */
export interface OnceOutcome {
  readonly outcome: Outcome;
  readonly duplicate: boolean;
}

/**
 * The memory behind "applied at most once per id" (MQTT QoS 1): the outcome of every
 * command applied under a key, in a bounded LRU (the newest `capacity` keys). The same key
 * again gets the remembered outcome, marked `duplicate`, without applying anything; a key
 * still being applied makes the second caller wait for the first. Refusals are forgotten,
 * so fixing the cause and resending works. One concept for both places that apply
 * commands: a server's `CommandLog` (every connection of one server) and a cluster
 * partition's owner (`PartitionTelemetry`: every gateway of a cluster run).
 *
 * @example
 * const once = new AppliedOnce();
 * await once.apply('a\u0000c-1', () => applyCommand(run, command)); // { outcome, duplicate: false }
 * await once.apply('a\u0000c-1', () => applyCommand(run, command)); // the same outcome, duplicate: true; not applied again
 */
export class AppliedOnce {
  private readonly applied: LruMap<string, Promise<Outcome>>;

  /** @param capacity how many keys are remembered (the least recently used go first). */
  constructor(capacity = 10_000) {
    this.applied = new LruMap(capacity);
  }

  /**
   * `apply()`'s outcome, unless `key` was applied before or is being applied now: then that
   * outcome, `duplicate: true`. An outcome that itself says `duplicate` (a cluster
   * partition's owner remembered the key when this gateway did not) is a duplicate too.
   */
  async apply(key: string, apply: () => Promise<Outcome>): Promise<OnceOutcome> {
    const earlier = this.applied.get(key);
    if (earlier !== undefined) return { outcome: await earlier, duplicate: true };
    const pending = apply();
    this.applied.set(key, pending);
    const outcome = await pending;
    if (!outcome.ok) this.applied.delete(key);
    return { outcome, duplicate: outcome.ok && outcome.duplicate === true };
  }
}

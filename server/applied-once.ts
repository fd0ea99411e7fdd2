import { StreamgradError } from '../core/errors.ts';
import { LruMap } from './limits.ts';
import type { Outcome } from './protocol.ts';

/** What `AppliedOnce.apply` ended with: the outcome, and whether it is one of an earlier application. */
export interface OnceOutcome {
  readonly outcome: Outcome;
  readonly duplicate: boolean;
}

/**
 * The key of command `id` of run `run` in an `AppliedOnce`: ids are per run (the same id
 * on two runs is two commands). One form for a server's `CommandLog` and a cluster
 * partition's owner, whose keys travel in its checkpoints (`APPLIED_SECTION`).
 *
 * @example
 * once.apply(commandKey(command.run, command.id), () => applyCommand(run, command));
 */
export function commandKey(run: string, id: string): string {
  // a run id is any string: NUL is the one character no client types in a name
  return `${run}\u0000${id}`;
}

/**
 * The checkpoint section that holds the commands applied to a run (`AppliedOnce.save`): a
 * cluster partition's owner's, and a local served run's (runtime/run-experiment.ts).
 */
export const APPLIED_SECTION = 'commands';

/** One applied command as a checkpoint keeps it: its key (`commandKey`) and the result its ack carried. */
export interface AppliedEntry {
  readonly key: string;
  readonly result: unknown;
}

/** The most keys a saved memory holds (the default capacity): a longer section is refused. */
export const MAX_APPLIED = 10_000;
/** The longest key saved: a run id (256) + NUL + a command id (128), as the protocol bounds them. */
const MAX_KEY = 256 + 1 + 128;
/** The longest result saved, as JSON (a command's result is a few numbers or a checkpoint's path). */
const MAX_RESULT = 1024;

/** One remembered key: its application, and its outcome once it has one. */
interface Remembered {
  readonly pending: Promise<Outcome>;
  outcome?: Outcome;
}

/**
 * The memory behind "applied at most once per id" (MQTT QoS 1): the outcome of every
 * command applied under a key, in a bounded LRU (the newest `capacity` keys). The same key
 * again gets the remembered outcome, marked `duplicate`, without applying anything; a key
 * still being applied makes the second caller wait for the first. Refusals are forgotten,
 * so fixing the cause and resending works. One concept for both places that apply
 * commands: a server's `CommandLog` (every connection of one server), a cluster
 * partition's owner (`PartitionTelemetry`: every gateway of a cluster run), which keeps
 * the memory in each checkpoint it commits (`save`) and whose next owner takes it back
 * (`restore`) before it answers a command, and a served run's own side
 * (`RunPublisher`: the thread that trains it), whose memory goes into the run's
 * checkpoints and comes back on `--resume` the same way.
 *
 * @example
 * const once = new AppliedOnce();
 * await once.apply(commandKey('a', 'c-1'), () => applyCommand(run, command)); // { outcome, duplicate: false }
 * await once.apply(commandKey('a', 'c-1'), () => applyCommand(run, command)); // the same outcome, duplicate: true; not applied again
 */
export class AppliedOnce {
  private readonly applied: LruMap<string, Remembered>;

  /** @param capacity how many keys are remembered (the least recently used go first). */
  constructor(capacity = MAX_APPLIED) {
    this.applied = new LruMap(capacity);
  }

  /**
   * `apply()`'s outcome, unless `key` was applied before or is being applied now: then that
   * outcome, `duplicate: true`. An outcome that itself says `duplicate` (a cluster
   * partition's owner remembered the key when this gateway did not) is a duplicate too.
   */
  async apply(key: string, apply: () => Promise<Outcome>): Promise<OnceOutcome> {
    const earlier = this.applied.get(key);
    if (earlier !== undefined) return { outcome: await earlier.pending, duplicate: true };
    const remembered: Remembered = { pending: apply() };
    this.applied.set(key, remembered);
    const outcome = await remembered.pending;
    remembered.outcome = outcome;
    if (!outcome.ok) this.applied.delete(key);
    return { outcome, duplicate: outcome.ok && outcome.duplicate === true };
  }

  /**
   * `apply` as a command's outcome to pass on (`Outcome`), where a place that applies
   * commands for another one answers: a repeat of `key` is the first outcome marked
   * `duplicate: true`, which the place it goes back to acks as a duplicate
   * (`CommandLog` on a server thread, a gateway).
   *
   * @example
   * const outcome = await once.outcome(commandKey(run.id, command.id), () => applyCommand(run, command));
   */
  async outcome(key: string, apply: () => Promise<Outcome>): Promise<Outcome> {
    const { outcome, duplicate } = await this.apply(key, apply);
    return outcome.ok && duplicate ? { ...outcome, duplicate: true } : outcome;
  }

  /**
   * The applied keys and their results, newest first, for a checkpoint: those whose outcome
   * is known (a command still being applied goes with the next one; refusals are not kept).
   * A result longer than 1,024 characters of JSON is left out (none is: it would be applied
   * again after a failover rather than make the checkpoint unreadable).
   */
  save(): AppliedEntry[] {
    const saved: AppliedEntry[] = [];
    for (const [key, { outcome }] of this.applied.entries()) {
      if (outcome?.ok !== true || key.length > MAX_KEY || JSON.stringify(outcome.result ?? null).length > MAX_RESULT) continue;
      saved.push({ key, result: outcome.result ?? null });
    }
    return saved.reverse();
  }

  /**
   * Takes back a memory `save` wrote (`section`: a checkpoint's; undefined — a checkpoint
   * from before the section existed — remembers nothing). Checked first, as a checkpoint
   * header is (the checksum vouches for the bytes, not for who wrote them): a section that is
   * not a list of at most 10,000 distinct `{key, result}` of the saved bounds is
   * `SG_ERR_CHECKPOINT` naming `field` and the entry, and nothing is remembered. Beyond this
   * memory's capacity the oldest are dropped.
   */
  restore(section: unknown, field = `sections.${APPLIED_SECTION}`): void {
    if (section === undefined) return;
    // annotated, so that the checks after a call narrow (TypeScript's rule for `never` calls)
    const fail: (message: string, at?: string) => never = (message, at = field) => {
      throw new StreamgradError('SG_ERR_CHECKPOINT', `${at}: ${message}`, at);
    };
    if (!Array.isArray(section)) fail('must be a list of applied commands ({key, result})');
    const entries = section as unknown[];
    if (entries.length > MAX_APPLIED) fail(`holds ${entries.length} commands, at most ${MAX_APPLIED}`);
    const keys = new Set<string>();
    entries.forEach((entry, i) => {
      const at = `${field}[${i}]`;
      if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) fail('must be an object {key, result}', at);
      const { key, result, ...rest } = entry as Partial<AppliedEntry>;
      if (Object.keys(rest).length > 0) fail(`has fields other than key and result: ${Object.keys(rest).join(', ')}`, at);
      if (typeof key !== 'string' || !key.includes('\u0000') || key.length > MAX_KEY) fail(`must be a run and a command id (at most ${MAX_KEY} characters), got ${JSON.stringify(key)?.slice(0, 80)}`, `${at}.key`);
      if (keys.has(key)) fail('appears twice', `${at}.key`);
      keys.add(key);
      if (result === undefined || JSON.stringify(result).length > MAX_RESULT) fail(`must be a JSON value of at most ${MAX_RESULT} characters`, `${at}.result`);
    });
    // oldest first, so that the newest end up the most recently used
    for (const { key, result } of [...(entries as AppliedEntry[])].reverse()) {
      const outcome: Outcome = { ok: true, result };
      this.applied.set(key, { pending: Promise.resolve(outcome), outcome });
    }
  }
}

import { resolve } from 'node:path';
import type { Checkpoint } from '../pipeline/checkpoint.ts';
import type { DriftAdaptation } from '../pipeline/drift-adaptation.ts';
import { CheckpointStore } from '../pipeline/checkpoint-store.ts';
import { StreamgradError } from '../core/errors.ts';
import { encodeRunCheckpoint, restoreRun, type ResumePoint } from '../pipeline/run-checkpoint.ts';
import type { AutoCheckpoint, Checkpointer } from '../pipeline/run.ts';
import type { Trainer } from '../core/trainer.ts';
import { ConfigError, oneLine } from './errors.ts';
import { absorbedBy } from './delayed-labels.ts';
import type { CheckpointedState } from './checkpointed-state.ts';
import type { SourceIdentity } from './source-identity.ts';

/** The validated checkpoint options. */
export interface CheckpointSettings {
  readonly dir: string;
  readonly everySteps?: number;
  readonly everySeconds?: number;
  /** Checkpoints kept (default 3). */
  readonly keep: number;
  /** Failed writes in a row that stop training (default 3); fewer are reported and training goes on. */
  readonly maxFailures?: number;
  /** Continue from the newest intact checkpoint in `dir`. */
  readonly resume: boolean;
}

/** Everything a run needs from its checkpoints: pass `checkpoint`, `autoCheckpoint` and `resume` into `RunOptions`. */
export interface RunCheckpoints {
  readonly checkpoint: Checkpointer;
  readonly autoCheckpoint: AutoCheckpoint;
  /** Where a resumed run continues; null for a fresh start. */
  readonly resume: ResumePoint | null;
  /** The checkpoint resumed from (its sections, for the state around the run), or null. */
  readonly resumed: Checkpoint | null;
  /**
   * `resuming from FILE: step N, …`, or null. Said by the caller once the data has been
   * checked to be what the checkpoint read: a refused resume must not say it resumes.
   */
  readonly resumeNote: string | null;
  readonly store: CheckpointStore;
  /** `checkpoints in DIR, newest FILE; N failed writes`, for the closing lines. */
  summary(): Promise<string>;
}

export interface OpenCheckpointsOptions {
  /** The run's name: the checkpoint files' prefix (several runs can share a folder). */
  readonly id: string;
  readonly trainer: Trainer;
  /** The rolling metrics window the run uses (a resume must use the same). */
  readonly window: number;
  /** The run's drift detection, restored from the checkpoint on a resume. */
  readonly drift?: DriftAdaptation;
  /** Describes the data, so that a resume on other data is refused. */
  readonly source: Readonly<Record<string, unknown>>;
  /** Whether a checkpoint's `source` section that is not `source` still describes the same data (a form an older version wrote). */
  readonly accepts?: (saved: unknown) => boolean;
  /** The state around the run; its `save()` is called by every checkpoint. */
  readonly state?: () => CheckpointedState;
  /** What the records read so far are (`SourceFingerprint.identity`), kept as the `sourceIdentity` section so that a resume can check it. */
  readonly identity?: (records: number) => Promise<SourceIdentity | null>;
  readonly say: (line: string) => void;
}

/**
 * Opens the checkpoint folder for one run: removes temporary files a crash left, and with
 * `resume` loads the newest intact checkpoint (newer broken ones are reported and
 * skipped) into `trainer`. Problems a person must fix (another model's checkpoint,
 * other data, every checkpoint broken) are usage errors naming the file.
 */
export async function openCheckpoints(settings: CheckpointSettings, o: OpenCheckpointsOptions): Promise<RunCheckpoints> {
  const store = new CheckpointStore(settings.dir, { keep: settings.keep, prefix: o.id, maxConsecutiveFailures: settings.maxFailures ?? 3 });
  try {
    await store.init();
  } catch (error) {
    throw new ConfigError(`--checkpoint-dir ${settings.dir}: ${oneLine(error)}`, { cause: error });
  }
  let resumed: Checkpoint | null = null;
  let resume: ResumePoint | null = null;
  let resumeNote: string | null = null;
  if (settings.resume) {
    // a refused resume leaves the folder unlocked (a program may go on and try again)
    try {
      ({ resumed, resume, resumeNote } = await resumeFrom(store, settings, o));
    } catch (error) {
      store.close();
      throw error;
    }
  }
  const checkpoint: Checkpointer = async (run) => {
    // A command acts on the run when it arrives (a `step` as the run trains it, just before
    // this boundary), and its outcome reaches the run's memory of applied commands (`state`'s
    // `commands`) through promise callbacks only: after this turn of the event loop, every
    // command whose effect the checkpoint holds has its id saved with it, and none that it
    // does not hold (the rule of a cluster partition's commit, cluster/partition-run.ts). A
    // command that arrives later, while `identity` reads, has its outcome before that read ends.
    await new Promise((resolve) => setImmediate(resolve));
    const identity = await o.identity?.(run.sourceOffset);
    const sections = { source: o.source, ...(identity != null && { sourceIdentity: identity }), ...(o.state?.().save() ?? {}) };
    const path = await store.save(encodeRunCheckpoint(run, { sections }), run.trainer.counters.steps);
    return path ?? { failed: `${store.lastError?.message ?? 'write failed'} (${store.failures} failed so far; training goes on)` };
  };
  return {
    checkpoint,
    autoCheckpoint: {
      ...(settings.everySteps !== undefined && { everySteps: settings.everySteps }),
      ...(settings.everySeconds !== undefined && { everyMs: settings.everySeconds * 1000 }),
    },
    resume,
    resumed,
    resumeNote,
    store,
    async summary() {
      const newest = (await store.list().catch(() => [])).at(-1);
      return `checkpoints in ${settings.dir}${newest === undefined ? ': none written' : `, newest ${newest}`}${store.failures > 0 ? `; ${store.failures} failed writes` : ''}`;
    },
  };
}

/** What a resume found: the checkpoint loaded into the trainer (null: none yet), where the run goes on, and what to say. */
async function resumeFrom(store: CheckpointStore, settings: CheckpointSettings, o: OpenCheckpointsOptions): Promise<{ resumed: Checkpoint | null; resume: ResumePoint | null; resumeNote: string | null }> {
  let loaded;
  try {
    loaded = await store.loadLatest(checkRecordCounters);
  } catch (error) {
    throw new ConfigError(`--resume: ${oneLine(error)}`, { cause: error });
  }
  for (const r of loaded?.refused ?? []) o.say(`refused checkpoint ${r.path}: ${r.error.message}; trying the one before it`);
  if (loaded === null) {
    o.say(`no checkpoint in ${settings.dir} yet: starting from the beginning`);
    return { resumed: null, resume: null, resumeNote: null };
  }
  const where = `--resume ${loaded.path}`;
  const saved = loaded.checkpoint.header.sections.source;
  if (JSON.stringify(saved) !== JSON.stringify(o.source) && o.accepts?.(saved) !== true) {
    throw new ConfigError(`${where}: it was written for other data (${JSON.stringify(saved)}), not ${JSON.stringify(o.source)}`);
  }
  let resume: ResumePoint;
  try {
    resume = restoreRun(loaded.checkpoint, o.trainer, o.window, o.drift);
  } catch (error) {
    throw new ConfigError(`${where}: ${oneLine(error)}`, { cause: error });
  }
  const c = loaded.checkpoint.header.counters;
  return { resumed: loaded.checkpoint, resume, resumeNote: `resuming from ${loaded.path}: step ${c.steps}, ${c.samples} samples trained, ${loaded.checkpoint.header.sourceOffset} records read` };
}

/**
 * The ingestion counters a checkpoint of a record source keeps (`stagesState`) must fit
 * together and with its source offset: every record the run pulled was read by validation
 * and then accepted or rejected, so `read` is the offset (less what a delayed-labels join
 * absorbed, see `absorbedBy`) and `accepted + rejected` is `read`. Anything else cannot come from a run; such a checkpoint counts as corrupt.
 */
function checkRecordCounters(checkpoint: Checkpoint): void {
  const counters = checkpoint.header.sections.counters as Record<string, unknown> | null | undefined;
  if (counters === null || counters === undefined) return;
  const fail = (message: string, field: string): never => {
    throw new StreamgradError('SG_ERR_CHECKPOINT', message, field);
  };
  if (typeof counters !== 'object') fail('sections.counters must be an object', 'sections.counters');
  const n: Record<string, number> = {};
  for (const name of ['read', 'accepted', 'rejected', 'unknownKeys', 'imputed']) {
    const value = counters[name];
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) fail(`sections.counters.${name} must be an integer ≥ 0, got ${JSON.stringify(value)}`, `sections.counters.${name}`);
    n[name] = value as number;
  }
  const offset = checkpoint.header.sourceOffset;
  // with delayed labels, the join took in records it passed on nothing for (yet): a joined pair is one record read
  const absorbed = absorbedBy(checkpoint.header.sections);
  if (n.read + absorbed !== offset) fail(`sourceOffset ${offset} is not the ${n.read} records the ingestion counters read${absorbed > 0 ? ` and the ${absorbed} the label join absorbed` : ''}`, 'sourceOffset');
  if (n.accepted + n.rejected !== n.read) fail(`sections.counters: ${n.accepted} accepted + ${n.rejected} rejected is not the ${n.read} read`, 'sections.counters');
}

/** An absolute path, so that a checkpoint names its data wherever the command runs from. */
export const absolute = (path: string): string => (path === '-' ? '-' : resolve(path));

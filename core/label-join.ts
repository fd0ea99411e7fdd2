import { type ErrorCode, requireConfig, StreamgradError } from './errors.ts';
import type { FeaturePredictor, FeatureTimePrediction } from './feature-time-prediction.ts';
import { cellValue, type FeatureMap } from './features.ts';
import type { IngestRecord, LabelJoinCounters, LabelStats, Origin } from './record.ts';
import { checkTarget } from './sample.ts';

/** Defined beside `LabelStats`, which extends it, so that record.ts imports nothing that imports it. */
export type { LabelJoinCounters } from './record.ts';

/**
 * A record of a delayed-labels stream: features (the default) or, with `stream:
 * 'labels'`, a label that arrives later for the features record of the same id.
 */
export type LabelledRecord = IngestRecord & {
  readonly stream?: 'features' | 'labels';
  /** Set by `mergeLabelled` on a record whose `timeField` was not a usable time (counted as `untimed`). */
  readonly untimed?: true;
};

/** A record that holds a value (not an error). */
type ValueRecord = Extract<IngestRecord, { readonly error?: undefined }>;

/**
 * A record `joinLabels` passes on: a joined sample (the features record's fields and
 * its label's, with the prediction made when the features arrived), or a record to turn
 * away (`error`: validation counts it and writes its dead letter).
 */
export type JoinedRecord = IngestRecord & { readonly prediction?: FeatureTimePrediction };

/**
 * What happens to features whose label did not come in time: `drop` them (counted),
 * write them as dead letters (`SG_ERR_LABEL_TIMEOUT`, the default), or train on them
 * with a `default` label (`defaultLabel`).
 */
export type ExpiredPolicy = 'drop' | 'dead-letter' | 'default';
/** Every expired-features policy, for option parsing and help texts. */
export const EXPIRED_POLICIES: readonly ExpiredPolicy[] = ['drop', 'dead-letter', 'default'];

/** Default `capacity` of the pending map. */
export const DEFAULT_PENDING_CAPACITY = 10_000;
/** Largest `capacity` (and `holdCapacity`). */
export const MAX_PENDING_CAPACITY = 1_000_000;
/**
 * How many ids whose features expired or were turned away a join remembers, per unit of
 * `capacity`: a label that comes after its features were pushed out of a full map (or timed
 * out) is `late` (`SG_ERR_LABEL_TIMEOUT`) as long as its id is among the last
 * `GONE_IDS_PER_CAPACITY × capacity` (at most `MAX_GONE_IDS`) ids gone that way. Their own
 * memory, apart from the joined ids (which are remembered up to `capacity` for duplicate
 * labels): joined ids no longer crowd the expired ones out, and a label may come
 * this many evictions later and still be told apart from an unknown id.
 */
export const GONE_IDS_PER_CAPACITY = 10;
/** The most ids of expired or refused features a join remembers, whatever its capacity (about 100 bytes each, plus the id). */
export const MAX_GONE_IDS = 2_000_000;

/** How many expired or refused ids a join of this capacity remembers (`GONE_IDS_PER_CAPACITY` × capacity, at most `MAX_GONE_IDS`, never fewer than `capacity`). */
export const goneIdsBound = (capacity: number): number => Math.max(capacity, Math.min(GONE_IDS_PER_CAPACITY * capacity, MAX_GONE_IDS));

/**
 * The text a waiting record keeps of its line (`origin.raw`, for its dead letter), and of the
 * names of the fields it keeps without their values (see `keepFields`), in characters.
 */
export const WAITING_RAW_CHARS = 1024;

/** How a `LabelJoin` joins features and labels. Frozen at construction. */
export interface LabelJoinConfig {
  /** The field both records carry that says which features a label is for (a string of at most 256 UTF-16 units, or a whole number within ±2^53 − 1: beyond it, or with a fraction, JSON numbers are rounded, so such ids are refused, as is -0). */
  readonly idField: string;
  /**
   * Features waiting for their labels, at most (default 10 000): one more pushes out the
   * oldest, which then expires (the `expired` policy, counted as `evicted`).
   */
  readonly capacity?: number;
  /**
   * Labels that came before their features, held at most (default: `capacity`); one more
   * pushes out the oldest as an unknown id. 0: such labels are turned away at once.
   */
  readonly holdCapacity?: number;
  /**
   * Time-out by count: an entry (features waiting for a label, or a label waiting for
   * its features) expires once this many *features* records arrived after it.
   * Deterministic: the same data expires the same entries, whatever the machine's speed.
   */
  readonly timeoutSamples?: number;
  /** Time-out by wall clock: an entry expires this long (ms, by `clock`) after it arrived. Checked whenever a record arrives. */
  readonly timeoutMs?: number;
  /** What expired features get (default `dead-letter`). */
  readonly expired?: ExpiredPolicy;
  /** The label fields an expired features record is trained with (`expired: 'default'`), e.g. `{y: [0]}` or `{verdict: 'ok'}`. */
  readonly defaultLabel?: Readonly<Record<string, unknown>>;
  /**
   * The fields of a features record the join keeps while it waits for its label: the
   * model's inputs (`['x']` for positional records). A waiting record keeps these values,
   * its id, the names of its other fields (their values dropped, null; the names only up to
   * `WAITING_RAW_CHARS` in all, for the unknown-key count) and the first `WAITING_RAW_CHARS`
   * of its line for its dead letter; a held label keeps only `labelFields` and its id. So a
   * waiting entry costs the model's inputs and about 4 KiB, whatever the line held (a record
   * with a 2 MB field the model ignores once kept it all). Text (CSV) inputs are kept as the
   * numbers they stand for. Default: every field, whole (a join that knows nothing of the model).
   */
  readonly keepFields?: readonly string[];
  /**
   * The fields a label brings: the model's targets (e.g. `['y']`, or `['verdict']` with named
   * features). A joined record is the features record with these fields taken from the label
   * (and dropped when the label lacks one, so that a stale value in the features never trains);
   * a label's other fields are ignored, so that training sees the very features the prediction
   * was made with, even when a label repeats or alters one (a timestamp, a corrected reading).
   * Default: every field of the label but the id, over the features' (what a join that knows
   * nothing of the model can do).
   */
  readonly labelFields?: readonly string[];
  /**
   * The check of a label that comes before its features (`labelCheck`): its targets as training
   * will read them, or what is wrong with them. Such a label is checked before it is held: one
   * that fails is turned away at once (its error, counted `refusedLabels` and `invalid`), never held, and one that
   * passes is held as its id and these values only (a CSV cell as the number it stands for), so
   * a held label costs the model's targets, whatever its line held. Default: none (a label is
   * held as `labelFields` say; its targets are checked once joined, by validation).
   */
  readonly checkLabel?: LabelCheck;
  /** Milliseconds for `timeoutMs` (default `Date.now`: wall clock, which goes on while a run is down). */
  readonly clock?: () => number;
}

/** A label's targets as training will read them (the fields a held label keeps), or what is wrong with them. */
export type LabelCheck = (label: ValueRecord) => Readonly<Record<string, unknown>> | StreamgradError;

/**
 * The `checkLabel` of a model's join: the targets a label brings, checked as validation will
 * check the joined record — named targets through the feature map (a finite number each, or one
 * of its classes), else `y` as `checkSample` checks it (`outputs` finite numbers). The same
 * checks, not copies: a label held now fails later only if its features do.
 *
 * @example
 * new LabelJoin({ idField: 'id', labelFields: ['y'], checkLabel: labelCheck(trainer.model.outputSize) });
 * labelCheck(3, features)({ value: { id: 7, weather: 'snow' }, origin: {} }); // SG_ERR_TYPE: weather: "snow" is not one of the classes (…)
 */
export function labelCheck(outputs: number, features?: FeatureMap): LabelCheck {
  if (features !== undefined) {
    return (label) => {
      const read = features.labelTargets(label.value as Record<string, unknown>, label.text === true);
      return read.error ?? read.targets;
    };
  }
  return (label) => {
    const y = (label.value as { y?: unknown }).y;
    return checkTarget(y, outputs) ?? { y };
  };
}


/** A features record waiting for its label. */
interface PendingFeatures {
  readonly record: ValueRecord;
  readonly prediction: FeatureTimePrediction;
  /** Features records that had come in before it (its place in the count-based clock). */
  readonly seq: number;
  readonly time: number;
}

/** A label waiting for its features. */
interface HeldLabel {
  readonly record: ValueRecord;
  readonly seq: number;
  readonly time: number;
}

/** What became of an id lately: a second label for it is then a duplicate or late, not unknown. */
type Outcome = 'joined' | 'expired' | 'rejected';

/** `LabelJoin.state()`: everything waiting, as plain JSON (non-finite numbers as strings). */
export interface LabelJoinState {
  readonly version: 1;
  readonly seq: number;
  /** Where the features of the last label joined came (0 in a state written without it). */
  readonly lastJoinedSeq?: number;
  readonly counters: LabelJoinCounters;
  readonly pending: readonly { id: string; record: SavedRecord; prediction: SavedPrediction; seq: number; time: number }[];
  readonly held: readonly { id: string; record: SavedRecord; seq: number; time: number }[];
  readonly recent: readonly [string, Outcome][];
}

interface SavedRecord { value: unknown; origin: Origin; text?: boolean }
interface SavedPrediction { z: (number | string)[]; a: (number | string)[]; user?: (number | string)[]; step: number }

/** The names of the `LabelJoinCounters`, in a fixed order (the `kind` label of `/metrics`' `streamgrad_labels_total`). */
export const LABEL_COUNTER_NAMES = ['features', 'labels', 'joined', 'early', 'outOfOrder', 'expired', 'evicted', 'dropped', 'defaulted', 'deadLettered', 'duplicateFeatures', 'duplicateLabels', 'unknownLabels', 'late', 'invalid', 'untimed', 'unusableId', 'refusedFeatures', 'refusedLabels', 'unreadable'] as const satisfies readonly (keyof LabelJoinCounters)[];

/** The counters that tell apart why records were `invalid`: they add up to it (but for what a join restored from a checkpoint older than them had counted). */
export const INVALID_REASONS = ['unusableId', 'refusedFeatures', 'refusedLabels', 'unreadable'] as const satisfies readonly (keyof LabelJoinCounters)[];

/** Counters a checkpoint may lack, written before they were counted: read as 0. */
const LATER_COUNTERS: readonly string[] = ['untimed', ...INVALID_REASONS];

/** Fresh join counters, all zero. */
export function createLabelJoinCounters(): LabelJoinCounters {
  return Object.fromEntries(LABEL_COUNTER_NAMES.map((n) => [n, 0])) as unknown as LabelJoinCounters;
}

/**
 * Records a join took in and passed on nothing for (yet): two for a joined pair become
 * one, dropped features and everything waiting. A run's source offset is the records the
 * ingestion read plus these (a checkpoint's counters are checked with it).
 */
export function absorbedRecords(c: Pick<LabelJoinCounters, 'joined' | 'dropped'>, waiting: number): number {
  return c.joined + c.dropped + waiting;
}

/**
 * Joins features with labels that arrive later (delayed labels), as a pure state
 * machine: `features(record, predict)` stores the record with the prediction the model
 * makes *now*, `label(record)` joins a label with its waiting features and returns the
 * joined record, carrying that stored prediction, for training; the prequential metrics
 * score the stored prediction, not a later one (MOA's delayed prequential evaluation).
 *
 * Bounded, and nothing vanishes: every record comes out once (joined, or as a record
 * with a typed error for the dead letters), is dropped by the `drop` policy, or waits
 * (`pending`, `held`); `balance()` checks that and the counters say which case it was:
 * - features whose label does not come within `timeoutSamples` features records or
 *   `timeoutMs`, or pushed out of a full map: the `expired` policy (`SG_ERR_LABEL_TIMEOUT`);
 * - a label that comes before its features is held (at most `holdCapacity`, with the same
 *   time-out) and joined when they come; one that never finds them is `SG_ERR_UNKNOWN_ID`;
 *   with `checkLabel`, one whose targets cannot train is turned away at once with that error
 *   (`refusedLabels`); features the model cannot predict on, likewise (`refusedFeatures`);
 * - features with an id already waiting, or a second label for an id: `SG_ERR_DUPLICATE_ID`
 *   (the first stays); a label after its features expired: `SG_ERR_LABEL_TIMEOUT` (late);
 * - labels in another order than their features are joined, and counted (`outOfOrder`:
 *   a label for features older than those of the label joined before it);
 * - a record without a usable id: `SG_ERR_MISSING`/`SG_ERR_TYPE` naming the id field (`unusableId`);
 *   one the source could not read is passed on with its error (`unreadable`). These four are
 *   `invalid` in all.
 *
 * A joined record's value is the features record's fields and the label's (but the id),
 * the label's winning where both have one; its origin is the features record's. The
 * state (waiting records, their predictions, counters) goes into checkpoints.
 *
 * @example
 * const join = new LabelJoin({ idField: 'id', timeoutSamples: 1000 });
 * join.features({ value: { id: 'a', x: [1, 2] }, origin: { line: 1 } }, predict); // []
 * join.label({ value: { id: 'a', y: [3] }, origin: { line: 1 } });              // [{ value: { x: [1, 2], y: [3] }, prediction, origin }]
 * @see joinLabels the operator over it
 */
export class LabelJoin {
  readonly idField: string;
  readonly capacity: number;
  readonly holdCapacity: number;
  readonly timeoutSamples: number;
  readonly timeoutMs: number;
  readonly expiredPolicy: ExpiredPolicy;
  readonly defaultLabel: Readonly<Record<string, unknown>> | null;
  /** `labelFields`, or null: every field of the label. */
  readonly labelFields: readonly string[] | null;
  /** `keepFields`, or null: a waiting record is kept whole. */
  readonly keepFields: readonly string[] | null;
  /** `checkLabel`, or null: a label is held unchecked. */
  private readonly checkLabel: LabelCheck | null;
  readonly counters: LabelJoinCounters = createLabelJoinCounters();
  private readonly clock: () => number;
  private readonly pending = new Map<string, PendingFeatures>();
  private readonly held = new Map<string, HeldLabel>();
  /** The last `capacity` ids joined (insertion order = age): a second label is a duplicate. */
  private readonly recent = new Map<string, Outcome>();
  /** The last `goneIdsBound(capacity)` ids whose features expired or were refused: a label after them is late, or for refused features. */
  private readonly gone = new Map<string, Outcome>();
  /** The bound of `gone`. */
  readonly goneCapacity: number;
  /** Features records that came in so far (the count-based clock). */
  private seq = 0;
  /** Where the features of the last label joined came (labels for older features after it are out of order). */
  private lastJoinedSeq = 0;

  constructor(config: LabelJoinConfig) {
    const { idField, capacity = DEFAULT_PENDING_CAPACITY, timeoutSamples = Infinity, timeoutMs = Infinity, expired = 'dead-letter', defaultLabel } = config;
    requireConfig(typeof idField === 'string' && idField !== '', 'idField', 'must be a non-empty field name');
    const count = (v: number, field: string, min: number) =>
      requireConfig(Number.isSafeInteger(v) && v >= min && v <= MAX_PENDING_CAPACITY, field, `must be an integer from ${min} to ${MAX_PENDING_CAPACITY}, got ${String(v)}`);
    count(capacity, 'capacity', 1);
    const holdCapacity = config.holdCapacity ?? capacity;
    count(holdCapacity, 'holdCapacity', 0);
    requireConfig(timeoutSamples === Infinity || (Number.isSafeInteger(timeoutSamples) && timeoutSamples >= 1), 'timeoutSamples', `must be an integer ≥ 1 (features records), got ${String(timeoutSamples)}`);
    requireConfig(timeoutMs === Infinity || (typeof timeoutMs === 'number' && Number.isFinite(timeoutMs) && timeoutMs > 0), 'timeoutMs', `must be a number of milliseconds > 0, got ${String(timeoutMs)}`);
    requireConfig(EXPIRED_POLICIES.includes(expired), 'expired', `must be one of ${EXPIRED_POLICIES.join(', ')}, got ${String(expired)}`);
    if (expired === 'default') {
      requireConfig(typeof defaultLabel === 'object' && defaultLabel !== null && !Array.isArray(defaultLabel), 'defaultLabel', 'is required with expired: default: the label fields expired features are trained with, e.g. {"y": [0]}');
    }
    this.idField = idField;
    this.capacity = capacity;
    this.goneCapacity = goneIdsBound(capacity);
    this.holdCapacity = holdCapacity;
    this.timeoutSamples = timeoutSamples;
    this.timeoutMs = timeoutMs;
    this.expiredPolicy = expired;
    this.defaultLabel = defaultLabel === undefined ? null : Object.freeze({ ...defaultLabel });
    const { labelFields } = config;
    if (labelFields !== undefined) {
      requireConfig(Array.isArray(labelFields) && labelFields.length > 0 && labelFields.every((f) => typeof f === 'string' && f !== '' && f !== idField), 'labelFields', `must be a non-empty list of field names other than the id field ${JSON.stringify(idField)}`);
    }
    this.labelFields = labelFields === undefined ? null : Object.freeze([...labelFields]);
    const { keepFields } = config;
    if (keepFields !== undefined) requireConfig(Array.isArray(keepFields) && keepFields.every((f) => typeof f === 'string' && f !== ''), 'keepFields', 'must be a list of field names');
    this.keepFields = keepFields === undefined ? null : Object.freeze([...keepFields]);
    requireConfig(config.checkLabel === undefined || typeof config.checkLabel === 'function', 'checkLabel', 'must be a function (e.g. labelCheck(outputs, features))');
    this.checkLabel = config.checkLabel ?? null;
    this.clock = config.clock ?? Date.now;
  }

  /** Features records waiting for their labels now. */
  get waiting(): number {
    return this.pending.size;
  }

  /** Labels waiting for their features now. */
  get holding(): number {
    return this.held.size;
  }

  /** The counters and what waits now, as a new plain object (for `IngestStats.labels`, `/metrics`, summaries). */
  stats(): LabelStats {
    return { ...this.counters, waiting: this.pending.size, holding: this.held.size };
  }

  /**
   * Records in = records out + dropped + waiting: `features + labels = 2·joined +
   * defaulted + deadLettered + dropped + waiting + holding`. Returns the difference (0
   * when nothing vanished).
   */
  balance(): number {
    const c = this.counters;
    return c.features + c.labels - (2 * c.joined + c.defaulted + c.deadLettered + c.dropped + this.pending.size + this.held.size);
  }

  /**
   * A features record: expires what is due, then stores it with `predict(record)` (the
   * model's prediction now) until its label comes, or joins it at once with a label held
   * for it. Returns the records to pass on (joined, expired or turned away).
   */
  features(record: LabelledRecord, predict: FeaturePredictor): JoinedRecord[] {
    this.counters.features++;
    if (record.untimed === true) this.counters.untimed++;
    this.seq++;
    const out: JoinedRecord[] = [];
    this.expire(out);
    const id = this.idOf(record, out);
    if (id === null) return out;
    const valued = record as ValueRecord;
    if (this.pending.has(id)) {
      this.counters.duplicateFeatures++;
      this.reject(out, record.origin, 'SG_ERR_DUPLICATE_ID', `id ${show(id)}: features already waiting for their label (the first are kept)`);
      return out;
    }
    const prediction = predict(record);
    if (prediction instanceof StreamgradError) {
      this.remember(id, 'rejected');
      this.refuse(out, record.origin, prediction, 'refusedFeatures');
      return out;
    }
    const label = this.held.get(id);
    if (label !== undefined) {
      this.held.delete(id);
      this.counters.early++;
      this.join(out, id, valued, prediction, label.record);
      return out;
    }
    if (this.pending.size >= this.capacity) {
      const [oldest, entry] = this.pending.entries().next().value!;
      this.counters.evicted++;
      this.expireFeatures(out, oldest, entry, `pushed out of the full pending map (capacity ${this.capacity}) before its label came`);
    }
    this.recent.delete(id);
    this.gone.delete(id);
    this.pending.set(id, { record: this.waitingFeatures(valued), prediction, seq: this.seq, time: this.clock() });
    return out;
  }

  /** A label record: expires what is due, then joins it with its waiting features, holds it for features still to come, or turns it away. */
  label(record: LabelledRecord): JoinedRecord[] {
    this.counters.labels++;
    if (record.untimed === true) this.counters.untimed++;
    const out: JoinedRecord[] = [];
    this.expire(out);
    const id = this.idOf(record, out);
    if (id === null) return out;
    const valued = record as ValueRecord;
    const entry = this.pending.get(id);
    if (entry !== undefined) {
      if (entry.seq < this.lastJoinedSeq) this.counters.outOfOrder++;
      this.lastJoinedSeq = entry.seq;
      this.pending.delete(id);
      this.join(out, id, entry.record, entry.prediction, valued);
      return out;
    }
    const before = this.recent.get(id) ?? this.gone.get(id);
    if (before === 'joined' || this.held.has(id)) {
      this.counters.duplicateLabels++;
      this.reject(out, record.origin, 'SG_ERR_DUPLICATE_ID', `id ${show(id)}: a second label (the first ${before === 'joined' ? 'was joined' : 'is held for its features'})`);
    } else if (before === 'expired') {
      this.counters.late++;
      this.reject(out, record.origin, 'SG_ERR_LABEL_TIMEOUT', `id ${show(id)}: the label came after its features expired`);
    } else if (before === 'rejected') {
      this.counters.unknownLabels++;
      this.reject(out, record.origin, 'SG_ERR_UNKNOWN_ID', `id ${show(id)}: its features were turned away`);
    } else if (this.holdCapacity === 0) {
      this.counters.unknownLabels++;
      this.reject(out, record.origin, 'SG_ERR_UNKNOWN_ID', `id ${show(id)}: no features with this id are waiting`);
    } else {
      // checked before it is held (and before it pushes out another): a label whose targets
      // cannot train would otherwise wait, up to a line long, for features that cannot use it
      const held = this.heldLabel(valued);
      if (held instanceof StreamgradError) {
        this.refuse(out, record.origin, held, 'refusedLabels');
        return out;
      }
      if (this.held.size >= this.holdCapacity) {
        const [oldest, label] = this.held.entries().next().value!;
        this.held.delete(oldest);
        this.counters.unknownLabels++;
        this.reject(out, label.record.origin, 'SG_ERR_UNKNOWN_ID', `id ${show(oldest)}: no features came for this label before ${this.holdCapacity} later labels pushed it out`);
      }
      this.held.set(id, { record: held, seq: this.seq, time: this.clock() });
    }
    return out;
  }

  /**
   * The end of the stream: every waiting features record expires (by the policy), every
   * held label is an unknown id. Not at a stop: what waits then goes into the checkpoint.
   */
  flush(): JoinedRecord[] {
    const out: JoinedRecord[] = [];
    for (const [id, entry] of [...this.pending]) this.expireFeatures(out, id, entry, 'the stream ended before its label came');
    for (const [id, label] of [...this.held]) {
      this.held.delete(id);
      this.counters.unknownLabels++;
      this.reject(out, label.record.origin, 'SG_ERR_UNKNOWN_ID', `id ${show(id)}: the stream ended before features with this id came`);
    }
    return out;
  }

  /**
   * A stop with nothing to carry what waits (no checkpoint): the waiting features expire by
   * the policy — `drop` counts them dropped; `dead-letter` and `default` turn them away
   * (`SG_ERR_LABEL_TIMEOUT`, saying why: nothing is trained after a stop, so the default
   * label cannot be) — and every held label is an unknown id. A stop with a checkpoint
   * calls nothing: what waits goes into it. Returns the records turned away.
   */
  abandon(): JoinedRecord[] {
    const out: JoinedRecord[] = [];
    const why = 'the run stopped before its label came, and no checkpoint holds it';
    for (const [id, entry] of [...this.pending]) {
      if (this.expiredPolicy === 'drop') {
        this.expireFeatures(out, id, entry, why);
        continue;
      }
      this.pending.delete(id);
      this.counters.expired++;
      this.remember(id, 'expired');
      this.reject(out, entry.record.origin, 'SG_ERR_LABEL_TIMEOUT', `id ${show(id)}: ${why}`);
    }
    for (const [id, label] of [...this.held]) {
      this.held.delete(id);
      this.counters.unknownLabels++;
      this.reject(out, label.record.origin, 'SG_ERR_UNKNOWN_ID', `id ${show(id)}: the run stopped before features with this id came, and no checkpoint holds the label`);
    }
    return out;
  }

  /** Expires every entry that is due now (by count or clock); called by `features` and `label`, and by a timer if one wants. */
  expire(out: JoinedRecord[] = []): JoinedRecord[] {
    const now = this.timeoutMs === Infinity ? 0 : this.clock();
    const due = (e: { seq: number; time: number }) => this.seq - e.seq >= this.timeoutSamples || (this.timeoutMs !== Infinity && now - e.time >= this.timeoutMs);
    // both maps are in arrival order, and so in order of age: the due ones are at the front
    for (const [id, entry] of this.pending) {
      if (!due(entry)) break;
      this.expireFeatures(out, id, entry, 'no label came in time');
    }
    for (const [id, label] of this.held) {
      if (!due(label)) break;
      this.held.delete(id);
      this.counters.unknownLabels++;
      this.reject(out, label.record.origin, 'SG_ERR_UNKNOWN_ID', `id ${show(id)}: no features with this id came in time`);
    }
    return out;
  }

  /** Everything waiting and the counters, as plain JSON, for checkpoints. */
  state(): LabelJoinState {
    return {
      version: 1,
      seq: this.seq,
      lastJoinedSeq: this.lastJoinedSeq,
      counters: { ...this.counters },
      pending: [...this.pending].map(([id, e]) => ({ id, record: saveRecord(e.record), prediction: savePrediction(e.prediction), seq: e.seq, time: e.time })),
      held: [...this.held].map(([id, h]) => ({ id, record: saveRecord(h.record), seq: h.seq, time: h.time })),
      // one list, oldest first within each memory: restore() sorts them back by outcome
      recent: [...this.gone, ...this.recent],
    };
  }

  /** Puts back a `state()` (a resume): what waited waits again, with the predictions made then. Throws `SG_ERR_CHECKPOINT` naming the field for a malformed one, and then changes nothing. */
  restore(state: LabelJoinState): void {
    const bad = (field: string, why: string): never => {
      throw new StreamgradError('SG_ERR_CHECKPOINT', `labels.${field}: ${why}`, `labels.${field}`);
    };
    if (typeof state !== 'object' || state === null || state.version !== 1) bad('version', 'must be 1');
    if (!Number.isSafeInteger(state.seq) || state.seq < 0) bad('seq', 'must be an integer ≥ 0');
    for (const name of LABEL_COUNTER_NAMES) {
      // `untimed` and the reasons of `invalid` came later: a checkpoint from before them has none
      // (its `invalid` then counts more than their sum: the older ones are told apart nowhere)
      const v = LATER_COUNTERS.includes(name) && state.counters?.[name] === undefined ? 0 : state.counters?.[name];
      if (!Number.isSafeInteger(v) || v < 0) bad(`counters.${name}`, `must be an integer ≥ 0, got ${JSON.stringify(v)}`);
    }
    const reasons = INVALID_REASONS.reduce((sum, name) => sum + (state.counters[name] ?? 0), 0);
    if (reasons > state.counters.invalid) bad('counters.invalid', `must be at least the sum of ${INVALID_REASONS.join(', ')} (${reasons}), got ${state.counters.invalid}`);
    if (!Array.isArray(state.pending) || !Array.isArray(state.held) || !Array.isArray(state.recent)) bad('pending', 'pending, held and recent must be arrays');
    const pending = new Map<string, PendingFeatures>();
    state.pending.forEach((e, i) => {
      if (typeof e?.id !== 'string' || !Number.isFinite(e.seq) || !Number.isFinite(e.time)) bad(`pending[${i}]`, 'needs id, seq and time');
      pending.set(e.id, { record: loadRecord(e.record, `pending[${i}].record`, bad), prediction: loadPrediction(e.prediction, `pending[${i}].prediction`, bad), seq: e.seq, time: e.time });
    });
    const held = new Map<string, HeldLabel>();
    state.held.forEach((h, i) => {
      if (typeof h?.id !== 'string' || !Number.isFinite(h.seq) || !Number.isFinite(h.time)) bad(`held[${i}]`, 'needs id, seq and time');
      held.set(h.id, { record: loadRecord(h.record, `held[${i}].record`, bad), seq: h.seq, time: h.time });
    });
    // the bounds hold for a resumed join too: a state of a run with a larger capacity would
    // otherwise hold more than this join ever lets in (and never shrink, as nothing is evicted
    // from a map past full)
    if (pending.size > this.capacity) bad('pending', `${pending.size} features waiting, more than this join's capacity ${this.capacity}`);
    if (held.size > this.holdCapacity) bad('held', `${held.size} labels held, more than this join's holdCapacity ${this.holdCapacity}`);
    state.recent.forEach((r, i) => {
      if (!Array.isArray(r) || typeof r[0] !== 'string' || !['joined', 'expired', 'rejected'].includes(r[1])) bad(`recent[${i}]`, 'must be [id, joined|expired|rejected]');
    });
    // all checked before anything changes: a refused state leaves the join as it was
    this.pending.clear();
    this.held.clear();
    this.recent.clear();
    this.gone.clear();
    for (const [id, e] of pending) this.pending.set(id, e);
    for (const [id, h] of held) this.held.set(id, h);
    // `recent` only remembers outcomes to classify later labels: past its bounds its oldest
    // are forgotten, as they would have been here
    for (const [id, outcome] of state.recent) this.remember(id, outcome);
    this.seq = state.seq;
    this.lastJoinedSeq = Number.isSafeInteger(state.lastJoinedSeq) ? state.lastJoinedSeq! : 0;
    Object.assign(this.counters, Object.fromEntries(LATER_COUNTERS.map((name) => [name, 0])), state.counters);
  }

  private join(out: JoinedRecord[], id: string, features: ValueRecord, prediction: FeatureTimePrediction, label: ValueRecord): void {
    this.counters.joined++;
    this.remember(id, 'joined');
    out.push(this.joined(features, label.value as Record<string, unknown>, prediction, label.text === true));
  }

  private joined(features: ValueRecord, label: Readonly<Record<string, unknown>>, prediction: FeatureTimePrediction, labelText = false): JoinedRecord {
    const value: Record<string, unknown> = { ...(features.value as Record<string, unknown>) };
    // CSV labels for JSON features: the label's text cells become the values they stand for,
    // as the joined record is read as JSON (a JSON label for CSV features needs nothing: text
    // records take JSON numbers too)
    const taken = (field: string) => (labelText && features.text !== true && typeof label[field] === 'string' ? cellValue(label[field] as string) : label[field]);
    if (this.labelFields === null) {
      for (const field of Object.keys(label)) value[field] = taken(field);
    } else {
      for (const field of this.labelFields) {
        const v = Object.hasOwn(label, field) ? taken(field) : undefined;
        if (v !== undefined) value[field] = v;
        else delete value[field];
      }
    }
    delete value[this.idField];
    return { value, origin: features.origin, ...(features.text === true && { text: true }), prediction };
  }

  private expireFeatures(out: JoinedRecord[], id: string, entry: PendingFeatures, why: string): void {
    this.pending.delete(id);
    this.counters.expired++;
    this.remember(id, 'expired');
    switch (this.expiredPolicy) {
      case 'drop':
        this.counters.dropped++;
        break;
      case 'default':
        this.counters.defaulted++;
        out.push(this.joined(entry.record, this.defaultLabel!, entry.prediction));
        break;
      case 'dead-letter':
        this.reject(out, entry.record.origin, 'SG_ERR_LABEL_TIMEOUT', `id ${show(id)}: ${why}`);
        break;
    }
  }

  /** The record's id as a map key (a number and its decimal text are one id: CSV cells are text), or null after turning it away. */
  private idOf(record: IngestRecord, out: JoinedRecord[]): string | null {
    if (record.error !== undefined) {
      this.counters.invalid++;
      this.counters.unreadable++;
      this.counters.deadLettered++;
      out.push(record);
      return null;
    }
    const value = record.value;
    const raw = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>)[this.idField] : undefined;
    if (typeof raw === 'string' && raw !== '' && raw.length <= 256) return raw;
    // a number is an id only where its text is exact and its own: a whole number within 2^53
    // (beyond it, or with a fraction, a JSON number has already lost digits when it gets here:
    // …789 and …790 parse to one double, and joined, two records would take each other's
    // labels), and not -0, whose text is "0"; as a string any of them keeps its digits
    if (Number.isSafeInteger(raw) && !Object.is(raw, -0)) return String(raw);
    this.counters.invalid++;
    this.counters.unusableId++;
    const missing = raw === undefined || raw === '';
    const asString = `; send it as a string ("${this.idField}": "…")`;
    const why = missing ? 'missing (the id that joins features and labels)'
      : typeof raw !== 'number' || !Number.isFinite(raw) ? `must be a string (at most 256 UTF-16 units, as JavaScript counts length) or a whole number within ±${Number.MAX_SAFE_INTEGER} (the id that joins features and labels)`
      : Math.abs(raw) > Number.MAX_SAFE_INTEGER ? `the number ${raw} is beyond ±${Number.MAX_SAFE_INTEGER} (2^53 − 1), where JSON numbers are rounded and distinct ids become one${asString}`
      : raw === 0 ? `the number -0 is read as 0, so it would take the label of id 0${asString}`
      : `the number ${raw} is not a whole number: a fraction keeps about 17 significant digits once JSON is read (3.14159265358979323 and …324 become one number), so distinct ids could become one${asString}`;
    this.reject(out, record.origin, missing ? 'SG_ERR_MISSING' : 'SG_ERR_TYPE', `${this.idField}: ${why}`);
    return null;
  }

  /** What a features record keeps while it waits (`keepFields`): its inputs, its id, the names of its other fields, the start of its line. */
  private waitingFeatures(record: ValueRecord): ValueRecord {
    if (this.keepFields === null) return record;
    const fields = record.value as Record<string, unknown>;
    const value: Record<string, unknown> = { [this.idField]: fields[this.idField] };
    let names = 0;
    for (const key of Object.keys(fields)) {
      if (key === this.idField) continue;
      if (this.keepFields.includes(key)) {
        // the predictor took it, so a text cell is a number or empty (missing): kept as such
        const v = record.text === true && typeof fields[key] === 'string' ? cellValue(fields[key] as string) : fields[key];
        value[key] = v === undefined ? '' : v;
      } else if ((names += key.length) <= WAITING_RAW_CHARS) value[key] = null;
    }
    return { value, origin: waitingOrigin(record.origin), ...(record.text === true && { text: true as const }) };
  }

  /**
   * What a label keeps while it waits for its features: its id and its targets as `checkLabel`
   * read them (or what is wrong with them), else the fields the join takes (`labelFields`).
   */
  private heldLabel(record: ValueRecord): ValueRecord | StreamgradError {
    const fields = record.value as Record<string, unknown>;
    const id = fields[this.idField];
    if (this.checkLabel !== null) {
      const targets = this.checkLabel(record);
      // values, not text: a CSV cell is held as its number (joined, it is taken as a JSON value)
      return targets instanceof StreamgradError ? targets : { value: { ...targets, [this.idField]: id }, origin: waitingOrigin(record.origin) };
    }
    if (this.labelFields === null) return record;
    const value: Record<string, unknown> = { [this.idField]: id };
    for (const key of this.labelFields) if (Object.hasOwn(fields, key)) value[key] = fields[key];
    return { value, origin: waitingOrigin(record.origin), ...(record.text === true && { text: true as const }) };
  }

  /** A record whose check failed (`predict`, `checkLabel`), turned away with that check's error: counted `invalid` and by its side. */
  private refuse(out: JoinedRecord[], origin: Origin, error: StreamgradError, side: 'refusedFeatures' | 'refusedLabels'): void {
    this.counters.invalid++;
    this.counters[side]++;
    this.counters.deadLettered++;
    out.push({ error, origin });
  }

  private reject(out: JoinedRecord[], origin: Origin, code: ErrorCode, message: string, field = this.idField): void {
    this.counters.deadLettered++;
    out.push({ error: new StreamgradError(code, message, field), origin });
  }

  private remember(id: string, outcome: Outcome): void {
    this.recent.delete(id);
    this.gone.delete(id);
    const [memory, bound] = outcome === 'joined' ? [this.recent, this.capacity] : [this.gone, this.goneCapacity];
    memory.set(id, outcome);
    if (memory.size > bound) memory.delete(memory.keys().next().value!);
  }
}

/** An origin with at most `WAITING_RAW_CHARS` of its text (marked cut when it had more). */
function waitingOrigin(origin: Origin): Origin {
  const raw = origin.raw;
  if (raw === undefined || raw.length <= WAITING_RAW_CHARS) return origin;
  return { ...origin, raw: detached(raw.slice(0, WAITING_RAW_CHARS)), rawCut: true };
}

/**
 * A copy of `text` that does not hold on to the string it was cut from: V8 makes a slice of a
 * long string a view of it, and a view of a 2 MB line would keep the whole line alive.
 */
const detached = (text: string): string => text.split('').join('');

const show = (id: string): string => JSON.stringify(id.length > 40 ? `${id.slice(0, 40)}…` : id);

const saveNumbers = (v: Float64Array): (number | string)[] => Array.from(v, (e) => (Number.isFinite(e) ? e : String(e)));

function loadNumbers(v: unknown, field: string, bad: (field: string, why: string) => never): Float64Array {
  if (!Array.isArray(v)) bad(field, 'must be an array of numbers');
  return Float64Array.from(v as unknown[], (e, i) => {
    if (typeof e === 'number') return e;
    if (e === 'NaN' || e === 'Infinity' || e === '-Infinity') return Number(e);
    return bad(`${field}[${i}]`, `must be a number, got ${JSON.stringify(e)}`);
  });
}

function saveRecord(r: ValueRecord): SavedRecord {
  return { value: r.value, origin: r.origin, ...(r.text === true && { text: true }) };
}

function loadRecord(r: SavedRecord | undefined, field: string, bad: (field: string, why: string) => never): ValueRecord {
  if (typeof r !== 'object' || r === null || typeof r.origin !== 'object' || r.origin === null || !('value' in r)) bad(field, 'needs value and origin');
  return { value: r!.value, origin: r!.origin, ...(r!.text === true && { text: true }) };
}

function savePrediction(p: FeatureTimePrediction): SavedPrediction {
  return { z: saveNumbers(p.z), a: saveNumbers(p.a), ...(p.user !== undefined && { user: saveNumbers(p.user) }), step: p.step };
}

function loadPrediction(p: SavedPrediction | undefined, field: string, bad: (field: string, why: string) => never): FeatureTimePrediction {
  if (typeof p !== 'object' || p === null || !Number.isSafeInteger(p.step)) bad(field, 'needs z, a and step');
  const z = loadNumbers(p!.z, `${field}.z`, bad), a = loadNumbers(p!.a, `${field}.a`, bad);
  return p!.user === undefined ? { z, a, step: p!.step } : { z, a, user: loadNumbers(p!.user, `${field}.user`, bad), step: p!.step };
}

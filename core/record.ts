import type { ErrorCode, StreamgradError } from './errors.ts';

/**
 * Where a record came from, so that a rejection can name it: the line of a file, the id
 * of a message, the MQTT topic, and the text as it arrived.
 */
export interface Origin {
  /** What produced it: `csv`, `ndjson`, `stdin`, `mqtt`, `ws`, `replay`, ... */
  readonly source?: string;
  /** 1-based line number in a file or stream (a CSV record's first line). */
  readonly line?: number;
  /** Id of a message (MQTT: `topic#n`; WebSocket ingest: `connection:message[.index]`). */
  readonly messageId?: string;
  readonly topic?: string;
  /** The line or payload as it arrived. */
  readonly raw?: string;
  /** `raw` is only the start of the text (a record kept while it waits for its label keeps its first `WAITING_RAW_CHARS`): its dead letter says `truncated`. */
  readonly rawCut?: true;
}

/**
 * What every source emits: a value to be checked and mapped to a sample, with its
 * origin; or, when the source could not even parse it (a line that is not JSON, a CSV
 * record with a stray quote), the error. `text` marks values whose fields are text
 * cells (CSV): their numbers are parsed strictly, `""` is missing.
 */
export type IngestRecord =
  | { readonly value: unknown; readonly origin: Origin; readonly text?: boolean; readonly error?: undefined }
  | { readonly error: StreamgradError; readonly origin: Origin; readonly value?: undefined };

/** Running totals of an ingestion stage, for metrics and the `trained + rejected = read` check. */
export interface IngestCounters {
  /** Records that reached validation. */
  read: number;
  /** Records that passed as samples. */
  accepted: number;
  /** Records turned away (each also written as a dead letter). */
  rejected: number;
  readonly rejectedByCode: Partial<Record<ErrorCode, number>>;
  /** Keys of named records that are neither a feature nor a target (ignored). */
  unknownKeys: number;
  /** Missing feature values filled in by the missing-value policy. */
  imputed: number;
}

/** Fresh ingestion counters, all zero. */
export function createIngestCounters(): IngestCounters {
  return { read: 0, accepted: 0, rejected: 0, rejectedByCode: {}, unknownKeys: 0, imputed: 0 };
}

/** A snapshot of a run's ingestion, for metrics: the counters plus what the live source's queue dropped. */
export interface IngestStats {
  readonly read: number;
  readonly accepted: number;
  readonly rejected: number;
  readonly unknownKeys: number;
  readonly imputed: number;
  /** Samples lost to a bounded queue's overflow policy (live sources; 0 for files). */
  readonly dropped: number;
  /** Delayed labels: the join's counters and what waits (with `joinLabels` in front of ingestion). */
  readonly labels?: LabelStats;
}

/** What a `LabelJoin` counted. Every record that came in is in exactly one place: see `LabelJoin.balance`. */
export interface LabelJoinCounters {
  /** Features records that came in. */
  features: number;
  /** Label records that came in. */
  labels: number;
  /** Features joined with their label and passed on to train. */
  joined: number;
  /** Of those, joined with a label that came before its features (held until they came). */
  early: number;
  /** Of those, joined with a label that came out of the order of the features: for features older than those of the label joined before it. */
  outOfOrder: number;
  /** Features whose label did not come in time (time-out or capacity), whatever the policy. */
  expired: number;
  /** Of those, pushed out of a full pending map. */
  evicted: number;
  /** Expired features dropped (`drop`). */
  dropped: number;
  /** Expired features trained with the default label (`default`). */
  defaulted: number;
  /** Records this stage turned away (each one a dead letter downstream). */
  deadLettered: number;
  /** Features records with an id already waiting (the first one is kept). */
  duplicateFeatures: number;
  /** Second labels for one id (after the first was joined, or while it was held). */
  duplicateLabels: number;
  /** Labels whose features never came while they were held (or could not be held), or whose features were turned away. */
  unknownLabels: number;
  /** Labels that came after their features had expired. */
  late: number;
  /**
   * Records turned away before they could wait or join, whatever the reason: the sum of
   * `unusableId`, `refusedFeatures`, `refusedLabels` and `unreadable` (which tell the
   * reasons apart; a join restored from a checkpoint written before they were counted has
   * its older ones in this total only).
   */
  invalid: number;
  /** Of `invalid`: records without a usable id (missing, empty, or not a string nor a whole number within ±2^53 − 1): `SG_ERR_MISSING`/`SG_ERR_TYPE` naming the id field. */
  unusableId: number;
  /** Of `invalid`: features records the model cannot predict on (a missing feature, NaN, a wrong type), turned away with that error. */
  refusedFeatures: number;
  /** Of `invalid`: labels that came before their features with targets training cannot take (`checkLabel`), turned away with that error instead of being held. */
  refusedLabels: number;
  /** Of `invalid`: records the source could not read (a line that is not JSON, …), passed on with the source's error. */
  unreadable: number;
  /**
   * Records of a merge by time (`mergeLabelled` with `timeField`) whose time was missing,
   * not a number (or numeric text) or not finite: kept, in the place of the record before
   * them in their own source, and counted here (they are joined or turned away as any other).
   */
  untimed: number;
}

/** What a delayed-labels join (`LabelJoin`) counted, and how many features and labels wait now. */
export type LabelStats = Readonly<LabelJoinCounters> & {
  /** Features waiting for their labels. */
  readonly waiting: number;
  /** Labels waiting for their features. */
  readonly holding: number;
};

/** The `IngestStats` of `counters` and, for a live source, its queue's `dropped` (and, with delayed labels, the join's figures). */
export function ingestStats(counters: IngestCounters, dropped: () => number = () => 0, labels?: () => LabelStats): () => IngestStats {
  return () => ({
    read: counters.read,
    accepted: counters.accepted,
    rejected: counters.rejected,
    unknownKeys: counters.unknownKeys,
    imputed: counters.imputed,
    dropped: dropped(),
    ...(labels !== undefined && { labels: labels() }),
  });
}

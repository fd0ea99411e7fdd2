import { StreamgradError } from '../core/errors.ts';
import { absorbedRecords, type ExpiredPolicy, INVALID_REASONS, type LabelJoin, type LabelJoinConfig, type LabelJoinCounters, type LabelJoinState } from '../core/label-join.ts';
import type { LabelStats } from '../core/record.ts';
import type { CheckpointedState } from './checkpointed-state.ts';

/** The validated delayed-labels options. */
export interface LabelSettings {
  /** `--labels FILE|-`; undefined with `--labels-topic`. */
  readonly file?: string;
  readonly format: 'ndjson' | 'csv';
  /** `--labels-topic`: the MQTT topic filters labels come on. */
  readonly topics?: readonly string[];
  /** `--labels ingest`: labels come to the live server's `/ingest`. */
  readonly ingest?: true;
  readonly timeField?: string;
  readonly join: Omit<LabelJoinConfig, 'clock' | 'checkLabel'>;
}

/** The `labels` section of a checkpoint: everything waiting, with the predictions made when the features came. */
export function labelsState(join: LabelJoin): CheckpointedState {
  return {
    save: () => ({ labels: join.state() }),
    restore(sections) {
      const saved = sections.labels as LabelJoinState | undefined;
      if (saved != null) join.restore(saved);
    },
  };
}

/** The states given (undefined: none) in one checkpoint, their sections side by side. */
export function combineStates(...states: readonly (CheckpointedState | undefined)[]): CheckpointedState {
  const all = states.filter((state): state is CheckpointedState => state !== undefined);
  if (all.length === 1) return all[0];
  return {
    save: () => Object.assign({}, ...all.map((state) => state.save())),
    restore(sections) {
      for (const state of all) state.restore(sections);
    },
  };
}

/**
 * Records of the source a checkpoint's `labels` section says the join took in without
 * passing them on to validation (0 without one): the source offset is what validation
 * read plus these.
 */
export function absorbedBy(sections: Readonly<Record<string, unknown>>): number {
  const saved = sections.labels as Partial<LabelJoinState> | null | undefined;
  if (saved == null || typeof saved !== 'object') return 0;
  const c = saved.counters as Partial<LabelJoinCounters> | undefined;
  const fine = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (c === undefined || !fine(c.joined) || !fine(c.dropped) || !Array.isArray(saved.pending) || !Array.isArray(saved.held)) {
    throw new StreamgradError('SG_ERR_CHECKPOINT', 'sections.labels: needs counters (joined, dropped), pending and held', 'sections.labels');
  }
  return absorbedRecords({ joined: c.joined!, dropped: c.dropped! }, saved.pending.length + saved.held.length);
}

/** `labels: 120 joined (5 early, 7 out of order); 3 expired (…); …; 4 waiting`, for the closing lines. */
export function labelSummary(s: LabelStats, policy: ExpiredPolicy): string {
  const what = policy === 'drop' ? `${s.dropped} dropped` : policy === 'default' ? `${s.defaulted} trained with the default label` : 'dead-lettered';
  return `labels: ${s.features} features and ${s.labels} labels in; ${s.joined} joined (${s.early} early, ${s.outOfOrder} out of order); `
    + `${s.expired} expired (${what}${s.evicted > 0 ? `, ${s.evicted} pushed out of the full map` : ''}); `
    + `${s.duplicateFeatures} duplicate features, ${s.duplicateLabels} duplicate labels, ${s.unknownLabels} unknown ids, ${s.late} late labels, ${invalidSummary(s)}; `
    + `${s.waiting} features and ${s.holding} labels waiting`
    // only when some: a merge by time with every time usable says nothing more
    + (s.untimed > 0 ? `; ${s.untimed} without a usable time (kept in their place)` : '');
}

/** The words of the summary for each reason the join counts a record `invalid`. */
const INVALID_WORDS: Readonly<Record<(typeof INVALID_REASONS)[number], string>> = {
  unusableId: 'without a usable id',
  refusedFeatures: 'features the model cannot predict on',
  refusedLabels: 'early labels with targets that cannot train',
  unreadable: 'unreadable',
};

/**
 * `3 invalid (1 without a usable id, 2 features the model cannot predict on)`: the join's
 * `invalid` total and the reasons it counted (those above 0); what a join resumed from a
 * checkpoint written before the reasons were counted cannot tell apart is said as such.
 */
export function invalidSummary(s: LabelStats): string {
  const parts = INVALID_REASONS.filter((r) => s[r] > 0).map((r) => `${s[r]} ${INVALID_WORDS[r]}`);
  const untold = s.invalid - INVALID_REASONS.reduce((sum, r) => sum + s[r], 0);
  if (untold > 0) parts.push(`${untold} counted before a resume from an older checkpoint, reasons not kept`);
  return parts.length === 0 ? `${s.invalid} invalid` : `${s.invalid} invalid (${parts.join(', ')})`;
}

/**
 * The ingestion settings of a run with delayed labels: the id field (a CSV of features
 * then needs no target columns) and, with `--labels-topic`, those topics subscribed to
 * besides the features' (one MQTT session carries both).
 */
export function withDelayedLabels<S extends { readonly mqtt?: { readonly topics: readonly string[] } }>(ingest: S, labels: LabelSettings | undefined): S {
  if (labels === undefined) return ingest;
  const delayed = { idField: labels.join.idField, ...(labels.file !== undefined && { labelsFile: labels.file }) };
  const mqtt = ingest.mqtt === undefined || labels.topics === undefined ? ingest.mqtt : { ...ingest.mqtt, topics: [...ingest.mqtt.topics, ...labels.topics] };
  return { ...ingest, delayed, ...(mqtt !== undefined && { mqtt }) };
}


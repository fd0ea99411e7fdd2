import type { TrainerCounters } from '../core/trainer.ts';
import { mqttSummary } from '../runtime/ingestion.ts';
import { labelSummary } from '../runtime/delayed-labels.ts';
import { type RecordNoun, rejectedSummary } from '../runtime/rejections.ts';
import type { ExperimentResult } from '../runtime/run-experiment.ts';
import { formatMetrics, formatRate, formatSeconds, formatTrained } from './format.ts';
import type { TrainSettings } from './train-config.ts';

/** The trainer's counters when training began (after a resume: the checkpoint's). */
export type CountersAtStart = Pick<TrainerCounters, 'samples' | 'steps' | 'skipped' | 'skippedSamples'>;

/**
 * `streamgrad train`'s closing lines, from how the experiment its options compile into
 * (`trainExperiment`) ended: what was trained since the start (or the checkpoint), what
 * was rejected in the source's own nouns (lines, rows, messages), ignored fields and
 * imputed values, MQTT and label-join figures, dead letters, the rolling and whole-stream
 * metrics, predictions, the saved model (or the diverged one) and the checkpoints — the
 * lines train prints, word for word, so that it can run on the runtime.
 *
 * @example
 * for (const line of trainSummary(result, settings, before, { interrupted: false })) progress.summary(line);
 */
export function trainSummary(result: ExperimentResult, settings: Pick<TrainSettings, 'batch' | 'loss' | 'ingest'>, before: CountersAtStart, how: { readonly interrupted: boolean }): string[] {
  const lines: string[] = [];
  const [m] = result.models;
  const c = m.trainer.counters;
  const samples = c.samples - before.samples;
  const elapsed = result.elapsedMs;
  if (how.interrupted) lines.push(`interrupted after ${c.samples} samples`);
  const sinceResume = before.steps > 0 ? ` since the checkpoint (${c.samples} samples, ${c.steps} steps in all)` : '';
  const sinceStart = { samples, skipped: c.skipped - before.skipped, skippedSamples: c.skippedSamples - before.skippedSamples };
  lines.push(`${formatTrained(sinceStart)} in ${c.steps - before.steps} steps (batch ${settings.batch}) in ${formatSeconds(elapsed)}, ${formatRate(elapsed > 0 ? (samples * 1000) / elapsed : NaN)}${sinceResume}`);
  const i = result.ingest;
  const noun: RecordNoun = settings.ingest.mqtt !== undefined ? 'message' : settings.ingest.format === 'csv' ? 'row' : 'line';
  lines.push(`rejected ${rejectedSummary(i?.rejected ?? 0, i?.byCode.SG_ERR_BAD_JSON ?? 0, noun)}; skipped ${c.skipped} step${c.skipped === 1 ? '' : 's'} for non-finite values`);
  if (i !== null && i.unknownKeys + i.imputed + i.dropped > 0) {
    lines.push(`ignored ${i.unknownKeys} unknown field${i.unknownKeys === 1 ? '' : 's'} (${i.unusedFields.join(', ')}); imputed ${i.imputed} missing value${i.imputed === 1 ? '' : 's'}; queue dropped ${i.dropped}`);
  }
  if (result.mqtt !== undefined) lines.push(mqttSummary(result.mqtt));
  if (m.labels !== undefined) lines.push(labelSummary(m.labels.stats, m.labels.expired));
  if (settings.ingest.deadLetter !== undefined) lines.push(`dead letters in ${settings.ingest.deadLetter}`);
  lines.push(`rolling over the last ${m.metrics.count} samples: ${formatMetrics(m.metrics, settings.loss, m.units)}${c.clipped > 0 ? `; ${c.clipped} steps clipped` : ''}`);
  lines.push(`whole stream, ${m.cumulative.count} samples: ${formatMetrics(m.cumulative, settings.loss, m.units)}`);
  if (result.predictions !== undefined) lines.push(`predictions of ${result.predictions.lines} samples in ${result.predictions.shown}`);
  if (m.savedNote !== undefined && (m.saved !== undefined || m.savedNote.startsWith('diverged'))) lines.push(m.savedNote);
  if (m.checkpoints !== undefined) lines.push(m.checkpoints);
  return lines;
}

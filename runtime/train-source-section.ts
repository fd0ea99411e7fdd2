import { absolute } from './checkpointing.ts';
import type { LabelsPlan } from './experiment-labels.ts';
import type { SourcePlan } from './experiment-plan.ts';

/**
 * Whether a checkpoint's `source` section in the form `streamgrad train` wrote before it
 * ran on the experiment runtime — `{data, format, features, targets, classes}` or
 * `{mqtt, topics}`, then its labels' `{labels, idField}` — describes the data `source`
 * (and `labels`) read. Such checkpoints (train's older ones, and the fixtures made with
 * them) resume under the runtime, which writes its own form (`checkpointSource`).
 *
 * `features` or `classes` null meant "the CSV header's columns" and "the classes found in
 * the file": the plan has derived them from the same file, so either form is the same
 * data (whose contents the resume checks against the checkpoint's source fingerprint).
 *
 * @example
 * if (!sameJson(saved, checkpointSource(plan.source)) && !isTrainSourceOf(saved, plan.source, plan.labels)) refuse();
 */
export function isTrainSourceOf(saved: unknown, source: SourcePlan, labels?: LabelsPlan): boolean {
  const shown = JSON.stringify(saved);
  return trainForms(source, labels).some((form) => JSON.stringify(form) === shown);
}

/** The forms train may have written for this source (each choice of null for features and classes). */
function trainForms(source: SourcePlan, labels: LabelsPlan | undefined): Record<string, unknown>[] {
  const labelled = labels === undefined ? {} : {
    labels: labels.ingest === true ? { ingest: true } : labels.file === undefined ? { topics: labels.topics } : { file: absolute(labels.file.path), format: labels.file.format, timeField: labels.timeField ?? null },
    idField: labels.join.idField,
  };
  switch (source.kind) {
    case 'mqtt':
      // train subscribed to the labels' topics with the features' (after them)
      return [{ mqtt: source.url, topics: [...source.topics, ...(labels?.topics ?? [])], ...labelled }];
    case 'csv':
    case 'ndjson':
    case 'stdin': {
      const r = source.records;
      const data = source.kind === 'stdin' ? '-' : absolute(source.file.path);
      const format = source.kind === 'stdin' ? source.format : source.kind;
      const forms: Record<string, unknown>[] = [];
      for (const features of new Set([r.features ?? null, null])) {
        for (const classes of new Set([r.classes ?? null, null])) forms.push({ data, format, features, targets: r.targets ?? null, classes, ...labelled });
      }
      return forms;
    }
    default:
      return [];
  }
}

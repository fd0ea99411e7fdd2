import { StreamgradError } from '../core/errors.ts';
import { createModel, type Topology } from '../core/model.ts';
import { jsKernels } from '../core/kernels-js.ts';
import { preprocessingFromJSON, preprocessingToJSON } from '../pipeline/model-artifact.ts';
import { LABEL_PATTERN, type LabelsSnapshot, type SavedVersion } from './model-versions.ts';

/**
 * A model's version labels as JSON: what a run's checkpoint (its `versions` section) and
 * `streamgrad serve`'s state file (`FILE.labels.json`) hold, so that `stable` answers after
 * a restart exactly as before it — the same version number, step, samples, time and
 * weights (`ModelVersions.saveLabels` / `restoreLabels`). Weights are written as JSON
 * numbers, which read back bit for bit.
 *
 * @example
 * const doc = labelsToJSON(versions.saveLabels());
 * // …after the restart:
 * store.restoreLabels(labelsFromJSON(doc, topology));
 */

/** The format tag of the document. */
export const VERSION_LABELS_FORMAT = 'streamgrad/version-labels@1';

/** The document `labelsToJSON` writes. */
export interface VersionLabelsDocument {
  readonly format: typeof VERSION_LABELS_FORMAT;
  readonly next: number;
  readonly latest: number | null;
  readonly labels: Readonly<Record<string, readonly number[]>>;
  readonly versions: readonly {
    readonly version: number;
    readonly step: number;
    readonly samples: number;
    readonly time: number;
    readonly checkpoint?: string;
    readonly params: readonly number[];
    readonly preprocessing: Record<string, unknown> | null;
  }[];
}

/** A snapshot of a model's labels as a JSON document. */
export function labelsToJSON(snapshot: LabelsSnapshot): VersionLabelsDocument {
  return {
    format: VERSION_LABELS_FORMAT,
    next: snapshot.next,
    latest: snapshot.latest,
    labels: snapshot.labels,
    versions: snapshot.versions.map((v) => ({
      version: v.info.version, step: v.info.step, samples: v.info.samples, time: v.info.time,
      ...(v.checkpoint !== undefined && { checkpoint: v.checkpoint }),
      params: Array.from(v.params),
      preprocessing: v.preprocessing === null ? null : preprocessingToJSON(v.preprocessing),
    })),
  };
}

/**
 * Reads a document `labelsToJSON` wrote, checked against the model's `topology` (a
 * document of another model, or a damaged one, is `SG_ERR_CHECKPOINT` naming the field
 * under `at`).
 */
export function labelsFromJSON(doc: unknown, topology: Topology, at = 'versions'): LabelsSnapshot {
  const fail = (field: string, message: string): never => {
    throw new StreamgradError('SG_ERR_CHECKPOINT', `${at}${field}: ${message}`, `${at}${field}`);
  };
  const count = (v: unknown, field: string, least = 0): number => (Number.isSafeInteger(v) && (v as number) >= least ? v as number : fail(field, `must be an integer ≥ ${least}`));
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return fail('', 'must be an object');
  const d = doc as Record<string, unknown>;
  if (d.format !== VERSION_LABELS_FORMAT) fail('.format', `must be ${VERSION_LABELS_FORMAT}`);
  const next = count(d.next, '.next', 1);
  const latest = d.latest === null ? null : count(d.latest, '.latest', 1);
  if (typeof d.labels !== 'object' || d.labels === null || Array.isArray(d.labels)) fail('.labels', 'must be an object');
  const labels: Record<string, number[]> = {};
  for (const [label, history] of Object.entries(d.labels as Record<string, unknown>)) {
    if (!LABEL_PATTERN.test(label)) fail('.labels', `${JSON.stringify(label.slice(0, 40))} is not a label`);
    if (!Array.isArray(history) || history.length === 0) fail(`.labels.${label}`, 'must be a non-empty array of version numbers');
    labels[label] = (history as unknown[]).map((n, i) => count(n, `.labels.${label}[${i}]`, 1));
  }
  if (!Array.isArray(d.versions)) fail('.versions', 'must be an array');
  const model = createModel(topology, jsKernels);
  const versions: SavedVersion[] = (d.versions as unknown[]).map((raw, i) => {
    const field = `.versions[${i}]`;
    if (typeof raw !== 'object' || raw === null) return fail(field, 'must be an object');
    const v = raw as Record<string, unknown>;
    const time = typeof v.time === 'number' && Number.isFinite(v.time) ? v.time : fail(`${field}.time`, 'must be a number');
    if (!Array.isArray(v.params) || v.params.length !== model.params.length) fail(`${field}.params`, `must hold the model's ${model.params.length} parameters`);
    const params = Float64Array.from(v.params as unknown[], (p, j) => (typeof p === 'number' && Number.isFinite(p) ? p : fail(`${field}.params[${j}]`, 'must be a finite number')));
    if (v.checkpoint !== undefined && typeof v.checkpoint !== 'string') fail(`${field}.checkpoint`, 'must be a path');
    return {
      info: { model: '', version: count(v.version, `${field}.version`, 1), step: count(v.step, `${field}.step`), samples: count(v.samples, `${field}.samples`), time },
      ...(typeof v.checkpoint === 'string' && { checkpoint: v.checkpoint }),
      params,
      preprocessing: v.preprocessing === null ? null : preprocessingFromJSON(v.preprocessing, model, `${at}${field}.preprocessing`),
    };
  });
  return { next, latest, labels, versions };
}

import type { Checkpoint } from './checkpoint.ts';
import { modelFromCheckpoint } from './checkpoint.ts';
import { StreamgradError } from '../core/errors.ts';
import { FeatureMap, MISSING_POLICIES, type MissingPolicy } from '../core/features.ts';
import type { Model } from '../core/model.ts';
import { type ModelDocument, modelFromJSON, modelToJSON } from './model-file.ts';
import { Normalizer } from '../core/normalizer.ts';
import { RunningStats, type RunningStatsState } from '../core/welford.ts';

/**
 * The preprocessing a model was trained with: everything needed to turn a user's record
 * into the network's input and its output back into the user's units. Learned state
 * (imputation and normaliser statistics) is the final state of training, applied frozen.
 */
export interface Preprocessing {
  /** Named inputs in model order (`x[i]` is the field `features[i]`), or null: positional `{"x": [...]}` vectors. */
  readonly features: readonly string[] | null;
  /** Named targets (with `classes`: the one column of labels); null with positional data. */
  readonly targets: readonly string[] | null;
  /** Class labels in output order (the one-hot encoding of `targets[0]`), or null. */
  readonly classes: readonly string[] | null;
  /** Per feature: what a missing value gets (null with positional data). */
  readonly missing: readonly MissingPolicy[] | null;
  /** Per feature: values seen, their mean, the last one (null before any): what `mean` / `last` impute. */
  readonly imputation: {
    readonly seen: readonly number[];
    readonly mean: readonly number[];
    readonly last: readonly (number | null)[];
  } | null;
  /** The online standardisation, or null when the model saw raw values. */
  readonly normalizer: {
    /** Samples before values were divided by their sd (only centred before). */
    readonly warmup: number;
    /** The z-score clip; Infinity (null in JSON): none. */
    readonly clip: number;
    /** Feature statistics (Welford: count, mean, m2), in original units. */
    readonly x: RunningStatsState;
    /** Target statistics when the target was standardised: outputs are mapped back with them. */
    readonly y: RunningStatsState | null;
  } | null;
}

/** A model with the preprocessing it was trained with (null: none recorded, raw positional inputs). */
export interface ModelArtifact {
  readonly model: Model;
  readonly preprocessing: Preprocessing | null;
}

/** The version of the `preprocessing` section this code reads and writes. */
export const PREPROCESSING_VERSION = 1;

/** The legacy side file `FILE.ingest.json` (written beside a model before the artifact carried its preprocessing). */
export const INGEST_STATE_FORMAT = 'streamgrad/ingest-state@1';

/** Warm-up and clip every normaliser had before they were recorded (legacy side files, old checkpoints). */
const LEGACY_NORMALIZER = { warmup: 10, clip: 10 } as const;

/** No preprocessing at all: positional raw vectors in, raw outputs out (written explicitly, so no stale side file is picked up). */
export const NO_PREPROCESSING: Preprocessing = Object.freeze({ features: null, targets: null, classes: null, missing: null, imputation: null, normalizer: null });

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** `at.` (or nothing at the top of a document), to name a field inside `at`. */
const dot = (at: string) => (at === '' ? '' : `${at}.`);

function bad(field: string, message: string): never {
  throw new StreamgradError('SG_ERR_MODEL', `${field}: ${message}`, field);
}

/**
 * What the ingestion stages of a run hold, as the artifact's preprocessing: the feature
 * map's names, classes, missing policies and imputation statistics, and the normaliser's
 * statistics and settings, as they are now (call it when training has ended, or at a
 * checkpoint).
 *
 * @example
 * const preprocessing = preprocessingOf({ features, normalizer });
 * writeFileSync('weather.json', JSON.stringify(artifactToJSON({ model, preprocessing })));
 */
export function preprocessingOf(stages: { readonly features?: FeatureMap; readonly normalizer?: Normalizer }): Preprocessing {
  const { features: f, normalizer: n } = stages;
  const imputation = f?.state();
  return {
    features: f === undefined ? null : [...f.features],
    targets: f === undefined ? null : [...f.targets],
    classes: f?.classes == null ? null : [...f.classes],
    missing: f === undefined ? null : [...f.policies],
    imputation: imputation === undefined ? null : { seen: imputation.seen, mean: imputation.mean, last: imputation.last },
    normalizer: n === undefined ? null : { warmup: n.warmup, clip: n.clip, x: n.x.state(), y: n.y?.state() ?? null },
  };
}

/** The `preprocessing` section as JSON (the clip's Infinity as null). */
export function preprocessingToJSON(p: Preprocessing): Record<string, unknown> {
  return {
    version: PREPROCESSING_VERSION,
    features: p.features,
    targets: p.targets,
    classes: p.classes,
    missing: p.missing,
    imputation: p.imputation,
    normalizer: p.normalizer === null ? null : { ...p.normalizer, clip: Number.isFinite(p.normalizer.clip) ? p.normalizer.clip : null },
  };
}

/**
 * Writes a model artifact as a `streamgrad/model@1` document: the layers exactly as
 * `modelToJSON` writes them, plus the optional `preprocessing` section (omitted when
 * `preprocessing` is null, so that a bare model's file is what it always was).
 */
export function artifactToJSON(artifact: ModelArtifact): ModelDocument & { readonly preprocessing?: Record<string, unknown> } {
  const doc = modelToJSON(artifact.model);
  return artifact.preprocessing === null ? doc : { ...doc, preprocessing: preprocessingToJSON(artifact.preprocessing) };
}

/**
 * Reads a `streamgrad/model@1` document with its optional `preprocessing` section, both
 * checked strictly: a section that does not fit the model (another input size, a class
 * list of another length, statistics of the wrong size, an unknown key, a non-finite
 * number) is refused with `SG_ERR_MODEL` naming the field (`preprocessing.normalizer.x.mean[2]`).
 *
 * @example
 * const { model, preprocessing } = artifactFromJSON(JSON.parse(readFileSync('weather.json', 'utf8')));
 */
export function artifactFromJSON(doc: unknown): ModelArtifact {
  const model = modelFromJSON(doc);
  const section = (doc as Record<string, unknown>).preprocessing;
  if (section === undefined) return { model, preprocessing: null };
  return { model, preprocessing: preprocessingFromJSON(section, model) };
}

const SECTION_KEYS = ['version', 'features', 'targets', 'classes', 'missing', 'imputation', 'normalizer'];

/** Checks a `preprocessing` section against `model` (see `artifactFromJSON`); `at` prefixes every field named in an error. */
export function preprocessingFromJSON(section: unknown, model: Model, at = 'preprocessing'): Preprocessing {
  if (!isRecord(section)) bad(at, 'must be an object');
  strictKeys(section, SECTION_KEYS, at);
  if (section.version !== PREPROCESSING_VERSION) bad(`${dot(at)}version`, `must be ${PREPROCESSING_VERSION}, got ${JSON.stringify(section.version)}`);
  const n = model.inputSize, m = model.outputSize;

  const features = section.features === null ? null : names(section.features, `${dot(at)}features`);
  if (features !== null && features.length !== n) bad(`${dot(at)}features`, `has ${features.length} names, but the model takes ${n} inputs`);
  let targets: string[] | null = null, classes: string[] | null = null, missing: MissingPolicy[] | null = null;
  let imputation: Preprocessing['imputation'] = null;
  if (features === null) {
    for (const key of ['targets', 'classes', 'missing', 'imputation']) {
      if (section[key] !== null) bad(`${dot(at)}${key}`, 'must be null without named features (positional inputs)');
    }
  } else {
    targets = names(section.targets, `${dot(at)}targets`);
    for (const t of targets) if (features.includes(t)) bad(`${dot(at)}targets`, `${JSON.stringify(t)} is also a feature`);
    if (section.classes !== null) {
      classes = names(section.classes, `${dot(at)}classes`);
      if (targets.length !== 1) bad(`${dot(at)}targets`, `a class label is one column, got ${targets.length}`);
      if (classes.length !== m) bad(`${dot(at)}classes`, `has ${classes.length} labels, but the model has ${m} outputs`);
      if (classes.length < 2) bad(`${dot(at)}classes`, `needs at least 2 labels, got ${classes.length}`);
    } else if (targets.length !== m) {
      bad(`${dot(at)}targets`, `has ${targets.length} names, but the model has ${m} outputs`);
    }
    if (!Array.isArray(section.missing)) bad(`${dot(at)}missing`, `must be an array of ${n} policies (${MISSING_POLICIES.join(', ')})`);
    const policies = section.missing as unknown[];
    if (policies.length !== n) bad(`${dot(at)}missing`, `has ${policies.length} policies, but there are ${n} features`);
    for (let i = 0; i < n; i++) {
      if (!MISSING_POLICIES.includes(policies[i] as MissingPolicy)) bad(`${dot(at)}missing[${i}]`, `must be one of ${MISSING_POLICIES.join(', ')}, got ${JSON.stringify(policies[i])}`);
    }
    missing = policies as MissingPolicy[];
    imputation = imputationFromJSON(section.imputation, n, `${dot(at)}imputation`);
  }

  let normalizer: Preprocessing['normalizer'] = null;
  if (section.normalizer !== null) {
    const s = section.normalizer;
    const where = `${dot(at)}normalizer`;
    if (!isRecord(s)) bad(where, 'must be an object or null');
    strictKeys(s, ['warmup', 'clip', 'x', 'y'], where);
    if (s.clip !== null && (typeof s.clip !== 'number' || !Number.isFinite(s.clip))) bad(`${dot(where)}clip`, `must be a finite number > 0, or null for no clipping; got ${JSON.stringify(s.clip)}`);
    const clip = s.clip === null ? Infinity : s.clip;
    if (classes !== null && s.y !== null) bad(`${dot(where)}y`, 'must be null: class outputs are not standardised');
    const settings = { inputs: n, outputs: m, target: s.y !== null, warmup: s.warmup as number, clip };
    try {
      new Normalizer(settings); // the normaliser's own rules for warmup and clip, in one place
    } catch (error) {
      if (error instanceof StreamgradError) bad(`${dot(where)}${error.field ?? ''}`, `${error.message.replace(/^[^:]*: /, '')}`);
      throw error;
    }
    normalizer = { warmup: settings.warmup, clip, x: statsFromJSON(s.x, n, `${dot(where)}x`), y: s.y === null ? null : statsFromJSON(s.y, m, `${dot(where)}y`) };
  }
  return { features, targets, classes, missing, imputation, normalizer };
}

function strictKeys(o: Record<string, unknown>, allowed: readonly string[], at: string): void {
  for (const key of Object.keys(o)) if (!allowed.includes(key)) bad(`${dot(at)}${key}`, `unknown key; allowed here: ${allowed.join(', ')}`);
  for (const key of allowed) if (!Object.hasOwn(o, key)) bad(`${dot(at)}${key}`, 'missing (null when it does not apply)');
}

function names(v: unknown, at: string): string[] {
  if (!Array.isArray(v) || v.length === 0) bad(at, 'must be a non-empty array of names');
  const list = v as unknown[];
  for (let i = 0; i < list.length; i++) if (typeof list[i] !== 'string' || list[i] === '') bad(`${at}[${i}]`, `must be a non-empty string, got ${JSON.stringify(list[i])}`);
  if (new Set(list).size !== list.length) bad(at, 'names must be distinct');
  return list as string[];
}

function imputationFromJSON(v: unknown, n: number, at: string): NonNullable<Preprocessing['imputation']> {
  if (!isRecord(v)) bad(at, 'must be an object {seen, mean, last}');
  strictKeys(v, ['seen', 'mean', 'last'], at);
  for (const key of ['seen', 'mean', 'last'] as const) {
    const list = v[key];
    if (!Array.isArray(list) || list.length !== n) bad(`${dot(at)}${key}`, `must be an array of ${n} numbers, got ${Array.isArray(list) ? list.length : JSON.stringify(list)}`);
    for (let i = 0; i < n; i++) {
      const e: unknown = list[i];
      const ok = key === 'last' ? e === null || (typeof e === 'number' && Number.isFinite(e))
        : key === 'seen' ? typeof e === 'number' && Number.isSafeInteger(e) && e >= 0
          : typeof e === 'number' && Number.isFinite(e);
      if (!ok) bad(`${dot(at)}${key}[${i}]`, `must be ${key === 'seen' ? 'an integer ≥ 0' : key === 'last' ? 'a finite number or null' : 'a finite number'}, got ${JSON.stringify(e)}`);
    }
  }
  return { seen: v.seen as number[], mean: v.mean as number[], last: v.last as (number | null)[] };
}

function statsFromJSON(v: unknown, size: number, at: string): RunningStatsState {
  if (!isRecord(v)) bad(at, 'must be an object {count, mean, m2}');
  strictKeys(v, ['count', 'mean', 'm2'], at);
  try {
    new RunningStats(size).restore(v as unknown as RunningStatsState, at); // its own strict checks: count, sizes, finite, m2 ≥ 0
  } catch (error) {
    if (error instanceof StreamgradError) bad(error.message.replace(/:.*$/s, ''), error.message.replace(/^[^:]*: /, ''));
    throw error;
  }
  return v as unknown as RunningStatsState;
}

/**
 * The preprocessing recorded in a legacy `FILE.ingest.json` side file
 * (`streamgrad/ingest-state@1`), checked against `model` as strictly as a section.
 * Those files did not record the normaliser's warm-up and clip: they were 10 and 10.
 */
export function preprocessingFromIngestState(doc: unknown, model: Model): Preprocessing {
  if (!isRecord(doc)) bad('ingest-state', 'must be a JSON object');
  if (doc.format !== INGEST_STATE_FORMAT) bad('format', `must be "${INGEST_STATE_FORMAT}", got ${JSON.stringify(doc.format)}`);
  const named = doc.features !== undefined;
  const imputation = isRecord(doc.imputation) ? { seen: doc.imputation.seen, mean: doc.imputation.mean, last: doc.imputation.last } : doc.imputation;
  if (named && isRecord(doc.imputation) && JSON.stringify(doc.imputation.features) !== JSON.stringify(doc.features)) bad('imputation.features', 'is not the feature list');
  return preprocessingFromJSON({
    version: PREPROCESSING_VERSION,
    features: named ? doc.features : null,
    targets: named ? doc.targets : null,
    classes: named ? doc.classes ?? null : null,
    missing: named ? doc.missing : null,
    imputation: named ? imputation : null,
    normalizer: legacyNormalizer(doc.normalizer, 'normalizer'),
  }, model, '');
}

/** A `NormalizerState` (version 1, `{x, y}`) as a section's normalizer, with the warm-up and clip of its time. */
function legacyNormalizer(state: unknown, at: string): unknown {
  if (state === null || state === undefined) return null;
  if (!isRecord(state) || state.version !== 1) bad(`${dot(at)}version`, `must be 1, got ${JSON.stringify(isRecord(state) ? state.version : state)}`);
  return { ...LEGACY_NORMALIZER, x: state.x, y: state.y ?? null };
}

/**
 * The artifact in a checkpoint: its parameters, and the preprocessing its run had at
 * that step. Checkpoints carry it as the `preprocessing` section; older ones only had
 * the normaliser and imputation statistics (`normalizer`, `features`) and the data's
 * description (`source`: targets, classes), from which it is rebuilt (missing values
 * then rejected, as their policy was not recorded; classes discovered from a file were
 * not recorded either: outputs then have no names).
 */
export function artifactFromCheckpoint(checkpoint: Checkpoint): ModelArtifact {
  const model = modelFromCheckpoint(checkpoint);
  const sections = checkpoint.header.sections;
  if (sections.preprocessing !== undefined) return { model, preprocessing: preprocessingFromJSON(sections.preprocessing, model) };
  const features = isRecord(sections.features) ? sections.features : null;
  const normalizer = sections.normalizer ?? null;
  if (features === null && normalizer === null) return { model, preprocessing: null };
  const source = isRecord(sections.source) ? sections.source : {};
  const classes = Array.isArray(source.classes) && source.classes.length === model.outputSize ? source.classes : null;
  // the names were not always recorded: outputs are then y0, y1, ... (only names, for the output lines)
  const named = (list: unknown, size: number) => (Array.isArray(list) && list.length === size ? list : null);
  const targets = classes !== null ? named(source.targets, 1) ?? ['target'] : named(source.targets, model.outputSize);
  return {
    model,
    preprocessing: preprocessingFromJSON({
      version: PREPROCESSING_VERSION,
      features: features === null ? null : features.features,
      targets: features === null ? null : targets ?? Array.from({ length: model.outputSize }, (_, k) => `y${k}`),
      classes: features === null ? null : classes,
      missing: features === null ? null : Array.from({ length: model.inputSize }, () => 'reject'),
      imputation: features === null ? null : { seen: features.seen, mean: features.mean, last: features.last },
      normalizer: legacyNormalizer(normalizer, 'normalizer'),
    }, model, 'checkpoint.sections'),
  };
}

/** The feature map a preprocessing describes, with its imputation statistics (for `mapInputs`, which never learns). */
export function featureMapOf(p: Preprocessing): FeatureMap | null {
  if (p.features === null) return null;
  // null prototype: a feature named `__proto__` keeps its policy (on `{}` it would set the prototype)
  const missing = Object.create(null) as Record<string, MissingPolicy>;
  p.features.forEach((name, i) => { missing[name] = p.missing![i]; });
  const map = new FeatureMap({ features: p.features, targets: p.targets!, ...(p.classes !== null && { classes: p.classes }), missing });
  const imp = p.imputation!;
  map.restore({ features: p.features, seen: imp.seen, mean: imp.mean, last: imp.last });
  return map;
}

/** The normaliser a preprocessing describes, holding its final statistics (apply it frozen: `transformInput`, `denormalizeOutput`). */
export function normalizerOf(p: Preprocessing, model: Model): Normalizer | null {
  const s = p.normalizer;
  if (s === null) return null;
  const normalizer = new Normalizer({ inputs: model.inputSize, outputs: model.outputSize, target: s.y !== null, warmup: s.warmup, clip: s.clip });
  normalizer.restore({ version: 1, x: s.x, y: s.y });
  return normalizer;
}

/**
 * Continues a run from an artifact's preprocessing (training a saved model further):
 * the run's stages must preprocess as the model was trained (standardised or raw inputs
 * and target, the same feature list in the same order, the same classes), else
 * `SG_ERR_MODEL` naming the field, since a model trained on z-scores must never be fed raw
 * values (or the other way round); then the normaliser and imputation statistics carry
 * on from the artifact's. A bare model (null: nothing recorded) checks nothing.
 *
 * @example
 * continuePreprocessing(artifact.preprocessing, { features, normalizer }); // before the run starts
 */
export function continuePreprocessing(p: Preprocessing | null, stages: { readonly features?: FeatureMap; readonly normalizer?: Normalizer }): void {
  if (p === null) return;
  const { features, normalizer } = stages;
  const list = (v: readonly string[] | null | undefined) => (v == null ? 'none' : v.join(', '));
  if ((p.normalizer === null) !== (normalizer === undefined)) {
    bad('preprocessing.normalizer', p.normalizer === null ? 'the model was trained on raw inputs, but this run standardises them' : 'the model was trained on standardised inputs, but this run does not standardise them (normalize)');
  }
  if (p.normalizer !== null && (p.normalizer.y === null) !== (normalizer!.y === null)) {
    bad('preprocessing.normalizer.y', p.normalizer.y === null ? 'the model was trained on a raw target, but this run standardises it' : 'the model was trained on a standardised target, but this run does not standardise it (normalize target)');
  }
  if (p.features !== null && features !== undefined) {
    if (p.features.join('\u0000') !== features.features.join('\u0000')) bad('preprocessing.features', `the model was trained on ${list(p.features)}, in this order; this run maps ${list(features.features)}`);
    if ((p.classes ?? []).join('\u0000') !== (features.classes ?? []).join('\u0000')) bad('preprocessing.classes', `the model was trained on the classes ${list(p.classes)}; this run has ${list(features.classes)}`);
  }
  if (p.features !== null && features !== undefined) {
    const imp = p.imputation!;
    features.restore({ features: p.features, seen: imp.seen, mean: imp.mean, last: imp.last });
  }
  if (p.normalizer !== null) normalizer!.restore({ version: 1, x: p.normalizer.x, y: p.normalizer.y });
}

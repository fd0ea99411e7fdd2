import { defaultKernels } from '../core/backend.ts';
import { StreamgradError } from '../core/errors.ts';
import type { Kernels } from '../core/kernels.ts';
import { featureMapOf, type ModelArtifact, normalizerOf } from './model-artifact.ts';
import { forwardPass } from '../core/network.ts';
import { checkSample } from '../core/sample.ts';
import { createWorkspace } from '../core/workspace.ts';

/** One prediction, in the user's terms. */
export interface RecordPrediction {
  /** The network's outputs in the target's own units (mapped back when the target was standardised). */
  readonly y: Float64Array;
  /**
   * The class: its name when the artifact has class labels (the largest output), else
   * as the last layer says: the index of the largest softmax output, 1 or 0 for a single
   * sigmoid output (y ≥ 0.5), y itself for a single sign output. Absent for a regression.
   */
  readonly class?: string | number;
  /** With class labels: each class's output by name (softmax: the probabilities). */
  readonly probabilities?: Readonly<Record<string, number>>;
}

/** A prediction, or what is wrong with the record (typed, naming the field). */
export type RecordResult = { readonly prediction: RecordPrediction; readonly error?: undefined } | { readonly error: StreamgradError; readonly prediction?: undefined };

/** How a predictor runs: which kernels its forward pass uses. */
export interface PredictorOptions {
  /** Kernel backend (default: `defaultKernels()`). */
  readonly kernels?: Kernels;
}

/** Applies one artifact to records (see `createPredictor`). */
export type Predictor = (record: unknown, text?: boolean) => RecordResult;

/**
 * Builds the function that applies a model artifact to one record, as training saw it:
 * named fields to the model's ordered inputs (missing values imputed by the recorded
 * policy and statistics), standardised with the normaliser's *final* statistics, the
 * forward pass, outputs mapped back to the target's units, and the class by name.
 * Nothing is learned: the statistics are frozen, whatever the records are.
 *
 * A record is an object of named values when the artifact has feature names (keys that
 * are not features are ignored; `text` records hold text cells, as CSV rows), or a
 * positional vector in the model's input order (an array, or `{"x": [...]}`) either way.
 * A bad record is a result with a typed error (`SG_ERR_MISSING` naming the feature,
 * `SG_ERR_TYPE`, `SG_ERR_ARITY`, `SG_ERR_NONFINITE_INPUT`), never an exception.
 *
 * The one place a saved model is applied: `streamgrad predict`, serving and export use it.
 *
 * @example
 * const predictor = createPredictor(artifactFromJSON(JSON.parse(readFileSync('weather.json', 'utf8'))));
 * predictor({ precipitation: 0, temp_max: 20, temp_min: 11, wind: 2.5 }).prediction;
 * // { y: Float64Array [...], class: 'sun', probabilities: { drizzle: 0.04, fog: 0.07, rain: 0.05, snow: 0, sun: 0.84 } }
 * @see predictRecord
 * @param artifact the model and its preprocessing (`artifactFromJSON`, `artifactFromCheckpoint`)
 */
export function createPredictor(artifact: ModelArtifact, options: PredictorOptions = {}): Predictor {
  const stages = compile(artifact);
  const kernels = options.kernels ?? defaultKernels();
  const ws = createWorkspace(artifact.model, 1, kernels.allocate);
  const { n, m, last } = stages;
  return (record, text = false) => {
    const input = stages.prepare(record, text);
    if (input instanceof StreamgradError) return { error: input };
    for (let k = 0; k < n; k++) ws.x[k] = input[k];
    forwardPass(kernels, artifact.model, ws, 1);
    return { prediction: stages.finish(ws.a[last].subarray(0, m)) };
  };
}

/** Applies one artifact to many records at once (see `createBatchPredictor`). */
export type BatchPredictor = (records: readonly unknown[], text?: boolean) => RecordResult[];

/**
 * `createPredictor` for many records: each record is prepared alone (its own typed error,
 * as `createPredictor` gives it), then the good ones go through the network together, one
 * forward pass per `rows` of them, into a workspace made once. With kernels that compute
 * each row of a batch alone and in the same order whatever the batch (the JavaScript
 * kernels, which serving uses), every prediction is bitwise the one `createPredictor`
 * gives; the batch only saves the per-sample overhead (a bulk request of a small model is
 * mostly that).
 *
 * @example
 * const predictMany = createBatchPredictor(artifact, { kernels: jsKernels });
 * predictMany([[0.1, 2, 3], { temp: 12.5, wind: 3 }]); // [{ prediction }, { prediction }]
 * @param artifact the model and its preprocessing
 * @param options the kernels (default: `defaultKernels()`) and the rows per forward pass (default 512)
 */
export function createBatchPredictor(artifact: ModelArtifact, options: PredictorOptions & { readonly rows?: number } = {}): BatchPredictor {
  const stages = compile(artifact);
  const kernels = options.kernels ?? defaultKernels();
  const rows = Math.max(1, Math.floor(options.rows ?? 512));
  const ws = createWorkspace(artifact.model, rows, kernels.allocate);
  const { n, m, last } = stages;
  /** Which record each row of the workspace holds. */
  const owner = new Int32Array(rows);
  return (records, text = false) => {
    const out: RecordResult[] = new Array(records.length);
    let filled = 0;
    const run = () => {
      forwardPass(kernels, artifact.model, ws, filled);
      const a = ws.a[last];
      for (let r = 0; r < filled; r++) out[owner[r]] = { prediction: stages.finish(a.subarray(r * m, r * m + m)) };
      filled = 0;
    };
    for (let i = 0; i < records.length; i++) {
      const input = stages.prepare(records[i], text);
      if (input instanceof StreamgradError) {
        out[i] = { error: input };
        continue;
      }
      const o = filled * n;
      for (let k = 0; k < n; k++) ws.x[o + k] = input[k];
      owner[filled++] = i;
      if (filled === rows) run();
    }
    if (filled > 0) run();
    return out;
  };
}

/** An artifact's stages around the network: a record to the model's inputs, and the network's outputs to a prediction. */
interface Stages {
  /** Inputs, outputs and last layer of the model. */
  readonly n: number;
  readonly m: number;
  readonly last: number;
  /** A record's inputs, mapped, checked and standardised (or its typed problem). */
  prepare(record: unknown, text: boolean): ArrayLike<number> | StreamgradError;
  /** The network's raw outputs (read, not kept) as a prediction in the user's terms. */
  finish(raw: Float64Array): RecordPrediction;
}

/**
 * Which of the forms a predictor takes a record is in: `vector` (an array or typed array in
 * the model's input order), `x` (`{"x": [...]}`, positional, whatever else it holds, unless
 * `x` is one of the model's features), `named` (an object of named values, for a model with
 * feature names), or `other` (read as `{"x": …}` and refused by the sample check). The one
 * place the form is decided: the predictor applies it, and serving's check for fields it
 * would ignore (`ignoredField`) reads the same answer.
 *
 * @example
 * recordForm({ x: [0, 20, 11, 2.5], y: [1] }, new Set(['temp', 'wind'])); // 'x'
 * @param features the model's feature names (null for a bare model)
 */
export function recordForm(record: unknown, features: ReadonlySet<string> | null): 'vector' | 'x' | 'named' | 'other' {
  if (Array.isArray(record) || ArrayBuffer.isView(record)) return 'vector';
  if (typeof record !== 'object' || record === null) return 'other';
  if (Array.isArray((record as { x?: unknown }).x) && features?.has('x') !== true) return 'x';
  return features !== null ? 'named' : 'other';
}

/**
 * The first key of a record that a predictor of `artifact` does not read (as `recordForm`
 * decides its form), as its position among the record's own keys (from 0), or -1 when
 * every key is read. A named record may hold the features and the targets (targets are
 * ignored, as in training data); a positional `{"x": [...]}` may hold `x` and `y` (ignored,
 * as `streamgrad predict` reads it). Serving refuses such a key by default: a misspelt
 * feature must not be silently imputed.
 *
 * @example
 * ignoredKey(artifact, { temp: 1, tmep: 2 }); // 1, for a model of features temp, wind
 */
export function ignoredKey(artifact: ModelArtifact, record: unknown): number {
  const compiled = knownKeysOf(artifact);
  const form = recordForm(record, compiled.features);
  if (form !== 'x' && form !== 'named') return -1;
  const allowed = form === 'x' ? POSITIONAL_KEYS : compiled.named;
  const keys = Object.keys(record as object);
  for (let i = 0; i < keys.length; i++) if (!allowed.has(keys[i])) return i;
  return -1;
}

/** The keys a positional `{"x": [...]}` record may hold: `x`, and `y` (ignored). */
const POSITIONAL_KEYS: ReadonlySet<string> = new Set(['x', 'y']);

/** Per artifact: its feature names (null for a bare model) and the keys a named record may hold (features and targets). */
const knownKeys = new WeakMap<ModelArtifact, { readonly features: ReadonlySet<string> | null; readonly named: ReadonlySet<string> }>();

function knownKeysOf(artifact: ModelArtifact): { readonly features: ReadonlySet<string> | null; readonly named: ReadonlySet<string> } {
  let known = knownKeys.get(artifact);
  if (known === undefined) {
    const p = artifact.preprocessing;
    const features = p === null || p.features === null ? null : new Set(p.features);
    known = { features, named: new Set([...(p?.features ?? []), ...(p?.targets ?? [])]) };
    knownKeys.set(artifact, known);
  }
  return known;
}

function compile(artifact: ModelArtifact): Stages {
  const { model, preprocessing } = artifact;
  const features = preprocessing === null ? null : featureMapOf(preprocessing);
  const normalizer = preprocessing === null ? null : normalizerOf(preprocessing, model);
  const classes = preprocessing?.classes ?? null;
  const n = model.inputSize, m = model.outputSize, last = model.layers.length - 1;
  const activation = model.layers[last].activation;
  const shape = { inputs: n, outputs: 1 };
  const named = features === null ? null : new Set(features.features);
  return {
    n, m, last,
    prepare(record, text) {
      let x: unknown;
      const form = recordForm(record, named);
      if (form === 'x') {
        x = (record as { x: unknown }).x;
      } else if (form === 'named') {
        const mapped = features!.mapInputs(record, text);
        if (mapped.error !== undefined) return mapped.error;
        x = mapped.x;
      } else {
        x = form === 'vector' ? record : typeof record === 'object' && record !== null ? (record as { x?: unknown }).x : record;
      }
      const problem = checkSample({ x, y: 0 }, shape); // the features only: a prediction needs no target
      if (problem !== null) return problem;
      return normalizer === null ? (x as ArrayLike<number>) : normalizer.transformInput(x as ArrayLike<number>);
    },
    finish(raw) {
      const y = normalizer === null ? raw.slice() : normalizer.denormalizeOutput(raw);
      if (classes !== null) {
        // a null prototype: a class named `__proto__` is then an own property like any other
        // (on `{}` the assignment would set the prototype and the class would vanish from the map)
        const probabilities = Object.create(null) as Record<string, number>;
        classes.forEach((name, k) => { probabilities[name] = y[k]; });
        return { y, class: classes[argmax(y)], probabilities };
      }
      if (activation === 'softmax') return { y, class: argmax(y) };
      if (m === 1 && activation === 'sigmoid') return { y, class: y[0] >= 0.5 ? 1 : 0 };
      if (m === 1 && activation === 'sign') return { y, class: y[0] };
      return { y };
    },
  };
}

const predictors = new WeakMap<ModelArtifact, Predictor>();

/**
 * Applies a model artifact to one record (`createPredictor`, built once per artifact and
 * kept while the artifact lives). Returns the prediction or a typed error.
 *
 * @example
 * const { prediction, error } = predictRecord(artifact, { month_sin: 0.5, month_cos: 0.87, prev_change: 1.2 });
 * prediction?.y[0]; // next month's change, in ppm
 * @param artifact the model and its preprocessing
 * @param record named values, or a vector in the model's input order
 * @param text the record holds text cells (a CSV row), parsed strictly as decimal numbers
 */
export function predictRecord(artifact: ModelArtifact, record: unknown, text = false): RecordResult {
  let predictor = predictors.get(artifact);
  if (predictor === undefined) {
    predictor = createPredictor(artifact);
    predictors.set(artifact, predictor);
  }
  return predictor(record, text);
}

function argmax(y: ArrayLike<number>): number {
  let best = 0;
  for (let k = 1; k < y.length; k++) if (y[k] > y[best]) best = k;
  return best;
}

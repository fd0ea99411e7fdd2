import { setImmediate as nextTurn } from 'node:timers/promises';
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Subscription } from 'rxjs';
import { StreamgradError } from '../core/errors.ts';
import type { ModelArtifact } from '../pipeline/model-artifact.ts';
import { type Topology, topologyOf } from '../core/model.ts';
import { ignoredKey, type RecordResult } from '../pipeline/predict-record.ts';
import { type LabelsSnapshot, ModelVersions, PREDICT_CHUNK, type ModelVersion, type SavedModelInfo, type VersionListing, type VersionNumbers, type VersionProblem } from './model-versions.ts';
import { type NumberReservation, ReservedNumbers } from './version-numbers.ts';

export type { SavedModelInfo } from './model-versions.ts';
import { RunMirror, type ServedRun } from './run-mirror.ts';
import type { ModelInfo, Outcome, PredictionFailure, PredictionResult, ProtocolErrorCode, VersionCommandMessage } from './protocol.ts';

/** A typed problem with a request or a sample, as it goes on the wire. */
export interface PredictProblem {
  readonly code: ProtocolErrorCode;
  readonly message: string;
  readonly field?: string;
}

/** What a caller named: a model (optional with one model) and a version selector. */
export interface VersionRequest {
  readonly model?: string;
  readonly version?: string | number;
}


/** Bounds of a prediction service (`ServeOptions` fills them). */
export interface PredictionServiceOptions {
  /** Most recent versions kept per model (labelled ones besides). */
  readonly keepVersions: number;
  /** Where the request, error and latency metrics go (the server's registry). */
  readonly registry: Registry;
  readonly log?: (line: string) => void;
  /** Told after each `promote` or `rollback` applied, with the model's labels as they stand (to persist them). */
  readonly onLabels?: (model: string, labels: LabelsSnapshot) => void;
}

interface Served {
  readonly versions: ModelVersions;
  readonly run: ServedRun | null;
  readonly subscriptions: Subscription[];
  dirty: boolean;
}

export { PREDICT_CHUNK };

/** Latency buckets (seconds): 50 µs to 1 s. */
const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/**
 * The models a server answers predictions from, each a `ModelVersions` store: the runs it
 * serves (a new version whenever a published snapshot changed the weights) and saved
 * models (`addModel`: one version). It resolves `latest` / a number / a label, predicts
 * with the version's own frozen preprocessing, applies `promote` / `rollback`, and counts
 * requests, predictions, errors and latency per model and version on the server's
 * `/metrics` (the series of a forgotten version go with it, so the label set stays bounded).
 *
 * For a run trained on another thread (`RunMirror`), a version is taken at each publish
 * that brought new steps, from the weights the mirror already copied out of shared memory:
 * nothing is asked of the training thread. For a run on this thread, `tick` (called at the
 * server's tick rate) takes one when the run stepped since the last.
 *
 * @example
 * const service = new PredictionService({ keepVersions: 32, registry });
 * service.addRun(run);
 * const version = service.resolve({ model: 'deep', version: 'stable' });
 * if (!('code' in version)) service.predictOne(version, { temp: 12.5 }, 'reject');
 */
export class PredictionService {
  private readonly models = new Map<string, Served>();
  private readonly requests: Counter;
  private readonly predictions: Counter;
  private readonly errors: Counter;
  private readonly latency: Histogram;
  /** Per `model\0version`: the error codes counted, so that their series can be removed with the version. */
  private readonly errorCodes = new Map<string, Set<string>>();

  constructor(private readonly options: PredictionServiceOptions) {
    const registers = [options.registry];
    this.requests = new Counter({ name: 'streamgrad_predict_requests_total', help: 'Prediction requests answered (HTTP or WebSocket), by model and version.', labelNames: ['model', 'version'], registers });
    this.predictions = new Counter({ name: 'streamgrad_predictions_total', help: 'Samples predicted, by model and version.', labelNames: ['model', 'version'], registers });
    this.errors = new Counter({ name: 'streamgrad_predict_errors_total', help: 'Prediction errors (a refused request, one bad sample of a batch, or code "aborted": a request whose client went away mid-body), by model, version and code; version "none" before one was resolved.', labelNames: ['model', 'version', 'code'], registers });
    this.latency = new Histogram({ name: 'streamgrad_predict_latency_seconds', help: 'Time to answer a prediction request on the server (body read and parsed to answer written), by model and version.', labelNames: ['model', 'version'], buckets: LATENCY_BUCKETS, registers });
  }

  /** The names of the models served. */
  names(): string[] {
    return [...this.models.keys()];
  }

  /**
   * Serves predictions of a run: its current weights are version 1, and each change is a
   * new version. `labels`: the labels saved before a restart (a resumed run's checkpoint),
   * put back first, so that they answer as before and the numbers go on from there.
   * `numbers`: the run's reservation of version numbers (`reserveVersionNumbers`), for a run
   * that can resume: its versions are numbered from `numbers.first`, within what is reserved.
   */
  addRun(run: ServedRun, labels?: LabelsSnapshot, numbers?: NumberReservation): void {
    const { model } = run.trainer;
    const gate = numbers === undefined ? undefined : new ReservedNumbers(numbers, (line) => this.options.log?.(`model ${run.id}: ${line}`));
    const served: Served = { versions: this.store(run.id, topologyOf(model), gate), run, subscriptions: [], dirty: false };
    if (labels !== undefined) served.versions.restoreLabels(labels);
    this.models.set(run.id, served);
    this.capture(served);
    const mirrored = run instanceof RunMirror;
    served.subscriptions.push(
      // a mirror's results come once per publish, its weights just copied: a version now;
      // a run of this thread steps far more often: the next tick takes one
      run.results.subscribe(() => {
        if (mirrored) this.capture(served);
        else served.dirty = true;
      }),
      run.events.subscribe((event) => {
        // a reset changes the weights without a step; a checkpoint marks the version it saved
        if (event.type === 'reset' || event.type === 'checkpoint' || event.type === 'completed' || event.type === 'stopped') this.capture(served);
        if (event.type === 'checkpoint' && typeof event.detail?.path === 'string') {
          const latest = served.versions.latest;
          if (latest !== null && latest.step === event.step) latest.checkpoint = event.detail.path;
        }
      }),
    );
  }

  /**
   * Serves a saved model under `name`: one version (a copy of its weights), said to be
   * of step `at.step` and `at.samples` samples (a checkpoint's counters; default 0) and
   * dated `at.time` (e.g. the file's modification time; default now).
   */
  addModel(name: string, artifact: ModelArtifact, at: SavedModelInfo = {}, labels?: LabelsSnapshot, numbers?: NumberReservation): void {
    if (this.models.has(name)) throw new Error(`serve: a model named ${JSON.stringify(name)} is already served`);
    // `numbers`: its reservation (`reserveVersionNumbers`), so that a restart never gives a number twice
    const gate = numbers === undefined ? undefined : new ReservedNumbers(numbers, (line) => this.options.log?.(`model ${name}: ${line}`));
    const versions = this.store(name, topologyOf(artifact.model), gate);
    // the labels saved before a restart first: the file's weights are then the saved latest version again, or a newer one
    if (labels !== undefined) versions.restoreLabels(labels);
    versions.offer(artifact.model.params, artifact.preprocessing, { step: at.step ?? 0, samples: at.samples ?? 0, time: at.time ?? Date.now() });
    this.models.set(name, { versions, run: null, subscriptions: [], dirty: false });
  }

  /**
   * A new version of a saved model (its file was written again): the same topology, new
   * weights and preprocessing. Returns the new version, or null when nothing changed (the
   * same step, samples and weights). A model of another shape is refused (`SG_ERR_MODEL`):
   * callers pinned to a version must not see its inputs change meaning.
   */
  updateModel(name: string, artifact: ModelArtifact, at: SavedModelInfo = {}): ModelVersion | null {
    const served = this.models.get(name);
    if (served === undefined || served.run !== null) throw new Error(`serve: no saved model named ${JSON.stringify(name)}`);
    const topology = topologyOf(artifact.model);
    if (JSON.stringify(topology) !== JSON.stringify(served.versions.topology)) {
      throw new StreamgradError('SG_ERR_MODEL', `model ${JSON.stringify(name)}: the new file has another shape (${describeTopology(topology)}; served: ${describeTopology(served.versions.topology)}); serve it under another name`, 'layers');
    }
    const version = served.versions.offer(artifact.model.params, artifact.preprocessing, { step: at.step ?? 0, samples: at.samples ?? 0, time: at.time ?? Date.now() });
    // null is "nothing changed" only when no number was waiting to be reserved
    if (served.versions.waitingForNumber) throw new StreamgradError('SG_ERR_STATE', `model ${JSON.stringify(name)}: no version number is reserved yet (its reservation could not be written); the file is served once one is`, 'version');
    return version;
  }

  /** Stops serving a model (its versions and their metrics go). */
  remove(name: string): void {
    const served = this.models.get(name);
    if (served === undefined) return;
    for (const s of served.subscriptions.splice(0)) s.unsubscribe();
    for (const v of served.versions.list()) this.dropSeries(name, String(v.version));
    this.models.delete(name);
  }

  /** Takes a version of every run of this thread that stepped since the last tick. */
  tick(): void {
    for (const served of this.models.values()) {
      if (served.dirty) this.capture(served);
    }
  }

  /** The version a request asks for, or why there is none (an unknown model or version). */
  resolve(request: VersionRequest): ModelVersion | PredictProblem {
    let name = request.model;
    if (name === undefined) {
      if (this.models.size !== 1) {
        return { code: 'SG_ERR_UNKNOWN_MODEL', message: this.models.size === 0 ? 'this server serves no model' : `name the model (model=…): this server serves ${this.listNames()}`, field: 'model' };
      }
      name = this.models.keys().next().value as string;
    }
    const served = this.models.get(name);
    // the name asked for is not echoed (the client's text: it could be markup); `field` says where it was
    if (served === undefined) return { code: 'SG_ERR_UNKNOWN_MODEL', message: `no model of that name (model) on this server (${this.listNames()})`, field: 'model' };
    const found = served.versions.resolve(request.version);
    return 'code' in found ? { ...(found as VersionProblem), field: 'version' } : found;
  }

  /**
   * One sample through a version: its prediction in the user's units, or the typed
   * problem. With `unknown: 'reject'`, a named field that is neither a feature nor a
   * target of the model is `SG_ERR_UNKNOWN_FEATURE` (a misspelt feature must not be
   * silently imputed).
   */
  predictOne(version: ModelVersion, record: unknown, unknown: 'reject' | 'ignore' = 'reject'): PredictionResult | PredictionFailure {
    const stray = unknown === 'reject' ? strayProblem(version, record) : null;
    if (stray !== null) return stray;
    return toWire(version.predict(record));
  }

  /**
   * Many samples through a version in one forward pass (`ModelVersion.predictMany`): each
   * entry is what `predictOne` gives for its record, bit for bit.
   */
  predictMany(version: ModelVersion, records: readonly unknown[], unknown: 'reject' | 'ignore' = 'reject'): (PredictionResult | PredictionFailure)[] {
    const out: (PredictionResult | PredictionFailure)[] = new Array(records.length);
    const { results, index } = predictKept(version, records, unknown, out);
    for (let j = 0; j < results.length; j++) out[index[j]] = toWire(results[j]);
    return out;
  }

  /** `predictManyText` (below), as a method of the service. */
  predictManyText(version: ModelVersion, records: readonly unknown[], unknown: 'reject' | 'ignore' = 'reject'): (string | PredictionFailure)[] {
    return predictManyText(version, records, unknown);
  }

  /** Counts one answered request: its samples, its failed samples' codes, its time (ms). */
  count(version: ModelVersion, samples: number, failures: readonly PredictionFailure[], ms: number): void {
    const labels = { model: version.model, version: String(version.version) };
    this.requests.inc(labels);
    if (samples > 0) this.predictions.inc(labels, samples);
    for (const f of failures) this.countError(version.model, labels.version, f.error.code);
    this.latency.observe(labels, ms / 1000);
  }

  /**
   * Counts a request refused before or after its version was known. Once the version is
   * known, a refusal is an answered request like any other: counted in the requests and in
   * the latency histogram (`ms`, received to answered), so that the histogram's count is
   * the requests counter (PROTOCOL.md, "Metrics"); before, only its error is counted
   * (version `none`), in neither.
   */
  countRefused(problem: PredictProblem, version: ModelVersion | null, model?: string, ms = 0): void {
    const name = version?.model ?? (model !== undefined && this.models.has(model) ? model : this.models.size === 1 && model === undefined ? this.names()[0] : '(unknown)');
    if (version !== null) {
      const labels = { model: name, version: String(version.version) };
      this.requests.inc(labels);
      this.latency.observe(labels, ms / 1000);
    }
    this.countError(name, version === null ? 'none' : String(version.version), problem.code);
  }

  /**
   * Counts a request whose client went away before its body ended (closed or reset the
   * connection mid-body): nothing to answer, but never uncounted. Its `code` label is
   * `aborted` (no error code was sent to anyone); it is no answered request.
   */
  countAborted(version: ModelVersion): void {
    this.countError(version.model, String(version.version), 'aborted');
  }

  /** Applies `promote` or `rollback` (the caller checked the access). */
  control(command: VersionCommandMessage): Outcome {
    const served = this.models.get(command.model);
    if (served === undefined) return { ok: false, code: 'SG_ERR_UNKNOWN_MODEL', message: `no model of that name (model) on this server (${this.listNames()})` };
    const result = command.type === 'promote' ? served.versions.promote(command.version, command.label) : served.versions.rollback(command.label);
    if ('code' in result) return { ok: false, code: result.code, message: result.message };
    this.options.log?.(`${command.type} on model ${command.model}: ${result.label} is version ${result.version}`);
    this.options.onLabels?.(command.model, served.versions.saveLabels());
    return { ok: true, result: { model: command.model, ...result } };
  }

  /** `GET /models`: every model, its kept versions and labels. */
  describe(): { models: { name: string; keep: number; latest: number | null; labels: Record<string, number>; versions: VersionListing[] }[] } {
    return {
      models: [...this.models.entries()].map(([name, s]) => ({
        name, keep: s.versions.keep, latest: s.versions.latest?.version ?? null, labels: s.versions.labelled(), versions: s.versions.list(),
      })),
    };
  }

  /** A model's labels and the versions they need, to persist them (null for a model not served). */
  labels(name: string): LabelsSnapshot | null {
    return this.models.get(name)?.versions.saveLabels() ?? null;
  }

  /** Every model in one line each: its kind, newest version and labels (what the hello lists). */
  summary(): ModelInfo[] {
    return [...this.models.entries()].map(([name, s]) => ({ name, kind: s.run === null ? 'saved' : 'run', latest: s.versions.latest?.version ?? null, labels: s.versions.labelled() }));
  }

  close(): void {
    for (const name of this.names()) this.remove(name);
  }

  private store(name: string, topology: ReturnType<typeof topologyOf>, numbers?: VersionNumbers): ModelVersions {
    return new ModelVersions(name, topology, { keep: this.options.keepVersions, onEvict: (v) => this.dropSeries(name, String(v.version)), ...(numbers !== undefined && { numbers }) });
  }

  private capture(served: Served): void {
    const run = served.run!;
    const { counters, model } = run.trainer;
    served.versions.offer(model.params, run.preprocessing(), { step: counters.steps, samples: counters.samples, time: Date.now() });
    // a number still being reserved: the next tick offers again
    served.dirty = served.versions.waitingForNumber;
  }

  private countError(model: string, version: string, code: string): void {
    this.errors.inc({ model, version, code });
    const key = `${model}\u0000${version}`;
    let codes = this.errorCodes.get(key);
    if (codes === undefined) this.errorCodes.set(key, codes = new Set());
    codes.add(code);
  }

  private dropSeries(model: string, version: string): void {
    const labels = { model, version };
    this.requests.remove(labels);
    this.predictions.remove(labels);
    this.latency.remove(labels);
    const key = `${model}\u0000${version}`;
    for (const code of this.errorCodes.get(key) ?? []) this.errors.remove({ model, version, code });
    this.errorCodes.delete(key);
  }

  private listNames(): string {
    const names = this.names();
    const shown = names.slice(0, 8).map((n) => JSON.stringify(n.slice(0, 64))).join(', ');
    return names.length === 0 ? 'none' : `models: ${shown}${names.length > 8 ? `, and ${names.length - 8} more` : ''}`;
  }
}

/** `3 → 8 tanh → 1 linear`. */
const describeTopology = (t: Topology) => [String(t.inputSize), ...t.layers.map((l) => `${l.units} ${l.activation}`)].join(' → ');

/**
 * `SG_ERR_UNKNOWN_FEATURE` for a sample with a key the version's predictor would not read
 * (`ignoredKey`, the predictor's own reading of the record's form: a named sample may hold
 * features and targets, `{"x": [...]}` may hold `x` and `y`), else null. The key is named
 * by its position, never echoed: it is the client's text (PROTOCOL.md, "error").
 */
function strayProblem(version: ModelVersion, record: unknown): PredictionFailure | null {
  const at = ignoredKey(version.artifact, record);
  if (at === -1) return null;
  const features = version.artifact.preprocessing?.features ?? null;
  const takes = Array.isArray((record as { x?: unknown }).x) && features?.includes('x') !== true
    ? 'a positional sample {"x": [...]} takes x (and y, ignored)'
    : `features: ${features!.join(', ')}`;
  return { error: { code: 'SG_ERR_UNKNOWN_FEATURE', message: `key ${at} of the sample (from 0, in the order sent) is not a feature of model ${JSON.stringify(version.model)} (${takes})`, field: `keys[${at}]` } };
}

/**
 * A predictor's result as it goes on the wire (a non-finite output is an error: JSON has no
 * NaN). An error goes as its code, field and `publicMessage`: never the client's input (it
 * could be markup, or reorder the text around it: PROTOCOL.md, "error"), which its
 * `message` may quote for `streamgrad predict`'s stderr.
 */
export function toWire(result: RecordResult): PredictionResult | PredictionFailure {
  if (result.error !== undefined) {
    const e = result.error;
    return { error: { code: e.code as ProtocolErrorCode, message: e.publicMessage, ...(e.field !== undefined && { field: e.field }) } };
  }
  const p = result.prediction;
  const y = Array.from(p.y);
  for (const v of y) {
    if (!Number.isFinite(v)) return { error: { code: 'SG_ERR_NONFINITE_OUTPUT', message: `the model's output is ${String(v)} for this sample` } };
  }
  if (p.class === undefined) return { y };
  return { y, class: p.class, ...(p.probabilities !== undefined && { probabilities: p.probabilities }) };
}

/**
 * `predictMany` for an answer written as text (NDJSON): each sample's wire entry as JSON
 * text, exactly `JSON.stringify` of `predictMany`'s entry, or its failure. A regression's
 * `{"y":[…]}` is written straight from the outputs (no wire object, no array copy): a bulk
 * answer is mostly these. A function of the version alone, so that the bulk thread
 * (server/bulk-thread.ts) runs it too.
 *
 * @example const [text] = predictManyText(version, [[0.1, 0.2]]); // '{"y":[0.73]}'
 */
export function predictManyText(version: ModelVersion, records: readonly unknown[], unknown: 'reject' | 'ignore' = 'reject'): (string | PredictionFailure)[] {
  const out: (string | PredictionFailure)[] = new Array(records.length);
  const { results, index } = predictKept(version, records, unknown, out);
  for (let j = 0; j < results.length; j++) {
    const p = results[j].prediction;
    out[index[j]] = p !== undefined && p.class === undefined && allFinite(p.y) ? `{"y":[${p.y.join(',')}]}` : textOrFailure(toWire(results[j]));
  }
  return out;
}

/** Whether every value is finite (JSON has no NaN or infinity). */
function allFinite(y: Float64Array): boolean {
  for (let k = 0; k < y.length; k++) if (!Number.isFinite(y[k])) return false;
  return true;
}

/** A wire entry as its JSON text, a failure as itself. */
const textOrFailure = (entry: PredictionResult | PredictionFailure): string | PredictionFailure => ('error' in entry ? entry : JSON.stringify(entry));

/** Whether a wire entry is a failure. */
export const isFailure = (entry: PredictionResult | PredictionFailure): entry is PredictionFailure => 'error' in entry;

/**
 * Whether a request's `input` (or JSON body) is one sample or a batch: an array is one
 * sample when it holds only numbers (or nothing but scalars: a bad sample), a batch when
 * it holds only objects and arrays; anything else is one sample.
 */
export function bodyShape(body: unknown): 'one' | 'batch' | 'mixed' {
  if (!Array.isArray(body)) return 'one';
  if (body.length === 0) return 'batch';
  let samples = 0;
  for (const item of body) if (typeof item === 'object' && item !== null) samples++;
  return samples === 0 ? 'one' : samples === body.length ? 'batch' : 'mixed';
}

/** Predicts a batch in chunks of `PREDICT_CHUNK` (one forward pass each), letting the event loop turn between them. */
export async function predictBatch(service: PredictionService, version: ModelVersion, records: readonly unknown[], unknown: 'reject' | 'ignore'): Promise<(PredictionResult | PredictionFailure)[]> {
  const out: (PredictionResult | PredictionFailure)[] = [];
  for (let i = 0; i < records.length; i += PREDICT_CHUNK) {
    if (i > 0) await nextTurn();
    const chunk = service.predictMany(version, records.slice(i, i + PREDICT_CHUNK), unknown);
    for (const entry of chunk) out.push(entry);
  }
  return out;
}

/**
 * The records of a request through one forward pass, but those with a stray field: these
 * are answered with their error in `out` (at their place) and the others go on without
 * them; `index[j]` is where `results[j]` belongs.
 */
function predictKept<T>(version: ModelVersion, records: readonly unknown[], unknown: 'reject' | 'ignore', out: (T | PredictionFailure)[]): { results: ReturnType<ModelVersion['predictMany']>; index: number[] } {
  const kept: unknown[] = [], index: number[] = [];
  for (let i = 0; i < records.length; i++) {
    const stray = unknown === 'reject' ? strayProblem(version, records[i]) : null;
    if (stray === null) {
      kept.push(records[i]);
      index.push(i);
    } else out[i] = stray;
  }
  return { results: version.predictMany(kept), index };
}

import { jsKernels } from '../core/kernels-js.ts';
import { bitwiseKernels } from '../core/backend.ts';
import { createModel, type Topology, topologyOf } from '../core/model.ts';
import { type ModelArtifact, type Preprocessing, preprocessingToJSON } from '../pipeline/model-artifact.ts';
import { type BatchPredictor, createBatchPredictor, createPredictor, type Predictor } from '../pipeline/predict-record.ts';
import { StreamgradError } from '../core/errors.ts';

/**
 * Samples of a batch predicted between two yields to the event loop, and the rows of a
 * version's batch workspace (one forward pass per chunk): small enough that a single
 * request waits at most ~0.5 ms behind a bulk one.
 */
export const PREDICT_CHUNK = 128;

/** A model as plain data, to post to another thread: its shape, its weights and its preprocessing. */
export interface ModelData {
  readonly topology: Topology;
  readonly params: Float64Array;
  readonly preprocessing: Preprocessing | null;
}

/** `artifact` as plain data, its weights copied (frozen as they are now). */
export function modelData(artifact: ModelArtifact): ModelData {
  return { topology: topologyOf(artifact.model), params: Float64Array.from(artifact.model.params), preprocessing: artifact.preprocessing };
}

/**
 * A model artifact of its own from `topology`, `params` (copied) and `preprocessing`, on the
 * plain JavaScript kernels, as every version's model is.
 *
 * @example const artifact = artifactFrom({ topology, params, preprocessing: null });
 */
export function artifactFrom(data: { readonly topology: Topology; readonly params: ArrayLike<number>; readonly preprocessing: Preprocessing | null }): ModelArtifact {
  const model = createModel(data.topology, jsKernels);
  model.params.set(data.params);
  return { model, preprocessing: data.preprocessing };
}

/** The label `promote` sets when it names none, and the one callers ask for to get the vetted model. */
export const STABLE = 'stable';

/** What every prediction answer says of the model that answered (`PredictionMeta` on the wire). */
export interface VersionInfo {
  /** The model's name: the run's id, or the name given to `serve --model NAME=FILE`. */
  readonly model: string;
  /** 1, 2, 3, …: monotonic per model while the server runs (a new one at each published snapshot that changed the weights). */
  readonly version: number;
  /** The trainer's step count when the version was taken. */
  readonly step: number;
  /** Samples the model had seen then. */
  readonly samples: number;
  /** When the version was taken (ms since the epoch; for a saved model, its file's modification time). */
  readonly time: number;
}

/** Where a version stands: its labels, and the checkpoint written at it, if any. */
export interface VersionListing extends VersionInfo {
  readonly labels: readonly string[];
  readonly checkpoint?: string;
}

/** Why a version cannot be had: an unknown one (`SG_ERR_UNKNOWN_VERSION`) or a bad label (`SG_ERR_SCHEMA`). */
export interface VersionProblem {
  readonly code: 'SG_ERR_UNKNOWN_VERSION' | 'SG_ERR_SCHEMA' | 'SG_ERR_STATE';
  readonly message: string;
}

/** A label: lower-case letters, digits, `-` and `_`, 1 to 32 characters, starting with a letter; `latest` is not one. */
export const LABEL_PATTERN = /^[a-z][a-z0-9_-]{0,31}$/;

/**
 * One version of a model: an immutable copy of its weights and of the preprocessing it
 * had at that moment, and the predictor over them (built on first use). Nothing writes to
 * a version after it is made, so a request answered from it never sees a half-updated model,
 * however training goes on meanwhile.
 */
export class ModelVersion implements VersionInfo {
  readonly model: string;
  readonly version: number;
  readonly step: number;
  readonly samples: number;
  readonly time: number;
  /** The checkpoint written at this version (its path), when one was. */
  checkpoint: string | undefined;
  readonly artifact: ModelArtifact;
  private predictor: Predictor | null = null;
  private batchPredictor: BatchPredictor | null = null;

  constructor(info: VersionInfo, artifact: ModelArtifact) {
    this.model = info.model;
    this.version = info.version;
    this.step = info.step;
    this.samples = info.samples;
    this.time = info.time;
    this.artifact = artifact;
  }

  /**
   * The version's predictor (`createPredictor` over its frozen weights and preprocessing),
   * on the plain JavaScript kernels: versions are made a few times a second, and
   * WebAssembly memory does not shrink.
   */
  get predict(): Predictor {
    this.predictor ??= createPredictor(this.artifact, { kernels: jsKernels });
    return this.predictor;
  }

  /**
   * The version's batch predictor (`createBatchPredictor`): a bulk request's chunk in one
   * forward pass, each answer bitwise what `predict` gives for its record. On the
   * WebAssembly kernels where they run (bitwise the JavaScript ones, and a sixth less of
   * the server thread's CPU per bulk prediction: bench:predict-bulk); the workspace is made
   * only for a version that answers a batch, and comes back to the module's memory when
   * the version is dropped.
   */
  get predictMany(): BatchPredictor {
    this.batchPredictor ??= createBatchPredictor(this.artifact, { kernels: bitwiseKernels(), rows: PREDICT_CHUNK });
    return this.batchPredictor;
  }

  /** The meta every answer carries. */
  info(): VersionInfo {
    return { model: this.model, version: this.version, step: this.step, samples: this.samples, time: this.time };
  }
}

/** A version as `saveLabels` keeps it: its meta, the checkpoint written at it, and its frozen weights and preprocessing. */
export interface SavedVersion {
  readonly info: VersionInfo;
  readonly checkpoint?: string;
  readonly params: Float64Array;
  readonly preprocessing: Preprocessing | null;
}

/**
 * What a model's labels need to answer as before after a restart (`saveLabels`,
 * `restoreLabels`): the next version number, where each label pointed (the tail of its
 * history, for `rollback`), and the versions those point to and the newest one, with their
 * weights (a label's version is usually not the weights a checkpoint or a model file holds).
 */
export interface LabelsSnapshot {
  /** The number the next version gets (numbers stay monotonic across the restart). */
  readonly next: number;
  /** The newest version's number, or null. */
  readonly latest: number | null;
  /** Per label, the versions it pointed to, oldest first (the last one is where it points). */
  readonly labels: Readonly<Record<string, readonly number[]>>;
  /** Every version named above, oldest first. */
  readonly versions: readonly SavedVersion[];
}

/** Entries of each label's history `saveLabels` keeps by default: where it points, and one `rollback`. */
export const SAVED_LABEL_DEPTH = 2;

/**
 * Which numbers a store may give (a run's reservation on disk, server/version-numbers.ts):
 * without one, a store numbers from 1 on (a saved model, a run that cannot resume).
 */
export interface VersionNumbers {
  /** The lowest number to give: every lower one may have been given before a restart. */
  readonly first: number;
  /** Whether `number` may be given now; false while its reservation is still being written. */
  allows(number: number): boolean;
}

/** Bounds of a model's version store. */
export interface VersionStoreOptions {
  /** Most recent versions kept (default 32, at least 1); labelled versions are kept besides them. */
  readonly keep?: number;
  /** Called when a version is forgotten (its metrics series go with it). */
  readonly onEvict?: (version: ModelVersion) => void;
  /** The numbers it may give (default: any, from 1). */
  readonly numbers?: VersionNumbers;
  /** Older versions kept `SPACED_VERSION_MS` apart besides the recent ones (default `keep`; 0: none). */
  readonly spaced?: number;
}

/** Versions kept by default. */
export const DEFAULT_KEEP_VERSIONS = 32;

/**
 * How far apart (by their `time`) the older versions a store keeps beyond the recent ones
 * are: a run publishing 30 versions a second leaves its last 32 within a second, too soon to
 * try one and promote it; one version per 10 s is kept besides them (as many as `keep`:
 * about five minutes back by default).
 */
export const SPACED_VERSION_MS = 10_000;

/**
 * The versions of one model the server can answer from: the last `keep` versions, as many
 * older ones spaced at least `SPACED_VERSION_MS` apart (so that a version read from
 * `/models` is still there minutes later to be tried and promoted), plus every version a
 * label points to or pointed to (a label's history is kept, `keep` deep, so that `rollback`
 * can go back). `latest` is always the newest version. Memory is bounded: at most `keep`
 * recent versions, `keep` spaced ones and `keep` per label.
 *
 * @example
 * const store = new ModelVersions('deep', topology);
 * store.offer(model.params, preprocessing, { step: 120, samples: 3840, time: Date.now() });
 * store.promote(1);                      // `stable` is version 1
 * store.resolve('stable');               // the ModelVersion
 * store.rollback();                      // `stable` goes back to what it was before (an error when nothing was)
 */
export class ModelVersions {
  readonly keep: number;
  private readonly spacedKeep: number;
  private readonly recent: ModelVersion[] = [];
  /** Older versions, oldest first, each at least SPACED_VERSION_MS after the one before. */
  private readonly spaced: ModelVersion[] = [];
  private readonly byNumber = new Map<number, ModelVersion>();
  /** Per label, the versions it pointed to, oldest first; the last one is where it points. */
  private readonly labels = new Map<string, number[]>();
  private next = 1;
  private readonly onEvict: (version: ModelVersion) => void;
  private readonly numbers: VersionNumbers | undefined;
  /** Whether the last `offer` found its number not yet reserved (the caller offers again later). */
  waitingForNumber = false;

  constructor(readonly name: string, readonly topology: Topology, options: VersionStoreOptions = {}) {
    this.keep = options.keep ?? DEFAULT_KEEP_VERSIONS;
    if (!(Number.isSafeInteger(this.keep) && this.keep >= 1)) throw new RangeError(`versions: keep must be an integer ≥ 1, got ${String(this.keep)}`);
    this.onEvict = options.onEvict ?? (() => undefined);
    this.numbers = options.numbers;
    this.spacedKeep = options.spaced ?? this.keep;
    if (!(Number.isSafeInteger(this.spacedKeep) && this.spacedKeep >= 0)) throw new RangeError(`versions: spaced must be an integer ≥ 0, got ${String(this.spacedKeep)}`);
  }

  /** The newest version, or null before the first. */
  get latest(): ModelVersion | null {
    return this.recent.length === 0 ? null : this.recent[this.recent.length - 1];
  }

  /**
   * Takes a new version from `params` (copied) and `preprocessing` (kept: pass a fresh
   * object), unless the newest version has the same step, samples, weights bit for bit and
   * preprocessing (nothing changed: a paused run publishing again), or its number is not
   * reserved yet (`waitingForNumber`: offer again later). Returns the new version, or null.
   */
  offer(params: ArrayLike<number>, preprocessing: Preprocessing | null, at: { readonly step: number; readonly samples: number; readonly time: number }): ModelVersion | null {
    this.waitingForNumber = false;
    const last = this.latest;
    if (last !== null && last.step === at.step && last.samples === at.samples && sameValues(last.artifact.model.params, params) && samePreprocessing(last.artifact.preprocessing, preprocessing)) return null;
    if (this.numbers !== undefined) {
      // numbers below `first` may have been given before a restart, to other weights
      if (this.next < this.numbers.first) this.next = this.numbers.first;
      this.waitingForNumber = !this.numbers.allows(this.next);
      if (this.waitingForNumber) return null;
    }
    const version = new ModelVersion({ model: this.name, version: this.next++, step: at.step, samples: at.samples, time: at.time }, artifactFrom({ topology: this.topology, params, preprocessing }));
    this.recent.push(version);
    this.byNumber.set(version.version, version);
    while (this.recent.length > this.keep) this.retire(this.recent.shift()!);
    return version;
  }

  /**
   * The version a caller asks for: `latest` (or undefined), a version number, or a label
   * (`stable`). A number that is not kept, or a label that points nowhere, is a problem
   * (whose message does not quote the label: it is the caller's text, PROTOCOL.md "error").
   */
  resolve(selector: string | number | undefined): ModelVersion | VersionProblem {
    if (selector === undefined || selector === 'latest') {
      return this.latest ?? { code: 'SG_ERR_UNKNOWN_VERSION', message: `model ${JSON.stringify(this.name)} has no version yet` };
    }
    if (typeof selector === 'number') {
      return this.byNumber.get(selector) ?? { code: 'SG_ERR_UNKNOWN_VERSION', message: `model ${JSON.stringify(this.name)} has no version ${selector} in memory (${this.describeKept()})` };
    }
    if (!LABEL_PATTERN.test(selector)) return { code: 'SG_ERR_SCHEMA', message: 'version: must be "latest", a version number or a label (a-z, 0-9, - and _, up to 32 characters)' };
    const history = this.labels.get(selector);
    if (history === undefined || history.length === 0) return { code: 'SG_ERR_UNKNOWN_VERSION', message: `model ${JSON.stringify(this.name)} has no version under that label (promote one first)` };
    return this.byNumber.get(history[history.length - 1])!;
  }

  /** Points `label` (default `stable`) at a kept version; the version it pointed to before is kept for `rollback`. */
  promote(version: number, label = STABLE): { readonly label: string; readonly version: number; readonly previous: number | null } | VersionProblem {
    if (!LABEL_PATTERN.test(label) || label === 'latest') return { code: 'SG_ERR_SCHEMA', message: 'label: a-z, 0-9, - and _, up to 32 characters, starting with a letter, not "latest"' };
    const target = this.byNumber.get(version);
    if (target === undefined) return { code: 'SG_ERR_UNKNOWN_VERSION', message: `model ${JSON.stringify(this.name)} has no version ${version} in memory (${this.describeKept()})` };
    const history = this.labels.get(label) ?? [];
    this.labels.set(label, history);
    const previous = history.length === 0 ? null : history[history.length - 1];
    if (previous !== version) {
      history.push(version);
      while (history.length > this.keep) this.release(history.shift()!);
    }
    return { label, version, previous };
  }

  /** Points `label` back at the version it pointed to before the last `promote`; a problem when there was none. */
  rollback(label = STABLE): { readonly label: string; readonly version: number; readonly from: number } | VersionProblem {
    const history = this.labels.get(label);
    if (history === undefined || history.length < 2) {
      return { code: 'SG_ERR_STATE', message: `model ${JSON.stringify(this.name)}: that label has no earlier version to roll back to` };
    }
    const from = history.pop()!;
    this.release(from);
    return { label, version: history[history.length - 1], from };
  }

  /** Every kept version, oldest first, with its labels. */
  list(): VersionListing[] {
    const labelsOf = new Map<number, string[]>();
    for (const [label, history] of this.labels) {
      if (history.length > 0) labelsOf.set(history[history.length - 1], [...(labelsOf.get(history[history.length - 1]) ?? []), label]);
    }
    return [...this.byNumber.values()].sort((a, b) => a.version - b.version).map((v) => ({
      ...v.info(),
      labels: labelsOf.get(v.version) ?? [],
      ...(v.checkpoint !== undefined && { checkpoint: v.checkpoint }),
    }));
  }

  /** Where each label points now. */
  labelled(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [label, history] of this.labels) if (history.length > 0) out[label] = history[history.length - 1];
    return out;
  }

  /**
   * The labels as they stand, with the versions they need (the last `depth` entries of each
   * label's history, and the newest version), for a restart to answer as before.
   */
  saveLabels(depth = SAVED_LABEL_DEPTH): LabelsSnapshot {
    const labels: Record<string, number[]> = {};
    const wanted = new Set<number>();
    for (const [label, history] of this.labels) {
      if (history.length === 0) continue;
      labels[label] = history.slice(-depth);
      for (const n of labels[label]) wanted.add(n);
    }
    const latest = this.latest;
    if (latest !== null) wanted.add(latest.version);
    const versions = [...wanted].sort((a, b) => a - b).map((n) => this.byNumber.get(n)).filter((v): v is ModelVersion => v !== undefined).map((v) => ({
      info: v.info(), ...(v.checkpoint !== undefined && { checkpoint: v.checkpoint }), params: Float64Array.from(v.artifact.model.params), preprocessing: v.artifact.preprocessing,
    }));
    return { next: this.next, latest: latest?.version ?? null, labels, versions };
  }

  /**
   * Puts saved labels back into a store that has no version yet (before a run's or a saved
   * model's first version): the saved versions come back with their numbers, meta and
   * weights, each label points where it pointed, the newest saved version is `latest` until
   * a newer one comes, and the next version is numbered after them all.
   */
  restoreLabels(saved: LabelsSnapshot): void {
    if (this.byNumber.size > 0 || this.next !== 1) throw new Error(`versions of ${JSON.stringify(this.name)}: labels are restored before the first version`);
    const size = createModel(this.topology, jsKernels).params.length;
    for (const v of saved.versions) {
      if (v.params.length !== size) throw new StreamgradError('SG_ERR_MODEL', `versions of ${JSON.stringify(this.name)}: saved version ${v.info.version} has ${v.params.length} parameters, the model ${size}`, 'versions');
    }
    for (const v of saved.versions) {
      const version = new ModelVersion({ ...v.info, model: this.name }, artifactFrom({ topology: this.topology, params: v.params, preprocessing: v.preprocessing }));
      version.checkpoint = v.checkpoint;
      this.byNumber.set(version.version, version);
    }
    for (const [label, history] of Object.entries(saved.labels)) {
      const kept = history.filter((n) => this.byNumber.has(n));
      if (kept.length > 0 && LABEL_PATTERN.test(label)) this.labels.set(label, kept);
    }
    const latest = saved.latest === null ? undefined : this.byNumber.get(saved.latest);
    if (latest !== undefined) this.recent.push(latest);
    const highest = Math.max(0, ...this.byNumber.keys());
    this.next = Math.max(saved.next, highest + 1);
  }

  /** A version that left the recent window: kept among the spaced ones if far enough after the last of them, else forgotten. */
  private retire(version: ModelVersion): void {
    const last = this.spaced[this.spaced.length - 1];
    if (this.spacedKeep === 0 || (last !== undefined && version.time - last.time < SPACED_VERSION_MS)) return this.forget(version);
    this.spaced.push(version);
    while (this.spaced.length > this.spacedKeep) this.forget(this.spaced.shift()!);
  }

  /** Forgets a version that left the recent window, unless a label still holds it. */
  private forget(version: ModelVersion): void {
    if (this.held(version.version)) return;
    this.byNumber.delete(version.version);
    this.onEvict(version);
  }

  /** A label let go of `number`: forget it unless it is recent or still held. */
  private release(number: number): void {
    const version = this.byNumber.get(number);
    if (version === undefined || this.recent.includes(version) || this.spaced.includes(version) || this.held(number)) return;
    this.byNumber.delete(number);
    this.onEvict(version);
  }

  private held(number: number): boolean {
    for (const history of this.labels.values()) if (history.includes(number)) return true;
    return false;
  }

  private describeKept(): string {
    const first = this.recent[0]?.version, last = this.latest?.version;
    const labels = Object.entries(this.labelled()).map(([l, v]) => `${l} ${v}`);
    const spaced = this.spaced.length === 0 ? [] : [`${this.spaced.length} older ones ${SPACED_VERSION_MS / 1000} s or more apart, ${this.spaced[0].version} to ${this.spaced[this.spaced.length - 1].version}`];
    return [first === undefined ? 'no versions' : `versions ${first} to ${last!} are kept`, ...spaced, ...labels].join('; ');
  }
}

/**
 * Whether two preprocessings are the same (compared only when step, samples and weights
 * are): a model file rewritten with the same weights but other statistics or features
 * (`serve --watch`) is a new version, not ignored while the server answers with the old ones.
 */
function samePreprocessing(a: Preprocessing | null, b: Preprocessing | null): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  return JSON.stringify(preprocessingToJSON(a)) === JSON.stringify(preprocessingToJSON(b));
}

function sameValues(a: Float64Array, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

/** What a saved model's one version says of it (`addModel`). */
export interface SavedModelInfo {
  /** The trainer's step count it was saved at (a checkpoint's; default 0: a model file does not record it). */
  readonly step?: number;
  /** Samples it had seen (default 0). */
  readonly samples?: number;
  /** When it was saved, ms since the epoch (default now). */
  readonly time?: number;
}

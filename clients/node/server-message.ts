import type {
  AckMessage, ErrorMessage, EventMessage, HelloMessage, MetricsMessage, ModelInfo, PredictionFailure, PredictionMessage, PredictionMeta, PredictionResult, PredictionsMessage, RecentEventsMessage, RunInfo, RunMessage, RunRemovedMessage, ScalarsMessage, ServerMessage,
} from '../../server/protocol.ts';
import { RUN_EVENT_TYPES } from '../../pipeline/run-event-types.ts';

/**
 * The one check of what a server sends, for every client (the Node client and `streamgrad
 * watch` on it, and the dashboard, `clients/dashboard/src/wire.ts`, which adds only what
 * the page can draw). Every field a client reads is checked for its type here: numbers
 * finite, or null where the protocol says so; counts non-negative integers; strings of
 * bounded length; objects where objects are read. A malformed or unknown message is
 * dropped whole (and counted by the caller) instead of reaching code that would throw on
 * it, such as a `metrics` message whose `metrics` is null. Nothing is trusted to be markup
 * or terminal text: callers still print it through their own `printable`.
 */

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown, max = 4096): v is string => typeof v === 'string' && v.length <= max;
const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isNumOrNull = (v: unknown): v is number | null => v === null || isNum(v);
const isCount = (v: unknown): v is number => isNum(v) && v >= 0 && Number.isSafeInteger(v);
const isNumArray = (v: unknown, length: number): v is number[] => Array.isArray(v) && v.length === length && v.every(isNum);

const RUN_STATES = new Set(['idle', 'running', 'paused', 'stopped', 'completed', 'failed']);
/** Every event type of the protocol (the runs' own list): an `event` of another type is dropped. */
const EVENTS: ReadonlySet<string> = new Set<string>(RUN_EVENT_TYPES);
/** Every message type a server sends: a record, so that the type checker names one left out of `parseServerMessage`. */
export const SERVER_MESSAGE_TYPES: Readonly<Record<ServerMessage['type'], true>> = {
  hello: true, run: true, 'run-removed': true, metrics: true, scalars: true, predictions: true, event: true, 'recent-events': true, ack: true, error: true, prediction: true,
};
/** Most points a `scalars` message may hold (far above the server's 1,024). */
const MAX_SCALAR_POINTS = 1 << 16;
const SCALAR_SERIES = ['time', 'loss', 'batchLoss', 'mae', 'accuracy', 'gradNorm', 'learningRate'] as const;
/** Sanity bounds on what a run can be (far above what a server builds: 2^20 units, any number of layers up to 1024). */
const MAX_LAYERS = 1024;
const MAX_UNITS = 2 ** 20;

/** A run as the hello and `run` messages describe it. */
export function isRunInfo(v: unknown): v is RunInfo {
  if (!isObj(v) || !isStr(v.id, 256) || v.id.length === 0 || !isStr(v.state) || !RUN_STATES.has(v.state)) return false;
  if (!isCount(v.step) || !isCount(v.parameters) || !isStr(v.loss, 64)) return false;
  const t = v.topology;
  if (!isObj(t) || !isCount(t.inputSize) || t.inputSize < 1 || t.inputSize > MAX_UNITS || !Array.isArray(t.layers)) return false;
  if (t.layers.length < 1 || t.layers.length > MAX_LAYERS) return false;
  for (const layer of t.layers as unknown[]) {
    if (!isObj(layer) || !isCount(layer.units) || layer.units < 1 || layer.units > MAX_UNITS || !isStr(layer.activation, 64)) return false;
  }
  const o = v.optimizer;
  return isObj(o) && isStr(o.type, 64) && isNum(o.learningRate);
}

/** Most models a hello may list, and labels per model (far above what a server holds). */
const MAX_MODELS = 100_000;
const MAX_LABELS = 1024;

/** A served model as the hello lists it: a name, its kind, its newest version (or null) and its labels' versions. */
export function isModelInfo(v: unknown): v is ModelInfo {
  if (!isObj(v) || !isStr(v.name, 256) || v.name.length === 0 || (v.kind !== 'run' && v.kind !== 'saved')) return false;
  if (v.latest !== null && !isCount(v.latest)) return false;
  if (!isObj(v.labels)) return false;
  const labels = Object.entries(v.labels);
  return labels.length <= MAX_LABELS && labels.every(([label, version]) => label.length <= 32 && isCount(version));
}

function isMetrics(m: Obj): boolean {
  const w = m.metrics;
  if (!isStr(m.run, 256) || !isCount(m.step) || !isNumOrNull(m.loss) || !isNumOrNull(m.gradNorm) || !isNum(m.learningRate)) return false;
  if (!isNumOrNull(m.samplesPerSecond) || !isStr(m.state) || !RUN_STATES.has(m.state) || !isObj(m.counters)) return false;
  if (!isObj(w) || !isCount(w.window) || !isCount(w.count) || !isNumOrNull(w.loss) || !isNumOrNull(w.mae) || (w.accuracy !== undefined && !isNumOrNull(w.accuracy))) return false;
  if (m.time !== undefined && !isNum(m.time)) return false;
  if (m.labels !== undefined && !(isObj(m.labels) && Object.keys(m.labels).length <= 64 && Object.values(m.labels).every(isCount))) return false;
  return Object.values(m.counters).every(isNum);
}

/** A `scalars` history: equal-length columns, steps ascending counts, the rest finite or null. */
function isScalars(m: Obj): boolean {
  if (!isStr(m.run, 256) || !isCount(m.points) || m.points > MAX_SCALAR_POINTS || !isCount(m.stride) || !isNum(m.t0)) return false;
  const n = m.points;
  if (!Array.isArray(m.step) || m.step.length !== n || !m.step.every(isCount)) return false;
  for (let i = 1; i < n; i++) if ((m.step[i] as number) <= (m.step[i - 1] as number)) return false;
  return SCALAR_SERIES.every((k) => Array.isArray(m[k]) && (m[k] as unknown[]).length === n && (m[k] as unknown[]).every(isNumOrNull));
}

function isEvent(m: Obj): boolean {
  return isStr(m.run, 256) && isStr(m.event) && EVENTS.has(m.event) && isCount(m.step) && isNum(m.time) && (m.detail === undefined || isObj(m.detail));
}

function isPredictions(m: Obj): boolean {
  if (!isStr(m.run, 256) || !isCount(m.step) || !isCount(m.samples) || !isCount(m.rows) || !isCount(m.outputSize)) return false;
  if (m.rows > 4096 || m.outputSize < 1 || m.outputSize > MAX_UNITS) return false;
  const n = m.rows * m.outputSize;
  if (!isNumArray(m.outputs, n) || !isNumArray(m.targets, n)) return false;
  return m.inputs === undefined || (Array.isArray(m.inputs) && m.rows > 0 && m.inputs.length % m.rows === 0 && m.inputs.every(isNum));
}

/** One sample's answer in a `prediction` message: outputs (finite), an optional class and probabilities, or an error. */
function isPredictionEntry(v: unknown): boolean {
  if (!isObj(v)) return false;
  if (v.error !== undefined) return isObj(v.error) && isStr(v.error.code, 64) && isStr(v.error.message);
  if (!Array.isArray(v.y) || v.y.length > MAX_UNITS || !v.y.every(isNum)) return false;
  if (v.class !== undefined && !isStr(v.class, 1024) && !isNum(v.class)) return false;
  return v.probabilities === undefined || (isObj(v.probabilities) && Object.values(v.probabilities).every(isNum));
}

/** Which version answered: model, version, step, samples, time. */
function isPredictionMeta(m: Obj): boolean {
  return isStr(m.model, 256) && isCount(m.version) && isCount(m.step) && isCount(m.samples) && isNum(m.time);
}

/** The meta and one prediction, or one entry per sample of a batch (what `POST /predict` answers, and a `prediction` message besides its id). */
function isPredictionBody(m: Obj): boolean {
  if (!isPredictionMeta(m)) return false;
  if (m.prediction !== undefined) return m.predictions === undefined && isPredictionEntry(m.prediction) && !isObj((m.prediction as Obj).error);
  return Array.isArray(m.predictions) && m.predictions.every(isPredictionEntry);
}

function isPrediction(m: Obj): boolean {
  return isStr(m.id, 128) && isPredictionBody(m);
}

/** The answer of `POST /predict` (JSON), checked as the `prediction` message is (without its type and id); null when malformed. */
export function parsePredictionAnswer(value: unknown): PredictionAnswer | null {
  return isObj(value) && isPredictionBody(value) ? (value as unknown as PredictionAnswer) : null;
}

/** The first line of an NDJSON answer of `POST /predict`: which version answers every line; null when malformed. */
export function parsePredictionMeta(value: unknown): PredictionMeta | null {
  return isObj(value) && isPredictionMeta(value) ? (value as unknown as PredictionMeta) : null;
}

/** One line after it: a prediction, or `{line, error}`; null when malformed. */
export function parseBulkLine(value: unknown): PredictionResult | BulkLineFailure | null {
  if (!isObj(value)) return null;
  if (value.error !== undefined) return isCount(value.line) && isPredictionEntry(value) ? (value as unknown as BulkLineFailure) : null;
  return isPredictionEntry(value) ? (value as unknown as PredictionResult) : null;
}

/** An answer of `POST /predict`: the version that answered, one prediction or one entry per sample. */
export interface PredictionAnswer extends PredictionMeta {
  readonly prediction?: PredictionResult;
  readonly predictions?: readonly (PredictionResult | PredictionFailure)[];
}

/** A line of an NDJSON body the model could not answer (1-based `line`); the lines after it are answered. */
export interface BulkLineFailure extends PredictionFailure {
  readonly line: number;
}

/**
 * Parses one text frame from a server; null for anything that is not a well-formed
 * protocol server message. Never throws. A hello of any protocol version passes (when it
 * is otherwise well formed), so that a client can say which version it met.
 *
 * @example
 * const message = parseServerMessage(text);
 * if (message === null) stats.badMessages++;
 * else if (message.type === 'metrics') show(message.metrics.loss); // checked: never a TypeError
 */
export function parseServerMessage(text: string): ServerMessage | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObj(value)) return null;
  const m = value;
  switch (m.type) {
    case 'hello':
      if (!Number.isSafeInteger(m.protocol) || (m.access !== 'control' && m.access !== 'read-only') || !Array.isArray(m.runs)) return null;
      if (m.experiment !== undefined && !(isObj(m.experiment) && (m.experiment.description === undefined || isStr(m.experiment.description, 1000)) && (m.experiment.task === undefined || isStr(m.experiment.task, 1000)) && (m.experiment.target === undefined || isStr(m.experiment.target, 200)))) return null;
      if (m.models !== undefined && !(Array.isArray(m.models) && m.models.length <= MAX_MODELS && m.models.every(isModelInfo))) return null;
      return m.runs.every(isRunInfo) ? (m as unknown as HelloMessage) : null;
    case 'run':
      return isRunInfo(m.run) ? (m as unknown as RunMessage) : null;
    case 'run-removed':
      return isStr(m.run, 256) ? (m as unknown as RunRemovedMessage) : null;
    case 'metrics':
      return isMetrics(m) ? (m as unknown as MetricsMessage) : null;
    case 'scalars':
      return isScalars(m) ? (m as unknown as ScalarsMessage) : null;
    case 'predictions':
      return isPredictions(m) ? (m as unknown as PredictionsMessage) : null;
    case 'event':
      return isEvent(m) ? (m as unknown as EventMessage) : null;
    case 'recent-events':
      return isStr(m.run, 256) && Array.isArray(m.events) && m.events.length <= 1000 && m.events.every((e) => isObj(e) && e.type === 'event' && isEvent(e) && e.run === m.run) ? (m as unknown as RecentEventsMessage) : null;
    case 'ack':
      return isStr(m.id, 128) && isStr(m.command, 64) && typeof m.duplicate === 'boolean' ? (m as unknown as AckMessage) : null;
    case 'prediction':
      return isPrediction(m) ? (m as unknown as PredictionMessage) : null;
    case 'error':
      return isStr(m.code, 64) && isStr(m.message) && (m.id === undefined || isStr(m.id, 128)) ? (m as unknown as ErrorMessage) : null;
    default:
      return null;
  }
}

import { z } from 'zod';
import type { RunEventType } from '../pipeline/run-event-types.ts';

/**
 * Protocol v1 between a streamgrad server and its clients (see PROTOCOL.md beside this
 * file). Small messages are JSON text frames; weights and gradients travel in binary
 * frames (`snapshot-frame.ts`). This module has no Node dependencies: browser clients
 * import the same types.
 */
export const PROTOCOL_VERSION = 1;

/** Stable error codes of the protocol. */
export type ProtocolErrorCode =
  | 'SG_ERR_BAD_JSON'
  | 'SG_ERR_UNKNOWN_TYPE'
  | 'SG_ERR_SCHEMA'
  | 'SG_ERR_FORBIDDEN'
  | 'SG_ERR_UNKNOWN_RUN'
  | 'SG_ERR_RATE_LIMIT'
  | 'SG_ERR_STATE'
  | 'SG_ERR_CONFIG'
  | 'SG_ERR_INTERNAL'
  // predictions (`POST /predict`, the `predict` message): what is wrong with a sample or a request
  /** A sample has more or fewer features than the model takes. */
  | 'SG_ERR_ARITY'
  /** A sample holds NaN, ±Infinity or a number too large for a double (`1e309`). */
  | 'SG_ERR_NONFINITE_INPUT'
  /** A value of a sample has the wrong type (a string, null, an object where a number belongs). */
  | 'SG_ERR_TYPE'
  /** A named feature is absent and its missing-value policy cannot fill it. */
  | 'SG_ERR_MISSING'
  /** A named sample has a field that is neither a feature nor a target of the model. */
  | 'SG_ERR_UNKNOWN_FEATURE'
  /** The model gave NaN or ±Infinity for this sample. */
  | 'SG_ERR_NONFINITE_OUTPUT'
  /** No model of that name on this server. */
  | 'SG_ERR_UNKNOWN_MODEL'
  /** The version asked for is not in memory (never was, or forgotten), or the label points nowhere. */
  | 'SG_ERR_UNKNOWN_VERSION'
  /** A request body (or one NDJSON line) over its limit. */
  | 'SG_ERR_TOO_LARGE'
  /** A request body of a content type the endpoint does not take. */
  | 'SG_ERR_MEDIA_TYPE'
  /** A method the path does not answer. */
  | 'SG_ERR_METHOD';

/**
 * How a command ended: its ack's result, or the error to answer with. `duplicate`: the
 * result of an earlier application of the same id, not applied now (a cluster
 * partition's owner says so of an id first sent through another gateway).
 */
export type Outcome = { readonly ok: true; readonly result: unknown; readonly duplicate?: boolean } | { readonly ok: false; readonly code: ProtocolErrorCode; readonly message: string };

/** WebSocket close codes the server uses. */
export const CLOSE = {
  normal: 1000,
  goingAway: 1001,
  unsupportedData: 1003, // a binary frame where text was expected
  invalidPayload: 1007, // text that is not UTF-8
  policy: 1008, // too many bad messages, command flood, fragment flood
  tooBig: 1009, // a frame over maxPayload
  tryAgainLater: 1013, // over the client's buffer cap for too long
} as const;

/** The channels a client can subscribe to. */
export const CHANNELS = ['metrics', 'snapshots', 'gradients', 'events', 'predictions'] as const;
/** A channel a client can subscribe to (see `CHANNELS`). */
export type Channel = (typeof CHANNELS)[number];

// ---------------------------------------------------------------------------------------
// server → client

/** A run as the server announces it: id, topology, loss, optimizer and state. */
export interface RunInfo {
  readonly id: string;
  readonly state: 'idle' | 'running' | 'paused' | 'stopped' | 'completed' | 'failed';
  readonly topology: {
    readonly inputSize: number;
    readonly layers: readonly { readonly units: number; readonly activation: string }[];
  };
  readonly loss: string;
  readonly optimizer: { readonly type: string; readonly learningRate: number } & Readonly<Record<string, number | string>>;
  readonly parameters: number;
  readonly step: number;
}

/** A model that answers predictions, as the hello lists it. */
export interface ModelInfo {
  /** The run's id, or the saved model's name. */
  readonly name: string;
  /** `run`: a run the server serves (a new version as it trains); `saved`: a saved model (`streamgrad serve --model`). */
  readonly kind: 'run' | 'saved';
  /** The newest version's number (null before the first). */
  readonly latest: number | null;
  /** Where each label (`stable`, …) points: a version number. */
  readonly labels: Readonly<Record<string, number>>;
}

/** The server's first message on every connection: protocol version, access, runs and limits. */
export interface HelloMessage {
  readonly type: 'hello';
  readonly protocol: typeof PROTOCOL_VERSION;
  readonly server: string;
  /** Whether this connection may send commands. */
  readonly access: 'control' | 'read-only';
  readonly runs: readonly RunInfo[];
  /**
   * The models that answer predictions when the connection opened: every run (under its id)
   * and every saved model, with its newest version and where its labels point. Absent from
   * servers older than this field.
   */
  readonly models?: readonly ModelInfo[];
  /** What the server's runs are about, when the one who started it said (`serve({ experiment })`). */
  readonly experiment?: ExperimentInfo;
  /** A cluster gateway's fellow gateways, itself included (`http` and `ws` URLs): where a dashboard goes when this one dies. */
  readonly gateways?: readonly { readonly id: string; readonly url: string; readonly wsUrl: string }[];
  readonly limits: {
    readonly maxPayload: number;
    readonly maxRateHz: number;
    readonly commandsPerMinute: number;
    /** The server pings every this many ms: a client that hears nothing for two intervals may reconnect. */
    readonly heartbeatMs: number;
  };
}

/** What the runs on a server are about: a sentence for people, and the task (for the dashboard's header). */
export interface ExperimentInfo {
  /** E.g. "a Michaelis–Menten sensor whose enzyme changes every minute". At most 1,000 characters. */
  readonly description?: string;
  /** E.g. "regression: predict the reaction rate from [Vmax, S]". At most 1,000 characters. */
  readonly task?: string;
  /** The target's name and unit, e.g. "reaction rate v (µM/s)": the axes of prediction plots. At most 200 characters. */
  readonly target?: string;
}

/** A run joined the server after the hello. */
export interface RunMessage {
  readonly type: 'run';
  readonly run: RunInfo;
}

/** A run left the server: nothing more comes for it, and subscriptions to it are dropped. */
export interface RunRemovedMessage {
  readonly type: 'run-removed';
  readonly run: string;
}

/** A run's latest step and rolling metrics, at the subscribed rate. */
export interface MetricsMessage {
  readonly type: 'metrics';
  readonly run: string;
  readonly step: number;
  readonly size: number;
  readonly loss: number | null;
  readonly gradNorm: number | null;
  readonly learningRate: number;
  readonly updated: boolean;
  readonly metrics: { readonly window: number; readonly count: number; readonly loss: number | null; readonly mae: number | null; readonly accuracy?: number | null };
  readonly samplesPerSecond: number | null;
  readonly counters: Readonly<Record<string, number>>;
  readonly state: RunInfo['state'];
  /** When the step was seen by the server (ms since the epoch); absent from older servers. */
  readonly time?: number;
  /**
   * Delayed labels (only for a run that joins labels): what its label join counted
   * (`features`, `labels`, `joined`, `early`, `outOfOrder`, `expired`, `evicted`, `dropped`,
   * `defaulted`, `deadLettered`, `duplicateFeatures`, `duplicateLabels`, `unknownLabels`,
   * `late`, `invalid` and its reasons `unusableId`, `refusedFeatures`, `refusedLabels`, `unreadable`,
   * `untimed`) and what waits (`waiting` features, `holding` labels), as of this step.
   */
  readonly labels?: Readonly<Record<string, number>>;
}

/**
 * A run's scalar history, sent once per subscription to `metrics` (before its first
 * metrics message), so that a page opened late shows the whole curve: the points the
 * server keeps (every step of a short run; the steps on multiples of `stride` of a long
 * one, and the newest step last), as columns of equal length `points`. `time` is ms
 * after `t0` (ms since the epoch); the values are rounded to 5 significant digits, null
 * where not finite (or, for `accuracy`, not measured).
 */
export interface ScalarsMessage {
  readonly type: 'scalars';
  readonly run: string;
  readonly points: number;
  readonly stride: number;
  readonly t0: number;
  readonly step: readonly number[];
  readonly time: readonly (number | null)[];
  readonly loss: readonly (number | null)[];
  readonly batchLoss: readonly (number | null)[];
  readonly mae: readonly (number | null)[];
  readonly accuracy: readonly (number | null)[];
  readonly gradNorm: readonly (number | null)[];
  readonly learningRate: readonly (number | null)[];
}

/**
 * The model's latest predictions next to their targets: the last `rows` samples trained on
 * (at most 128), each scored before it was learned, in the user's units: a model that
 * learns a standardised target (`--normalize`) has its outputs and targets mapped back
 * with `units`. Latest wins, at the subscription's rate, only when a new step happened.
 */
export interface PredictionsMessage {
  readonly type: 'predictions';
  readonly run: string;
  readonly step: number;
  /** The run's sample count at the last row: row i is sample `samples - rows + 1 + i`. */
  readonly samples: number;
  readonly rows: number;
  /** Values per row of `outputs` and `targets` (the model's output size). */
  readonly outputSize: number;
  /** rows × outputSize, row-major. */
  readonly outputs: readonly number[];
  readonly targets: readonly number[];
  /** rows × inputSize inputs as the model saw them (standardised with `--normalize`), only for models of at most 16 inputs. */
  readonly inputs?: readonly number[];
  /**
   * Only for a model that learns a standardised target: per output, how its outputs map
   * to the user's units (`y = z · scale + mean`, the run's normaliser at this step), which
   * `outputs` and `targets` already are in.
   */
  readonly units?: { readonly mean: readonly number[]; readonly scale: readonly number[] };
}

/** Something that happened to a run (paused, diverged, checkpoint written, …). */
export interface EventMessage {
  readonly type: 'event';
  readonly run: string;
  /** A run event's type: pipeline/run-event-types.ts lists them. */
  readonly event: RunEventType;
  readonly step: number;
  readonly time: number;
  readonly detail?: Readonly<Record<string, unknown>>;
}

/**
 * A run's last events (at most 64, oldest first), sent once when a client subscribes to its
 * `events` channel, before any new event: what happened before the client came (drift
 * alarms, pauses…). Events after the subscription come as `event` messages, never twice.
 */
export interface RecentEventsMessage {
  readonly type: 'recent-events';
  readonly run: string;
  readonly events: readonly EventMessage[];
}

/** The server refused a client message: a protocol error code, and the request's id when it had one. */
export interface ErrorMessage {
  readonly type: 'error';
  readonly code: ProtocolErrorCode;
  readonly message: string;
  /** The id of the message this answers, when it had one. */
  readonly id?: string;
  /** The field at fault, when one is named (a `predict`'s sample: `x[1]`, a feature; `version`, `model`), as `POST /predict` names it. */
  readonly field?: string;
}

/** The server accepted a client request (the `id` it answers). */
export interface AckMessage {
  readonly type: 'ack';
  readonly id: string;
  readonly command: string;
  /** True when this id had been applied before: the command was not applied again. */
  readonly duplicate: boolean;
  readonly result?: unknown;
}

/** Which version of which model answered a prediction (every answer carries it). */
export interface PredictionMeta {
  /** The model's name: a run's id, or a saved model's name. */
  readonly model: string;
  /** Monotonic per model while the server runs: a new one at each published snapshot that changed the weights. */
  readonly version: number;
  /** The trainer's step count at that version. */
  readonly step: number;
  /** Samples the model had seen at that version. */
  readonly samples: number;
  /** When the version was taken, ms since the epoch (a saved model: its file's modification time). */
  readonly time: number;
}

/** One sample's prediction, in the user's units (see `predictRecord`). */
export interface PredictionResult {
  /** The outputs in the target's own units. */
  readonly y: readonly number[];
  /** The class: its name when the model has class labels, else as its last layer says (absent for a regression). */
  readonly class?: string | number;
  /** With class labels: each class's output by name (softmax: its probability). */
  readonly probabilities?: Readonly<Record<string, number>>;
}

/** What was wrong with one sample of a batch (the others are answered). */
export interface PredictionFailure {
  readonly error: { readonly code: ProtocolErrorCode; readonly message: string; readonly field?: string };
}

/** The answer to a `predict` message: the version that answered, and one prediction or one per sample of the batch. */
export interface PredictionMessage extends PredictionMeta {
  readonly type: 'prediction';
  /** The request's id. */
  readonly id: string;
  /** For one sample. */
  readonly prediction?: PredictionResult;
  /** For a batch: one entry per sample, in order. */
  readonly predictions?: readonly (PredictionResult | PredictionFailure)[];
}

/** Every JSON message a server sends. */
export type ServerMessage = HelloMessage | RunMessage | RunRemovedMessage | MetricsMessage | ScalarsMessage | PredictionsMessage | EventMessage | RecentEventsMessage | ErrorMessage | AckMessage | PredictionMessage;

/** The result of a `history` request's ack; the frames it lists follow as binary `history` frames, in order. */
export interface HistoryResult {
  readonly run: string;
  /** Steps of every snapshot the server holds for the run, oldest first (a reset may repeat a step). */
  readonly steps: readonly number[];
  /** Steps of the frames that follow this ack, in order. */
  readonly sent: readonly number[];
  /** Ms between two captures at the moment (it doubles each time the history thins out). */
  readonly intervalMs: number;
  /** Most snapshots kept per run. */
  readonly capacity: number;
}

// ---------------------------------------------------------------------------------------
// client → server (validated: unknown types and fields are refused)

const id = z.string().min(1).max(128);
const runId = z.string().min(1).max(256);

export const SubscribeSchema = z.strictObject({
  type: z.literal('subscribe'),
  id: id.optional(),
  /** A run id, or `*` for every run, present and future. */
  run: runId,
  channels: z.array(z.enum(CHANNELS)).min(1).max(CHANNELS.length),
  /** Snapshot and metrics frames per second (default 10, capped by the server's maximum). */
  rateHz: z.number().positive().finite().optional(),
  /** Number type of binary frames (default float32). */
  dtype: z.enum(['float32', 'float64']).optional(),
});

export const UnsubscribeSchema = z.strictObject({
  type: z.literal('unsubscribe'),
  id: id.optional(),
  run: runId,
});

const command = <T extends string>(type: T) => z.strictObject({ type: z.literal(type), id, run: runId });

export const PauseSchema = command('pause');
export const ResumeSchema = command('resume');
export const StepSchema = command('step');
export const ResetSchema = command('reset');
export const CheckpointSchema = command('checkpoint');
export const SetLearningRateSchema = z.strictObject({
  type: z.literal('setLearningRate'),
  id,
  run: runId,
  learningRate: z.number().positive().finite(),
});

/**
 * Asks for past snapshots of a run (the timeline scrubber): the ack lists every step the
 * server holds and the steps of the frames that follow it (up to `limit`, from the first
 * at or after `fromStep`). `limit: 0` asks for the list only. Needs no control access.
 */
export const HistorySchema = z.strictObject({
  type: z.literal('history'),
  id,
  run: runId,
  fromStep: z.number().min(0).finite().optional(),
  limit: z.number().int().min(0).max(64).optional(),
});

/**
 * Presents the control token on an open connection (browsers cannot set an
 * Authorization header on a WebSocket, and the token never goes into a URL).
 */
export const AuthSchema = z.strictObject({
  type: z.literal('auth'),
  id,
  token: z.string().min(1).max(1024),
});

/** `latest`, a version number, or a label such as `stable`. */
const versionSelector = z.union([z.literal('latest'), z.number().int().min(1).max(Number.MAX_SAFE_INTEGER), z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/)]);
const label = z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/).refine((l) => l !== 'latest', 'must not be "latest"');

/**
 * Asks a model for predictions (see PROTOCOL.md, "Predictions"): `input` is one sample
 * (named values, an array of numbers in input order, or `{"x": [...]}`) or an array of
 * samples. Answered with a `prediction` message (or an `error`) carrying `id`. Needs no
 * control access; counted against the connection's prediction rate, not its command rate.
 */
export const PredictSchema = z.strictObject({
  type: z.literal('predict'),
  id,
  /** The model's name (a run id or a saved model's name); may be left out when the server has one model. */
  model: runId.optional(),
  /** `latest` (default), a version number, or a label (`stable`). */
  version: versionSelector.optional(),
  input: z.unknown().refine((v) => v !== undefined, 'required'),
  /** What a named field that is not a feature of the model does: `reject` (default, SG_ERR_UNKNOWN_FEATURE) or `ignore`. */
  unknown: z.enum(['reject', 'ignore']).optional(),
});

/** Points a label (default `stable`) at a version of a model; needs control access. Acked with `{model, label, version, previous}`. */
export const PromoteSchema = z.strictObject({
  type: z.literal('promote'),
  id,
  model: runId,
  version: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  label: label.optional(),
});

/** Points a label (default `stable`) back at the version it had before the last promote; needs control access. Acked with `{model, label, version, from}`. */
export const RollbackSchema = z.strictObject({
  type: z.literal('rollback'),
  id,
  model: runId,
  label: label.optional(),
});

export const CLIENT_SCHEMAS = {
  predict: PredictSchema,
  promote: PromoteSchema,
  rollback: RollbackSchema,
  auth: AuthSchema,
  subscribe: SubscribeSchema,
  unsubscribe: UnsubscribeSchema,
  history: HistorySchema,
  pause: PauseSchema,
  resume: ResumeSchema,
  step: StepSchema,
  reset: ResetSchema,
  checkpoint: CheckpointSchema,
  setLearningRate: SetLearningRateSchema,
} as const;

/** Authorises a connection to send commands (the session's token), e.g. from a browser page. */
export type AuthMessage = z.infer<typeof AuthSchema>;
/** Subscribes to channels of one run (or `*`). */
export type SubscribeMessage = z.infer<typeof SubscribeSchema>;
/** Ends the subscriptions to one run. */
export type UnsubscribeMessage = z.infer<typeof UnsubscribeSchema>;
/** Asks for a run's recorded parameter snapshots, from a step on, up to a limit. */
export type HistoryMessage = z.infer<typeof HistorySchema>;
/** A control command for a run (pause, resume, step, reset, checkpoint, setLearningRate). */
export type CommandMessage =
  | z.infer<typeof PauseSchema>
  | z.infer<typeof ResumeSchema>
  | z.infer<typeof StepSchema>
  | z.infer<typeof ResetSchema>
  | z.infer<typeof CheckpointSchema>
  | z.infer<typeof SetLearningRateSchema>;
/** Asks a model for predictions. */
export type PredictMessage = z.infer<typeof PredictSchema>;
/** Promotes a version to a label, or rolls a label back: the control commands of model versions. */
export type VersionCommandMessage = z.infer<typeof PromoteSchema> | z.infer<typeof RollbackSchema>;
/** Every message a client may send. */
export type ClientMessage = AuthMessage | SubscribeMessage | UnsubscribeMessage | HistoryMessage | CommandMessage | PredictMessage | VersionCommandMessage;
/** The type of a control command. */
export type CommandType = CommandMessage['type'];
/** Every control command type. */
export const COMMAND_TYPES: readonly CommandType[] = ['pause', 'resume', 'step', 'reset', 'checkpoint', 'setLearningRate'];

export type ParseResult =
  | { readonly ok: true; readonly message: ClientMessage }
  | { readonly ok: false; readonly error: ErrorMessage };

const fail = (code: ProtocolErrorCode, message: string, msgId?: unknown, field?: string): ParseResult => ({
  ok: false,
  error: { type: 'error', code, message, ...(typeof msgId === 'string' && msgId.length <= 128 ? { id: msgId } : {}), ...(field !== undefined && { field }) },
});

/**
 * Parses and validates one text frame from a client. Never throws. Error messages
 * never echo the client's input back (it could be markup), only field paths.
 */
export function parseClientMessage(text: string): ParseResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return fail('SG_ERR_BAD_JSON', 'the message is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fail('SG_ERR_SCHEMA', 'a message must be a JSON object with a "type"');
  }
  const { type, id: msgId } = value as { type?: unknown; id?: unknown };
  if (typeof type !== 'string' || !Object.hasOwn(CLIENT_SCHEMAS, type)) {
    return fail('SG_ERR_UNKNOWN_TYPE', `unknown message type; expected one of ${Object.keys(CLIENT_SCHEMAS).join(', ')}`, msgId);
  }
  const parsed = CLIENT_SCHEMAS[type as keyof typeof CLIENT_SCHEMAS].safeParse(value);
  if (!parsed.success) {
    // an unknown field is counted, not named: its name is the client's text
    const problems = parsed.error.issues.map((issue) => `${issue.path.length > 0 ? issue.path.join('.') : '(message)'}: ${issue.code === 'unrecognized_keys' ? `${issue.keys.length} unknown field${issue.keys.length === 1 ? '' : 's'} (the fields of ${type} are ${Object.keys(CLIENT_SCHEMAS[type as keyof typeof CLIENT_SCHEMAS].shape).join(', ')})` : issue.message}`);
    // the field at fault, as an answer to a predict names it (`version`, `input`, ...): the first issue's path, when it has one
    const path = parsed.error.issues.find((issue) => issue.path.length > 0)?.path;
    return fail('SG_ERR_SCHEMA', `${type}: ${problems.join('; ')}`, msgId, path?.map(String).join('.'));
  }
  return { ok: true, message: parsed.data as ClientMessage };
}

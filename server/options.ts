import type { LabelsSnapshot } from './model-versions.ts';
import { fileURLToPath } from 'node:url';
import type { IngestEndpoint, WebSocketIngestOptions } from '../sources/websocket-ingest.ts';
import type { IngestRelay } from './ingest-relay.ts';
import type { ExperimentInfo } from './protocol.ts';

/**
 * Options of `serve()`. Every field has a safe default (RELIABILITY.md B2, B5, B6): a
 * small `maxPayload`, a client cap, per-connection message rates, a header timeout, a
 * heartbeat and a per-client send-buffer cap. See PROTOCOL.md, "Limits".
 */
export interface ServeOptions {
  /** TCP port (default 0: a free port, see `StreamgradServer.port`). */
  port?: number;
  /** Interface to bind (default 127.0.0.1: loopback only). */
  host?: string;
  /** Control token (default `process.env.STREAMGRAD_TOKEN`); without one every client is read-only. */
  token?: string;
  /** Exact-match Origin allow-list (default: the server's own origins, http://127.0.0.1:PORT and http://localhost:PORT). */
  allowedOrigins?: string[];
  /** The dashboard's built files (default `<repo>/clients/dashboard/dist`; missing → 404 for every file). */
  staticDir?: string;
  /** Largest message a client may send, in bytes (default 64 KiB); larger → close 1009. */
  maxPayload?: number;
  /** Most WebSocket clients at once (default 1000); further handshakes get 503. */
  maxClients?: number;
  /**
   * Most WebSocket handshakes waiting to be completed at once (default 1024); further ones
   * get 503. A burst of connections is completed a few ms at a time, so that `/healthz` and
   * other requests arriving meanwhile are answered in between (server/upgrade-queue.ts).
   */
  maxQueuedUpgrades?: number;
  /**
   * WebSocket handshakes the server makes to itself right after it starts listening, in
   * the background, 100 at a time (at most a tenth of `maxClients`: they count towards it
   * while they wait; default 0: none; the CLI makes 1000). A server's first burst of
   * connections otherwise runs on code V8 has not compiled yet, at about three times the
   * CPU per handshake of a warm server (server/warm-up.ts). They go through the
   * same path as a client's but are not counted, logged or listed as clients
   * (`stats.warmUpHandshakes` counts them).
   */
  warmUpHandshakes?: number;
  /** Snapshot and metrics rate of a subscription that names none (default 10 Hz). */
  defaultRateHz?: number;
  /** Highest rate a subscription may ask for (default 30 Hz); faster requests are capped. */
  maxRateHz?: number;
  /** Commands, auth and subscription messages per connection per minute (default 100); over → SG_ERR_RATE_LIMIT, close 1008. */
  commandsPerMinute?: number;
  /** Malformed, unknown or invalid messages per connection per minute (default 20); over → close 1008. */
  badMessagesPerMinute?: number;
  /** Time a client has to send its request headers (default 10 000 ms); slower → 408. */
  headersTimeoutMs?: number;
  /** Ping interval (default 15 000 ms); a peer silent for two intervals is terminated. */
  heartbeatMs?: number;
  /** Per-client cap on unsent bytes (default 1 MiB); frames due while over it are dropped and counted. */
  maxBufferedBytes?: number;
  /** A client over its cap for longer than this is terminated (default 10 000 ms). */
  slowClientTimeoutMs?: number;
  /** Message fragments one message may have (default 1024); more → close 1008. */
  maxFragments?: number;
  /**
   * Ms between two snapshots kept in each run's history at first (default 500); the
   * interval doubles each time the history fills up and thins out. 0 keeps every step
   * until the first thinning.
   */
  historyIntervalMs?: number;
  /** Most snapshots kept in each run's history (default 240, at least 2). */
  historyFrames?: number;
  /** Most bytes of snapshots kept in each run's history (default 32 MiB; at least one frame is kept). */
  historyMaxBytes?: number;
  /**
   * Most recent versions of each model kept in memory for predictions (default 32); a
   * version a label (`stable`) points to, or pointed to before (for `rollback`, up to as
   * many), is kept besides. Each version is a copy of the parameters.
   */
  keepVersions?: number;
  /** Largest JSON body of `POST /predict` (default 1 MiB, at most `MAX_PREDICT_BODY_BYTES`, 256 MiB); larger → 413 SG_ERR_TOO_LARGE. */
  maxPredictBodyBytes?: number;
  /** Largest NDJSON body of `POST /predict` (default 256 MiB, streamed: never held whole); larger → an error line, and the rest is not read. */
  maxBulkBytes?: number;
  /** Longest NDJSON line of `POST /predict` (default 64 KiB); longer → that line's error, the next lines go on. */
  maxPredictLineBytes?: number;
  /** Prediction requests per second per client (an HTTP client's address, or a WebSocket connection; default 5000, in bursts up to as many); over → 429 / SG_ERR_RATE_LIMIT. */
  predictRequestsPerSecond?: number;
  /**
   * Whether bulk (NDJSON) predictions are computed on a thread of their own
   * (server/bulk-thread.ts) at `bulkNice`, rather than on the server's thread (default
   * false). Measured on a 2-core machine beside training (docs/serving.md, session 9), it
   * did not give training more of the cores and halved bulk throughput, so it is off.
   */
  bulkThread?: boolean;
  /** The bulk thread's nice value, 0 to 19 (default 19: the lowest priority). */
  bulkNice?: number;
  /** Where log lines go (default: nowhere). The token never appears in them. */
  log?: (line: string) => void;
  /**
   * Told after each `promote` or `rollback` with the model's labels as they stand, to
   * persist them (`labelsToJSON`, server/version-labels.ts); a restarted server takes them
   * back with `addRun(run, { labels })` / `addModel(…, labels)`. Labels are otherwise lost
   * when the process ends.
   */
  onLabels?: (model: string, labels: LabelsSnapshot) => void;
  /**
   * Called as each TCP connection is accepted and each HTTP request starts, synchronously
   * and often (keep it cheap): `serveInThread`'s server thread looks there whether it waits
   * for a core, to ask the training thread for one (server/cpu-demand.ts).
   */
  onActivity?: () => void;
  /**
   * What the runs are about, for the dashboard's header (sent in every `hello`): a
   * description and the task, at most 1,000 characters each.
   */
  experiment?: ExperimentInfo;
  /**
   * Sample ingestion at `/ingest` (a `WebSocketIngest` from sources/websocket-ingest.ts,
   * with its own token); without it `/ingest` answers 404.
   */
  ingest?: IngestEndpoint;
}

/**
 * The bound of `maxPredictBodyBytes` (`--max-body-bytes`): 256 MiB. A JSON body is held
 * whole, then decoded and parsed as one string, and V8's strings end at about 512 MiB (a
 * UTF-16 copy of a body of bytes is twice its size): a larger setting would be a promise the
 * server cannot keep, met as a failed request instead of a 413. Bulk goes as NDJSON,
 * streamed (`maxBulkBytes`).
 *
 * @example serve({ maxPredictBodyBytes: MAX_PREDICT_BODY_BYTES }); // the most a server takes
 */
export const MAX_PREDICT_BODY_BYTES = 256 * 1024 * 1024;

/** `ServeOptions` with every default filled in and checked. */
export interface ServerConfig {
  readonly port: number;
  readonly host: string;
  readonly token: string | null;
  readonly allowedOrigins: readonly string[] | null;
  readonly staticDir: string;
  readonly maxPayload: number;
  readonly maxClients: number;
  readonly maxQueuedUpgrades: number;
  readonly warmUpHandshakes: number;
  readonly defaultRateHz: number;
  readonly maxRateHz: number;
  readonly commandsPerMinute: number;
  readonly badMessagesPerMinute: number;
  readonly headersTimeoutMs: number;
  readonly heartbeatMs: number;
  readonly maxBufferedBytes: number;
  readonly slowClientTimeoutMs: number;
  readonly maxFragments: number;
  readonly historyIntervalMs: number;
  readonly historyFrames: number;
  readonly historyMaxBytes: number;
  readonly keepVersions: number;
  readonly maxPredictBodyBytes: number;
  readonly maxBulkBytes: number;
  readonly maxPredictLineBytes: number;
  readonly predictRequestsPerSecond: number;
  readonly bulkThread: boolean;
  readonly bulkNice: number;
  readonly log: (line: string) => void;
  /** Whether `log` goes anywhere: without a log, what only log lines say (a client's peer address) is not looked up. */
  readonly logs: boolean;
}

/** Where the dashboard's built files are: `clients/dashboard/dist` beside the sources, or inside the installed package's dist/. */
export const DEFAULT_STATIC_DIR = fileURLToPath(new URL('../clients/dashboard/dist', import.meta.url));

/** The bulk thread's nice value by default: the lowest priority there is. */
export const DEFAULT_BULK_NICE = 19;

/** The server's defaults for every option `serve` does not get (safe ones: loopback host, small payloads, heartbeat on). */
export const DEFAULTS = {
  host: '127.0.0.1',
  maxPayload: 64 * 1024,
  maxClients: 1000,
  maxQueuedUpgrades: 1024,
  warmUpHandshakes: 0,
  defaultRateHz: 10,
  maxRateHz: 30,
  commandsPerMinute: 100,
  badMessagesPerMinute: 20,
  headersTimeoutMs: 10_000,
  heartbeatMs: 15_000,
  maxBufferedBytes: 1024 * 1024,
  slowClientTimeoutMs: 10_000,
  maxFragments: 1024,
  historyIntervalMs: 500,
  historyFrames: 240,
  historyMaxBytes: 32 * 1024 * 1024,
  keepVersions: 32,
  maxPredictBodyBytes: 1024 * 1024,
  maxBulkBytes: 256 * 1024 * 1024,
  maxPredictLineBytes: 64 * 1024,
  predictRequestsPerSecond: 5000,
} as const;

function check(ok: boolean, field: string, message: string): asserts ok {
  if (!ok) throw new RangeError(`serve: ${field} ${message}`);
}

const positiveInteger = (value: number, field: string) =>
  check(Number.isSafeInteger(value) && value > 0, field, `must be a positive integer, got ${String(value)}`);
const positive = (value: number, field: string) =>
  check(Number.isFinite(value) && value > 0, field, `must be a finite number > 0, got ${String(value)}`);

/** Fills in defaults and validates; throws `RangeError` naming the option. */
export function resolveOptions(options: ServeOptions = {}): ServerConfig {
  const envToken = process.env.STREAMGRAD_TOKEN;
  const token = options.token ?? (envToken !== undefined && envToken !== '' ? envToken : undefined);
  const config: ServerConfig = {
    port: options.port ?? 0,
    host: options.host ?? DEFAULTS.host,
    token: token ?? null,
    allowedOrigins: options.allowedOrigins ?? null,
    staticDir: options.staticDir ?? DEFAULT_STATIC_DIR,
    maxPayload: options.maxPayload ?? DEFAULTS.maxPayload,
    maxClients: options.maxClients ?? DEFAULTS.maxClients,
    maxQueuedUpgrades: options.maxQueuedUpgrades ?? DEFAULTS.maxQueuedUpgrades,
    warmUpHandshakes: options.warmUpHandshakes ?? DEFAULTS.warmUpHandshakes,
    defaultRateHz: options.defaultRateHz ?? DEFAULTS.defaultRateHz,
    maxRateHz: options.maxRateHz ?? DEFAULTS.maxRateHz,
    commandsPerMinute: options.commandsPerMinute ?? DEFAULTS.commandsPerMinute,
    badMessagesPerMinute: options.badMessagesPerMinute ?? DEFAULTS.badMessagesPerMinute,
    headersTimeoutMs: options.headersTimeoutMs ?? DEFAULTS.headersTimeoutMs,
    heartbeatMs: options.heartbeatMs ?? DEFAULTS.heartbeatMs,
    maxBufferedBytes: options.maxBufferedBytes ?? DEFAULTS.maxBufferedBytes,
    slowClientTimeoutMs: options.slowClientTimeoutMs ?? DEFAULTS.slowClientTimeoutMs,
    maxFragments: options.maxFragments ?? DEFAULTS.maxFragments,
    historyIntervalMs: options.historyIntervalMs ?? DEFAULTS.historyIntervalMs,
    historyFrames: options.historyFrames ?? DEFAULTS.historyFrames,
    historyMaxBytes: options.historyMaxBytes ?? DEFAULTS.historyMaxBytes,
    keepVersions: options.keepVersions ?? DEFAULTS.keepVersions,
    maxPredictBodyBytes: options.maxPredictBodyBytes ?? DEFAULTS.maxPredictBodyBytes,
    maxBulkBytes: options.maxBulkBytes ?? DEFAULTS.maxBulkBytes,
    maxPredictLineBytes: options.maxPredictLineBytes ?? DEFAULTS.maxPredictLineBytes,
    predictRequestsPerSecond: options.predictRequestsPerSecond ?? DEFAULTS.predictRequestsPerSecond,
    bulkThread: options.bulkThread ?? false,
    bulkNice: options.bulkNice ?? DEFAULT_BULK_NICE,
    log: options.log ?? (() => undefined),
    logs: options.log !== undefined,
  };
  check(Number.isSafeInteger(config.port) && config.port >= 0 && config.port <= 65535, 'port', `must be an integer in [0, 65535], got ${String(config.port)}`);
  check(typeof config.host === 'string' && config.host !== '', 'host', 'must be a non-empty string');
  check(config.token === null || (typeof config.token === 'string' && config.token.length >= 1 && config.token.length <= 1024), 'token', 'must be 1 to 1024 characters');
  check(config.allowedOrigins === null || (Array.isArray(config.allowedOrigins) && config.allowedOrigins.every((o) => typeof o === 'string' && o !== '')), 'allowedOrigins', 'must be a list of origins like "https://app.example.com"');
  positiveInteger(config.maxPayload, 'maxPayload');
  positiveInteger(config.maxClients, 'maxClients');
  positiveInteger(config.maxQueuedUpgrades, 'maxQueuedUpgrades');
  check(Number.isSafeInteger(config.warmUpHandshakes) && config.warmUpHandshakes >= 0 && config.warmUpHandshakes <= 100_000, 'warmUpHandshakes', `must be an integer in [0, 100000], got ${String(config.warmUpHandshakes)}`);
  positive(config.defaultRateHz, 'defaultRateHz');
  positive(config.maxRateHz, 'maxRateHz');
  check(config.maxRateHz <= 1000, 'maxRateHz', `must be at most 1000, got ${config.maxRateHz}`);
  positiveInteger(config.commandsPerMinute, 'commandsPerMinute');
  positiveInteger(config.badMessagesPerMinute, 'badMessagesPerMinute');
  positiveInteger(config.headersTimeoutMs, 'headersTimeoutMs');
  positiveInteger(config.heartbeatMs, 'heartbeatMs');
  positiveInteger(config.maxBufferedBytes, 'maxBufferedBytes');
  positiveInteger(config.slowClientTimeoutMs, 'slowClientTimeoutMs');
  positiveInteger(config.maxFragments, 'maxFragments');
  check(Number.isFinite(config.historyIntervalMs) && config.historyIntervalMs >= 0, 'historyIntervalMs', `must be a finite number >= 0, got ${String(config.historyIntervalMs)}`);
  check(Number.isSafeInteger(config.historyFrames) && config.historyFrames >= 2, 'historyFrames', `must be an integer >= 2, got ${String(config.historyFrames)}`);
  positiveInteger(config.historyMaxBytes, 'historyMaxBytes');
  positiveInteger(config.keepVersions, 'keepVersions');
  positiveInteger(config.maxPredictBodyBytes, 'maxPredictBodyBytes');
  check(config.maxPredictBodyBytes <= MAX_PREDICT_BODY_BYTES, 'maxPredictBodyBytes', `must be at most ${MAX_PREDICT_BODY_BYTES} (256 MiB: the body is held and parsed whole; send bulk as NDJSON), got ${String(config.maxPredictBodyBytes)}`);
  positiveInteger(config.maxBulkBytes, 'maxBulkBytes');
  positiveInteger(config.maxPredictLineBytes, 'maxPredictLineBytes');
  positiveInteger(config.predictRequestsPerSecond, 'predictRequestsPerSecond');
  check(typeof config.bulkThread === 'boolean', 'bulkThread', `must be true or false, got ${String(config.bulkThread)}`);
  check(Number.isSafeInteger(config.bulkNice) && config.bulkNice >= 0 && config.bulkNice <= 19, 'bulkNice', `must be an integer from 0 to 19, got ${String(config.bulkNice)}`);
  return config;
}

/**
 * `ServeOptions` for `serveInThread`. `/ingest` is a `WebSocketIngest` made on the server
 * thread from `ingest` (its options, and the `relay` on this thread its records come to).
 */
export interface ThreadedServeOptions extends Omit<ServeOptions, 'ingest' | 'onActivity'> {
  readonly ingest?: WebSocketIngestOptions & {
    /** Where the records sensors send to `/ingest` come out on this thread. */
    readonly relay: IngestRelay;
  };
  /**
   * Nice value for the calling thread, the one that trains, once the server thread runs
   * (`lowerTrainingPriority`: Linux, per thread), so a connection burst on a machine whose
   * cores are all busy is served first. Default `STREAMGRAD_TRAINING_NICE` or 10; 0 or null
   * leave the priority alone. It cannot be raised again by an unprivileged process.
   */
  trainingNice?: number | null;
  /**
   * Whether the calling thread then also runs under Linux's SCHED_IDLE (`idleTrainingThread`):
   * a waking server thread takes its core at once, and training gets only the CPU time nothing
   * else wants. Only where the priority is lowered at all (`trainingNice` above 0). Default
   * `STREAMGRAD_TRAINING_IDLE` or false (measured: docs/serving.md, Session 11).
   */
  trainingIdle?: boolean;
  /**
   * Whether the runs served from this thread sleep between their slices while the server
   * thread waits for a core (pipeline/cpu-share.ts, server/cpu-demand.ts): at most half of
   * their time while it asks, 250 ms at once and 5% in the long run. Default `STREAMGRAD_CPU_SHARE` or true.
   */
  cpuShare?: boolean;
}

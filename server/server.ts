import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse, STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { type ServerOptions, WebSocketServer, type WebSocket } from 'ws';
import type { ModelArtifact } from '../pipeline/model-artifact.ts';
import { Gauge } from 'prom-client';
import { Broadcaster } from './broadcaster.ts';
import { CommandLog } from './commands.ts';
import type { AppliedOnce } from './applied-once.ts';
import { Connection, type ConnectionHost } from './connection.ts';
import { sendHealth, sendMetrics } from './health.ts';
import { LruMap, RateLimit } from './limits.ts';
import { encodeMessage, runInfo } from './messages.ts';
import { createServerMetrics, scrapedCounter } from './metrics-registry.ts';
import type { Registry } from 'prom-client';
import type { PeerServer } from './thread-messages.ts';
import { resolveOptions, type ServeOptions } from './options.ts';
import type { ServedRun } from './run-mirror.ts';
import type { LabelsSnapshot, ModelVersion } from './model-versions.ts';
import type { NumberReservation } from './version-numbers.ts';
import { BulkThread, inlineBulk } from './bulk-thread.ts';
import { handlePredict, sendModels, sendProblem } from './predict-http.ts';
import { PredictionService, type SavedModelInfo } from './prediction-service.ts';
import { type Access, checkHandshake, hostAllowed, originAllowed, ownHostnames, ownOrigins } from '../net/origin.ts';
import { CLOSE, type ExperimentInfo, type HelloMessage, PROTOCOL_VERSION } from './protocol.ts';
import { SECURITY_HEADERS, sendText, serveStatic } from './static-files.ts';

import type { ServerStats } from './server-stats.ts';
import { UpgradeQueue } from './upgrade-queue.ts';
import { WARM_UP_HEADER, warmUpHandshakes } from './warm-up.ts';

export type { ServeOptions } from './options.ts';
export type { ServerStats } from './server-stats.ts';


/** How a run is served (`addRun`). */
export interface AddRunOptions {
  /** Its version labels as saved before a restart (`onLabels`; a resumed run's checkpoint): `stable` answers as before. */
  readonly labels?: LabelsSnapshot;
  /** Its reservation of version numbers (`reserveVersionNumbers`, beside its checkpoints): no number is given twice across a restart. */
  readonly numbers?: NumberReservation;
  /**
   * The run's own memory of the command ids applied to it, which its checkpoints keep
   * (`AppliedOnce.save`) and a resume restores: a command id resent after a restart is
   * then a duplicate, not applied twice. Kept on the thread the run trains on, where the
   * command's effect is (`serveInThread`: `RunPublisher`).
   */
  readonly commands?: AppliedOnce;
}

/** A running server (from `serve`): its addresses, the runs it broadcasts, its counters, and `close`. */
export interface StreamgradServer {
  /** `http://HOST:PORT`: the dashboard, /healthz and /metrics. */
  readonly url: string;
  /** `ws://HOST:PORT/ws`: the protocol v1 WebSocket. */
  readonly wsUrl: string;
  readonly port: number;
  /** Starts broadcasting a run (and announces it with a `run` message). The caller starts and stops the run. */
  addRun(run: ServedRun, options?: AddRunOptions): void;
  /** Stops broadcasting a run (announced with `run-removed`); its subscriptions end. */
  removeRun(id: string): void;
  readonly runs: ReadonlyMap<string, ServedRun>;
  /**
   * Serves predictions of a saved model under `name` (`POST /predict?model=NAME`, the
   * `predict` message): one version, with the step, samples and time `at` gives (a
   * checkpoint's counters, the file's modification time). A run added with `addRun` is
   * served under its id already.
   */
  addModel(name: string, artifact: ModelArtifact, at?: SavedModelInfo, labels?: LabelsSnapshot, numbers?: NumberReservation): void;
  /** A new version of a saved model (same shape; e.g. its file was written again); null when nothing changed. */
  updateModel(name: string, artifact: ModelArtifact, at?: SavedModelInfo): ModelVersion | null;
  /** Stops serving a saved model. */
  removeModel(name: string): void;
  /** The models answering predictions, their versions and labels (what `GET /models` says). */
  readonly predictions: PredictionService;
  readonly stats: ServerStats;
  /** The Prometheus registry `GET /metrics` reads: a host adds its own metrics there (a cluster gateway's partition gauges). */
  readonly metrics: Registry;
  /**
   * Other servers with the same runs (a cluster's gateways, this one included): listed at
   * `GET /gateways` for the dashboard, which moves to another when this one goes away.
   */
  setPeers(peers: readonly PeerServer[]): void;
  /** Closes every socket (1001), the timers and the HTTP server. */
  close(): Promise<void>;
}

/** A handshake accepted and waiting to be completed (UpgradeQueue). */
interface QueuedUpgrade {
  readonly socket: Duplex;
  readonly head: Buffer;
  /** Completes it with its head and what its socket sent while it waited. */
  readonly complete: (head: Buffer) => void;
}

/**
 * Longest run of handshake completions between two poll phases, in ms: at ~0.2 ms each,
 * about ten, so a request arriving mid-burst waits a few ms, not the whole burst.
 */
const UPGRADE_SLICE_MS = 2;
/**
 * Longest the completions hold back while connections are still being accepted, in ms
 * (server/upgrade-queue.ts): a turn that only accepts and parses takes ~70 µs here, so a
 * burst of 500 is in within ~35 ms, and a handshake's completion never waits on accepts
 * longer than this.
 */
const UPGRADE_HOLD_MS = 50;
/**
 * Warm-up handshakes in flight at once (`warmUpHandshakes`): a client that connects
 * meanwhile waits behind at most these; and, as they count towards `maxClients` while they
 * wait, at most a tenth of it, so a warm-up never takes the room real clients need.
 */
const warmUpBatch = (maxClients: number) => Math.max(1, Math.min(100, Math.floor(maxClients / 10)));

/** Ms a closing client has to finish the close handshake before its socket is destroyed. */
const CLOSE_GRACE_MS = 1000;

/**
 * Starts the live broadcast server: one HTTP server on one port, serving the
 * dashboard's files, `GET /healthz`, `GET /metrics` and the protocol v1 WebSocket at
 * `/ws` (see PROTOCOL.md). Resolves once it listens.
 *
 * @example
 * const server = await serve({ port: 8080, token: process.env.STREAMGRAD_TOKEN });
 * server.addRun(run);
 * void run.start();
 */
export async function serve(options: ServeOptions = {}): Promise<StreamgradServer> {
  const config = resolveOptions(options);
  const log = config.log;
  const startedAt = performance.now();
  const runs = new Map<string, ServedRun>();
  const connections = new Set<Connection>();
  let pendingUpgrades = 0;
  const counts = { dropped: 0, refused: 0, slow: 0, heartbeat: 0, warmUps: 0 };
  /** While the server warms up (`warmUpHandshakes`): the secret its own warm-up handshakes carry (null: none are taken). */
  let warmUpSecret: string | null = null;
  const metrics = createServerMetrics(() => runs.values(), () => connections.size);
  const broadcaster = new Broadcaster(config.maxRateHz, { intervalMs: config.historyIntervalMs, capacity: config.historyFrames, maxBytes: config.historyMaxBytes });
  // bulk predictions on a thread of their own, started at the first bulk request (server/bulk-thread.ts)
  const bulk = config.bulkThread ? new BulkThread(config.bulkNice) : inlineBulk;
  const predictions = new PredictionService({ keepVersions: config.keepVersions, registry: metrics.registry, log, ...(options.onLabels !== undefined && { onLabels: options.onLabels }) });
  // per run added with one: its own memory of the command ids applied to it (`AddRunOptions.commands`)
  const runCommands = new Map<string, AppliedOnce>();
  const commands = new CommandLog(runs, 10_000, log, (command) => predictions.control(command), runCommands);
  // per HTTP client address: its prediction budget (bounded: the least recently seen are forgotten)
  const predictBudgets = new LruMap<string, RateLimit>(10_000);
  const predictBudget = () => new RateLimit(config.predictRequestsPerSecond * 60, undefined, config.predictRequestsPerSecond);
  // versions of runs that train on this thread, at the server's tick rate (mirrored runs take theirs at each publish)
  const versionTimer = setInterval(() => predictions.tick(), Math.max(1, Math.floor(1000 / config.maxRateHz)));
  versionTimer.unref();
  /** Per run: the subscription that counts its drift events for /metrics. */
  const counting = new Map<string, { unsubscribe(): void }>();
  let allowedOrigins = new Set<string>();
  /** `setPeers`: the servers a dashboard may move to. */
  let peers: PeerServer[] = [];
  let closed = false;

  const http = createServer({
    headersTimeout: config.headersTimeoutMs,
    requestTimeout: Math.max(config.headersTimeoutMs, 30_000),
    // how often Node checks the two timeouts above (its default, 30 s, would let a slowloris sit that long)
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(config.headersTimeoutMs / 4))),
  });
  // ws 8.23 options (closeTimeout is newer than @types/ws 8.18)
  const wsOptions: ServerOptions & { closeTimeout: number } = {
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: config.maxPayload,
    maxFragments: config.maxFragments,
    closeTimeout: CLOSE_GRACE_MS,
  };
  const onActivity = options.onActivity;
  if (onActivity !== undefined) {
    http.on('connection', onActivity);
    http.on('request', onActivity);
  }
  const wss = new WebSocketServer(wsOptions);
  wss.on('error', (error) => log(`websocket server error: ${error.message}`));

  const host: ConnectionHost = {
    config,
    runs,
    history: (run) => broadcaster.feeds.get(run)?.history,
    recentEvents: (run) => (run === '*' ? [...broadcaster.feeds.values()] : [broadcaster.feeds.get(run)])
      .map((feed) => feed?.recentEventsMessage() ?? null).filter((data): data is Buffer => data !== null),
    commands,
    predictions,
    predictBudget,
    subscribed: (connection, any) => broadcaster.setSubscribed(connection, any),
    dropped: () => {
      counts.dropped++;
      metrics.droppedFrames.inc();
    },
    terminated: (reason) => {
      if (reason === 'slow') counts.slow++;
      else counts.heartbeat++;
    },
    closed: (connection) => {
      connections.delete(connection);
      broadcaster.setSubscribed(connection, false);
    },
  };

  // a warm-up handshake's Connection (server/warm-up.ts): the same code, logged, counted and listed nowhere
  const warmUpHost: ConnectionHost = { ...host, config: { ...config, log: () => undefined, logs: false }, closed: () => undefined };

  const experiment = experimentInfo(options.experiment);
  const hello = (access: Access): HelloMessage => ({
    type: 'hello',
    protocol: PROTOCOL_VERSION,
    server: 'streamgrad',
    access,
    runs: [...runs.values()].map(runInfo),
    models: predictions.summary(),
    ...(experiment !== undefined && { experiment }),
    ...(peers.length > 0 && { gateways: peers }),
    limits: { maxPayload: config.maxPayload, maxRateHz: config.maxRateHz, commandsPerMinute: config.commandsPerMinute, heartbeatMs: config.heartbeatMs },
  });

  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handleRequest(req, res).catch((error: unknown) => {
      log(`request ${req.method} failed: ${error instanceof Error ? error.message : String(error)}`);
      if (!res.headersSent) sendText(res, 500, 'internal error');
      else res.destroy();
    });
  });

  const hostnames = ownHostnames(config.host);

  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!hostAllowed(req, hostnames)) return sendText(res, 403, 'host not allowed: this server answers to 127.0.0.1 and localhost only');
    const path = (req.url ?? '').split(/[?#]/, 1)[0];
    if (path === '/healthz' || path === '/metrics') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
      if (path === '/healthz') return sendHealth(res, runs, connections.size, startedAt);
      return sendMetrics(res, metrics);
    }
    if (path === '/predict') {
      const started = performance.now();
      if (req.method !== 'POST') return sendProblem(res, { code: 'SG_ERR_METHOD', message: 'POST a JSON or NDJSON body of samples to /predict' }, null, { Allow: 'POST' });
      const remote = req.socket.remoteAddress ?? '?';
      let budget = predictBudgets.get(remote);
      if (budget === undefined) predictBudgets.set(remote, budget = predictBudget());
      if (!budget.take()) {
        predictions.countRefused({ code: 'SG_ERR_RATE_LIMIT', message: '' }, null);
        return sendProblem(res, { code: 'SG_ERR_RATE_LIMIT', message: `more than ${config.predictRequestsPerSecond} prediction requests a second from this address (predictRequestsPerSecond)` }, null, { 'Retry-After': '1' });
      }
      return handlePredict(req, res, predictions, { maxBodyBytes: config.maxPredictBodyBytes, maxBulkBytes: config.maxBulkBytes, maxLineBytes: config.maxPredictLineBytes }, started, bulk);
    }
    if (path === '/models') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
      return sendModels(res, predictions);
    }
    if (path === '/ws' || path === '/ingest') return sendText(res, 426, 'upgrade required: this is a WebSocket endpoint', { Upgrade: 'websocket' });
    if (path === '/gateways') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return sendText(res, 405, 'method not allowed', { Allow: 'GET, HEAD' });
      const body = Buffer.from(JSON.stringify({ gateways: peers }), 'utf8');
      res.writeHead(200, { ...SECURITY_HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': body.length, 'Cache-Control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
      return;
    }
    return serveStatic(req, res, config.staticDir);
  }

  // Upgrades are checked here and completed later, a few ms at a time, in arrival order,
  // once the connections of a burst are in (server/upgrade-queue.ts): a burst of
  // handshakes never holds up a /healthz that arrives meanwhile for longer than one slice.
  const upgrades = new UpgradeQueue<QueuedUpgrade>((upgrade, head) => upgrade.complete(head), { capacity: config.maxQueuedUpgrades, sliceMs: UPGRADE_SLICE_MS, maxHoldMs: UPGRADE_HOLD_MS });
  // libuv accepts one connection a turn: while connections come in, accepting goes first
  http.on('connection', () => upgrades.accepted());
  new Gauge({ name: 'streamgrad_queued_handshakes', help: 'WebSocket handshakes accepted and waiting to be completed.', registers: [metrics.registry], collect() { this.set(upgrades.length); } });
  scrapedCounter([metrics.registry], 'streamgrad_handshakes_abandoned_total', 'WebSocket handshakes whose socket closed while they waited to be completed.', () => upgrades.abandoned);
  scrapedCounter([metrics.registry], 'streamgrad_handshakes_queue_full_total', 'WebSocket handshakes refused (503) because maxQueuedUpgrades were waiting already.', () => upgrades.refused);
  if (bulk instanceof BulkThread) {
    scrapedCounter([metrics.registry], 'streamgrad_bulk_thread_blocks_total', 'Blocks of bulk (NDJSON) prediction lines answered on the bulk thread.', () => bulk.answered.thread);
    scrapedCounter([metrics.registry], 'streamgrad_bulk_inline_blocks_total', 'Blocks of bulk prediction lines answered on the server thread while the bulk thread started, or after it failed.', () => bulk.answered.here);
  }

  // one listener and one refusal for every upgrade, not a closure of each per socket (issue 17 item 6)
  const onUpgradeSocketError = (error: Error) => log(`upgrade socket error: ${error.message}`);
  const refuseUpgrade = (req: IncomingMessage, socket: Duplex, status: number, reason: string) => {
    counts.refused++;
    if (config.logs) log(`refused handshake from ${remoteOf(req)}: ${status} ${reason}`);
    rejectUpgrade(socket, status, reason);
  };
  http.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', onUpgradeSocketError);
    const path = (req.url ?? '').split(/[?#]/, 1)[0];
    if (closed) return refuseUpgrade(req, socket, 503, 'server closing');
    if (!hostAllowed(req, hostnames)) return refuseUpgrade(req, socket, 403, 'host not allowed');
    let complete: (head: Buffer) => void;
    if (path === '/ingest') {
      const ingest = options.ingest;
      if (ingest === undefined) return refuseUpgrade(req, socket, 404, 'no ingest endpoint on this server');
      if (!originAllowed(req, allowedOrigins)) return refuseUpgrade(req, socket, 403, 'origin not allowed');
      const verdict = ingest.authorize(req);
      if (!verdict.ok) return refuseUpgrade(req, socket, verdict.status, verdict.reason);
      complete = (all) => upgradeIngest(req, socket, all, ingest);
    } else if (warmUpSecret !== null && path === '/ws' && req.headers[WARM_UP_HEADER] === warmUpSecret) {
      complete = (all) => upgradeClient(req, socket, all, 'read-only', true);
    } else {
      if (path !== '/ws') return refuseUpgrade(req, socket, 404, 'no WebSocket endpoint here (use /ws)');
      if (connections.size + pendingUpgrades + upgrades.length >= config.maxClients) return refuseUpgrade(req, socket, 503, `at most ${config.maxClients} clients`);
      const verdict = checkHandshake(req, allowedOrigins, config.token);
      if (!verdict.ok) return refuseUpgrade(req, socket, verdict.status, verdict.reason);
      complete = (all) => upgradeClient(req, socket, all, verdict.access);
    }
    if (!upgrades.push({ socket, head, complete })) return refuseUpgrade(req, socket, 503, `more than ${config.maxQueuedUpgrades} handshakes waiting (maxQueuedUpgrades); retry`);
  });

  /** `/ws`: completes a checked handshake; the 101 and the hello leave in one write. */
  function upgradeClient(req: IncomingMessage, socket: Duplex, head: Buffer, access: Access, warmUp = false): void {
    if (closed) return rejectUpgrade(socket, 503, 'server closing');
    pendingUpgrades++;
    let settled = false;
    const settle = () => {
      if (!settled) pendingUpgrades--;
      settled = true;
    };
    socket.once('close', settle);
    // corked: ws writes the 101 and the hello is one more frame; uncorked, that is two syscalls per handshake
    socket.cork();
    try {
      wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
        settle();
        socket.off('close', settle);
        if (closed) {
          ws.terminate();
          return;
        }
        if (warmUp) {
          counts.warmUps++;
          new Connection(ws, access, '-', warmUpHost).reply(hello(access));
          return;
        }
        // the peer's address is a getpeername(2) per connection, and only log lines show it:
        // looked up only when they go somewhere (issue 17 item 6)
        const remote = config.logs ? remoteOf(req) : '-';
        const connection = new Connection(ws, access, remote, host);
        connections.add(connection);
        if (config.logs) log(`client #${connection.id} (${remote}): connected, ${access}`);
        connection.reply(hello(access));
      });
    } finally {
      socket.uncork();
    }
  }

  /** `/ingest`: sensors pushing samples (sources/websocket-ingest.ts decides who may, and takes the socket). */
  function upgradeIngest(req: IncomingMessage, socket: Duplex, head: Buffer, ingest: NonNullable<ServeOptions['ingest']>): void {
    if (closed) return rejectUpgrade(socket, 503, 'server closing');
    // asked again: its pools count connections, and the ones queued with this handshake
    // (a burst's, read before any completed) were not connections when it was first asked
    const verdict = ingest.authorize(req);
    if (!verdict.ok) return refuseUpgrade(req, socket, verdict.status, verdict.reason);
    const authenticated = verdict.authenticated;
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      if (closed) {
        ws.terminate();
        return;
      }
      const remote = remoteOf(req);
      log(`ingest connection from ${remote}`);
      ingest.accept(ws, authenticated, remote);
    });
  }

  // heartbeat: a peer that did not answer the previous ping is terminated
  const heartbeat = setInterval(() => {
    const now = performance.now();
    for (const connection of connections) {
      if (!connection.checkSlow(now)) connection.heartbeat();
    }
  }, config.heartbeatMs);

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.port, config.host, () => {
      http.off('error', reject);
      resolve();
    });
  }).catch((error: unknown) => {
    clearInterval(heartbeat);
    clearInterval(versionTimer);
    broadcaster.close();
    throw error;
  });
  http.on('error', (error) => log(`http server error: ${error.message}`));

  const port = (http.address() as AddressInfo).port;
  allowedOrigins = new Set(config.allowedOrigins ?? ownOrigins(config.host, port));
  const hostname = config.host.includes(':') ? `[${config.host}]` : config.host;
  const url = `http://${hostname}:${port}`;
  log(`listening on ${url} (control ${config.token === null ? 'disabled: no token' : 'needs the token'})`);
  if (config.warmUpHandshakes > 0) {
    // in the background: a client that connects meanwhile waits behind at most one batch in the queue
    warmUpSecret = randomBytes(16).toString('hex');
    void warmUpHandshakes({ host: config.host, port, hostHeader: `${hostname}:${port}`, secret: warmUpSecret }, config.warmUpHandshakes, warmUpBatch(config.maxClients), () => closed)
      .then((result) => log(`warmed up: ${result.completed} handshakes to itself in ${Math.round(result.ms)} ms`))
      // best effort: a warm-up that fails leaves the server as it would be without one
      .catch(() => undefined)
      .finally(() => { warmUpSecret = null; });
  }

  const announce = (data: Buffer) => {
    for (const connection of connections) connection.sendAlways(data);
  };

  return {
    url,
    wsUrl: `ws://${hostname}:${port}/ws`,
    port,
    runs,
    predictions,
    metrics: metrics.registry,
    setPeers(list: readonly PeerServer[]) {
      peers = [...list];
    },
    addModel(name: string, artifact: ModelArtifact, at?: SavedModelInfo, labels?: LabelsSnapshot, numbers?: NumberReservation) {
      if (runs.has(name)) throw new Error(`serve: a run named ${JSON.stringify(name)} is served already`);
      predictions.addModel(name, artifact, at, labels, numbers);
    },
    updateModel(name: string, artifact: ModelArtifact, at?: SavedModelInfo) {
      return predictions.updateModel(name, artifact, at);
    },
    removeModel(name: string) {
      if (!runs.has(name)) predictions.remove(name);
    },
    get stats(): ServerStats {
      return {
        clients: connections.size,
        droppedFrames: counts.dropped,
        refusedHandshakes: counts.refused,
        slowTerminations: counts.slow,
        heartbeatTerminations: counts.heartbeat,
        warmUpHandshakes: counts.warmUps,
      };
    },
    addRun(run: ServedRun, addOptions: AddRunOptions = {}) {
      if (runs.has(run.id)) throw new Error(`serve: a run with id ${JSON.stringify(run.id)} is already served`);
      if (run.id === '*' || run.id.length === 0 || run.id.length > 256) throw new Error(`serve: run id ${JSON.stringify(run.id)} is not usable (1 to 256 characters, not "*")`);
      if (predictions.names().includes(run.id)) throw new Error(`serve: a model named ${JSON.stringify(run.id)} is served already`);
      // first: saved labels that do not fit the run throw before anything is served
      predictions.addRun(run, addOptions.labels, addOptions.numbers);
      runs.set(run.id, run);
      if (addOptions.commands !== undefined) runCommands.set(run.id, addOptions.commands);
      broadcaster.addRun(run);
      counting.set(run.id, run.events.subscribe((event) => {
        if (event.type === 'drift' || event.type === 'drift-warning') metrics.driftEvents.inc({ run: run.id, event: event.type });
        else if (event.type === 'drift-reaction') metrics.driftReactions.inc({ run: run.id, reaction: typeof event.detail?.reaction === 'string' ? event.detail.reaction.slice(0, 32) : 'unknown' });
      }));
      announce(encodeMessage({ type: 'run', run: runInfo(run) }));
    },
    removeRun(id: string) {
      if (!runs.delete(id)) return;
      runCommands.delete(id);
      counting.get(id)?.unsubscribe();
      counting.delete(id);
      broadcaster.removeRun(id);
      predictions.remove(id);
      announce(encodeMessage({ type: 'run-removed', run: id }));
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(heartbeat);
      clearInterval(versionTimer);
      broadcaster.close();
      predictions.close();
      if (bulk instanceof BulkThread) await bulk.close();
      for (const s of counting.values()) s.unsubscribe();
      counting.clear();
      const open = [...connections];
      await Promise.all(open.map((connection) => new Promise<void>((resolve) => {
        if (connection.ws.readyState === connection.ws.CLOSED) return resolve();
        connection.ws.once('close', () => resolve());
        connection.close(CLOSE.goingAway, 'server shutting down');
      })));
      upgrades.clear((upgrade) => rejectUpgrade(upgrade.socket, 503, 'server closing'));
      await options.ingest?.disconnectAll();
      wss.close();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeAllConnections();
      });
    },
  };
}

/** The experiment's description and task as the hello carries them (each cut to 1,000 characters; none when both are empty). */
function experimentInfo(e: ExperimentInfo | undefined): ExperimentInfo | undefined {
  const cut = (text: string | undefined) => (typeof text === 'string' && text.length > 0 ? text.slice(0, 1000) : undefined);
  const description = cut(e?.description), task = cut(e?.task);
  const target = typeof e?.target === 'string' && e.target.length > 0 ? e.target.slice(0, 200) : undefined;
  if (description === undefined && task === undefined && target === undefined) return undefined;
  return { ...(description !== undefined && { description }), ...(task !== undefined && { task }), ...(target !== undefined && { target }) };
}

function remoteOf(req: IncomingMessage): string {
  const { remoteAddress, remotePort } = req.socket;
  return `${remoteAddress ?? '?'}:${remotePort ?? '?'}`;
}

/** Answers a refused upgrade with a plain HTTP response and closes the socket. */
function rejectUpgrade(socket: Duplex, status: number, reason: string): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${reason}\n`;
  const headers = [
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`,
    'Connection: close',
    'Content-Type: text/plain; charset=utf-8',
    `Content-Length: ${Buffer.byteLength(body)}`,
    ...Object.entries(SECURITY_HEADERS).map(([k, v]) => `${k}: ${v}`),
  ];
  socket.end(`${headers.join('\r\n')}\r\n\r\n${body}`);
  socket.once('finish', () => socket.destroy());
}

import WebSocket, { type RawData } from 'ws';
import type { ServedRun } from './run-mirror.ts';
import type { CommandLog } from './commands.ts';
import type { SnapshotHistory } from './history.ts';
import { RateLimit } from './limits.ts';
import { bodyShape, isFailure, predictBatch, type PredictionService } from './prediction-service.ts';
import { encodeMessage, errorMessage } from './messages.ts';
import type { ServerConfig } from './options.ts';
import { type Access, tokenMatches } from '../net/origin.ts';
import { type Channel, CLOSE, type ClientMessage, type CommandMessage, type HistoryMessage, type HistoryResult, parseClientMessage, type PredictMessage, type ServerMessage, type SubscribeMessage, type VersionCommandMessage } from './protocol.ts';
import type { FrameDtype } from './snapshot-frame.ts';

/** What a subscriber has been sent of one run, so each thing goes out once per change. */
export interface Cursor {
  /** RunFeed versions of the last parameters / gradients frame sent (or withheld). */
  params: number;
  grads: number;
  /** Step of the last metrics message sent. */
  metricsStep: number;
  /** Step of the last predictions message sent. */
  predictionsStep: number;
  /** Whether the run's scalar history went out (once per subscription, before its metrics). */
  scalars: boolean;
}

/** One `subscribe`: a run (or `*`), its channels, a rate and a dtype. */
export interface Subscription {
  readonly run: string;
  readonly channels: ReadonlySet<Channel>;
  readonly rateHz: number;
  readonly periodMs: number;
  readonly dtype: FrameDtype;
  /** When the next metrics/snapshot delivery is due (performance.now() ms). */
  nextDue: number;
  /** Per run: what was sent already (one entry for a run id, one per run for `*`). */
  readonly cursors: Map<string, Cursor>;
}

/** What a connection needs from its server. */
export interface ConnectionHost {
  readonly config: ServerConfig;
  readonly runs: ReadonlyMap<string, ServedRun>;
  readonly commands: CommandLog;
  /** The models that answer `predict` messages. */
  readonly predictions: PredictionService;
  /** A fresh prediction budget (`predictRequestsPerSecond`) for one connection. */
  predictBudget(): RateLimit;
  /** The `recent-events` messages of a run (or of every run for `*`): what happened before a subscription. */
  recentEvents(run: string): Buffer[];
  /** A served run's snapshot history (undefined for a run the server does not have). */
  history(run: string): SnapshotHistory | undefined;
  /** The connection has subscriptions now (true) or none any more (false). */
  subscribed(connection: Connection, any: boolean): void;
  /** A frame was skipped because the client was over its buffer cap. */
  dropped(): void;
  /** The connection was terminated for a reason the server counts. */
  terminated(reason: 'slow' | 'heartbeat'): void;
  closed(connection: Connection): void;
}

let nextConnectionId = 1;

/**
 * One WebSocket client: its access, subscriptions and budgets. Every frame to it goes
 * through `send`, which skips (and counts) anything while the client's unsent bytes are
 * over the cap — latest wins, nothing queues — and terminates a client that stays over
 * it for longer than the slow-client timeout, or that stops answering pings.
 */
export class Connection {
  readonly id = nextConnectionId++;
  access: Access;
  readonly subscriptions = new Map<string, Subscription>();
  sentFrames = 0;
  droppedFrames = 0;
  private alive = true;
  private closing = false;
  private overCapSince: number | null = null;
  private readonly commandBudget: RateLimit;
  private readonly badBudget: RateLimit;
  private readonly predictBudget: RateLimit;

  constructor(readonly ws: WebSocket, access: Access, readonly remote: string, private readonly host: ConnectionHost) {
    this.access = access;
    this.commandBudget = new RateLimit(host.config.commandsPerMinute);
    this.predictBudget = host.predictBudget();
    this.badBudget = new RateLimit(host.config.badMessagesPerMinute);
    ws.on('error', (error: Error & { code?: string }) => this.log(`socket error ${error.code ?? error.name}: ${error.message}`));
    ws.on('message', (data, isBinary) => this.onMessage(data, isBinary));
    ws.on('pong', () => { this.alive = true; });
    ws.on('ping', () => { this.alive = true; });
    ws.once('close', (code) => {
      this.closing = true;
      this.subscriptions.clear();
      this.log(`closed (${code})`);
      host.closed(this);
    });
  }

  /**
   * Sends one frame unless the client is over its buffer cap (then it is dropped and
   * counted, and the client's slow clock starts). Returns whether it was sent.
   */
  send(data: Buffer, binary: boolean): boolean {
    if (this.closing || this.ws.readyState !== WebSocket.OPEN) return false;
    if (this.ws.bufferedAmount > this.host.config.maxBufferedBytes) {
      this.droppedFrames++;
      this.host.dropped();
      this.overCapSince ??= performance.now();
      return false;
    }
    this.overCapSince = null;
    this.ws.send(data, { binary });
    this.sentFrames++;
    return true;
  }

  /**
   * Runs `deliver` with the client's TCP socket corked, so that the frames it sends
   * (metrics, snapshot, gradients due at one tick) leave in one write.
   */
  corked(deliver: () => void): void {
    // ws keeps its socket in `_socket` (not public API, stable across ws 8); without it, send uncorked
    const socket = (this.ws as unknown as { _socket?: { cork(): void; uncork(): void } })._socket;
    socket?.cork();
    try {
      deliver();
    } finally {
      socket?.uncork();
    }
  }

  /** Answers the client (acks, errors, hello): small, rate-limited, and never dropped. */
  reply(message: ServerMessage): void {
    this.sendAlways(encodeMessage(message));
  }

  /**
   * Sends a small text message whatever the client's buffer: replies, events and run
   * announcements are state changes a dashboard cannot infer from later frames. They
   * are rare, and a client over its cap is terminated after the slow-client timeout.
   */
  sendAlways(data: Buffer): void {
    if (this.closing || this.ws.readyState !== WebSocket.OPEN) return;
    this.ws.send(data, { binary: false });
  }

  /** Terminates the client when it has been over its buffer cap for too long; true if it did. */
  checkSlow(now: number): boolean {
    if (this.overCapSince === null || this.closing) return false;
    if (this.ws.bufferedAmount <= this.host.config.maxBufferedBytes) {
      this.overCapSince = null;
      return false;
    }
    if (now - this.overCapSince < this.host.config.slowClientTimeoutMs) return false;
    this.log(`terminated: over its ${this.host.config.maxBufferedBytes}-byte buffer cap for ${Math.round(now - this.overCapSince)} ms`);
    this.host.terminated('slow');
    this.terminate();
    return true;
  }

  /** One heartbeat: a client that did not answer the previous ping is terminated. */
  heartbeat(): void {
    if (this.closing) return;
    if (!this.alive) {
      this.log('terminated: no answer to the heartbeat');
      this.host.terminated('heartbeat');
      this.terminate();
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.ws.close(code, reason);
  }

  terminate(): void {
    this.closing = true;
    this.ws.terminate();
  }

  private log(line: string): void {
    this.host.config.log(`client #${this.id} (${this.remote}): ${line}`);
  }

  private onMessage(data: RawData, isBinary: boolean): void {
    this.alive = true;
    if (this.closing) return;
    if (isBinary) {
      this.log('sent a binary frame; closing 1003');
      this.close(CLOSE.unsupportedData, 'binary frames are not accepted');
      return;
    }
    const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
    const parsed = parseClientMessage(text);
    if (!parsed.ok) {
      this.reply(parsed.error);
      if (!this.badBudget.take()) {
        this.log(`too many bad messages (last: ${parsed.error.code}); closing 1008`);
        this.close(CLOSE.policy, 'too many bad messages');
      }
      return;
    }
    const message = parsed.message;
    if (message.type === 'predict') {
      // a client that does not read its answers gets no more of them: its request is
      // dropped (counted), and it is terminated once it has been over its cap too long
      if (this.ws.bufferedAmount > this.host.config.maxBufferedBytes) {
        this.overCapSince ??= performance.now();
        this.host.predictions.countRefused({ code: 'SG_ERR_RATE_LIMIT', message: '' }, null, message.model);
        return;
      }
      // predictions have a budget of their own, far above the command rate
      if (!this.predictBudget.take()) {
        this.host.predictions.countRefused({ code: 'SG_ERR_RATE_LIMIT', message: '' }, null, message.model);
        this.reply(errorMessage('SG_ERR_RATE_LIMIT', `more than ${this.host.config.predictRequestsPerSecond} prediction requests a second on this connection (predictRequestsPerSecond)`, message.id));
        return;
      }
      this.dispatch(message);
      return;
    }
    if (!this.commandBudget.take()) {
      this.reply(errorMessage('SG_ERR_RATE_LIMIT', `more than ${this.host.config.commandsPerMinute} messages a minute; closing`, 'id' in message ? message.id : undefined));
      this.log('over its message rate; closing 1008');
      this.close(CLOSE.policy, 'message rate exceeded');
      return;
    }
    this.dispatch(message);
  }

  private dispatch(message: ClientMessage): void {
    switch (message.type) {
      case 'auth':
        if (this.access === 'control' || tokenMatches(this.host.config.token, message.token)) {
          this.access = 'control';
          this.log('authenticated: control access');
          this.reply({ type: 'ack', id: message.id, command: 'auth', duplicate: false, result: { access: 'control' } });
        } else {
          this.log('auth refused');
          this.reply(errorMessage('SG_ERR_FORBIDDEN', 'invalid token', message.id));
        }
        return;
      case 'subscribe':
        this.subscribe(message);
        return;
      case 'history':
        this.history(message);
        return;
      case 'predict':
        void this.predict(message);
        return;
      case 'unsubscribe':
        this.subscriptions.delete(message.run);
        if (this.subscriptions.size === 0) this.host.subscribed(this, false);
        if (message.id !== undefined) this.reply({ type: 'ack', id: message.id, command: 'unsubscribe', duplicate: false });
        return;
      default:
        this.command(message);
    }
  }

  private subscribe(message: SubscribeMessage): void {
    const { config } = this.host;
    if (message.run !== '*' && !this.host.runs.has(message.run)) {
      this.reply(errorMessage('SG_ERR_UNKNOWN_RUN', 'no run of that name (run) on this server', message.id, 'run'));
      return;
    }
    const rateHz = Math.min(message.rateHz ?? config.defaultRateHz, config.maxRateHz);
    const subscription: Subscription = {
      run: message.run,
      channels: new Set(message.channels),
      rateHz,
      periodMs: 1000 / rateHz,
      dtype: message.dtype ?? 'float32',
      nextDue: 0,
      cursors: new Map(),
    };
    this.subscriptions.set(message.run, subscription);
    this.host.subscribed(this, true);
    // what happened before: now, so that no event comes twice (the ones after go out as they happen)
    if (subscription.channels.has('events')) for (const data of this.host.recentEvents(message.run)) this.sendAlways(data);
    if (message.id !== undefined) {
      this.reply({ type: 'ack', id: message.id, command: 'subscribe', duplicate: false, result: { run: message.run, channels: [...subscription.channels], rateHz, dtype: subscription.dtype } });
    }
  }

  /**
   * Answers a `history` request: an ack listing the steps held and sent, then the frames.
   * Replies are never dropped, so the frames of one answer stay within the client's buffer
   * cap (always at least one), and a request while an earlier answer is still unsent is refused.
   */
  private history(message: HistoryMessage): void {
    const history = this.host.history(message.run);
    if (history === undefined) {
      this.reply(errorMessage('SG_ERR_UNKNOWN_RUN', 'no run of that name (run) on this server', message.id, 'run'));
      return;
    }
    const cap = this.host.config.maxBufferedBytes;
    if (this.ws.bufferedAmount > cap) {
      this.reply(errorMessage('SG_ERR_STATE', 'the previous answer is still being sent; ask again once it has arrived', message.id));
      return;
    }
    const entries = history.query(message.fromStep, message.limit ?? 1, cap);
    const result: HistoryResult = { run: message.run, steps: history.steps(), sent: entries.map((e) => e.step), intervalMs: history.intervalMs, capacity: history.capacity };
    this.corked(() => {
      this.reply({ type: 'ack', id: message.id, command: 'history', duplicate: false, result });
      for (const entry of entries) {
        if (this.closing || this.ws.readyState !== WebSocket.OPEN) return;
        this.ws.send(entry.data, { binary: true });
        this.sentFrames++;
      }
    });
  }

  /** Answers a `predict` message with a `prediction` (or an `error`), carrying its id. */
  private async predict(message: PredictMessage): Promise<void> {
    const started = performance.now();
    const { predictions } = this.host;
    const version = predictions.resolve({ model: message.model, version: message.version });
    if ('code' in version) {
      predictions.countRefused(version, null, message.model);
      this.reply(errorMessage(version.code, version.message, message.id, version.field));
      return;
    }
    const unknown = message.unknown ?? 'reject';
    const shape = bodyShape(message.input);
    if (shape === 'mixed') {
      const problem = { code: 'SG_ERR_SCHEMA', message: 'input: an array is one sample when it holds only numbers, or a batch when it holds only samples; this one mixes both' } as const;
      predictions.countRefused(problem, version, undefined, performance.now() - started);
      this.reply(errorMessage(problem.code, problem.message, message.id, 'input'));
      return;
    }
    if (shape === 'one') {
      const entry = predictions.predictOne(version, message.input, unknown);
      if (isFailure(entry)) {
        predictions.count(version, 0, [entry], performance.now() - started);
        // the field at fault, as POST /predict names it
        this.reply(errorMessage(entry.error.code, entry.error.message, message.id, entry.error.field));
        return;
      }
      predictions.count(version, 1, [], performance.now() - started);
      this.reply({ type: 'prediction', id: message.id, ...version.info(), prediction: entry });
      return;
    }
    const entries = await predictBatch(predictions, version, message.input as unknown[], unknown);
    const failures = entries.filter(isFailure);
    predictions.count(version, entries.length - failures.length, failures, performance.now() - started);
    this.reply({ type: 'prediction', id: message.id, ...version.info(), predictions: entries });
  }

  private command(message: CommandMessage | VersionCommandMessage): void {
    if (this.access !== 'control') {
      this.log(`refused ${message.type}: read-only connection`);
      this.reply(errorMessage('SG_ERR_FORBIDDEN', 'this connection is read-only: present the control token (Authorization: Bearer, or an auth message)', message.id));
      return;
    }
    this.host.commands.handle(message).then(
      (answer) => this.reply(answer),
      () => this.reply(errorMessage('SG_ERR_INTERNAL', `${message.type} failed`, message.id)),
    );
  }
}

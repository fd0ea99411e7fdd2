import { randomUUID } from 'node:crypto';
import { BehaviorSubject, filter, type Observable, ReplaySubject, Subject } from 'rxjs';
import WebSocket, { type ClientOptions } from 'ws';
import {
  type AckMessage, type Channel, CLIENT_SCHEMAS, CLOSE, type CommandType, type ErrorMessage, type EventMessage, type HelloMessage,
  type MetricsMessage, type PredictionMessage, type ScalarsMessage, PROTOCOL_VERSION, type RunInfo, type SubscribeMessage,
} from '../../server/protocol.ts';
import { type DecodedFrame, type FrameDtype, tryDecodeFrame } from '../../server/snapshot-frame.ts';
import { Backoff, type BackoffOptions } from './backoff.ts';
import { CommandError, ConnectionError } from './errors.ts';
import { PendingRequests, type Request } from './pending-requests.ts';
import { closeRefusal, handshakeRefusal, printable, readRefusalBody } from './refusal.ts';
import { parseServerMessage } from './server-message.ts';

/** Options of `connect`. */
export interface ConnectOptions {
  /** Control token, sent once as `Authorization: Bearer …` in the handshake; never logged or put in a URL. */
  readonly token?: string;
  /**
   * `Origin` header of the handshake (default: the http(s) origin of the ws(s) URL, which a
   * server allows by default). `null` sends none: the server then requires the token.
   */
  readonly origin?: string | null;
  /** Reconnect after a lost connection (default true). Never after `close()` or a refused handshake. */
  readonly reconnect?: boolean;
  readonly backoff?: BackoffOptions;
  /** How long one send of a request waits for its answer, in ms (default 5000). */
  readonly commandTimeoutMs?: number;
  /** Re-sends of an unanswered request, with the same id (default 3). */
  readonly retries?: number;
  /** Longest wait for the server's handshake answer, in ms (default 10 000). */
  readonly handshakeTimeoutMs?: number;
}

/** Where a client's connection stands. */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'closed';
/** A control command without arguments (`setLearningRate` has its own overload of `command`). */
export type Command = Exclude<CommandType, 'setLearningRate'>;

/** Which model and version a `predict` asks, and what a field that is not a feature does. */
export interface PredictOptions {
  /** The model's name (a run id, or a saved model's name); may be left out when the server serves one model. */
  readonly model?: string;
  /** `latest` (default), a version number, or a label such as `stable`. */
  readonly version?: 'latest' | number | string;
  /** A named field that is neither a feature nor a target: `reject` (default, SG_ERR_UNKNOWN_FEATURE) or `ignore`. */
  readonly unknown?: 'reject' | 'ignore';
}

/** Options of a subscription: message rate and the number type of frames. */
export interface SubscribeOptions {
  /** Metrics and snapshot messages per second (the server's default when absent, capped by its maximum). */
  readonly rateHz?: number;
  /** Number type of snapshot and gradient frames (the server's default, float32, when absent). */
  readonly dtype?: FrameDtype;
}

/** Counters of what one client received, over all its connections. */
export interface ClientStats {
  /** Well-formed JSON messages. */
  messages: number;
  /** Well-formed binary frames. */
  frames: number;
  /** Text messages that were not a protocol v1 server message (ignored). */
  badMessages: number;
  /** Binary frames `tryDecodeFrame` refused (ignored). */
  badFrames: number;
  /** Connections opened again after a lost one. */
  reconnects: number;
}

/** A connected client (from `connect`): the server's runs and messages as Observables, subscriptions and control commands. */
export interface StreamgradClient {
  /** Replays the current state to new subscribers; errors with a `ConnectionError` when the client stops for good. */
  readonly state$: Observable<ConnectionState>;
  /** The server's hello on each (re)connect; replays the latest. */
  readonly hello$: Observable<HelloMessage>;
  /** The runs on the server (hello, then `run` and `run-removed` messages); replays the latest. */
  readonly runs$: Observable<readonly RunInfo[]>;
  /** Server errors not answering one of this client's requests (e.g. a refused re-subscription after a reconnect). */
  readonly errors$: Observable<ErrorMessage>;
  readonly stats: Readonly<ClientStats>;
  metrics$(run?: string): Observable<MetricsMessage>;
  /** Each run's scalar history, sent once per subscription to `metrics` (before its first metrics message). */
  scalars$(run?: string): Observable<ScalarsMessage>;
  events$(run?: string): Observable<EventMessage>;
  /** Parameter frames. */
  snapshots$(run?: string): Observable<DecodedFrame>;
  /** Gradient frames. */
  gradients$(run?: string): Observable<DecodedFrame>;
  /**
   * Subscribes to `channels` of `run` (or `*`: every run, present and future). Remembered
   * and sent again after every reconnect until `unsubscribe(run)`; a later call for the same
   * run replaces it. Resolves on the server's ack; a subscription the server refuses is forgotten.
   */
  subscribe(run: string, channels: readonly Channel[], options?: SubscribeOptions): Promise<void>;
  unsubscribe(run: string): Promise<void>;
  /** Sends a control command (QoS 1: acked, retried with its id, applied once). Rejects with a `CommandError`. */
  command(run: string, command: Command): Promise<AckMessage>;
  command(run: string, command: 'setLearningRate', args: { readonly learningRate: number }): Promise<AckMessage>;
  /**
   * Asks a model for predictions (the `predict` message; server/PROTOCOL.md, "Predictions"):
   * `input` is one sample (named values, an array of numbers, `{x: [...]}`) or an array of
   * samples. Resolves with the `prediction` answer, which names the version that answered;
   * rejects with a `CommandError` carrying the server's code (`SG_ERR_ARITY`,
   * `SG_ERR_UNKNOWN_VERSION`, …). Retried under its id after a lost connection, like commands.
   */
  predict(input: unknown, options?: PredictOptions): Promise<PredictionMessage>;
  /** Points `label` (default `stable`) at a version of a model (control access; acked with `{model, label, version, previous}`). */
  promote(model: string, version: number, label?: string): Promise<AckMessage>;
  /** Points `label` (default `stable`) back at the version it had before the last promote (control access). */
  rollback(model: string, label?: string): Promise<AckMessage>;
  /** Closes the connection for good: no reconnect, waiting requests fail with `SG_ERR_CLOSED`, streams complete. */
  close(): Promise<void>;
}

/**
 * Connects to a streamgrad server (`ws://host:port/ws`) and keeps connected: reconnects with
 * exponential backoff and jitter, re-subscribes, and re-sends unanswered commands under
 * their ids. Throws a `TypeError`/`RangeError` at once for a bad URL or option.
 *
 * @example
 * const client = connect('ws://127.0.0.1:8080/ws', { token: process.env.STREAMGRAD_TOKEN });
 * client.metrics$('a').subscribe((m) => console.log(m.step, m.metrics.loss));
 * await client.subscribe('a', ['metrics', 'events'], { rateHz: 2 });
 * await client.command('a', 'setLearningRate', { learningRate: 1e-3 });
 * await client.close();
 */
export function connect(url: string, options: ConnectOptions = {}): StreamgradClient {
  return new Client(url, options);
}

/** The http(s) origin a browser page serving this ws(s) URL would send. */
export function originOf(url: URL): string {
  return `${url.protocol === 'wss:' ? 'https:' : 'http:'}//${url.host}`;
}

interface RememberedSubscription {
  readonly message: Omit<SubscribeMessage, 'id'>;
  /** Id of the subscribe in flight on the current connection. */
  id: string | null;
  /** `subscribe()` calls waiting for the first answer. */
  waiters: { resolve: () => void; reject: (error: unknown) => void }[];
}

const HANDSHAKE_TIMEOUT_MS = 10_000;
/** How long `close()` waits for the server's half of the closing handshake. */
const CLOSE_TIMEOUT_MS = 2_000;

class Client implements StreamgradClient {
  readonly state$: Observable<ConnectionState>;
  readonly hello$: Observable<HelloMessage>;
  readonly runs$: Observable<readonly RunInfo[]>;
  readonly errors$: Observable<ErrorMessage>;
  readonly stats: ClientStats = { messages: 0, frames: 0, badMessages: 0, badFrames: 0, reconnects: 0 };

  private readonly url: string;
  private readonly socketOptions: ClientOptions;
  private readonly reconnect: boolean;
  private readonly backoff: Backoff;
  private readonly pending: PendingRequests;

  private readonly state = new BehaviorSubject<ConnectionState>('connecting');
  private readonly hello = new ReplaySubject<HelloMessage>(1);
  private readonly runs = new ReplaySubject<readonly RunInfo[]>(1);
  private readonly metrics = new Subject<MetricsMessage>();
  private readonly scalars = new Subject<ScalarsMessage>();
  private readonly events = new Subject<EventMessage>();
  private readonly frames = new Subject<DecodedFrame>();
  private readonly serverErrors = new Subject<ErrorMessage>();

  private readonly subscriptions = new Map<string, RememberedSubscription>();
  /** Requests bound to the current connection (subscribe, unsubscribe): id → what to do when it drops. */
  private readonly connectionRequests = new Map<string, () => void>();
  private runList: RunInfo[] = [];
  private socket: WebSocket | null = null;
  /** The current connection got its hello: requests may go out. */
  private ready = false;
  /** Why the current connection must not be retried, once known. */
  private refusal: ConnectionError | null = null;
  private lastSocketError: Error | null = null;
  private connectedOnce = false;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  /** Closed or failed: no connection will be made again. */
  private ended = false;
  private closing: Promise<void> | null = null;
  private afterSocketClosed: (() => void) | null = null;

  constructor(url: string, options: ConnectOptions) {
    const parsed = parseUrl(url);
    this.url = parsed.href;
    const token = options.token;
    if (token !== undefined && (typeof token !== 'string' || token.length === 0 || /[\0-\x1f\x7f]/.test(token))) {
      throw new TypeError('token: must be a non-empty string without control characters');
    }
    const origin = options.origin === undefined ? originOf(parsed) : options.origin;
    const commandTimeoutMs = options.commandTimeoutMs ?? 5000;
    if (!Number.isFinite(commandTimeoutMs) || commandTimeoutMs <= 0) throw new RangeError(`commandTimeoutMs: must be a finite number > 0, got ${String(commandTimeoutMs)}`);
    const retries = options.retries ?? 3;
    if (!Number.isSafeInteger(retries) || retries < 0) throw new RangeError(`retries: must be an integer ≥ 0, got ${String(retries)}`);
    const handshakeTimeout = options.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    if (!Number.isFinite(handshakeTimeout) || handshakeTimeout <= 0) throw new RangeError(`handshakeTimeoutMs: must be a finite number > 0, got ${String(handshakeTimeout)}`);
    this.reconnect = options.reconnect ?? true;
    this.backoff = new Backoff(options.backoff);
    // closeTimeout (ws ≥ 8.19) is missing from @types/ws 8.18
    const socketOptions: ClientOptions & { closeTimeout: number } = {
      handshakeTimeout,
      closeTimeout: CLOSE_TIMEOUT_MS,
      perMessageDeflate: false,
      followRedirects: false,
      ...(origin !== null && { origin }),
      ...(token !== undefined && { headers: { Authorization: `Bearer ${token}` } }),
    };
    this.socketOptions = socketOptions;
    this.pending = new PendingRequests({ send: (request) => this.send(request) }, { timeoutMs: commandTimeoutMs, retries });

    this.state$ = this.state.asObservable();
    this.hello$ = this.hello.asObservable();
    this.runs$ = this.runs.asObservable();
    this.errors$ = this.serverErrors.asObservable();
    this.open();
  }

  metrics$(run?: string): Observable<MetricsMessage> {
    return run === undefined ? this.metrics.asObservable() : this.metrics.pipe(filter((m) => m.run === run));
  }

  scalars$(run?: string): Observable<ScalarsMessage> {
    return run === undefined ? this.scalars.asObservable() : this.scalars.pipe(filter((m) => m.run === run));
  }

  events$(run?: string): Observable<EventMessage> {
    return run === undefined ? this.events.asObservable() : this.events.pipe(filter((e) => e.run === run));
  }

  snapshots$(run?: string): Observable<DecodedFrame> {
    return this.frames.pipe(filter((f) => f.kind === 'parameters' && (run === undefined || f.run === run)));
  }

  gradients$(run?: string): Observable<DecodedFrame> {
    return this.frames.pipe(filter((f) => f.kind === 'gradients' && (run === undefined || f.run === run)));
  }

  subscribe(run: string, channels: readonly Channel[], options: SubscribeOptions = {}): Promise<void> {
    const message = {
      type: 'subscribe' as const,
      run,
      channels: [...channels],
      ...(options.rateHz !== undefined && { rateHz: options.rateHz }),
      ...(options.dtype !== undefined && { dtype: options.dtype }),
    };
    const invalid = this.refuseEarly({ ...message, id: randomUUID() });
    if (invalid !== null) return Promise.reject(invalid);
    return new Promise<void>((resolve, reject) => {
      const previous = this.subscriptions.get(run);
      if (previous !== undefined) this.retire(previous);
      const subscription: RememberedSubscription = { message, id: null, waiters: [...(previous?.waiters ?? []), { resolve, reject }] };
      this.subscriptions.set(run, subscription);
      if (this.ready) this.sendSubscription(run, subscription);
    });
  }

  unsubscribe(run: string): Promise<void> {
    const request = { type: 'unsubscribe' as const, id: randomUUID(), run };
    const invalid = this.refuseEarly(request);
    if (invalid !== null) return Promise.reject(invalid);
    const subscription = this.subscriptions.get(run);
    if (subscription !== undefined) {
      this.subscriptions.delete(run);
      this.retire(subscription);
      for (const w of subscription.waiters.splice(0)) w.reject(new CommandError('SG_ERR_CLOSED', `subscribe (run ${JSON.stringify(run)}): unsubscribed before the server answered`, 'subscribe', ''));
    }
    if (!this.ready) return Promise.resolve(); // the next connection starts without it
    return new Promise<void>((resolve, reject) => {
      this.connectionRequests.set(request.id, resolve); // a new connection has no subscription to drop
      this.pending.add(request).then(
        () => {
          this.connectionRequests.delete(request.id);
          resolve();
        },
        (error: unknown) => {
          this.connectionRequests.delete(request.id);
          reject(error);
        },
      );
    });
  }

  command(run: string, command: Command): Promise<AckMessage>;
  command(run: string, command: 'setLearningRate', args: { readonly learningRate: number }): Promise<AckMessage>;
  command(run: string, command: CommandType, args?: { readonly learningRate: number }): Promise<AckMessage> {
    const request = { type: command, id: randomUUID(), run, ...(command === 'setLearningRate' && { learningRate: args?.learningRate }) } as Request;
    const invalid = this.refuseEarly(request);
    return invalid !== null ? Promise.reject(invalid) : this.pending.add(request);
  }

  predict(input: unknown, options: PredictOptions = {}): Promise<PredictionMessage> {
    const request = {
      type: 'predict', id: randomUUID(), input,
      ...(options.model !== undefined && { model: options.model }),
      ...(options.version !== undefined && { version: options.version }),
      ...(options.unknown !== undefined && { unknown: options.unknown }),
    } as Request;
    const invalid = this.refuseEarly(request);
    return invalid !== null ? Promise.reject(invalid) : this.pending.add<PredictionMessage>(request);
  }

  promote(model: string, version: number, label?: string): Promise<AckMessage> {
    const request = { type: 'promote', id: randomUUID(), model, version, ...(label !== undefined && { label }) } as Request;
    const invalid = this.refuseEarly(request);
    return invalid !== null ? Promise.reject(invalid) : this.pending.add(request);
  }

  rollback(model: string, label?: string): Promise<AckMessage> {
    const request = { type: 'rollback', id: randomUUID(), model, ...(label !== undefined && { label }) } as Request;
    const invalid = this.refuseEarly(request);
    return invalid !== null ? Promise.reject(invalid) : this.pending.add(request);
  }

  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      if (this.ended) return resolve(); // failed before: already torn down
      this.ended = true;
      if (this.reconnectTimer !== null) clearTimeout(this.reconnectTimer);
      this.reconnectTimer = null;
      this.dropRequests(new CommandError('SG_ERR_CLOSED', 'the client was closed', 'close', ''), 'the client was closed');
      const finish = () => {
        this.setState('closed');
        for (const s of this.subjects()) s.complete();
        resolve();
      };
      const socket = this.socket;
      if (socket === null) return finish();
      this.afterSocketClosed = finish;
      if (socket.readyState === WebSocket.OPEN) socket.close(CLOSE.normal, 'client closed');
      else socket.terminate();
    });
    return this.closing;
  }

  // -------------------------------------------------------------------------------------
  // connection

  private open(): void {
    const socket = new WebSocket(this.url, this.socketOptions);
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.refusal = null;
    this.lastSocketError = null;
    socket.on('unexpected-response', (_request, response) => {
      readRefusalBody(response, (body) => {
        if (socket === this.socket) this.refusal = handshakeRefusal(this.url, response.statusCode ?? 0, response.statusMessage ?? '', body);
        socket.terminate();
      });
    });
    socket.on('message', (data, isBinary) => {
      if (socket === this.socket) this.onMessage(socket, data as ArrayBuffer, isBinary);
    });
    socket.on('error', (error) => {
      if (socket === this.socket) this.lastSocketError = error;
    });
    socket.on('close', (code, reason) => {
      if (socket === this.socket) this.onClose(code, reason.toString('utf8'));
    });
  }

  private onClose(code: number, reason: string): void {
    this.socket = null;
    this.ready = false;
    for (const [id, onLost] of [...this.connectionRequests]) {
      if (this.pending.forget(id)) onLost();
    }
    this.connectionRequests.clear();
    for (const subscription of this.subscriptions.values()) subscription.id = null;
    if (this.afterSocketClosed !== null) return this.afterSocketClosed();

    const failure = this.refusal ?? closeRefusal(this.url, code, reason) ?? (this.reconnect ? null : this.lost(code, reason));
    if (failure !== null) return this.fail(failure);
    this.setState('reconnecting');
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      if (!this.ended) this.open();
    }, this.backoff.next());
  }

  private lost(code: number, reason: string): ConnectionError {
    const why = this.connectedOnce || code !== 1006 ? `closed (${code}${reason ? ` ${printable(reason)}` : ''})` : `failed: ${this.lastSocketError?.message ?? 'no answer'}`;
    return new ConnectionError('SG_ERR_CONNECTION', `connection to ${this.url} ${why}; reconnect is off`, { closeCode: code }, { cause: this.lastSocketError ?? undefined });
  }

  /** Stops for good: requests fail, streams error with `error`. */
  private fail(error: ConnectionError): void {
    this.ended = true;
    this.dropRequests(new CommandError('SG_ERR_CLOSED', error.message, 'connect', '', { cause: error }), error.message, error);
    this.setState('closed');
    for (const s of this.subjects()) s.error(error);
  }

  private dropRequests(subscribeError: CommandError, reason: string, cause?: unknown): void {
    this.pending.rejectAll('SG_ERR_CLOSED', reason, cause);
    for (const subscription of this.subscriptions.values()) {
      for (const w of subscription.waiters.splice(0)) w.reject(subscribeError);
    }
    this.subscriptions.clear();
    this.connectionRequests.clear();
  }

  private subjects(): Pick<Subject<unknown>, 'error' | 'complete'>[] {
    return [this.state, this.hello, this.runs, this.metrics, this.scalars, this.events, this.frames, this.serverErrors];
  }

  /** Emits a state when it differs from the current one (failed attempts in a row stay one `reconnecting`). */
  private setState(state: ConnectionState): void {
    if (this.state.value !== state) this.state.next(state);
  }

  private send(request: Request): boolean {
    const socket = this.socket;
    if (!this.ready || socket === null || socket.readyState !== WebSocket.OPEN) return false;
    socket.send(JSON.stringify(request));
    return true;
  }

  // -------------------------------------------------------------------------------------
  // incoming

  private onMessage(socket: WebSocket, data: ArrayBuffer, isBinary: boolean): void {
    if (isBinary) {
      const frame = tryDecodeFrame(data);
      if (frame === null) {
        this.stats.badFrames++;
        return;
      }
      this.stats.frames++;
      this.frames.next(frame);
      return;
    }
    const message = parseServerMessage(Buffer.from(data).toString('utf8'));
    if (message === null) {
      this.stats.badMessages++;
      return;
    }
    this.stats.messages++;
    switch (message.type) {
      case 'hello':
        return this.onHello(socket, message);
      case 'run': {
        const i = this.runList.findIndex((r) => r.id === message.run.id);
        this.runList = i < 0 ? [...this.runList, message.run] : this.runList.map((r, j) => (j === i ? message.run : r));
        return this.runs.next(this.runList);
      }
      case 'run-removed': {
        // the server dropped every subscription to it; a run added again under this id needs a new subscribe
        const subscription = this.subscriptions.get(message.run);
        if (subscription !== undefined) {
          this.subscriptions.delete(message.run);
          this.retire(subscription);
          for (const w of subscription.waiters.splice(0)) w.reject(new CommandError('SG_ERR_UNKNOWN_RUN', `subscribe (run ${JSON.stringify(message.run)}): the run left the server`, 'subscribe', ''));
        }
        this.runList = this.runList.filter((r) => r.id !== message.run);
        return this.runs.next(this.runList);
      }
      case 'metrics':
        return this.metrics.next(message);
      case 'scalars':
        return this.scalars.next(message);
      case 'event':
        return this.events.next(message);
      case 'ack':
        this.pending.acknowledge(message); // an unmatched ack answers a retry that was answered before
        return;
      case 'prediction':
        this.pending.answer(message);
        return;
      case 'error':
        if (this.pending.refuse(message) === undefined) this.serverErrors.next(message);
        return;
    }
  }

  private onHello(socket: WebSocket, hello: HelloMessage): void {
    if (hello.protocol !== PROTOCOL_VERSION) {
      this.refusal = new ConnectionError('SG_ERR_PROTOCOL', `${this.url} speaks protocol ${String(hello.protocol)}; this client speaks ${PROTOCOL_VERSION}`);
      socket.close(CLOSE.normal, 'protocol version');
      return;
    }
    const first = !this.ready;
    if (first) {
      this.ready = true;
      this.backoff.reset();
      if (this.connectedOnce) this.stats.reconnects++;
      this.connectedOnce = true;
      this.pending.resendAll();
      for (const [run, subscription] of this.subscriptions) this.sendSubscription(run, subscription);
    }
    this.runList = [...hello.runs];
    if (first) this.setState('open');
    this.hello.next(hello);
    this.runs.next(this.runList);
  }

  // -------------------------------------------------------------------------------------
  // requests

  /** Sends a remembered subscription on the current connection under a fresh id. */
  private sendSubscription(run: string, subscription: RememberedSubscription): void {
    const id = randomUUID();
    subscription.id = id;
    this.connectionRequests.set(id, () => undefined); // sent again on the next connection
    this.pending.add({ ...subscription.message, id }).then(
      () => {
        this.connectionRequests.delete(id);
        if (subscription.id !== id) return;
        for (const w of subscription.waiters.splice(0)) w.resolve();
      },
      (error: unknown) => {
        this.connectionRequests.delete(id);
        if (subscription.id !== id || this.subscriptions.get(run) !== subscription) return;
        const refused = error instanceof CommandError && error.code !== 'SG_ERR_TIMEOUT' && error.code !== 'SG_ERR_CLOSED';
        if (refused) this.subscriptions.delete(run); // a timed-out one is tried again after the next reconnect
        if (refused && subscription.waiters.length === 0) {
          // a re-subscription after a reconnect: nobody awaits it, so tell errors$
          this.serverErrors.next({ type: 'error', code: (error as CommandError).code as ErrorMessage['code'], message: (error as CommandError).message, id });
        }
        for (const w of subscription.waiters.splice(0)) w.reject(error);
      },
    );
  }

  /** Stops tracking the in-flight subscribe of a replaced or dropped subscription. */
  private retire(subscription: RememberedSubscription): void {
    if (subscription.id === null) return;
    this.pending.forget(subscription.id);
    this.connectionRequests.delete(subscription.id);
    subscription.id = null;
  }

  /** A `CommandError` for a request that cannot go out: invalid by the protocol's schema, or the client ended. */
  private refuseEarly(request: Request): CommandError | null {
    const schema = Object.hasOwn(CLIENT_SCHEMAS, request.type) ? CLIENT_SCHEMAS[request.type as keyof typeof CLIENT_SCHEMAS] : undefined;
    if (schema === undefined || request.type === 'auth') {
      return new CommandError('SG_ERR_UNKNOWN_TYPE', `unknown command ${JSON.stringify(String(request.type))}`, String(request.type), request.id);
    }
    const parsed = schema.safeParse(request);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || '(message)'}: ${issue.message}`).join('; ');
      return new CommandError('SG_ERR_SCHEMA', `${request.type}: ${problems}`, request.type, request.id);
    }
    if (this.ended) return new CommandError('SG_ERR_CLOSED', `${request.type}: the client is closed`, request.type, request.id);
    return null;
  }
}

function parseUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`not a URL: ${JSON.stringify(String(url).slice(0, 200))}; expected ws://host:port/ws`);
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    throw new TypeError(`${parsed.protocol}// URL given; expected ws:// or wss:// (e.g. ws://127.0.0.1:8080/ws)`);
  }
  if (parsed.username !== '' || parsed.password !== '') throw new TypeError('the URL must not hold credentials; pass the token option instead');
  if (parsed.hash !== '') throw new TypeError('the URL must not have a #fragment');
  return parsed;
}

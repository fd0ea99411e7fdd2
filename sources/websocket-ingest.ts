import type { IncomingMessage } from 'node:http';
import type { RawData, WebSocket } from 'ws';
import { requireConfig, StreamgradError } from '../core/errors.ts';
import type { IngestRecord } from '../core/record.ts';
import { bearerToken, tokenMatches } from '../net/origin.ts';
import { BoundedQueue, type BoundedQueueOptions, type QueueStats } from './bounded-queue.ts';

/** Options of a WebSocket ingest endpoint. */
export interface WebSocketIngestOptions {
  /** The token sensors must present (required). */
  readonly token: string;
  /** The queue between the sockets and training (default capacity 1024, `drop-oldest`). */
  readonly queue?: BoundedQueueOptions;
  /** Most samples in one message (default 1000); a longer array is rejected whole. */
  readonly maxSamplesPerMessage?: number;
  /** Most authenticated ingest connections at once (default 100); more are refused with 503. */
  readonly maxConnections?: number;
  /**
   * Most connections still to send their auth message, at once (default 10); more are
   * refused with 503. A separate pool: sockets that never authenticate cannot take the
   * slots of sensors that present the token.
   */
  readonly maxUnauthenticated?: number;
  /** Time a connection without an Authorization header has to send its auth message (default 5000 ms). */
  readonly authTimeoutMs?: number;
}

/** The verdict on an ingest handshake. */
export type IngestHandshake =
  | { readonly ok: true; readonly authenticated: boolean }
  | { readonly ok: false; readonly status: 401 | 503; readonly reason: string };

/** What `/ingest` needs from a source: `serve({ ingest })` calls these when it reads a handshake and when it completes it. */
export interface IngestEndpoint {
  authorize(req: IncomingMessage): IngestHandshake;
  accept(ws: WebSocket, authenticated: boolean, remote: string): void;
  /** Closes every ingest connection (1001) and resolves once they are closed. */
  disconnectAll(): Promise<void>;
}

/** Close codes of the ingest endpoint. */
const CLOSE = { goingAway: 1001, unsupported: 1003, policy: 1008, tryAgainLater: 1013 } as const;

/**
 * WebSocket ingestion: sensors push samples to the server at `/ingest` and training
 * pulls them from a `BoundedQueue` (RELIABILITY 29). Attach it with
 * `serve({ ingest })`; iterate it (or give it to a `TrainingRun` as `source`).
 *
 * Protocol (text frames, JSON):
 * - the server checks the `Origin` first, as for `/ws`: a browser page of another
 *   origin is refused (403) before anything here runs.
 * - auth: `Authorization: Bearer TOKEN` on the handshake (a wrong token → 401), or, for
 *   clients that cannot set headers, a first message `{"type":"auth","token":"..."}`
 *   within `authTimeoutMs` → `{"type":"auth-ok"}`; anything else first, a wrong token or
 *   silence → close 1008. Tokens are compared in constant time and never logged.
 * - connections are counted in two pools: authenticated ones (`maxConnections`) and
 *   ones still to send their auth message (`maxUnauthenticated`); a full pool refuses
 *   the handshake with 503, and an auth message that finds the authenticated pool full
 *   closes 1013 (try again later). Idle unauthenticated sockets never starve sensors.
 * - then each message is one sample (`{"x":[...],"y":[...]}` or a named record) or an
 *   array of them, or, for a run that joins delayed labels (`joinLabels`), a message of
 *   labels `{"type":"labels","labels": record or [records]}` (marked `stream: 'labels'`),
 *   answered by
 *   `{"type":"ack","message":n,"received":k,"queued":q,"dropped":d,"rejected":r}`:
 *   `rejected` counts what could not even be read (not JSON, too many samples); those
 *   still travel on as error records, so validation writes every bad sample to the
 *   dead letters with its message id (`c3:17`, or `c3:17.4` for the 5th of an array).
 * - binary frames → close 1003; oversized frames → close 1009 (the server's maxPayload).
 *
 * With the `block` policy a full queue pauses the connection's socket until training
 * makes room: TCP pushes back on the sensor instead of losing samples.
 */
export class WebSocketIngest implements AsyncIterable<IngestRecord>, IngestEndpoint {
  readonly queue: BoundedQueue<IngestRecord>;
  /** Messages and records received; connections accepted. */
  messages = 0;
  received = 0;
  connectionsAccepted = 0;
  private readonly token: string;
  private readonly maxSamples: number;
  private readonly maxConnections: number;
  private readonly maxUnauthenticated: number;
  private readonly authTimeoutMs: number;
  private readonly sockets = new Set<WebSocket>();
  /** The sockets still to authenticate (a subset of `sockets`). */
  private readonly unauthenticated = new Set<WebSocket>();
  private nextConnection = 1;

  constructor(options: WebSocketIngestOptions) {
    const { token, maxSamplesPerMessage = 1000, maxConnections = 100, maxUnauthenticated = 10, authTimeoutMs = 5000 } = options;
    requireConfig(typeof token === 'string' && token.length >= 1 && token.length <= 1024, 'token', 'is required: 1 to 1024 characters');
    requireConfig(Number.isSafeInteger(maxSamplesPerMessage) && maxSamplesPerMessage >= 1, 'maxSamplesPerMessage', `must be an integer ≥ 1, got ${maxSamplesPerMessage}`);
    requireConfig(Number.isSafeInteger(maxConnections) && maxConnections >= 1, 'maxConnections', `must be an integer ≥ 1, got ${maxConnections}`);
    requireConfig(Number.isSafeInteger(maxUnauthenticated) && maxUnauthenticated >= 0, 'maxUnauthenticated', `must be an integer ≥ 0, got ${maxUnauthenticated}`);
    requireConfig(Number.isSafeInteger(authTimeoutMs) && authTimeoutMs >= 1, 'authTimeoutMs', `must be an integer ≥ 1, got ${authTimeoutMs}`);
    this.token = token;
    this.maxSamples = maxSamplesPerMessage;
    this.maxConnections = maxConnections;
    this.maxUnauthenticated = maxUnauthenticated;
    this.authTimeoutMs = authTimeoutMs;
    this.queue = new BoundedQueue<IngestRecord>(options.queue);
  }

  get connections(): number {
    return this.sockets.size;
  }

  get stats(): QueueStats & { readonly messages: number; readonly received: number; readonly connections: number; readonly unauthenticated: number } {
    return { ...this.queue.stats, messages: this.messages, received: this.received, connections: this.sockets.size, unauthenticated: this.unauthenticated.size };
  }

  /** Authenticated connections (the pool `maxConnections` bounds). */
  private get authenticated(): number {
    return this.sockets.size - this.unauthenticated.size;
  }

  /**
   * Called by the server's upgrade handler after its own checks (Host, Origin), and again
   * just before it completes the handshake (it may wait in the server's queue meanwhile, as
   * other handshakes complete): `accept` follows that second verdict in the same turn.
   */
  authorize(req: IncomingMessage): IngestHandshake {
    if (this.queue.closed) return { ok: false, status: 503, reason: 'ingest closed' };
    const presented = bearerToken(req);
    if (presented === null) {
      if (this.unauthenticated.size >= this.maxUnauthenticated) return { ok: false, status: 503, reason: `at most ${this.maxUnauthenticated} ingest connections waiting to authenticate` };
      return { ok: true, authenticated: false };
    }
    if (!tokenMatches(this.token, presented)) return { ok: false, status: 401, reason: 'invalid token' };
    if (this.authenticated >= this.maxConnections) return { ok: false, status: 503, reason: `at most ${this.maxConnections} ingest connections` };
    return { ok: true, authenticated: true };
  }

  accept(ws: WebSocket, authenticated: boolean, remote: string): void {
    const id = `c${this.nextConnection++}`;
    this.connectionsAccepted++;
    this.sockets.add(ws);
    if (!authenticated) this.unauthenticated.add(ws);
    void remote;
    let authed = authenticated;
    let messageNo = 0;
    // messages are handled one after another (a blocked queue holds the next ones back)
    let chain: Promise<void> = Promise.resolve();
    const authTimer = authed ? null : setTimeout(() => ws.close(CLOSE.policy, 'auth required'), this.authTimeoutMs);
    authTimer?.unref();
    ws.on('error', () => undefined); // ws closes the socket itself (1007, 1009); nothing to do
    ws.on('close', () => {
      if (authTimer !== null) clearTimeout(authTimer);
      this.sockets.delete(ws);
      this.unauthenticated.delete(ws);
    });
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) {
        ws.close(CLOSE.unsupported, 'text frames only');
        return;
      }
      const text = rawText(data);
      if (!authed) {
        if (authTimer !== null) clearTimeout(authTimer);
        let token: unknown;
        try {
          const message = JSON.parse(text) as { type?: unknown; token?: unknown } | null;
          token = message !== null && typeof message === 'object' && message.type === 'auth' ? message.token : undefined;
        } catch {
          token = undefined;
        }
        if (typeof token !== 'string' || !tokenMatches(this.token, token)) {
          ws.close(CLOSE.policy, 'auth required: a valid token');
          return;
        }
        if (this.authenticated >= this.maxConnections) {
          ws.close(CLOSE.tryAgainLater, `at most ${this.maxConnections} ingest connections`);
          return;
        }
        this.unauthenticated.delete(ws);
        authed = true;
        ws.send(JSON.stringify({ type: 'auth-ok' }));
        return;
      }
      const n = ++messageNo;
      this.messages++;
      chain = chain.then(() => this.ingest(ws, `${id}:${n}`, n, text)).catch(() => ws.terminate());
    });
  }

  private async ingest(ws: WebSocket, messageId: string, n: number, text: string): Promise<void> {
    const records = parseMessage(text, messageId, this.maxSamples);
    let queued = 0, dropped = 0, rejected = 0;
    for (const record of records) {
      if (record.error !== undefined) rejected++;
      if (this.queue.policy === 'block' && this.queue.full) {
        ws.pause();
        await this.queue.room();
        ws.resume();
      }
      const before = this.queue.dropped;
      if (this.queue.push(record)) queued++;
      dropped += this.queue.dropped - before;
    }
    this.received += records.length;
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'ack', message: n, received: records.length, queued, dropped, rejected }));
  }

  [Symbol.asyncIterator](): AsyncIterator<IngestRecord> {
    return this.queue[Symbol.asyncIterator]();
  }

  /** No more samples: closes the connections and ends the iterator after the queued records. */
  async close(): Promise<void> {
    this.queue.end();
    await this.disconnectAll();
  }

  async disconnectAll(): Promise<void> {
    await Promise.all([...this.sockets].map((ws) => new Promise<void>((resolve) => {
      if (ws.readyState === ws.CLOSED) return resolve();
      ws.once('close', () => resolve());
      ws.close(CLOSE.goingAway, 'ingest closing');
      setTimeout(() => ws.terminate(), 1000).unref();
    })));
  }
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8');
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  return Buffer.from(data).toString('utf8');
}

/** One message → its records: one per sample, or one error record when it cannot be read. */
function parseMessage(text: string, messageId: string, maxSamples: number): IngestRecord[] {
  const origin = { source: 'ws', messageId, raw: text };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return [{ error: new StreamgradError('SG_ERR_BAD_JSON', `message ${messageId}: ${error instanceof Error ? error.message : String(error)}`, 'message', { cause: error }), origin }];
  }
  // delayed labels: {"type": "labels", "labels": record or [records]} brings labels for features sent before (`joinLabels`)
  const labels = isLabelsMessage(value);
  if (labels) value = (value as { labels: unknown }).labels;
  const tag = labels ? { stream: 'labels' as const } : {};
  if (!Array.isArray(value)) return [{ value, origin, ...tag }];
  if (value.length > maxSamples) {
    return [{ error: new StreamgradError('SG_ERR_ARITY', `message ${messageId}: ${value.length} samples in one message, at most ${maxSamples}`, 'message'), origin, ...tag }];
  }
  return value.map((v: unknown, i) => ({ value: v, origin: { source: 'ws', messageId: `${messageId}.${i}`, raw: JSON.stringify(v) ?? String(v) }, ...tag }));
}

/** `{"type": "labels", "labels": ...}`: a message of labels (a named record with a `type` field has no `labels` field besides). */
function isLabelsMessage(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && (value as { type?: unknown }).type === 'labels' && Object.hasOwn(value, 'labels') && Object.keys(value).length === 2;
}

import type { AckMessage, ClientMessage, ErrorMessage, PredictionMessage } from '../../server/protocol.ts';
import { CommandError, type CommandErrorCode } from './errors.ts';

/** A client message that expects an answer (`ack` or `error`) carrying its id. */
export type Request = ClientMessage & { readonly id: string };

/** Where requests go out; `send` returns false when no connection is ready to take them. */
export interface RequestTransport {
  send(request: Request): boolean;
}

export interface PendingOptions {
  /** How long one send waits for its answer before the next send, in ms. */
  readonly timeoutMs: number;
  /** Sends after the first one; a request goes out at most `1 + retries` times. */
  readonly retries: number;
}

/** What settles a request: an `ack`, or a `prediction` answering a `predict`. */
export type Answer = AckMessage | PredictionMessage;

interface Entry {
  readonly request: Request;
  readonly resolve: (answer: Answer) => void;
  readonly reject: (error: CommandError) => void;
  sends: number;
  timer: ReturnType<typeof setTimeout> | null;
}

/**
 * Requests waiting for their answer: QoS 1 (MQTT's "at least once"). Each request keeps
 * its id on every send, so the server, which de-duplicates by id, applies it once however
 * often it arrives.
 *
 * A request is sent at once when a connection is ready, else when one is. Each send waits
 * `timeoutMs`; with no answer by then it is sent again (or, while disconnected, as soon as
 * a connection is back: no send is spent on a dead connection). A reconnect sends every
 * waiting request again, since answers in flight died with the old connection. After
 * `1 + retries` sends without an answer the request fails with `SG_ERR_TIMEOUT`.
 *
 * @example
 * const pending = new PendingRequests(transport, { timeoutMs: 5000, retries: 3 });
 * const ack = await pending.add({ type: 'pause', id: randomUUID(), run: 'a' });
 * // elsewhere, for every incoming ack / error: pending.acknowledge(msg) / pending.refuse(msg)
 */
export class PendingRequests {
  private readonly entries = new Map<string, Entry>();
  private readonly maxSends: number;

  constructor(private readonly transport: RequestTransport, private readonly options: PendingOptions) {
    this.maxSends = 1 + options.retries;
  }

  /** Requests still waiting. */
  get size(): number {
    return this.entries.size;
  }

  /** Whether a request of this id is waiting. */
  has(id: string): boolean {
    return this.entries.has(id);
  }

  /** The waiting requests, oldest first. */
  requests(): Request[] {
    return [...this.entries.values()].map((e) => e.request);
  }

  /** Sends `request` (now or once connected) and resolves with its answer (an ack; a `prediction` for a `predict`); rejects with a `CommandError`. */
  add<T extends Answer = AckMessage>(request: Request): Promise<T> {
    if (this.entries.has(request.id)) return Promise.reject(new TypeError(`a request with id ${request.id} is already waiting`));
    return new Promise<T>((resolve, reject) => {
      const entry: Entry = { request, resolve: resolve as (answer: Answer) => void, reject, sends: 0, timer: null };
      this.entries.set(request.id, entry);
      this.send(entry);
    });
  }

  /** Settles the request `ack` answers; false when no request of that id waits (e.g. a late duplicate). */
  acknowledge(ack: AckMessage): boolean {
    const entry = this.take(ack.id);
    entry?.resolve(ack);
    return entry !== undefined;
  }

  /** Settles the `predict` request a `prediction` answers; false when none of its id waits. */
  answer(prediction: PredictionMessage): boolean {
    const entry = this.take(prediction.id);
    entry?.resolve(prediction);
    return entry !== undefined;
  }

  /** Rejects the request `error` answers; returns that request, or undefined when none of its id waits. */
  refuse(error: ErrorMessage): Request | undefined {
    if (error.id === undefined) return undefined;
    const entry = this.take(error.id);
    if (entry === undefined) return undefined;
    entry.reject(new CommandError(error.code, `${describe(entry.request)}: ${error.message}`, entry.request.type, entry.request.id));
    return entry.request;
  }

  /**
   * Drops a waiting request without settling it (its timer stops, its promise stays
   * pending): for requests bound to a connection that is gone, which the caller re-issues.
   */
  forget(id: string): boolean {
    return this.take(id) !== undefined;
  }

  /** After a (re)connect: sends every waiting request again, oldest first. */
  resendAll(): void {
    for (const entry of [...this.entries.values()]) {
      if (entry.sends >= this.maxSends) {
        this.fail(entry, 'SG_ERR_TIMEOUT', `no answer after ${entry.sends} send(s); the last one was lost with its connection`);
      } else {
        this.send(entry);
      }
    }
  }

  /** Fails every waiting request (the client is closing or gave up) and stops all timers. */
  rejectAll(code: CommandErrorCode, reason: string, cause?: unknown): void {
    for (const entry of [...this.entries.values()]) this.fail(entry, code, reason, cause);
  }

  private send(entry: Entry): void {
    if (entry.timer !== null) clearTimeout(entry.timer);
    entry.timer = null;
    if (!this.transport.send(entry.request)) return; // waits for resendAll()
    entry.sends++;
    entry.timer = setTimeout(() => this.onTimeout(entry), this.options.timeoutMs);
  }

  private onTimeout(entry: Entry): void {
    entry.timer = null;
    if (entry.sends >= this.maxSends) {
      const seconds = (this.options.timeoutMs * entry.sends) / 1000;
      this.fail(entry, 'SG_ERR_TIMEOUT', `no answer after ${entry.sends} send(s) over ${seconds} s`);
    } else {
      this.send(entry);
    }
  }

  private fail(entry: Entry, code: CommandErrorCode, reason: string, cause?: unknown): void {
    this.take(entry.request.id);
    entry.reject(new CommandError(code, `${describe(entry.request)}: ${reason}`, entry.request.type, entry.request.id, cause === undefined ? undefined : { cause }));
  }

  private take(id: string): Entry | undefined {
    const entry = this.entries.get(id);
    if (entry === undefined) return undefined;
    this.entries.delete(id);
    if (entry.timer !== null) clearTimeout(entry.timer);
    entry.timer = null;
    return entry;
  }
}

/** `pause (run "a")`, never the token of an `auth`. */
function describe(request: Request): string {
  if ('run' in request) return `${request.type} (run ${JSON.stringify(request.run)})`;
  return 'model' in request && request.model !== undefined ? `${request.type} (model ${JSON.stringify(request.model)})` : request.type;
}

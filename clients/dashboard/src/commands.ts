import type { AckMessage, ErrorMessage } from '../../../server/protocol.ts';

export type CommandName = 'pause' | 'resume' | 'step' | 'reset' | 'checkpoint' | 'setLearningRate' | 'auth' | 'history' | 'subscribe';

export interface Outcome {
  readonly ok: boolean;
  /** The ack's result (ok) or the error (not ok). */
  readonly ack?: AckMessage;
  readonly error?: { readonly code: string; readonly message: string };
}

interface Pending {
  readonly message: { readonly type: string; readonly id: string } & Record<string, unknown>;
  readonly done: (outcome: Outcome) => void;
  readonly deadline: number;
  /** Resent on a new connection (commands are applied at most once per id, so this is safe). */
  readonly resend: boolean;
}

/**
 * Requests that the server answers (commands, auth, history): each gets a fresh id, its
 * ack or error is routed back to its caller, and one without an answer after `timeoutMs`
 * fails. Commands still unanswered when the connection drops are sent again, with the
 * same id, on the next connection: the server applies each id at most once.
 */
export class Requests {
  private readonly pending = new Map<string, Pending>();
  private counter = 0;
  private readonly prefix = `d${Math.floor(Math.random() * 0x7fffffff).toString(36)}`;

  constructor(private readonly send: (message: object) => boolean, private readonly timeoutMs = 10_000) {}

  /** Sends `message` (an id is added); `done` gets the outcome once. */
  request(message: { readonly type: CommandName } & Record<string, unknown>, done: (outcome: Outcome) => void, resend = true): string {
    const id = `${this.prefix}-${++this.counter}`;
    const full = { ...message, id };
    this.pending.set(id, { message: full, done, deadline: performance.now() + this.timeoutMs, resend });
    this.send(full);
    return id;
  }

  /** Routes an ack or error; false when it answers nothing of ours. */
  answer(message: AckMessage | ErrorMessage): boolean {
    if (message.id === undefined) return false;
    const pending = this.pending.get(message.id);
    if (pending === undefined) return false;
    this.pending.delete(message.id);
    pending.done(message.type === 'ack' ? { ok: true, ack: message } : { ok: false, error: { code: message.code, message: message.message } });
    return true;
  }

  /** The connection dropped: requests that must not be resent fail now. */
  dropped(): void {
    for (const [id, pending] of this.pending) {
      if (pending.resend) continue;
      this.pending.delete(id);
      pending.done({ ok: false, error: { code: 'SG_ERR_CLOSED', message: 'the connection dropped before the answer' } });
    }
  }

  /** A new connection is ready: resend the commands still unanswered, under their ids. */
  reconnected(): void {
    for (const pending of this.pending.values()) if (pending.resend) this.send(pending.message);
  }

  /** Fails requests past their deadline (call now and then). */
  expire(now = performance.now()): void {
    for (const [id, pending] of this.pending) {
      if (now < pending.deadline) continue;
      this.pending.delete(id);
      pending.done({ ok: false, error: { code: 'SG_ERR_TIMEOUT', message: 'no answer from the server' } });
    }
  }

  get size(): number {
    return this.pending.size;
  }
}

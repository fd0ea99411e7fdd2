import { Backoff, type BackoffOptions } from '../../node/backoff.ts';
import { type DecodedFrame, tryDecodeFrame } from '../../../server/snapshot-frame.ts';
import { parseWire, type WireMessage } from './wire.ts';

export type SocketState = 'connecting' | 'open' | 'reconnecting' | 'closed';

/** What arrived, over every connection of the page. */
export interface SocketStats {
  messages: number;
  frames: number;
  /** Text messages that were not a well-formed protocol v1 server message (dropped). */
  ignoredMessages: number;
  /** Binary frames that did not decode (dropped). */
  badFrames: number;
  reconnects: number;
  bytes: number;
}

export interface SocketHandlers {
  state(state: SocketState, detail: string): void;
  message(message: WireMessage): void;
  frame(frame: DecodedFrame): void;
}

/** The page's WebSocket URL: `/ws` on the server that served it (ws: or wss: to match). */
export function socketUrl(location: { protocol: string; host: string }): string {
  return `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
}

/**
 * The browser's side of protocol v1: one WebSocket to the serving server, reopened with
 * exponential backoff and jitter whenever it drops (a restarted server, a network blip),
 * until `close()`. Text frames are checked (`wire.ts`) and binary frames decoded
 * (`decodeFrame`) before anyone sees them; anything malformed is counted and dropped, and
 * a handler that throws is contained, so no message can break the page.
 */
export class DashboardSocket {
  readonly stats: SocketStats = { messages: 0, frames: 0, ignoredMessages: 0, badFrames: 0, reconnects: 0, bytes: 0 };
  private ws: WebSocket | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly backoff: Backoff;
  private closed = false;
  private opened = false;
  private stateValue: SocketState = 'connecting';

  constructor(private readonly url: string, private readonly handlers: SocketHandlers, backoff: BackoffOptions = { initialMs: 250, maxMs: 5000 }) {
    this.backoff = new Backoff(backoff);
    this.open();
  }

  get state(): SocketState {
    return this.stateValue;
  }

  /** Sends one message now; false when not connected (the caller retries after the next hello). */
  send(message: object): boolean {
    if (this.ws === null || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(JSON.stringify(message));
    return true;
  }

  /** The unsent bytes of the current connection (0 when there is none). */
  get buffered(): number {
    return this.ws?.bufferedAmount ?? 0;
  }

  /** A connection that worked: the next drop starts the backoff over. */
  confirmed(): void {
    this.backoff.reset();
  }

  close(): void {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.ws?.close(1000, 'page closed');
    this.ws = null;
    this.setState('closed', 'closed');
  }

  /** Drops the current connection and reconnects at once (for a user's "reconnect now"). */
  reconnectNow(): void {
    if (this.closed) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    ws?.close(1000, 'reconnecting');
    this.open();
  }

  private setState(state: SocketState, detail: string): void {
    this.stateValue = state;
    this.contain(() => this.handlers.state(state, detail));
  }

  private open(): void {
    if (this.closed) return;
    this.timer = null;
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url);
    } catch (error) {
      this.scheduleReconnect(error instanceof Error ? error.message : 'cannot connect');
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.setState(this.opened ? 'reconnecting' : 'connecting', `connecting to ${this.url}`);
    ws.onopen = () => {
      if (this.ws !== ws) return;
      if (this.opened) this.stats.reconnects++;
      this.opened = true;
      this.setState('open', 'connected');
    };
    ws.onmessage = (event: MessageEvent<unknown>) => {
      if (this.ws !== ws) return;
      this.receive(event.data);
    };
    ws.onclose = (event: CloseEvent) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.scheduleReconnect(`connection lost (${event.code})`);
    };
    ws.onerror = () => {
      // a close event follows; nothing to do here (the browser logs the failure itself)
    };
  }

  private scheduleReconnect(reason: string): void {
    if (this.closed || this.timer !== null) return;
    const delay = this.backoff.next();
    this.setState('reconnecting', `${reason}; retrying in ${(delay / 1000).toFixed(1)} s`);
    this.timer = setTimeout(() => this.open(), delay);
  }

  private receive(data: unknown): void {
    if (typeof data === 'string') {
      this.stats.bytes += data.length;
      const message = parseWire(data);
      if (message === null) {
        this.stats.ignoredMessages++;
        return;
      }
      this.stats.messages++;
      this.contain(() => this.handlers.message(message));
      return;
    }
    if (data instanceof ArrayBuffer) {
      this.stats.bytes += data.byteLength;
      const frame = tryDecodeFrame(data);
      if (frame === null) {
        this.stats.badFrames++;
        return;
      }
      this.stats.frames++;
      this.contain(() => this.handlers.frame(frame));
      return;
    }
    this.stats.ignoredMessages++;
  }

  /** Runs a handler; one that throws on odd data costs that message, never the page. */
  private contain(run: () => void): void {
    try {
      run();
    } catch (error) {
      this.stats.ignoredMessages++;
      console.warn('streamgrad dashboard: a message could not be shown', error);
    }
  }
}

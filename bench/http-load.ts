/**
 * A lean HTTP/1.1 load generator for the serving benchmarks, as wrk is one: requests are
 * prebuilt byte strings written to keep-alive sockets, and answers are read off the bytes
 * (status line, `Content-Length`, the body as a Buffer) without node:http's per-request
 * machinery (ClientRequest, IncomingMessage, header objects, timers). On a machine where
 * the client, the server and training share the cores, every cycle the client spends is
 * taken from what is measured; node:http's client costs about 0.2 ms of CPU per request.
 *
 * One request at a time per connection (no pipelining), answers with a `Content-Length`
 * only (what `POST /predict` answers a JSON body with).
 *
 * @example
 * const pool = new KeepAlivePool('127.0.0.1', 8080, 64);
 * const request = prebuiltPost('/predict?model=w2', 'application/json', Buffer.from('[1,2,3]'));
 * const { status, body } = await pool.send(request);
 */
import { connect, type Socket } from 'node:net';

/** An answer: its status, its status line and headers (latin1 text), and its body's bytes. */
export interface RawAnswer {
  readonly status: number;
  readonly head: string;
  readonly body: Buffer;
}

/** A `POST` with its headers and body as one Buffer, to be written again and again. */
export function prebuiltPost(path: string, type: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${type}\r\nContent-Length: ${body.length}\r\nConnection: keep-alive\r\n\r\n`), body]);
}

const HEADER_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = /\r\ncontent-length:\s*(\d+)/i;

/** One keep-alive connection with at most one request in flight. */
class Connection {
  private readonly socket: Socket;
  private buffered: Buffer | null = null;
  private waiting: { resolve: (a: RawAnswer) => void; reject: (e: Error) => void } | null = null;
  closed = false;

  constructor(host: string, port: number, onClose: (c: Connection) => void) {
    this.socket = connect({ host, port, noDelay: true });
    this.socket.on('data', (chunk: Buffer) => this.read(chunk));
    const fail = (error: Error) => {
      this.closed = true;
      const w = this.waiting;
      this.waiting = null;
      w?.reject(error);
      onClose(this);
    };
    this.socket.on('error', fail);
    this.socket.on('close', () => fail(new Error('the connection closed')));
  }

  send(request: Buffer): Promise<RawAnswer> {
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.socket.write(request);
    });
  }

  destroy(): void {
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    const data = this.buffered === null ? chunk : Buffer.concat([this.buffered, chunk]);
    const end = data.indexOf(HEADER_END);
    if (end === -1) {
      this.buffered = data;
      return;
    }
    const head = data.toString('latin1', 0, end);
    const length = CONTENT_LENGTH.exec(head);
    if (length === null) {
      this.socket.destroy(new Error(`an answer without Content-Length: ${head.slice(0, 200)}`));
      return;
    }
    const total = end + HEADER_END.length + Number(length[1]);
    if (data.length < total) {
      this.buffered = data;
      return;
    }
    this.buffered = data.length > total ? data.subarray(total) : null;
    const w = this.waiting;
    this.waiting = null;
    w?.resolve({ status: Number(head.slice(9, 12)), head, body: data.subarray(end + HEADER_END.length, total) });
  }
}

/** Up to `size` keep-alive connections to one server; a request takes an idle one or opens one. */
export class KeepAlivePool {
  private readonly idle: Connection[] = [];
  private readonly all = new Set<Connection>();

  constructor(private readonly host: string, private readonly port: number, private readonly size: number) {}

  /** Requests in flight or connections open (never above `size`). */
  get busy(): number {
    return this.all.size - this.idle.length;
  }

  /** Sends a prebuilt request; rejects when every connection is busy, or the connection fails. */
  async send(request: Buffer): Promise<RawAnswer> {
    let c = this.idle.pop();
    while (c !== undefined && c.closed) c = this.idle.pop();
    if (c === undefined) {
      if (this.all.size >= this.size) throw new Error(`all ${this.size} connections are busy`);
      c = new Connection(this.host, this.port, (gone) => {
        this.all.delete(gone);
        const i = this.idle.indexOf(gone);
        if (i !== -1) this.idle.splice(i, 1);
      });
      this.all.add(c);
    }
    const answer = await c.send(request);
    if (!c.closed) this.idle.push(c);
    return answer;
  }

  close(): void {
    for (const c of this.all) c.destroy();
  }
}

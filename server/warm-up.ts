import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

/** The header that marks a warm-up handshake; its value is the server's secret for them (`WarmUpTarget.secret`). */
export const WARM_UP_HEADER = 'x-streamgrad-warm-up';

/** Where and how `warmUpHandshakes` connects: the server's own listener. */
export interface WarmUpTarget {
  /** Address to connect to (the server's host; a wildcard address connects to this machine). */
  readonly host: string;
  readonly port: number;
  /** The `Host` header to send (one the server answers to). */
  readonly hostHeader: string;
  /** The value of `WARM_UP_HEADER` (random per server): only requests carrying it are taken as warm-ups. */
  readonly secret: string;
}

/** What a warm-up did. */
export interface WarmUpResult {
  /** Handshakes answered with the 101 and a first frame (the hello). */
  readonly completed: number;
  /** Wall-clock ms it took. */
  readonly ms: number;
}

/**
 * Opens `total` WebSocket handshakes to the server's own `/ws`, `batch` at a time, each
 * dropped once its 101 and its first frame (the hello) have arrived; stops early when
 * `stopped()` turns true or a handshake fails (the warm-up is best effort).
 *
 * *Why* (issue 17 item 6): a server's first bursts of connections run on cold code — V8 has
 * not compiled Node's accept path, the HTTP parser's callbacks, `ws` and ours yet — and cost
 * its thread about three times the CPU per handshake of a warm one (`bench/burst-cpu.ts`:
 * ~400 µs against ~120). Dashboards reconnecting all at once to a server that just
 * restarted meet exactly that. A thousand handshakes at start, on the server's own thread,
 * bring the first burst's cost to within a third of a warm server's. The server takes a
 * handshake carrying `WARM_UP_HEADER: secret` through the same path as any other (queue,
 * `ws`, a `Connection`, the hello) but counts, logs and lists it nowhere.
 *
 * @example
 * const result = await warmUpHandshakes({ host: '127.0.0.1', port, hostHeader: `127.0.0.1:${port}`, secret }, 1000, 100, () => closed);
 * // result.completed === 1000 unless the server closed meanwhile
 */
export async function warmUpHandshakes(target: WarmUpTarget, total: number, batch: number, stopped: () => boolean): Promise<WarmUpResult> {
  const started = performance.now();
  const host = target.host === '0.0.0.0' ? '127.0.0.1' : target.host === '::' ? '::1' : target.host;
  const request = `GET /ws HTTP/1.1\r\nHost: ${target.hostHeader}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n${WARM_UP_HEADER}: ${target.secret}\r\nSec-WebSocket-Key: `;
  let completed = 0;
  while (completed < total && !stopped()) {
    const n = Math.min(batch, total - completed);
    const sockets = await Promise.all(Array.from({ length: n }, () => handshake(host, target.port, request)));
    for (const socket of sockets) socket?.destroy();
    const ok = sockets.filter((s) => s !== null).length;
    completed += ok;
    if (ok < n) break;
  }
  return { completed, ms: performance.now() - started };
}

/** One raw handshake; the socket once its 101 and first frame are in, null if it failed or was refused. */
function handshake(host: string, port: number, request: string): Promise<Socket | null> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    let got: Buffer | null = null;
    const fail = () => {
      socket.destroy();
      resolve(null);
    };
    socket.once('error', fail);
    socket.once('close', fail);
    socket.once('connect', () => socket.write(`${request}${randomBytes(16).toString('base64')}\r\n\r\n`));
    socket.on('data', (data: Buffer) => {
      got = got === null ? data : Buffer.concat([got, data]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!got.subarray(0, 12).toString('latin1').startsWith('HTTP/1.1 101')) return fail();
      if (got.length <= end + 4) return; // the hello is still to come
      socket.removeAllListeners('close');
      socket.removeAllListeners('data');
      socket.on('error', () => undefined);
      resolve(socket);
    });
  });
}

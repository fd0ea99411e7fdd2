import { findBinary, type LocalServer, startLocalServer } from './local-server.ts';

/** Where nats-server is (Debian puts it in /usr/sbin), or null when it is not installed. */
export function findNatsServer(): string | null {
  return findBinary('nats-server', ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']);
}

/**
 * A private nats-server with JetStream for one test file. `halt()` stops it (SIGTERM, then
 * SIGKILL after 5 s); `start()` brings it back on the same port and store; `stop()` also
 * deletes the store.
 */
export interface NatsServer extends Omit<LocalServer, 'dir'> {
  /** `127.0.0.1:PORT`, for `connectNats` and `--nats`. */
  readonly servers: string;
  /** The JetStream store on disk (kept across `halt`/`start`). */
  readonly storeDir: string;
}

/**
 * Starts `nats-server -js -a 127.0.0.1 -p PORT -sd DIR` on a free loopback port with a
 * temporary store, and stops it by its own process id.
 */
export async function startNatsServer(binary: string): Promise<NatsServer> {
  const server = await startLocalServer({
    name: 'nats-server',
    binary,
    args: (port, dir) => ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir],
  });
  const { port, dir } = server;
  return {
    port, servers: `127.0.0.1:${port}`, storeDir: dir,
    get pid() {
      return server.pid; // of the process running now (a spread would keep the first one's)
    },
    halt: () => server.halt(), start: () => server.start(), stop: () => server.stop(),
  };
}

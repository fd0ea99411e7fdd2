import { findBinary, startLocalServer } from './local-server.ts';

/** Where nats-server is (Debian puts it in /usr/sbin), or null when it is not installed. */
export function findNatsServer(): string | null {
  return findBinary('nats-server', ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']);
}

/** A private nats-server with JetStream for one test file. */
export interface NatsServer {
  /** `127.0.0.1:PORT`, for `connectNats` and `--nats`. */
  readonly servers: string;
  readonly port: number;
  /** The JetStream store on disk (kept across `halt`/`start`). */
  readonly storeDir: string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s); `start()` brings it back on the same port and store. */
  halt(): Promise<void>;
  start(): Promise<void>;
  /** Stops it and deletes its store. */
  stop(): Promise<void>;
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
  return {
    servers: `127.0.0.1:${server.port}`,
    port: server.port,
    storeDir: server.dir,
    halt: () => server.halt(),
    start: () => server.start(),
    stop: () => server.stop(),
  };
}

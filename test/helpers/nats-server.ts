import { forThisFile, reading, type Shared, sharedStart } from './for-this-file.ts';
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

/**
 * A private nats-server (JetStream) for the tests of the calling file (or `describe`
 * block): started before them, stopped after them — also when a test fails, and when the
 * start outlives `beforeAll`'s timeout (see {@link sharedNatsServer}). What it returns reads
 * the running server, so use it in tests and hooks, not while the file is collected. Fails,
 * rather than skips, where nats-server is missing: the cluster is a promise we test.
 *
 * @example
 * const server = natsServerForThisFile();
 * it('connects', async () => { const nc = await connectNats(server.servers); … });
 */
export function natsServerForThisFile(): NatsServer {
  const shared = sharedNatsServer();
  forThisFile(shared);
  return shared.server;
}

/**
 * The server {@link natsServerForThisFile} hooks in (a {@link sharedStart}): `stop()` stops
 * what `start()` brings up, waiting for a start still under way; `server` reads the running
 * one and throws before it runs.
 *
 * @example
 * const shared = sharedNatsServer();
 * void shared.start(); // cut short
 * await shared.stop(); // the server it brings up is stopped
 */
export function sharedNatsServer(): Shared<NatsServer> & { readonly server: NatsServer } {
  const shared = sharedStart('the nats-server of this file', async () => {
    const binary = findNatsServer();
    if (binary === null) throw new Error('nats-server is not installed (apt-get install nats-server; .ci/run does it)');
    return startNatsServer(binary);
  }, (server) => server.stop());
  return { ...shared, server: reading(shared.current) };
}

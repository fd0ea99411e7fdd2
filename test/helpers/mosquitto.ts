import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { forThisFile, reading, type Shared, sharedStart } from './for-this-file.ts';
import { findBinary, type FindBinaryOptions, type LocalServer, startLocalServer } from './local-server.ts';

/**
 * Where the Mosquitto broker is (Debian puts it in /usr/sbin), or null when it is not
 * installed — with `requiredInCi`, an error in CI instead of null.
 *
 * @example
 * const binary = findMosquitto({ requiredInCi: true });
 * describe.skipIf(binary === null)('on a real broker', () => { … });
 */
export function findMosquitto(options: FindBinaryOptions = {}): string | null {
  return findBinary('mosquitto', ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'], options);
}

/**
 * A private broker. `halt()` stops its process (SIGTERM: with persistence on it saves its
 * sessions and queued messages first); `start()` brings it back on the same port with the same config.
 */
export interface Broker extends Omit<LocalServer, 'dir'> {
  readonly url: string;
}

export interface BrokerOptions {
  /** Keep sessions and queued messages across a restart (default false). */
  readonly persistence?: boolean;
  /** `max_queued_messages` per client (default 0: no cap, so back-pressure never makes it drop). */
  readonly maxQueued?: number;
  /** `max_inflight_messages` per client (default 0: no cap). */
  readonly maxInflight?: number;
}

/**
 * Starts a private Mosquitto broker on a free loopback port with a temporary config:
 * anonymous, and by default no persistence and no cap on the QoS 1 messages it queues
 * for a slow subscriber (`max_queued_messages 0`), so back-pressure never makes it drop.
 */
export async function startMosquitto(binary: string, options: BrokerOptions = {}): Promise<Broker> {
  const server = await startLocalServer({
    name: 'mosquitto',
    binary,
    graceMs: 3000,
    prepare(port, dir) {
      // started as root, mosquitto drops to the `mosquitto` user: it must be able to write its database here
      if (options.persistence === true) chmodSync(dir, 0o777);
      writeFileSync(join(dir, 'mosquitto.conf'), [
        `listener ${port} 127.0.0.1`,
        'allow_anonymous true',
        `persistence ${options.persistence === true ? 'true' : 'false'}`,
        ...(options.persistence === true ? [`persistence_location ${dir}/`, 'autosave_interval 0'] : []),
        `max_queued_messages ${options.maxQueued ?? 0}`,
        `max_inflight_messages ${options.maxInflight ?? 0}`,
        'log_dest stderr',
        'log_type error',
        '',
      ].join('\n'));
    },
    args: (_port, dir) => ['-c', join(dir, 'mosquitto.conf')],
  });
  return {
    port: server.port, url: `mqtt://127.0.0.1:${server.port}`,
    get pid() {
      return server.pid; // of the process running now (a spread would keep the first one's)
    },
    halt: () => server.halt(), start: () => server.start(), stop: () => server.stop(),
  };
}

/**
 * A private Mosquitto broker for the tests of the calling file (or `describe` block), with
 * `options`: started on a free loopback port before them, stopped after them — also when a
 * test fails, and when the start outlives `beforeAll`'s timeout (see {@link sharedBroker}).
 * What it returns reads the running broker, so use it in tests and hooks, not while the file
 * is collected. Fails, rather than skips, where Mosquitto is missing: a block that may skip
 * is `describe.skipIf(findMosquitto({ requiredInCi: true }) === null)` (CI must have it).
 *
 * @example
 * describe.skipIf(findMosquitto({ requiredInCi: true }) === null)('an MQTT source', () => {
 *   const broker = mosquittoForThisFile();
 *   it('takes a message', async () => { const publisher = await connectAsync(broker.url); … });
 * });
 */
export function mosquittoForThisFile(options: BrokerOptions = {}): Broker {
  const shared = sharedBroker(options);
  forThisFile(shared);
  return shared.broker;
}

/**
 * The broker {@link mosquittoForThisFile} hooks in (a {@link sharedStart}): `start()` starts
 * it, `stop()` stops what `start()` brings up, waiting for a start still under way.
 * `broker` reads the running one and throws before it runs.
 *
 * @example
 * const shared = sharedBroker();
 * void shared.start(); // cut short
 * await shared.stop(); // the broker it brings up is stopped
 */
export function sharedBroker(options: BrokerOptions = {}): Shared<Broker> & { readonly broker: Broker } {
  const shared = sharedStart('the Mosquitto broker of this file', async () => {
    const binary = findMosquitto();
    if (binary === null) throw new Error('mosquitto is not installed (apt-get install mosquitto; .ci/run does it)');
    return startMosquitto(binary, options);
  }, (broker) => broker.stop());
  return { ...shared, broker: reading(shared.current) };
}

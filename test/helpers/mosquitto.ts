import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { findBinary, type LocalServer, startLocalServer } from './local-server.ts';

/** Where the Mosquitto broker is (Debian puts it in /usr/sbin), or null when it is not installed. */
export function findMosquitto(): string | null {
  return findBinary('mosquitto', ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']);
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

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where the Mosquitto broker is (Debian puts it in /usr/sbin), or null when it is not installed. */
export function findMosquitto(): string | null {
  for (const path of ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto']) if (existsSync(path)) return path;
  try {
    return execFileSync('sh', ['-c', 'command -v mosquitto'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const started = Date.now();
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ port, host: '127.0.0.1' });
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() - started > timeoutMs) throw new Error(`mosquitto did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface Broker {
  readonly url: string;
  readonly port: number;
  /** Stops the broker process (SIGTERM: with persistence on it saves its sessions and queued messages first); `start()` brings it back. */
  halt(): Promise<void>;
  /** Starts a halted broker again, on the same port with the same config. */
  start(): Promise<void>;
  stop(): Promise<void>;
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
  const dir = mkdtempSync(join(tmpdir(), 'sg-mosquitto-'));
  // started as root, mosquitto drops to the `mosquitto` user: it must be able to write its database here
  if (options.persistence === true) chmodSync(dir, 0o777);
  const port = await freePort();
  const config = join(dir, 'mosquitto.conf');
  writeFileSync(config, [
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
  let child: Awaited<ReturnType<typeof launch>>;
  try {
    child = await launch(binary, config, port);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    halt: () => child.stop(),
    async start() {
      child = await launch(binary, config, port);
    },
    async stop() {
      await child.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function launch(binary: string, config: string, port: number): Promise<{ stop(): Promise<void> }> {
  const child: ChildProcess = spawn(binary, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await Promise.race([
      waitForPort(port, 10_000),
      exited.then((code) => { throw new Error(`mosquitto exited (${code}): ${stderr}`); }),
    ]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Where nats-server is (Debian puts it in /usr/sbin), or null when it is not installed. */
export function findNatsServer(): string | null {
  for (const path of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) if (existsSync(path)) return path;
  try {
    return execFileSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' }).trim() || null;
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
    if (Date.now() - started > timeoutMs) throw new Error(`nats-server did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
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
  const dir = mkdtempSync(join(tmpdir(), 'sg-nats-'));
  const port = await freePort();
  let child: Awaited<ReturnType<typeof launch>>;
  try {
    child = await launch(binary, port, dir);
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    servers: `127.0.0.1:${port}`,
    port,
    storeDir: dir,
    halt: () => child.stop(),
    async start() {
      child = await launch(binary, port, dir);
    },
    async stop() {
      await child.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function launch(binary: string, port: number, dir: string): Promise<{ stop(): Promise<void> }> {
  const child: ChildProcess = spawn(binary, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await Promise.race([
      waitForPort(port, 10_000),
      exited.then((code) => { throw new Error(`nats-server exited (${code}): ${stderr}`); }),
    ]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

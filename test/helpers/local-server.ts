import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** How to look for a system program. */
export interface FindBinaryOptions {
  /**
   * In CI (`CI` set) a missing program throws rather than returning null: a suite that
   * skips what it was meant to test would pass for the wrong reason (default false).
   */
  readonly requiredInCi?: boolean;
}

/**
 * Where the program `name` is: the first of `places` that exists (Debian puts brokers in
 * /usr/sbin, which a user's PATH often lacks), else what `command -v` finds, else null
 * (the caller skips its tests) — or, with `requiredInCi`, an error in CI.
 *
 * @example findBinary('mosquitto', ['/usr/sbin/mosquitto', '/usr/bin/mosquitto'], { requiredInCi: true })
 */
export function findBinary(name: string, places: readonly string[], options: FindBinaryOptions = {}): string | null {
  const found = lookUp(name, places);
  if (found === null && options.requiredInCi === true && process.env.CI) throw new Error(`${name} is not installed (.ci/run installs the Debian package)`);
  return found;
}

function lookUp(name: string, places: readonly string[]): string | null {
  for (const path of places) if (existsSync(path)) return path;
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

/**
 * A loopback port that was free a moment ago, for a server that cannot listen on port 0
 * and tell us its port. (Another process may take it in between: rare enough for tests.)
 */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/**
 * Whether 127.0.0.1:`port` takes a TCP connection now.
 *
 * @example expect(await listening(broker.port)).toBe(false); // stopped
 */
export function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => { socket.destroy(); resolve(true); });
    socket.once('error', () => resolve(false));
  });
}

/**
 * Whether process `pid` still runs (signal 0 checks without sending anything).
 *
 * @example expect(alive(pid)).toBe(false); // its file's afterAll stopped it
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves once 127.0.0.1:`port` accepts a TCP connection; rejects naming `name` after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs: number, name: string): Promise<void> {
  const started = Date.now();
  for (;;) {
    if (await listening(port)) return;
    if (Date.now() - started > timeoutMs) throw new Error(`${name} did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** How to run one kind of local server (a broker) for a test file. */
export interface LocalServerSpec {
  /** The program's name, for error messages. */
  readonly name: string;
  /** Its path (from {@link findBinary}). */
  readonly binary: string;
  /** Its command-line arguments, given its port and its private temporary directory. */
  readonly args: (port: number, dir: string) => readonly string[];
  /** Writes what it needs into its directory (a config file) before the first start. */
  readonly prepare?: (port: number, dir: string) => void;
  /** How long `halt` waits after SIGTERM before SIGKILL (default 5000 ms). */
  readonly graceMs?: number;
}

/** A server process on a private loopback port, with a private temporary directory. */
export interface LocalServer {
  readonly port: number;
  /** Its temporary directory (kept across `halt`/`start`, deleted by `stop`). */
  readonly dir: string;
  /** The running process's id (undefined while halted), e.g. for a bench to read its CPU time in /proc. */
  readonly pid: number | undefined;
  /** Stops the process (SIGTERM, then SIGKILL after the grace time); `start()` brings it back. */
  halt(): Promise<void>;
  /** Starts a halted server again, on the same port with the same directory. */
  start(): Promise<void>;
  /** Stops it and deletes its directory. */
  stop(): Promise<void>;
}

/**
 * Takes a free loopback port and a temporary directory, spawns the server and resolves once
 * it listens; it is stopped by its own process id (never by name: other tests run brokers too).
 *
 * @example
 * const server = await startLocalServer({ name: 'nats-server', binary, args: (port, dir) => ['-p', String(port), '-sd', dir] });
 * try { … } finally { await server.stop(); }
 */
export async function startLocalServer(spec: LocalServerSpec): Promise<LocalServer> {
  const dir = mkdtempSync(join(tmpdir(), `sg-${spec.name}-`));
  let child: LocalProcess;
  try {
    const port = await freePort();
    spec.prepare?.(port, dir);
    child = await launch(spec, port, dir);
    return {
      port,
      dir,
      get pid() {
        return child.pid;
      },
      halt: () => child.stop(),
      async start() {
        child = await launch(spec, port, dir);
      },
      async stop() {
        await child.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

interface LocalProcess {
  readonly pid: number | undefined;
  stop(): Promise<void>;
}

async function launch(spec: LocalServerSpec, port: number, dir: string): Promise<LocalProcess> {
  const child: ChildProcess = spawn(spec.binary, [...spec.args(port, dir)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => { stderr = (stderr + d.toString()).slice(-4000); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await Promise.race([
      waitForPort(port, 10_000, spec.name),
      exited.then((code) => { throw new Error(`${spec.name} exited (${code}): ${stderr}`); }),
    ]);
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return {
    get pid() {
      return child.exitCode === null && child.signalCode === null ? child.pid : undefined;
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), spec.graceMs ?? 5000);
        await exited;
        clearTimeout(timer);
      }
    },
  };
}

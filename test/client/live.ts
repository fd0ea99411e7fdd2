import { createHook } from 'node:async_hooks';
import { spawn } from 'node:child_process';
import { createServer, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { filter, firstValueFrom, type Observable, take, timeout, toArray } from 'rxjs';
import { afterEach } from 'vitest';
import type { Activation } from '../../core/activations.ts';
import { Rng } from '../../core/rng.ts';
import { TrainingRun, type RunOptions } from '../../pipeline/run.ts';
import { createTrainer } from '../../core/trainer.ts';
import { serve, type ServeOptions, type StreamgradServer } from '../../server/server.ts';
import { connect, type ConnectOptions, type StreamgradClient } from '../../clients/node/client.ts';
import { seededModel } from '../helpers/streams.ts';
import { BIN } from '../helpers/cli.ts';

/** The checkout's root, wherever it is cloned (CI clones elsewhere). */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * The client tests' world: real TrainingRuns on endless in-memory streams, real servers
 * on loopback port 0, clients, and a TCP proxy that can lose bytes on purpose. Everything
 * made here is closed after each test, last made first.
 */
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});
export const onCleanup = (cleanup: () => unknown): void => {
  cleanups.push(cleanup);
};

export const TOKEN = 'client-test-token-7f3a';

/** An endless stream of regression samples: y = sin(x0) + x2 / 2. */
export function* endless(inputs = 3, seed = 7): Generator<{ x: number[]; y: number[] }> {
  const rng = new Rng(seed);
  for (;;) {
    const x = Array.from({ length: inputs }, () => rng.uniform(-1, 1));
    yield { x, y: [Math.sin(x[0]) + 0.5 * x[inputs - 1]] };
  }
}

export interface LiveRunOptions extends Partial<Pick<RunOptions, 'paused' | 'checkpoint' | 'sliceMs'>> {
  readonly layers?: readonly (readonly [number, Activation])[];
  readonly learningRate?: number;
}

/** A started TrainingRun (3 → 4 tanh → 1 linear, mse, SGD) on an endless stream; stopped after the test. */
export function liveRun(id: string, o: LiveRunOptions = {}): TrainingRun {
  const trainer = createTrainer({
    model: seededModel(3, o.layers ?? [[4, 'tanh'], [1, 'linear']], 1),
    loss: 'mse',
    optimizer: { type: 'sgd', learningRate: o.learningRate ?? 0.01 },
  });
  // sliceMs 2: the run yields often, so servers and clients in this process stay snappy
  const run = new TrainingRun({ id, trainer, source: endless(), sliceMs: o.sliceMs ?? 2, ...(o.paused !== undefined && { paused: o.paused }), ...(o.checkpoint && { checkpoint: o.checkpoint }) });
  const finished = run.start().catch(() => undefined);
  onCleanup(async () => {
    run.dispose();
    await finished;
  });
  return run;
}

/** A server on loopback (port 0 unless told), with the test token and these runs; closed after the test. */
export async function liveServer(options: ServeOptions = {}, ...runs: TrainingRun[]): Promise<StreamgradServer> {
  const server = await serve({ token: TOKEN, staticDir: '/nonexistent-streamgrad-dist', ...options });
  onCleanup(() => server.close());
  for (const run of runs) server.addRun(run);
  return server;
}

/** A client closed after the test. Fast backoff and timeouts unless told otherwise. */
export function liveClient(url: string, options: ConnectOptions = {}): StreamgradClient {
  const client = connect(url, { backoff: { initialMs: 20, maxMs: 200 }, ...options });
  onCleanup(() => client.close());
  return client;
}

/** The first value of `source` that passes `predicate`, or a rejection after `ms`. */
export function first<T>(source: Observable<T>, predicate: (value: T) => boolean = () => true, ms = 5000): Promise<T> {
  return firstValueFrom(source.pipe(filter(predicate), timeout({ first: ms, with: () => { throw new Error(`nothing matching within ${ms} ms`); } })));
}

/** The first `count` values of `source`, or a rejection after `ms`. */
export function firstN<T>(source: Observable<T>, count: number, ms = 5000): Promise<T[]> {
  return firstValueFrom(source.pipe(take(count), toArray(), timeout({ first: ms, with: () => { throw new Error(`fewer than ${count} values within ${ms} ms`); } })));
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 10 ms until it holds, or rejects after `ms`. */
export async function until(condition: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const deadline = performance.now() + ms;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`${what} did not hold within ${ms} ms`);
    await sleep(10);
  }
}

/**
 * A TCP proxy on loopback in front of `port`. While `blackhole` is on, bytes from the
 * server to the client are thrown away (whole writes: use it only while the link is
 * otherwise quiet, or the WebSocket framing breaks); `cut()` destroys every connection.
 */
export interface Proxy {
  readonly port: number;
  blackhole: boolean;
  /** Server→client bytes thrown away so far. */
  readonly dropped: number;
  cut(): void;
}

export async function liveProxy(targetPort: number): Promise<Proxy> {
  const sockets = new Set<Socket>();
  let dropped = 0;
  const proxy: Proxy = {
    port: 0,
    blackhole: false,
    get dropped() {
      return dropped;
    },
    cut: () => {
      for (const s of sockets) s.destroy();
    },
  };
  const server = createServer((downstream) => {
    const upstream = new (downstream.constructor as typeof Socket)();
    upstream.connect(targetPort, '127.0.0.1');
    for (const s of [downstream, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        sockets.delete(s);
        downstream.destroy();
        upstream.destroy();
      });
    }
    downstream.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk: Buffer) => {
      if (proxy.blackhole) dropped += chunk.length;
      else downstream.write(chunk);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  (proxy as { port: number }).port = (server.address() as { port: number }).port;
  onCleanup(() => new Promise<void>((resolve) => {
    proxy.cut();
    server.close(() => resolve());
  }));
  return proxy;
}

/** Async resources that keep the event loop alive, tracked by `trackHandles`. */
const LOOP_HANDLES = new Set(['Timeout', 'TCPWRAP', 'TCPCONNECTWRAP', 'GETADDRINFOREQWRAP', 'PIPEWRAP']);

/**
 * Records every timer and socket made from now on (except the test runner's and this
 * file's own) until
 * it is destroyed; `alive()` lists those still there, with where they were made. Stops
 * recording after the test.
 */
export function trackHandles(): { alive(): string[] } {
  const alive = new Map<number, string>();
  const hook = createHook({
    init(id, type) {
      if (!LOOP_HANDLES.has(type)) return;
      const stack = new Error().stack ?? '';
      if (stack.includes('vitest')) return;
      const where = stack.split('\n').slice(3).find((line) => line.includes(REPO_ROOT) || line.includes('node_modules')) ?? '?';
      if (where.includes('/test/client/live.ts')) return; // this file's own sleeps and polls
      alive.set(id, `${type} ${where.trim()}`);
    },
    destroy(id) {
      alive.delete(id);
    },
  }).enable();
  onCleanup(() => hook.disable());
  return { alive: () => [...alive.values()] };
}

/** A finished `streamgrad watch`. */
export interface Spawned {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `streamgrad watch …` (the real CLI); sends SIGINT once `stop(stdout)` holds, with
 * SIGKILL after 50 s as a safety net (a loaded machine takes seconds to start a CLI).
 */
export function watchCli(args: readonly string[], stop: (stdout: string) => boolean = () => false, env: NodeJS.ProcessEnv = {}): Promise<Spawned> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [BIN, 'watch', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, STREAMGRAD_TOKEN: '', ...env } });
    const safety = setTimeout(() => child.kill('SIGKILL'), 50_000);
    onCleanup(() => {
      clearTimeout(safety);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let stdout = '';
    let stderr = '';
    let interrupted = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (!interrupted && stop(stdout)) {
        interrupted = true;
        child.kill('SIGINT');
      }
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(safety);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

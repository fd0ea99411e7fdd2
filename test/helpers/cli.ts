import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onTestFinished } from 'vitest';

/** The real command line, as `npx streamgrad` runs it. */
export const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/streamgrad.mjs');

export interface CliRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface CliOptions {
  /** Text for standard input (default: none, closed at once). */
  readonly stdin?: string;
  /** Called with all of stderr so far, each time more arrives. */
  readonly onStderr?: (text: string, child: ChildProcess) => void;
  /** Called with all of stdout so far, each time more arrives. */
  readonly onStdout?: (text: string, child: ChildProcess) => void;
  /** Options for node itself, before the script (`--max-old-space-size=64`: what must stay small, in a small heap). */
  readonly node?: readonly string[];
}

/**
 * Spawns `node bin/streamgrad.mjs …args` in `cwd` and resolves when it exits, with its
 * output. PORT is removed from the environment: `start` would serve (and wait for Ctrl-C)
 * if the environment happened to set it.
 */
export function runCli(cwd: string, args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  return new Promise((resolvePromise, reject) => {
    const { PORT: _port, ...env } = process.env;
    const child = spawn(process.execPath, [...(options.node ?? []), BIN, ...args], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    killWhenTestEnds(child);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      options.onStdout?.(stdout, child);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      options.onStderr?.(stderr, child);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
    child.stdin.on('error', () => undefined); // the CLI may exit before reading all of stdin
    child.stdin.end(options.stdin ?? '');
  });
}

/**
 * Kills `child` (SIGKILL) if it still runs when the current test ends: a test that timed out
 * otherwise left its command lines running, and the folder its `afterAll` then removed under
 * them made later cases fail with "cannot read" or hang. Outside a test (a `beforeAll`) there
 * is no test to end, and nothing is registered. `runCli` and `spawnCli` call it; a test that
 * spawns a command line itself (to keep its standard input open, to kill it at a chosen
 * moment) calls it too.
 *
 * @example
 * const child = spawn(process.execPath, [BIN, 'train', '--data', '-', …], { cwd: work });
 * killWhenTestEnds(child);
 */
export function killWhenTestEnds(child: ChildProcess): void {
  try {
    onTestFinished(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  } catch {
    // not inside a test
  }
}

/** A command line running in the background (see {@link spawnCli}). */
export interface SpawnedCli {
  readonly child: ChildProcess;
  /** All of its stderr so far. */
  readonly stderr: string;
  /** Its exit code, once it has exited. */
  readonly exit: Promise<number | null>;
  /** Waits until stderr matches `pattern` and returns the match; throws with all of stderr if it exits first or `timeoutMs` passes. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

export interface SpawnCliOptions {
  /** Added to the environment, after STREAMGRAD_TOKEN and PORT are emptied (a test's token and port are its own). */
  readonly env?: Readonly<Record<string, string>>;
  /** The default time-out of `waitFor` (default 40 s: a start-up took 16 s on a loaded machine). */
  readonly waitMs?: number;
}

/**
 * Spawns `node bin/streamgrad.mjs …args` in `cwd` in the background (a server, a long
 * training) and reads its stderr as it comes; it is killed (SIGKILL) when the current test
 * finishes if it is still running. Call it inside a test.
 *
 * @example
 * const run = spawnCli(work, ['start', '--serve', '0']);
 * const url = (await run.waitFor(/dashboard at (http:\/\/\S+)\//))[1];
 * run.child.kill('SIGINT');
 * expect(await run.exit).toBe(0);
 */
export function spawnCli(cwd: string, args: readonly string[], options: SpawnCliOptions = {}): SpawnedCli {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, STREAMGRAD_TOKEN: '', PORT: '', ...options.env } });
  killWhenTestEnds(child);
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
  return {
    child,
    get stderr() { return stderr; },
    exit: new Promise((done) => child.once('exit', (code) => done(code))),
    async waitFor(pattern, timeoutMs = options.waitMs ?? 40_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(stderr);
        if (match !== null) return match;
        if (Date.now() > deadline || child.exitCode !== null) throw new Error(`no ${pattern} in:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
  };
}

/** Runs `tasks` at most `limit` at a time (2 cores: the CLI's start-up is CPU-bound). */
export async function pool<T>(tasks: readonly (() => Promise<T>)[], limit = 3): Promise<T[]> {
  const results: T[] = new Array(tasks.length);
  let next = 0;
  const worker = async () => {
    while (next < tasks.length) {
      const i = next++;
      results[i] = await tasks[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

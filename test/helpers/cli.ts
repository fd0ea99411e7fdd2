import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

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
}

/**
 * Spawns `node bin/streamgrad.mjs …args` in `cwd` and resolves when it exits, with its
 * output. PORT is removed from the environment: `start` would serve (and wait for Ctrl-C)
 * if the environment happened to set it.
 */
export function runCli(cwd: string, args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  return new Promise((resolvePromise, reject) => {
    const { PORT: _port, ...env } = process.env;
    const child = spawn(process.execPath, [BIN, ...args], { cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
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

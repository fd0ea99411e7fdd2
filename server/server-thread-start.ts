import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starting the server thread of `serveInThread` (server/threaded-server.ts). Kept apart
 * and light (no import of the server) so that the command line can start the thread at
 * its very beginning (`prestartServerThread`, from bin/streamgrad.mjs), and the thread
 * loads the server while the main thread loads the rest of the command line: the two
 * start-ups overlap instead of adding up.
 *
 * @example
 * prestartServerThread();            // early, when the command will serve
 * const worker = takeServerThread(); // later, in serveInThread: the prestarted thread, or a new one
 */

interface Prestarted {
  readonly worker: Worker;
  /** It failed or exited before anyone took it: start a fresh one instead (which will report why). */
  dead: boolean;
}

let prestarted: Prestarted | null = null;

/** Starts the server thread now, for the next `takeServerThread`; it keeps nothing alive until taken. */
export function prestartServerThread(): void {
  if (prestarted !== null) return;
  const entry: Prestarted = { worker: startServerThread(), dead: false };
  entry.worker.unref();
  const died = () => { entry.dead = true; };
  entry.worker.once('error', died);
  entry.worker.once('exit', died);
  prestarted = entry;
}

/** The prestarted server thread if there is a live one (once), else a new one. */
export function takeServerThread(): Worker {
  const entry = prestarted;
  prestarted = null;
  if (entry === null || entry.dead) return startServerThread();
  entry.worker.removeAllListeners('error');
  entry.worker.removeAllListeners('exit');
  entry.worker.ref();
  return entry.worker;
}

/** Starts server/server-thread. */
function startServerThread(): Worker {
  return startModuleThread('server-thread');
}

/**
 * Starts a thread on a module of this folder (`server-thread`, `bulk-worker`). Under tsx
 * (the sources run as TypeScript: `npm start`, the tests), a worker's entry is not seen by
 * the loader hooks of its parent: a small bootstrap registers tsx in the worker first.
 * Compiled, the `.js` entry starts as it is.
 */
export function startModuleThread(name: string, options: WorkerOptions = {}): Worker {
  const typescript = import.meta.url.endsWith('.ts');
  const entry = new URL(`./${name}${typescript ? '.ts' : '.js'}`, import.meta.url);
  if (!typescript) return new Worker(entry, options);
  const bootstrap = `import(${JSON.stringify(tsxApi())}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry.href)}); });`;
  return new Worker(bootstrap, { ...options, eval: true });
}

/** The URL of tsx's ESM API (`import.meta.resolve` where the runtime has it, else beside its CommonJS build). */
function tsxApi(): string {
  if (typeof import.meta.resolve === 'function') return import.meta.resolve('tsx/esm/api');
  return pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
}

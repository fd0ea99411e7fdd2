import { execFileSync } from 'node:child_process';
import { readFileSync, readlinkSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';
import { StreamgradError } from '../core/errors.ts';

/** What `lowerTrainingPriority` did. */
export interface TrainingPriority {
  /** The calling thread's nice value afterwards (0 normal, 19 lowest), or null where it cannot be read. */
  readonly nice: number | null;
  /** Whether this call changed it. */
  readonly changed: boolean;
  /** Why it was left alone, when it was. */
  readonly reason?: string;
  /** Whether the thread runs under Linux's SCHED_IDLE afterwards (`idleTrainingThread`); absent where not asked. */
  readonly idle?: boolean;
  /** Why it does not, when it was asked to. */
  readonly idleReason?: string;
}

/** The nice value `serveInThread` gives the thread that trains unless told otherwise. */
export const DEFAULT_TRAINING_NICE = 10;

/**
 * Lowers the scheduling priority of the calling thread, the one that trains, so that when
 * every core is busy the server thread (started before, at normal priority) gets the CPU it
 * needs for a burst of connections. Nice only matters under contention: on a machine with
 * a core to spare, training runs exactly as fast as before; when the cores are short, the
 * server wins about 90% of one at nice 10 (CFS weights 1024 against 110) instead of half.
 * Measured in bench/server.ts (issue 17, item 6), a 500-connection burst while W2 trains on
 * a 2-core machine whose clients run on it too: `/healthz` p99 220–260 ms at nice 0, 62–109 ms
 * at nice 10, 35 ms at nice 19; training lost at most 7% over the burst at nice 10, 16% at 0 (docs/live-view.md).
 *
 * Linux only: there `setpriority` applies to one thread. Elsewhere it applies to the whole
 * process, the server thread included, which would gain nothing, so it does nothing.
 * An unprivileged process cannot raise its priority again (that needs CAP_SYS_NICE), so
 * this is for a thread whose job from now on is training.
 *
 * @example
 * const server = await serveInThread({ port: 8080 }); // calls this with DEFAULT_TRAINING_NICE
 * lowerTrainingPriority(19);                           // or lower still, by hand
 */
export function lowerTrainingPriority(nice: number, platform: NodeJS.Platform = process.platform): TrainingPriority {
  checkTrainingNice(nice);
  let current: number;
  try {
    current = getPriority();
  } catch {
    return { nice: null, changed: false, reason: 'the thread priority cannot be read here' };
  }
  if (platform !== 'linux') return { nice: current, changed: false, reason: `${platform} sets priorities per process, not per thread` };
  if (current >= nice) return { nice: current, changed: false, reason: `already at nice ${current}` };
  try {
    setPriority(nice);
  } catch (why) {
    return { nice: current, changed: false, reason: `setpriority failed: ${(why as Error).message}` };
  }
  return { nice: getPriority(), changed: true };
}

/** Linux's number for the SCHED_IDLE policy (`<sched.h>`). */
const SCHED_IDLE = 5;

/**
 * The scheduling policy of the calling thread, read from `/proc/thread-self/stat` (its 41st
 * field: 0 normal, 3 batch, 5 idle), or null where that cannot be read (not Linux).
 */
export function threadPolicy(): number | null {
  try {
    // the fields after the command name, which is in parentheses and may hold spaces; `policy` is the 41st of all
    const fields = readFileSync('/proc/thread-self/stat', 'utf8').replace(/^.*\) /s, '').split(' ');
    const policy = Number(fields[41 - 3]);
    return Number.isInteger(policy) ? policy : null;
  } catch {
    return null;
  }
}

/**
 * Puts the calling thread, the one that trains, under Linux's SCHED_IDLE policy: it runs on
 * whatever CPU time no other thread wants, and a thread that wakes (the server thread, at each
 * request or connection) takes its core at once instead of waiting for the end of its slice,
 * as it must behind a thread at nice 10 (EEVDF lets a running thread finish its slice before a
 * waking one of higher weight preempts it: a few milliseconds, the single-sample p99 of
 * bench:predict; issue 12). The price: while other work keeps every core busy, training gets
 * almost nothing (weight 3 against 1024 for nice 0, 15 for nice 19, 110 for nice 10). Opt-in
 * (`trainingIdle: true`, `STREAMGRAD_TRAINING_IDLE=1`): measured idle, it did not shorten the
 * tails it was for, and training kept less of its speed beside bulk predictions (docs/serving.md).
 *
 * Node has no call for it, so the standard `chrt` of util-linux sets it for this thread's id
 * (`/proc/thread-self`); an unprivileged process may lower its own threads to SCHED_IDLE.
 * Where that fails (not Linux, no `chrt`), the thread keeps its nice value and the reason says why.
 *
 * @example
 * lowerTrainingPriority(10);  // nice first: what is left if SCHED_IDLE cannot be had
 * idleTrainingThread();       // { idle: true, changed: true }
 */
export function idleTrainingThread(platform: NodeJS.Platform = process.platform): { readonly idle: boolean; readonly changed: boolean; readonly reason?: string } {
  if (platform !== 'linux') return { idle: false, changed: false, reason: `SCHED_IDLE is Linux's (here ${platform})` };
  if (threadPolicy() === SCHED_IDLE) return { idle: true, changed: false, reason: 'already SCHED_IDLE' };
  let tid: string;
  try {
    tid = readlinkSync('/proc/thread-self').split('/').pop()!; // "PID/task/TID"
  } catch {
    return { idle: false, changed: false, reason: 'the thread id cannot be read here (/proc/thread-self)' };
  }
  try {
    execFileSync('chrt', ['--idle', '--pid', '0', tid], { stdio: 'ignore', timeout: 5000 });
  } catch (why) {
    const code = (why as { code?: string }).code;
    return { idle: false, changed: false, reason: code === 'ENOENT' ? 'chrt (util-linux) is not installed' : `chrt failed: ${(why as Error).message.split('\n')[0]}` };
  }
  const idle = threadPolicy() === SCHED_IDLE;
  return idle ? { idle, changed: true } : { idle, changed: false, reason: 'chrt ran but the thread is not SCHED_IDLE' };
}

/**
 * What `serveInThread` does to the thread that calls it, the one that trains: nice `nice`
 * (`lowerTrainingPriority`), then, if `idle`, SCHED_IDLE (`idleTrainingThread`). Nice 0 leaves
 * the thread alone altogether (null), for a machine where training must not yield.
 *
 * @example
 * const priority = trainBehindServer(trainingNiceFromEnv(DEFAULT_TRAINING_NICE), trainingIdleFromEnv());
 */
export function trainBehindServer(nice: number, idle: boolean): TrainingPriority | null {
  if (nice === 0) return null;
  const priority = lowerTrainingPriority(nice);
  if (!idle) return priority;
  const policy = idleTrainingThread();
  return { ...priority, idle: policy.idle, ...(!policy.idle && policy.reason !== undefined && { idleReason: policy.reason }) };
}

/** One line for logs and benches: "at nice 10, SCHED_IDLE (STREAMGRAD_TRAINING_NICE, STREAMGRAD_TRAINING_IDLE)", or why not. */
export function describePriority(priority: TrainingPriority | null): string {
  if (priority === null) return 'left at its priority (STREAMGRAD_TRAINING_NICE=0)';
  const nice = priority.nice === null ? `nice unknown (${priority.reason})` : `at nice ${priority.nice}`;
  const idle = priority.idle === undefined ? '' : priority.idle ? ', SCHED_IDLE' : `, not SCHED_IDLE (${priority.idleReason})`;
  return `${nice}${idle} (STREAMGRAD_TRAINING_NICE, STREAMGRAD_TRAINING_IDLE)`;
}

/**
 * Whether the thread that trains behind a server runs under SCHED_IDLE (`idleTrainingThread`):
 * `STREAMGRAD_TRAINING_IDLE` `0` (the default when unset: nice only) or `1`. Anything else is
 * an error naming the variable. Off by default: on an idle machine it did not shorten the
 * prediction or handshake tails and cost training a sixth beside bulk predictions (docs/serving.md, Session 11).
 */
export function trainingIdleFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return switchFromEnv('STREAMGRAD_TRAINING_IDLE', env, false);
}

/** `nice` if it is a nice value this module takes (an integer from 0 to 19); else a typed error naming `trainingNice`. */
export function checkTrainingNice(nice: number): number {
  if (!Number.isInteger(nice) || nice < 0 || nice > 19) throw new StreamgradError('SG_ERR_CONFIG', `trainingNice must be an integer from 0 to 19, got ${nice}`, 'trainingNice');
  return nice;
}

/**
 * The nice value to give the thread that trains: `STREAMGRAD_TRAINING_NICE` when set (an
 * integer 0–19; 0 leaves the priority alone, for a machine where training must not yield),
 * else `fallback`. A malformed value is an error naming the variable, not a silent default.
 */
export function trainingNiceFromEnv(fallback: number, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.STREAMGRAD_TRAINING_NICE;
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!/^\d{1,2}$/.test(raw) || value > 19) throw new StreamgradError('SG_ERR_CONFIG', `STREAMGRAD_TRAINING_NICE must be an integer from 0 to 19, got ${JSON.stringify(raw)}`, 'STREAMGRAD_TRAINING_NICE');
  return value;
}

/**
 * Whether the thread that trains gives the server thread part of its time while the server
 * waits for a core (`ThreadedServeOptions.cpuShare`, pipeline/cpu-share.ts): `STREAMGRAD_CPU_SHARE`
 * `1` (the default when unset) or `0` (never: training keeps every slice). Anything else is an
 * error naming the variable.
 */
export function cpuShareFromEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return switchFromEnv('STREAMGRAD_CPU_SHARE', env, true);
}

/** An on/off environment variable: `1` on, `0` off, unset (or empty) `fallback`, anything else a typed error naming it. */
function switchFromEnv(name: string, env: NodeJS.ProcessEnv, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === '1') return true;
  if (raw === '0') return false;
  throw new StreamgradError('SG_ERR_CONFIG', `${name} must be 0 or 1, got ${JSON.stringify(raw.slice(0, 32))}`, name);
}

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
  const raw = env.STREAMGRAD_CPU_SHARE;
  if (raw === undefined || raw === '' || raw === '1') return true;
  if (raw === '0') return false;
  throw new StreamgradError('SG_ERR_CONFIG', `STREAMGRAD_CPU_SHARE must be 0 or 1, got ${JSON.stringify(raw.slice(0, 32))}`, 'STREAMGRAD_CPU_SHARE');
}

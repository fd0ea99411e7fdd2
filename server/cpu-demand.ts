import { closeSync, openSync, readSync } from 'node:fs';
import type { CpuShare } from '../pipeline/cpu-share.ts';

/** The server thread's side of a `CpuShare`: what `watchCpuDemand` returns. */
export interface CpuDemandWatch {
  /** A connection was accepted or a request started: look whether this thread waits for a core (cheap; call it on every one). */
  touch(): void;
  /** Stops watching and lowers the demand. */
  stop(): void;
}

/** When `watchCpuDemand` raises and lowers the demand. */
export interface CpuDemandOptions {
  /** Ms between looks while the server is active (default 2). */
  readonly checkMs?: number;
  /** Ms this thread waited for a core since the last look that raise the demand (default 1); under half of it lowers the demand. */
  readonly thresholdMs?: number;
  /** Ms without a connection or request after which the demand drops and the looks stop (default 250): an idle server costs nothing. */
  readonly idleMs?: number;
}

/**
 * Raises `share`'s demand while this thread (the server thread) has work waiting and no
 * core to run it on, and lowers it once it has caught up, so that the thread that trains
 * gives up part of its time only then (pipeline/cpu-share.ts; issue 17 item 6, issue 12).
 *
 * "Waiting for a core" is measured, not guessed: on Linux, the time the thread spent
 * runnable but not running (`run_delay` in /proc/thread-self/schedstat, read with one
 * `pread`); elsewhere the event loop's lag behind a timer (which also counts the thread's
 * own work, so there it asks for more than it needs). A server busy on a core of its own
 * while another core trains never waits, so it never asks: training loses nothing to a
 * server that is merely busy. Looks happen every `checkMs` while connections or requests
 * come in, and at each one (at most one read per ms), so a burst of connections raises the
 * demand at its first delayed accept, not after the loop has worked through it.
 *
 * @example
 * const watch = watchCpuDemand(new CpuShare(buffer));
 * http.on('connection', () => watch.touch());
 */
export function watchCpuDemand(share: CpuShare, options: CpuDemandOptions = {}): CpuDemandWatch {
  const checkMs = options.checkMs ?? 2;
  const thresholdMs = options.thresholdMs ?? 1;
  const idleMs = options.idleMs ?? 250;
  const runDelay = runDelayReader();
  let timer: ReturnType<typeof setInterval> | null = null;
  let lastLook = 0, lastTick = 0, lastDelay = 0, lastActivity = 0;
  let stopped = false;

  /** Ms this thread waited for a core since the last look. */
  const waited = (now: number): number => {
    if (runDelay === null) return Math.max(0, now - lastTick - checkMs);
    const delay = runDelay.read();
    const waitedMs = delay - lastDelay;
    lastDelay = delay;
    return waitedMs;
  };
  const look = (now: number) => {
    const interval = now - lastLook;
    const waitedMs = waited(now);
    lastLook = now;
    if (waitedMs >= thresholdMs) share.raise();
    else if (interval >= checkMs && waitedMs < thresholdMs / 2) share.lower();
  };
  const tick = () => {
    const now = performance.now();
    if (now - lastActivity > idleMs) {
      // nothing came in for a while: nothing waits. (On a machine loaded by other processes
      // this look's own wake-up waits for a core too: it must not keep the demand up by itself.)
      share.lower();
      clearInterval(timer!);
      timer = null;
      return;
    }
    look(now);
    lastTick = now;
  };
  return {
    touch() {
      if (stopped) return;
      const now = performance.now();
      lastActivity = now;
      if (timer === null) {
        // a fresh start: what came before is no news
        lastLook = lastTick = now;
        if (runDelay !== null) lastDelay = runDelay.read();
        timer = setInterval(tick, checkMs);
        timer.unref();
      } else if (now - lastLook >= 1) {
        look(now);
      }
    },
    stop() {
      if (stopped) return;
      stopped = true;
      if (timer !== null) clearInterval(timer);
      timer = null;
      runDelay?.close();
      share.lower();
    },
  };
}

/**
 * The calling thread's `run_delay` (ms runnable but waiting for a CPU) from Linux's
 * /proc/thread-self/schedstat, kept open (opened here, it stays this thread's); null where
 * there is no such file.
 */
function runDelayReader(): { read(): number; close(): void } | null {
  let fd: number;
  try {
    fd = openSync('/proc/thread-self/schedstat', 'r');
  } catch {
    return null;
  }
  const buffer = Buffer.alloc(96);
  const read = (): number => {
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    // "<on-cpu ns> <run-delay ns> <timeslices>"
    const text = buffer.toString('latin1', 0, n);
    const start = text.indexOf(' ') + 1;
    return Number(text.slice(start, text.indexOf(' ', start))) / 1e6;
  };
  try {
    if (!Number.isFinite(read())) throw new Error('unreadable');
  } catch {
    closeSync(fd);
    return null;
  }
  return { read, close: () => closeSync(fd) };
}

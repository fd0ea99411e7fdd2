// CPU time of processes and of the whole machine, sampled from /proc (Linux), for the cluster
// bench: which process used how much of the cores over a window, and whether the cores were
// free at all (the machine may be shared).
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's times (USER_HZ: 100 on every Linux the bench runs on). */
const HZ = 100;

interface Sample {
  readonly t: number;
  /** CPU seconds of each named process (NaN once it is gone). */
  readonly processes: ReadonlyMap<string, number>;
  /** CPU seconds the machine spent busy (all cores), and its cores. */
  readonly busy: number;
}

/** CPU seconds (user + system) of process `pid` so far, or NaN when it is gone. */
export function processCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // the fields after the command name, which may hold spaces: state is field 3, utime 14, stime 15
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / HZ;
  } catch {
    return NaN;
  }
}

/** CPU seconds the machine spent neither idle nor waiting for I/O, all cores together. */
export function machineBusySeconds(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = cpu.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - cpu[3]! - cpu[4]!) / HZ;
}

/**
 * Samples the CPU time of named processes and of the machine every `everyMs` until
 * `stop()`; `between(t0, t1)` is then each one's share of the window in cores (1 = one
 * whole core), interpolated between the samples around `t0` and `t1` (wall-clock ms).
 *
 * @example
 * const cpu = new CpuSampler({ worker: child.pid!, 'nats-server': server.pid! });
 * // … the work …
 * cpu.stop();
 * cpu.between(first, last); // { processes: { worker: 0.97, 'nats-server': 0.41 }, machine: 1.6 }
 */
export class CpuSampler {
  private readonly samples: Sample[] = [];
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(private readonly pids: Readonly<Record<string, number>>, everyMs = 50) {
    this.sample();
    this.timer = setInterval(() => this.sample(), everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  /** Each process's cores and the machine's busy cores over [t0, t1] (wall-clock ms). */
  between(t0: number, t1: number): { processes: Record<string, number>; machine: number } {
    const a = this.at(t0), b = this.at(t1);
    const seconds = (t1 - t0) / 1000;
    const processes: Record<string, number> = {};
    for (const name of Object.keys(this.pids)) processes[name] = round((b.processes.get(name)! - a.processes.get(name)!) / seconds);
    return { processes, machine: round((b.busy - a.busy) / seconds) };
  }

  private sample(): void {
    const processes = new Map<string, number>();
    for (const [name, pid] of Object.entries(this.pids)) processes.set(name, processCpuSeconds(pid));
    this.samples.push({ t: performance.timeOrigin + performance.now(), processes, busy: machineBusySeconds() });
  }

  /** The counters at `t`, interpolated between the samples around it. */
  private at(t: number): Sample {
    const s = this.samples;
    let i = s.findIndex((x) => x.t >= t);
    if (i === -1) i = s.length - 1;
    const hi = s[i]!, lo = s[Math.max(0, i - 1)]!;
    const f = hi.t === lo.t ? 1 : Math.min(1, Math.max(0, (t - lo.t) / (hi.t - lo.t)));
    const mix = (x: number, y: number) => x + (y - x) * f;
    const processes = new Map<string, number>();
    for (const name of Object.keys(this.pids)) processes.set(name, mix(lo.processes.get(name)!, hi.processes.get(name)!));
    return { t, processes, busy: mix(lo.busy, hi.busy) };
  }
}

function round(x: number): number {
  return Number(x.toFixed(3));
}

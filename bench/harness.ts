/**
 * What the serving benchmarks (bench/server.ts, bench/predict.ts) share: W2 training at full
 * speed as a TrainingRun over an endless stream, its throughput over a window with the share
 * of a core the process got meanwhile, and children forked from the bench script itself
 * that report back over IPC.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TrainingRun } from '../pipeline/run.ts';
import type { Trainer } from '../core/trainer.ts';
import { createWorkloadTrainer, makeData, type Workload, WORKLOADS } from './workloads.ts';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The q-quantile of `values` (NaN for none). */
export const quantile = (values: readonly number[], q: number) => {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};

export const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;

/**
 * W2 (16→64→64→4 relu, mse, Adam, batch 32) as a run that trains for ever on 8,192 samples
 * in a loop, not started.
 *
 * @example
 * const { w, trainer, run } = w2Run();
 * server.addRun(run);
 * void run.start();
 */
export function w2Run(): { readonly w: Workload; readonly trainer: Trainer; readonly run: TrainingRun } {
  const w = WORKLOADS.w2;
  const trainer = createWorkloadTrainer(w);
  const pool = makeData('w2', 8192);
  const nin = w.sizes[0], nout = w.sizes[w.sizes.length - 1];
  const samples = Array.from({ length: 8192 }, (_, i) => ({ x: Array.from(pool.X.subarray(i * nin, (i + 1) * nin)), y: Array.from(pool.Y.subarray(i * nout, (i + 1) * nout)) }));
  function* source() {
    for (let i = 0; ; i = (i + 1) % samples.length) yield samples[i];
  }
  const run = new TrainingRun({ id: 'w2', trainer, source: source(), train: { batch: w.batch } });
  return { w, trainer, run };
}

/**
 * Measures `trainer`'s samples per second over windows of wall-clock time, and notes for each
 * window the CPU time this process got per second (below 1: other processes took some of its core).
 *
 * @example
 * const meter = throughputMeter(trainer);
 * const rate = await meter.throughput(3);
 * say(`${rate.toFixed(0)} samples/s (${meter.lastShare()})`);
 */
export function throughputMeter(trainer: Trainer): { throughput(seconds: number): Promise<number>; lastShare(): string; readonly cpuShare: readonly number[] } {
  const cpuShare: number[] = [];
  return {
    cpuShare,
    async throughput(s) {
      const n0 = trainer.counters.samples, t0 = performance.now(), c0 = process.cpuUsage();
      await sleep(s * 1000);
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(c0);
      cpuShare.push((cpu.user + cpu.system) / 1000 / wall);
      return ((trainer.counters.samples - n0) * 1000) / wall;
    },
    lastShare: () => `${Math.round(cpuShare[cpuShare.length - 1] * 100)}% of a core`,
  };
}

/** A child process and its messages, by type. */
export interface Forked<From extends { readonly type: string }> {
  readonly kid: ChildProcess;
  /** The child's next message of `type`, also one that came before the call; rejects if the child goes away without sending it. */
  next<T extends From['type']>(type: T): Promise<Extract<From, { type: T }>>;
}

/**
 * Forks the bench script `script` (its `import.meta.url`) again with `args` (the child's
 * mode), under tsx, its output on ours.
 *
 * @example
 * const single = forkSelf<SingleReport | { type: 'ready' }>(import.meta.url, ['--single', url]);
 * await single.next('ready');
 */
export function forkSelf<From extends { readonly type: string }>(script: string, args: readonly string[]): Forked<From> {
  const kid = fork(fileURLToPath(script), [...args], { execArgv: ['--import', 'tsx/esm'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const queue: From[] = [];
  const waiters: (() => void)[] = [];
  const wake = () => { for (const w of waiters.splice(0)) w(); };
  // the channel closes after the child's last message is in: then nothing more can come
  let gone = false;
  kid.once('disconnect', () => { gone = true; wake(); });
  kid.on('message', (m: From) => {
    queue.push(m);
    wake();
  });
  return {
    kid,
    async next<T extends From['type']>(type: T): Promise<Extract<From, { type: T }>> {
      for (;;) {
        const i = queue.findIndex((m) => m.type === type);
        if (i !== -1) return queue.splice(i, 1)[0] as Extract<From, { type: T }>;
        if (gone) throw new Error(`${args[0]} process exited (${kid.exitCode ?? kid.signalCode ?? 'channel closed'}) before its ${type}`);
        await new Promise<void>((r) => waiters.push(r));
      }
    },
  };
}

/**
 * Server benchmark (npm run bench:server): does broadcasting to many dashboards slow
 * training down? One process trains W2 (16→64→64→4 relu, mse, Adam, batch 32) as a
 * TrainingRun served by `serve()`; a child process opens 500 WebSocket clients, each
 * subscribed to 10 Hz float32 snapshots plus metrics. Measured in one run, loopback only,
 * in well under two minutes:
 *
 * - training throughput with 0 clients (before and after) vs 500 clients: ratio ≥ 0.8;
 * - snapshot delivery latency p50/p99: from the step a snapshot shows being taken to the
 *   client holding it (so it includes the wait for the tick, at most one training slice);
 * - snapshots received per client per second; server RSS at 500 clients;
 * - connect-to-hello latency while training runs, with 0 and with 500 clients.
 *
 * The throughput windows with clients alternate with windows where the same clients are
 * connected but unsubscribed (no traffic), so that a machine whose speed drifts (other
 * processes, CPU steal on a VM) affects both sides alike; both ratios are reported.
 *
 * Usage: npm run bench:server [-- --clients N --seconds S --rounds R --json]
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { TrainingRun } from '../pipeline/run.ts';
import { serve } from '../server/server.ts';
import { createWorkloadTrainer, makeData, WORKLOADS } from './workloads.ts';

const now = () => performance.timeOrigin + performance.now(); // wall-clock ms, comparable across processes

// ---------------------------------------------------------------------------------------
// the child: N clients

interface ChildReport {
  readonly frames: number[];
  readonly metrics: number;
  readonly seconds: number;
  /** Pairs (step, received at) of every snapshot in the window. */
  readonly received: number[];
  readonly helloMs: number[];
}

type ToChild = { readonly type: 'measure' | 'report' | 'hello-probe' | 'subscribe' | 'unsubscribe' | 'exit' };
type FromChild = { readonly type: 'ready'; readonly connectMs: number; readonly helloMs: number[] } | { readonly type: 'report'; readonly report: ChildReport } | { readonly type: 'hello'; readonly helloMs: number[] };

async function helloLatency(url: string, origin: string, times: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < times; i++) {
    const t = performance.now();
    const ws = new WebSocket(url, { origin });
    ws.on('error', () => undefined);
    await new Promise<void>((resolve) => ws.once('message', () => resolve()));
    out.push(performance.now() - t);
    ws.terminate();
  }
  return out;
}

const SUBSCRIBE = JSON.stringify({ type: 'subscribe', run: 'w2', channels: ['snapshots', 'metrics'], rateHz: 10, dtype: 'float32' });
const UNSUBSCRIBE = JSON.stringify({ type: 'unsubscribe', run: 'w2' });

async function child(url: string, origin: string, n: number): Promise<void> {
  const send = (m: FromChild) => process.send!(m);
  const idleHello = await helloLatency(url, origin, 20);
  const frames = new Array<number>(n).fill(0);
  let metrics = 0;
  let measuring = false;
  let received: number[] = [];
  let windowStart = 0;
  const sockets: WebSocket[] = [];
  const started = performance.now();
  for (let i = 0; i < n; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, j) => new Promise<void>((resolve, reject) => {
      const k = i + j;
      const ws = new WebSocket(url, { origin });
      sockets.push(ws);
      ws.on('error', reject);
      ws.on('message', (data: Buffer, isBinary) => {
        if (!isBinary) {
          if (measuring && data[9] === 0x6d /* {"type":"m… */) metrics++;
          return;
        }
        frames[k]++;
        if (measuring) received.push(data.readDoubleLE(8), now());
      });
      ws.once('open', () => {
        ws.send(SUBSCRIBE);
        resolve();
      });
    })));
  }
  // everyone has had a snapshot
  while (frames.some((f) => f === 0)) await new Promise((r) => setTimeout(r, 20));
  send({ type: 'ready', connectMs: performance.now() - started, helloMs: idleHello });
  process.on('message', async (m: ToChild) => {
    if (m.type === 'measure') {
      frames.fill(0);
      metrics = 0;
      received = [];
      windowStart = performance.now();
      measuring = true;
    } else if (m.type === 'report') {
      measuring = false;
      send({ type: 'report', report: { frames: [...frames], metrics, seconds: (performance.now() - windowStart) / 1000, received, helloMs: [] } });
    } else if (m.type === 'subscribe' || m.type === 'unsubscribe') {
      for (const ws of sockets) ws.send(m.type === 'subscribe' ? SUBSCRIBE : UNSUBSCRIBE);
    } else if (m.type === 'hello-probe') {
      send({ type: 'hello', helloMs: await helloLatency(url, origin, 20) });
    } else {
      for (const ws of sockets) ws.terminate();
      process.exit(0);
    }
  });
}

// ---------------------------------------------------------------------------------------
// the parent: training + server

const quantile = (values: readonly number[], q: number) => {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
};
const mean = (values: readonly number[]) => values.reduce((a, b) => a + b, 0) / values.length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function parent(clients: number, seconds: number, rounds: number, json: boolean): Promise<void> {
  const w = WORKLOADS.w2;
  const trainer = createWorkloadTrainer(w);
  const pool = makeData('w2', 8192);
  const nin = w.sizes[0], nout = w.sizes[w.sizes.length - 1];
  const samples = Array.from({ length: 8192 }, (_, i) => ({ x: Array.from(pool.X.subarray(i * nin, (i + 1) * nin)), y: Array.from(pool.Y.subarray(i * nout, (i + 1) * nout)) }));
  function* source() {
    for (let i = 0; ; i = (i + 1) % samples.length) yield samples[i];
  }
  const run = new TrainingRun({ id: 'w2', trainer, source: source(), train: { batch: w.batch } });
  // when each step count was reached, for the snapshot latency (a ring of 2^21 steps)
  const stepTimes = new Float64Array(1 << 21);
  run.results.subscribe(() => { stepTimes[trainer.counters.steps & ((1 << 21) - 1)] = now(); });
  const server = await serve({ port: 0, token: randomBytes(16).toString('hex'), maxClients: clients + 100 });
  server.addRun(run);
  void run.start();

  /** Samples/s over `s` seconds; also notes how much of a core this process got meanwhile. */
  const cpuShare: number[] = [];
  const throughput = async (s: number) => {
    const n0 = trainer.counters.samples, t0 = performance.now(), c0 = process.cpuUsage();
    await sleep(s * 1000);
    const wall = performance.now() - t0;
    const cpu = process.cpuUsage(c0);
    cpuShare.push((cpu.user + cpu.system) / 1000 / wall);
    return ((trainer.counters.samples - n0) * 1000) / wall;
  };
  const lastShare = () => `${Math.round(cpuShare[cpuShare.length - 1] * 100)}% of a core`;
  const say = (line: string) => { if (!json) process.stderr.write(`${line}\n`); };

  say(`W2 ${w.sizes.join('→')} batch ${w.batch}, ${trainer.model.params.length} parameters (float32 snapshot ${(trainer.model.params.length * 4 / 1024).toFixed(1)} KiB); ${clients} clients at 10 Hz`);
  await throughput(1.5); // warm-up
  const before = await throughput(seconds);
  say(`0 clients: ${before.toFixed(0)} samples/s (${lastShare()})`);

  const kid = fork(fileURLToPath(import.meta.url), ['--child', server.wsUrl, server.url, String(clients)], { execArgv: ['--import', 'tsx/esm'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const nextMessage = <T extends FromChild['type']>(type: T) => new Promise<Extract<FromChild, { type: T }>>((resolve, reject) => {
    const on = (m: FromChild) => { if (m.type === type) { kid.off('message', on); resolve(m as Extract<FromChild, { type: T }>); } };
    kid.on('message', on);
    kid.once('exit', (code) => reject(new Error(`client process exited (${code})`)));
  });
  const ready = await nextMessage('ready');
  say(`${clients} clients connected and served in ${ready.connectMs.toFixed(0)} ms`);
  // alternate windows with the clients subscribed and unsubscribed (connected, silent), so
  // that drifts of the machine's speed (other processes, CPU steal) hit both sides alike
  const rssSamples: number[] = [];
  const rssTimer = setInterval(() => rssSamples.push(process.memoryUsage().rss), 250);
  const loaded: number[] = [];
  const silent: number[] = [];
  const frames = new Array<number>(clients).fill(0);
  const received: number[] = [];
  let metricsCount = 0, measured = 0;
  for (let round = 0; round < rounds; round++) {
    await sleep(300);
    kid.send({ type: 'measure' } satisfies ToChild);
    loaded.push(await throughput(seconds));
    const loadedShare = lastShare();
    kid.send({ type: 'report' } satisfies ToChild);
    const { report } = await nextMessage('report');
    report.frames.forEach((f, i) => { frames[i] += f; });
    received.push(...report.received);
    metricsCount += report.metrics;
    measured += report.seconds;
    kid.send({ type: 'unsubscribe' } satisfies ToChild);
    await sleep(300);
    silent.push(await throughput(seconds));
    const silentShare = lastShare();
    kid.send({ type: 'subscribe' } satisfies ToChild);
    say(`round ${round + 1}: ${loaded[round].toFixed(0)} samples/s subscribed (${loadedShare}), ${silent[round].toFixed(0)} unsubscribed (${silentShare})`);
  }
  clearInterval(rssTimer);
  const during = mean(loaded);
  const report = { frames, received, metrics: metricsCount, seconds: measured };
  kid.send({ type: 'hello-probe' } satisfies ToChild);
  const loadedHello = (await nextMessage('hello')).helloMs;
  const dropped = server.stats.droppedFrames;
  kid.send({ type: 'exit' } satisfies ToChild);
  await new Promise((r) => kid.once('exit', r));
  while (server.stats.clients > 0) await sleep(20);
  await sleep(500);
  const after = await throughput(seconds);

  const latencies: number[] = [];
  for (let i = 0; i < report.received.length; i += 2) {
    const step = report.received[i];
    const at = stepTimes[step & ((1 << 21) - 1)];
    if (at > 0) latencies.push(report.received[i + 1] - at);
  }
  const perClient = report.frames.map((f) => f / report.seconds);
  const baseline = (before + after) / 2;
  const result = {
    workload: 'w2',
    clients,
    samplesPerSecond: {
      noClientsBefore: Math.round(before), noClientsAfter: Math.round(after),
      subscribed: loaded.map(Math.round), unsubscribed: silent.map(Math.round),
    },
    /** Mean throughput with the clients subscribed over the mean with no clients at all (before and after). */
    ratio: Number((during / baseline).toFixed(3)),
    /** The same, against the interleaved windows with the clients connected but unsubscribed. */
    ratioInterleaved: Number((during / mean(silent)).toFixed(3)),
    snapshotLatencyMs: { p50: Number(quantile(latencies, 0.5).toFixed(2)), p99: Number(quantile(latencies, 0.99).toFixed(2)), max: Number(Math.max(...latencies).toFixed(2)), samples: latencies.length },
    snapshotsPerClientPerSecond: { mean: Number((perClient.reduce((a, b) => a + b, 0) / perClient.length).toFixed(2)), min: Number(Math.min(...perClient).toFixed(2)) },
    metricsPerClientPerSecond: Number((report.metrics / clients / report.seconds).toFixed(2)),
    droppedFrames: dropped,
    serverRssMiB: { withClients: Math.round(Math.max(...rssSamples) / 2 ** 20), idle: Math.round(process.memoryUsage().rss / 2 ** 20) },
    /** CPU time this process got per second of each window, in window order: below 1, other processes took some of its core. */
    cpuShare: cpuShare.map((c) => Number(c.toFixed(2))),
    helloMs: {
      idle: { p50: Number(quantile(ready.helloMs, 0.5).toFixed(1)), max: Number(Math.max(...ready.helloMs).toFixed(1)) },
      withClients: { p50: Number(quantile(loadedHello, 0.5).toFixed(1)), max: Number(Math.max(...loadedHello).toFixed(1)) },
    },
  };
  run.dispose();
  await server.close();
  if (json) {
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } else {
    say(`0 clients again: ${after.toFixed(0)} samples/s (${lastShare()})`);
    say(`throughput ratio, ${clients} clients subscribed / 0 clients: ${result.ratio} ${result.ratio >= 0.8 ? '(≥ 0.8: ok)' : '(< 0.8: below target)'}; / interleaved unsubscribed windows: ${result.ratioInterleaved}`);
    say(`snapshot latency (step taken → client holds it): p50 ${result.snapshotLatencyMs.p50} ms, p99 ${result.snapshotLatencyMs.p99} ms over ${latencies.length} snapshots`);
    say(`snapshots per client per second: mean ${result.snapshotsPerClientPerSecond.mean}, min ${result.snapshotsPerClientPerSecond.min} (asked: 10); metrics ${result.metricsPerClientPerSecond}/s; dropped frames ${dropped}`);
    say(`server RSS: ${result.serverRssMiB.withClients} MiB with ${clients} clients`);
    say(`connect → hello while training: p50 ${result.helloMs.idle.p50} ms (max ${result.helloMs.idle.max}) with 0 clients, p50 ${result.helloMs.withClients.p50} ms (max ${result.helloMs.withClients.max}) with ${clients}`);
  }
}

const { values } = parseArgs({
  options: { child: { type: 'boolean' }, clients: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: true,
  strict: true,
});
if (values.child === true) {
  const [url, origin, n] = process.argv.slice(process.argv.indexOf('--child') + 1);
  await child(url, origin, Number(n));
} else {
  const clients = Number(values.clients ?? 500);
  const seconds = Number(values.seconds ?? 3);
  const rounds = Number(values.rounds ?? 3);
  if (!Number.isSafeInteger(clients) || clients < 1 || !(seconds > 0 && seconds <= 10) || !Number.isSafeInteger(rounds) || rounds < 1 || rounds > 5) {
    process.stderr.write('usage: bench/server.ts [--clients N ≥ 1] [--seconds S in (0, 10]] [--rounds R in 1..5] [--json]\n');
    process.exit(2);
  }
  await parent(clients, seconds, rounds, values.json === true);
}

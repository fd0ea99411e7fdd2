/**
 * Server benchmark (npm run bench:server): does broadcasting to many dashboards slow
 * training down, and does training delay the server's answers? One process trains W2
 * (16→64→64→4 relu, mse, Adam, batch 32) as a TrainingRun served as the CLI serves it:
 * by `serveInThread()` (the server on a thread of its own; `--server inline` serves from
 * the training thread with `serve()` instead, as before issue 17). Measured in one run,
 * loopback only, in about two minutes:
 *
 * - connection bursts (issue 17): while training runs, a child process opens 100, then
 *   500 idle WebSocket connections at once — raw handshakes on plain TCP sockets (the
 *   upgrade request, then read the 101 and the hello), wrk-style: by bench/burst.c (C,
 *   epoll; built with gcc at start), or with `--burst-client node` by this script in Node,
 *   which spends 3–4 times its CPU (a full `ws` client per connection would spend more
 *   than the server does). The load generator shares the cores with the server here,
 *   where a real burst comes from other machines, so the less it takes the more the
 *   figures are the server's; its CPU time is reported. Another child probes `GET /healthz` every
 *   25 ms and a WebSocket handshake (connect → hello) every 100 ms, open-loop (a probe
 *   does not wait for the previous one, so a stall shows in every probe it delays).
 *   Reported: /healthz p50/p99/max and handshake p50/p99/max over the burst (from its
 *   first connection until 300 ms after its last hello), the burst's duration, and the
 *   training throughput over 3 s from the burst's start against 3 s just before it;
 *
 * Then 500 clients (a third child), each subscribed to 10 Hz float32 snapshots plus metrics:
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
 * The training thread runs at the nice value `serveInThread` gives it (see
 * server/training-priority.ts), taken after the burst and probe clients are forked (they
 * run at normal priority, as real callers do; the 500 subscribers, forked later, at the
 * training thread's); `STREAMGRAD_TRAINING_NICE=0 npm run bench:server` measures the
 * server thread without that help, 19 with more. Either way the training thread sleeps
 * between slices while the server thread waits for a core (pipeline/cpu-share.ts);
 * `STREAMGRAD_CPU_SHARE=0` turns that off, to compare.
 *
 * `--paused` repeats each burst with training paused: the server thread with the machine to
 * itself, which tells whether a burst's latency is training's doing or the burst's own cost.
 *
 * The server warms up as the CLI's does (`warmUpHandshakes`, WARM_UP_HANDSHAKES = 2000
 * handshakes to itself at start, server/warm-up.ts) and the measurements start once it has; `--warm-up 0` measures
 * a server whose first burst meets cold code.
 *
 * `--repeat K` runs the whole benchmark K times, each in a fresh process, and pools their
 * bursts: per size, in how many the target was met (first bursts apart: a server that has
 * just started meets its first burst on code V8 is still compiling) and the p99 of all
 * their probes together; `--bursts 500,500,500 --clients 1 --rounds 1 --seconds 1
 * --repeat 8` is item 6's measure in about five minutes.
 *
 * Usage: npm run bench:server [-- --clients N --seconds S --rounds R --bursts 100,500 --paused --warm-up N --server thread|inline --burst-client c|node --repeat K --json]
 */
import { randomBytes } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { serve } from '../server/server.ts';
import { serveInThread } from '../server/threaded-server.ts';
import { WARM_UP_HANDSHAKES } from '../runtime/serving.ts';
import { DEFAULT_TRAINING_NICE, describePriority, trainBehindServer, trainingIdleFromEnv, trainingNiceFromEnv } from '../server/training-priority.ts';
import { forkSelf, mean, quantile, sleep, throughputMeter, w2Run } from './harness.ts';

const now = () => performance.timeOrigin + performance.now(); // wall-clock ms, comparable across processes

/** This process's threads (Linux: /proc/self/task), empty where there is no /proc. */
function threadIds(): string[] {
  try {
    return readdirSync('/proc/self/task');
  } catch {
    return [];
  }
}

/** CPU ms thread `tid` of this process has run so far (Linux schedstat, in ns), NaN once it is gone. */
function threadCpuMs(tid: string): number {
  try {
    return Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ', 1)[0]) / 1e6;
  } catch {
    return NaN;
  }
}

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
// the burst children: one opens N idle connections at once, one probes the server meanwhile

type ToBurst = { readonly type: 'burst'; readonly n: number } | { readonly type: 'drop' } | { readonly type: 'exit' };
type FromBurst = { readonly type: 'ready' } | { readonly type: 'burst'; readonly start: number; readonly end: number; readonly opened: number; readonly failed: number; readonly cpuMs: number } | { readonly type: 'dropped' };

/**
 * One raw WebSocket handshake as a server sees it (a GET with `Upgrade: websocket`, a
 * fresh key, our Origin) on a plain TCP socket; resolves with the socket once the 101 and
 * the first frame after it (the hello) have arrived, null if it failed. No `ws` client:
 * its per-connection objects cost this process more CPU than the server's side of the
 * handshake, and this process shares the cores with the server (wrk-style load).
 */
function rawHandshake(url: URL, origin: string): Promise<Socket | null> {
  return new Promise((resolve) => {
    const socket = connect(Number(url.port), url.hostname);
    let got: Buffer | null = null;
    socket.once('error', () => resolve(null));
    socket.once('close', () => resolve(null));
    socket.once('connect', () => socket.write(`GET ${url.pathname} HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\nOrigin: ${origin}\r\n\r\n`));
    const onData = (data: Buffer) => {
      got = got === null ? data : Buffer.concat([got, data]);
      const end = got.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!got.subarray(0, 12).toString('latin1').startsWith('HTTP/1.1 101')) return socket.destroy();
      if (got.length <= end + 4) return; // the hello is still to come
      socket.off('data', onData);
      socket.removeAllListeners('close');
      socket.on('error', () => undefined);
      resolve(socket);
    };
    socket.on('data', onData);
  });
}

/**
 * Opens `n` idle WebSocket connections at once on each `burst`, holds them until `drop`;
 * reports the CPU the load generator spent on them. `client` 'c' (the default) runs
 * bench/burst.c, compiled here with gcc, and relays to it (this process only waits
 * meanwhile); 'node' makes the handshakes in this process (rawHandshake), which costs the
 * two cores the server shares with it 3–10 times as much CPU (docs/live-view.md).
 */
async function burstChild(url: string, origin: string, client: 'c' | 'node'): Promise<void> {
  const send = (m: FromBurst) => process.send!(m);
  const wsUrl = new URL(url);
  if (client === 'c') {
    const dir = mkdtempSync(join(tmpdir(), 'sg-burst-'));
    const binary = join(dir, 'burst');
    const built = spawnSync('gcc', ['-O2', '-o', binary, fileURLToPath(new URL('./burst.c', import.meta.url))], { encoding: 'utf8' });
    if (built.status !== 0) throw new Error(`gcc bench/burst.c: ${built.stderr || built.error?.message}`);
    const kid = spawn(binary, [wsUrl.hostname, wsUrl.port, wsUrl.pathname, origin], { stdio: ['pipe', 'pipe', 'inherit'] });
    const answers = createInterface({ input: kid.stdout! })[Symbol.asyncIterator]();
    const ask = async (line: string) => {
      kid.stdin!.write(`${line}\n`);
      const answer = await answers.next();
      if (answer.done === true) throw new Error('bench/burst.c exited');
      return JSON.parse(answer.value);
    };
    process.on('message', async (m: ToBurst) => {
      if (m.type === 'burst') {
        const cpu = process.cpuUsage();
        const burst = await ask(`burst ${m.n}`);
        const used = process.cpuUsage(cpu);
        send({ type: 'burst', start: burst.start, end: burst.end, opened: burst.opened, failed: burst.failed, cpuMs: burst.cpuMs + (used.user + used.system) / 1000 });
      } else if (m.type === 'drop') {
        await ask('drop');
        send({ type: 'dropped' });
      } else {
        kid.stdin!.end();
        await new Promise((r) => kid.once('exit', r));
        rmSync(dir, { recursive: true, force: true });
        process.exit(0);
      }
    });
    send({ type: 'ready' });
    return;
  }
  let sockets: Socket[] = [];
  process.on('message', async (m: ToBurst) => {
    if (m.type === 'burst') {
      const start = now();
      const cpu = process.cpuUsage();
      const opened = (await Promise.all(Array.from({ length: m.n }, () => rawHandshake(wsUrl, origin)))).filter((s): s is Socket => s !== null);
      sockets.push(...opened);
      const used = process.cpuUsage(cpu);
      send({ type: 'burst', start, end: now(), opened: opened.length, failed: m.n - opened.length, cpuMs: (used.user + used.system) / 1000 });
    } else if (m.type === 'drop') {
      for (const socket of sockets) socket.destroy();
      sockets = [];
      send({ type: 'dropped' });
    } else {
      for (const socket of sockets) socket.destroy();
      process.exit(0);
    }
  });
  send({ type: 'ready' });
}

type ToProbe = { readonly type: 'start' } | { readonly type: 'stop' };
type FromProbe = { readonly type: 'ready' } | { readonly type: 'probes'; readonly healthz: number[]; readonly hello: number[] };

/**
 * Probes `/healthz` every 25 ms and a WebSocket handshake (connect → hello) every 100 ms
 * while started, open-loop; reports pairs (sent at, latency ms) of each.
 */
async function probeChild(wsUrl: string, origin: string): Promise<void> {
  const send = (m: FromProbe) => process.send!(m);
  const healthzUrl = new URL('/healthz', origin);
  let healthz: number[] = [], hello: number[] = [];
  const timers: NodeJS.Timeout[] = [];
  let inFlight = 0;
  const healthzProbe = () => {
    const t = now();
    inFlight++;
    const done = () => { inFlight--; healthz.push(t, now() - t); };
    const req = request(healthzUrl, { agent: false }, (res) => { res.resume(); res.once('end', done); });
    req.once('error', done);
    req.end();
  };
  const helloProbe = () => {
    const t = now();
    inFlight++;
    const ws = new WebSocket(wsUrl, { origin });
    const done = () => { inFlight--; hello.push(t, now() - t); ws.terminate(); };
    ws.once('error', done);
    ws.once('message', done);
  };
  process.on('message', async (m: ToProbe) => {
    if (m.type === 'start') {
      healthz = [];
      hello = [];
      timers.push(setInterval(healthzProbe, 25), setInterval(helloProbe, 100));
    } else {
      for (const t of timers.splice(0)) clearInterval(t);
      while (inFlight > 0) await sleep(10);
      send({ type: 'probes', healthz, hello });
    }
  });
  send({ type: 'ready' });
}

/** The latencies (the second of each pair) of the probes sent within [from, to]. */
function within(pairs: readonly number[], from: number, to: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < pairs.length; i += 2) if (pairs[i] >= from && pairs[i] <= to) out.push(pairs[i + 1]);
  return out;
}

const tenth = (ms: number) => Math.round(ms * 10) / 10;

/** Issue 17 item 6's target for one burst while training: /healthz and handshake p99 under 100 ms, training at ≥ 0.8 of its speed before. */
const burstMet = (b: { readonly healthzMs: { readonly p99: number }; readonly handshakeMs: { readonly p99: number }; readonly throughputRatio: number | null }) =>
  b.healthzMs.p99 < 100 && b.handshakeMs.p99 < 100 && (b.throughputRatio ?? 1) >= 0.8;

const summary = (values: readonly number[]) => ({
  p50: Number(quantile(values, 0.5).toFixed(1)),
  p99: Number(quantile(values, 0.99).toFixed(1)),
  max: Number((values.length === 0 ? NaN : Math.max(...values)).toFixed(1)),
  probes: values.length,
});

// ---------------------------------------------------------------------------------------
// the parent: training + server

async function parent(clients: number, seconds: number, rounds: number, bursts: readonly number[], paused: boolean, warmUp: number, mode: 'thread' | 'inline', burstClient: 'c' | 'node', json: boolean): Promise<void> {
  const { w, trainer, run } = w2Run();
  // when each step count was reached, for the snapshot latency (a ring of 2^21 steps)
  const stepTimes = new Float64Array(1 << 21);
  run.results.subscribe(() => { stepTimes[trainer.counters.steps & ((1 << 21) - 1)] = now(); });
  const serveOptions = { port: 0, token: randomBytes(16).toString('hex'), maxClients: Math.max(clients, ...bursts) + 200, warmUpHandshakes: warmUp };
  // the training thread takes its nice value only after the burst and probe clients are
  // forked, so that they run at normal priority, as a real server's callers do
  const threadsBefore = new Set(threadIds());
  const server = mode === 'thread' ? await serveInThread({ ...serveOptions, trainingNice: null }) : await serve(serveOptions);
  // the server thread is among the threads serveInThread started (with libuv's or V8's helpers that
  // started meanwhile, which a burst hardly wakes): over a burst it is the one that spent the most CPU
  const serverThreads = mode === 'thread' ? threadIds().filter((tid) => !threadsBefore.has(tid)) : [];
  const serverThreadCpu = () => serverThreads.map(threadCpuMs);
  // (a server without the option has no such count: then nothing to wait for)
  while ((server.stats.warmUpHandshakes ?? warmUp) < warmUp) await sleep(20);
  server.addRun(run);
  void run.start();
  const burstKids = bursts.length === 0 ? null : {
    burster: forkSelf<FromBurst>(import.meta.url, ['--burst', server.wsUrl, server.url, burstClient]),
    prober: forkSelf<FromProbe>(import.meta.url, ['--probe', server.wsUrl, server.url]),
  };
  const nice = mode === 'thread' ? trainingNiceFromEnv(DEFAULT_TRAINING_NICE) : 0;
  const priority = trainBehindServer(nice, trainingIdleFromEnv());
  const cpuStats = () => ('cpu' in server ? server.cpu : null);

  /** Samples/s over `s` seconds; also notes how much of a core this process got meanwhile. */
  const { throughput, lastShare, cpuShare } = throughputMeter(trainer);
  const say = (line: string) => { if (!json) process.stderr.write(`${line}\n`); };

  say(`W2 ${w.sizes.join('→')} batch ${w.batch}, ${trainer.model.params.length} parameters (float32 snapshot ${(trainer.model.params.length * 4 / 1024).toFixed(1)} KiB); server ${warmUp > 0 ? `warmed up by ${warmUp} handshakes, ` : 'cold, '}${mode === 'thread' ? `on its own thread, training thread ${describePriority(priority)}, burst clients at their own` : 'on the training thread'}; bursts from ${burstClient === 'c' ? 'bench/burst.c' : 'a Node client'}; ${clients} clients at 10 Hz`);
  await throughput(1.5); // warm-up
  const before = await throughput(seconds);
  say(`0 clients: ${before.toFixed(0)} samples/s (${lastShare()})`);

  // connection bursts while training runs: /healthz and handshake latency, training throughput
  const burstResults = [];
  if (burstKids !== null) {
    const { burster, prober } = burstKids;
    await Promise.all([burster.next('ready'), prober.next('ready')]);
    for (const n of bursts) for (const training of paused ? [true, false] : [true]) {
      await sleep(500);
      prober.kid.send({ type: 'start' } satisfies ToProbe);
      const quiet = await throughput(3);
      const cpuBefore = cpuStats();
      const threadCpuBefore = serverThreadCpu();
      burster.kid.send({ type: 'burst', n } satisfies ToBurst);
      // paused: the same burst with the run paused, the server thread and its clients alone on the machine (is the wait training's or the burst's own?)
      if (!training) run.pause();
      const loadedRate = training ? throughput(3) : sleep(3000).then(() => Number.NaN);
      const burst = await burster.next('burst');
      const threadCpuAfter = serverThreadCpu();
      const during = await loadedRate;
      if (!training) run.resume();
      const until = burst.end + 300;
      while (now() < until + 100) await sleep(50);
      prober.kid.send({ type: 'stop' } satisfies ToProbe);
      const probes = await prober.next('probes');
      const cpuAfter = cpuStats();
      const result = {
        connections: n,
        training,
        opened: burst.opened,
        failed: burst.failed,
        burstMs: Math.round(burst.end - burst.start),
        /** CPU the burst child spent opening the connections (it shares the cores with the server). */
        burstClientCpuMs: Math.round(burst.cpuMs),
        /** CPU the server thread spent from the burst's first connection to its last hello (null inline or without /proc). */
        serverThreadCpuMs: threadCpuAfter.length === 0 ? null : Math.round(Math.max(...threadCpuAfter.map((c, i) => c - threadCpuBefore[i]).filter(Number.isFinite))),
        healthzMs: summary(within(probes.healthz, burst.start, until)),
        handshakeMs: summary(within(probes.hello, burst.start, until)),
        quietHealthzMs: summary(within(probes.healthz, 0, burst.start)),
        quietHandshakeMs: summary(within(probes.hello, 0, burst.start)),
        samplesPerSecond: { before: Math.round(quiet), during: Math.round(during) },
        throughputRatio: training ? Number((during / quiet).toFixed(3)) : null,
        /** The server thread's demands for the CPU over the burst, and the training thread's sleeps for it (pipeline/cpu-share.ts). */
        serverCpuDemand: cpuBefore === null || cpuAfter === null ? null : { raises: cpuAfter.raises - cpuBefore.raises, yields: cpuAfter.yields - cpuBefore.yields, yieldedMs: Math.round(cpuAfter.yieldedMs - cpuBefore.yieldedMs) },
        /** Every probe's latency over the burst (ms), for pooling bursts of several runs (`--repeat`). */
        latenciesMs: { healthz: within(probes.healthz, burst.start, until).map(tenth), handshake: within(probes.hello, burst.start, until).map(tenth) },
      };
      burstResults.push(result);
      say(`burst of ${n} connections${training ? '' : ' with training paused'} (${result.opened} opened, ${result.failed} failed) in ${result.burstMs} ms, client CPU ${result.burstClientCpuMs} ms${result.serverThreadCpuMs === null ? '' : `, server thread CPU ${result.serverThreadCpuMs} ms (${(result.serverThreadCpuMs / n * 1000).toFixed(0)} µs a connection)`}: /healthz p50 ${result.healthzMs.p50} p99 ${result.healthzMs.p99} max ${result.healthzMs.max} ms (quiet p99 ${result.quietHealthzMs.p99}); handshake p50 ${result.handshakeMs.p50} p99 ${result.handshakeMs.p99} max ${result.handshakeMs.max} ms; ${training ? `training ${result.samplesPerSecond.during} vs ${result.samplesPerSecond.before} samples/s (ratio ${result.throughputRatio})` : 'no training'}${result.serverCpuDemand === null ? '' : `; server asked for the CPU ${result.serverCpuDemand.raises}×, training slept ${result.serverCpuDemand.yieldedMs} ms in ${result.serverCpuDemand.yields} yields`}`);
      if (training) say(`  target (issue 17 item 6: /healthz and handshake p99 < 100 ms, training ≥ 0.8 of before): ${burstMet(result) ? 'met' : 'missed'}`);
      burster.kid.send({ type: 'drop' } satisfies ToBurst);
      await burster.next('dropped');
      while (server.stats.clients > 0) await sleep(50);
    }
    burster.kid.send({ type: 'exit' } satisfies ToBurst);
    prober.kid.kill();
    await new Promise((r) => burster.kid.once('exit', r));
  }

  const clientsProcess = forkSelf<FromChild>(import.meta.url, ['--child', server.wsUrl, server.url, String(clients)]);
  const { kid } = clientsProcess;
  const nextMessage = <T extends FromChild['type']>(type: T) => clientsProcess.next(type);
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
    server: mode,
    burstClient,
    bursts: burstResults,
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

/** What `repeated` reads of a run's `--json` report. */
interface RunReport {
  readonly bursts: readonly {
    readonly connections: number;
    readonly training: boolean;
    readonly serverThreadCpuMs: number | null;
    readonly healthzMs: { readonly p99: number };
    readonly handshakeMs: { readonly p99: number };
    readonly throughputRatio: number | null;
    readonly latenciesMs: { readonly healthz: readonly number[]; readonly handshake: readonly number[] };
  }[];
}

/**
 * `--repeat K`: this benchmark K times, each in a fresh process (a first burst meets a
 * server that has just started, as after a restart: the dearest burst), then the bursts
 * of every run pooled: per size, how many met issue 17 item 6's target, the first bursts
 * apart, and the p99 of all their probes together.
 */
function repeated(k: number, args: readonly string[]): void {
  const reports: RunReport[] = [];
  for (let i = 0; i < k; i++) {
    const run = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), ...args, '--json'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 << 20 });
    if (run.status !== 0) throw new Error(`run ${i + 1} of ${k} exited with ${run.status ?? run.signal}`);
    const report = JSON.parse(run.stdout) as RunReport;
    reports.push(report);
    process.stderr.write(`run ${i + 1}: ${report.bursts.filter((b) => b.training).map((b) => `${b.connections}: /healthz ${b.healthzMs.p99}, handshake ${b.handshakeMs.p99} ms, training ${b.throughputRatio}, ${b.serverThreadCpuMs === null ? '?' : Math.round(b.serverThreadCpuMs * 1000 / b.connections)} µs a connection${burstMet(b) ? '' : ' (missed)'}`).join(' · ')}\n`);
  }
  for (const n of new Set(reports.flatMap((r) => r.bursts.map((b) => b.connections)))) {
    const of = (r: RunReport) => r.bursts.filter((b) => b.training && b.connections === n);
    const all = reports.flatMap(of), first = reports.map((r) => of(r)[0]).filter((b) => b !== undefined);
    const ratios = all.map((b) => b.throughputRatio ?? 1).sort((a, b) => a - b);
    process.stderr.write(`bursts of ${n} while training, ${k} runs: target met in ${all.filter(burstMet).length} of ${all.length} (first bursts of a run: ${first.filter(burstMet).length} of ${first.length}); `
      + `p99 of all their probes: /healthz ${quantile(all.flatMap((b) => b.latenciesMs.healthz), 0.99).toFixed(1)} ms, handshake ${quantile(all.flatMap((b) => b.latenciesMs.handshake), 0.99).toFixed(1)} ms; `
      + `training ${ratios[0].toFixed(2)}–${ratios[ratios.length - 1].toFixed(2)} of its speed (median ${quantile(ratios, 0.5).toFixed(2)})\n`);
  }
}

const { values } = parseArgs({
  options: { child: { type: 'boolean' }, burst: { type: 'boolean' }, probe: { type: 'boolean' }, clients: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' }, bursts: { type: 'string' }, paused: { type: 'boolean' }, 'burst-client': { type: 'string' }, repeat: { type: 'string' }, 'warm-up': { type: 'string' }, server: { type: 'string' }, json: { type: 'boolean' } },
  allowPositionals: true,
  strict: true,
});
if (values.child === true) {
  const [url, origin, n] = process.argv.slice(process.argv.indexOf('--child') + 1);
  await child(url, origin, Number(n));
} else if (values.burst === true) {
  const [url, origin, client] = process.argv.slice(process.argv.indexOf('--burst') + 1);
  await burstChild(url, origin, client === 'node' ? 'node' : 'c');
} else if (values.probe === true) {
  const [url, origin] = process.argv.slice(process.argv.indexOf('--probe') + 1);
  await probeChild(url, origin);
} else {
  const clients = Number(values.clients ?? 500);
  const seconds = Number(values.seconds ?? 3);
  const rounds = Number(values.rounds ?? 3);
  const bursts = values.bursts === 'none' ? [] : (values.bursts ?? '100,500').split(',').map(Number);
  const mode = values.server ?? 'thread';
  const burstClient = values['burst-client'] ?? 'c';
  const warmUp = Number(values['warm-up'] ?? WARM_UP_HANDSHAKES);
  if (!Number.isSafeInteger(clients) || clients < 1 || !(seconds > 0 && seconds <= 10) || !Number.isSafeInteger(rounds) || rounds < 1 || rounds > 5
    || !bursts.every((n) => Number.isSafeInteger(n) && n >= 1 && n <= 5000) || !Number.isSafeInteger(warmUp) || warmUp < 0 || (mode !== 'thread' && mode !== 'inline') || (burstClient !== 'c' && burstClient !== 'node')
    || !(values.repeat === undefined || /^[1-9][0-9]?$/.test(values.repeat))) {
    process.stderr.write('usage: bench/server.ts [--clients N ≥ 1] [--seconds S in (0, 10]] [--rounds R in 1..5] [--bursts N,N…|none] [--paused] [--warm-up N ≥ 0] [--server thread|inline] [--burst-client c|node] [--repeat K in 1..99] [--json]\n');
    process.exit(2);
  }
  const repeat = Number(values.repeat ?? 1);
  if (repeat > 1) repeated(repeat, process.argv.slice(2).filter((a, i, all) => a !== '--repeat' && all[i - 1] !== '--repeat' && !a.startsWith('--repeat=')));
  else await parent(clients, seconds, rounds, bursts, values.paused === true, warmUp, mode, burstClient, values.json === true);
}

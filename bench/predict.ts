/**
 * Prediction-serving benchmark (npm run bench:predict, issue 12): does answering
 * predictions slow training, and how fast are the answers? One process trains W2
 * (16→64→64→4 relu, mse, Adam, batch 32) at full speed as a TrainingRun served as the
 * command line serves it, by `serveInThread()` (the server on a thread of its own,
 * predicting from the weights it mirrors); a W1-sized model (8→32→32→1) that does not
 * train is served beside it, for bulk requests. Loopback only:
 *
 * - a child process sends single-sample `POST /predict` requests to the training W2
 *   run, open-loop at `--rate` per second (default 1000) over keep-alive connections,
 *   with at most 64 in flight (a request due while 64 wait is skipped and counted):
 *   latency p50/p99/max, measured by the client from send to the whole answer;
 * - another child sends bulk NDJSON batches (`--batch` lines, default 20 000) to the W1
 *   model, one after the other: predictions per second;
 * - training throughput (samples/s) in `--rounds` rounds (default 3) of three windows
 *   of `--seconds` each: no requests, the single-sample client alone, both clients. The
 *   windows alternate so that a machine whose speed drifts (other processes) affects each
 *   kind alike; the ratios are the mean with requests over the mean without (target ≥ 0.8,
 *   as for 500 dashboard clients in bench:server). Latency and bulk rate are over every
 *   window where their client sends.
 *
 * The training thread sleeps between its slices while the server thread waits for a core
 * (pipeline/cpu-share.ts; `STREAMGRAD_CPU_SHARE=0` turns that off, to compare): how often,
 * and for how long in all, is reported.
 *
 * Where a slow single-sample answer spends its time: `git apply bench/predict-tail.patch`
 * (a measuring aid, not for committing: the server thread stamps each answer with the wall
 * time of its request event, of its answer, and its thread's CPU and run-queue time from
 * /proc/thread-self/schedstat), then `SG_INSTRUMENT=1 npm run bench:predict`: the single
 * client splits its slowest 1% into client → written → server request event → answered →
 * received, and tells how the server thread spent the wait (on a CPU, runnable waiting for
 * a core, asleep). `git apply -R bench/predict-tail.patch` removes it.
 *
 * Benchmarks report; they are not timed tests. On a machine that other processes load,
 * the ratios and latencies carry that load (each window's CPU share is reported).
 *
 * Usage: npm run bench:predict [-- --seconds S --rounds R --rate R --batch N --json]
 */
import type { ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import { TrainingRun } from '../pipeline/run.ts';
import { serveInThread } from '../server/threaded-server.ts';
import { DEFAULT_TRAINING_NICE, lowerTrainingPriority, trainingNiceFromEnv } from '../server/training-priority.ts';
import { forkSelf, mean, quantile, sleep, throughputMeter, w2Run } from './harness.ts';
import { createWorkloadTrainer, makeData, WORKLOADS } from './workloads.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    rate: { type: 'string', default: '1000' },
    batch: { type: 'string', default: '20000' },
    json: { type: 'boolean', default: false },
    single: { type: 'string' },
    bulk: { type: 'string' },
  },
});

const round = (v: number, digits = 2) => Number(v.toFixed(digits));

/** `go` and `pause` toggle a child's sending; `stop` ends it with its report. */
type ToChild = { readonly type: 'go' } | { readonly type: 'pause' } | { readonly type: 'stop' } | { readonly type: 'bulk-on' | 'bulk-off' };

/** The parent's switch of a child: sending or not, and whether to end. */
function controlled(): { sending: () => boolean; stopped: () => boolean; bulk: () => boolean; started: Promise<void> } {
  let sending = false, stopped = false, bulk = false, start: () => void = () => undefined;
  const started = new Promise<void>((resolve) => { start = resolve; });
  process.on('message', (m: ToChild) => {
    if (m.type === 'go') { sending = true; start(); }
    if (m.type === 'pause') sending = false;
    if (m.type === 'stop') stopped = true;
    // the single-sample client files each latency under whether bulk batches were being sent
    if (m.type === 'bulk-on') bulk = true;
    if (m.type === 'bulk-off') bulk = false;
  });
  return { sending: () => sending, stopped: () => stopped, bulk: () => bulk, started };
}
/**
 * Sends a child's report to the parent and resolves once it is written: `process.send` is
 * asynchronous, and the `process.exit` that follows would otherwise cut a large report
 * (tens of thousands of latencies) off the pipe, leaving the parent waiting for ever.
 */
function report(message: SingleReport | BulkReport): Promise<void> {
  return new Promise((resolve, reject) => { process.send!(message, undefined, {}, (error) => (error ? reject(error) : resolve())); });
}
interface SingleReport { readonly type: 'single'; readonly latencies: number[]; readonly alone: number[]; readonly withBulk: number[]; readonly sent: number; readonly skipped: number; readonly failed: number; readonly seconds: number }
interface BulkReport { readonly type: 'bulk'; readonly predictions: number; readonly batches: number; readonly failed: number; readonly seconds: number }
/** What a child sends: that it is ready, then its report. */
type FromChild = { readonly type: 'ready' } | SingleReport | BulkReport;

/** POSTs `body` and resolves with the answer's status and text. */
function post(agent: Agent, url: URL, body: Buffer, type: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, method: 'POST', headers: { 'Content-Type': type, 'Content-Length': body.length } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    // an answer that never comes (a keep-alive socket lost on a loaded machine) fails instead of holding the bench
    req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')));
    req.end(body);
  });
}

/** Child: single-sample requests, open-loop at `rate`/s, at most 64 in flight. */
async function singleClient(target: string, rate: number): Promise<void> {
  const url = new URL(target);
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  const pool = makeData('w2', 1024);
  const n = WORKLOADS.w2.sizes[0];
  const bodies = Array.from({ length: 1024 }, (_, i) => Buffer.from(JSON.stringify(Array.from(pool.X.subarray(i * n, (i + 1) * n)))));
  // warm the connections up
  for (let i = 0; i < 200; i++) await post(agent, url, bodies[i], 'application/json');
  const control = controlled();
  process.send!({ type: 'ready' });
  await control.started;
  const alone: number[] = [], withBulk: number[] = [];
  let sent = 0, skipped = 0, failed = 0, inFlight = 0, active = 0, due = 0;
  let last = performance.now();
  while (!control.stopped()) {
    const now = performance.now();
    if (control.sending()) {
      active += now - last;
      due = Math.floor((active * rate) / 1000);
    }
    last = now;
    while (sent + skipped < due) {
      if (inFlight >= 64) {
        skipped++;
        continue;
      }
      const body = bodies[(sent + skipped) % bodies.length];
      sent++;
      inFlight++;
      const start = performance.now();
      const into = control.bulk() ? withBulk : alone;
      post(agent, url, body, 'application/json').then((r) => {
        if (r.status === 200) into.push(performance.now() - start);
        else failed++;
      }, () => { failed++; }).finally(() => { inFlight--; });
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  const seconds = active / 1000;
  while (inFlight > 0) await sleep(5);
  agent.destroy();
  await report({ type: 'single', latencies: [...alone, ...withBulk], alone, withBulk, sent, skipped, failed, seconds } satisfies SingleReport);
}

/** Child: bulk NDJSON batches of `batch` W1 samples, one after the other. */
async function bulkClient(target: string, batch: number): Promise<void> {
  const url = new URL(target);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const pool = makeData('w1', 4096);
  const n = WORKLOADS.w1.sizes[0];
  const lines = Array.from({ length: batch }, (_, i) => JSON.stringify(Array.from(pool.X.subarray((i % 4096) * n, ((i % 4096) + 1) * n))));
  const body = Buffer.from(`${lines.join('\n')}\n`);
  await post(agent, url, body, 'application/x-ndjson');
  const control = controlled();
  process.send!({ type: 'ready' });
  await control.started;
  let predictions = 0, batches = 0, failed = 0, active = 0;
  while (!control.stopped()) {
    if (!control.sending()) {
      await sleep(5);
      continue;
    }
    const t0 = performance.now();
    // a keep-alive socket the server closed while this client paused resets: count it, go on
    const r = await post(agent, url, body, 'application/x-ndjson').catch(() => ({ status: 0, text: '' }));
    active += performance.now() - t0;
    const answered = Math.max(0, r.text.split('\n').length - 2); // the version line, and the empty string after the last newline
    if (r.status !== 200 || r.text.includes('"error"')) failed++;
    predictions += answered;
    batches++;
  }
  const seconds = active / 1000;
  agent.destroy();
  await report({ type: 'bulk', predictions, batches, failed, seconds } satisfies BulkReport);
}

async function parent(): Promise<void> {
  const seconds = Number(args.seconds), rounds = Number(args.rounds), rate = Number(args.rate), batch = Number(args.batch);
  const say = (line: string) => { if (!args.json) process.stderr.write(`${line}\n`); };
  const { w, trainer, run } = w2Run();
  // a W1-sized model that does not train: the bulk requests' target
  const w1 = new TrainingRun({ id: 'w1', trainer: createWorkloadTrainer(WORKLOADS.w1), source: [], paused: true });
  // the clients are forked at normal priority, as the callers of a real server are; the
  // training thread then takes the nice value the command line gives it (serveInThread's)
  const server = await serveInThread({ port: 0, trainingNice: null });
  server.addRun(run);
  server.addRun(w1);
  void run.start();

  const { throughput, lastShare: share, cpuShare } = throughputMeter(trainer);
  say(`W2 ${w.sizes.join('→')} batch ${w.batch} training, served from the server thread; single-sample requests at ${rate}/s to it; bulk NDJSON batches of ${batch} to a W1-sized model (${WORKLOADS.w1.sizes.join('→')})`);
  const single = forkSelf<FromChild>(import.meta.url, ['--single', `${server.url}/predict?model=w2`, '--rate', String(rate)]);
  const bulk = forkSelf<FromChild>(import.meta.url, ['--bulk', `${server.url}/predict?model=w1`, '--batch', String(batch)]);
  await Promise.all([single.next('ready'), bulk.next('ready')]);
  const nice = trainingNiceFromEnv(DEFAULT_TRAINING_NICE);
  if (nice > 0) lowerTrainingPriority(nice);
  say(`training thread at nice ${nice} (STREAMGRAD_TRAINING_NICE), the clients at their own`);
  await throughput(1.5); // warm-up
  const none: number[] = [], singleOnly: number[] = [], both: number[] = [];
  const send = (kid: ChildProcess, type: ToChild['type']) => {
    if (kid.connected) kid.send({ type } satisfies ToChild);
  };
  for (let r = 0; r < rounds; r++) {
    none.push(await throughput(seconds));
    const quiet = share();
    send(single.kid, 'go');
    singleOnly.push(await throughput(seconds));
    const one = share();
    send(bulk.kid, 'go');
    send(single.kid, 'bulk-on');
    both.push(await throughput(seconds));
    send(single.kid, 'pause');
    send(bulk.kid, 'pause');
    send(single.kid, 'bulk-off');
    say(`round ${r + 1}: no requests ${none[r].toFixed(0)} samples/s (${quiet}); single-sample ${singleOnly[r].toFixed(0)} (${one}); single + bulk ${both[r].toFixed(0)} (${share()})`);
    await sleep(300);
  }
  send(single.kid, 'stop');
  send(bulk.kid, 'stop');
  say('collecting the clients\' reports');
  const s = await single.next('single');
  say('single-sample report in');
  const b = await bulk.next('bulk');
  say('bulk report in');
  const metrics = await (await fetch(`${server.url}/metrics`)).text();

  const baseline = mean(none);
  const latencyOf = (v: readonly number[]) => ({ p50: round(quantile(v, 0.5), 3), p99: round(quantile(v, 0.99), 3), max: round(v.reduce((a, x) => Math.max(a, x), 0), 3), n: v.length });
  const result = {
    workload: 'w2',
    seconds,
    rounds,
    samplesPerSecond: { noRequests: none.map(Math.round), singleOnly: singleOnly.map(Math.round), singleAndBulk: both.map(Math.round) },
    ratio: { singleOnly: round(mean(singleOnly) / baseline, 3), singleAndBulk: round(mean(both) / baseline, 3) },
    single: {
      requested: rate,
      achievedPerSecond: round(s.latencies.length / s.seconds, 1),
      sent: s.sent, skipped: s.skipped, failed: s.failed,
      latencyMs: latencyOf(s.latencies),
      alone: latencyOf(s.alone),
      withBulk: latencyOf(s.withBulk),
    },
    bulk: { model: 'w1', batch, batches: b.batches, failed: b.failed, predictionsPerSecond: Math.round(b.predictions / b.seconds) },
    cpuShare: cpuShare.map((c) => round(c)),
    /** The server thread's demands for the CPU over the whole bench, and the training thread's sleeps for it (pipeline/cpu-share.ts; `STREAMGRAD_CPU_SHARE=0`: none). */
    serverCpuDemand: { ...server.cpu, yieldedMs: Math.round(server.cpu.yieldedMs) },
    serverRequestsCounted: Number(/^streamgrad_predict_requests_total\{model="w2",version="\d+"\} (\d+)/m.exec(metrics)?.[1] ?? 0) > 0,
  };
  if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    say(`throughput ratio vs no requests: single ${result.ratio.singleOnly}, single + bulk ${result.ratio.singleAndBulk} [target ≥ 0.8]`);
    say(`single-sample latency: p50 ${result.single.latencyMs.p50} ms, p99 ${result.single.latencyMs.p99} ms, max ${result.single.latencyMs.max} ms at ${result.single.achievedPerSecond}/s (${s.skipped} skipped at 64 in flight, ${s.failed} failed) [target p99 < 5 ms]`);
    say(`  alone (no bulk batches meanwhile): p50 ${result.single.alone.p50} ms, p99 ${result.single.alone.p99} ms, max ${result.single.alone.max} ms over ${result.single.alone.n}; beside bulk batches: p50 ${result.single.withBulk.p50} ms, p99 ${result.single.withBulk.p99} ms, max ${result.single.withBulk.max} ms over ${result.single.withBulk.n}`);
    say(`server thread asked for the CPU ${result.serverCpuDemand.raises}×; training slept ${result.serverCpuDemand.yieldedMs} ms in ${result.serverCpuDemand.yields} yields`);
    say(`bulk: ${result.bulk.predictionsPerSecond} predictions/s (W1, ${b.batches} batches of ${batch}, ${b.failed} failed) [target ≥ 200k/s]`);
  }
  run.dispose();
  w1.dispose();
  await server.close();
}

if (args.single !== undefined) await singleClient(args.single, Number(args.rate));
else if (args.bulk !== undefined) await bulkClient(args.bulk, Number(args.batch));
else await parent();
process.exit(0);

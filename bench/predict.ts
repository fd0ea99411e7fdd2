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
 *   model, one after the other: predictions per second. With `--bulk-rate R` it sends at
 *   most R predictions a second (a batch waits for its turn on that schedule), and how fast
 *   the server answers a batch is reported too (its lines over its own send-to-end time).
 *
 * "A bounded client" (the issue's words): neither client can flood the server. The single
 * client's rate is fixed and at most 64 of its requests wait at once; the bulk client is a
 * closed loop over one connection, one batch in flight, the next sent when the last answer
 * has ended, so it goes at the server's pace and never queues more than one batch. Both are
 * lean, as wrk is: the requests are built once (the single client writes prebuilt request
 * bytes to raw keep-alive sockets, bench/http-load.ts; the bulk body is one Buffer sent
 * again and again), and answers are counted in their bytes (newlines, `"error"`), one
 * answer in 100 (single) or 20 (bulk) parsed and checked whole. Each client measures its
 * own CPU while sending (process.cpuUsage) and reports it, in cores: what it takes from the
 * two cores the server thread and training share.
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
 * client splits its slowest 1% into written (the raw socket writes at once) → server request
 * event → answered → received, and tells how the server thread spent the wait (on a CPU,
 * runnable waiting for a core, asleep). `git apply -R bench/predict-tail.patch` removes it.
 *
 * Whether the server thread's garbage collector or its waiting for a core holds it:
 * `git apply bench/server-thread-gc.patch` (also a measuring aid), then `SG_STALLS=1 npm run
 * bench:predict`: every 4 s the server thread prints its event-loop gaps over 3 ms, how many
 * held a GC, and its time on a CPU and runnable over them (/proc/thread-self/schedstat), with
 * its GCs by kind; `SG_HEAPPROF=file.json` writes a sampling heap profile of what survived the
 * scavenger (docs/serving.md, session 8).
 *
 * Benchmarks report; they are not timed tests. On a machine that other processes load,
 * the ratios and latencies carry that load (each window's CPU share is reported).
 *
 * Usage: npm run bench:predict [-- --seconds S --rounds R --rate R --batch N --bulk-rate R --json]
 */
import type { ChildProcess } from 'node:child_process';
import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import { KeepAlivePool, prebuiltPost, type RawAnswer } from './http-load.ts';
import { TrainingRun } from '../pipeline/run.ts';
import { serveInThread } from '../server/threaded-server.ts';
import { DEFAULT_TRAINING_NICE, describePriority, trainBehindServer, trainingIdleFromEnv, trainingNiceFromEnv } from '../server/training-priority.ts';
import { forkSelf, mean, quantile, sleep, throughputMeter, w2Run } from './harness.ts';
import { createWorkloadTrainer, makeData, WORKLOADS } from './workloads.ts';

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    rate: { type: 'string', default: '1000' },
    batch: { type: 'string', default: '20000' },
    'bulk-rate': { type: 'string', default: '0' },
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
interface SingleReport { readonly type: 'single'; readonly latencies: number[]; readonly alone: number[]; readonly withBulk: number[]; readonly sent: number; readonly skipped: number; readonly failed: number; readonly failures: Record<string, number>; readonly verified: number; readonly seconds: number; readonly cpuMs: number }
interface BulkReport { readonly type: 'bulk'; readonly predictions: number; readonly batches: number; readonly failed: number; readonly verified: number; readonly seconds: number; readonly cpuMs: number; readonly answering: number }
/** What a child sends: that it is ready, then its report. */
type FromChild = { readonly type: 'ready' } | SingleReport | BulkReport;

/** An answer as the clients see it: its status, its newline count, whether `"error"` is in it, and its text when asked for. */
interface Answer { readonly status: number; readonly lines: number; readonly error: boolean; readonly text: string | null }

const ERROR_MARK = Buffer.from('"error"');

/**
 * POSTs `body` and resolves with the answer: its lines are counted and `"error"` looked
 * for in the bytes as they come (no decoding, no parsing: a load generator's work, so that
 * the clients take as little of the cores the server and training share as they can); the
 * text is kept only when `keep` (the answers the client verifies).
 */
function post(agent: Agent, url: URL, body: Buffer, type: string, keep = false): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: url.hostname, port: url.port, path: `${url.pathname}${url.search}`, method: 'POST', headers: { 'Content-Type': type, 'Content-Length': body.length } }, (res) => {
      const chunks: Buffer[] = [];
      let lines = 0, error = false;
      let tail: Buffer = Buffer.alloc(0);
      res.on('data', (c: Buffer) => {
        if (keep) chunks.push(c);
        for (let i = c.indexOf(10); i !== -1; i = c.indexOf(10, i + 1)) lines++;
        // `"error"` may straddle two chunks: look at the seam too
        if (!error) error = c.includes(ERROR_MARK) || Buffer.concat([tail, c.subarray(0, ERROR_MARK.length - 1)]).includes(ERROR_MARK);
        tail = c.subarray(Math.max(0, c.length - (ERROR_MARK.length - 1)));
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, lines, error, text: keep ? Buffer.concat(chunks).toString('utf8') : null }));
      res.on('error', reject);
    });
    req.on('error', reject);
    // an answer that never comes (a keep-alive socket lost on a loaded machine) fails instead of holding the bench
    req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')));
    req.end(body);
  });
}

/** Throws unless `text` is a single-sample answer of W2 (4 finite outputs, the version's meta). */
function verifySingle(text: string): void {
  const a = JSON.parse(text) as { version?: unknown; prediction?: { y?: unknown } };
  const y = a.prediction?.y;
  if (typeof a.version !== 'number' || !Array.isArray(y) || y.length !== 4 || !y.every(Number.isFinite)) throw new Error(`single: a bad answer ${text.slice(0, 200)}`);
}

/** Throws unless `text` is a bulk answer of `batch` W1 predictions (a version line, then one finite output per line). */
function verifyBulk(text: string, batch: number): void {
  const lines = text.split('\n');
  const head = JSON.parse(lines[0]) as { version?: unknown };
  if (typeof head.version !== 'number' || lines.length !== batch + 2 || lines[batch + 1] !== '') throw new Error(`bulk: a bad answer (${lines.length} lines) ${text.slice(0, 200)}`);
  for (let i = 1; i <= batch; i++) {
    const y = (JSON.parse(lines[i]) as { y?: unknown }).y;
    if (!Array.isArray(y) || y.length !== 1 || !Number.isFinite(y[0])) throw new Error(`bulk: line ${i} is ${lines[i].slice(0, 200)}`);
  }
}

/** Every how many answers a client parses and checks one whole (the others are counted only). */
const VERIFY_EVERY = { single: 100, bulk: 20 };

/** CPU ms (user + system) this process used since `from`. */
const cpuMs = (from: NodeJS.CpuUsage) => {
  const c = process.cpuUsage(from);
  return (c.user + c.system) / 1000;
};

/**
 * Child: single-sample requests, open-loop at `rate`/s, at most 64 in flight, over a pool
 * of keep-alive connections written to and read from as bytes (bench/http-load.ts).
 */
async function singleClient(target: string, rate: number): Promise<void> {
  const url = new URL(target);
  const pool = new KeepAlivePool(url.hostname, Number(url.port), 64);
  const data = makeData('w2', 1024);
  const n = WORKLOADS.w2.sizes[0];
  const requests = Array.from({ length: 1024 }, (_, i) => prebuiltPost(`${url.pathname}${url.search}`, 'application/json', Buffer.from(JSON.stringify(Array.from(data.X.subarray(i * n, (i + 1) * n))))));
  const check = (a: RawAnswer) => {
    if (a.status !== 200) throw new Error(`single: status ${a.status}: ${a.body.toString('utf8', 0, 200)}`);
    verifySingle(a.body.toString('utf8'));
  };
  // warm the connections up
  for (let i = 0; i < 200; i++) check(await pool.send(requests[i]));
  const control = controlled();
  process.send!({ type: 'ready' });
  await control.started;
  const alone: number[] = [], withBulk: number[] = [];
  let sent = 0, skipped = 0, failed = 0, inFlight = 0, active = 0, due = 0, cpu = 0, verified = 0;
  // why each failed: its status, its error's code, `lost` (the connection) or `unanswered`
  const failures: Record<string, number> = {};
  const fail = (why: string) => { failed++; failures[why] = (failures[why] ?? 0) + 1; };
  let last = performance.now(), cpuFrom = process.cpuUsage();
  while (!control.stopped()) {
    const now = performance.now();
    if (control.sending()) {
      active += now - last;
      due = Math.floor((active * rate) / 1000);
      cpu += cpuMs(cpuFrom);
    }
    cpuFrom = process.cpuUsage();
    last = now;
    while (sent + skipped < due) {
      if (inFlight >= 64) {
        skipped++;
        continue;
      }
      const request = requests[(sent + skipped) % requests.length];
      const keep = sent % VERIFY_EVERY.single === 0;
      sent++;
      inFlight++;
      const start = performance.now();
      const into = control.bulk() ? withBulk : alone;
      pool.send(request).then((r) => {
        if (r.status !== 200 || r.body.includes(ERROR_MARK)) return fail(r.status !== 200 ? String(r.status) : /"code":"(\w+)"/.exec(r.body.toString('latin1'))?.[1] ?? 'error');
        into.push(performance.now() - start);
        if (keep) {
          check(r);
          verified++;
        }
      }, () => fail('lost')).finally(() => { inFlight--; });
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  const seconds = active / 1000;
  // answers that never come (a connection lost on a loaded machine) are failures after 30 s
  for (const deadline = performance.now() + 30_000; inFlight > 0 && performance.now() < deadline;) await sleep(5);
  for (let i = 0; i < inFlight; i++) fail('unanswered');
  pool.close();
  await report({ type: 'single', latencies: [...alone, ...withBulk], alone, withBulk, sent, skipped, failed, failures, verified, seconds, cpuMs: cpu } satisfies SingleReport);
}

/**
 * Child: bulk NDJSON batches of `batch` W1 samples (one body, built once and sent again
 * and again), one after the other over one connection: closed loop, so at most one batch
 * is in flight and the client is bounded by the server's own pace; with `rate` > 0 also by
 * that many predictions a second (a batch is sent no sooner than its slot on that
 * schedule, counted from when sending started or resumed).
 */
async function bulkClient(target: string, batch: number, rate: number): Promise<void> {
  const url = new URL(target);
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const pool = makeData('w1', 4096);
  const n = WORKLOADS.w1.sizes[0];
  const lines = Array.from({ length: batch }, (_, i) => JSON.stringify(Array.from(pool.X.subarray((i % 4096) * n, ((i % 4096) + 1) * n))));
  const body = Buffer.from(`${lines.join('\n')}\n`);
  verifyBulk((await post(agent, url, body, 'application/x-ndjson', true)).text!, batch);
  const control = controlled();
  process.send!({ type: 'ready' });
  await control.started;
  let predictions = 0, batches = 0, failed = 0, active = 0, cpu = 0, verified = 0, answering = 0;
  // the rate's schedule: when sending (re)started, and the batches sent since
  let since = -1, sinceBatches = 0;
  while (!control.stopped()) {
    if (!control.sending()) {
      since = -1;
      await sleep(5);
      continue;
    }
    if (rate > 0) {
      if (since < 0) { since = performance.now(); sinceBatches = 0; }
      const due = since + (sinceBatches * batch / rate) * 1000;
      sinceBatches++;
      if (due > performance.now()) {
        const wait = due - performance.now();
        await sleep(wait);
        active += wait;
        if (!control.sending() || control.stopped()) continue;
      }
    }
    const t0 = performance.now(), c0 = process.cpuUsage();
    const keep = batches % VERIFY_EVERY.bulk === 0;
    // a keep-alive socket the server closed while this client paused resets: count it, go on
    const r = await post(agent, url, body, 'application/x-ndjson', keep).catch((): Answer => ({ status: 0, lines: 0, error: true, text: null }));
    active += performance.now() - t0;
    answering += performance.now() - t0;
    cpu += cpuMs(c0);
    if (r.status !== 200 || r.error) failed++;
    else if (r.text !== null) {
      verifyBulk(r.text, batch);
      verified++;
    }
    predictions += Math.max(0, r.lines - 1); // the version line
    batches++;
  }
  const seconds = active / 1000;
  agent.destroy();
  await report({ type: 'bulk', predictions, batches, failed, verified, seconds, cpuMs: cpu, answering: answering / 1000 } satisfies BulkReport);
}

async function parent(): Promise<void> {
  const seconds = Number(args.seconds), rounds = Number(args.rounds), rate = Number(args.rate), batch = Number(args.batch), bulkRate = Number(args['bulk-rate']);
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
  say(`W2 ${w.sizes.join('→')} batch ${w.batch} training, served from the server thread; single-sample requests at ${rate}/s to it; bulk NDJSON batches of ${batch} to a W1-sized model (${WORKLOADS.w1.sizes.join('→')}), ${bulkRate > 0 ? `at most ${bulkRate} predictions/s` : 'one after the other (closed loop)'}`);
  const single = forkSelf<FromChild>(import.meta.url, ['--single', `${server.url}/predict?model=w2`, '--rate', String(rate)]);
  const bulk = forkSelf<FromChild>(import.meta.url, ['--bulk', `${server.url}/predict?model=w1`, '--batch', String(batch), '--bulk-rate', String(bulkRate)]);
  await Promise.all([single.next('ready'), bulk.next('ready')]);
  const nice = trainingNiceFromEnv(DEFAULT_TRAINING_NICE);
  const priority = trainBehindServer(nice, trainingIdleFromEnv());
  say(`training thread ${describePriority(priority)}, the clients at their own`);
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
      sent: s.sent, skipped: s.skipped, failed: s.failed, failures: s.failures, verified: s.verified,
      /** The client's CPU while sending, in cores (its own process). */
      clientCpu: round(s.cpuMs / 1000 / s.seconds, 3),
      latencyMs: latencyOf(s.latencies),
      alone: latencyOf(s.alone),
      withBulk: latencyOf(s.withBulk),
    },
    bulk: {
      model: 'w1', batch, batches: b.batches, failed: b.failed, verified: b.verified,
      /** Offered: predictions a second the client was held to (0: closed loop, as fast as answered). */
      rateBound: bulkRate,
      predictionsPerSecond: Math.round(b.predictions / b.seconds),
      /** How fast a batch is answered: its predictions over its own send-to-end time. */
      answeredPerSecond: Math.round(b.predictions / b.answering),
      clientCpu: round(b.cpuMs / 1000 / b.seconds, 3),
    },
    cpuShare: cpuShare.map((c) => round(c)),
    /** The server thread's demands for the CPU over the whole bench, and the training thread's sleeps for it (pipeline/cpu-share.ts; `STREAMGRAD_CPU_SHARE=0`: none). */
    serverCpuDemand: { ...server.cpu, yieldedMs: Math.round(server.cpu.yieldedMs) },
    serverRequestsCounted: Number(/^streamgrad_predict_requests_total\{model="w2",version="\d+"\} (\d+)/m.exec(metrics)?.[1] ?? 0) > 0,
  };
  if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    say(`throughput ratio vs no requests: single ${result.ratio.singleOnly}, single + bulk ${result.ratio.singleAndBulk} [target ≥ 0.8]`);
    say(`single-sample latency: p50 ${result.single.latencyMs.p50} ms, p99 ${result.single.latencyMs.p99} ms, max ${result.single.latencyMs.max} ms at ${result.single.achievedPerSecond}/s (${s.skipped} skipped at 64 in flight, ${s.failed} failed${s.failed > 0 ? `: ${Object.entries(s.failures).map(([why, n]) => `${n}× ${why}`).join(', ')}` : ''}) [target p99 < 5 ms]`);
    say(`  alone (no bulk batches meanwhile): p50 ${result.single.alone.p50} ms, p99 ${result.single.alone.p99} ms, max ${result.single.alone.max} ms over ${result.single.alone.n}; beside bulk batches: p50 ${result.single.withBulk.p50} ms, p99 ${result.single.withBulk.p99} ms, max ${result.single.withBulk.max} ms over ${result.single.withBulk.n}`);
    say(`server thread asked for the CPU ${result.serverCpuDemand.raises}×; training slept ${result.serverCpuDemand.yieldedMs} ms in ${result.serverCpuDemand.yields} yields`);
    say(`bulk: ${result.bulk.predictionsPerSecond} predictions/s${bulkRate > 0 ? ` (held to at most ${bulkRate}/s; each batch answered at ${result.bulk.answeredPerSecond}/s)` : ''} (W1, ${b.batches} batches of ${batch}, ${b.failed} failed) [target ≥ 200k/s]`);
    say(`clients' own CPU while sending: single ${result.single.clientCpu} cores (${s.verified} answers parsed and checked), bulk ${result.bulk.clientCpu} cores (${b.verified} batches parsed and checked)`);
  }
  run.dispose();
  w1.dispose();
  await server.close();
}

if (args.single !== undefined) await singleClient(args.single, Number(args.rate));
else if (args.bulk !== undefined) await bulkClient(args.bulk, Number(args.batch), Number(args['bulk-rate']));
else await parent();
process.exit(0);

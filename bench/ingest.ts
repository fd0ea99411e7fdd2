/**
 * Ingestion benchmark (npm run bench:ingest), loopback and temp files only, in well
 * under three minutes:
 *
 * 1. CSV: a 1,000,000-row file (8 feature columns, 1 target, 1 unused id column) is
 *    written to a temp dir, then a child process trains W1 (8→32→32→1 relu, mse, SGD,
 *    batch 1) on it through the whole ingestion path: CSV reader → FeatureMap →
 *    validateRecords (dead letters) → normalize → train, driven by a TrainingRun that
 *    pulls one record at a time. Reported: rows/s, and the child's peak RSS
 *    (`process.resourceUsage().maxRSS`), which must stay under 200 MB: the file is never
 *    held in memory. RSS is also sampled along the way to show it is flat.
 * 2. MQTT end to end: a private Mosquitto broker, a publisher child process, and a
 *    TrainingRun on an `MqttSource` (QoS 1, `block` queue) training W1. (a) Throughput:
 *    N messages published as fast as the broker takes them; samples/s from the first
 *    message received to the last one trained. (b) Latency at a fixed rate: from the
 *    publisher's clock when it sent a message to the end of the training step on it
 *    (same machine, `performance.timeOrigin + now()`), p50/p99.
 *
 * Usage: npm run bench:ingest [-- --rows N --mqtt-messages N --rate R --seconds S --json]
 */
import { fork } from 'node:child_process';
import { createWriteStream, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connectAsync } from 'mqtt';
import { pipe, tap } from 'rxjs';
import { MemoryDeadLetters } from '../core/dead-letter.ts';
import { FeatureMap } from '../core/features.ts';
import { ingest } from '../pipeline/ingest.ts';
import { Normalizer } from '../core/normalizer.ts';
import { createIngestCounters, type IngestRecord } from '../core/record.ts';
import { TrainingRun } from '../pipeline/run.ts';
import { csvRecords } from '../sources/csv.ts';
import { MqttSource } from '../sources/mqtt.ts';
import { findMosquitto, startMosquitto } from '../test/helpers/mosquitto.ts';
import { createWorkloadTrainer, WORKLOADS } from './workloads.ts';

const SELF = fileURLToPath(import.meta.url);
const FEATURES = ['f0', 'f1', 'f2', 'f3', 'f4', 'f5', 'f6', 'f7'];
const now = () => performance.timeOrigin + performance.now();
const mb = (kb: number) => Math.round(kb / 1024);

/** A fresh W1 trainer with the ingestion stages of a CSV or JSON named-record source. */
function w1Pipeline() {
  const trainer = createWorkloadTrainer(WORKLOADS.w1);
  const features = new FeatureMap({ features: FEATURES, targets: ['y'] });
  const normalizer = new Normalizer({ inputs: 8, outputs: 1, target: true });
  const counters = createIngestCounters();
  const deadLetters = new MemoryDeadLetters();
  return { trainer, counters, deadLetters, stages: ingest({ trainer, features, normalizer, counters, deadLetters }) };
}

// ---------------------------------------------------------------------------------------
// children

interface CsvReport {
  readonly rows: number;
  readonly trained: number;
  readonly rejected: number;
  readonly seconds: number;
  readonly maxRssKb: number;
  /** RSS (KB) once everything is loaded, before the first row. */
  readonly startRssKb: number;
  /** RSS (KB) at 10%, 25%, 50%, 75%, 100% of the rows. */
  readonly rssAlong: number[];
  readonly loss: number;
}

async function csvChild(path: string, rows: number): Promise<CsvReport> {
  const { trainer, counters, stages } = w1Pipeline();
  const marks = [0.1, 0.25, 0.5, 0.75].map((f) => Math.floor(rows * f));
  const rssAlong: number[] = [];
  const run = new TrainingRun({
    id: 'csv', trainer, source: csvRecords(path),
    prepare: pipe(stages, tap(() => {
      if (counters.accepted === marks[rssAlong.length]) rssAlong.push(Math.round(process.memoryUsage.rss() / 1024));
    })),
  });
  const startRssKb = Math.round(process.memoryUsage.rss() / 1024);
  const started = performance.now();
  await run.start();
  const seconds = (performance.now() - started) / 1000;
  rssAlong.push(Math.round(process.memoryUsage.rss() / 1024));
  return {
    startRssKb,
    rows: counters.read, trained: trainer.counters.samples, rejected: counters.rejected, seconds,
    maxRssKb: process.resourceUsage().maxRSS, rssAlong, loss: run.latest?.metrics.loss ?? NaN,
  };
}

/** Publishes `count` named W1 samples with their send time; `rate` per second, or as fast as QoS 1 allows (0). */
async function publisherChild(url: string, count: number, rate: number): Promise<{ seconds: number }> {
  const client = await connectAsync(url);
  const started = performance.now();
  let rng = 12345;
  const rand = () => ((rng = (Math.imul(rng, 1103515245) + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const message = () => {
    const row: Record<string, number> = {};
    let y = 0;
    FEATURES.forEach((f, i) => { const v = rand(); row[f] = v; y += (i % 2 === 0 ? 1 : -0.5) * v; });
    return JSON.stringify({ ...row, y: Math.sin(y), t: now() });
  };
  const window: Promise<unknown>[] = [];
  for (let i = 0; i < count; i++) {
    if (rate > 0) {
      const due = started + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    }
    window.push(client.publishAsync('bench/w1', message(), { qos: 1 }));
    if (window.length >= 2048) await Promise.all(window.splice(0));
  }
  await Promise.all(window);
  await client.endAsync();
  return { seconds: (performance.now() - started) / 1000 };
}

// ---------------------------------------------------------------------------------------
// the parent

async function writeCsv(path: string, rows: number): Promise<void> {
  const out = createWriteStream(path);
  const write = (text: string) => (out.write(text) ? Promise.resolve() : new Promise<void>((r) => out.once('drain', () => r())));
  await write(`id,${FEATURES.join(',')},y\n`);
  let rng = 987654321;
  const rand = () => ((rng = (Math.imul(rng, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
  let chunk: string[] = [];
  for (let r = 0; r < rows; r++) {
    const x = FEATURES.map(() => rand());
    const y = Math.sin(x[0] + x[1]) + 0.5 * x[2] * x[3] - x[4] + 0.1 * rand();
    chunk.push(`${r},${x.map((v) => v.toFixed(6)).join(',')},${y.toFixed(6)}`);
    if (chunk.length === 10_000) {
      await write(`${chunk.join('\n')}\n`);
      chunk = [];
    }
  }
  if (chunk.length > 0) await write(`${chunk.join('\n')}\n`);
  await new Promise<void>((resolve, reject) => out.end((error?: Error | null) => (error ? reject(error) : resolve())));
}

function runChild<T>(args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = fork(SELF, ['--child', ...args], { execArgv: ['--import', 'tsx/esm'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    child.once('message', (m) => resolve(m as T));
    child.once('exit', (code) => { if (code !== 0) reject(new Error(`child ${args[0]} exited with ${code}`)); });
    child.once('error', reject);
  });
}

const percentile = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

interface MqttReport {
  readonly messages: number;
  readonly trained: number;
  readonly samplesPerSecond: number;
  readonly latencyMs?: { readonly p50: number; readonly p99: number; readonly max: number };
  readonly publishSeconds: number;
}

async function mqttRound(url: string, topic: string, count: number, rate: number): Promise<MqttReport> {
  const { trainer, counters, stages } = w1Pipeline();
  const source = await MqttSource.connect({ url, topics: topic, qos: 1, queue: { capacity: 1024, policy: 'block' } });
  let firstAt = 0;
  const latencies: number[] = [];
  // the send time travels in the payload (an unknown key, ignored by the feature map): note it as each record is pulled
  const sentTimes: number[] = [];
  const timedSource: AsyncIterable<IngestRecord> = {
    [Symbol.asyncIterator]() {
      const inner = source[Symbol.asyncIterator]();
      return {
        next: async () => {
          const item = await inner.next();
          if (item.done !== true) {
            if (firstAt === 0) firstAt = performance.now();
            const t = (item.value.value as { t?: unknown } | undefined)?.t;
            sentTimes.push(typeof t === 'number' ? t : NaN);
          }
          return item;
        },
        return: async () => (await inner.return?.()) ?? { done: true as const, value: undefined },
      };
    },
  };
  const run = new TrainingRun({ id: 'mqtt', trainer, source: timedSource, prepare: stages });
  // batch 1: each step is the sample pulled last
  run.results.subscribe(() => {
    const sent = sentTimes.shift();
    if (sent !== undefined && Number.isFinite(sent)) latencies.push(now() - sent);
  });
  const done = run.start();
  const { seconds: publishSeconds } = await runChild<{ seconds: number }>(['publish', url, String(count), String(rate)]);
  const deadline = performance.now() + 60_000;
  while (counters.read < count && performance.now() < deadline) await new Promise((r) => setTimeout(r, 2));
  const trainedAt = performance.now();
  await source.close();
  await done;
  const sorted = latencies.sort((a, b) => a - b);
  return {
    messages: counters.read,
    trained: trainer.counters.samples,
    samplesPerSecond: trainer.counters.samples / ((trainedAt - firstAt) / 1000),
    ...(rate > 0 && { latencyMs: { p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] } }),
    publishSeconds,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      rows: { type: 'string', default: '1000000' },
      'mqtt-messages': { type: 'string', default: '50000' },
      rate: { type: 'string', default: '2000' },
      seconds: { type: 'string', default: '5' },
      json: { type: 'boolean', default: false },
      child: { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: false,
  });
  const positionals = process.argv.slice(process.argv.indexOf('--child') + 1);
  if (values.child === true) {
    const [kind, ...rest] = positionals;
    const report = kind === 'csv' ? await csvChild(rest[0], Number(rest[1])) : await publisherChild(rest[0], Number(rest[1]), Number(rest[2]));
    process.send!(report, () => process.exit(0));
    return;
  }
  const rows = Number(values.rows);
  const messages = Number(values['mqtt-messages']);
  const rate = Number(values.rate);
  const latencyCount = Math.round(rate * Number(values.seconds));
  const say = (line: string) => { if (values.json !== true) process.stdout.write(`${line}\n`); };

  const dir = mkdtempSync(join(tmpdir(), 'sg-bench-ingest-'));
  try {
    const path = join(dir, 'w1.csv');
    let t = performance.now();
    await writeCsv(path, rows);
    say(`wrote ${rows.toLocaleString('en')} rows (${Math.round(statSync(path).size / 1e6)} MB) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    t = performance.now();
    const csv = await runChild<CsvReport>(['csv', path, String(rows)]);
    say(`CSV → validate → normalize → train W1: ${csv.trained.toLocaleString('en')} rows in ${csv.seconds.toFixed(1)} s = ${Math.round(csv.trained / csv.seconds).toLocaleString('en')} rows/s; rolling loss ${csv.loss.toFixed(4)}`);
    say(`  peak RSS ${mb(csv.maxRssKb)} MB (limit 200 MB): ${csv.maxRssKb < 200 * 1024 ? 'ok' : 'OVER'}; RSS before the first row ${mb(csv.startRssKb)} MB, at 10/25/50/75/100%: ${csv.rssAlong.map(mb).join(' / ')} MB`);

    const binary = findMosquitto();
    let mqtt: { throughput: MqttReport; latency: MqttReport } | null = null;
    if (binary === null) say('MQTT: skipped (mosquitto is not installed)');
    else {
      const broker = await startMosquitto(binary);
      try {
        const throughput = await mqttRound(broker.url, 'bench/w1', messages, 0);
        say(`MQTT → train W1, QoS 1, as fast as possible: ${throughput.trained.toLocaleString('en')} of ${messages.toLocaleString('en')} trained, ${Math.round(throughput.samplesPerSecond).toLocaleString('en')} samples/s (publisher: ${Math.round(messages / throughput.publishSeconds).toLocaleString('en')} msg/s)`);
        const latency = await mqttRound(broker.url, 'bench/w1', latencyCount, rate);
        say(`MQTT publish → trained latency at ${rate} msg/s: p50 ${latency.latencyMs!.p50.toFixed(2)} ms, p99 ${latency.latencyMs!.p99.toFixed(2)} ms, max ${latency.latencyMs!.max.toFixed(2)} ms (${latency.trained} samples)`);
        mqtt = { throughput, latency };
      } finally {
        await broker.stop();
      }
    }
    if (values.json === true) process.stdout.write(`${JSON.stringify({ csv: { ...csv, rowsPerSecond: csv.trained / csv.seconds }, mqtt })}\n`);
    if (csv.maxRssKb >= 200 * 1024) process.exitCode = 1;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

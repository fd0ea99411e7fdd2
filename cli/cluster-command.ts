import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { clearFailures } from '../cluster/failures.ts';
import { clusterStatus } from '../cluster/status.ts';
import { type Cluster, connectNats, openCluster } from '../cluster/open.ts';
import type { PartitionModel, PartitionModelFactory } from '../cluster/partition-run.ts';
import { ClusterPublisher, fileProducerId } from '../cluster/publisher.ts';
import { type Gateway, startGateway } from '../cluster/gateway.ts';
import { ClusterWorker } from '../cluster/worker.ts';
import { StreamgradError } from '../core/errors.ts';
import { FeatureMap } from '../core/features.ts';
import { batchLine } from '../cluster/batch.ts';
import { CliError, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, exitCodeOf, oneLine, usage } from './cli-error.ts';
import type { ClusterConfig } from '../runtime/experiment-schema.ts';
import { generate } from '../runtime/experiment-generators.ts';
import { type ExperimentPlan, planExperiment } from '../runtime/experiment-plan.ts';
import { buildTrainer } from '../runtime/run-experiment.ts';
import { type IngestSettings, type Ingestion, mqttSummary, openIngestion, settingsNormalizer } from '../runtime/ingestion.ts';
import { RejectionLog } from '../runtime/rejections.ts';
import { INGEST_SPEC, parseIngestOptions } from './ingest-options.ts';
import { flag, integer, type OptionSpec, type Options, parseOptions, text } from './options.ts';

export const CLUSTER_HELP = `Usage: streamgrad cluster worker|gateway|publish|status EXPERIMENT.json [options]
       streamgrad cluster unpark EXPERIMENT.json [PARTITION...]

Trains a config's model on many streams across processes and machines, on NATS
JetStream (a nats-server with -js). The config's "cluster" section names the cluster run:
{"name": "sensors", "partitions": 8, "nats": "127.0.0.1:4222", "key": "sensor"}.
Records are spread over the partitions by their key field; each partition is one model
(the config's first), trained by exactly one worker at a time, committed to JetStream
(Object Store + KV) every cluster.checkpointEverySeconds. The README's "Cluster" section
has the guarantees: at-least-once delivery, exactly-once effect, each partition's model
bitwise a single-process run over its samples.

Commands:
  worker   take a fair share of the partitions and train them until Ctrl-C (which hands
           them back, committed); one JSON event per line on stdout
  gateway  serve the dashboard, /healthz, /metrics and the protocol v1 WebSocket for
           every partition, fed from NATS (start as many as you like); commands go to
           each partition's owner; until Ctrl-C
  publish  read the config's source (a CSV or NDJSON file, stdin, MQTT, or a simulated
           stream), or the one given with --data or --mqtt, and publish its records
           into the cluster in batches (a live source's partial batch after
           cluster.publishLingerSeconds); until the source ends or Ctrl-C; prints a summary
  status   partitions, their owners, committed records and steps, messages not yet
           committed, last commit, failures (backing off, or parked)
  unpark   clear the failures of the partitions given (all when none is): a partition
           whose training failed cluster.backoff.maxFailures times in a row is parked
           (trained by nobody) until then

Options:
  --nats SERVERS  nats-server address(es) (overrides cluster.nats)
  --id ID         worker: its id (default random); publish: the producer id (a replay
                  of the same records with the same id is stored once within the
                  de-duplication window; default for --data FILE: the file's path,
                  size and mtime, so publishing it again unchanged stores nothing)
  --data FILE     publish: read this CSV or NDJSON file (- : standard input) instead
                  of the config's source, with streamgrad train's options: --format,
                  --features, --targets (required for CSV), --classes, --max-line-bytes
  --mqtt URL      publish: subscribe to an MQTT broker instead (--topic FILTER, --queue,
                  --overflow, --mqtt-client-id as for streamgrad train)
  --json          status: one JSON document
  --port N        gateway: the port (default: the config's server.port, else 8080; 0: any free)
  --host HOST     gateway: the address to listen on (default 127.0.0.1)
  --token TOKEN   gateway: the control token (default: the config's server.token; without
                  one the gateway is read-only)
  -h, --help      show this help

Exit status: 0 done, 1 failed (e.g. the server went away for good), 2 bad config or option.
`;

const SPEC: OptionSpec = {
  ...INGEST_SPEC,
  data: { type: 'string' },
  nats: { type: 'string' },
  id: { type: 'string' },
  json: { type: 'boolean' },
  port: { type: 'string' },
  host: { type: 'string' },
  token: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

/** `streamgrad cluster worker|publish|status EXPERIMENT.json`. */
export async function clusterCommand(args: readonly string[]): Promise<number> {
  const [sub, ...rest] = args;
  const positional = rest.filter((a, i) => !a.startsWith('-') && !(i > 0 && SPEC[rest[i - 1]!.replace(/^--/, '')]?.type === 'string' && rest[i - 1]!.startsWith('--') && !rest[i - 1]!.includes('=')));
  const options = parseOptions(rest.filter((a) => !positional.includes(a)), SPEC, 'streamgrad cluster');
  if (sub === undefined || sub === '--help' || sub === '-h' || flag(options, 'help')) {
    process.stdout.write(CLUSTER_HELP);
    return sub === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (!['worker', 'gateway', 'publish', 'status', 'unpark'].includes(sub)) usage('cluster', `unknown subcommand ${JSON.stringify(sub)}: use worker, gateway, publish, status or unpark (see streamgrad cluster --help)`);
  if (sub === 'unpark' ? positional.length < 1 : positional.length !== 1) usage(`cluster ${sub}`, 'needs one config file with a "cluster" section (see streamgrad cluster --help)');
  const planned = await planExperiment(positional[0]!);
  if (!planned.ok) {
    for (const p of planned.problems) process.stderr.write(`streamgrad: ${p.path}: ${p.message}\n`);
    throw new CliError(`${positional[0]}: ${planned.problems.length} problem(s), nothing started`);
  }
  const plan = planned.plan;
  if (plan.cluster === undefined) usage('cluster', `${positional[0]} has no "cluster" section`);
  const config = plan.cluster;
  for (const name of ['data', ...Object.keys(INGEST_SPEC)]) {
    if (options.has(name) && sub !== 'publish') usage(`--${name}`, `applies to cluster publish, not cluster ${sub}`);
    if (options.has(name) && /^(dead-letter|normalize)/.test(name)) usage(`--${name}`, 'the workers validate, normalise and dead-letter records as the config says (dead letters go to the cluster\'s dead-letter stream)');
  }
  const servers = text(options, 'nats') ?? config.nats;
  const nc = await connectOrFail(servers);
  try {
    const cluster = await openCluster(nc, { name: config.name, partitions: config.partitions, leaseTtlMs: Math.round(config.leaseTtlSeconds * 1000) })
      .catch((error: unknown) => { throw configError(error); });
    if (sub === 'worker') return await work(cluster, plan, config, text(options, 'id'));
    if (sub === 'publish') return await publish(cluster, plan, config, options);
    if (sub === 'gateway') return await gateway(cluster, plan, options);
    if (sub === 'unpark') return await unpark(cluster, positional.slice(1));
    return await status(cluster, flag(options, 'json'));
  } finally {
    await nc.close().catch(() => undefined);
  }
}

async function connectOrFail(servers: string): Promise<NatsConnection> {
  try {
    return await connectNats(servers, 'streamgrad-cli');
  } catch (error) {
    throw new CliError(`--nats ${servers}: ${oneLine(error)}`, EXIT_USAGE, { cause: error });
  }
}

function configError(error: unknown): unknown {
  return error instanceof StreamgradError && error.code === 'SG_ERR_CONFIG' ? new CliError(oneLine(error), EXIT_USAGE, { cause: error }) : error;
}

/** The model of every partition: the config's first model with its source's record stages. */
export function partitionModels(plan: ExperimentPlan): PartitionModelFactory {
  const m = plan.models[0]!;
  const source = plan.source;
  return (): PartitionModel => {
    const trainer = buildTrainer(m);
    const records = source.kind === 'simulated' ? null : source.records;
    const features = records?.targets === undefined ? undefined : new FeatureMap({
      features: records.features!, targets: records.targets,
      ...(records.classes !== undefined && { classes: records.classes }), missing: records.missing,
    });
    const normalizer = settingsNormalizer(records ?? (source as Parameters<typeof settingsNormalizer>[0]), trainer.shape.inputs, trainer.shape.outputs);
    return { trainer, window: plan.window, train: { batch: m.batch }, ...(features !== undefined && { features }), ...(normalizer !== undefined && { normalizer }) };
  };
}

async function work(cluster: Cluster, plan: ExperimentPlan, config: ClusterConfig, id: string | undefined): Promise<number> {
  let worker: ClusterWorker;
  try {
    const b = config.backoff;
    worker = new ClusterWorker({
      cluster, ...(id !== undefined && { id }), model: partitionModels(plan), checkpointEveryMs: Math.round(config.checkpointEverySeconds * 1000),
      lingerMs: Math.round(config.trainLingerSeconds * 1000),
      ...(b !== undefined && { backoff: { baseMs: Math.round(b.baseSeconds * 1000), maxMs: Math.round(b.maxSeconds * 1000), maxFailures: b.maxFailures } }),
    });
  } catch (error) {
    throw configError(error);
  }
  worker.events.subscribe((event) => process.stdout.write(`${JSON.stringify(event)}\n`));
  const stop = () => void worker.stop();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await worker.start();
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  return EXIT_OK;
}

async function gateway(cluster: Cluster, plan: ExperimentPlan, options: Options): Promise<number> {
  const port = integer(options, 'port', 0) ?? plan.server?.port ?? 8080;
  if (port > 65535) usage('--port', `must be a port number ≤ 65535, got ${port}`);
  const token = text(options, 'token') ?? plan.server?.token;
  const host = text(options, 'host') ?? plan.server?.host;
  let served: Gateway;
  try {
    served = await startGateway({ cluster, port, ...(token !== undefined && { token }), ...(host !== undefined && { host }) });
  } catch (error) {
    if (error instanceof RangeError) throw new CliError(oneLine(error), EXIT_USAGE, { cause: error });
    throw new CliError(`--port ${port}: ${oneLine(error)}`, EXIT_USAGE, { cause: error });
  }
  process.stdout.write(`gateway of cluster run ${cluster.names.name}: ${served.url} (${token === undefined ? 'read-only: no token' : 'commands need the token'})\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await served.close();
  return EXIT_OK;
}

/** What `cluster publish` reads: the config's simulated stream, or records from a file, standard input or MQTT. */
type Bridged =
  | { readonly kind: 'simulated'; readonly values: Iterable<unknown> }
  | { readonly kind: 'records'; readonly ingestion: Ingestion; readonly live: boolean; readonly file?: string };

/**
 * The source `cluster publish` bridges: `--data FILE` or `--mqtt URL --topic T` with the
 * ingestion options of `streamgrad train` (`parseIngestOptions`), else the config's
 * source; both opened by `openIngestion`, the reader `streamgrad train` uses (a CSV
 * header without the named columns, an unreachable broker: exit 2 before anything is
 * published).
 */
async function bridgedSource(plan: ExperimentPlan, options: Options): Promise<Bridged> {
  const source = plan.source;
  const data = text(options, 'data');
  const overridden = data !== undefined || options.has('mqtt');
  if (!overridden && source.kind === 'simulated') {
    return { kind: 'simulated', values: generate(source.generator, source.options as Record<string, unknown>, source.seed, source.samples) };
  }
  for (const name of Object.keys(INGEST_SPEC)) if (!overridden && options.has(name)) usage(`--${name}`, 'applies with --data FILE or --mqtt URL (otherwise the config\'s source is read as it says)');
  let settings: IngestSettings;
  let file: string | undefined;
  if (overridden) {
    settings = parseIngestOptions(options, data);
    file = data;
  } else {
    if (source.kind === 'simulated') throw new Error('unreachable');
    if (source.kind === 'csv' && source.delimiter !== undefined && source.delimiter !== ',') usage('source.delimiter', 'cluster publish reads comma-separated CSV; give the file with --data FILE.csv, or convert it');
    const r = source.records;
    settings = {
      format: source.kind === 'csv' || (source.kind === 'stdin' && source.format === 'csv') ? 'csv' : 'ndjson',
      ...(r.features !== undefined && { features: r.features }), ...(r.targets !== undefined && { targets: r.targets }), ...(r.classes !== undefined && { classes: r.classes }),
      missing: r.missing, normalize: r.normalize, normalizeTarget: r.normalizeTarget,
      ...(r.maxLineBytes !== undefined && { maxLineBytes: r.maxLineBytes }),
      ...(source.kind === 'mqtt' && { mqtt: { url: source.url, topics: source.topics, capacity: source.capacity, policy: source.policy, ...(source.clientId !== undefined && { clientId: source.clientId }) } }),
    };
    file = source.kind === 'csv' || source.kind === 'ndjson' ? source.file.path : source.kind === 'stdin' ? '-' : undefined;
  }
  // the model's shape checks the named features and targets, as for training; the
  // records are not validated here (the workers do that, with the local rules)
  const ingestion = await openIngestion(settings, file, buildTrainer(plan.models[0]!).shape, new RejectionLog(() => undefined));
  const live = settings.mqtt !== undefined || file === '-';
  return { kind: 'records', ingestion, live, ...(!live && file !== undefined && { file }) };
}

async function publish(cluster: Cluster, plan: ExperimentPlan, config: ClusterConfig, options: Options): Promise<number> {
  const bridged = await bridgedSource(plan, options);
  // a file's default producer id is its identity (path, size, mtime): publishing it again
  // unchanged is de-duplicated, as documented (a random id stored it twice)
  const producer = text(options, 'id') ?? (bridged.kind === 'records' && bridged.file !== undefined ? fileIdentity(bridged.file) : undefined);
  let publisher: ClusterPublisher;
  try {
    // a live source's partial message goes out after the linger; a file's batches depend on
    // its data only (full ones, the last at the end), so publishing it again stores nothing twice
    const lingerMs = bridged.kind === 'records' && bridged.live ? Math.round(config.publishLingerSeconds * 1000) : 0;
    publisher = new ClusterPublisher(cluster, { batchSize: config.publishBatch, lingerMs, ...(producer !== undefined && { producer }) });
  } catch (error) {
    await (bridged.kind === 'records' ? bridged.ingestion.stop() : undefined);
    throw configError(error);
  }
  const stop = () => void (bridged.kind === 'records' ? bridged.ingestion.stop() : undefined);
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const started = performance.now();
  let n = 0;
  const add = async (line: string, value: unknown) => {
    const key = config.key === undefined ? undefined : (value as Record<string, unknown> | null | undefined)?.[config.key];
    const waiting = key === undefined || key === null ? publisher.addTo(n % cluster.partitions, line) : publisher.add(String(key), line);
    if (waiting !== undefined) await waiting;
    n++;
  };
  try {
    if (bridged.kind === 'simulated') {
      for (const s of bridged.values as Iterable<{ x: Float64Array | number[]; y: number | Float64Array | number[] }>) {
        const value = { x: Array.from(s.x), y: typeof s.y === 'number' ? s.y : Array.from(s.y) };
        await add(JSON.stringify(value), value);
      }
    } else {
      for await (const record of bridged.ingestion.records) await add(batchLine(record), record.value);
    }
    await publisher.close();
  } catch (error) {
    if (exitCodeOf(error) !== undefined) throw error;
    process.stderr.write(`streamgrad: cluster publish: ${oneLine(error)}\n`);
    return EXIT_FAILURE;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    if (bridged.kind === 'records') await bridged.ingestion.stop().catch(() => undefined);
  }
  const seconds = (performance.now() - started) / 1000;
  const { records, batches, duplicates, retries } = publisher.stats;
  process.stdout.write(`published ${records} records in ${batches} batches to ${cluster.names.stream} (${cluster.partitions} partitions) in ${seconds.toFixed(1)} s; ${duplicates} batches already stored, ${retries} retries\n`);
  if (bridged.kind === 'records' && bridged.ingestion.mqtt !== undefined) process.stdout.write(`${mqttSummary(bridged.ingestion.mqtt)}\n`);
  return EXIT_OK;
}

export type { PartitionStatus } from '../cluster/status.ts';

async function status(cluster: Cluster, json: boolean): Promise<number> {
  const found = await clusterStatus(cluster);
  if (json) {
    process.stdout.write(`${JSON.stringify(found)}\n`);
    return EXIT_OK;
  }
  const { workers } = found;
  const lines = [`cluster ${cluster.names.name}: ${cluster.partitions} partitions, ${workers} live worker${workers === 1 ? '' : 's'}, lease TTL ${cluster.leaseTtlMs} ms`];
  for (const r of found.rows) {
    const age = r.committedAt === null ? 'never committed' : `committed ${((Date.now() - r.committedAt) / 1000).toFixed(1)} s ago`;
    const failing = r.lastFailure === null ? ''
      : r.parked ? `  PARKED after ${r.failures} failures (${r.lastFailure.code ?? 'error'}: ${oneLine(r.lastFailure.message)}); streamgrad cluster unpark to retry`
        : `  ${r.failures} failure${r.failures === 1 ? '' : 's'} in a row${r.retryAt === null ? '' : `, retry in ${((r.retryAt - Date.now()) / 1000).toFixed(1)} s`} (${r.lastFailure.code ?? 'error'}: ${oneLine(r.lastFailure.message)})`;
    lines.push(`  p${r.partition}  ${(r.owner ?? '(free)').padEnd(14)} ${String(r.records).padStart(9)} records  ${String(r.steps).padStart(7)} steps  ${String(r.stored).padStart(6)} messages stored  ${age}${failing}`);
    for (const d of r.damaged) lines.push(`      DAMAGED ${d.code}: ${oneLine(d.message)}`);
    if (r.telemetry?.believed === false) lines.push(`      TELEMETRY IGNORED: the latest state is from ${r.telemetry.owner} (epoch ${r.telemetry.epoch}), not the partition's owner; gateways ignore it`);
  }
  for (const s of found.stray) lines.push(`  STRAY ${s.subject}: ${s.messages} message${s.messages === 1 ? '' : 's'} on no partition's subject (nobody trains them)`);
  lines.push(found.gateways.length === 0 ? 'no gateway' : `gateways: ${found.gateways.map((g) => g.url).join(' ')}`);
  for (const g of found.gateways) {
    const refused = Object.entries(g.unreadable ?? {}).filter(([, n]) => n > 0).map(([kind, n]) => `${n} ${kind}`);
    if (refused.length > 0) lines.push(`  ${g.url} refused: ${refused.join(', ')}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return EXIT_OK;
}

/** `cluster unpark`: clears the failure records (backoff, parking) of the partitions named, or of all. */
async function unpark(cluster: Cluster, names: readonly string[]): Promise<number> {
  const partitions = names.map((n) => {
    const p = /^p?(\d+)$/.exec(n);
    if (p === null || Number(p[1]) >= cluster.partitions) usage('cluster unpark', `${JSON.stringify(n)} is not a partition of ${cluster.names.name} (0 to ${cluster.partitions - 1})`);
    return Number(p[1]);
  });
  const cleared = await clearFailures(cluster, partitions.length === 0 ? undefined : partitions);
  process.stdout.write(cleared.length === 0 ? 'no partition had failures\n' : `cleared the failures of ${cleared.map((p) => `p${p}`).join(', ')}: workers take ${cleared.length === 1 ? 'it' : 'them'} again\n`);
  return EXIT_OK;
}

/** The default producer id of a file's publish (`fileProducerId`), or undefined when it cannot be read (the reader reports that). */
function fileIdentity(file: string): string | undefined {
  try {
    const path = resolve(file);
    const { size, mtimeMs } = statSync(path);
    return fileProducerId({ path, size, mtimeMs });
  } catch {
    return undefined;
  }
}

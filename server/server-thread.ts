/**
 * The server thread of `serveInThread` (server/threaded-server.ts): runs `serve()` here,
 * mirrors the runs the training thread publishes (`RunMirror`), and sends their commands
 * back to be applied there. Started as a worker; not a module to import.
 */
import { once } from 'node:events';
import { Gauge } from 'prom-client';
import { parentPort } from 'node:worker_threads';
import { RunMirror } from './run-mirror.ts';
import type { ServerStats } from './server-stats.ts';
import { serve, type StreamgradServer } from './server.ts';
import { scrapedCounter } from './metrics-registry.ts';
import type { FromServerThread, ServerThreadData, ToServerThread } from './thread-messages.ts';
import type { Outcome } from './protocol.ts';
import { WebSocketIngest } from '../sources/websocket-ingest.ts';
import { pumpIngest } from './ingest-relay.ts';
import { artifactFrom, type ModelVersion } from './model-versions.ts';
import type { PredictProblem } from './prediction-service.ts';
import { CpuShare } from '../pipeline/cpu-share.ts';
import { watchCpuDemand } from './cpu-demand.ts';

if (parentPort === null) throw new Error('server/server-thread.ts runs as a worker thread (serveInThread), not as a module');
const port = parentPort;
const post = (message: FromServerThread) => port.postMessage(message);
// the thread may start before its options are known (prestarted): they come first
const [first] = await once(port, 'message') as [ToServerThread];
if (first.type !== 'listen') throw new Error(`server thread: the first message must be listen, got ${first.type}`);
const data: ServerThreadData = first.data;

const mirrors = new Map<string, RunMirror>();
/** The host's own gauges (`gauge` messages), by name. */
const gauges = new Map<string, Gauge>();
const waiting = new Map<number, (outcome: Outcome) => void>();
let nextSeq = 1;

/** Sends a command to the training thread and resolves with its outcome. */
function control(run: string) {
  return (command: Parameters<RunMirror['control']>[0]): Promise<Outcome> => new Promise((resolve) => {
    const seq = nextSeq++;
    waiting.set(seq, resolve);
    post({ type: 'command', seq, run, command });
  });
}

// `/ingest`: the sockets are served here, their records pumped to the training thread as it grants credit
const ingest = data.ingest === undefined ? undefined : new WebSocketIngest(data.ingest);
const pump = ingest === undefined ? undefined : pumpIngest(ingest, (records) => post({ type: 'ingest', records }));

// the training thread yields part of its time while this thread waits for a core (issue 17 item 6, issue 12)
const cpu = data.cpu === undefined ? undefined : new CpuShare(data.cpu);
const demand = cpu === undefined ? undefined : watchCpuDemand(cpu);

let server: StreamgradServer;
try {
  server = await serve({
    ...data.options,
    ...(demand !== undefined && { onActivity: demand.touch }),
    ...(ingest !== undefined && { ingest }),
    ...(data.log && { log: (line: string) => post({ type: 'log', line }) }),
    // the labels go back to be persisted where the process keeps its state (a run's checkpoint, serve's state file)
    onLabels: (model, labels) => post({ type: 'labels', model, labels }),
  });
} catch (error) {
  post({ type: 'listen-failed', message: error instanceof Error ? error.message : String(error), ...(typeof (error as { code?: unknown }).code === 'string' && { code: (error as { code: string }).code }) });
  port.close();
  process.exit(0);
}
post({ type: 'listening', url: server.url, wsUrl: server.wsUrl, port: server.port });
if (cpu !== undefined) cpuMetrics(cpu, server);

// the counters the training thread shows, when they change
let posted = '';
const statsTimer = setInterval(() => {
  const stats: ServerStats = server.stats;
  const text = JSON.stringify(stats);
  if (text !== posted) post({ type: 'stats', stats });
  posted = text;
}, data.statsMs);
statsTimer.unref();

port.on('message', (message: ToServerThread) => {
  switch (message.type) {
    case 'add-run': {
      const mirror = new RunMirror(message.run, control(message.run.id));
      mirrors.set(mirror.id, mirror);
      server.addRun(mirror, { ...(message.labels !== undefined && { labels: message.labels }), ...(message.numbers !== undefined && { numbers: message.numbers }) });
      return;
    }
    case 'add-model':
      reply(message.seq, () => {
        server.addModel(message.name, artifactFrom(message.model), message.at, message.labels, message.numbers);
        return server.predictions.resolve({ model: message.name });
      });
      return;
    case 'update-model': {
      reply(message.seq, () => server.updateModel(message.name, artifactFrom(message.model), message.at));
      // a model with labels: its saved state follows the new version, so that numbers are never given twice after a restart
      const labels = server.predictions.labels(message.name);
      if (labels !== null && Object.keys(labels.labels).length > 0) post({ type: 'labels', model: message.name, labels });
      return;
    }
    case 'remove-model':
      server.removeModel(message.name);
      return;
    case 'ingest-credit':
      pump?.credit(message.n);
      return;
    case 'remove-run':
      server.removeRun(message.run);
      mirrors.get(message.run)?.dispose();
      mirrors.delete(message.run);
      return;
    case 'publish': {
      const mirror = mirrors.get(message.publish.run);
      if (mirror === undefined) return;
      const stride = mirror.scalars.stride;
      mirror.update(message.publish);
      // the history thinned out: the training thread need not post the steps it would drop
      if (mirror.scalars.stride !== stride) post({ type: 'scalar-stride', run: mirror.id, stride: mirror.scalars.stride });
      return;
    }
    case 'event':
      mirrors.get(message.event.run)?.event(message.event);
      return;
    case 'outcome': {
      const resolve = waiting.get(message.seq);
      waiting.delete(message.seq);
      resolve?.(message.outcome);
      return;
    }
    case 'gauge': {
      const { name, help, labelNames, values } = message.gauge;
      let gauge = gauges.get(name);
      if (gauge === undefined) {
        gauge = new Gauge({ name, help, labelNames: [...labelNames], registers: [server.metrics] });
        gauges.set(name, gauge);
      }
      gauge.reset();
      for (const v of values) gauge.set(v.labels, v.value);
      return;
    }
    case 'peers':
      server.setPeers(message.peers);
      return;
    case 'close':
      void shutdown();
  }
});


/** Answers an `add-model` / `update-model` with the version it took, or the error it threw. */
function reply(seq: number, act: () => ModelVersion | PredictProblem | null): void {
  try {
    const version = act();
    post({ type: 'model-reply', seq, reply: { version: version === null || !('version' in version) ? null : version.info() } });
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    post({ type: 'model-reply', seq, reply: { error: { message: error instanceof Error ? error.message : String(error), ...(typeof code === 'string' && { code }) } } });
  }
}

/** /metrics: how often this thread asked the training thread for the CPU, and what it got. */
function cpuMetrics(share: CpuShare, on: StreamgradServer): void {
  const registers = [on.metrics];
  new Gauge({ name: 'streamgrad_server_cpu_demand', help: 'Whether the server thread asks the training thread for the CPU now (1) or not (0)', registers, collect() { this.set(share.demanded ? 1 : 0); } });
  // counters kept by the share itself (in shared memory): each scrape copies them over
  scrapedCounter(registers, 'streamgrad_server_cpu_demands_total', 'Times the server thread waited for a core and asked the training thread for the CPU', () => share.stats().raises);
  scrapedCounter(registers, 'streamgrad_training_yields_total', 'Times the training thread slept between slices for the server thread', () => share.stats().yields);
  scrapedCounter(registers, 'streamgrad_training_yielded_seconds_total', 'Seconds the training thread slept for the server thread', () => share.stats().yieldedMs / 1000);
}

async function shutdown(): Promise<void> {
  demand?.stop();
  clearInterval(statsTimer);
  await server.close();
  await ingest?.close();
  for (const resolve of waiting.values()) resolve({ ok: false, code: 'SG_ERR_STATE', message: 'the server closed before the command ended' });
  waiting.clear();
  for (const mirror of mirrors.values()) mirror.dispose();
  mirrors.clear();
  post({ type: 'closed' });
  port.close();
}

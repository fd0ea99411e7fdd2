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
import type { FromServerThread, ToServerThread } from './thread-messages.ts';
import type { ServerThreadData } from './thread-messages.ts';
import type { Outcome } from './protocol.ts';

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

let server: StreamgradServer;
try {
  server = await serve({ ...data.options, ...(data.log && { log: (line: string) => post({ type: 'log', line }) }) });
} catch (error) {
  post({ type: 'listen-failed', message: error instanceof Error ? error.message : String(error), ...(typeof (error as { code?: unknown }).code === 'string' && { code: (error as { code: string }).code }) });
  port.close();
  process.exit(0);
}
post({ type: 'listening', url: server.url, wsUrl: server.wsUrl, port: server.port });

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
      server.addRun(mirror);
      return;
    }
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

async function shutdown(): Promise<void> {
  clearInterval(statsTimer);
  await server.close();
  for (const resolve of waiting.values()) resolve({ ok: false, code: 'SG_ERR_STATE', message: 'the server closed before the command ended' });
  waiting.clear();
  for (const mirror of mirrors.values()) mirror.dispose();
  mirrors.clear();
  post({ type: 'closed' });
  port.close();
}

// The child processes of bench/cluster.ts's fan-out section (issue #14), forked with
// bench/harness.ts's forkSelf and driven over IPC:
//  --gateway SERVERS NAME    one gateway of cluster run NAME (startGateway, as `streamgrad cluster
//                            gateway` starts it), reporting its process's CPU time per window
//                            (the process holds the gateway's NATS side and its server thread);
//  --clients WS_URL ORIGIN N N WebSocket clients, each subscribed to every partition's snapshots
//                            at 10 Hz, counting the frames each gets and when (run, step, time).
import WebSocket from 'ws';
import { startGateway } from '../cluster/gateway.ts';
import { connectNats, openCluster } from '../cluster/open.ts';

export type ToGateway = { readonly type: 'cpu-start' | 'cpu' | 'exit' };
export type FromGateway = { readonly type: 'ready'; readonly url: string; readonly wsUrl: string } | { readonly type: 'cpu'; readonly cores: number };

export type ToClients = { readonly type: 'measure' | 'report' | 'exit' };
export type FromClients =
  | { readonly type: 'ready'; readonly connectMs: number }
  | { readonly type: 'report'; readonly frames: number[]; readonly seconds: number; readonly runs: string[]; readonly received: number[] };

const now = () => performance.timeOrigin + performance.now(); // wall-clock ms, comparable across processes
const send = (m: FromGateway | FromClients) => process.send!(m);

async function gateway(servers: string, name: string): Promise<void> {
  const nc = await connectNats(servers, `fanout-gateway-${process.pid}`);
  const cluster = await openCluster(nc, { name });
  const served = await startGateway({ cluster, port: 0, host: '127.0.0.1', maxClients: 400 });
  let cpu0 = process.cpuUsage(), t0 = performance.now();
  process.on('message', async (m: ToGateway) => {
    if (m.type === 'cpu-start') {
      cpu0 = process.cpuUsage();
      t0 = performance.now();
    } else if (m.type === 'cpu') {
      const used = process.cpuUsage(cpu0);
      send({ type: 'cpu', cores: (used.user + used.system) / 1000 / (performance.now() - t0) });
    } else {
      await served.close();
      await nc.close();
      process.exit(0);
    }
  });
  send({ type: 'ready', url: served.url, wsUrl: served.wsUrl });
}

/** The run id of an `SGF1` frame (server/PROTOCOL.md): R at byte 6, L at 16, the id at 24 + 4L. */
function frameRun(data: Buffer): string {
  const length = data.readUInt16LE(6);
  const start = 24 + 4 * data.readUInt32LE(16);
  return data.toString('utf8', start, start + length);
}

async function clients(url: string, origin: string, n: number): Promise<void> {
  const subscribe = JSON.stringify({ type: 'subscribe', run: '*', channels: ['snapshots'], rateHz: 10, dtype: 'float32' });
  const frames = new Array<number>(n).fill(0);
  const runs: string[] = [];
  // triples (run index, step, received at) of each client's first frame of a step, in the window
  let received: number[] = [];
  let measuring = false;
  let windowStart = 0;
  const sockets: WebSocket[] = [];
  const started = performance.now();
  for (let i = 0; i < n; i += 50) {
    await Promise.all(Array.from({ length: Math.min(50, n - i) }, (_, j) => new Promise<void>((resolve, reject) => {
      const k = i + j;
      const last = new Map<string, number>();
      const ws = new WebSocket(url, { origin });
      sockets.push(ws);
      ws.on('error', reject);
      ws.on('message', (data: Buffer, isBinary) => {
        if (!isBinary) return;
        frames[k]++;
        if (!measuring) return;
        const run = frameRun(data), step = data.readDoubleLE(8);
        if (last.get(run) === step) return; // the same state again: its latency was counted
        last.set(run, step);
        let r = runs.indexOf(run);
        if (r === -1) r = runs.push(run) - 1;
        received.push(r, step, now());
      });
      ws.once('open', () => {
        ws.send(subscribe);
        resolve();
      });
    })));
  }
  while (frames.some((f) => f === 0)) await new Promise((r) => setTimeout(r, 20)); // everyone has had a snapshot
  send({ type: 'ready', connectMs: performance.now() - started });
  process.on('message', (m: ToClients) => {
    if (m.type === 'measure') {
      frames.fill(0);
      received = [];
      windowStart = performance.now();
      measuring = true;
    } else if (m.type === 'report') {
      measuring = false;
      send({ type: 'report', frames: [...frames], seconds: (performance.now() - windowStart) / 1000, runs, received });
    } else {
      for (const ws of sockets) ws.terminate();
      process.exit(0);
    }
  });
}

const [mode, a, b, c] = process.argv.slice(2);
if (mode === '--gateway') await gateway(a!, b!);
else if (mode === '--clients') await clients(a!, b!, Number(c));
else throw new Error('bench/cluster-fanout.ts is forked by bench/cluster.ts (--gateway SERVERS NAME | --clients WS_URL ORIGIN N)');

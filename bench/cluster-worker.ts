// A cluster worker process for bench/cluster.ts: trains W1-sized models (8 → 32 relu → 32 relu → 1,
// SGD, batch 1, as bench/workloads.ts) and prints every ClusterEvent as one JSON line.
// Usage: node --import tsx/esm bench/cluster-worker.ts SERVERS NAME ID CHECKPOINT_MS [MAX_PARTITIONS] [--gate]
//  MAX_PARTITIONS  the most partitions it takes (0 or absent: its fair share only), so that workers
//                  started together split the partitions evenly whichever comes first;
//  --gate          prints {"type":"bench-ready"} once connected and joins the cluster only when a
//                  line "go" arrives on stdin, so that the bench starts its workers at one moment.
// On SIGTERM it prints {"type":"bench-trained", first, last, samples}: when it trained its first and
// its last sample (wall-clock ms, comparable across processes) and how many samples it trained.
import { createInterface } from 'node:readline';
import { connectNats, openCluster } from '../cluster/open.ts';
import { ClusterWorker } from '../cluster/worker.ts';
import { selectKernels } from '../core/backend.ts';
import { initialize } from '../core/init.ts';
import { createModel } from '../core/model.ts';
import { createTrainer } from '../core/trainer.ts';

const args = process.argv.slice(2);
const gated = args.includes('--gate');
const [servers, name, id, every, max] = args.filter((a) => a !== '--gate');
const maxPartitions = Number(max ?? 0);
const nc = await connectNats(servers!, id);
const cluster = await openCluster(nc, { name: name! });
const kernels = selectKernels();
const worker = new ClusterWorker({
  cluster, id: id!, checkpointEveryMs: Number(every),
  ...(maxPartitions > 0 && { maxPartitions }),
  model: (p) => {
    const model = initialize(createModel({ inputSize: 8, layers: [{ units: 32, activation: 'relu' }, { units: 32, activation: 'relu' }, { units: 1, activation: 'linear' }] }, kernels), 'he', 1 + p);
    return { trainer: createTrainer({ model, loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.01 }, kernels }), train: { batch: 1 } };
  },
});
const now = () => performance.timeOrigin + performance.now();
let first = Infinity, last = -Infinity, samples = 0;
worker.events.subscribe((event) => {
  process.stdout.write(`${JSON.stringify(event)}\n`);
  // the run is in place once PartitionRun.start has returned (after this event's microtasks), and its
  // first result needs a message from the server (I/O), so an immediate is early enough
  if (event.type === 'acquired') {
    setImmediate(() => worker.run(event.partition!)?.run.results.subscribe((result) => {
      const t = now();
      if (t < first) first = t;
      last = t;
      samples += result.size;
    }));
  }
});
process.once('SIGTERM', () => {
  process.stdout.write(`${JSON.stringify({ type: 'bench-trained', first, last, samples })}\n`);
  void worker.stop();
});
if (gated) {
  process.stdout.write(`${JSON.stringify({ type: 'bench-ready' })}\n`);
  await new Promise<void>((resolve) => createInterface({ input: process.stdin }).on('line', (line) => line === 'go' && resolve()));
}
await worker.start();
await nc.close();
process.exit(0);

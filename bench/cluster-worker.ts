// A cluster worker process for bench/cluster.ts: trains W1-sized models (8 → 32 relu → 32 relu → 1,
// SGD, batch 1, as bench/workloads.ts) and prints every ClusterEvent as one JSON line.
// Usage: node --import tsx/esm bench/cluster-worker.ts SERVERS NAME ID CHECKPOINT_MS
import { connectNats, openCluster } from '../cluster/open.ts';
import { ClusterWorker } from '../cluster/worker.ts';
import { selectKernels } from '../core/backend.ts';
import { initialize } from '../core/init.ts';
import { createModel } from '../core/model.ts';
import { createTrainer } from '../core/trainer.ts';

const [servers, name, id, every] = process.argv.slice(2);
const nc = await connectNats(servers!, id);
const cluster = await openCluster(nc, { name: name! });
const kernels = selectKernels();
const worker = new ClusterWorker({
  cluster, id: id!, checkpointEveryMs: Number(every),
  model: (p) => {
    const model = initialize(createModel({ inputSize: 8, layers: [{ units: 32, activation: 'relu' }, { units: 32, activation: 'relu' }, { units: 1, activation: 'linear' }] }, kernels), 'he', 1 + p);
    return { trainer: createTrainer({ model, loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.01 }, kernels }), train: { batch: 1 } };
  },
});
worker.events.subscribe((event) => process.stdout.write(`${JSON.stringify(event)}\n`));
process.once('SIGTERM', () => void worker.stop());
await worker.start();
await nc.close();

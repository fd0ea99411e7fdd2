// A cluster worker process for the tests: trains the fixture's model (testModel) and
// prints every ClusterEvent as one JSON line. SIGTERM hands its partitions back and exits.
// Usage: node --import tsx/esm test/cluster/worker-process.ts SERVERS NAME ID [CHECKPOINT_MS]
import { connectNats, openCluster } from '../../cluster/open.ts';
import { ClusterWorker } from '../../cluster/worker.ts';
import { testModel } from './fixture.ts';

const [servers, name, id, every] = process.argv.slice(2);
const nc = await connectNats(servers!, id);
const cluster = await openCluster(nc, { name: name! });
const worker = new ClusterWorker({ cluster, id: id!, model: testModel, checkpointEveryMs: Number(every ?? 200) });
worker.events.subscribe((event) => process.stdout.write(`${JSON.stringify(event)}\n`));
// progress lines (steps trained vs committed, per owned partition): the failover test pauses a
// worker only while it holds steps it has not committed, so its late commit is sure to come
const progress = setInterval(() => {
  for (const p of worker.partitions()) {
    const run = worker.run(p);
    if (run !== null) process.stdout.write(`${JSON.stringify({ type: 'progress', worker: id, partition: p, time: Date.now(), detail: { steps: run.run.trainer.counters.steps, committed: run.lastCommit.steps } })}\n`);
  }
}, 20);
progress.unref();
process.once('SIGTERM', () => void worker.stop());
await worker.start();
await nc.close();

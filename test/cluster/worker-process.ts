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
process.once('SIGTERM', () => void worker.stop());
await worker.start();
await nc.close();

import { Registry } from 'prom-client';
import { PredictionService, wireText } from '../server/prediction-service.ts';
import { NO_PREPROCESSING } from '../pipeline/model-artifact.ts';
import { createWorkloadTrainer, makeData, WORKLOADS } from './workloads.ts';
const service = new PredictionService({ keepVersions: 4, registry: new Registry() });
const trainer = createWorkloadTrainer(WORKLOADS.w1);
service.addModel('w1', { model: trainer.model, preprocessing: NO_PREPROCESSING } as never);
const v = service.resolve({ model: 'w1' }) as never;
const pool = makeData('w1', 4096);
const lines = Array.from({ length: 20000 }, (_, i) => JSON.stringify(Array.from(pool.X.subarray((i % 4096) * 8, ((i % 4096) + 1) * 8))));
for (let rep = 0; rep < 5; rep++) {
  let t = performance.now();
  const recs = lines.map((l) => JSON.parse(l));
  const tParse = performance.now() - t;
  t = performance.now();
  const a: string[] = [];
  for (const r of recs) a.push(JSON.stringify(service.predictOne(v, r)));
  const tOne = performance.now() - t;
  t = performance.now();
  const b: string[] = [];
  for (let i = 0; i < recs.length; i += 512) for (const e of service.predictMany(v, recs.slice(i, i + 512))) b.push(wireText(e));
  const tMany = performance.now() - t;
  if (a.join() !== b.join()) throw new Error('differ');
  console.log(`per line µs: parse ${(tParse / 20).toFixed(2)} one+stringify ${(tOne / 20).toFixed(2)} many+wire ${(tMany / 20).toFixed(2)}`);
}

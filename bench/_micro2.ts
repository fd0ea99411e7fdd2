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
const recs = lines.map((l) => JSON.parse(l));
const mode = process.argv[2]; const C = Number(process.argv[3] ?? 512);
let best = Infinity;
for (let rep = 0; rep < 40; rep++) {
  const t = performance.now();
  const b: string[] = [];
  if (mode === 'one') for (const r of recs) b.push(JSON.stringify(service.predictOne(v, r)));
  else for (let i = 0; i < recs.length; i += C) for (const e of service.predictMany(v, recs.slice(i, i + C))) b.push(wireText(e));
  best = Math.min(best, performance.now() - t);
}
console.log(mode, 'best per line µs', (best / 20).toFixed(2));

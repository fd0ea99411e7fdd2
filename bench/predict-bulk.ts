/**
 * The bulk prediction path alone (npm run bench:predict-bulk, issue 12): a W1-sized model
 * (8→32→32→1) that does not train, served by `serveInThread()` as the command line serves
 * it, answers NDJSON batches of `--batch` lines (default 20 000), one after the other over
 * one keep-alive connection, `--batches` times (default 20) after one to warm up. Reports
 * predictions per second and the CPU this process spent per prediction (the server thread,
 * plus this thread's client, which only counts the answer's newlines): the CPU figure moves
 * far less than the rate when other processes load the machine, so it is the one to compare
 * between two versions of the code on a shared machine (interleave their runs).
 *
 * bench:predict measures the same path beside training and single requests, which is what
 * the targets are about; this one says what the path itself costs.
 *
 * Usage: npm run bench:predict-bulk [-- --batch N --batches B --json]
 */
import { Agent, request } from 'node:http';
import { parseArgs } from 'node:util';
import { TrainingRun } from '../pipeline/run.ts';
import { serveInThread } from '../server/threaded-server.ts';
import { createWorkloadTrainer, makeData, WORKLOADS } from './workloads.ts';

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '20000' },
    batches: { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
  },
});
const batch = Number(args.batch), batches = Number(args.batches);

const w1 = new TrainingRun({ id: 'w1', trainer: createWorkloadTrainer(WORKLOADS.w1), source: [], paused: true });
const server = await serveInThread({ port: 0, trainingNice: null });
server.addRun(w1);
const n = WORKLOADS.w1.sizes[0];
const pool = makeData('w1', 4096);
const lines = Array.from({ length: batch }, (_, i) => JSON.stringify(Array.from(pool.X.subarray((i % 4096) * n, ((i % 4096) + 1) * n))));
const body = Buffer.from(`${lines.join('\n')}\n`);
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

/** POSTs the batch; resolves with the number of predictions answered (lines after the version line, errors excluded). */
function post(): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: '127.0.0.1', port: server.port, path: '/predict?model=w1', method: 'POST', headers: { 'Content-Type': 'application/x-ndjson', 'Content-Length': body.length } }, (res) => {
      let newlines = 0, errors = false;
      res.on('data', (c: Buffer) => {
        for (let i = c.indexOf(10); i !== -1; i = c.indexOf(10, i + 1)) newlines++;
        // a whole W1 answer has no error in it; a chunk seam can only hide one that another chunk shows whole
        if (c.includes('"error"')) errors = true;
      });
      res.on('end', () => (res.statusCode !== 200 || errors ? reject(new Error(`status ${res.statusCode}, errors in the answer`)) : resolve(newlines - 1)));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

await post(); // warm-up
const t0 = performance.now(), c0 = process.cpuUsage();
let predictions = 0;
for (let i = 0; i < batches; i++) predictions += await post();
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(c0);
const result = {
  model: 'w1', batch, batches, predictions,
  predictionsPerSecond: Math.round(predictions / seconds),
  cpuMicrosecondsPerPrediction: Number(((cpu.user + cpu.system) / predictions).toFixed(2)),
};
if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
else process.stderr.write(`bulk W1 alone: ${result.predictionsPerSecond} predictions/s, ${result.cpuMicrosecondsPerPrediction} µs of CPU per prediction (server thread + counting client), ${batches} batches of ${batch}\n`);
agent.destroy();
w1.dispose();
await server.close();
process.exit(0);

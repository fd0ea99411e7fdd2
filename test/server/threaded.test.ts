import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { decodeFrame } from '../../server/snapshot-frame.ts';
import { SharedWeights } from '../../server/shared-weights.ts';
import { serveInThread, type ThreadedServeOptions, type ThreadedServer } from '../../server/threaded-server.ts';
import { hashOf } from '../helpers/streams.ts';
import { connect, onCleanup, sleep, testRun, TOKEN } from './helpers.ts';

/** The server on a thread of its own (issue 17), serving runs of this thread; closed after the test. */
async function startThreaded(options: ThreadedServeOptions = {}): Promise<ThreadedServer> {
  const server = await serveInThread({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist', ...options });
  onCleanup(() => server.close());
  return server;
}

describe('serveInThread: the server on its own thread, the runs on this one', () => {
  it('every command reaches the run and is acked; snapshots are the weights of a step boundary; /healthz and /metrics see the run', async () => {
    let saved = 0;
    const run = testRun({ checkpoint: async (r) => `/tmp/ckpt-${r.id}-${++saved}` });
    const server = await startThreaded();
    server.addRun(run);
    const client = await connect(server, { token: TOKEN });
    expect((await client.next('hello')).runs).toMatchObject([{ id: 'a', state: 'idle', topology: { inputSize: 3 } }]);
    client.send({ type: 'subscribe', run: 'a', channels: ['events', 'snapshots', 'metrics', 'predictions'], rateHz: 30, dtype: 'float64' });
    const initial = run.trainer.model.params.slice();
    void run.start();
    await client.until(() => run.trainer.counters.steps > 20, 'training');

    expect(await client.command({ type: 'step', id: 'early', run: 'a' })).toMatchObject({ type: 'error', code: 'SG_ERR_STATE' });
    expect(await client.command({ type: 'pause', id: 'p', run: 'a' })).toMatchObject({ type: 'ack', result: { state: 'paused' } });
    expect(await client.next('event', (e) => e.event === 'paused')).toMatchObject({ run: 'a' });
    const pausedAt = run.trainer.counters.steps;
    await sleep(100);
    expect(run.trainer.counters.steps).toBe(pausedAt);
    // the snapshot of the paused step holds exactly the weights the run has
    for (;;) {
      const frame = decodeFrame(await client.frame());
      if (frame.step !== pausedAt) continue;
      expect(hashOf(Float64Array.from(frame.values))).toBe(hashOf(run.trainer.model.params));
      break;
    }
    expect(await client.next('metrics', (m) => m.step === pausedAt)).toMatchObject({ counters: { steps: pausedAt } });
    expect((await client.next('predictions')).rows).toBeGreaterThan(0);

    expect(await client.command({ type: 'step', id: 's', run: 'a' })).toMatchObject({ type: 'ack', result: { step: pausedAt + 1 } });
    expect(run.trainer.counters.steps).toBe(pausedAt + 1);
    expect(await client.next('metrics', (m) => m.step === pausedAt + 1)).toMatchObject({ counters: { steps: pausedAt + 1 } });

    expect(await client.command({ type: 'setLearningRate', id: 'lr', run: 'a', learningRate: 0.125 })).toMatchObject({ type: 'ack', result: { learningRate: 0.125 } });
    expect(run.trainer.optimizer.learningRate).toBe(0.125);
    expect(await client.command({ type: 'checkpoint', id: 'ck', run: 'a' })).toMatchObject({ type: 'ack', result: { path: '/tmp/ckpt-a-1' } });
    expect(await client.next('event', (e) => e.event === 'checkpoint')).toMatchObject({ detail: { path: '/tmp/ckpt-a-1' } });
    // a resent id is answered from the log, not applied again
    expect(await client.command({ type: 'checkpoint', id: 'ck', run: 'a' })).toMatchObject({ type: 'ack', duplicate: true, result: { path: '/tmp/ckpt-a-1' } });
    expect(saved).toBe(1);

    expect(await client.command({ type: 'reset', id: 'r', run: 'a' })).toMatchObject({ type: 'ack' });
    expect(hashOf(run.trainer.model.params)).toBe(hashOf(initial));
    await client.until(() => client.frames.some((f) => hashOf(Float64Array.from(decodeFrame(f).values)) === hashOf(initial)), 'a snapshot of the reset weights');

    expect(await client.command({ type: 'resume', id: 'go', run: 'a' })).toMatchObject({ type: 'ack', result: { state: 'running' } });
    await client.until(() => run.trainer.counters.steps > pausedAt + 20, 'training to continue');
    expect(await client.command({ type: 'pause', id: 'x', run: 'nope' })).toMatchObject({ type: 'error', code: 'SG_ERR_UNKNOWN_RUN' });

    expect(await (await fetch(`${server.url}/healthz`)).json()).toMatchObject({ status: 'ok', runs: 1, clients: 1 });
    await client.until(() => server.stats.clients === 1, 'the stats to arrive');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const steps = Number(/^streamgrad_steps_total\{run="a"\} (\d+)$/m.exec(metrics)?.[1]);
    expect(steps).toBeGreaterThan(pausedAt);
    expect(steps).toBeLessThanOrEqual(run.trainer.counters.steps);

    server.removeRun('a');
    expect(await client.next('run-removed')).toMatchObject({ run: 'a' });
    expect(server.error).toBeNull();
  });

  it('a port in use is refused with its code (EADDRINUSE); close() closes the sockets and ends the thread', async () => {
    const server = await startThreaded();
    await expect(serveInThread({ port: server.port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    const client = await connect(server);
    await client.next('hello');
    await server.close();
    expect(await client.closed).toBe(1001);
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
    expect(server.error).toBeNull();
    await server.close(); // twice is fine
  });
});

describe('SharedWeights (a seqlock in shared memory)', () => {
  it('a reader never sees a half-written version, with the writer on another thread', async () => {
    const length = 20_000;
    const shared = new SharedWeights(length);
    const stop = new Int32Array(new SharedArrayBuffer(4));
    // the writer publishes versions v as params all v, grads all -v, as fast as it can
    const api = pathToFileURL(createRequire(import.meta.url).resolve('tsx/esm/api').replace(/\.cjs$/, '.mjs')).href;
    const module = new URL('../../server/shared-weights.ts', import.meta.url).href;
    const writer = new Worker(`
      const { workerData } = require('node:worker_threads');
      import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(module)}); }).then(({ SharedWeights }) => {
        const shared = new SharedWeights(workerData.buffer), stop = new Int32Array(workerData.stop);
        const params = new Float64Array(shared.length), grads = new Float64Array(shared.length);
        for (let v = 1; Atomics.load(stop, 0) === 0; v++) { params.fill(v); grads.fill(-v); shared.write(params, grads); }
      });`, { eval: true, workerData: { buffer: shared.buffer, stop: stop.buffer } });
    onCleanup(() => writer.terminate());
    const params = new Float64Array(length), grads = new Float64Array(length);
    while (shared.version < 10) await sleep(5);
    let reads = 0, last = 0;
    const until = Date.now() + 1500;
    while (Date.now() < until) {
      const version = shared.read(params, grads);
      const v = params[0];
      expect(version).toBeGreaterThanOrEqual(last);
      expect(v).toBe(version);
      for (let i = 0; i < length; i++) if (params[i] !== v || grads[i] !== -v) throw new Error(`a torn read at version ${version}: params[${i}] = ${params[i]}, grads[${i}] = ${grads[i]}`);
      last = version;
      reads++;
    }
    Atomics.store(stop, 0, 1);
    expect(reads).toBeGreaterThan(10);
    expect(last).toBeGreaterThan(10);
  });
});

import { describe, expect, it } from 'vitest';
import { RunFeed } from '../../server/run-feed.ts';
import { decodeFrame, encodeFiniteFrame } from '../../server/snapshot-frame.ts';
import { connect, startServer, testRun, TOKEN, W2 } from './helpers.ts';

const bytes = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('snapshots: binary frames of the weights, encoded once, latest wins', () => {
  it('a Float64 frame is bitwise the model parameters, with the topology and step in its header', async () => {
    const run = testRun({ inputs: 16, layers: W2 });
    const server = await startServer({}, run);
    const client = await connect(server);
    void run.start();
    await client.until(() => run.trainer.counters.steps >= 50, '50 steps');
    run.pause();
    const steps = run.trainer.counters.steps;
    client.send({ type: 'subscribe', run: 'a', channels: ['snapshots'], dtype: 'float64' });
    let frame = decodeFrame(await client.frame());
    while (frame.step !== steps) frame = decodeFrame(await client.frame());
    expect(frame.kind).toBe('parameters');
    expect(frame.dtype).toBe('float64');
    expect(frame.run).toBe('a');
    expect(frame.inputSize).toBe(16);
    expect(frame.layers.map((l) => l.units)).toEqual([64, 64, 4]);
    expect(bytes(frame.values as Float64Array).equals(bytes(run.trainer.model.params))).toBe(true);
    const first = run.trainer.model.layers[0];
    expect(Array.from(frame.layers[0].weights)).toEqual(Array.from(first.weights));
    expect(Array.from(frame.layers[0].bias)).toEqual(Array.from(first.bias));
  });

  it('a Float32 frame (the default) holds each parameter rounded to float32', async () => {
    const run = testRun({ paused: true });
    const server = await startServer({}, run);
    const client = await connect(server);
    client.send({ type: 'subscribe', run: 'a', channels: ['snapshots'] });
    const frame = decodeFrame(await client.frame());
    expect(frame.dtype).toBe('float32');
    expect(frame.step).toBe(0);
    expect(Array.from(frame.values)).toEqual(Array.from(run.trainer.model.params, Math.fround));
  });

  it('gradients frames carry the last step’s gradient', async () => {
    const run = testRun({ paused: true });
    const server = await startServer({}, run);
    const control = await connect(server, { token: TOKEN });
    void run.start();
    expect(await control.command({ type: 'step', id: 's1', run: 'a' })).toMatchObject({ type: 'ack' });
    control.send({ type: 'subscribe', run: 'a', channels: ['gradients'], dtype: 'float64' });
    const frame = decodeFrame(await control.frame());
    expect(frame.kind).toBe('gradients');
    expect(frame.step).toBe(1);
    expect(bytes(frame.values as Float64Array).equals(bytes(run.trainer.workspace.grads))).toBe(true);
  });

  it('never sends non-finite parameters: a diverged event goes out instead (RELIABILITY 19)', async () => {
    const run = testRun({ paused: true });
    const server = await startServer({}, run);
    const client = await connect(server);
    run.trainer.model.params[3] = Number.NaN; // corrupted in memory
    client.send({ type: 'subscribe', run: 'a', channels: ['snapshots'] });
    const event = await client.next('event');
    expect(event).toMatchObject({ run: 'a', event: 'diverged', detail: { code: 'SG_ERR_DIVERGED' } });
    await new Promise((r) => setTimeout(r, 300));
    expect(client.frames).toHaveLength(0);
  });

  it('never sends ±Infinity in a float32 frame: weights beyond float32 go out as a float64 frame, exactly (issue 17, case 8)', async () => {
    const run = testRun({ paused: true });
    const server = await startServer({}, run);
    const client = await connect(server);
    // finite in float64, ±Infinity in float32: what 1e308 learning rates or unscaled data can do to weights
    const { params } = run.trainer.model;
    params[0] = 1.26e308;
    params[1] = -4e38;
    params[2] = 3.5e38;
    client.send({ type: 'subscribe', run: 'a', channels: ['snapshots'] }); // float32, the default
    const frame = decodeFrame(await client.frame());
    expect(frame.dtype).toBe('float64');
    expect(Array.from(frame.values).every(Number.isFinite)).toBe(true);
    expect(bytes(frame.values as Float64Array).equals(bytes(params))).toBe(true);
    // the timeline's history frames too
    const feed = new RunFeed(run, () => undefined);
    const [entry] = feed.history.query(undefined, 1, 1 << 30);
    const past = decodeFrame(entry.data);
    expect(past).toMatchObject({ kind: 'history', dtype: 'float64' });
    expect(Array.from(past.values).every(Number.isFinite)).toBe(true);
    feed.dispose();
    // and a frame that fits stays float32
    params[0] = params[1] = params[2] = 0.5;
    expect(decodeFrame(encodeFiniteFrame('parameters', 'float32', 'a', 0, feed.shape, params)!).dtype).toBe('float32');
  });

  it('setLearningRate 1e308 is refused (SG_ERR_CONFIG), nothing changes, and no frame ever holds Infinity (issue 17, case 8)', async () => {
    const run = testRun({ paused: true });
    const server = await startServer({}, run);
    const control = await connect(server, { token: TOKEN });
    void run.start();
    const lr = run.trainer.optimizer.learningRate;
    expect(await control.command({ type: 'setLearningRate', id: 'l1', run: 'a', learningRate: 1e308 })).toMatchObject({ type: 'error', code: 'SG_ERR_CONFIG', id: 'l1', message: 'learningRate: must be at most 10, got 1e+308' });
    expect(await control.command({ type: 'setLearningRate', id: 'l2', run: 'a', learningRate: 10.5 })).toMatchObject({ type: 'error', code: 'SG_ERR_CONFIG' });
    expect(run.trainer.optimizer.learningRate).toBe(lr);
    expect(await control.command({ type: 'setLearningRate', id: 'l3', run: 'a', learningRate: 10 })).toMatchObject({ type: 'ack', result: { learningRate: 10 } });
    for (let i = 0; i < 20; i++) expect(await control.command({ type: 'step', id: `s${i}`, run: 'a' })).toMatchObject({ type: 'ack' });
    control.send({ type: 'subscribe', run: 'a', channels: ['snapshots'] });
    const sent = await Promise.race([control.frame().then((data) => decodeFrame(data).values), control.next('event').then(() => null)]);
    if (sent !== null) expect(Array.from(sent).every(Number.isFinite)).toBe(true);
  });

  it('several runs on one server: subscribe to one, or to "*" for all of them, including later ones', async () => {
    const a = testRun({ id: 'a' });
    const b = testRun({ id: 'b', layers: [[5, 'relu'], [1, 'linear']] });
    const server = await startServer({}, a, b);
    const client = await connect(server);
    const hello = await client.next('hello');
    expect(hello.runs.map((r) => r.id)).toEqual(['a', 'b']);
    expect(hello.runs[1]).toMatchObject({ topology: { inputSize: 3, layers: [{ units: 5, activation: 'relu' }, { units: 1, activation: 'linear' }] }, loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.01 } });
    void a.start();
    void b.start();
    client.send({ type: 'subscribe', id: 'sub', run: '*', channels: ['snapshots', 'metrics'] });
    expect(await client.next('ack')).toMatchObject({ id: 'sub', command: 'subscribe', result: { run: '*', rateHz: 10, dtype: 'float32' } });
    const seen = new Set<string>();
    await client.until(() => {
      for (const f of client.frames.splice(0)) seen.add(decodeFrame(f).run);
      return seen.size === 2;
    }, 'frames of both runs');
    await client.next('metrics', (m) => m.run === 'a');
    await client.next('metrics', (m) => m.run === 'b');

    const c = testRun({ id: 'c', paused: true });
    server.addRun(c);
    expect((await client.next('run')).run).toMatchObject({ id: 'c', state: 'paused' });
    await client.until(() => client.frames.some((f) => decodeFrame(f).run === 'c'), 'a frame of the new run');

    server.removeRun('c');
    expect(await client.next('run-removed')).toEqual({ type: 'run-removed', run: 'c' });

    const single = await connect(server);
    single.send({ type: 'subscribe', run: 'b', channels: ['snapshots'] });
    await single.until(() => single.frames.length >= 3, 'three frames');
    expect(new Set(single.frames.map((f) => decodeFrame(f).run))).toEqual(new Set(['b']));
    single.send({ type: 'subscribe', id: 'x', run: 'nope', channels: ['snapshots'] });
    expect(await single.next('error')).toMatchObject({ id: 'x', code: 'SG_ERR_UNKNOWN_RUN' });
  });

  it('honours each client’s rate, capped at maxRateHz', async () => {
    const run = testRun();
    const server = await startServer({ maxRateHz: 20 }, run);
    const slow = await connect(server);
    const fast = await connect(server);
    const capped = await connect(server);
    void run.start();
    slow.send({ type: 'subscribe', run: 'a', channels: ['snapshots', 'metrics'], rateHz: 4 });
    fast.send({ type: 'subscribe', run: 'a', channels: ['snapshots', 'metrics'], rateHz: 20 });
    capped.send({ type: 'subscribe', id: 'c', run: 'a', channels: ['snapshots'], rateHz: 1000 });
    expect(await capped.next('ack')).toMatchObject({ result: { rateHz: 20 } });
    for (const c of [slow, fast, capped]) await c.frame();
    for (const c of [slow, fast, capped]) c.frames.length = 0;
    const started = performance.now();
    await new Promise((r) => setTimeout(r, 1500));
    const seconds = (performance.now() - started) / 1000;
    const rate = (n: number) => n / seconds;
    // loose bounds: timers on a loaded 2-core machine slip, but never run ahead
    expect(rate(slow.frames.length)).toBeGreaterThan(2);
    expect(rate(slow.frames.length)).toBeLessThanOrEqual(5);
    expect(rate(fast.frames.length)).toBeGreaterThan(8);
    expect(rate(fast.frames.length)).toBeLessThanOrEqual(22);
    expect(rate(capped.frames.length)).toBeLessThanOrEqual(22);
    const metrics = slow.messages.filter((m) => m.type === 'metrics').length;
    expect(rate(metrics)).toBeLessThanOrEqual(5.5);
  });

  it('metrics carry the step count, the rolling metrics and counters; unsubscribe stops everything', async () => {
    const run = testRun();
    const server = await startServer({}, run);
    const client = await connect(server);
    client.send({ type: 'subscribe', id: 's', run: '*', channels: ['metrics', 'events', 'gradients'], rateHz: 30 });
    await client.next('ack');
    void run.start();
    expect(await client.next('event', (e) => e.event === 'started')).toMatchObject({ run: 'a', step: 0 });
    const metrics = await client.next('metrics');
    expect(metrics).toMatchObject({ run: 'a', size: 1, learningRate: 0.01, updated: true, state: 'running', metrics: { window: 1000 } });
    expect(metrics.step).toBe(metrics.counters.steps);
    expect(metrics.counters).toMatchObject({ rejected: 0, skipped: 0 });
    const gradients = decodeFrame(await client.frame());
    expect(gradients).toMatchObject({ kind: 'gradients', dtype: 'float32', run: 'a' });
    client.send({ type: 'unsubscribe', id: 'u', run: '*' });
    expect(await client.next('ack')).toMatchObject({ id: 'u', command: 'unsubscribe' });
    await new Promise((r) => setTimeout(r, 50));
    client.messages.length = 0;
    client.frames.length = 0;
    run.pause();
    await new Promise((r) => setTimeout(r, 300));
    expect(client.messages).toEqual([]);
    expect(client.frames).toEqual([]);
  });
});

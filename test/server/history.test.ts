import { describe, expect, it } from 'vitest';
import { jsKernels } from '../../core/kernels-js.ts';
import { cloneModel } from '../../core/model.ts';
import { forwardPass } from '../../core/network.ts';
import { createWorkspace } from '../../core/workspace.ts';
import { SnapshotHistory } from '../../server/history.ts';
import { PredictionRing } from '../../server/predictions.ts';
import type { HistoryResult } from '../../server/protocol.ts';
import { decodeFrame } from '../../server/snapshot-frame.ts';
import { connect, startServer, testRun, TOKEN } from './helpers.ts';

const frameOf = (step: number, size = 100) => {
  const data = Buffer.alloc(size);
  data.writeUInt32LE(step, 0);
  return data;
};

describe('SnapshotHistory: a bounded, evenly spaced history of the weights', () => {
  it('captures at most once per interval, unless forced', () => {
    const h = new SnapshotHistory({ intervalMs: 100, capacity: 10, maxBytes: 1 << 20 });
    expect(h.capture(0, () => frameOf(0), 0)).toBe(true);
    expect(h.capture(1, () => frameOf(1), 50)).toBe(false);
    expect(h.capture(2, () => frameOf(2), 100)).toBe(true);
    expect(h.capture(3, () => frameOf(3), 120, true)).toBe(true);
    expect(h.capture(4, () => null, 500)).toBe(false); // refused by the encoder (non-finite weights)
    expect(h.steps()).toEqual([0, 2, 3]);
  });

  it('when full, drops every second entry (keeping the first and the newest) and doubles the interval', () => {
    const h = new SnapshotHistory({ intervalMs: 10, capacity: 5, maxBytes: 1 << 20 });
    for (let step = 0; step <= 4; step++) h.capture(step, () => frameOf(step), step * 10);
    expect(h.steps()).toEqual([0, 1, 2, 3, 4]);
    h.capture(5, () => frameOf(5), 50);
    expect(h.steps()).toEqual([0, 2, 4, 5]);
    expect(h.intervalMs).toBe(20);
    for (let step = 6; step < 2000; step++) h.capture(step, () => frameOf(step), step * 10);
    expect(h.size).toBeLessThanOrEqual(5);
    expect(h.steps()[0]).toBe(0);
    // the newest entry is recent (within one interval of the last capture offered)
    expect(1999 - h.steps()[h.size - 1]).toBeLessThanOrEqual(h.intervalMs / 10);
  });

  it('stays under its byte cap, and keeps at least one frame', () => {
    const h = new SnapshotHistory({ intervalMs: 0, capacity: 100, maxBytes: 350 });
    for (let step = 0; step < 20; step++) h.capture(step, () => frameOf(step), step);
    expect(h.byteLength).toBeLessThanOrEqual(350);
    expect(h.size).toBeGreaterThanOrEqual(2);
    const tiny = new SnapshotHistory({ intervalMs: 0, capacity: 100, maxBytes: 50 });
    tiny.capture(0, () => frameOf(0), 0);
    tiny.capture(1, () => frameOf(1), 1);
    expect(tiny.steps()).toEqual([1]);
  });

  it('query: from the first step at or after fromStep, up to limit, within a byte budget', () => {
    const h = new SnapshotHistory({ intervalMs: 0, capacity: 100, maxBytes: 1 << 20 });
    for (let step = 0; step < 10; step++) h.capture(step * 10, () => frameOf(step), step);
    expect(h.query(undefined, 2, 1e6).map((e) => e.step)).toEqual([0, 10]);
    expect(h.query(35, 3, 1e6).map((e) => e.step)).toEqual([40, 50, 60]);
    expect(h.query(1000, 3, 1e6).map((e) => e.step)).toEqual([90]); // past the newest: the newest
    expect(h.query(0, 64, 250).map((e) => e.step)).toEqual([0, 10]); // 100 bytes each
    expect(h.query(0, 64, 10).map((e) => e.step)).toEqual([0]); // always one
    expect(h.query(0, 0, 1e6)).toEqual([]);
  });

  it('PredictionRing keeps the last rows in order, skipping non-finite ones', () => {
    const ring = new PredictionRing(2, 1, 3);
    ring.record(Float64Array.of(1, 1, 2, 2), Float64Array.of(10, 20), Float64Array.of(11, 21), 2);
    ring.record(Float64Array.of(3, 3, 4, 4, 5, 5), Float64Array.of(30, Number.NaN, 50), Float64Array.of(31, 41, 51), 3);
    const message = ring.message('r', 3, 5)!;
    expect(message).toMatchObject({ type: 'predictions', run: 'r', step: 3, samples: 5, rows: 3, outputSize: 1, outputs: [20, 30, 50], targets: [21, 31, 51], inputs: [2, 2, 3, 3, 5, 5] });
    expect(new PredictionRing(40, 1).message('r', 0, 0)).toBeNull();
  });
});

describe('history requests over the WebSocket', () => {
  it('lists the steps held and sends the asked frames, bitwise the weights of those steps (float32)', async () => {
    const run = testRun({ paused: true });
    const server = await startServer({ historyIntervalMs: 0, historyFrames: 64 }, run);
    const control = await connect(server, { token: TOKEN });
    const seen = new Map<number, number[]>([[0, Array.from(run.trainer.model.params, Math.fround)]]);
    run.results.subscribe(() => seen.set(run.trainer.counters.steps, Array.from(run.trainer.model.params, Math.fround)));
    void run.start();
    for (let i = 1; i <= 5; i++) expect(await control.command({ type: 'step', id: `s${i}`, run: 'a' })).toMatchObject({ type: 'ack' });

    const viewer = await connect(server); // read-only may look back too
    const index = await viewer.command({ type: 'history', id: 'h0', run: 'a', limit: 0 });
    expect(index).toMatchObject({ type: 'ack', command: 'history', result: { run: 'a', steps: [0, 1, 2, 3, 4, 5], sent: [], capacity: 64 } });
    expect(viewer.frames).toHaveLength(0);

    const answer = await viewer.command({ type: 'history', id: 'h1', run: 'a', fromStep: 2, limit: 3 });
    expect((answer as { result: HistoryResult }).result.sent).toEqual([2, 3, 4]);
    for (const step of [2, 3, 4]) {
      const frame = decodeFrame(await viewer.frame());
      expect(frame).toMatchObject({ kind: 'history', dtype: 'float32', run: 'a', step, inputSize: 3 });
      expect(Array.from(frame.values)).toEqual(seen.get(step));
    }
    // the default is one frame, from the oldest
    const first = await viewer.command({ type: 'history', id: 'h2', run: 'a' });
    expect((first as { result: HistoryResult }).result.sent).toEqual([0]);
    expect(decodeFrame(await viewer.frame()).step).toBe(0);
  });

  it('live snapshots are unaffected: history frames have their own kind', async () => {
    const run = testRun({ paused: true });
    const server = await startServer({ historyIntervalMs: 0 }, run);
    const client = await connect(server);
    client.send({ type: 'subscribe', run: 'a', channels: ['snapshots'] });
    expect(decodeFrame(await client.frame()).kind).toBe('parameters');
    await client.command({ type: 'history', id: 'h', run: 'a' });
    expect(decodeFrame(await client.frame()).kind).toBe('history');
  });

  it('refuses unknown runs and bad fields, and keeps the connection', async () => {
    const run = testRun({ paused: true });
    const server = await startServer({}, run);
    const client = await connect(server);
    expect(await client.command({ type: 'history', id: 'x', run: 'nope' })).toMatchObject({ type: 'error', code: 'SG_ERR_UNKNOWN_RUN' });
    expect(await client.command({ type: 'history', id: 'y', run: 'a', limit: 65 })).toMatchObject({ type: 'error', code: 'SG_ERR_SCHEMA' });
    expect(await client.command({ type: 'history', id: 'z', run: 'a', fromStep: -1 })).toMatchObject({ type: 'error', code: 'SG_ERR_SCHEMA' });
    expect(await client.command({ type: 'history', id: 'w', run: 'a', limit: 0 })).toMatchObject({ type: 'ack', result: { steps: [0] } });
  });

  it('a training run keeps a bounded history that spans it, and never non-finite weights (RELIABILITY 19)', async () => {
    const run = testRun();
    const server = await startServer({ historyIntervalMs: 0, historyFrames: 16 }, run);
    const client = await connect(server);
    void run.start();
    await client.until(() => run.trainer.counters.steps >= 2000, '2000 steps');
    run.pause();
    const answer = await client.command({ type: 'history', id: 'h', run: 'a', limit: 0 });
    const { steps } = (answer as { result: HistoryResult }).result;
    expect(steps.length).toBeLessThanOrEqual(16);
    expect(steps.length).toBeGreaterThan(4);
    expect(steps[0]).toBe(0);
    expect(steps[steps.length - 1]).toBe(run.trainer.counters.steps); // the pause keeps the weights as they are then
    expect([...steps].sort((x, y) => x - y)).toEqual(steps);

    run.trainer.model.params[0] = Number.NaN;
    run.reset(); // params back to the (finite) initial ones: kept
    run.trainer.model.params[1] = Number.POSITIVE_INFINITY;
    run.resume();
    run.pause(); // settles with non-finite weights: not kept
    const after = await client.command({ type: 'history', id: 'h2', run: 'a', fromStep: run.trainer.counters.steps, limit: 64 });
    for (const _ of (after as { result: HistoryResult }).result.sent) {
      const frame = decodeFrame(await client.frame());
      expect(Array.from(frame.values).every(Number.isFinite)).toBe(true);
    }
  });
});

describe('the predictions channel', () => {
  it('sends the last trained samples: inputs, targets and the outputs the model gave before learning them', async () => {
    const run = testRun({ paused: true });
    const server = await startServer({}, run);
    const control = await connect(server, { token: TOKEN });
    const before = cloneModel(run.trainer.model, jsKernels);
    let batch: { x: number[]; y: number[] } | null = null;
    void run.start();
    expect(await control.command({ type: 'step', id: 's1', run: 'a' })).toMatchObject({ type: 'ack', result: { step: 1 } });
    batch = { x: Array.from(run.trainer.workspace.x.subarray(0, 3)), y: Array.from(run.trainer.workspace.y.subarray(0, 1)) };
    control.send({ type: 'subscribe', run: 'a', channels: ['predictions'] });
    const message = await control.next('predictions');
    expect(message).toMatchObject({ run: 'a', step: 1, samples: 1, rows: 1, outputSize: 1 });
    expect(message.inputs).toEqual(batch.x.map((v) => Number(v.toPrecision(7))));
    expect(message.targets).toEqual(batch.y.map((v) => Number(v.toPrecision(7))));
    const ws = createWorkspace(before, 1, jsKernels.allocate);
    ws.x.set(batch.x);
    forwardPass(jsKernels, before, ws, 1);
    expect(message.outputs[0]).toBeCloseTo(ws.a[ws.a.length - 1][0], 5);
  });

  it('leaves the inputs out for models with more than 16 inputs', async () => {
    const run = testRun({ inputs: 20, layers: [[4, 'tanh'], [2, 'linear']] });
    const server = await startServer({}, run);
    const client = await connect(server);
    void run.start();
    client.send({ type: 'subscribe', run: 'a', channels: ['predictions'], rateHz: 30 });
    const message = await client.next('predictions');
    expect(message.outputSize).toBe(2);
    expect(message.inputs).toBeUndefined();
    expect(message.outputs).toHaveLength(message.rows * 2);
    expect(message.rows).toBeGreaterThan(0);
    expect(message.rows).toBeLessThanOrEqual(128);
  });
});

import { describe, expect, it } from 'vitest';
import { parseServerMessage } from '../../clients/node/server-message.ts';
import type { ScalarsMessage } from '../../server/protocol.ts';
import { SCALAR_COLUMNS, ScalarHistory } from '../../server/scalar-history.ts';
import { serve } from '../../server/server.ts';
import { serveInThread } from '../../server/threaded-server.ts';
import { connect, onCleanup, samples, testRun, TOKEN } from './helpers.ts';

/** A row of SCALAR_COLUMNS at `step` (loss = 1/step, so every value tells its step). */
const row = (step: number) => [step, 1_700_000_000_000 + step, 1 / step, 2 / step, 3 / step, Number.NaN, 0.5, 0.01];

describe('ScalarHistory: a run\'s curve in fixed memory', () => {
  it('keeps every step of a short run, then the multiples of a doubling stride, the first point and the newest step', () => {
    const h = new ScalarHistory(16);
    for (let s = 1; s <= 16; s++) h.record(row(s));
    expect(h.stride).toBe(1);
    expect(h.message('a')!.step).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    for (let s = 17; s <= 1000; s++) h.record(row(s));
    const m = h.message('a')!;
    expect(h.size).toBeLessThanOrEqual(17);
    expect(m.step[0]).toBe(1);
    expect(m.step.at(-1)).toBe(1000);
    // the points between the first and the tip are evenly spaced, on the stride
    const inner = m.step.slice(1, -1);
    expect(inner.every((s) => s % m.stride === 0)).toBe(true);
    for (let i = 1; i < inner.length; i++) expect(inner[i] - inner[i - 1]).toBe(m.stride);
    expect(m.loss[m.points - 1]).toBeCloseTo(1 / 1000, 8);
    expect(m.accuracy.every((v) => v === null)).toBe(true);
    expect(m.time[0]).toBe(0);
    expect(m.t0).toBe(1_700_000_000_001);
  });

  it('ignores late or repeated steps, and its encoded message is cached until it changes and passes the clients\' check', () => {
    const h = new ScalarHistory(8);
    h.record(row(5));
    h.record(row(5));
    h.record(row(3));
    expect(h.size).toBe(1);
    const a = h.encoded('r')!;
    expect(h.encoded('r')).toBe(a);
    h.record(row(6));
    const b = h.encoded('r')!;
    expect(b).not.toBe(a);
    const parsed = parseServerMessage(b.toString('utf8')) as ScalarsMessage;
    expect(parsed).toMatchObject({ type: 'scalars', run: 'r', points: 2, step: [5, 6] });
    // a malformed history is dropped by the clients' check
    expect(parseServerMessage(JSON.stringify({ ...parsed, step: [6, 5] }))).toBeNull();
    expect(parseServerMessage(JSON.stringify({ ...parsed, loss: [1] }))).toBeNull();
    expect(SCALAR_COLUMNS).toHaveLength(8);
  });
});

describe.each([['in-thread', serve], ['threaded', serveInThread]] as const)('the %s server sends each run\'s whole curve on subscribe', (_name, start) => {
  it('a client that connects after a short run finished gets every step; after a long one an evenly thinned curve to the last step', async () => {
    const server = await start({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist' });
    onCleanup(() => server.close());
    const short = testRun({ id: 'short', source: samples(3, 1, 7, 600) });
    const long = testRun({ id: 'long', source: samples(3, 1, 8, 20_000) });
    server.addRun(short);
    server.addRun(long);
    await Promise.all([short.start(), long.start()]);
    expect(short.state).toBe('completed');
    // the threaded server sees the last steps at its next publish
    await new Promise((resolve) => setTimeout(resolve, 300));

    const client = await connect(server);
    await client.next('hello');
    client.send({ type: 'subscribe', run: '*', channels: ['metrics'] });
    const s = await client.next('scalars', (m) => m.run === 'short');
    expect(s.points).toBe(600);
    expect(s.step).toEqual(Array.from({ length: 600 }, (_, i) => i + 1));
    expect(s.loss.every((v) => v === null || Number.isFinite(v))).toBe(true);
    expect(s.loss.filter((v) => v !== null).length).toBeGreaterThan(590);
    // time runs forward
    for (let i = 1; i < s.points; i++) expect(s.time[i]!).toBeGreaterThanOrEqual(s.time[i - 1]!);

    const l = await client.next('scalars', (m) => m.run === 'long');
    expect(l.points).toBeLessThanOrEqual(1025);
    expect(l.points).toBeGreaterThan(500);
    expect(l.step[0]).toBe(1);
    expect(l.step.at(-1)).toBe(20_000);
    expect(l.stride).toBeGreaterThan(1);
    const inner = l.step.slice(1, -1);
    for (let i = 1; i < inner.length; i++) expect(inner[i] - inner[i - 1]).toBe(l.stride);
    // compact: a new connection costs tens of kilobytes per run, not the run's length
    expect(JSON.stringify(l).length).toBeLessThan(120_000);

    // the history comes before the first metrics of its run, once per subscription
    const order = client.messages.filter((m) => m.type === 'metrics' || m.type === 'scalars').map((m) => m.type);
    expect(order.filter((t) => t === 'scalars')).toHaveLength(0);
    client.send({ type: 'subscribe', run: 'short', channels: ['metrics'] });
    expect((await client.next('scalars', (m) => m.run === 'short')).points).toBe(600);
  });

  it('a page opened mid-run gets the curve so far, then live metrics from where it ends', async () => {
    const server = await start({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist' });
    onCleanup(() => server.close());
    const run = testRun({ id: 'live' });
    server.addRun(run);
    void run.start();
    const first = await connect(server);
    await first.next('hello');
    first.send({ type: 'subscribe', run: 'live', channels: ['metrics'] });
    await first.until(() => run.trainer.counters.steps > 2000, 'training');
    const late = await connect(server);
    await late.next('hello');
    late.send({ type: 'subscribe', run: 'live', channels: ['metrics'] });
    const history = await late.next('scalars');
    expect(history.step[0]).toBe(1);
    expect(history.step.at(-1)!).toBeGreaterThan(1000);
    const live = await late.next('metrics');
    expect(live.step).toBeGreaterThanOrEqual(history.step.at(-1)!);
    expect(live.time).toBeGreaterThan(1_600_000_000_000);
  });
});

describe.each([['in-thread', serve], ['threaded', serveInThread]] as const)('drift on the %s server', (_name, start) => {
  it('counts drift events and reactions in /metrics, and a new events subscriber gets the run\'s recent events once', async () => {
    const server = await start({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist' });
    onCleanup(() => server.close());
    // the target flips sign at sample 3000: the loss jumps, Page-Hinkley sees it, the learning rate is boosted
    function* flipping() {
      let i = 0;
      for (const s of samples(3, 1, 9, 6000)) yield { x: s.x, y: s.y.map((v) => (i++ < 3000 ? v : -v)) };
    }
    const run = testRun({ id: 'flip', source: flipping() });
    const drifting = new (await import('../../pipeline/run.ts')).TrainingRun({
      id: 'drifting', trainer: run.trainer, source: flipping(),
      drift: new (await import('../../pipeline/drift-adaptation.ts')).DriftAdaptation(run.trainer, { detector: { kind: 'page-hinkley', delta: 0.005, threshold: 5, minInstances: 500, mode: 'up' }, reaction: { kind: 'boost-lr', factor: 3, samples: 200 } }),
    });
    onCleanup(() => drifting.dispose());
    server.addRun(drifting);
    await drifting.start();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const drifts = Number(/streamgrad_drift_events_total\{run="drifting",event="drift"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    const boosts = Number(/streamgrad_drift_reactions_total\{run="drifting",reaction="boost-lr"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    expect(drifts, metrics).toBeGreaterThanOrEqual(1);
    expect(boosts).toBeGreaterThanOrEqual(1);

    const client = await connect(server);
    await client.next('hello');
    client.send({ type: 'subscribe', run: '*', channels: ['events'] });
    const recent = await client.next('recent-events');
    expect(recent.run).toBe('drifting');
    const kinds = recent.events.map((e) => e.event);
    expect(kinds[0]).toBe('started');
    expect(kinds.at(-1)).toBe('completed');
    const drift = recent.events.find((e) => e.event === 'drift')!;
    expect(drift.step).toBeGreaterThan(3000);
    expect(drift.detail).toMatchObject({ detector: 'page-hinkley' });
    expect(recent.events.find((e) => e.event === 'drift-reaction')).toMatchObject({ detail: { reaction: 'boost-lr' } });
    // nothing of it comes again as a plain event
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(client.messages.filter((m) => m.type === 'event')).toEqual([]);
  });
});

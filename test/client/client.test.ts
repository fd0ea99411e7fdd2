import type { Observable } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { CommandError, ConnectionError } from '../../clients/node/errors.ts';
import type { ConnectionState } from '../../clients/node/client.ts';
import { first, firstN, liveClient, liveProxy, liveRun, liveServer, sleep, TOKEN, trackHandles, until } from './live.ts';

/**
 * The Node client against the real server (server/server.ts) and real TrainingRuns:
 * RELIABILITY.md rows 2 (QoS 0 snapshots, QoS 1 commands), 35 (no control without the
 * token), 36 (origin/token at the handshake) and 37 (a resent id is applied once).
 */

describe('connect: hello and the run list', () => {
  it('goes connecting → open, gets the hello (read-only without a token) and follows runs added and removed', async () => {
    const server = await liveServer({}, liveRun('a'));
    const client = liveClient(server.wsUrl);
    const states: ConnectionState[] = [];
    client.state$.subscribe((s) => states.push(s));
    const hello = await first(client.hello$);
    expect(hello).toMatchObject({ type: 'hello', protocol: 1, access: 'read-only' });
    expect(hello.runs.map((r) => r.id)).toEqual(['a']);
    expect(hello.runs[0]).toMatchObject({ topology: { inputSize: 3 }, loss: 'mse', parameters: 21 });
    expect(states).toEqual(['connecting', 'open']);
    expect((await first(client.runs$)).map((r) => r.id)).toEqual(['a']);

    server.addRun(liveRun('b'));
    expect((await first(client.runs$, (runs) => runs.length === 2)).map((r) => r.id)).toEqual(['a', 'b']);
    server.removeRun('a');
    expect((await first(client.runs$, (runs) => runs.length === 1)).map((r) => r.id)).toEqual(['b']);
  });

  it('refuses a bad URL or option at once', async () => {
    const { connect } = await import('../../clients/node/client.ts');
    expect(() => connect('http://127.0.0.1:1/ws')).toThrow(/expected ws:\/\/ or wss:\/\//);
    expect(() => connect('not a url')).toThrow(/not a URL/);
    expect(() => connect('ws://u:p@127.0.0.1:1/ws')).toThrow(/credentials/);
    expect(() => connect('ws://127.0.0.1:1/ws', { retries: -1 })).toThrow(/retries/);
    expect(() => connect('ws://127.0.0.1:1/ws', { commandTimeoutMs: 0 })).toThrow(/commandTimeoutMs/);
    expect(() => connect('ws://127.0.0.1:1/ws', { backoff: { factor: 0.5 } })).toThrow(/backoff.factor/);
    expect(() => connect('ws://127.0.0.1:1/ws', { token: 'a\r\nX-Evil: 1' })).toThrow(/token/);
  });
});

describe('subscriptions: metrics (JSON) and snapshots (SGF1 frames)', () => {
  it('delivers metrics of a running run, filtered by run', async () => {
    const server = await liveServer({}, liveRun('a'), liveRun('b'));
    const client = liveClient(server.wsUrl);
    const metrics = firstN(client.metrics$('a'), 3);
    await client.subscribe('*', ['metrics'], { rateHz: 30 });
    const got = await metrics;
    for (const m of got) {
      expect(m).toMatchObject({ type: 'metrics', run: 'a', state: 'running', learningRate: 0.01 });
      expect(Number.isFinite(m.loss)).toBe(true);
      expect(m.step).toBeGreaterThan(0); // the trainer's step count, as in frames and events
      expect(m.counters.steps).toBeGreaterThanOrEqual(m.step);
    }
    expect(got[2].step).toBeGreaterThan(got[0].step);
    expect(client.stats.badMessages).toBe(0);
  });

  it('scalars$ gets each run\'s curve so far on subscribing to metrics, before its metrics', async () => {
    const run = liveRun('a');
    const server = await liveServer({}, run);
    await until(() => run.trainer.counters.steps > 200, 5000, 'training');
    const client = liveClient(server.wsUrl);
    const order: string[] = [];
    client.scalars$('a').subscribe(() => order.push('scalars'));
    client.metrics$('a').subscribe(() => order.push('metrics'));
    const history = first(client.scalars$('a'));
    await client.subscribe('a', ['metrics'], { rateHz: 30 });
    const h = await history;
    expect(h).toMatchObject({ type: 'scalars', run: 'a' });
    // from the step the run had when the server took it on
    expect(h.step.at(-1)!).toBeGreaterThan(200);
    expect(h.points).toBeGreaterThan(100);
    await until(() => order.length >= 3, 5000, 'metrics after the history');
    expect(order[0]).toBe('scalars');
    expect(client.stats.badMessages).toBe(0);
  });

  it('a float64 snapshot holds the model parameters bitwise; float32 holds them rounded to float32', async () => {
    const run = liveRun('a');
    const server = await liveServer({}, run);
    await until(() => run.trainer.counters.steps > 10, 5000, 'training');
    run.pause(); // the parameters stay put from here on
    const params = run.trainer.model.params;
    const client = liveClient(server.wsUrl);
    const snapshot = first(client.snapshots$('a'));
    await client.subscribe('a', ['snapshots'], { dtype: 'float64' });
    const frame = await snapshot;
    expect(frame).toMatchObject({ kind: 'parameters', dtype: 'float64', run: 'a', step: run.trainer.counters.steps, inputSize: 3 });
    expect(frame.values).toBeInstanceOf(Float64Array);
    expect(Buffer.from(frame.values.buffer, frame.values.byteOffset, frame.values.byteLength).equals(Buffer.from(params.buffer, params.byteOffset, params.byteLength))).toBe(true);
    expect(frame.layers.map((l) => [l.inputs, l.units])).toEqual([[3, 4], [4, 1]]);

    const client32 = liveClient(server.wsUrl);
    const snapshot32 = first(client32.snapshots$());
    await client32.subscribe('a', ['snapshots']);
    const frame32 = await snapshot32;
    expect(frame32.dtype).toBe('float32');
    expect(Array.from(frame32.values)).toEqual(Array.from(params, Math.fround));
  });

  it('subscribe to a run the server does not have rejects with SG_ERR_UNKNOWN_RUN and is forgotten', async () => {
    const server = await liveServer({}, liveRun('a'));
    const client = liveClient(server.wsUrl);
    const error = await client.subscribe('nope', ['metrics']).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect(error).toMatchObject({ code: 'SG_ERR_UNKNOWN_RUN', command: 'subscribe' });
    await expect(client.subscribe('a', ['metrics'], { rateHz: 1e9 })).resolves.toBeUndefined(); // capped by the server
    await expect(client.subscribe('a', [])).rejects.toMatchObject({ code: 'SG_ERR_SCHEMA' }); // checked before sending
  });
});

describe('commands (QoS 1)', () => {
  it('pause stops the steps, step advances exactly one, setLearningRate and resume take effect; events arrive', async () => {
    const run = liveRun('a');
    const server = await liveServer({}, run);
    const client = liveClient(server.wsUrl, { token: TOKEN });
    expect((await first(client.hello$)).access).toBe('control');
    const events: string[] = [];
    client.events$('a').subscribe((e) => events.push(e.event));
    await client.subscribe('a', ['events']);
    await until(() => run.trainer.counters.steps > 0, 5000, 'training');

    const paused = await client.command('a', 'pause');
    expect(paused).toMatchObject({ type: 'ack', command: 'pause', duplicate: false, result: { state: 'paused' } });
    expect(run.state).toBe('paused');
    const at = run.trainer.counters.steps;
    await sleep(100);
    expect(run.trainer.counters.steps).toBe(at);

    const stepped = await client.command('a', 'step');
    expect(stepped.result).toMatchObject({ step: at + 1 });
    expect(run.trainer.counters.steps).toBe(at + 1);

    const lr = await client.command('a', 'setLearningRate', { learningRate: 0.002 });
    expect(lr.result).toEqual({ learningRate: 0.002 });
    expect(run.trainer.optimizer.learningRate).toBe(0.002);

    await client.command('a', 'resume');
    await until(() => run.trainer.counters.steps > at + 5, 5000, 'steps after resume');
    await until(() => events.length >= 3, 2000, 'events');
    expect(events).toEqual(['paused', 'learning-rate', 'resumed']);
  });

  it('server refusals reject with a typed CommandError: a wrong state, a bad value, an unknown run', async () => {
    const server = await liveServer({}, liveRun('a'));
    const client = liveClient(server.wsUrl, { token: TOKEN });
    await expect(client.command('a', 'step')).rejects.toMatchObject({ name: 'CommandError', code: 'SG_ERR_STATE', command: 'step' });
    await expect(client.command('a', 'checkpoint')).rejects.toMatchObject({ code: 'SG_ERR_STATE' });
    await expect(client.command('zz', 'pause')).rejects.toMatchObject({ code: 'SG_ERR_UNKNOWN_RUN' });
    // caught by the protocol's own schema before anything is sent
    await expect(client.command('a', 'setLearningRate', { learningRate: -1 })).rejects.toMatchObject({ code: 'SG_ERR_SCHEMA' });
    await expect(client.command('a', 'rm -rf' as 'pause')).rejects.toMatchObject({ code: 'SG_ERR_UNKNOWN_TYPE' });
  });

  it('without the token a command is refused with SG_ERR_FORBIDDEN and changes nothing', async () => {
    const run = liveRun('a');
    const server = await liveServer({}, run);
    const client = liveClient(server.wsUrl);
    const error = await client.command('a', 'setLearningRate', { learningRate: 0.5 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CommandError);
    expect(error).toMatchObject({ code: 'SG_ERR_FORBIDDEN', command: 'setLearningRate' });
    expect((error as Error).message).not.toContain(TOKEN);
    expect(run.trainer.optimizer.learningRate).toBe(0.01);
    expect(run.state).toBe('running');
  });

  it('a lost ack makes the client resend the same id; the server applies it once and acks the duplicate', async () => {
    const run = liveRun('a', { paused: true });
    const server = await liveServer({}, run);
    const proxy = await liveProxy(server.port);
    const client = liveClient(`ws://127.0.0.1:${proxy.port}/ws`, { token: TOKEN, origin: server.url, commandTimeoutMs: 300 });
    await first(client.hello$);
    const before = run.trainer.counters.steps;
    proxy.blackhole = true; // the quiet link loses the first answer
    const acked = client.command('a', 'step');
    await until(() => proxy.dropped > 0, 2000, 'first ack dropped');
    proxy.blackhole = false;
    const ack = await acked;
    expect(ack).toMatchObject({ command: 'step', duplicate: true });
    expect(run.trainer.counters.steps).toBe(before + 1);
  });

  it('gives up after 1 + retries sends with SG_ERR_TIMEOUT', async () => {
    const run = liveRun('a', { paused: true });
    const server = await liveServer({}, run);
    const proxy = await liveProxy(server.port);
    const client = liveClient(`ws://127.0.0.1:${proxy.port}/ws`, { token: TOKEN, origin: server.url, commandTimeoutMs: 100, retries: 2 });
    await first(client.hello$);
    proxy.blackhole = true;
    const error = await client.command('a', 'step').catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'CommandError', code: 'SG_ERR_TIMEOUT' });
    expect((error as Error).message).toMatch(/3 send\(s\)/);
    expect(run.trainer.counters.steps).toBe(1); // three sends, one step
  });
});

describe('the handshake: token and origin', () => {
  it('a wrong token is refused (401): the client stops with SG_ERR_UNAUTHORIZED and does not reconnect', async () => {
    const server = await liveServer({}, liveRun('a'));
    const client = liveClient(server.wsUrl, { token: 'wrong-token' });
    const states: ConnectionState[] = [];
    const failed = new Promise<unknown>((resolve) => client.state$.subscribe({ next: (s) => states.push(s), error: resolve }));
    const error = await failed;
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ code: 'SG_ERR_UNAUTHORIZED', details: { status: 401 } });
    expect((error as Error).message).toMatch(/401.*token/);
    expect((error as Error).message).not.toContain('wrong-token');
    expect(states).toEqual(['connecting', 'closed']);
    await expect(client.command('a', 'pause')).rejects.toMatchObject({ code: 'SG_ERR_CLOSED' });
    await sleep(100);
    expect(server.stats.refusedHandshakes).toBe(1);
  });

  it('a foreign origin, or no origin and no token, is refused (403) with SG_ERR_FORBIDDEN', async () => {
    const server = await liveServer({}, liveRun('a'));
    for (const options of [{ origin: 'https://evil.example' }, { origin: null }]) {
      const client = liveClient(server.wsUrl, options);
      const error = await new Promise<unknown>((resolve) => client.hello$.subscribe({ error: resolve }));
      expect(error).toMatchObject({ name: 'ConnectionError', code: 'SG_ERR_FORBIDDEN', details: { status: 403 } });
    }
    // no origin but the token: a command-line tool
    const tool = liveClient(server.wsUrl, { origin: null, token: TOKEN });
    expect((await first(tool.hello$)).access).toBe('control');
    await sleep(50);
    expect(server.stats.refusedHandshakes).toBe(2);
  });
});

describe('reconnect', () => {
  it('after the server restarts on the same port: reconnecting → open, subscriptions resume, metrics flow again', async () => {
    const server = await liveServer({}, liveRun('a'));
    const port = server.port;
    const client = liveClient(server.wsUrl);
    const states: ConnectionState[] = [];
    client.state$.subscribe((s) => states.push(s));
    const before = first(client.metrics$('a'));
    await client.subscribe('a', ['metrics'], { rateHz: 30 });
    await before;

    await server.close();
    await first(client.state$, (s) => s === 'reconnecting');
    await sleep(100); // a few refused attempts while the port is closed

    const fresh = liveRun('a', { learningRate: 0.005 }); // a new process would start a new run
    await liveServer({ port }, fresh);
    const after = await first(client.metrics$('a'), (m) => m.learningRate === 0.005);
    expect(after.run).toBe('a');
    expect(states.slice(0, 3)).toEqual(['connecting', 'open', 'reconnecting']);
    expect(states.at(-1)).toBe('open');
    expect(client.stats.reconnects).toBe(1);
  });

  it('a re-subscription the restarted server refuses (the run is gone) shows up on errors$ and is forgotten', async () => {
    const server = await liveServer({}, liveRun('a'));
    const port = server.port;
    const client = liveClient(server.wsUrl);
    await client.subscribe('a', ['metrics']);
    await server.close();
    const refused = first(client.errors$);
    await liveServer({ port }, liveRun('b'));
    expect(await refused).toMatchObject({ type: 'error', code: 'SG_ERR_UNKNOWN_RUN', message: expect.stringMatching(/^subscribe \(run "a"\): no run of that name \(run\)/) });
  });

  it('resends an unanswered command after a reconnect, under its id', async () => {
    const run = liveRun('a', { paused: true });
    const server = await liveServer({}, run);
    const proxy = await liveProxy(server.port);
    const client = liveClient(`ws://127.0.0.1:${proxy.port}/ws`, { token: TOKEN, origin: server.url, commandTimeoutMs: 10_000 });
    await first(client.hello$);
    proxy.blackhole = true;
    const acked = client.command('a', 'step');
    await until(() => proxy.dropped > 0, 2000, 'first ack dropped');
    proxy.blackhole = false;
    proxy.cut(); // no timeout needed: the reconnect resends it
    const ack = await acked;
    expect(ack.duplicate).toBe(true);
    expect(run.trainer.counters.steps).toBe(1);
    expect(client.stats.reconnects).toBe(1);
  });

  it('with reconnect off, a lost connection ends the client with SG_ERR_CONNECTION', async () => {
    const server = await liveServer({}, liveRun('a'));
    const client = liveClient(server.wsUrl, { reconnect: false });
    await first(client.hello$);
    const failed = new Promise<unknown>((resolve) => client.metrics$().subscribe({ error: resolve }));
    await server.close();
    expect(await failed).toMatchObject({ name: 'ConnectionError', code: 'SG_ERR_CONNECTION', details: { closeCode: 1001 } });
  });
});

describe('close()', () => {
  /** Active handles by type, without the run's setImmediate slices. */
  const handles = () => process.getActiveResourcesInfo().filter((r) => r !== 'Immediate').sort();
  /** Asserts that no kind of handle is more numerous than `before` (a timer of the test runner may end meanwhile). */
  const expectNoNewHandles = (before: readonly string[]) => {
    const count = (list: readonly string[]) => list.reduce((m, r) => m.set(r, (m.get(r) ?? 0) + 1), new Map<string, number>());
    const was = count(before);
    const extra = [...count(handles())].filter(([r, n]) => n > (was.get(r) ?? 0));
    expect(extra).toEqual([]);
  };

  it('leaves no active handles, completes the streams and fails what was waiting', async () => {
    const run = liveRun('a');
    const server = await liveServer({}, run);
    await sleep(20);
    const before = handles();
    const tracked = trackHandles();
    const client = liveClient(server.wsUrl, { token: TOKEN });
    await client.subscribe('a', ['metrics', 'snapshots', 'events'], { rateHz: 30 });
    await first(client.metrics$('a'));
    await client.command('a', 'setLearningRate', { learningRate: 0.02 });
    let completed = 0;
    const streams: Observable<unknown>[] = [client.state$, client.hello$, client.runs$, client.metrics$(), client.events$(), client.snapshots$(), client.errors$];
    for (const s of streams) {
      s.subscribe({ complete: () => completed++ });
    }
    await client.close();
    expect(completed).toBe(7);
    await until(() => server.stats.clients === 0, 2000, 'server saw the close');
    expectNoNewHandles(before);
    expect(handles()).not.toContain('TCPSocketWrap');
    await until(() => tracked.alive().length === 0, 1000, `no handle left (${tracked.alive().join('; ')})`);
    await expect(client.command('a', 'pause')).rejects.toMatchObject({ code: 'SG_ERR_CLOSED' });
    await client.close(); // twice is fine
  });

  it('while reconnecting: stops the backoff timer at once', async () => {
    const before = handles();
    const server = await liveServer({}, liveRun('a'));
    const tracked = trackHandles();
    const client = liveClient(server.wsUrl, { backoff: { initialMs: 5000, maxMs: 5000 } });
    await first(client.hello$);
    const pending = client.subscribe('a', ['metrics']);
    await pending;
    await server.close();
    await first(client.state$, (s) => s === 'reconnecting');
    const t = performance.now();
    await client.close();
    expect(performance.now() - t).toBeLessThan(1000); // not the 5 s backoff
    expectNoNewHandles(before); // the closed server's are gone too
    await until(() => tracked.alive().length === 0, 1000, `no handle left (${tracked.alive().join('; ')})`);
  });
});

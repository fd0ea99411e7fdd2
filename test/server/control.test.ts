import { describe, expect, it } from 'vitest';
import { hashOf } from '../helpers/streams.ts';
import { APPLIED_SECTION, AppliedOnce, commandKey } from '../../server/applied-once.ts';
import { serve } from '../../server/server.ts';
import { serveInThread } from '../../server/threaded-server.ts';
import { connect, handshakeStatus, onCleanup, sleep, startServer, testRun, TOKEN } from './helpers.ts';

describe('control channel: token, origin, commands applied once', () => {
  it('without the token a client is read-only: every command is refused and nothing changes', async () => {
    const run = testRun({ paused: true });
    const lines: string[] = [];
    const server = await startServer({ log: (l) => lines.push(l) }, run);
    const client = await connect(server);
    expect((await client.next('hello')).access).toBe('read-only');
    void run.start();
    const before = hashOf(run.trainer.model.params);
    const lr = run.trainer.optimizer.learningRate;
    const commands = [
      { type: 'resume', id: 'c1', run: 'a' },
      { type: 'step', id: 'c2', run: 'a' },
      { type: 'setLearningRate', id: 'c3', run: 'a', learningRate: 10 },
      { type: 'reset', id: 'c4', run: 'a' },
      { type: 'checkpoint', id: 'c5', run: 'a' },
      { type: 'pause', id: 'c6', run: 'a' },
    ];
    for (const command of commands) expect(await client.command(command)).toMatchObject({ type: 'error', code: 'SG_ERR_FORBIDDEN', id: command.id });
    await sleep(50);
    expect(run.state).toBe('paused');
    expect(run.trainer.counters.steps).toBe(0);
    expect(run.trainer.optimizer.learningRate).toBe(lr);
    expect(hashOf(run.trainer.model.params)).toBe(before);
    // a wrong token in an auth message is refused too, and never logged
    expect(await client.command({ type: 'auth', id: 'a1', token: 'guess-1234' })).toMatchObject({ type: 'error', code: 'SG_ERR_FORBIDDEN' });
    expect(await client.command({ type: 'auth', id: 'a2', token: TOKEN })).toMatchObject({ type: 'ack', command: 'auth', result: { access: 'control' } });
    expect(await client.command({ type: 'step', id: 'c7', run: 'a' })).toMatchObject({ type: 'ack', result: { step: 1 } });
    expect(lines.some((l) => l.includes('refused step'))).toBe(true);
    expect(lines.join('\n')).not.toContain(TOKEN);
    expect(lines.join('\n')).not.toContain('guess-1234');
  });

  it('handshakes: token → control, wrong token → 401, foreign or null Origin → 403, no Origin needs the token', async () => {
    const server = await startServer();
    expect(await handshakeStatus(server, { Origin: server.url })).toBe(101);
    expect(await handshakeStatus(server, { Origin: `http://localhost:${server.port}` })).toBe(101);
    expect(await handshakeStatus(server, { Authorization: `Bearer ${TOKEN}` })).toBe(101);
    expect(await handshakeStatus(server, { Origin: server.url, Authorization: `Bearer ${TOKEN}` })).toBe(101);
    expect(await handshakeStatus(server, { Origin: server.url, Authorization: 'Bearer wrong' })).toBe(401);
    expect(await handshakeStatus(server, { Authorization: 'Bearer wrong' })).toBe(401);
    expect(await handshakeStatus(server, { Authorization: `Basic ${TOKEN}` })).toBe(401);
    expect(await handshakeStatus(server, {})).toBe(403);
    for (const origin of ['https://evil.example', 'https://app.example.com.evil.com', 'null', `${server.url}.evil.com`, `${server.url}/`, server.url.toUpperCase()]) {
      expect(await handshakeStatus(server, { Origin: origin }), origin).toBe(403);
      expect(await handshakeStatus(server, { Origin: origin, Authorization: `Bearer ${TOKEN}` }), origin).toBe(403);
    }
    const control = await connect(server, { token: TOKEN, origin: null });
    expect((await control.next('hello')).access).toBe('control');
    // a threaded server's stats reach this thread a few times a second (STREAMGRAD_TEST_SERVER=thread): wait for them
    for (const deadline = Date.now() + 10_000; server.stats.refusedHandshakes < 16 && Date.now() < deadline;) await sleep(20);
    expect(server.stats.refusedHandshakes).toBeGreaterThanOrEqual(16);
  });

  it('allowedOrigins replaces the default list (exact matches only)', async () => {
    const server = await startServer({ allowedOrigins: ['https://app.example.com'] });
    expect(await handshakeStatus(server, { Origin: 'https://app.example.com' })).toBe(101);
    expect(await handshakeStatus(server, { Origin: 'https://app.example.com.evil.com' })).toBe(403);
    expect(await handshakeStatus(server, { Origin: server.url })).toBe(403);
  });

  it('a server without a token has no control access at all', async () => {
    const run = testRun({ paused: true });
    const saved = process.env.STREAMGRAD_TOKEN;
    delete process.env.STREAMGRAD_TOKEN;
    const server = await startServer({ token: undefined }, run).finally(() => {
      if (saved !== undefined) process.env.STREAMGRAD_TOKEN = saved;
    });
    expect(await handshakeStatus(server, { Authorization: 'Bearer anything' })).toBe(401);
    const client = await connect(server);
    expect(await client.command({ type: 'auth', id: 'a', token: 'anything' })).toMatchObject({ code: 'SG_ERR_FORBIDDEN' });
  });

  it('duplicate command ids are applied once and acked twice, across connections too', async () => {
    const run = testRun({ paused: true });
    const server = await startServer({}, run);
    const client = await connect(server, { token: TOKEN });
    void run.start();
    const first = await client.command({ type: 'step', id: 'step-1', run: 'a' });
    expect(first).toMatchObject({ type: 'ack', id: 'step-1', command: 'step', duplicate: false, result: { step: 1 } });
    const again = await client.command({ type: 'step', id: 'step-1', run: 'a' });
    expect(again).toMatchObject({ type: 'ack', id: 'step-1', duplicate: true, result: { step: 1 } });
    const other = await connect(server, { token: TOKEN });
    expect(await other.command({ type: 'step', id: 'step-1', run: 'a' })).toMatchObject({ duplicate: true });
    await sleep(50);
    expect(run.trainer.counters.steps).toBe(1);
    // resent at once, before the first finished: still one step
    client.send({ type: 'step', id: 'step-2', run: 'a' });
    client.send({ type: 'step', id: 'step-2', run: 'a' });
    const acks = [await client.next('ack', (m) => m.id === 'step-2'), await client.next('ack', (m) => m.id === 'step-2')];
    expect(acks.map((a) => a.duplicate).sort()).toEqual([false, true]);
    expect(run.trainer.counters.steps).toBe(2);
    // a new id is a new command
    expect(await client.command({ type: 'step', id: 'step-3', run: 'a' })).toMatchObject({ duplicate: false, result: { step: 3 } });
  });

  it('a run added with its own memory of commands (AddRunOptions.commands, as a --resume restores it from a checkpoint) acks an id this server never saw duplicate: true with the saved result, applying nothing; the ids it applies go into that memory; serve() and serveInThread alike', async () => {
    // before: the memory was the server's alone, so a restarted server applied a resent id again
    for (const start of [serve, serveInThread]) {
      const run = testRun({ paused: true });
      const commands = new AppliedOnce();
      commands.restore([{ key: commandKey('a', 'step-1'), result: { step: 7, loss: 0.5 } }], `sections.${APPLIED_SECTION}`);
      const server = await start({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist' });
      onCleanup(() => server.close());
      server.addRun(run, { commands });
      const client = await connect(server, { token: TOKEN });
      void run.start();
      expect(await client.command({ type: 'step', id: 'step-1', run: 'a' }), start.name).toMatchObject({ type: 'ack', duplicate: true, result: { step: 7, loss: 0.5 } });
      expect(await client.command({ type: 'step', id: 'step-2', run: 'a' }), start.name).toMatchObject({ type: 'ack', duplicate: false, result: { step: 1 } });
      expect(run.trainer.counters.steps, start.name).toBe(1);
      // newest first, as a checkpoint keeps them
      expect(commands.save().map((e) => e.key), start.name).toEqual([commandKey('a', 'step-2'), commandKey('a', 'step-1')]);
    }
  });

  it('every command works on a real TrainingRun', async () => {
    let saved = 0;
    const run = testRun({ checkpoint: async (r) => `/tmp/ckpt-${r.id}-${++saved}` });
    const server = await startServer({}, run);
    const client = await connect(server, { token: TOKEN });
    client.send({ type: 'subscribe', run: 'a', channels: ['events'] });
    const initial = run.trainer.model.params.slice();
    void run.start();
    await client.until(() => run.trainer.counters.steps > 20, 'training');

    expect(await client.command({ type: 'step', id: 'early', run: 'a' })).toMatchObject({ type: 'error', code: 'SG_ERR_STATE' });
    expect(await client.command({ type: 'pause', id: 'p', run: 'a' })).toMatchObject({ type: 'ack', result: { state: 'paused' } });
    expect(await client.next('event', (e) => e.event === 'paused')).toMatchObject({ run: 'a' });
    const pausedAt = run.trainer.counters.steps;
    await sleep(100);
    expect(run.trainer.counters.steps).toBe(pausedAt);

    expect(await client.command({ type: 'step', id: 's', run: 'a' })).toMatchObject({ type: 'ack', result: { step: pausedAt + 1 } });
    await sleep(50);
    expect(run.trainer.counters.steps).toBe(pausedAt + 1);

    expect(await client.command({ type: 'setLearningRate', id: 'lr', run: 'a', learningRate: 0.125 })).toMatchObject({ type: 'ack', result: { learningRate: 0.125 } });
    expect(run.trainer.optimizer.learningRate).toBe(0.125);
    expect(await client.command({ type: 'setLearningRate', id: 'lr-bad', run: 'a', learningRate: -1 })).toMatchObject({ type: 'error', code: 'SG_ERR_SCHEMA' });

    expect(await client.command({ type: 'checkpoint', id: 'ck', run: 'a' })).toMatchObject({ type: 'ack', result: { path: '/tmp/ckpt-a-1' } });
    expect(await client.next('event', (e) => e.event === 'checkpoint')).toMatchObject({ detail: { path: '/tmp/ckpt-a-1' } });

    expect(await client.command({ type: 'reset', id: 'r', run: 'a' })).toMatchObject({ type: 'ack' });
    expect(hashOf(run.trainer.model.params)).toBe(hashOf(initial));

    expect(await client.command({ type: 'resume', id: 'go', run: 'a' })).toMatchObject({ type: 'ack', result: { state: 'running' } });
    await client.until(() => run.trainer.counters.steps > pausedAt + 20, 'training to continue');
    expect(await client.command({ type: 'pause', id: 'x', run: 'nope' })).toMatchObject({ type: 'error', code: 'SG_ERR_UNKNOWN_RUN' });
  });

  it('checkpoint without a checkpointer is SG_ERR_STATE; commands on a finished run are SG_ERR_STATE', async () => {
    const run = testRun({ source: [{ x: [1, 2, 3], y: [1] }] });
    const server = await startServer({}, run);
    const client = await connect(server, { token: TOKEN });
    expect(await client.command({ type: 'checkpoint', id: 'c', run: 'a' })).toMatchObject({ type: 'error', code: 'SG_ERR_STATE' });
    await run.start();
    expect(run.state).toBe('completed');
    expect(await client.command({ type: 'pause', id: 'p', run: 'a' })).toMatchObject({ type: 'error', code: 'SG_ERR_STATE' });
  });

  it('a command flood is refused, then closed 1008, and training goes on', async () => {
    const run = testRun();
    const server = await startServer({ commandsPerMinute: 5 }, run);
    const client = await connect(server, { token: TOKEN });
    void run.start();
    for (let i = 0; i < 5; i++) expect(await client.command({ type: 'setLearningRate', id: `l${i}`, run: 'a', learningRate: 0.01 })).toMatchObject({ type: 'ack' });
    client.send({ type: 'setLearningRate', id: 'l5', run: 'a', learningRate: 0.01 });
    expect(await client.next('error')).toMatchObject({ code: 'SG_ERR_RATE_LIMIT', id: 'l5' });
    expect(await client.closed).toBe(1008);
    const steps = run.trainer.counters.steps;
    await sleep(50);
    expect(run.trainer.counters.steps).toBeGreaterThan(steps);
  });
});

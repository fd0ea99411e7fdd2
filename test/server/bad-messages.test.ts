import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { hashOf } from '../helpers/streams.ts';
import { connect, rawFrame, rawWebSocket, startServer, testRun, TOKEN } from './helpers.ts';

/** RELIABILITY.md rows 9–15: what a client's bad frames get, and that the server lives on. */
describe('bad messages from clients', () => {
  it('malformed JSON, unknown types, schema misses each get an error code; the connection stays open', async () => {
    const run = testRun({ paused: true });
    const server = await startServer({}, run);
    const client = await connect(server, { token: TOKEN });
    const before = hashOf(run.trainer.model.params);
    const cases: [string, string][] = [
      ['{"type":', 'SG_ERR_BAD_JSON'],
      ['', 'SG_ERR_BAD_JSON'],
      ['[1,2]', 'SG_ERR_SCHEMA'],
      ['"pause"', 'SG_ERR_SCHEMA'],
      ['{"type":"rm -rf"}', 'SG_ERR_UNKNOWN_TYPE'],
      ['{"type":"toString","id":"t"}', 'SG_ERR_UNKNOWN_TYPE'],
      ['{"type":"pause"}', 'SG_ERR_SCHEMA'],
      ['{"type":"pause","id":"p","run":"a","force":true}', 'SG_ERR_SCHEMA'],
      ['{"type":"setLearningRate","id":"l","run":"a","learningRate":"1"}', 'SG_ERR_SCHEMA'],
      ['{"type":"setLearningRate","id":"l","run":"a","learningRate":1e999}', 'SG_ERR_SCHEMA'],
      ['{"type":"subscribe","run":"<img src=x onerror=alert(1)>","channels":["nope"]}', 'SG_ERR_SCHEMA'],
      ['{"type":"<img src=x onerror=alert(1)>"}', 'SG_ERR_UNKNOWN_TYPE'],
    ];
    for (const [text, code] of cases) {
      client.send(text);
      const error = await client.next('error');
      expect(error.code, text).toBe(code);
      expect(error.message).not.toContain('<img'); // the input is never echoed back
    }
    expect(run.state).toBe('paused');
    expect(hashOf(run.trainer.model.params)).toBe(before);
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    expect(await client.command({ type: 'pause', id: 'still-works', run: 'a' })).toMatchObject({ type: 'ack' });
  });

  it('prototype pollution attempts are refused and leave Object.prototype untouched', async () => {
    const server = await startServer({}, testRun());
    const client = await connect(server, { token: TOKEN });
    const attacks = [
      '{"type":"subscribe","run":"a","channels":["metrics"],"__proto__":{"polluted":true}}',
      '{"__proto__":{"polluted":true}}',
      '{"type":"pause","id":"x","run":"a","constructor":{"prototype":{"polluted":true}}}',
      '{"type":"__proto__","id":"y"}',
      '{"type":"constructor"}',
    ];
    for (const text of attacks) {
      client.send(text);
      expect(['SG_ERR_SCHEMA', 'SG_ERR_UNKNOWN_TYPE']).toContain((await client.next('error')).code);
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it('too many bad messages in a minute close the connection 1008', async () => {
    const server = await startServer({ badMessagesPerMinute: 3 });
    const client = await connect(server);
    for (let i = 0; i < 4; i++) client.send('{oops');
    expect(await client.closed).toBe(1008);
    expect(client.messages.filter((m) => m.type === 'error')).toHaveLength(4);
  });

  it('a binary frame closes 1003', async () => {
    const server = await startServer();
    const client = await connect(server);
    client.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect(await client.closed).toBe(1003);
  });

  it('a frame over maxPayload closes 1009; the process lives and keeps serving', async () => {
    const server = await startServer({}, testRun());
    const client = await connect(server);
    client.send(`{"type":"subscribe","run":"a","channels":["metrics"],"pad":"${'x'.repeat(64 * 1024)}"}`);
    expect(await client.closed).toBe(1009);
    const next = await connect(server);
    expect((await next.next('hello')).type).toBe('hello');
  });

  it('a fragment flood closes 1008 (ws maxFragments)', async () => {
    const server = await startServer({ maxFragments: 64 });
    const raw = await rawWebSocket(server);
    const frames = [rawFrame(0x1, Buffer.from('{'), false)];
    for (let i = 0; i < 200; i++) frames.push(rawFrame(0x0, Buffer.from(' '), false));
    raw.socket.write(Buffer.concat(frames));
    expect(await raw.closeCode()).toBe(1008);
    expect((await (await connect(server)).next('hello')).type).toBe('hello');
  });

  it('the default fragment limit holds too (1024 fragments)', async () => {
    const server = await startServer();
    const raw = await rawWebSocket(server);
    const frames = [rawFrame(0x1, Buffer.from('{'), false)];
    for (let i = 0; i < 2000; i++) frames.push(rawFrame(0x0, Buffer.from(' '), false));
    raw.socket.write(Buffer.concat(frames));
    expect(await raw.closeCode()).toBe(1008);
  });

  it('a text frame that is not UTF-8 closes 1007', async () => {
    const server = await startServer();
    const raw = await rawWebSocket(server);
    raw.socket.write(rawFrame(0x1, Buffer.from([0xc3, 0x28])));
    expect(await raw.closeCode()).toBe(1007);
    expect((await (await connect(server)).next('hello')).type).toBe('hello');
  });
});

import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { answerBlock } from '../../server/bulk-lines.ts';
import { type AnsweredBlock, BulkThread, inlineBulk } from '../../server/bulk-thread.ts';
import type { ModelVersion } from '../../server/model-versions.ts';
import { PREDICT_CHUNK, PredictionService } from '../../server/prediction-service.ts';
import { serve, type StreamgradServer } from '../../server/server.ts';
import { classifier, regression } from './artifacts.ts';
import { onCleanup, streamedNdjson, TOKEN } from './helpers.ts';

/**
 * Bulk predictions on a thread of their own (issue 12; `bulkThread`, an option, off by
 * default since it did not pay on two cores): the answers are byte for byte the server
 * thread's, in order, whatever the thread does — starting, answering, failing — and
 * nothing is lost.
 */

/** A deterministic stream of numbers in [-20, 20). */
function numbers(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return (s / 2 ** 32) * 40 - 20;
  };
}

/** `count` NDJSON lines of every kind for the regression: good, named, imputed, wrong, malformed, blank, over `maxLineBytes` (300). */
function mixedLines(count: number, seed = 3): string[] {
  const r = numbers(seed);
  return Array.from({ length: count }, (_, i): string => {
    switch (i % 11) {
      case 0: return JSON.stringify([r(), r(), r()]);
      case 1: return JSON.stringify({ temp: r(), rain: r() });
      case 2: return JSON.stringify({ x: [r(), r(), r()] });
      case 3: return JSON.stringify({ wind: r() }); // temp missing
      case 4: return JSON.stringify([r(), r()]); // wrong arity
      case 5: return JSON.stringify({ temp: r(), wind: r(), rain: r(), oops: 1 }); // unknown feature
      case 6: return '{"temp": 1,'; // not JSON
      case 7: return ''; // blank: counted, not answered
      case 8: return JSON.stringify({ temp: r(), wind: r(), rain: r(), pad: 'x'.repeat(400) }); // over the line limit
      case 9: return '[1,2,3e999]'; // non-finite input
      default: return JSON.stringify({ temp: r() * 1e6, wind: -0, rain: 1e-300 });
    }
  });
}

/** One HTTP request on a fresh connection: status and body bytes. */
function post(server: StreamgradServer, path: string, body: Buffer | string): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, path, method: 'POST', headers: { 'Content-Type': 'application/x-ndjson', Connection: 'close' }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A metric's value from /metrics text (0 when absent). */
async function metric(server: StreamgradServer, name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

const settle = async (a: AnsweredBlock | Promise<AnsweredBlock>) => {
  const { bytes, predicted, failures } = await a;
  return { text: Buffer.from(bytes).toString('utf8'), predicted, codes: failures.map((f) => f.error.code) };
};

/** Waits until the bulk thread has said it is ready. */
async function threaded(bulk: BulkThread): Promise<void> {
  for (const deadline = Date.now() + 60_000; !bulk.threaded; await new Promise((r) => setTimeout(r, 20))) {
    if (Date.now() > deadline) throw new Error(`the bulk thread did not start: ${String(bulk.failure)}`);
  }
}

describe('BulkThread: bulk blocks answered on a thread of their own', () => {
  const service = new PredictionService({ keepVersions: 4, registry: new Registry() });
  service.addModel('load', regression());
  service.addModel('weather', classifier());
  const load = service.resolve({ model: 'load' }) as ModelVersion;
  const weather = service.resolve({ model: 'weather' }) as ModelVersion;
  const block = (lines: string[]) => Buffer.from(lines.join('\n'));

  it('answers on the calling thread while it starts, then on the thread at nice 19: every block byte for byte answerBlock\'s, in order', async () => {
    const bulk = new BulkThread();
    onCleanup(() => bulk.close());
    const lines = mixedLines(400);
    const first = bulk.answer(load, block(lines), 1, 'reject', 300);
    expect(first).not.toBeInstanceOf(Promise); // not waited for: answered here
    await threaded(bulk);
    if (process.platform === 'linux') expect(bulk.threadNice).toBe(19);
    const blocks = Array.from({ length: 12 }, (_, k) => mixedLines(PREDICT_CHUNK, k + 10));
    const answers = blocks.map((b, k) => bulk.answer(k % 3 === 2 ? weather : load, block(b), 1 + k * PREDICT_CHUNK, k % 2 === 0 ? 'reject' : 'ignore', 300));
    expect(answers.every((a) => a instanceof Promise)).toBe(true);
    const got = await Promise.all(answers.map(settle));
    for (let k = 0; k < blocks.length; k++) {
      const want = answerBlock(k % 3 === 2 ? weather : load, block(blocks[k]), 1 + k * PREDICT_CHUNK, k % 2 === 0 ? 'reject' : 'ignore', 300);
      expect(got[k]).toEqual({ text: want.text, predicted: want.predicted, codes: want.failures.map((f) => f.error.code) });
    }
    // errors of every kind went through, with their line numbers
    expect([...new Set(got.flatMap((g) => g.codes))]).toEqual(expect.arrayContaining(['SG_ERR_MISSING', 'SG_ERR_ARITY', 'SG_ERR_UNKNOWN_FEATURE', 'SG_ERR_BAD_JSON', 'SG_ERR_TOO_LARGE', 'SG_ERR_NONFINITE_INPUT']));
    expect(bulk.answered).toEqual({ thread: 12, here: 1 });
  });

  it('keeps a bounded cache of versions in step with the server side: many versions in turn are each answered with their own weights', async () => {
    const many = new PredictionService({ keepVersions: 40, registry: new Registry() });
    const versions: ModelVersion[] = [];
    for (let v = 0; v < 20; v++) {
      const artifact = regression();
      // each version its own weights (the output layer's last bias)
      artifact.model.params[artifact.model.params.length - 1] += v;
      many.addModel(`m${v}`, artifact);
      versions.push(many.resolve({ model: `m${v}` }) as ModelVersion);
    }
    const bulk = new BulkThread();
    onCleanup(() => bulk.close());
    void bulk.answer(versions[0], block(['[1,2,3]']), 1, 'reject', 1 << 16);
    await threaded(bulk);
    // more versions than the thread keeps (8), in an order that evicts and comes back
    const order = [...Array(20).keys(), 3, 19, 0, 11, 11, 5, ...Array(20).keys()].map((i) => versions[i]);
    const got = await Promise.all(order.map((v) => settle(bulk.answer(v, block(['[1,2,3]', '{"temp":4,"wind":5,"rain":6}']), 1, 'reject', 1 << 16))));
    for (let k = 0; k < order.length; k++) expect(got[k].text).toBe(answerBlock(order[k], block(['[1,2,3]', '{"temp":4,"wind":5,"rain":6}']), 1, 'reject', 1 << 16).text);
    // the weights differ, so the answers do: a stale version would have shown
    expect(new Set(got.slice(0, 20).map((g) => g.text)).size).toBe(20);
  });

  it('closed (or failed) with blocks in hand: they are answered on the calling thread, none lost; later blocks too', async () => {
    const bulk = new BulkThread();
    void bulk.answer(load, block(['[1,2,3]']), 1, 'reject', 1 << 16);
    await threaded(bulk);
    const blocks = Array.from({ length: 30 }, (_, k) => mixedLines(PREDICT_CHUNK, 100 + k));
    const answers = blocks.map((b, k) => bulk.answer(load, block(b), 1 + k * PREDICT_CHUNK, 'reject', 300));
    await bulk.close();
    const got = await Promise.all(answers.map(settle));
    for (let k = 0; k < blocks.length; k++) expect(got[k].text).toBe(answerBlock(load, block(blocks[k]), 1 + k * PREDICT_CHUNK, 'reject', 300).text);
    expect(bulk.answered.thread + bulk.answered.here).toBe(1 + blocks.length);
    expect(bulk.answer(load, block(['[1,2,3]']), 1, 'reject', 1 << 16)).not.toBeInstanceOf(Promise);
  });
});

describe('serve({ bulkThread: true }): bulk requests answered from the bulk thread', () => {
  it('answers byte for byte what the server thread answers, across blocks, with errors in place, and counts blocks by thread in /metrics', async () => {
    const options = { port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist', maxPredictLineBytes: 300, predictRequestsPerSecond: 1_000_000 };
    const here = await serve({ ...options, bulkThread: false });
    const there = await serve({ ...options, bulkThread: true });
    onCleanup(() => here.close());
    onCleanup(() => there.close());
    here.addModel('load', regression(), { time: 1_700_000_000_000 });
    there.addModel('load', regression(), { time: 1_700_000_000_000 });
    const lines = mixedLines(5 * PREDICT_CHUNK + 17);
    // a line that is not UTF-8 too, and no newline after the last line
    const body = Buffer.concat([Buffer.from(`${lines.join('\n')}\n[1,`), Buffer.from([0xff]), Buffer.from(',3]\n[4,5,6]')]);
    const want = await post(here, '/predict?model=load', body);
    expect(want.status).toBe(200);
    expect(want.body.toString('utf8').split('\n').length).toBeGreaterThan(4 * PREDICT_CHUNK);
    // the first request starts the thread; the answers are the same whoever computes them
    for (let attempt = 0; ; attempt++) {
      const got = await post(there, '/predict?model=load', body);
      expect(got.status).toBe(200);
      expect(got.body.equals(want.body)).toBe(true);
      if (await metric(there, 'streamgrad_bulk_thread_blocks_total') > 0) break;
      if (attempt > 600) throw new Error('the bulk thread never answered');
      await new Promise((r) => setTimeout(r, 50));
    }
    const got = await post(there, '/predict?model=load', body);
    expect(got.body.equals(want.body)).toBe(true);
    expect(await metric(there, 'streamgrad_bulk_thread_blocks_total')).toBeGreaterThanOrEqual(6);
    expect(await metric(there, 'streamgrad_bulk_inline_blocks_total')).toBeGreaterThanOrEqual(1);
  });
});

describe('a bulk body over maxBulkBytes', () => {
  it('answers the lines read and an error line, in full, even when the answer is far larger than the body read (its connection is not reset under it)', async () => {
    for (const bulkThread of [false, true]) {
      const small = await serve({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist', maxBulkBytes: 64 * 1024, bulkThread });
      onCleanup(() => small.close());
      small.addModel('load', regression());
      const huge = Array.from({ length: 20_000 }, () => '[1,2,3]').join('\n');
      for (let i = 0; i < 3; i++) {
        const answer = await new Promise<string>((resolve, reject) => {
          const req = request({ host: '127.0.0.1', port: small.port, path: '/predict', method: 'POST', headers: { 'Content-Type': 'application/x-ndjson', 'Transfer-Encoding': 'chunked', Connection: 'close' }, agent: false }, (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
            res.on('error', reject);
          });
          req.on('error', () => undefined); // the server may stop reading the rest: the answer is what counts
          req.end(huge);
        });
        const lines = answer.trimEnd().split('\n').map((l) => JSON.parse(l) as { error?: { code: string }; line?: number; y?: number[] });
        const last = lines[lines.length - 1];
        expect(last).toMatchObject({ error: { code: 'SG_ERR_TOO_LARGE' } });
        // every line before the one over the limit was answered
        expect(lines.length - 2).toBe(last.line! - 1);
        expect(lines.slice(1, -1).every((l) => Array.isArray(l.y))).toBe(true);
      }
    }
  });
});

describe('inlineBulk', () => {
  it('is answerBlock encoded', () => {
    const service = new PredictionService({ keepVersions: 4, registry: new Registry() });
    service.addModel('load', regression());
    const version = service.resolve({ model: 'load' }) as ModelVersion;
    const a = inlineBulk.answer(version, Buffer.from('[1,2,3]\n\nnope'), 7, 'reject', 1 << 16) as AnsweredBlock;
    const b = answerBlock(version, Buffer.from('[1,2,3]\n\nnope'), 7, 'reject', 1 << 16);
    expect(Buffer.from(a.bytes).toString('utf8')).toBe(b.text);
    expect(b.text).toMatch(/^\{"y":\[.*\]\}\n\{"line":9,"error":\{"code":"SG_ERR_BAD_JSON"/);
    expect(a.predicted).toBe(1);
  });
});

describe('an over-long line cut across two pieces of the body', () => {
  it('is numbered and answered after the complete lines before it in the same piece', async () => {
    const server = await serve({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist', maxPredictLineBytes: 256 });
    onCleanup(() => server.close());
    server.addModel('load', regression());
    const { received, write, lines, end } = streamedNdjson(server, '/predict?model=load');
    // one piece: two complete lines, then the start of a line already over the limit
    write(`[1,2,3]\n[4,5,6]\n[${'1,'.repeat(200)}`);
    await lines(3);
    await end('1]\n[7,8,9]\n');
    const answers = received.slice(1).map((l) => JSON.parse(l) as { y?: number[]; line?: number; error?: { code: string } });
    expect(answers.map((a) => (a.error === undefined ? 'ok' : `${a.line} ${a.error.code}`))).toEqual(['ok', 'ok', '3 SG_ERR_TOO_LARGE', 'ok']);
  });
});

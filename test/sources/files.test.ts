import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { firstValueFrom, lastValueFrom, take, toArray } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import { FileDeadLetters, resumeDeadLetterFile } from '../../pipeline/dead-letter-file.ts';
import { afterPosition, deadLetter, letterPosition } from '../../core/dead-letter.ts';
import { StreamgradError } from '../../core/errors.ts';
import type { IngestRecord } from '../../core/record.ts';
import { csvFile, csvRecords, discoverClasses } from '../../sources/csv.ts';
import { ndjsonFile, ndjsonFileRecords, ndjsonRecords } from '../../sources/ndjson.ts';
import { replayRecords } from '../../sources/replay.ts';
import { stdinRecords } from '../../sources/stdin.ts';

const dir = mkdtempSync(join(tmpdir(), 'sg-sources-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const collect = async (records: AsyncIterable<IngestRecord>) => {
  const out: IngestRecord[] = [];
  for await (const r of records) out.push(r);
  return out;
};

describe('csv source', () => {
  it('reads named text rows with line numbers and raw text; bad rows become error records and the stream goes on', async () => {
    const path = file('mixed.csv', '\ufeffa,b,y\r\n1,2,3\r\n4,5\r\n\r\n"6","7,5",8\r\n9,"x"y,10\r\n11,12,13,14\r\n15,"multi\nline",16\r\n');
    const records = await collect(csvRecords(path));
    expect(records.map((r) => [r.origin.line, r.error?.code ?? 'ok'])).toEqual([
      [2, 'ok'], [3, 'SG_ERR_ARITY'], [5, 'ok'], [6, 'ok'], [7, 'SG_ERR_ARITY'], [8, 'ok'],
    ]);
    expect(records[0]).toMatchObject({ value: { a: '1', b: '2', y: '3' }, text: true, origin: { source: path, line: 2, raw: '1,2,3' } });
    expect(records[1].error?.message).toBe('line 3: has 2 fields, the header has 3');
    expect(records[2].value).toEqual({ a: '6', b: '7,5', y: '8' });
    expect(Object.getPrototypeOf(records[0].value)).toBeNull();
  });

  it('reports a quote that never closes as an unreadable record, with its first line', async () => {
    const path = file('quote.csv', 'a,b\n1,2\n3,"4\n');
    const records = await collect(csvRecords(path));
    expect(records.map((r) => [r.origin.line, r.error?.code ?? 'ok'])).toEqual([[2, 'ok'], [3, 'SG_ERR_TYPE']]);
    expect(records[1].error?.message).toBe("line 3: not a CSV record: unclosed quote (the quoted field runs to the end of the input)");
  });

  it('checks the header before any row: required columns, names, duplicates', async () => {
    const path = file('header.csv', 'a,b,a\n1,2,3\n');
    await expect(collect(csvRecords(path))).rejects.toThrow(/header names column "a" twice/);
    const ok = file('header-ok.csv', 'a,b\n1,2\n');
    await expect(collect(csvRecords(ok, { require: ['a', 'c'] }))).rejects.toThrow(/no column "c" in the header \(it has a, b\)/);
    await expect(collect(csvRecords(file('empty.csv', '')))).rejects.toThrow(/no header row/);
  });

  it('discovers the sorted class list of a column', async () => {
    const path = file('classes.csv', 'x,w\n1,sun\n2,rain\n3,sun\n4,fog\n5,\n');
    expect(await discoverClasses(path, 'w')).toEqual(['fog', 'rain', 'sun']);
  });

  it('is lazy: the Observable form pulls only what is taken', async () => {
    const rows = Array.from({ length: 50_000 }, (_, i) => `${i},${i * 2}`).join('\n');
    const path = file('big.csv', `a,b\n${rows}\n`);
    const first = await firstValueFrom(csvFile(path).pipe(take(3), toArray()));
    expect(first.map((r) => r.origin.line)).toEqual([2, 3, 4]);
  });
});

describe('ndjson source', () => {
  it('yields values and SG_ERR_BAD_JSON records with 1-based line numbers; blank lines count but are skipped', async () => {
    const path = file('mixed.ndjson', '\ufeff{"x":[1],"y":[2]}\r\n\r\n{"x":\n1e309\n  \n[1,2]\n');
    const records = await lastValueFrom(ndjsonFile(path).pipe(toArray()));
    expect(records.map((r) => [r.origin.line, r.error?.code ?? 'ok'])).toEqual([[1, 'ok'], [3, 'SG_ERR_BAD_JSON'], [4, 'ok'], [6, 'ok']]);
    expect(records[1]).toMatchObject({ origin: { raw: '{"x":', line: 3 }, error: { field: 'line' } });
    expect(records[1].error?.message).toMatch(/^line 3: /);
    expect(records[2].value).toBe(Infinity);
  });

  it('reads standard input (or any stream) the same way, and CSV with format csv', async () => {
    const input = Readable.from(['{"x":[1],"y":[1]}\n', 'nope\n']);
    const records = await collect(stdinRecords({ input }));
    expect(records.map((r) => [r.origin.source, r.origin.line, r.error?.code ?? 'ok'])).toEqual([['stdin', 1, 'ok'], ['stdin', 2, 'SG_ERR_BAD_JSON']]);
    const csv = await collect(stdinRecords({ format: 'csv', input: Readable.from(['a,y\n', '1,2\n']) }));
    expect(csv[0]).toMatchObject({ value: { a: '1', y: '2' }, origin: { source: 'stdin', line: 2 } });
  });

  it('pulls: a writer that outpaces the reader is held back (the input is not drained ahead)', async () => {
    const input = new PassThrough({ highWaterMark: 1024 });
    let written = 0;
    const line = `${JSON.stringify({ x: Array(50).fill(0.5), y: [1] })}\n`;
    const write = () => {
      while (written < 10_000 && input.write(line)) written++;
      if (written < 10_000) input.once('drain', () => { written++; write(); });
      else input.end();
    };
    write();
    const iterator = ndjsonRecords(input)[Symbol.asyncIterator]();
    await iterator.next();
    await new Promise((r) => setTimeout(r, 50));
    expect(written).toBeLessThan(2000); // the line reader holds a chunk or two; the rest waits in the writer until the reader pulls
    await iterator.return?.();
  });
});

describe('source lifecycle (RELIABILITY 26, 27)', () => {
  const failing = (text: string) => new Readable({
    read() {
      this.push(text);
      this.destroy(new Error('EIO: disk went away'));
    },
  });

  it('a read error mid-file fails the source with SG_ERR_SOURCE after the records before it, and a run on it fails with no update after', async () => {
    const records: IngestRecord[] = [];
    await expect((async () => { for await (const r of csvRecords(failing('a,y\n1,2\n3,4\n'))) records.push(r); })()).rejects.toMatchObject({ code: 'SG_ERR_SOURCE', message: expect.stringContaining('EIO') });
    const ndjson: IngestRecord[] = [];
    await expect((async () => { for await (const r of ndjsonRecords(failing('{"x":[1],"y":[1]}\n'))) ndjson.push(r); })()).rejects.toMatchObject({ code: 'SG_ERR_SOURCE' });
    expect(ndjson).toHaveLength(1);

    const { TrainingRun } = await import('../../pipeline/run.ts');
    const { createTrainer } = await import('../../core/trainer.ts');
    const { ingest } = await import('../../pipeline/ingest.ts');
    const { seededModel } = await import('../helpers/streams.ts');
    const trainer = createTrainer({ model: seededModel(1, [[1, 'linear']], 1), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.1 } });
    const run = new TrainingRun({ id: 'f', trainer, source: ndjsonRecords(failing('{"x":[1],"y":[1]}\n{"x":[2],"y":[2]}\n')), prepare: ingest({ trainer }) });
    await expect(run.start()).rejects.toMatchObject({ code: 'SG_ERR_SOURCE' });
    expect(run.state).toBe('failed');
    expect(trainer.counters.samples).toBe(2);
  });

  it('a finite source that ends mid-batch trains the partial batch and completes', async () => {
    const { TrainingRun } = await import('../../pipeline/run.ts');
    const { createTrainer } = await import('../../core/trainer.ts');
    const { ingest } = await import('../../pipeline/ingest.ts');
    const { seededModel } = await import('../helpers/streams.ts');
    const trainer = createTrainer({ model: seededModel(1, [[1, 'linear']], 1), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.1 } });
    const path = file('seven.ndjson', Array.from({ length: 7 }, (_, i) => JSON.stringify({ x: [i], y: [i] })).join('\n'));
    const run = new TrainingRun({ id: 'p', trainer, source: ndjsonFileRecords(path), prepare: ingest({ trainer }), train: { batch: 4 } });
    await run.start();
    expect(run.state).toBe('completed');
    expect(trainer.counters).toMatchObject({ steps: 2, samples: 7 });
  });
});

describe('replay', () => {
  const records = (times: unknown[]): IngestRecord[] => times.map((t, i) => ({ value: { t, v: i }, origin: { line: i + 1 } }));

  it('waits as long as the recording did, divided by speed, measured from the first record', async () => {
    let clock = 0;
    const waits: number[] = [];
    const options = { timeField: 't', speed: 10, now: () => clock, sleep: async (ms: number) => { waits.push(ms); clock += ms; } };
    const out = await collect(replayRecords(records([1000, 1500, 1500, 3000, 2000, 'bad']), options));
    expect(out).toHaveLength(6);
    expect(waits).toEqual([50, 150]); // 500 ms / 10, then up to 2000 ms / 10 from the start; the same time and a time going backwards do not wait
  });

  it('reads ISO dates and seconds; Infinity speed never waits; long gaps can be capped', async () => {
    let clock = 0;
    const waits: number[] = [];
    const sleep = async (ms: number) => { waits.push(ms); clock += ms; };
    await collect(replayRecords(records(['2020-01-01T00:00:00Z', '2020-01-01T00:00:01Z']), { timeField: 't', now: () => clock, sleep }));
    await collect(replayRecords(records([1, 3]), { timeField: 't', unit: 's', speed: 2, now: () => clock, sleep }));
    await collect(replayRecords(records([0, 1e9]), { timeField: 't', speed: Infinity, now: () => clock, sleep }));
    await collect(replayRecords(records([0, 60_000, 61_000]), { timeField: 't', maxGapMs: 100, now: () => clock, sleep }));
    expect(waits).toEqual([1000, 1000, 100, 100]); // both gaps over 100 ms are cut to 100 ms
  });

  it('replays at real speed with real timers', async () => {
    const started = performance.now();
    await collect(replayRecords(records([0, 40, 80]), { timeField: 't' }));
    expect(performance.now() - started).toBeGreaterThanOrEqual(75);
  });
});

describe('file dead-letter sink', () => {
  it('writes one JSON object per line, buffered, durable after close; append mode keeps old letters', async () => {
    const path = join(dir, 'dead.ndjson');
    const sink = FileDeadLetters.open(path, { flushBytes: 256 });
    const letter = (i: number) => deadLetter(new StreamgradError('SG_ERR_ARITY', `x: bad ${i}`, 'x'), { line: i, raw: `{"x":[${i}]}` }, new Date(0));
    for (let i = 1; i <= 20; i++) sink.write(letter(i));
    await sink.close();
    const again = FileDeadLetters.open(path, { append: true });
    again.write(letter(21));
    await again.close();
    const lines = readFileSync(path, 'utf8').trimEnd().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(21);
    expect(lines[20]).toEqual({ time: '1970-01-01T00:00:00.000Z', code: 'SG_ERR_ARITY', field: 'x', message: 'x: bad 21', line: 21, raw: '{"x":[21]}' });
    expect(() => again.write(letter(22))).toThrow(/written after close/);
    expect(() => FileDeadLetters.open(join(dir, 'no/such/dir.ndjson'))).toThrow(/cannot open/);
  });

  it('a resumed file: a letter torn by a crash is cut, and letters at or before the last position are not written again', async () => {
    const path = join(dir, 'resumed.ndjson');
    const letter = (i: number) => deadLetter(new StreamgradError('SG_ERR_ARITY', `x: bad ${i}`, 'x'), { line: i }, new Date(0));
    const whole = (ids: number[]) => ids.map((i) => `${JSON.stringify(letter(i))}\n`).join('');
    writeFileSync(path, `${whole([3, 8, 12])}{"time":"1970-01-01T00:00:00.000Z","code":"SG_ERR_AR`);
    expect(await resumeDeadLetterFile(path)).toBe(12);
    expect(readFileSync(path, 'utf8')).toBe(whole([3, 8, 12]));
    // the resumed run re-reads from its checkpoint (say line 5): 8 and 12 again, then 15 and 20
    const sink = afterPosition(FileDeadLetters.open(path, { append: true }), 12);
    for (const i of [8, 12, 15, 15, 20]) sink.write(letter(i));
    await sink.close();
    expect(readFileSync(path, 'utf8')).toBe(whole([3, 8, 12, 15, 20]));
    expect(await resumeDeadLetterFile(join(dir, 'never-written.ndjson'))).toBeNull();
    // MQTT letters are placed by their message number
    expect(letterPosition({ ...letter(1), line: undefined, messageId: 'sensors/a#41' })).toBe(41);
  });

  it('flushes on a timer so letters show up while a stream runs', async () => {
    const path = join(dir, 'timed.ndjson');
    const sink = FileDeadLetters.open(path, { flushMs: 10 });
    sink.write(deadLetter(new StreamgradError('SG_ERR_TYPE', 'x', 'x'), {}));
    await new Promise((r) => setTimeout(r, 40));
    expect(readFileSync(path, 'utf8').split('\n')).toHaveLength(2);
    await sink.close();
  });
});

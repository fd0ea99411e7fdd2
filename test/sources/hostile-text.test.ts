import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import type { IngestRecord } from '../../core/record.ts';
import { csvRecords } from '../../sources/csv.ts';
import { ndjsonRecords } from '../../sources/ndjson.ts';

/**
 * Hostile text through the file sources (issue #17, items 2, 9 and 10): a quote that
 * never closes, quoted line breaks, lone CRs, bytes that are not UTF-8, lines too long.
 */
const dir = mkdtempSync(join(tmpdir(), 'sg-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, content: string | Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const collect = async (records: AsyncIterable<IngestRecord>) => {
  const out: IngestRecord[] = [];
  for await (const r of records) out.push(r);
  return out;
};
const summary = (records: readonly IngestRecord[]) => records.map((r) => [r.origin.line, r.error?.code ?? 'ok']);

describe('csv: a broken quote costs one row, not the rest of the file (issue #17 item 2)', () => {
  it('row 11 of 100,000 is "oops,2,3,4: 99,999 rows come out as records, the broken one as one rejection, each line once', async () => {
    const rows = Array.from({ length: 100_000 }, (_, i) => `${i},${i % 7},${i % 5},${i % 3}`);
    rows[10] = '"oops,2,3,4';
    const records = await collect(csvRecords(file('quote.csv', `a,b,c,y\n${rows.join('\n')}\n`)));
    expect(records).toHaveLength(100_000);
    const rejected = records.filter((r) => r.error !== undefined);
    expect(rejected).toHaveLength(1);
    expect(rejected[0]).toMatchObject({ origin: { line: 12, raw: '"oops,2,3,4' }, error: { code: 'SG_ERR_TYPE', message: 'line 12: not a CSV record: unclosed quote (the quoted field runs to the end of the input)' } });
    expect(records.map((r) => r.origin.line)).toEqual(Array.from({ length: 100_000 }, (_, i) => i + 2));
    expect(records[11].value).toEqual({ a: '11', b: '4', c: '1', y: '2' });
  });

  it('a quote that closes lines later with text after it, or closes cleanly into a record of the wrong width, rejects only its first line', async () => {
    const text = 'a,b\n1,2\n"oops,3\n4,5\n6,"x"y\n7,8\n"nope,9\n10,11\n12,13"\n14,15\n';
    const records = await collect(csvRecords(file('later.csv', text)));
    expect(summary(records)).toEqual([[2, 'ok'], [3, 'SG_ERR_TYPE'], [4, 'ok'], [5, 'ok'], [6, 'ok'], [7, 'SG_ERR_TYPE'], [8, 'ok'], [9, 'ok'], [10, 'ok']]);
    expect(records[1].error?.message).toBe('line 3: not a CSV record: unclosed quote (the quoted field reaches line 5, where a quote is followed by text)');
    expect(records[3].value).toEqual({ a: '6', b: '"x"y' }); // on one line, a stray quote is text
    expect(records[5].error?.message).toBe('line 7: not a CSV record: unclosed quote (the quoted field closes on line 9, but the record then has 1 field, the header has 2)');
    expect(records[7].value).toEqual({ a: '12', b: '13"' });
  });

  it('a quoted field may span lines up to the line limit; past it, only the first line is rejected', async () => {
    const filler = Array.from({ length: 50 }, (_, i) => `${i},${i}`).join('\n');
    const records = await collect(csvRecords(file('bound.csv', `a,b\n"open,1\n${filler}\n`), { maxLineBytes: 100 }));
    expect(records).toHaveLength(51);
    expect(records[0].error?.message).toBe('line 2: not a CSV record: unclosed quote (the record would be longer than the 100 B line limit)');
    expect(records.slice(1).every((r) => r.error === undefined)).toBe(true);
    // a real multi-line field within the limit is one record
    const ok = await collect(csvRecords(file('multi.csv', 'a,b\n"one\ntwo\nthree",1\n2,3\n'), { maxLineBytes: 100 }));
    expect(summary(ok)).toEqual([[2, 'ok'], [5, 'ok']]);
    expect(ok[0].value).toEqual({ a: 'one\ntwo\nthree', b: '1' });
  });

  it('line numbers are the file\'s physical lines, whatever quoted CRLFs a record holds (issue #17 item 10)', async () => {
    const text = 'a,b\r\n"x\r\ny",1\r\n2,3\r\n"p\r\nq\r\nr","s\r\nt"\r\n4,5\r\n';
    const records = await collect(csvRecords(file('crlf.csv', text)));
    expect(summary(records)).toEqual([[2, 'ok'], [4, 'ok'], [5, 'ok'], [9, 'ok']]);
    expect(records[0]).toMatchObject({ value: { a: 'x\r\ny', b: '1' }, origin: { raw: '"x\r\ny",1' } });
    expect(records[2].value).toEqual({ a: 'p\r\nq\r\nr', b: 's\r\nt' });
  });

  it('a line that is not UTF-8 is rejected (not trained on replacement characters); a line too long is rejected with a prefix', async () => {
    const bytes = Buffer.concat([Buffer.from('a,b\n1,2\n3,"'), Buffer.from([0xff, 0xfe]), Buffer.from('"\n'), Buffer.from(`${'9'.repeat(300)},1\n5,6\n`)]);
    const records = await collect(csvRecords(file('bytes.csv', bytes), { maxLineBytes: 200 }));
    expect(summary(records)).toEqual([[2, 'ok'], [3, 'SG_ERR_TYPE'], [4, 'SG_ERR_LINE_TOO_LONG'], [5, 'ok']]);
    expect(records[1].error?.message).toBe('line 3: not UTF-8 text');
    expect(records[2].origin.raw).toBe('9'.repeat(256));
  });
});

describe('ndjson: what counts as a line and as JSON (issue #17 items 9 and 10)', () => {
  it('invalid UTF-8 inside a JSON string is SG_ERR_BAD_JSON, as the README says, not a sample', async () => {
    const bytes = Buffer.concat([Buffer.from('{"x":[1],"y":[1]}\n{"x":[2],"y":[2],"note":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n{"x":[3],"y":[3]}\n')]);
    const records = await collect(ndjsonRecords(Readable.from([bytes])));
    expect(summary(records)).toEqual([[1, 'ok'], [2, 'SG_ERR_BAD_JSON'], [3, 'ok']]);
    expect(records[1].error?.message).toBe('line 2: not UTF-8 text');
  });

  it('a lone CR inside a valid line does not split it: one record, and the line numbers after it hold', async () => {
    const records = await collect(ndjsonRecords(Readable.from(['{"x":[1],\r"y":[2]}\n{"x":[3],"y":[4]}\r\n{"x":[5],"y":"a\rb"}\n{"x":[6],"y":[7]}\n'])));
    expect(summary(records)).toEqual([[1, 'ok'], [2, 'ok'], [3, 'SG_ERR_BAD_JSON'], [4, 'ok']]);
    expect(records[0].value).toEqual({ x: [1], y: [2] });
  });

  it('a line over the limit is one SG_ERR_LINE_TOO_LONG record holding its first 256 bytes; the next line is read with its own number', async () => {
    const records = await collect(ndjsonRecords(Readable.from([`{"x":[1],"y":[1]}\n{"x":[${'1,'.repeat(5000)}1],"y":[1]}\n{"x":[2],"y":[2]}\n`]), { maxLineBytes: 1024 }));
    expect(summary(records)).toEqual([[1, 'ok'], [2, 'SG_ERR_LINE_TOO_LONG'], [3, 'ok']]);
    expect(records[1].origin.raw).toHaveLength(256);
    expect(records[1].error).toMatchObject({ field: 'line', message: 'line 2: longer than the 1 KiB limit (10017 bytes); skipped to the next line' });
  });
});

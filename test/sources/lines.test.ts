import { Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkMaxLineBytes, LINE_PREFIX_BYTES, type LineItem, readLines } from '../../sources/lines.ts';

/** The bounded line reader under every text source (issue #17, items 9 and 10). */

const chunked = (bytes: Buffer, cuts: readonly number[]) => {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let at = 0;
  for (const p of [...points, bytes.length]) {
    if (p > at) chunks.push(bytes.subarray(at, p));
    at = Math.max(at, p);
  }
  return Readable.from(chunks);
};

const collect = async (input: Readable, maxLineBytes?: number) => {
  const out: LineItem[] = [];
  for await (const item of readLines(input, maxLineBytes === undefined ? {} : { maxLineBytes })) out.push(item);
  return out;
};

/** What the lines of `text` are: only LF ends a line, a CR before it belongs to the break. */
function reference(text: string) {
  const parts = text.split('\n');
  const last = parts.pop()!;
  const lines = parts.map((p, i) => ({ line: i + 1, text: p.endsWith('\r') ? p.slice(0, -1) : p, eol: p.endsWith('\r') ? '\r\n' : '\n' }));
  if (last !== '') lines.push({ line: lines.length + 1, text: last, eol: '' });
  return lines;
}

describe('readLines', () => {
  it('splits at LF only, whatever the chunk boundaries (CRLF and multi-byte characters cut in two included)', async () => {
    const alphabet = fc.constantFrom('a', 'b', ',', '"', '\n', '\r', '\r\n', 'é', '€', '😀', ' ');
    await fc.assert(fc.asyncProperty(fc.array(alphabet, { maxLength: 60 }).map((a) => a.join('')), fc.array(fc.nat(), { maxLength: 8 }), async (text, cuts) => {
      const items = await collect(chunked(Buffer.from(text), cuts));
      expect(items).toEqual(reference(text));
    }), { numRuns: 300 });
  });

  it('a lone CR is text, not a line break', async () => {
    const items = await collect(Readable.from([Buffer.from('{"x":[1],\r"y":[2]}\nnext\r\n')]));
    expect(items).toEqual([{ line: 1, text: '{"x":[1],\r"y":[2]}', eol: '\n' }, { line: 2, text: 'next', eol: '\r\n' }]);
  });

  it('marks lines that are not UTF-8 (strictly: stray continuation, overlong form, surrogate, truncated sequence), and only those', async () => {
    const bad = [[0xc3, 0x28], [0x80], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82]];
    const bytes = Buffer.concat([Buffer.from('ok é\n'), ...bad.flatMap((b) => [Buffer.from('"'), Buffer.from(b), Buffer.from('"\n')]), Buffer.from('fine €\n')]);
    for (const cuts of [[], [3], [6, 7, 8, 9, 10, 11, 12]]) {
      const items = await collect(chunked(bytes, cuts));
      expect(items.map((i) => (i.error === undefined && i.invalidUtf8 === true ? 'bad' : 'ok'))).toEqual(['ok', 'bad', 'bad', 'bad', 'bad', 'bad', 'ok']);
      expect(items.map((i) => i.line)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(items[6]).toEqual({ line: 7, text: 'fine €', eol: '\n' });
    }
  });

  it('drops a byte order mark at the start only', async () => {
    const items = await collect(chunked(Buffer.from('\ufeffa\n\ufeffb\n'), [1, 2]));
    expect(items.map((i) => (i as { text: string }).text)).toEqual(['a', '\ufeffb']);
  });

  it('rejects a line over the limit with its first 256 bytes, never holding it, and reads on at the next line', async () => {
    const long = 'x'.repeat(5000);
    for (const cuts of [[], [100], [3000, 3001], [5001, 5002]]) {
      const items = await collect(chunked(Buffer.from(`ok\n${long}\r\nafter\n${long}`), cuts), 1000);
      expect(items.map((i) => [i.line, i.error?.code ?? (i as { text: string }).text])).toEqual([[1, 'ok'], [2, 'SG_ERR_LINE_TOO_LONG'], [3, 'after'], [4, 'SG_ERR_LINE_TOO_LONG']]);
      const overlong = items[1] as Extract<LineItem, { error: object }>;
      expect(overlong.prefix).toBe('x'.repeat(LINE_PREFIX_BYTES));
      expect(overlong.bytes).toBe(5000);
      expect(overlong.error.message).toBe('line 2: longer than the 1000 B limit (5000 bytes); skipped to the next line');
      expect((items[3] as { bytes: number }).bytes).toBe(5000);
    }
    // exactly at the limit is fine, one byte more is not (a CRLF's CR is not counted)
    const edge = await collect(Readable.from([Buffer.from(`${'y'.repeat(64)}\r\n${'y'.repeat(65)}\n`)]), 64);
    expect(edge.map((i) => i.error?.code ?? 'ok')).toEqual(['ok', 'SG_ERR_LINE_TOO_LONG']);
  });

  it('keeps memory bounded on an endless line: 256 MiB without a line break through a 1 MiB limit', async () => {
    let sent = 0;
    const input = new Readable({
      read() {
        if (sent < 256) {
          sent++;
          this.push(Buffer.alloc(1 << 20, 0)); // a fresh chunk each time, as a file or pipe gives
        } else {
          this.push(Buffer.from('\n{"ok":1}\n'));
          this.push(null);
        }
      },
    });
    let peak = 0;
    const items: LineItem[] = [];
    const gauge = setInterval(() => { peak = Math.max(peak, process.memoryUsage().arrayBuffers); }, 5);
    const base = process.memoryUsage().arrayBuffers;
    for await (const item of readLines(input, { maxLineBytes: 1 << 20 })) {
      peak = Math.max(peak, process.memoryUsage().arrayBuffers);
      items.push(item);
    }
    clearInterval(gauge);
    expect(items.map((i) => i.error?.code ?? (i as { text: string }).text)).toEqual(['SG_ERR_LINE_TOO_LONG', '{"ok":1}']);
    expect((items[0] as { bytes: number }).bytes).toBe(256 * (1 << 20));
    expect(peak - base).toBeLessThan(64 * (1 << 20)); // the line is 256 MiB; what is held is the limit and a chunk or two
  });

  it('checks the limit setting', () => {
    expect(checkMaxLineBytes(1024)).toBe(1024);
    expect(() => checkMaxLineBytes(10, '--max-line-bytes')).toThrow(/^--max-line-bytes: must be an integer from 64 to 268435456 \(256 MiB\), got 10$/);
    expect(() => checkMaxLineBytes(2 ** 40)).toThrow(/maxLineBytes: must be an integer/);
    expect(() => checkMaxLineBytes(1.5)).toThrow(/must be an integer/);
  });
});

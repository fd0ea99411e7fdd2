import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { defer, from, type Observable } from 'rxjs';
import { StreamgradError } from '../core/errors.ts';
import type { IngestRecord } from '../core/record.ts';
import { type LineOptions, readLines } from './lines.ts';

/** Options of the NDJSON reader. */
export interface NdjsonOptions extends LineOptions {
  /** The `source` named in each record's origin (default `ndjson`). */
  readonly source?: string;
}

/**
 * Newline-delimited JSON as a pull source: one record per non-blank line, read only
 * when the consumer asks for the next one (the line reader, `sources/lines.ts`, reads a
 * chunk only when the lines before it are taken), so a consumer that trains on each
 * record before pulling the next keeps memory flat on any file size.
 *
 * Every record carries its 1-based line number and the line's text. A line that is not
 * JSON, or not UTF-8 (even inside a string), becomes a record with an `SG_ERR_BAD_JSON`
 * error (`line N: …`, field `line`); a line longer than `maxLineBytes` (16 MiB by
 * default) an `SG_ERR_LINE_TOO_LONG` record holding its first 256 bytes; either way the
 * stream goes on. Values are not checked here (`1e309` parses to Infinity and is left to
 * validation). Blank lines are skipped but counted; a byte order mark and CRLF line ends
 * are handled; only LF ends a line, so a lone CR is the line's own text (JSON whitespace
 * between values). The input is destroyed when the generator finishes or is abandoned
 * (except standard input).
 *
 * @example for await (const record of ndjsonRecords(createReadStream('samples.ndjson'))) ...
 */
export async function* ndjsonRecords(input: Readable, options: NdjsonOptions = {}): AsyncGenerator<IngestRecord, void, undefined> {
  const source = options.source ?? 'ndjson';
  let line = 0;
  try {
    for await (const item of readLines(input, options)) {
      line = item.line;
      if (item.error !== undefined) {
        yield { error: item.error, origin: { source, line, raw: item.prefix } };
        continue;
      }
      const raw = item.text;
      if (raw.trim() === '') continue;
      const origin = { source, line, raw };
      if (item.invalidUtf8 === true) {
        yield { error: new StreamgradError('SG_ERR_BAD_JSON', `line ${line}: not UTF-8 text`, 'line'), origin };
        continue;
      }
      let value: unknown;
      try {
        value = JSON.parse(raw);
      } catch (error) {
        const detail = error instanceof Error ? error.message.split('\n', 1)[0] : String(error);
        yield { error: new StreamgradError('SG_ERR_BAD_JSON', `line ${line}: ${detail}`, 'line', { cause: error }), origin };
        continue;
      }
      yield { value, origin };
    }
  } catch (error) {
    throw new StreamgradError('SG_ERR_SOURCE', `${source}: read failed after line ${line}: ${error instanceof Error ? error.message : String(error)}`, 'source', { cause: error });
  } finally {
    if (input !== process.stdin) input.destroy();
  }
}

/** The records of an NDJSON file, opened when iteration starts (pull). */
export function ndjsonFileRecords(path: string, options: NdjsonOptions = {}): AsyncIterable<IngestRecord> {
  return { [Symbol.asyncIterator]: () => ndjsonRecords(createReadStream(path), { ...options, source: options.source ?? path }) };
}

/**
 * An NDJSON file as an Observable of records. Built on the pull form: `from` takes one
 * record at a time, so a synchronous consumer (training) paces the reading.
 *
 * @example ndjsonFile('samples.ndjson').pipe(validateRecords({ shape }), train(trainer))
 */
export function ndjsonFile(path: string, options: NdjsonOptions = {}): Observable<IngestRecord> {
  return defer(() => from(ndjsonFileRecords(path, options)));
}

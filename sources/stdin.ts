import type { Readable } from 'node:stream';
import { defer, from, type Observable } from 'rxjs';
import type { IngestRecord } from '../core/record.ts';
import { csvRecords, type CsvOptions } from './csv.ts';
import type { LineOptions } from './lines.ts';
import { ndjsonRecords } from './ndjson.ts';

/** Options of the standard-input reader. */
export type StdinOptions =
  | ({ readonly format?: 'ndjson'; readonly input?: Readable } & LineOptions)
  | ({ readonly format: 'csv'; readonly input?: Readable } & CsvOptions);

/**
 * Standard input (`--data -`) as a pull source of records, NDJSON by default or CSV with
 * a header row, through the bounded line reader (`maxLineBytes`, 16 MiB by default). Read only as fast as the consumer pulls: a producer piping into the
 * process is held back by the pipe. Standard input is left open for others when the
 * consumer stops early. `input` replaces `process.stdin` (tests).
 */
export function stdinRecords(options: StdinOptions = {}): AsyncIterable<IngestRecord> {
  const input = options.input ?? process.stdin;
  if (options.format === 'csv') return csvRecords(input, { ...options, source: options.source ?? 'stdin' });
  return { [Symbol.asyncIterator]: () => ndjsonRecords(input, { source: 'stdin', maxLineBytes: options.maxLineBytes }) };
}

/** Standard input as an Observable of records (built on the pull form). */
export function stdin(options: StdinOptions = {}): Observable<IngestRecord> {
  return defer(() => from(stdinRecords(options)));
}

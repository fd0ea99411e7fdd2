import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { type CsvError, parse } from 'csv-parse';
import { defer, from, type Observable } from 'rxjs';
import { StreamgradError } from '../pipeline/errors.ts';
import type { IngestRecord } from '../pipeline/record.ts';

/** Options of the CSV reader. */
export interface CsvOptions {
  /** The `source` named in each record's origin (default: the path, or `csv`). */
  readonly source?: string;
  /** Field delimiter (default `,`). */
  readonly delimiter?: string;
  /**
   * Columns the header must have (the features and targets): a header without one of
   * them fails at once with `SG_ERR_CONFIG` naming it, before any row is read.
   */
  readonly require?: readonly string[];
  /** Longest record in characters (default 1 MiB): bounds memory when a quote never closes. */
  readonly maxRecordChars?: number;
}

/** A record's raw text without the line breaks around it (csv-parse's `raw` may hold a stray CR of the line before). */
const stripEnd = (raw: string) => raw.replace(/^[\r\n]+|[\r\n]+$/g, '');

/** Counts line breaks inside a record's (stripped) raw text: a quoted field spanning lines. */
function innerBreaks(raw: string): number {
  let n = 0;
  for (let i = raw.indexOf('\n'); i !== -1; i = raw.indexOf('\n', i + 1)) n++;
  return n;
}

/**
 * A CSV file with a header row as a pull source of named records (csv-parse underneath):
 * each row becomes `{column: "cell", ...}` (text cells, a null-prototype object, so a
 * `__proto__` column is just a column) with `text: true`, its line number and raw text.
 * The parser is a stream transform iterated with `for await`: it reads only as fast as
 * the consumer pulls, so memory stays flat on any file size.
 *
 * Cells stay text; the `FeatureMap` parses them strictly (`""` is missing, `NaN` is
 * non-finite, `abc` is a type error). A row whose field count differs from the header's
 * is an `SG_ERR_ARITY` record, a row the parser cannot read (a broken quote) an
 * `SG_ERR_TYPE` record naming the parser's reason; either way the stream goes on.
 * Quoted fields may span lines (RFC 4180): such a record reports its first line.
 *
 * @example
 * csvFile('seattle-weather.csv', { require: ['temp_max', 'weather'] })
 *   .pipe(validateRecords({ shape, features }), train(trainer))
 */
export function csvRecords(input: Readable | string, options: CsvOptions = {}): AsyncIterable<IngestRecord> {
  return { [Symbol.asyncIterator]: () => readCsv(input, options) };
}

async function* readCsv(input: Readable | string, options: CsvOptions): AsyncGenerator<IngestRecord, void, undefined> {
  const source = options.source ?? (typeof input === 'string' ? input : 'csv');
  const stream = typeof input === 'string' ? createReadStream(input) : input;
  // parse errors of skipped records arrive through a callback; they are yielded in line order
  const skipped: IngestRecord[] = [];
  const parser = parse({
    bom: true,
    delimiter: options.delimiter ?? ',',
    info: true,
    raw: true,
    relax_column_count: true,
    relax_quotes: true,
    skip_empty_lines: true,
    skip_records_with_error: true,
    max_record_size: options.maxRecordChars ?? 1024 * 1024,
    on_skip: (error: CsvError | undefined, raw: string | undefined) => {
      const text = raw ?? '';
      const at = typeof error?.lines === 'number' ? error.lines : 0;
      const line = Math.max(1, at - innerBreaks(stripEnd(text)));
      const reason = (error?.message ?? 'unreadable record').replace(/ at line \d+/, '');
      skipped.push({ error: new StreamgradError('SG_ERR_TYPE', `line ${line}: not a CSV record: ${reason}`, 'line'), origin: { source, line, raw: stripEnd(text) } });
      return undefined;
    },
  });
  stream.on('error', (error: Error) => parser.destroy(error));
  const rows = stream.pipe(parser);
  let header: string[] | null = null;
  try {
    for await (const item of rows as AsyncIterable<{ record: string[]; raw: string; info: { lines: number } }>) {
      const raw = stripEnd(item.raw);
      const line = item.info.lines - innerBreaks(raw);
      while (skipped.length > 0 && (skipped[0].origin.line ?? 0) < line) yield skipped.shift()!;
      if (header === null) {
        header = checkHeader(item.record, options.require ?? [], source);
        continue;
      }
      const cells = item.record;
      const origin = { source, line, raw };
      if (cells.length !== header.length) {
        yield { error: new StreamgradError('SG_ERR_ARITY', `line ${line}: has ${cells.length} field${cells.length === 1 ? '' : 's'}, the header has ${header.length}`, 'line'), origin };
        continue;
      }
      const value: Record<string, string> = Object.create(null) as Record<string, string>;
      for (let i = 0; i < header.length; i++) value[header[i]] = cells[i];
      yield { value, origin, text: true };
    }
    while (skipped.length > 0) yield skipped.shift()!;
    if (header === null) throw new StreamgradError('SG_ERR_CONFIG', `${source}: no header row (the file is empty)`, 'header');
  } catch (error) {
    if (error instanceof StreamgradError) throw error;
    throw new StreamgradError('SG_ERR_SOURCE', `${source}: read failed: ${error instanceof Error ? error.message : String(error)}`, 'source', { cause: error });
  } finally {
    parser.destroy();
    if (stream !== process.stdin) stream.destroy();
  }
}

function checkHeader(cells: readonly string[], require: readonly string[], source: string): string[] {
  const header = cells.map((c) => c.trim());
  const seen = new Set<string>();
  for (const [i, name] of header.entries()) {
    if (name === '') throw new StreamgradError('SG_ERR_CONFIG', `${source}: header column ${i + 1} has no name`, 'header');
    if (seen.has(name)) throw new StreamgradError('SG_ERR_CONFIG', `${source}: header names column ${JSON.stringify(name)} twice`, 'header');
    seen.add(name);
  }
  const missing = require.filter((name) => !seen.has(name));
  if (missing.length > 0) {
    throw new StreamgradError('SG_ERR_CONFIG', `${source}: no column ${missing.map((m) => JSON.stringify(m)).join(', ')} in the header (it has ${header.join(', ')})`, missing[0]);
  }
  return header;
}

/** A CSV file as an Observable of records, built on the pull form (`from` pulls one at a time). */
export function csvFile(path: string, options: CsvOptions = {}): Observable<IngestRecord> {
  return defer(() => from(csvRecords(path, options)));
}

/**
 * The distinct labels of one column, sorted: the class list of a categorical target
 * when none is given. Reads the whole file once (streaming; only the labels are kept).
 * More than `max` distinct labels (default 1000) is refused: that is no class column.
 */
export async function discoverClasses(path: string, column: string, options: CsvOptions & { readonly max?: number } = {}): Promise<string[]> {
  const max = options.max ?? 1000;
  const labels = new Set<string>();
  for await (const record of csvRecords(path, { ...options, require: [column] })) {
    if (record.error !== undefined) continue;
    const label = (record.value as Record<string, string>)[column];
    if (label === '') continue;
    labels.add(label);
    if (labels.size > max) throw new StreamgradError('SG_ERR_CONFIG', `${path}: column ${JSON.stringify(column)} has more than ${max} distinct values; give the classes`, 'classes');
  }
  return [...labels].sort();
}

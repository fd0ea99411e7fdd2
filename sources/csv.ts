import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { defer, from, type Observable } from 'rxjs';
import { StreamgradError } from '../core/errors.ts';
import type { IngestRecord } from '../core/record.ts';
import { DEFAULT_MAX_LINE_BYTES, formatBytes, type LineItem, type LineOptions, readLines, type TextLine } from './lines.ts';

/** Options of the CSV reader. */
export interface CsvOptions extends LineOptions {
  /** The `source` named in each record's origin (default: the path, or `csv`). */
  readonly source?: string;
  /** Field delimiter (default `,`). */
  readonly delimiter?: string;
  /**
   * Columns the header must have (the features and targets): a header without one of
   * them fails at once with `SG_ERR_CONFIG` naming it, before any row is read.
   */
  readonly require?: readonly string[];
}

/**
 * A CSV file with a header row as a pull source of named records: each row becomes
 * `{column: "cell", ...}` (text cells, a null-prototype object, so a `__proto__` column
 * is just a column) with `text: true`, its line number and raw text. It reads through
 * the bounded line reader (`sources/lines.ts`) only as fast as the consumer pulls, so
 * memory stays flat on any file size.
 *
 * Cells stay text; the `FeatureMap` parses them strictly (`""` is missing, `NaN` is
 * non-finite, `abc` is a type error). A row whose field count differs from the header's
 * is an `SG_ERR_ARITY` record; either way the stream goes on. Quoting is RFC 4180's
 * (`"a,b"`, `""` for a quote), leniently: a quote inside an unquoted cell is text, and
 * so is a quoted cell with text after its closing quote on the same line (`"x"y`).
 *
 * **Broken quotes cost one row, not the rest of the file.** A quoted field may span
 * lines (RFC 4180), so a quote that never closes would swallow every line after it.
 * A record that spans lines is therefore only accepted when its quote closes cleanly
 * (followed by a delimiter or the line's end), within `maxLineBytes` (16 MiB) for the
 * whole record, and the record has the header's field count. Otherwise only its first
 * line is rejected (`SG_ERR_TYPE`, `line N: not a CSV record: unclosed quote …`) and
 * reading starts again at the line after it, so every later row is trained or rejected
 * on its own: rows in = trained + rejected. Lines are the file's own (physical) lines: a
 * record reports the line it starts on, however many line breaks (LF or CRLF) its
 * quoted fields hold. A line that is not UTF-8 is an `SG_ERR_TYPE` record, a line longer
 * than `maxLineBytes` an `SG_ERR_LINE_TOO_LONG` one (holding its first 256 bytes).
 *
 * @example
 * csvFile('seattle-weather.csv', { require: ['temp_max', 'weather'] })
 *   .pipe(validateRecords({ shape, features }), train(trainer))
 */
export function csvRecords(input: Readable | string, options: CsvOptions = {}): AsyncIterable<IngestRecord> {
  return { [Symbol.asyncIterator]: () => readCsv(input, options) };
}

/** Why a record that spans lines was not accepted (it then costs only its first line). */
type Broken = { readonly broken: string };

/**
 * Scans one CSV record from its lines, resumably: `line` takes the next physical line
 * and says whether the record is complete, still inside a quoted field, or broken.
 */
class RecordScanner {
  readonly fields: string[] = [];
  /** The parts of the quoted field in progress, or null between fields. */
  private quoted: string[] | null = null;
  /** Where the quoted field in progress opened on its first line (for `"x"y`, taken as text). */
  private openedAt = 0;
  /** Whether the quoted field in progress has crossed a line break. */
  private spanned = false;

  constructor(private readonly delimiter: string) {}

  /** Scans `text`, a whole line (the first of the record, or the next one inside a quoted field). */
  line(text: string, number: number): 'done' | 'open' | Broken {
    const { delimiter, fields } = this;
    let i = 0;
    for (;;) {
      if (this.quoted !== null) {
        const q = text.indexOf('"', i);
        if (q === -1) {
          this.quoted.push(i === 0 ? text : text.slice(i));
          return 'open';
        }
        if (text.charCodeAt(q + 1) === 34) {
          this.quoted.push(text.slice(i, q + 1)); // "" is one quote
          i = q + 2;
          continue;
        }
        this.quoted.push(text.slice(i, q));
        const after = q + 1;
        if (after === text.length || text.startsWith(delimiter, after)) {
          fields.push(this.quoted.join(''));
          this.quoted = null;
          if (after === text.length) return 'done';
          i = after + delimiter.length;
          if (i === text.length) {
            fields.push('');
            return 'done';
          }
          continue;
        }
        // text after the closing quote: a stray quote in a one-line record is text;
        // a quoted field that crossed lines and then does not close cleanly is a quote that never closed
        if (this.spanned) return { broken: `unclosed quote (the quoted field reaches line ${number}, where a quote is followed by text)` };
        const d = text.indexOf(delimiter, after);
        fields.push(text.slice(this.openedAt, d === -1 ? text.length : d));
        this.quoted = null;
        if (d === -1) return 'done';
        i = d + delimiter.length;
        if (i === text.length) {
          fields.push('');
          return 'done';
        }
        continue;
      }
      if (text.charCodeAt(i) === 34) {
        this.quoted = [];
        this.openedAt = i;
        this.spanned = false;
        i++;
        continue;
      }
      const d = text.indexOf(delimiter, i);
      if (d === -1) {
        fields.push(text.slice(i));
        return 'done';
      }
      fields.push(text.slice(i, d));
      i = d + delimiter.length;
      if (i === text.length) {
        fields.push('');
        return 'done';
      }
    }
  }

  /** The line break between two lines of a quoted field belongs to the field. */
  lineBreak(eol: string): void {
    this.quoted!.push(eol);
    this.spanned = true;
  }
}

async function* readCsv(input: Readable | string, options: CsvOptions): AsyncGenerator<IngestRecord, void, undefined> {
  const source = options.source ?? (typeof input === 'string' ? input : 'csv');
  const stream = typeof input === 'string' ? createReadStream(input) : input;
  const delimiter = options.delimiter ?? ',';
  const limit = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const lines = readLines(stream, options);
  // lines read ahead for a record that turned out broken: read again, from the line after its first
  let ahead: LineItem[] = [];
  let at = 0;
  const next = async (): Promise<LineItem | undefined> => {
    if (at < ahead.length) return ahead[at++];
    if (ahead.length > 0) {
      ahead = [];
      at = 0;
    }
    const r = await lines.next();
    return r.done === true ? undefined : r.value;
  };
  let header: string[] | null = null;
  let last = 0;
  try {
    for (let item = await next(); item !== undefined; item = await next()) {
      last = item.line;
      if (item.error !== undefined) {
        if (header === null) throw new StreamgradError('SG_ERR_CONFIG', `${source}: the header ${item.error.message.replace(/^line \d+: /, '')}`, 'header');
        yield { error: item.error, origin: { source, line: item.line, raw: item.prefix } };
        continue;
      }
      if (item.text === '') continue; // blank lines are skipped (their numbers still count)
      const line = item.line;
      let fields: string[];
      let raw = item.text;
      let invalid = item.invalidUtf8 === true;
      if (item.text.indexOf('"') === -1) {
        fields = item.text.split(delimiter);
      } else {
        // a record with quotes: it may span lines; each line it takes is kept to be read again if it is broken
        const scanner = new RecordScanner(delimiter);
        const taken: LineItem[] = [item];
        let chars = raw.length;
        let state = scanner.line(item.text, line);
        let current: TextLine = item;
        while (state === 'open') {
          const more = current.eol === '' ? undefined : await next();
          if (more === undefined) {
            state = { broken: 'unclosed quote (the quoted field runs to the end of the input)' };
            break;
          }
          taken.push(more);
          if (more.error !== undefined) {
            state = { broken: `unclosed quote (the quoted field reaches line ${more.line}, which is too long to read)` };
            break;
          }
          chars += current.eol.length + more.text.length;
          if (chars > limit) {
            state = { broken: `unclosed quote (the record would be longer than the ${formatBytes(limit)} line limit)` };
            break;
          }
          scanner.lineBreak(current.eol);
          invalid ||= more.invalidUtf8 === true;
          state = scanner.line(more.text, more.line);
          current = more;
        }
        fields = scanner.fields;
        if (state === 'done' && taken.length > 1 && header !== null && fields.length !== header.length) {
          state = { broken: `unclosed quote (the quoted field closes on line ${current.line}, but the record then has ${fields.length} field${fields.length === 1 ? '' : 's'}, the header has ${header.length})` };
        }
        if (state !== 'done') {
          if (header === null) throw new StreamgradError('SG_ERR_CONFIG', `${source}: the header (line ${line}) is not a CSV record: ${(state as Broken).broken}`, 'header');
          // only the first line is rejected; the lines after it are read again as records of their own
          if (taken.length > 1) {
            ahead = [...taken.slice(1), ...ahead.slice(at)];
            at = 0;
          }
          yield { error: new StreamgradError('SG_ERR_TYPE', `line ${line}: not a CSV record: ${(state as Broken).broken}`, 'line'), origin: { source, line, raw: item.text } };
          continue;
        }
        if (taken.length > 1) raw = taken.map((t, k) => (k === 0 ? '' : (taken[k - 1] as TextLine).eol) + (t as TextLine).text).join('');
      }
      if (invalid) {
        if (header === null) throw new StreamgradError('SG_ERR_CONFIG', `${source}: the header is not UTF-8 text`, 'header');
        yield { error: new StreamgradError('SG_ERR_TYPE', `line ${line}: not UTF-8 text`, 'line'), origin: { source, line, raw } };
        continue;
      }
      if (header === null) {
        header = checkHeader(fields, options.require ?? [], source);
        continue;
      }
      const origin = { source, line, raw };
      if (fields.length !== header.length) {
        yield { error: new StreamgradError('SG_ERR_ARITY', `line ${line}: has ${fields.length} field${fields.length === 1 ? '' : 's'}, the header has ${header.length}`, 'line'), origin };
        continue;
      }
      const value: Record<string, string> = Object.create(null) as Record<string, string>;
      for (let i = 0; i < header.length; i++) value[header[i]] = fields[i];
      yield { value, origin, text: true };
    }
    if (header === null) throw new StreamgradError('SG_ERR_CONFIG', `${source}: no header row (the file is empty)`, 'header');
  } catch (error) {
    if (error instanceof StreamgradError) throw error;
    throw new StreamgradError('SG_ERR_SOURCE', `${source}: read failed after line ${last}: ${error instanceof Error ? error.message : String(error)}`, 'source', { cause: error });
  } finally {
    await lines.return(undefined);
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

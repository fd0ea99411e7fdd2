import { isUtf8 } from 'node:buffer';
import type { Readable } from 'node:stream';
import { StreamgradError } from '../core/errors.ts';

/** The longest line read by default: 16 MiB. Longer lines are rejected and skipped, never held. */
export const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;
/** The limit a user may set at most: well under the longest JavaScript string (2^29 − 24 UTF-16 units). */
export const MAX_LINE_BYTES_LIMIT = 256 * 1024 * 1024;
/** The least a user may set: a line must at least hold a small record. */
export const MIN_LINE_BYTES_LIMIT = 64;
/** How much of an over-long line a rejection keeps (its `raw`): enough to recognise it. */
export const LINE_PREFIX_BYTES = 256;

export interface LineOptions {
  /**
   * The longest line in bytes, its line break excluded (default 16 MiB,
   * `DEFAULT_MAX_LINE_BYTES`): a longer one is an `SG_ERR_LINE_TOO_LONG` item holding only
   * its first 256 bytes, and reading goes on after its line break.
   */
  readonly maxLineBytes?: number;
}

/** One line of text: its 1-based number, its text without the line break, and the break (`''` on a last line without one). */
export interface TextLine {
  readonly line: number;
  readonly text: string;
  readonly eol: '\n' | '\r\n' | '';
  /** True when the bytes are not UTF-8; `text` then holds them decoded with U+FFFD replacements (for reports only). */
  readonly invalidUtf8?: true;
  readonly error?: undefined;
}

/** A line that was too long to read: its number, the error (`SG_ERR_LINE_TOO_LONG`) and the first bytes of it. */
export interface OverlongLine {
  readonly line: number;
  readonly error: StreamgradError;
  /** The first `LINE_PREFIX_BYTES` bytes of the line, decoded (U+FFFD where they are not UTF-8). */
  readonly prefix: string;
  /** Its length in bytes, line break excluded. */
  readonly bytes: number;
}

export type LineItem = TextLine | OverlongLine;

const LF = 10;
const CR = 13;
const startsWithBom = (b: Buffer) => b.length >= 3 && b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf;

/** `1.5 MiB`, `16 MiB`, `300 B`: a byte count as people read it. */
export function formatBytes(n: number): string {
  if (n >= 1024 * 1024) return `${+(n / (1024 * 1024)).toFixed(1)} MiB`;
  if (n >= 1024) return `${+(n / 1024).toFixed(1)} KiB`;
  return `${n} B`;
}

/** Checks a `maxLineBytes` setting: an integer within the documented bounds, else `SG_ERR_CONFIG` naming `field`. */
export function checkMaxLineBytes(value: number, field = 'maxLineBytes'): number {
  if (!Number.isSafeInteger(value) || value < MIN_LINE_BYTES_LIMIT || value > MAX_LINE_BYTES_LIMIT) {
    throw new StreamgradError('SG_ERR_CONFIG', `${field}: must be an integer from ${MIN_LINE_BYTES_LIMIT} to ${MAX_LINE_BYTES_LIMIT} (${formatBytes(MAX_LINE_BYTES_LIMIT)}), got ${value}`, field);
  }
  return value;
}

/**
 * The lines of a byte stream, bounded: the one line reader under every text source
 * (NDJSON, CSV, standard input, `streamgrad predict`).
 *
 * - Only LF ends a line; a CR right before it is part of the break (CRLF), any other CR
 *   is text, so a lone CR inside a record never splits it.
 * - A line is held in memory only up to `maxLineBytes`: past that it is counted, not
 *   kept, until its LF, and comes out as one `OverlongLine` with its first 256 bytes.
 *   Memory stays bounded by the limit plus one chunk on any input, `/dev/zero` included
 *   (which is one endless line: it is skipped for as long as it is read).
 * - Each line is checked to be UTF-8 (strictly, as `TextDecoder` with `fatal: true`
 *   would); a line that is not is marked `invalidUtf8` and left for the format to reject.
 *   The check runs once per chunk of complete lines, so valid text costs one native
 *   scan and no per-line decoder call.
 * - A byte order mark at the start is dropped. Line numbers count every line, blank ones
 *   included, so that they are the file's own.
 * - It pulls: a chunk is read only when the lines before it are taken. The stream is left
 *   open when iteration stops (the caller decides whether to close it).
 *
 * @example
 * for await (const item of readLines(createReadStream('samples.ndjson'))) {
 *   if (item.error !== undefined) console.warn(item.line, item.error.code); // SG_ERR_LINE_TOO_LONG
 *   else if (item.invalidUtf8) console.warn(item.line, 'not UTF-8');
 *   else handle(item.line, item.text);
 * }
 */
export async function* readLines(input: Readable, options: LineOptions = {}): AsyncGenerator<LineItem, void, undefined> {
  const max = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  let line = 0;
  // the line in progress: its chunks (while it fits), or only its length and prefix once it does not
  let parts: Buffer[] = [];
  let held = 0;
  let overlong = false;
  let prefix: Buffer | null = null;
  let skipped = 0;
  // whether the last byte of the line in progress is a CR (the first half of a CRLF split across chunks)
  let endsWithCr = false;
  let first = true;

  const tooLong = (bytes: number, head: Buffer): OverlongLine => ({
    line,
    error: new StreamgradError('SG_ERR_LINE_TOO_LONG', `line ${line}: longer than the ${formatBytes(max)} limit (${bytes} bytes); skipped to the next line`, 'line'),
    prefix: head.toString('utf8', 0, Math.min(head.length, LINE_PREFIX_BYTES)),
    bytes,
  });

  /** A complete line's bytes (line break removed) as an item. */
  const finish = (bytes: Buffer, eol: TextLine['eol'], knownUtf8: boolean): LineItem => {
    if (first) {
      first = false;
      if (startsWithBom(bytes)) bytes = bytes.subarray(3);
    }
    if (bytes.length > max) return tooLong(bytes.length, bytes);
    if (knownUtf8 || isUtf8(bytes)) return { line, text: bytes.toString('utf8'), eol };
    return { line, text: bytes.toString('utf8'), eol, invalidUtf8: true };
  };

  /** Ends the line in progress at `end` of `chunk` (the bytes before its LF). */
  const close = (chunk: Buffer, start: number, end: number): LineItem => {
    line++;
    const crlf = end > start ? chunk[end - 1] === CR : endsWithCr;
    if (overlong) {
      const bytes = skipped + (end - start);
      const item = tooLong(bytes - (crlf ? 1 : 0), prefix!);
      overlong = false;
      prefix = null;
      skipped = 0;
      first = false;
      return item;
    }
    let bytes: Buffer;
    if (held === 0) bytes = chunk.subarray(start, end);
    else {
      parts.push(chunk.subarray(start, end));
      bytes = Buffer.concat(parts, held + (end - start));
      parts = [];
      held = 0;
    }
    return finish(crlf ? bytes.subarray(0, bytes.length - 1) : bytes, crlf ? '\r\n' : '\n', false);
  };

  /** Keeps the rest of a chunk (no LF in it) as part of the line in progress, or counts it once the line is over the limit. */
  const carry = (chunk: Buffer, start: number) => {
    const n = chunk.length - start;
    if (n === 0) return;
    endsWithCr = chunk[chunk.length - 1] === CR;
    if (overlong) {
      skipped += n;
      return;
    }
    parts.push(chunk.subarray(start));
    held += n;
    // one CR byte more than the limit may still be the first half of a CRLF
    if (held > max + 1) {
      // only the first bytes are kept (copied, so the chunks can go); the rest is counted
      const bom = first && startsWithBom(parts[0]) ? 3 : 0;
      const head: Buffer[] = [];
      for (let k = 0, n = 0; k < parts.length && n < bom + LINE_PREFIX_BYTES; k++) {
        head.push(parts[k]);
        n += parts[k].length;
      }
      prefix = Buffer.from(Buffer.concat(head).subarray(bom, bom + LINE_PREFIX_BYTES));
      skipped = held - bom;
      parts = [];
      held = 0;
      overlong = true;
    }
  };

  for await (const raw of input.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer | string>) {
    const chunk = typeof raw === 'string' ? Buffer.from(raw, 'utf8') : raw;
    let start = 0;
    let lf = chunk.indexOf(LF, start);
    if (lf === -1) {
      carry(chunk, start);
      continue;
    }
    // the line that began in an earlier chunk
    if (held > 0 || overlong) {
      yield close(chunk, start, lf);
      start = lf + 1;
      lf = chunk.indexOf(LF, start);
    }
    if (lf !== -1) {
      // the complete lines of this chunk: one UTF-8 check for all of them (an LF is never inside a multi-byte character)
      const last = chunk.lastIndexOf(LF);
      const valid = isUtf8(chunk.subarray(start, last));
      while (lf !== -1) {
        line++;
        const crlf = lf > start && chunk[lf - 1] === CR;
        const end = crlf ? lf - 1 : lf;
        yield valid && !first && end - start <= max
          ? { line, text: chunk.toString('utf8', start, end), eol: crlf ? '\r\n' : '\n' }
          : finish(chunk.subarray(start, end), crlf ? '\r\n' : '\n', valid);
        start = lf + 1;
        lf = chunk.indexOf(LF, start);
      }
    }
    carry(chunk, start);
  }
  // a last line without a line break
  if (overlong) {
    line++;
    yield tooLong(skipped, prefix!);
  } else if (held > 0) {
    line++;
    yield finish(Buffer.concat(parts, held), '', false);
  }
}

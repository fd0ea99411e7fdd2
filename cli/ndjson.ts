import { open } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { StreamgradError } from '../pipeline/errors.ts';
import { CliError, EXIT_USAGE, oneLine } from './cli-error.ts';

/** One non-blank NDJSON line: its 1-based line number and either the parsed value or why it is not JSON. */
export type NdjsonRecord =
  | { readonly line: number; readonly value: unknown; readonly error?: undefined }
  | { readonly line: number; readonly error: StreamgradError };

/**
 * Reads newline-delimited JSON lazily, one line per pull: nothing is read ahead beyond
 * readline's small buffer (it pauses the stream when its queue fills), so a consumer
 * that trains on each line before pulling the next keeps memory flat on any file size.
 * `from(readNdjson(input))` is such a consumer.
 *
 * Blank lines are skipped (their numbers still count). A line that is not JSON becomes a
 * record with an `SG_ERR_BAD_JSON` error (`line N: …`, field `line`) and the stream goes
 * on. Values are not checked here; `1e309` parses to Infinity and is left for the
 * sample validation to reject. The input is closed when the generator finishes or is
 * abandoned.
 */
export async function* readNdjson(input: Readable): AsyncGenerator<NdjsonRecord, void, undefined> {
  const lines = createInterface({ input, crlfDelay: Infinity });
  let line = 0;
  try {
    for await (const raw of lines) {
      line++;
      const text = line === 1 && raw.charCodeAt(0) === 0xfeff ? raw.slice(1) : raw; // byte order mark
      if (text.trim() === '') continue;
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        yield { line, error: new StreamgradError('SG_ERR_BAD_JSON', `line ${line}: ${oneLine(error)}`, 'line', { cause: error }) };
        continue;
      }
      yield { line, value };
    }
  } finally {
    lines.close();
    if (input !== process.stdin) input.destroy();
  }
}

/**
 * Opens the `--data` input: `-` is standard input, anything else a file path (relative
 * to the working directory). A missing, unreadable or non-regular file is a usage error
 * naming the option and the path, raised before any training starts.
 */
export async function openData(path: string, option = '--data'): Promise<Readable> {
  if (path === '-') return process.stdin;
  let handle;
  try {
    handle = await open(path, 'r');
    if ((await handle.stat()).isDirectory()) throw new Error('is a directory');
  } catch (error) {
    await handle?.close();
    throw new CliError(`${option} ${path}: cannot read: ${oneLine(error)}`, EXIT_USAGE, { cause: error });
  }
  return handle.createReadStream();
}

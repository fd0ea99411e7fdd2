import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { StreamgradError } from '../pipeline/errors.ts';
import { ndjsonRecords } from '../sources/ndjson.ts';
import { CliError, EXIT_USAGE, oneLine } from './cli-error.ts';

/** One non-blank NDJSON line: its 1-based line number and either the parsed value or why it is not JSON. */
export type NdjsonRecord =
  | { readonly line: number; readonly value: unknown; readonly error?: undefined }
  | { readonly line: number; readonly error: StreamgradError };

/**
 * Reads newline-delimited JSON lazily, one line per pull (the NDJSON source,
 * `sources/ndjson.ts`, in the CLI's older record shape). `streamgrad train` itself now
 * takes the source's records, with their origins, through the ingestion stages.
 *
 * Blank lines are skipped (their numbers still count). A line that is not JSON becomes a
 * record with an `SG_ERR_BAD_JSON` error (`line N: …`, field `line`) and the stream goes
 * on. The input is closed when the generator finishes or is abandoned.
 */
export async function* readNdjson(input: Readable): AsyncGenerator<NdjsonRecord, void, undefined> {
  for await (const record of ndjsonRecords(input)) {
    const line = record.origin.line ?? 0;
    yield record.error === undefined ? { line, value: record.value } : { line, error: record.error };
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

import { fstatSync } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { StreamgradError } from '../core/errors.ts';
import { ndjsonRecords } from '../sources/ndjson.ts';
import { ConfigError, oneLine } from './errors.ts';

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
 * How much of an input has been read: bytes taken from the file or pipe so far and, for a
 * regular file, its size, so that a progress bar can show the fraction done and an ETA.
 * Rows are unknown until read; bytes are known from the start.
 *
 * `bytesRead` counts what the reader took from the file, which runs ahead of what
 * training has consumed by its buffers (a 64 KiB chunk and the line splitter's queue):
 * on any file worth a progress bar that is a fraction of a percent.
 */
export interface ByteMeter {
  readonly bytesRead: number;
  /** The size of a regular file (also one redirected to standard input); undefined for pipes and terminals. */
  readonly totalBytes: number | undefined;
}

/** The meters of the inputs `openData` opened, by stream (no stream is kept alive by it). */
const meters = new WeakMap<Readable, ByteMeter>();

/**
 * The byte meter of an input `openData` returned, or undefined for any other stream.
 *
 * @example
 * const input = await openData('samples.ndjson');
 * const meter = byteMeter(input)!;   // meter.bytesRead / meter.totalBytes: the fraction read
 */
export function byteMeter(input: Readable): ByteMeter | undefined {
  return meters.get(input);
}

/**
 * Opens the `--data` input: `-` is standard input, anything else a file path (relative
 * to the working directory). A missing, unreadable or non-regular file is a usage error
 * naming the option and the path, raised before any training starts. `byteMeter(stream)`
 * tells how much of it has been read.
 */
export async function openData(path: string, option = '--data'): Promise<Readable> {
  if (path === '-') {
    meters.set(process.stdin, meterOf(process.stdin, stdinSize()));
    return process.stdin;
  }
  let handle;
  let size: number;
  try {
    handle = await open(path, 'r');
    const stat = await handle.stat();
    if (stat.isDirectory()) throw new Error('is a directory');
    size = stat.size;
  } catch (error) {
    await handle?.close();
    throw new ConfigError(`${option} ${path}: cannot read: ${oneLine(error)}`, { cause: error });
  }
  const stream = handle.createReadStream();
  // a FIFO or character device has size 0 and no end known in advance
  meters.set(stream, meterOf(stream, size > 0 ? size : undefined));
  return stream;
}

/**
 * Reads the count the stream keeps itself (`fs.ReadStream` and `net.Socket`, the two
 * kinds standard input comes as, both have `bytesRead`): no listener is added, so the
 * stream's flow and back-pressure are untouched.
 */
function meterOf(stream: Readable, totalBytes: number | undefined): ByteMeter {
  return {
    get bytesRead() {
      const n = (stream as Readable & { bytesRead?: unknown }).bytesRead;
      return typeof n === 'number' ? n : 0;
    },
    totalBytes,
  };
}

/** The size of standard input when it is a regular file (`< samples.ndjson`), else undefined. */
function stdinSize(): number | undefined {
  try {
    const stat = fstatSync(0);
    return stat.isFile() && stat.size > 0 ? stat.size : undefined;
  } catch {
    return undefined;
  }
}

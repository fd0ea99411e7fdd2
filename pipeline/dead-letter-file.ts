import { closeSync, createReadStream, fstatSync, fsyncSync, openSync, statSync, writeSync } from 'node:fs';
import { stat, truncate } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { type DeadLetter, type DeadLetterSink, letterPosition } from '../core/dead-letter.ts';
import { StreamgradError } from '../core/errors.ts';
import { FileLock } from './file-lock.ts';

/** Options of `FileDeadLetters`. */
export interface FileDeadLettersOptions {
  /** Append to an existing file instead of replacing it (default false). */
  readonly append?: boolean;

  /** Buffered bytes that trigger a write (default 64 KiB): the most the sink ever holds in memory. */
  readonly flushBytes?: number;
  /** Longest a letter waits in the buffer before it is written (default 200 ms). */
  readonly flushMs?: number;
}

/**
 * Dead letters as NDJSON in a file, one `DeadLetter` per line.
 *
 * Letters are buffered and written in one `write` once `flushBytes` have gathered or
 * `flushMs` after the first buffered one, so a flood of bad records costs a few system
 * calls, and the buffer never holds more than `flushBytes` (plus one letter). Writes are
 * synchronous: a letter is never dropped to keep up, it slows the stream for a moment
 * instead, and a write error (a full disk) throws from `write`, failing the stage that
 * rejects. `close()` flushes, fsyncs and closes the file.
 *
 * @example const sink = FileDeadLetters.open('rejected.ndjson');
 */
export class FileDeadLetters implements DeadLetterSink {
  /** Letters handed to the sink. */
  written = 0;
  /** Bytes written to the file. */
  bytes = 0;
  private fd: number | null;
  private chunks: string[] = [];
  private buffered = 0;
  private timer: NodeJS.Timeout | null = null;
  /** A write error of a timed flush, thrown by the next `write` or `close`. */
  private failure: unknown = null;
  private readonly flushBytes: number;
  private readonly flushMs: number;

  /**
   * A regular file: letters are made durable with fsync. A device or a pipe (`/dev/null`,
   * `/dev/stderr`) has nothing to make durable, and fsync on it fails (EINVAL).
   */
  private readonly durable: boolean;

  private constructor(fd: number, readonly path: string, options: FileDeadLettersOptions, private readonly lock: FileLock | null) {
    this.fd = fd;
    this.durable = fstatSync(fd).isFile();
    this.flushBytes = options.flushBytes ?? 64 * 1024;
    this.flushMs = options.flushMs ?? 200;
  }

  /**
   * Opens (creates or truncates, or appends to) `path`; throws `SG_ERR_CONFIG` naming it
   * when it cannot, or when another process writes it: a regular file is locked
   * (`PATH.lock`, see `FileLock`) before it is touched, as two writers would interleave
   * and tear letters. The lock is released by `close()`.
   */
  static open(path: string, options: FileDeadLettersOptions = {}): FileDeadLetters {
    // a device or a pipe (/dev/null, /dev/stderr) is nobody's file to lock
    const existing = statSync(path, { throwIfNoEntry: false });
    let lock: FileLock | null = null;
    if (existing === undefined || existing.isFile()) {
      try {
        lock = FileLock.acquire(`${path}.lock`, `dead-letter file ${path}`, 'deadLetter');
      } catch (error) {
        const message = (error as Error).message.replace(/^dead-letter file \S+: /, '');
        throw new StreamgradError('SG_ERR_CONFIG', `dead-letter file ${path}: cannot open: ${message}`, 'deadLetter', { cause: error });
      }
    }
    let fd: number;
    try {
      fd = openSync(path, options.append === true ? 'a' : 'w', 0o644);
    } catch (error) {
      lock?.release();
      throw new StreamgradError('SG_ERR_CONFIG', `dead-letter file ${path}: cannot open: ${(error as Error).message}`, 'deadLetter', { cause: error });
    }
    return new FileDeadLetters(fd, path, options, lock);
  }

  write(letter: DeadLetter): void {
    if (this.fd === null) throw new StreamgradError('SG_ERR_STATE', `dead-letter file ${this.path}: written after close`, 'deadLetter');
    this.rethrow();
    const line = `${JSON.stringify(letter)}\n`;
    this.chunks.push(line);
    this.buffered += line.length;
    this.written++;
    if (this.buffered >= this.flushBytes) this.flush();
    else if (this.timer === null) {
      this.timer = setTimeout(() => {
        try {
          this.flush();
        } catch (error) {
          this.failure = error;
        }
      }, this.flushMs);
      this.timer.unref();
    }
  }

  /** Writes what is buffered now. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.fd === null || this.chunks.length === 0) return;
    const data = Buffer.from(this.chunks.join(''), 'utf8');
    this.chunks = [];
    this.buffered = 0;
    let offset = 0;
    while (offset < data.length) {
      const written = writeSync(this.fd, data, offset, data.length - offset);
      // a full disk can make write return 0 instead of failing: never loop on it
      if (written <= 0) throw new Error(`short write: ${offset} of ${data.length} bytes written, then none (disk full or file size limit?)`);
      offset += written;
    }
    this.bytes += data.length;
  }

  /**
   * Writes what is buffered and makes it durable. A checkpoint calls it first: the records
   * it accounts for must not have letters still in memory, which a crash would lose.
   */
  sync(): void {
    this.rethrow();
    this.flush();
    if (this.fd !== null && this.durable) fsyncSync(this.fd);
  }

  private rethrow(): void {
    const failure = this.failure;
    if (failure === null) return;
    this.failure = null;
    throw new StreamgradError('SG_ERR_SOURCE', `dead-letter file ${this.path}: write failed: ${(failure as Error).message}`, 'deadLetter', { cause: failure });
  }

  async close(): Promise<void> {
    if (this.fd === null) return;
    try {
      this.rethrow();
      this.flush();
      if (this.durable) fsyncSync(this.fd);
    } finally {
      closeSync(this.fd);
      this.fd = null;
      this.lock?.release();
    }
  }
}

/**
 * Gets a dead-letter file ready for a resumed run: cuts a letter a crash left half
 * written, and returns the position (`letterPosition`) of the last complete letter, or
 * null when there is no file yet. The resumed run re-reads the records after its
 * checkpoint; with `afterPosition` it writes only the letters past this one, so the file
 * ends as an uninterrupted run's would, each rejected record once.
 */
export async function resumeDeadLetterFile(path: string): Promise<number | null> {
  if ((await stat(path).catch(() => null)) === null) return null;
  let complete = 0;
  let bytes = 0;
  let last: number | null = null;
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const line of lines) {
    bytes += Buffer.byteLength(line) + 1;
    let letter: DeadLetter;
    try {
      letter = JSON.parse(line) as DeadLetter;
    } catch {
      break; // torn by a crash: cut here
    }
    complete = bytes;
    last = letterPosition(letter) ?? last;
  }
  if (complete < (await stat(path)).size) await truncate(path, complete);
  return last;
}

/** The complete letters in a dead-letter file (after `resumeDeadLetterFile` cut a torn one): one per line. */
export async function countLetters(path: string): Promise<number> {
  let n = 0;
  const lines = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  for await (const line of lines) if (line !== '') n++;
  return n;
}


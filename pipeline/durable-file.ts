import { randomBytes } from 'node:crypto';
import * as nodeFs from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** An open file, as far as a durable write needs it (a `FileHandle` is one). */
export interface WritableFile {
  /** Writes up to `length` bytes of `data` from `offset` at the file's position; may write fewer (a full disk, a file size limit). */
  write(data: Uint8Array, offset: number, length: number): Promise<{ readonly bytesWritten: number }>;
  sync(): Promise<void>;
  close(): Promise<void>;
}

/** The file operations a durable write needs; tests inject one that fails or writes short on demand. */
export interface DurableFs {
  open(path: string, flags: string, mode?: number): Promise<WritableFile>;
  readFile(path: string): Promise<Uint8Array>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
}

/** Node's own file system. */
export const nodeDurableFs: DurableFs = nodeFs as unknown as DurableFs;

export interface DurableWriteOptions {
  readonly fs?: DurableFs;
  /** The temporary file, in the same folder (default `.NAME.PID.RANDOM.tmp` beside `path`). */
  readonly temp?: string;
  /** Permissions of a new file (default 0o644). */
  readonly mode?: number;
}

/** A write that did not put every byte into the file, or a file that does not read back as written. */
export class IncompleteWriteError extends Error {
  override readonly name = 'IncompleteWriteError';
  constructor(readonly path: string, message: string) {
    super(message);
  }
}

/**
 * Writes `data` to `path` so that it counts as written only when it is whole on disk: the
 * bytes go to a temporary file in the same folder, every one of them (a write that
 * returns short is continued; one that makes no progress is an error), the file is
 * fsynced, read back and compared byte for byte, and only then renamed over `path`, and
 * the folder fsynced. A reader sees the old file or the new one, never part of one; on
 * any failure the temporary file is removed, `path` is untouched, and the error is thrown.
 *
 * Why all of it: a full disk or a file size limit (`ulimit -f`) makes `write` return
 * fewer bytes than asked *without* an error, and a file renamed into place after such a
 * write is a truncated file that looks written.
 *
 * @example await writeFileDurably('model.json', new TextEncoder().encode(json));
 */
export async function writeFileDurably(path: string, data: Uint8Array, options: DurableWriteOptions = {}): Promise<void> {
  const fs = options.fs ?? nodeDurableFs;
  // A device or a pipe (`--out /dev/null`, `/dev/stdout`, a FIFO) is written through: a
  // file renamed over it would replace the node itself (as root, /dev/null became a
  // regular file) and its reader would get nothing. There is no file to keep whole there.
  const target = await nodeFs.stat(path).catch(() => null);
  if (target !== null && !target.isFile() && !target.isDirectory()) return writeThrough(fs, path, data);
  if (options.temp === undefined && options.fs === undefined) await removeStaleTemps(path);
  const temp = options.temp ?? join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    const file = await fs.open(temp, 'wx', options.mode ?? 0o644);
    try {
      await writeFully(file, data, temp);
      await file.sync();
    } finally {
      await file.close();
    }
    await verifyFile(fs, temp, data);
    await fs.rename(temp, path);
  } catch (error) {
    await fs.unlink(temp).catch(() => undefined);
    throw error;
  }
  await syncDirectory(fs, dirname(path));
}

/**
 * Removes the temporary files a killed write of `path` left beside it
 * (`.NAME.PID.RANDOM.tmp` of a process that no longer runs): a kill between the write and
 * the rename leaves one, and nothing else would ever remove it. Those of a running process
 * (another writer, mid-write) are left alone.
 *
 * @example await removeStaleTemps('model.json'); // .model.json.4242.1a2b3c4d.tmp is gone if 4242 has exited
 */
export async function removeStaleTemps(path: string): Promise<string[]> {
  const name = basename(path);
  const dir = dirname(path);
  const pattern = new RegExp(`^\\.${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(\\d+)\\.[0-9a-f]{8}\\.tmp$`);
  const removed: string[] = [];
  const entries = await nodeFs.readdir(dir).catch(() => [] as string[]);
  for (const entry of entries) {
    const pid = Number(pattern.exec(entry)?.[1] ?? NaN);
    if (!Number.isSafeInteger(pid) || pid === process.pid || running(pid)) continue;
    await nodeFs.unlink(join(dir, entry)).then(() => removed.push(entry), () => undefined);
  }
  return removed;
}

/** Whether a process with this id runs (one of another user's counts: EPERM). */
function running(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Writes `data` into a device or pipe as it is, every byte; not fsynced (devices and pipes refuse it: EINVAL). */
async function writeThrough(fs: DurableFs, path: string, data: Uint8Array): Promise<void> {
  const file = await fs.open(path, 'w');
  try {
    await writeFully(file, data, path);
  } finally {
    await file.close();
  }
}

/** Writes every byte of `data`, continuing after short writes; a write of nothing is an error. */
async function writeFully(file: WritableFile, data: Uint8Array, path: string): Promise<void> {
  let offset = 0;
  while (offset < data.length) {
    const { bytesWritten } = await file.write(data, offset, data.length - offset);
    if (!Number.isSafeInteger(bytesWritten) || bytesWritten <= 0 || bytesWritten > data.length - offset) {
      throw new IncompleteWriteError(path, `${path}: short write: ${offset} of ${data.length} bytes written, then ${String(bytesWritten)} (disk full or file size limit?)`);
    }
    offset += bytesWritten;
  }
}

/** Reads `path` back and checks that it holds exactly `data`. */
async function verifyFile(fs: DurableFs, path: string, data: Uint8Array): Promise<void> {
  const back = await fs.readFile(path);
  if (back.length !== data.length) {
    throw new IncompleteWriteError(path, `${path}: reads back as ${back.length} bytes, ${data.length} were written (disk full or file size limit?)`);
  }
  if (Buffer.compare(Buffer.from(back.buffer, back.byteOffset, back.byteLength), Buffer.from(data.buffer, data.byteOffset, data.byteLength)) !== 0) {
    throw new IncompleteWriteError(path, `${path}: does not read back as written`);
  }
}

/** Errors of a folder fsync that mean "not possible here", not "failed". */
const UNSUPPORTED = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'EISDIR', 'EPERM', 'EBADF']);

/** Makes a rename durable; a no-op where folders cannot be opened or synced (Windows, some file systems). */
async function syncDirectory(fs: DurableFs, dir: string): Promise<void> {
  let handle: WritableFile;
  try {
    handle = await fs.open(dir, 'r');
  } catch {
    return;
  }
  try {
    await handle.sync();
  } catch (error) {
    if (!UNSUPPORTED.has((error as NodeJS.ErrnoException).code ?? '')) throw error;
  } finally {
    await handle.close();
  }
}

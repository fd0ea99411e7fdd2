import * as nodeFs from 'node:fs/promises';
import { join } from 'node:path';
import { decodeCheckpoint, type Checkpoint } from './checkpoint.ts';
import { type DurableFs, writeFileDurably } from './durable-file.ts';
import { StreamgradError } from '../core/errors.ts';
import { FileLock } from './file-lock.ts';
import { makeFolder } from './make-folder.ts';

/** The file operations the store needs; tests inject one that fails on demand (ENOSPC, short writes). */
export interface CheckpointFs extends DurableFs {
  mkdir(path: string, options?: { recursive?: boolean }): Promise<unknown>;
  readdir(path: string): Promise<string[]>;
}

/** Options of a `CheckpointStore`. */
export interface CheckpointStoreOptions {
  /** How many checkpoints to keep (default 3). */
  readonly keep?: number;
  /** File name prefix (default `checkpoint`), e.g. one per run. */
  readonly prefix?: string;
  /** Fail loudly after this many failed writes in a row (default 3); fewer are counted and reported. */
  readonly maxConsecutiveFailures?: number;
  readonly fs?: CheckpointFs;
}

/** A checkpoint read back from the store, with the file it came from. */
export interface LoadedCheckpoint {
  readonly path: string;
  readonly checkpoint: Checkpoint;
  /** Newer files that were refused on the way (truncated, corrupt), with why. */
  readonly refused: readonly { readonly path: string; readonly error: StreamgradError }[];
}

const EXTENSION = '.sgck';

/**
 * A folder of checkpoints written atomically and verified (`writeFileDurably`): a
 * temporary file is written in full, fsynced, read back and compared, renamed into
 * place, and the folder fsynced, so a crash at any moment leaves either the previous
 * checkpoint or the new one, never half a file, and a write cut short (a full disk, a
 * file size limit) never counts as a checkpoint. Only the newest `keep` are kept, pruned
 * only once a new one is in place. A failed write removes its temporary file, keeps the
 * previous checkpoints, and is counted; `maxConsecutiveFailures` failures in a row throw.
 */
export class CheckpointStore {
  /** Failed writes so far, and in a row. */
  failures = 0;
  consecutiveFailures = 0;
  /** Why the last failed write failed (e.g. `ENOSPC: no space left on device`). */
  lastError: Error | null = null;
  private readonly keep: number;
  private readonly prefix: string;
  private readonly maxFailures: number;
  private readonly fs: CheckpointFs;
  private sequence = 0;
  private lock: FileLock | null = null;

  constructor(readonly dir: string, options: CheckpointStoreOptions = {}) {
    this.keep = options.keep ?? 3;
    this.prefix = options.prefix ?? 'checkpoint';
    this.maxFailures = options.maxConsecutiveFailures ?? 3;
    this.fs = options.fs ?? (nodeFs as unknown as CheckpointFs);
    if (!Number.isSafeInteger(this.keep) || this.keep < 1) throw new StreamgradError('SG_ERR_CONFIG', `checkpoint keep: must be an integer ≥ 1, got ${this.keep}`, 'keep');
    if (!/^[\w.-]+$/.test(this.prefix)) throw new StreamgradError('SG_ERR_CONFIG', 'checkpoint prefix: letters, digits, ".", "_" and "-" only', 'prefix');
  }

  /**
   * Creates the folder, takes its lock for this store's prefix (`PREFIX.lock`: a second
   * writer of the same checkpoints is refused with `SG_ERR_CONFIG` naming the holder's
   * pid; a lock left by a killed process is taken over), and removes temporary files a
   * crash left behind. `close()` releases the lock (so does the process's exit).
   */
  async init(): Promise<void> {
    await makeFolder(this.dir, this.fs);
    this.lock ??= FileLock.acquire(join(this.dir, `${this.prefix}.lock`), `checkpoint folder ${this.dir} (${this.prefix}-*${EXTENSION})`, 'dir');
    for (const name of await this.fs.readdir(this.dir)) {
      if (name.startsWith(`${this.prefix}-`) && name.endsWith('.tmp')) await this.fs.unlink(join(this.dir, name)).catch(() => undefined);
    }
  }

  /** The store's checkpoint files, oldest first. */
  async list(): Promise<string[]> {
    const names = (await this.fs.readdir(this.dir)).filter((n) => n.startsWith(`${this.prefix}-`) && n.endsWith(EXTENSION));
    return names.sort().map((n) => join(this.dir, n));
  }

  /**
   * Writes a checkpoint for `step`. Resolves with its path, or null when the write failed
   * (counted in `failures`); throws `SG_ERR_CHECKPOINT` once writes have failed
   * `maxConsecutiveFailures` times in a row.
   */
  async save(bytes: Uint8Array, step: number): Promise<string | null> {
    const name = `${this.prefix}-${String(step).padStart(12, '0')}${EXTENSION}`;
    const path = join(this.dir, name);
    const temp = join(this.dir, `${this.prefix}-${process.pid}-${++this.sequence}.tmp`);
    try {
      await writeFileDurably(path, bytes, { fs: this.fs, temp });
    } catch (error) {
      this.failures++;
      this.consecutiveFailures++;
      this.lastError = error instanceof Error ? error : new Error(String(error));
      if (this.consecutiveFailures >= this.maxFailures) {
        throw new StreamgradError('SG_ERR_CHECKPOINT', `checkpoint writes failed ${this.consecutiveFailures} times in a row (last: ${(error as Error).message})`, 'checkpoint', { cause: error });
      }
      return null;
    }
    this.consecutiveFailures = 0;
    // removing old checkpoints is housekeeping: the new one is in place, so a failure here
    // (the folder gone or unreadable) must not count as a failed write, let alone stop training
    await this.prune().catch(() => undefined);
    return path;
  }

  /**
   * The newest checkpoint that reads back intact; newer broken ones are skipped and
   * listed. Null when there is none. `check` adds the caller's own checks of a
   * checkpoint's contents (its sections): one it throws a `StreamgradError` for counts as
   * broken too.
   */
  async loadLatest(check?: (checkpoint: Checkpoint) => void): Promise<LoadedCheckpoint | null> {
    const refused: { path: string; error: StreamgradError }[] = [];
    for (const path of (await this.list()).reverse()) {
      try {
        const checkpoint = decodeCheckpoint(await readCandidate(this.fs, path));
        check?.(checkpoint);
        return { path, checkpoint, refused };
      } catch (error) {
        if (!(error instanceof StreamgradError)) throw error;
        refused.push({ path, error });
      }
    }
    if (refused.length > 0) {
      throw new StreamgradError('SG_ERR_CHECKPOINT', `no intact checkpoint in ${this.dir}: ${refused.map((r) => `${r.path}: ${r.error.message}`).join('; ')}`, 'checkpoint');
    }
    return null;
  }

  /** Releases the folder's lock; the store writes no more. */
  close(): void {
    this.lock?.release();
    this.lock = null;
  }

  private async prune(): Promise<void> {
    const files = await this.list();
    for (const path of files.slice(0, Math.max(0, files.length - this.keep))) await this.fs.unlink(path).catch(() => undefined);
  }
}

/**
 * A checkpoint file's bytes, or why it cannot be one (`SG_ERR_CHECKPOINT` naming it, so
 * that `loadLatest` goes back to the one before): a folder, a device or a FIFO named like
 * a checkpoint (`/dev/zero` would be read forever, a FIFO waited on), a symlink loop, or a
 * file the system will not read (EISDIR, ELOOP, EACCES used to escape as internal errors).
 */
async function readCandidate(fs: CheckpointFs, path: string): Promise<Uint8Array> {
  // a name the real file system does not know is an injected file system's own (tests)
  const info = await nodeFs.stat(path).catch(() => null);
  if (info !== null && !info.isFile()) throw new StreamgradError('SG_ERR_CHECKPOINT', `${path}: not a regular file`, 'checkpoint');
  try {
    return await fs.readFile(path);
  } catch (error) {
    throw new StreamgradError('SG_ERR_CHECKPOINT', `${path}: cannot read: ${(error as Error).message}`, 'checkpoint', { cause: error });
  }
}

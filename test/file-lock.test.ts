import { spawn } from 'node:child_process';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointStore } from '../pipeline/checkpoint-store.ts';
import { FileDeadLetters } from '../pipeline/dead-letter-file.ts';
import { StreamgradError } from '../core/errors.ts';
import { FileLock } from '../pipeline/file-lock.ts';
import { scratchFolders } from './helpers/scratch.ts';

/** One writer per checkpoint folder and dead-letter file (issue 17 #5); the CLI's side is in test/cli-checkpoint-faults.test.ts. */
const tempDir = scratchFolders('sg-lock-');
const holder = (pid: number, extra: Record<string, unknown> = {}) => `${JSON.stringify({ pid, started: null, host: hostname(), since: '2026-01-01T00:00:00.000Z', nonce: 'n', ...extra })}\n`;
const refusal = (f: () => unknown): string => {
  try {
    f();
  } catch (error) {
    return error instanceof StreamgradError ? `${error.code} ${error.field}: ${error.message}` : `untyped: ${String(error)}`;
  }
  return 'taken';
};

describe('FileLock', () => {
  it('a second taker is refused, naming the holder; after release it can be taken', () => {
    const path = join(tempDir(), 'x.lock');
    const lock = FileLock.acquire(path, 'folder x');
    expect(JSON.parse(readFileSync(path, 'utf8'))).toMatchObject({ pid: process.pid, host: hostname() });
    expect(refusal(() => FileLock.acquire(path, 'folder x', 'dir'))).toMatch(new RegExp(`^SG_ERR_CONFIG dir: folder x: in use by process ${process.pid} since \\d{4}-`));
    lock.release();
    expect(existsSync(path)).toBe(false);
    FileLock.acquire(path, 'folder x').release();
  });

  it('a lock whose process is gone is taken over', async () => {
    const path = join(tempDir(), 'x.lock');
    const child = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => child.on('close', r));
    writeFileSync(path, holder(child.pid!));
    const lock = FileLock.acquire(path, 'folder x');
    expect(JSON.parse(readFileSync(path, 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  it('a live pid that started at another time is a reused pid: the lock is stale', () => {
    if (!existsSync(`/proc/${process.pid}/stat`)) return; // the check needs /proc (Linux)
    const path = join(tempDir(), 'x.lock');
    writeFileSync(path, holder(process.pid, { started: '1' }));
    FileLock.acquire(path, 'folder x').release();
  });

  it('a live process holding it, with its own start time, keeps it', async () => {
    const path = join(tempDir(), 'x.lock');
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
    try {
      const started = existsSync(`/proc/${child.pid}/stat`) ? readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1].split(' ')[19] : null;
      writeFileSync(path, holder(child.pid!, { started }));
      expect(refusal(() => FileLock.acquire(path, 'folder x'))).toMatch(new RegExp(`in use by process ${child.pid}`));
    } finally {
      child.kill();
    }
  });

  it('another host\'s lock cannot be checked and holds; an unreadable lock holds only while it is fresh', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'remote.lock'), holder(1, { host: 'elsewhere.example' }));
    expect(refusal(() => FileLock.acquire(join(dir, 'remote.lock'), 'folder x'))).toMatch(/in use by process 1 on elsewhere\.example .*remove .*remote\.lock if that process is gone/);
    writeFileSync(join(dir, 'empty.lock'), '');
    expect(refusal(() => FileLock.acquire(join(dir, 'empty.lock'), 'folder x'))).toMatch(/being written/);
    utimesSync(join(dir, 'empty.lock'), new Date(Date.now() - 60_000), new Date(Date.now() - 60_000));
    FileLock.acquire(join(dir, 'empty.lock'), 'folder x').release();
  });

  it('a checkpoint store locks its folder per prefix; close releases it', async () => {
    const dir = tempDir();
    const store = new CheckpointStore(dir, { prefix: 'train' });
    await store.init();
    await expect(new CheckpointStore(dir, { prefix: 'train' }).init()).rejects.toMatchObject({ code: 'SG_ERR_CONFIG', field: 'dir', message: expect.stringMatching(/in use by process/) });
    const other = new CheckpointStore(dir, { prefix: 'other' }); // another run's checkpoints in the same folder
    await other.init();
    store.close();
    other.close();
    const again = new CheckpointStore(dir, { prefix: 'train' });
    await again.init();
    again.close();
  });

  it('a dead-letter file is locked while open; a device is not', async () => {
    const path = join(tempDir(), 'dead.ndjson');
    const sink = FileDeadLetters.open(path);
    expect(refusal(() => FileDeadLetters.open(path, { append: true }))).toMatch(/^SG_ERR_CONFIG deadLetter: dead-letter file .*dead\.ndjson: cannot open: in use by process/);
    await sink.close();
    expect(existsSync(`${path}.lock`)).toBe(false);
    const devNull = FileDeadLetters.open('/dev/null');
    expect(existsSync('/dev/null.lock')).toBe(false);
    await devNull.close().catch(() => undefined); // (fsync of /dev/null is EINVAL: not this test's business)
  });
});

import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, lstatSync, openSync, readdirSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type CheckpointFs, CheckpointStore } from '../pipeline/checkpoint-store.ts';
import { decodeCheckpoint, encodeCheckpoint } from '../pipeline/checkpoint.ts';
import { type DurableFs, IncompleteWriteError, type WritableFile, writeFileDurably } from '../pipeline/durable-file.ts';
import type { RunEvent } from '../pipeline/run.ts';
import { TrainingRun } from '../pipeline/run.ts';
import { CommandLog } from '../server/commands.ts';
import { regressionSamples, tinyTrainer } from './helpers/streams.ts';
import { scratchFolders } from './helpers/scratch.ts';

/**
 * Durable writes (issue 17 #1): a write that returns short, as `write(2)` does on a full
 * disk or past a file size limit (`ulimit -f`), must never leave a truncated file that
 * looks written. The real `ulimit -f` is exercised through the CLI in
 * test/cli-checkpoint-faults.test.ts; here the file system is injected.
 */
const tempDir = scratchFolders('sg-durable-');
const bytes = (n: number, seed = 1) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

/**
 * Node's file system, with files that behave as under `ulimit -f LIMIT`: a write that
 * crosses the limit writes up to it and returns short without an error; a write at the
 * limit fails with EFBIG (the kernel's SIGXFSZ, which Node ignores). `chunk` caps every
 * write (short writes that do make progress). `stall` makes writes at the limit return 0.
 */
function limitedFs(o: { limit?: number; chunk?: number; stall?: boolean; lie?: boolean }): DurableFs & CheckpointFs & { writes: number } {
  const real = fs as unknown as CheckpointFs;
  const state = { writes: 0 };
  return Object.assign(state, {
    ...real,
    open: async (path: string, flags: string, mode?: number): Promise<WritableFile> => {
      const handle = await fs.open(path, flags, mode);
      let position = 0;
      return {
        write: async (data: Uint8Array, offset: number, length: number) => {
          state.writes++;
          let n = Math.min(length, o.chunk ?? Infinity, (o.limit ?? Infinity) - position);
          if (n <= 0) {
            if (o.stall) return { bytesWritten: 0 };
            throw Object.assign(new Error('EFBIG: file too large, write'), { code: 'EFBIG' });
          }
          // a lying file system: says it wrote everything, keeps half
          const claimed = n;
          if (o.lie) n = Math.ceil(n / 2);
          const { bytesWritten } = await handle.write(data, offset, n);
          position += bytesWritten;
          return { bytesWritten: o.lie ? claimed : bytesWritten };
        },
        sync: () => handle.sync(),
        close: () => handle.close(),
      };
    },
  });
}

describe('writeFileDurably', () => {
  it('continues after short writes until every byte is written', async () => {
    const dir = tempDir();
    const data = bytes(10_000);
    const chunked = limitedFs({ chunk: 999 });
    await writeFileDurably(join(dir, 'f.bin'), data, { fs: chunked });
    expect(Buffer.compare(readFileSync(join(dir, 'f.bin')), data)).toBe(0);
    expect(chunked.writes).toBe(11);
    expect(readdirSync(dir)).toEqual(['f.bin']);
  });

  it('a write cut short by a size limit fails, leaves the old file as it was and no temporary file', async () => {
    const dir = tempDir();
    const path = join(dir, 'model.json');
    writeFileSync(path, 'the old model');
    const error = await writeFileDurably(path, bytes(5000), { fs: limitedFs({ limit: 4096 }) }).catch((e: unknown) => e);
    expect((error as NodeJS.ErrnoException).code).toBe('EFBIG');
    expect(readFileSync(path, 'utf8')).toBe('the old model');
    expect(readdirSync(dir)).toEqual(['model.json']);
  });

  it('a write that makes no progress is an error, not an endless loop', async () => {
    const dir = tempDir();
    const path = join(dir, 'f.bin');
    const error = await writeFileDurably(path, bytes(5000), { fs: limitedFs({ limit: 4096, stall: true }) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IncompleteWriteError);
    expect((error as Error).message).toMatch(/short write: 4096 of 5000 bytes written, then 0/);
    expect(existsSync(path)).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('a file that does not read back as written (a file system that loses bytes) is not renamed into place', async () => {
    const dir = tempDir();
    const path = join(dir, 'f.bin');
    writeFileSync(path, 'old');
    const error = await writeFileDurably(path, bytes(5000), { fs: limitedFs({ lie: true }) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IncompleteWriteError);
    expect((error as Error).message).toMatch(/reads back as 2500 bytes, 5000 were written/);
    expect(readFileSync(path, 'utf8')).toBe('old');
    expect(readdirSync(dir)).toEqual(['f.bin']);
  });

  it('a pipe or device (export --out /dev/null, /dev/stdout, a FIFO) is written through, never replaced by a renamed file', async () => {
    // a FIFO stands for /dev/null here: the old code renamed its temporary file over the target,
    // which as root turned /dev/null into a regular file
    const dir = tempDir();
    const fifo = join(dir, 'out.fifo');
    execFileSync('mkfifo', [fifo]);
    // a reader opened without blocking, so the write's open finds one and nothing waits
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      await writeFileDurably(fifo, bytes(3000));
      expect(lstatSync(fifo).isFIFO()).toBe(true);
      const got = Buffer.alloc(4096);
      expect(readSync(reader, got)).toBe(3000);
      expect(got.subarray(0, 3000)).toEqual(Buffer.from(bytes(3000)));
      expect(readdirSync(dir)).toEqual(['out.fifo']);
    } finally {
      closeSync(reader);
    }
  });
});

describe('checkpoint store under a file size limit', () => {
  it('a checkpoint cut short is a failed write: counted, never renamed into place, older ones kept (not pruned); N in a row throw', async () => {
    const dir = tempDir();
    let limit = Infinity;
    const real = limitedFs({});
    const sized: CheckpointFs = { ...real, open: (path, flags, mode) => limitedFs({ limit }).open(path, flags, mode) };
    const store = new CheckpointStore(dir, { fs: sized, keep: 2, maxConsecutiveFailures: 3 });
    await store.init();
    const trainer = tinyTrainer({ optimizer: { type: 'adam', learningRate: 0.01 } });
    for (const step of [1, 2]) expect(await store.save(encodeCheckpoint({ trainer, sourceOffset: step }), step)).not.toBeNull();
    const size = encodeCheckpoint({ trainer, sourceOffset: 3 }).length;
    limit = size - 100; // the disk fills: each later checkpoint would be 100 bytes short
    expect(await store.save(encodeCheckpoint({ trainer, sourceOffset: 3 }), 3)).toBeNull();
    expect(await store.save(encodeCheckpoint({ trainer, sourceOffset: 4 }), 4)).toBeNull();
    expect(store.failures).toBe(2);
    expect(store.lastError?.message).toMatch(/EFBIG/);
    // the two good ones are still there, whole, and nothing else
    expect(readdirSync(dir).sort()).toEqual(['checkpoint-000000000001.sgck', 'checkpoint-000000000002.sgck', 'checkpoint.lock']);
    for (const f of readdirSync(dir).filter((n) => n.endsWith('.sgck'))) expect(decodeCheckpoint(readFileSync(join(dir, f))).header.sourceOffset).toBeGreaterThan(0);
    expect((await store.loadLatest())?.checkpoint.header.sourceOffset).toBe(2);
    await expect(store.save(encodeCheckpoint({ trainer, sourceOffset: 5 }), 5)).rejects.toMatchObject({ code: 'SG_ERR_CHECKPOINT', message: expect.stringMatching(/failed 3 times in a row \(last: EFBIG/) });
    expect(readdirSync(dir).sort()).toEqual(['checkpoint-000000000001.sgck', 'checkpoint-000000000002.sgck', 'checkpoint.lock']);
  });

  it("the dashboard's checkpoint command is not acked with a path when the write was cut short", async () => {
    const dir = tempDir();
    const trainer = tinyTrainer();
    const limit = encodeCheckpoint({ trainer, sourceOffset: 0 }).length - 100;
    const store = new CheckpointStore(dir, { fs: { ...limitedFs({}), open: (path, flags, mode) => limitedFs({ limit }).open(path, flags, mode) } });
    await store.init();
    const run = new TrainingRun({
      id: 'r',
      trainer,
      source: regressionSamples(20),
      paused: true,
      checkpoint: async (r) => (await store.save(encodeCheckpoint({ trainer: r.trainer, sourceOffset: r.sourceOffset }), r.trainer.counters.steps)) ?? { failed: store.lastError!.message },
    });
    const events: RunEvent[] = [];
    run.events.subscribe((e) => events.push(e));
    const ack = await new CommandLog(new Map([['r', run]])).handle({ type: 'checkpoint', id: 'c1', run: 'r' });
    expect(ack).toMatchObject({ type: 'ack', command: 'checkpoint', result: { path: null } });
    expect(events.map((e) => e.type)).toEqual(['checkpoint-failed']);
    expect(events[0].detail?.message).toMatch(/EFBIG/);
    expect(readdirSync(dir)).toEqual(['checkpoint.lock']);
    run.dispose();
  });
});

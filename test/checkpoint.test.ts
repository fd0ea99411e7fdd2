import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { from, lastValueFrom } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { CheckpointStore, type CheckpointFs } from '../pipeline/checkpoint-store.ts';
import { decodeCheckpoint, encodeCheckpoint, modelFromCheckpoint, restoreCheckpoint } from '../pipeline/checkpoint.ts';
import { StreamgradError } from '../pipeline/errors.ts';
import { train } from '../pipeline/train.ts';
import type { Trainer } from '../pipeline/trainer.ts';
import { regressionSamples, tinyTrainer, weightsHash, hashOf } from './helpers/streams.ts';

const adam = { type: 'adam', learningRate: 0.01 } as const;
const trainOn = (trainer: Trainer, samples: unknown[], batch = 4) => lastValueFrom(from(samples).pipe(train(trainer, { batch })));
const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e instanceof StreamgradError ? `${e.code} ${e.field}` : `not typed: ${String(e)}`;
  }
  return 'no error';
};
const tempDir = () => mkdtempSync(join(tmpdir(), 'sg-ckpt-'));

describe('checkpoint file', () => {
  it('round-trips every bit of the state, −0 and subnormals included', async () => {
    const trainer = tinyTrainer({ optimizer: adam });
    await trainOn(trainer, regressionSamples(40));
    trainer.model.params[0] = -0;
    trainer.model.params[1] = 5e-324;
    trainer.optimizer.m[2] = -0;
    const back = decodeCheckpoint(encodeCheckpoint({ trainer, sourceOffset: 40, sections: { normaliser: { mean: [1, 2] } } }));
    expect(hashOf(back.arrays.get('params')!)).toBe(weightsHash(trainer.model));
    expect(hashOf(back.arrays.get('optimizer.m')!)).toBe(hashOf(trainer.optimizer.m));
    expect(hashOf(back.arrays.get('optimizer.v')!)).toBe(hashOf(trainer.optimizer.v));
    expect(Object.is(back.arrays.get('params')![0], -0)).toBe(true);
    expect(back.header.sourceOffset).toBe(40);
    expect(back.header.optimizer.t).toBe(10);
    expect(back.header.counters).toEqual(trainer.counters);
    expect(back.header.sections).toEqual({ normaliser: { mean: [1, 2] } });
    expect(hashOf(modelFromCheckpoint(back).params)).toBe(weightsHash(trainer.model));
  });

  it('resuming from a checkpoint ends bitwise where an uninterrupted run ends', async () => {
    const samples = regressionSamples(200);
    const whole = tinyTrainer({ optimizer: adam });
    await trainOn(whole, samples);

    const first = tinyTrainer({ optimizer: adam });
    await trainOn(first, samples.slice(0, 88));
    const bytes = encodeCheckpoint({ trainer: first, sourceOffset: 88 });
    const resumed = tinyTrainer({ optimizer: adam, seed: 99 }); // other initial weights: all must come from the file
    const checkpoint = decodeCheckpoint(bytes);
    restoreCheckpoint(resumed, checkpoint);
    await trainOn(resumed, samples.slice(checkpoint.header.sourceOffset));
    expect(weightsHash(resumed.model)).toBe(weightsHash(whole.model));
    expect(resumed.counters).toEqual(whole.counters);
  });

  it('refuses a file cut short at any byte, in the header, the body or the checksum', async () => {
    const trainer = tinyTrainer({ optimizer: adam });
    await trainOn(trainer, regressionSamples(8));
    const bytes = encodeCheckpoint({ trainer, sourceOffset: 8 });
    const outcomes = new Set<string>();
    for (let cut = 0; cut < bytes.length; cut++) outcomes.add(code(() => decodeCheckpoint(bytes.subarray(0, cut))).split(' ')[0]);
    expect([...outcomes]).toEqual(['SG_ERR_CHECKPOINT']);
  });

  it('refuses a file with any single byte changed', async () => {
    const trainer = tinyTrainer();
    const bytes = encodeCheckpoint({ trainer, sourceOffset: 0 });
    const fields = new Set<string>();
    for (let i = 0; i < bytes.length; i += 7) {
      const bad = bytes.slice();
      bad[i] ^= 0x40;
      fields.add(code(() => decodeCheckpoint(bad)));
    }
    expect([...fields].every((f) => f.startsWith('SG_ERR_CHECKPOINT'))).toBe(true);
    expect(fields.has('SG_ERR_CHECKPOINT checksum')).toBe(true);
  });

  it('refuses to restore into another model, naming the field and both shapes, leaving the trainer untouched', () => {
    const source = tinyTrainer();
    const other = tinyTrainer({ layers: [[5, 'tanh'], [1, 'linear']] });
    const before = weightsHash(other.model);
    let error: StreamgradError | undefined;
    try {
      restoreCheckpoint(other, decodeCheckpoint(encodeCheckpoint({ trainer: source, sourceOffset: 0 })));
    } catch (e) {
      error = e as StreamgradError;
    }
    expect(error?.code).toBe('SG_ERR_CHECKPOINT');
    expect(error?.field).toBe('topology');
    expect(error?.message).toContain('3→4:tanh→1:linear');
    expect(error?.message).toContain('3→5:tanh→1:linear');
    expect(weightsHash(other.model)).toBe(before);
  });

  it('refuses to checkpoint non-finite parameters (RELIABILITY 19)', () => {
    const trainer = tinyTrainer();
    trainer.model.params[3] = NaN;
    expect(code(() => encodeCheckpoint({ trainer, sourceOffset: 0 }))).toBe('SG_ERR_CHECKPOINT params');
  });
});

describe('checkpoint store', () => {
  it('keeps the newest K, named by step, and removes stale temporary files at start', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'checkpoint-123-1.tmp'), 'half a file');
    const store = new CheckpointStore(dir, { keep: 2 });
    await store.init();
    const trainer = tinyTrainer();
    for (const step of [5, 10, 15]) await store.save(encodeCheckpoint({ trainer, sourceOffset: step }), step);
    expect(readdirSync(dir).sort()).toEqual(['checkpoint-000000000010.sgck', 'checkpoint-000000000015.sgck']);
    const latest = await store.loadLatest();
    expect(latest?.checkpoint.header.sourceOffset).toBe(15);
    expect(latest?.refused).toEqual([]);
    // read back through fs (a Node Buffer from a shared pool): the arrays must be the trainer's
    expect(hashOf(latest!.checkpoint.arrays.get('params')!)).toBe(weightsHash(trainer.model));
    expect(hashOf(decodeCheckpoint(readFileSync(latest!.path)).arrays.get('params')!)).toBe(weightsHash(trainer.model));
  });

  it('falls back to the previous checkpoint when the newest is truncated, and says so', async () => {
    const dir = tempDir();
    const store = new CheckpointStore(dir);
    await store.init();
    const trainer = tinyTrainer();
    await store.save(encodeCheckpoint({ trainer, sourceOffset: 1 }), 1);
    const newest = (await store.save(encodeCheckpoint({ trainer, sourceOffset: 2 }), 2))!;
    const bytes = readFileSync(newest);
    writeFileSync(newest, bytes.subarray(0, bytes.length >> 1));
    const latest = await store.loadLatest();
    expect(latest?.checkpoint.header.sourceOffset).toBe(1);
    expect(latest?.refused.map((r) => [r.path, r.error.code])).toEqual([[newest, 'SG_ERR_CHECKPOINT']]);
  });

  it('with nothing intact left, refuses to start instead of silently starting fresh', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'checkpoint-000000000001.sgck'), 'garbage');
    await expect(new CheckpointStore(dir).loadLatest()).rejects.toMatchObject({ code: 'SG_ERR_CHECKPOINT' });
    expect(await new CheckpointStore(tempDir()).loadLatest()).toBeNull();
  });

  it('a full disk is counted, leaves no temporary file and keeps the previous checkpoint; repeated failures throw', async () => {
    const dir = tempDir();
    let full = false;
    const failing: CheckpointFs = {
      ...(fs as unknown as CheckpointFs),
      open: async (path, flags) => {
        const handle = await fs.open(path, flags);
        return {
          write: async (data: Uint8Array) => {
            if (full && flags === 'w') throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
            return handle.write(data);
          },
          sync: () => handle.sync(),
          close: () => handle.close(),
        };
      },
    };
    const store = new CheckpointStore(dir, { fs: failing, maxConsecutiveFailures: 3 });
    await store.init();
    const trainer = tinyTrainer();
    await store.save(encodeCheckpoint({ trainer, sourceOffset: 1 }), 1);
    full = true;
    expect(await store.save(encodeCheckpoint({ trainer, sourceOffset: 2 }), 2)).toBeNull();
    expect(await store.save(encodeCheckpoint({ trainer, sourceOffset: 3 }), 3)).toBeNull();
    expect(store.failures).toBe(2);
    expect(readdirSync(dir)).toEqual(['checkpoint-000000000001.sgck']);
    expect((await store.loadLatest())?.checkpoint.header.sourceOffset).toBe(1);
    await expect(store.save(encodeCheckpoint({ trainer, sourceOffset: 4 }), 4)).rejects.toMatchObject({ code: 'SG_ERR_CHECKPOINT' });
    full = false;
    expect(await store.save(encodeCheckpoint({ trainer, sourceOffset: 5 }), 5)).toMatch(/checkpoint-000000000005\.sgck$/);
    expect(store.consecutiveFailures).toBe(0);
  });

  it('a checkpoint written while the old ones cannot be listed or removed is still a written checkpoint', async () => {
    const dir = tempDir();
    let listing = true;
    const unlistable: CheckpointFs = {
      ...(fs as unknown as CheckpointFs),
      readdir: async (path) => {
        if (!listing) throw Object.assign(new Error(`ENOTDIR: not a directory, scandir '${path}'`), { code: 'ENOTDIR' });
        return fs.readdir(path);
      },
    };
    const store = new CheckpointStore(dir, { fs: unlistable, keep: 1 });
    await store.init();
    listing = false;
    expect(await store.save(encodeCheckpoint({ trainer: tinyTrainer(), sourceOffset: 1 }), 1)).toMatch(/checkpoint-000000000001\.sgck$/);
    expect(store.failures).toBe(0);
  });
});

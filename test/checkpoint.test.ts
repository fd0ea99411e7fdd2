import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as fs from 'node:fs/promises';
import { join } from 'node:path';
import { from, lastValueFrom } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { type CheckpointFs, CheckpointStore } from '../pipeline/checkpoint-store.ts';
import { decodeCheckpoint, encodeCheckpoint, modelFromCheckpoint, restoreCheckpoint } from '../pipeline/checkpoint.ts';
import { StreamgradError } from '../core/errors.ts';
import { train } from '../pipeline/train.ts';
import type { Trainer } from '../core/trainer.ts';
import { hashOf, regressionSamples, tinyTrainer, weightsHash } from './helpers/streams.ts';
import { scratchFolders } from './helpers/scratch.ts';

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
const tempDir = scratchFolders('sg-ckpt-');

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
    expect(readdirSync(dir).sort()).toEqual(['checkpoint-000000000010.sgck', 'checkpoint-000000000015.sgck', 'checkpoint.lock']);
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

  it('a folder, a symlink loop or a device named like the newest checkpoint is refused (SG_ERR_CHECKPOINT naming it) and the previous one used', async () => {
    // before: EISDIR and ELOOP escaped as internal errors (export --checkpoint, --resume: exit 1),
    // and a link to /dev/zero was read forever
    const dir = tempDir();
    const store = new CheckpointStore(dir);
    await store.init();
    await store.save(encodeCheckpoint({ trainer: tinyTrainer(), sourceOffset: 1 }), 1);
    const name = (step: number) => join(dir, `checkpoint-00000000000${step}.sgck`);
    await fs.symlink('/dev/zero', name(2));
    await fs.symlink(join(dir, 'loop-b'), join(dir, 'loop-a'));
    await fs.symlink(join(dir, 'loop-a'), join(dir, 'loop-b'));
    await fs.symlink(join(dir, 'loop-a'), name(3));
    await fs.mkdir(name(4));
    const latest = await store.loadLatest();
    expect(latest?.checkpoint.header.sourceOffset).toBe(1);
    expect(latest?.refused.map((r) => [r.path, r.error.code])).toEqual([[name(4), 'SG_ERR_CHECKPOINT'], [name(3), 'SG_ERR_CHECKPOINT'], [name(2), 'SG_ERR_CHECKPOINT']]);
    expect(latest?.refused.map((r) => r.error.message)).toEqual([`${name(4)}: not a regular file`, expect.stringMatching(/cannot read: ELOOP/), `${name(2)}: not a regular file`]);
  }, 10_000);

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
          write: async (data: Uint8Array, offset: number, length: number) => {
            if (full && flags !== 'r') throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
            return handle.write(data, offset, length);
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
    expect(readdirSync(dir).sort()).toEqual(['checkpoint-000000000001.sgck', 'checkpoint.lock']);
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

/**
 * A checkpoint of `trainer` with its header or arrays changed and a fresh, valid checksum:
 * what a bug or a hand edit would write. The checksum cannot catch it; the contents must.
 */
function forged(trainer: Trainer, edit: (header: Record<string, any>, arrays: Map<string, Float64Array>) => void): Uint8Array { // eslint-disable-line @typescript-eslint/no-explicit-any
  const { header, arrays } = decodeCheckpoint(encodeCheckpoint({ trainer, sourceOffset: 40 }));
  const h = structuredClone(header) as unknown as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  const a = new Map([...arrays].map(([k, v]) => [k, v.slice()]));
  edit(h, a);
  const json = new TextEncoder().encode(JSON.stringify(h));
  const bodyStart = Math.ceil((12 + json.length) / 8) * 8;
  const bodyBytes = (h.arrays as { name: string; length: number }[]).reduce((n, x) => n + x.length * 8, 0);
  const out = new Uint8Array(bodyStart + bodyBytes + 32);
  out.set(new TextEncoder().encode('SGCKPT01'));
  new DataView(out.buffer).setUint32(8, json.length, true);
  out.set(json, 12);
  let at = bodyStart;
  for (const { name } of h.arrays as { name: string }[]) {
    new Float64Array(out.buffer, at, a.get(name)!.length).set(a.get(name)!);
    at += a.get(name)!.length * 8;
  }
  out.set(createHash('sha256').update(out.subarray(0, at)).digest(), at);
  return out;
}

describe('checkpoint contents are validated, not only the checksum (issue 17 #11)', () => {
  const cases: [string, string, (h: Record<string, any>, a: Map<string, Float64Array>) => void][] = [ // eslint-disable-line @typescript-eslint/no-explicit-any
    ['a NaN weight', 'params', (_h, a) => { a.get('params')![2] = NaN; }],
    ['an Infinity weight', 'params', (_h, a) => { a.get('params')![0] = -Infinity; }],
    ['a NaN first moment', 'optimizer.m', (_h, a) => { a.get('optimizer.m')![1] = NaN; }],
    ['an Infinity second moment', 'optimizer.v', (_h, a) => { a.get('optimizer.v')![1] = Infinity; }],
    ['a negative second moment', 'optimizer.v', (_h, a) => { a.get('optimizer.v')![3] = -1e-9; }],
    ['a negative learning rate', 'optimizer.learningRate', (h) => { h.optimizer.learningRate = -0.01; }],
    ['a zero learning rate', 'optimizer.learningRate', (h) => { h.optimizer.learningRate = 0; }],
    ['a non-finite learning rate (null in JSON)', 'optimizer.learningRate', (h) => { h.optimizer.learningRate = null; }],
    ['a configured learning rate that is negative', 'optimizer.config.learningRate', (h) => { h.optimizer.config.learningRate = -1; }],
    ['a beta2 of 1.5', 'optimizer.config.beta2', (h) => { h.optimizer.config.beta2 = 1.5; }],
    ['an unknown optimizer', 'optimizer.config.optimizer', (h) => { h.optimizer.config.type = 'lbfgs'; }],
    ['an unknown loss', 'loss', (h) => { h.loss = 'hinge'; }],
    ['a negative step count', 'counters.steps', (h) => { h.counters.steps = -1; }],
    ['a fractional sample count', 'counters.samples', (h) => { h.counters.samples = 40.5; }],
    ['a sample count as text', 'counters.samples', (h) => { h.counters.samples = '40'; }],
    ['a missing counter', 'counters.clipped', (h) => { delete h.counters.clipped; }],
    ['more steps than samples', 'counters.steps', (h) => { h.counters.steps = h.counters.samples + 1; }],
    ['more skipped steps than steps', 'counters.skipped', (h) => { h.counters.skipped = h.counters.steps + 1; }],
    ['more clipped steps than steps', 'counters.clipped', (h) => { h.counters.clipped = h.counters.steps + 1; }],
    ['more consecutive skips than skips', 'counters.consecutiveSkips', (h) => { h.counters.consecutiveSkips = 1; }],
    ['more optimizer updates than steps', 'optimizer.t', (h) => { h.optimizer.t = h.counters.steps + 1; }],
    ['a negative optimizer step', 'optimizer.t', (h) => { h.optimizer.t = -1; }],
    ['a topology of zero units', 'topology.layers[0].units', (h) => { h.topology.layers[0].units = 0; }],
    ['parameters that do not fit the topology', 'params', (h, a) => { h.arrays[0].length = 3; a.set('params', a.get('params')!.subarray(0, 3)); }],
    ['no creation time', 'created', (h) => { delete h.created; }],
    ['sections that are not an object', 'sections', (h) => { h.sections = [1]; }],
  ];
  for (const [name, field, edit] of cases) {
    it(`refuses ${name}, naming ${field}`, async () => {
      const trainer = tinyTrainer({ optimizer: adam });
      await trainOn(trainer, regressionSamples(40), 4);
      expect(code(() => decodeCheckpoint(forged(trainer, () => undefined)))).toBe('no error'); // the forgery itself is sound
      expect(code(() => decodeCheckpoint(forged(trainer, edit)))).toBe(`SG_ERR_CHECKPOINT ${field}`);
    });
  }

  it('an Adagrad accumulator below zero is refused; momentum\'s velocity may be negative', async () => {
    const adagrad = tinyTrainer({ optimizer: { type: 'adagrad', learningRate: 0.1 } });
    await trainOn(adagrad, regressionSamples(8));
    expect(code(() => decodeCheckpoint(forged(adagrad, (_h, a) => { a.get('optimizer.m')![0] = -1; })))).toBe('SG_ERR_CHECKPOINT optimizer.m');
    const momentum = tinyTrainer({ optimizer: { type: 'momentum', learningRate: 0.1 } });
    await trainOn(momentum, regressionSamples(8));
    expect(code(() => decodeCheckpoint(forged(momentum, (_h, a) => { a.get('optimizer.m')![0] = -1; })))).toBe('no error');
  });

  it('the store falls back to the checkpoint before one with NaN weights, as for a corrupt file', async () => {
    const dir = tempDir();
    const store = new CheckpointStore(dir);
    await store.init();
    const trainer = tinyTrainer({ optimizer: adam });
    await trainOn(trainer, regressionSamples(40));
    await store.save(encodeCheckpoint({ trainer, sourceOffset: 40 }), 10);
    const newest = (await store.save(encodeCheckpoint({ trainer, sourceOffset: 40 }), 11))!;
    writeFileSync(newest, forged(trainer, (h, a) => { a.get('params')![0] = NaN; h.counters.steps = 11; }));
    const latest = await store.loadLatest();
    expect(latest?.path).toMatch(/checkpoint-000000000010\.sgck$/);
    expect(latest?.refused.map((r) => [r.path, r.error.field])).toEqual([[newest, 'params']]);
    expect(latest?.refused[0].error.message).toMatch(/params\[0\] is NaN/);
  });
});

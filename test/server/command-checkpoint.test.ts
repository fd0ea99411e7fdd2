import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createTrainer } from '../../core/trainer.ts';
import { decodeCheckpoint } from '../../pipeline/checkpoint.ts';
import { openCheckpoints } from '../../runtime/checkpointing.ts';
import { APPLIED_SECTION, AppliedOnce, commandKey } from '../../server/applied-once.ts';
import { serveInThread } from '../../server/threaded-server.ts';
import { seededModel } from '../helpers/streams.ts';
import { connect, onCleanup, testRun, TOKEN } from './helpers.ts';

/** A served run's own memory of the command ids applied to it, in the checkpoints `openCheckpoints` writes (the command line's). */
const work = mkdtempSync(join(tmpdir(), 'streamgrad-command-checkpoint-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('command ids in a run\'s checkpoints', () => {
  it('a checkpoint holds a command\'s id exactly when it holds its effect: each one written at the boundary a `step` command trained to (every step) holds that step\'s id and the ones before, no other', async () => {
    // before the checkpointer waited one turn of the event loop, the checkpoint of step 1
    // held the step but not s-1 (its outcome reaches the memory a few promise callbacks
    // later): resent after a resume, s-1 trained a second step
    const trainer = createTrainer({ model: seededModel(3, [[8, 'tanh'], [1, 'linear']], 1), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.01 } });
    const commands = new AppliedOnce();
    const checkpoints = await openCheckpoints({ dir: join(work, 'ck'), keep: 100, resume: false }, {
      id: 'a', trainer, window: 100, source: {},
      state: () => ({ save: () => ({ [APPLIED_SECTION]: commands.save() }), restore: () => undefined }),
      say: () => undefined,
    });
    onCleanup(() => checkpoints.store.close());
    const run = testRun({ paused: true, trainer, checkpoint: checkpoints.checkpoint, autoCheckpoint: { everySteps: 1 } });
    const server = await serveInThread({ port: 0, token: TOKEN, staticDir: '/nonexistent-streamgrad-dist' });
    onCleanup(() => server.close());
    server.addRun(run, { commands });
    const client = await connect(server, { token: TOKEN });
    const written: string[] = [];
    run.events.subscribe((event) => {
      if (event.type === 'checkpoint') written.push(event.detail!.path as string);
    });
    void run.start();
    for (let i = 1; i <= 5; i++) expect(await client.command({ type: 'step', id: `s-${i}`, run: 'a' })).toMatchObject({ type: 'ack', result: { step: i } });
    await client.until(() => written.length === 5, 'the checkpoint of step 5');
    for (const [i, path] of written.entries()) {
      const { header } = decodeCheckpoint(readFileSync(path));
      expect(header.counters.steps).toBe(i + 1);
      const keys = (header.sections[APPLIED_SECTION] as { key: string }[]).map((e) => e.key);
      expect(keys, path).toEqual(Array.from({ length: i + 1 }, (_, k) => commandKey('a', `s-${i + 1 - k}`)));
    }
  });
});

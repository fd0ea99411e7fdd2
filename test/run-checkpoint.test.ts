import { describe, expect, it } from 'vitest';
import { decodeCheckpoint } from '../pipeline/checkpoint.ts';
import { StreamgradError } from '../core/errors.ts';
import { encodeRunCheckpoint, restoreRun } from '../pipeline/run-checkpoint.ts';
import { type RunEvent, TrainingRun } from '../pipeline/run.ts';
import { hashOf, regressionSamples, tinyTrainer } from './helpers/streams.ts';

/** Samples with rejects mixed in (wrong arity, NaN), so offsets count more than trained samples. */
function mixedSamples(n: number): unknown[] {
  const good = regressionSamples(n, 3, 1, 11);
  const out: unknown[] = [];
  good.forEach((s, i) => {
    out.push(s);
    if (i % 7 === 3) out.push({ x: [1, 2], y: [0] });
    if (i % 11 === 5) out.push({ x: [1, NaN, 2], y: [0] });
  });
  return out;
}

function* endless() {
  for (let round = 0; ; round++) yield* regressionSamples(1000, 3, 1, 20 + round);
}

const adam = () => tinyTrainer({ optimizer: { type: 'adam', learningRate: 0.01 } });

/** Everything a resumed run must reproduce, bit for bit. */
function fingerprint(run: TrainingRun) {
  const { model, optimizer, counters } = run.trainer;
  return { params: hashOf(model.params), m: hashOf(optimizer.m), v: hashOf(optimizer.v), t: optimizer.t, counters: { ...counters }, metrics: run.metrics.snapshot() };
}

describe('TrainingRun checkpoints', () => {
  it('every N steps, at step boundaries: the offset counts trained and rejected records, never a partial batch', async () => {
    const seen: { steps: number; offset: number; samples: number; rejected: number }[] = [];
    const trainer = adam();
    const source = mixedSamples(100);
    const run = new TrainingRun({
      id: 'a', trainer, source, train: { batch: 3 }, autoCheckpoint: { everySteps: 4 },
      checkpoint: async (r) => {
        const c = r.trainer.counters;
        seen.push({ steps: c.steps, offset: r.sourceOffset, samples: c.samples, rejected: c.rejected });
        return `ckpt-${c.steps}`;
      },
    });
    await run.start();
    expect(seen.map((s) => s.steps)).toEqual([4, 8, 12, 16, 20, 24, 28, 32, 34]); // 100 samples: 33 full batches and 1 partial; the last on completion
    for (const s of seen) expect(s.offset).toBe(s.samples + s.rejected);
    expect(seen.at(-1)!.offset).toBe(source.length);
  });

  it('resuming from any checkpoint over the rest of the source ends bit for bit like the uninterrupted run', async () => {
    const source = mixedSamples(120);
    const window = 10;
    const whole = adam();
    const uninterrupted = new TrainingRun({ id: 'a', trainer: whole, source, train: { batch: 3, window } });
    await uninterrupted.start();
    const expected = fingerprint(uninterrupted);
    expect(expected.metrics).toEqual(uninterrupted.latest?.metrics);

    const checkpoints: Uint8Array[] = [];
    const first = new TrainingRun({
      id: 'a', trainer: adam(), source, train: { batch: 3, window }, autoCheckpoint: { everySteps: 1 },
      checkpoint: async (r) => {
        checkpoints.push(encodeRunCheckpoint(r));
        return 'memory';
      },
    });
    await first.start();
    expect(fingerprint(first)).toEqual(expected);
    expect(checkpoints.length).toBe(40); // one per step; none more on completion (nothing changed)

    for (const k of [0, 1, 7, 20, 33, 39]) {
      const trainer = adam(); // fresh weights: everything must come from the checkpoint
      const resume = restoreRun(decodeCheckpoint(checkpoints[k]), trainer, window);
      const rest = source.slice(resume.sourceOffset);
      const run = new TrainingRun({ id: 'a', trainer, source: rest, sourceOffset: resume.sourceOffset, train: { batch: 3, window: resume.window } });
      await run.start();
      expect(fingerprint(run), `resumed from checkpoint ${k}`).toEqual(expected);
      expect(run.sourceOffset).toBe(source.length);
    }
  });

  it('a resume refuses a different metrics window or model, and leaves the trainer untouched', () => {
    const trainer = adam();
    const run = new TrainingRun({ id: 'a', trainer, source: [], train: { window: 10 } });
    const checkpoint = decodeCheckpoint(encodeRunCheckpoint(run));
    const before = hashOf(trainer.model.params);
    expect(() => restoreRun(checkpoint, adam(), 20)).toThrow(/metrics window 20 does not match the checkpoint's 10/);
    const wider = tinyTrainer({ layers: [[5, 'tanh'], [1, 'linear']], optimizer: { type: 'adam', learningRate: 0.01 } });
    expect(() => restoreRun(checkpoint, wider, 10)).toThrow(/topology 3→4:tanh→1:linear does not match the model's 3→5:tanh→1:linear/);
    expect(hashOf(trainer.model.params)).toBe(before);
  });

  it('stop in the middle of a batch finishes that batch, then writes the last checkpoint', async () => {
    const offsets: number[] = [];
    const trainer = adam();
    const run = new TrainingRun({
      id: 'a', trainer, source: endless(), train: { batch: 4 }, autoCheckpoint: { everyMs: 1e9 },
      checkpoint: async (r) => {
        offsets.push(r.sourceOffset);
        return 'x';
      },
    });
    const events: RunEvent[] = [];
    run.events.subscribe((e) => events.push(e));
    const started = run.start();
    await new Promise((r) => setTimeout(r, 30));
    run.stop();
    await started;
    expect(run.state).toBe('stopped');
    expect(trainer.counters.samples % 4).toBe(0);
    expect(offsets).toEqual([trainer.counters.samples]);
    expect(events.map((e) => e.type).slice(-2)).toEqual(['checkpoint', 'stopped']);
  });

  it('a checkpoint asked for while running is written at the next step boundary', async () => {
    const trainer = adam();
    const states: { offset: number; samples: number }[] = [];
    const run = new TrainingRun({
      id: 'a', trainer, source: endless(), train: { batch: 5 },
      checkpoint: async (r) => {
        states.push({ offset: r.sourceOffset, samples: r.trainer.counters.samples });
        return 'x';
      },
    });
    const started = run.start();
    await new Promise((r) => setTimeout(r, 10));
    expect(await run.checkpoint()).toBe('x');
    run.stop();
    await started;
    expect(states).toHaveLength(1); // no automatic ones
    expect(states[0].offset).toBe(states[0].samples);
    expect(states[0].samples % 5).toBe(0);
  });

  it('a failed write (a full disk) is announced and training goes on', async () => {
    let calls = 0;
    const run = new TrainingRun({
      id: 'a', trainer: adam(), source: regressionSamples(50), autoCheckpoint: { everySteps: 10 },
      checkpoint: async () => (++calls <= 2 ? { failed: 'ENOSPC: no space left on device' } : `ok-${calls}`), // the store counted an ENOSPC twice
    });
    const events: RunEvent[] = [];
    run.events.subscribe((e) => events.push(e));
    await run.start();
    expect(run.state).toBe('completed');
    expect(run.trainer.counters.steps).toBe(50);
    expect(events.filter((e) => e.type.startsWith('checkpoint')).map((e) => `${e.type} ${e.step}`)).toEqual([
      'checkpoint-failed 10', 'checkpoint-failed 20', 'checkpoint 30', 'checkpoint 40', 'checkpoint 50',
    ]);
    expect(events.find((e) => e.type === 'checkpoint-failed')?.detail).toEqual({ message: 'ENOSPC: no space left on device' });
  });

  it('writes that fail for good (the checkpointer throws: N failures in a row) fail the run loudly', async () => {
    let calls = 0;
    const trainer = adam();
    const run = new TrainingRun({
      id: 'a', trainer, source: endless(), autoCheckpoint: { everySteps: 10 },
      checkpoint: async () => {
        if (++calls === 1) return 'ok';
        throw new StreamgradError('SG_ERR_CHECKPOINT', 'checkpoint writes failed 3 times in a row (last: ENOSPC)', 'checkpoint');
      },
    });
    const events: RunEvent[] = [];
    run.events.subscribe((e) => events.push(e));
    const error = await run.start().catch((e: unknown) => e);
    expect((error as StreamgradError).code).toBe('SG_ERR_CHECKPOINT');
    expect(run.state).toBe('failed');
    expect(trainer.counters.steps).toBe(20); // no step after the failing write
    expect(events.map((e) => e.type).slice(-3)).toEqual(['checkpoint', 'checkpoint-failed', 'failed']);
  });

  it('a source that fails at a clean cut is checkpointed there; the checkpoint resumes exactly', async () => {
    const saved: Uint8Array[] = [];
    function* failing() {
      yield* regressionSamples(30, 3, 1, 4);
      throw new Error('disk gone');
    }
    const run = new TrainingRun({
      id: 'a', trainer: adam(), source: failing(), train: { batch: 3 }, autoCheckpoint: { everySteps: 4 },
      checkpoint: async (r) => {
        saved.push(encodeRunCheckpoint(r));
        return 'x';
      },
    });
    await expect(run.start()).rejects.toThrow('disk gone');
    const last = decodeCheckpoint(saved.at(-1)!);
    expect(last.header.counters.steps).toBe(10);
    expect(last.header.sourceOffset).toBe(30);
  });

  it('automatic checkpoints need a checkpointer and sane intervals', () => {
    const make = (autoCheckpoint: object, checkpoint?: () => Promise<string>) => () => new TrainingRun({ id: 'a', trainer: adam(), source: [], autoCheckpoint, checkpoint });
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (error) {
        return `${(error as StreamgradError).code} ${(error as StreamgradError).field}`;
      }
      return 'none';
    };
    const save = async () => 'x';
    expect(code(make({ everySteps: 5 }))).toBe('SG_ERR_CONFIG autoCheckpoint');
    expect(code(make({ everySteps: 0 }, save))).toBe('SG_ERR_CONFIG autoCheckpoint.everySteps');
    expect(code(make({ everyMs: -1 }, save))).toBe('SG_ERR_CONFIG autoCheckpoint.everyMs');
    expect(code(make({ everySteps: 5, everyMs: 1000 }, save))).toBe('none');
  });
});

describe('TrainingRun on a quiet live source', () => {
  /** 10 samples, then nothing until the test says so (a sensor stream that goes quiet). */
  function quietSource() {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    async function* records() {
      yield* regressionSamples(10, 3, 1, 5);
      await gate;
      yield* regressionSamples(4, 3, 1, 6);
    }
    return { source: records(), release };
  }

  it('checkpoints its progress while waiting at a clean cut (everyMs and on request), and a stop while waiting stops at once', async () => {
    const { source } = quietSource();
    const saved: { steps: number; offset: number }[] = [];
    const run = new TrainingRun({
      id: 'quiet', trainer: adam(), source, train: { batch: 2 }, autoCheckpoint: { everyMs: 30 },
      checkpoint: async (r) => {
        saved.push({ steps: r.trainer.counters.steps, offset: r.sourceOffset });
        return `ckpt-${saved.length}`;
      },
    });
    const done = run.start();
    // the source is quiet: no record comes to make a step boundary, the wait itself is one
    for (let i = 0; i < 500 && saved.at(-1)?.steps !== 5; i++) await new Promise((r) => setTimeout(r, 10));
    expect(saved.at(-1)).toEqual({ steps: 5, offset: 10 });
    const written = saved.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(saved).toHaveLength(written); // nothing new to save: no checkpoint per period
    await expect(run.checkpoint()).resolves.toBe(`ckpt-${written + 1}`); // a request is answered while waiting
    run.stop();
    await done;
    expect(run.state).toBe('stopped');
    expect(run.sourceOffset).toBe(10);
  });

  it('a record arriving after the quiet spell is trained as usual', async () => {
    const { source, release } = quietSource();
    const run = new TrainingRun({ id: 'quiet', trainer: adam(), source, train: { batch: 2 }, autoCheckpoint: { everyMs: 20 }, checkpoint: async () => 'ckpt' });
    const done = run.start();
    await new Promise((r) => setTimeout(r, 80));
    release();
    await done;
    expect(run.state).toBe('completed');
    expect(run.trainer.counters.samples).toBe(14);
  });
});

import { from } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { decodeCheckpoint, encodeCheckpoint, restoreCheckpoint } from '../pipeline/checkpoint.ts';
import { createDivergenceGuard, DIVERGENCE_DEFAULTS } from '../core/divergence.ts';
import { type RunEvent, TrainingRun } from '../pipeline/run.ts';
import { type StepResult, train } from '../pipeline/train.ts';
import { createTrainer, type Trainer } from '../core/trainer.ts';
import { collectSync, expectSgError, regressionSamples, seededModel, weightsHash } from './helpers/streams.ts';

/**
 * Honest divergence (issue #11): skipped (non-finite) steps scattered among good ones stop
 * training once they exceed a rate, not only K in a row; skipped samples are counted apart
 * from trained ones; the first non-finite step is an event at once.
 */

/** 2 inputs → 1 linear output: a sample of 1e300s overflows its loss to Infinity, a skipped step. */
const linear = (extra: Parameters<typeof createTrainer>[0] extends infer C ? Partial<C> : never = {}): Trainer =>
  createTrainer({ model: seededModel(2, [[1, 'linear']], 3), loss: 'mse', optimizer: { type: 'sgd', learningRate: 0.05 }, ...extra });

const huge = { x: [1e300, 1e300], y: [0] };
/** `n` samples, every `every`-th (1-based) a huge one: scattered skips, never two in a row. */
const scattered = (n: number, every: number) => regressionSamples(n, 2, 1, 5).map((s, i) => ((i + 1) % every === 0 ? huge : s));

describe('the divergence guard: K in a row, or more than a rate of the last N steps', () => {
  it('the issue\'s case: 1 in 10 steps non-finite, never two in a row, used to pass; it now stops at the 11th skip (more than 1% of 1000)', () => {
    const trainer = linear();
    const { values, error } = collectSync(from(scattered(400, 10)).pipe(train(trainer)));
    const err = expectSgError(error, 'SG_ERR_DIVERGED', 'loss');
    expect(err.message).toContain('11 of the last 1000 steps skipped');
    expect(err.message).toContain('1%');
    expect(values.filter((r) => r.skipped !== null)).toHaveLength(10); // the 11th threw instead of emitting
    expect(trainer.counters.skipped).toBe(11);
    expect(trainer.counters.steps).toBe(110);
    expect(values.every((r) => r.counters.consecutiveSkips <= 1)).toBe(true);
  });

  it('with a looser rate (or a short window that forgets) the same stream trains to the end', () => {
    for (const extra of [{ maxSkipRate: 0.2 }, { skipWindow: 50, maxSkipRate: 0.1 }]) {
      const trainer = linear(extra);
      const { values, error } = collectSync(from(scattered(400, 10)).pipe(train(trainer)));
      expect(error, JSON.stringify(extra)).toBeUndefined();
      expect(values).toHaveLength(400);
      expect(trainer.counters.skipped).toBe(40);
    }
  });

  it('a window forgets old skips: 5 allowed per 50 steps, 1 in 10 never diverges, 1 in 8 does (7 in 50)', () => {
    expect(collectSync(from(scattered(1000, 10)).pipe(train(linear({ skipWindow: 50, maxSkipRate: 0.1 })))).error).toBeUndefined();
    const faster = collectSync(from(scattered(1000, 8)).pipe(train(linear({ skipWindow: 50, maxSkipRate: 0.1 }))));
    expect(expectSgError(faster.error, 'SG_ERR_DIVERGED', 'loss').message).toContain('6 of the last 50 steps');
  });

  it('maxSkipRate 0: the first non-finite step stops training', () => {
    const { values, error } = collectSync(from(scattered(30, 10)).pipe(train(linear({ maxSkipRate: 0 }))));
    expectSgError(error, 'SG_ERR_DIVERGED', 'loss');
    expect(values).toHaveLength(9);
  });

  it('K in a row still stops first when the skips come together', () => {
    const samples = [...regressionSamples(5, 2, 1, 5), huge, huge, huge];
    const err = expectSgError(collectSync(from(samples).pipe(train(linear({ maxConsecutiveSkips: 3 })))).error, 'SG_ERR_DIVERGED', 'loss');
    expect(err.message).toContain('3 consecutive');
  });

  it('the settings are checked when the trainer is made (SG_ERR_CONFIG naming the field), with documented defaults', () => {
    expect(DIVERGENCE_DEFAULTS).toEqual({ maxConsecutiveSkips: 10, maxSkipRate: 0.01, skipWindow: 1000 });
    expect(linear().divergence).toMatchObject({ ...DIVERGENCE_DEFAULTS, allowed: 10 });
    for (const [field, bad] of [['maxSkipRate', -0.1], ['maxSkipRate', 1], ['maxSkipRate', NaN], ['skipWindow', 0], ['skipWindow', 2.5], ['maxConsecutiveSkips', 0]] as const) {
      expect(() => linear({ [field]: bad })).toThrowError(expect.objectContaining({ code: 'SG_ERR_CONFIG', field }));
    }
    expect(createDivergenceGuard({ maxSkipRate: 0.07, skipWindow: 100 }).allowed).toBe(7);
  });
});

describe('skipped samples are counted apart from trained ones', () => {
  it('a batch of 4 with one huge sample is skipped whole: 4 skipped samples, trained = samples − skippedSamples', () => {
    const samples = regressionSamples(12, 2, 1, 5);
    samples[5] = huge;
    const trainer = linear();
    const { values } = collectSync(from(samples).pipe(train(trainer, { batch: 4 })));
    expect(values.map((r) => r.updated)).toEqual([true, false, true]);
    expect(trainer.counters).toMatchObject({ samples: 12, skipped: 1, skippedSamples: 4 });
  });
});

describe('checkpoints carry the recent skips: a resumed run diverges where an uninterrupted one does', () => {
  it('round trip of divergence.recent; an old checkpoint without it restores none', () => {
    const trainer = linear();
    collectSync(from(scattered(50, 10)).pipe(train(trainer)));
    expect(trainer.divergence.recent).toEqual([9, 19, 29, 39, 49]);
    const bytes = encodeCheckpoint({ trainer, sourceOffset: 50 });
    const restored = linear();
    restoreCheckpoint(restored, decodeCheckpoint(bytes));
    expect(restored.divergence.recent).toEqual([9, 19, 29, 39, 49]);
    expect(restored.counters.skippedSamples).toBe(5);
    // continue both: the resumed one fails at the same step
    const rest = scattered(400, 10).slice(50);
    const a = collectSync(from(rest).pipe(train(trainer)));
    const b = collectSync(from(rest).pipe(train(restored)));
    expectSgError(a.error, 'SG_ERR_DIVERGED');
    expectSgError(b.error, 'SG_ERR_DIVERGED');
    expect(b.values.length).toBe(a.values.length);
    expect(weightsHash(restored.model)).toBe(weightsHash(trainer.model));
  });
});

describe('TrainingRun: the first non-finite step is an event at once; maxSamples; backpressure', () => {
  it('emits one non-finite event (detail: step, stage, value, message) at the first skipped step, before the run ends', async () => {
    const trainer = linear();
    const run = new TrainingRun({ id: 'r', trainer, source: scattered(60, 10) });
    const events: RunEvent[] = [];
    const stepsAtEvent: number[] = [];
    run.events.subscribe((e) => { events.push(e); if (e.type === 'non-finite') stepsAtEvent.push(trainer.counters.steps); });
    await run.start();
    const nonFinite = events.filter((e) => e.type === 'non-finite');
    expect(nonFinite).toHaveLength(1);
    expect(nonFinite[0].detail).toMatchObject({ step: 9, stage: 'loss', value: 'Infinity', skipped: 1 });
    expect(String(nonFinite[0].detail!.message)).toContain('loss is Infinity');
    expect(stepsAtEvent).toEqual([10]); // at once, not at the end
    expect(events.at(-1)!.type).toBe('completed');
  });

  it('maxSamples ends the run as a completed one after exactly N samples (a partial last batch is trained)', async () => {
    const trainer = linear();
    const results: StepResult[] = [];
    const run = new TrainingRun({ id: 'r', trainer, source: regressionSamples(100, 2, 1, 5), maxSamples: 10, train: { batch: 4 } });
    run.results.subscribe((r) => results.push(r));
    await run.start();
    expect(run.state).toBe('completed');
    expect(results.map((r) => r.size)).toEqual([4, 4, 2]);
    expect(trainer.counters.samples).toBe(10);
    expect(run.sourceOffset).toBe(10);
    expect(() => new TrainingRun({ id: 'r', trainer, source: [], maxSamples: 0 })).toThrowError(expect.objectContaining({ code: 'SG_ERR_CONFIG', field: 'maxSamples' }));
  });

  it('a backpressure promise holds the pull loop until it resolves', async () => {
    const trainer = linear();
    let release: (() => void) | null = null;
    let gate: Promise<void> | undefined;
    const run = new TrainingRun({
      id: 'r', trainer, source: regressionSamples(20, 2, 1, 5),
      onStep: (step) => { if (step.index === 4) gate = new Promise((resolve) => { release = () => { gate = undefined; resolve(); }; }); },
      backpressure: () => gate,
    });
    const done = run.start();
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(trainer.counters.samples).toBe(5); // held after the 5th step
    release!();
    await done;
    expect(trainer.counters.samples).toBe(20);
  });
});

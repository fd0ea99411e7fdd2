/**
 * Drift reactions on a trainer (pipeline/drift-adaptation.ts), through `train` and
 * `TrainingRun`: each reaction does what it says at the drift and nothing before, events
 * carry the sample index, and a checkpoint taken in the middle of a boost or a background
 * challenger resumes bit for bit.
 */
import { from, toArray } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { decodeCheckpoint } from '../../pipeline/checkpoint.ts';
import { type AdaptationEvent, type DriftConfig, DriftAdaptation } from '../../pipeline/drift-adaptation.ts';
import { initialize } from '../../core/init.ts';
import { cloneModel } from '../../core/model.ts';
import { encodeRunCheckpoint, restoreRun } from '../../pipeline/run-checkpoint.ts';
import { type RunEvent, TrainingRun } from '../../pipeline/run.ts';
import type { Sample } from '../../core/sample.ts';
import { train, type StepResult } from '../../pipeline/train.ts';
import type { Trainer } from '../../core/trainer.ts';
import { Rng } from '../../core/rng.ts';
import { hashOf, tinyTrainer } from '../helpers/streams.ts';

const CHANGE = 3000;
/** An abrupt drift at CHANGE: the target's relation to x is reversed and shifted (regression), or labels flip. */
function abrupt(task: 'regression' | 'classification'): Sample[] {
  const rng = new Rng(4);
  return Array.from({ length: 2 * CHANGE }, (_, i) => {
    const x = [rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(-1, 1)];
    const z = x[0] - 2 * x[1] + 0.5 * x[2];
    const after = i >= CHANGE;
    if (task === 'classification') return { x, y: [(z > 0) !== after ? 1 : 0] };
    return { x, y: [after ? 1 - z : z] };
  });
}
const regression = () => abrupt('regression');
const classification = () => abrupt('classification');
/** These tests were written with ADWIN as a regression's default detector: they keep it, by name. */
const ADWIN = { kind: 'adwin' } as const;
const regressor = () => tinyTrainer({ optimizer: { type: 'adam', learningRate: 0.01 } });
const classifier = () => tinyTrainer({ layers: [[4, 'tanh'], [1, 'sigmoid']], loss: 'bce', optimizer: { type: 'adam', learningRate: 0.01 } });

function events(trainer: Trainer, samples: Sample[], config: DriftConfig, batch = 1): { results: StepResult[]; events: AdaptationEvent[] } {
  const drift = new DriftAdaptation(trainer, config);
  let results: StepResult[] = [];
  from(samples).pipe(train(trainer, { batch, drift }), toArray()).subscribe((r) => (results = r));
  return { results, events: results.flatMap((r) => r.drift ?? []) };
}

describe('DriftAdaptation', () => {
  it('none: reports the abrupt change a little after it happens, nothing before, and changes nothing', () => {
    const watched = regressor(), plain = regressor();
    const { events: found } = events(watched, regression(), { detector: ADWIN, reaction: 'none' });
    from(regression()).pipe(train(plain)).subscribe();
    // the loss falls while the model learns: ADWIN sees that too (direction −1), before the change
    const drifts = found.filter((e) => e.type === 'drift' && e.detail.direction === 1);
    expect(drifts.length).toBeGreaterThan(0);
    expect(drifts[0].index).toBeGreaterThanOrEqual(CHANGE);
    expect(drifts[0].index).toBeLessThan(CHANGE + 500);
    expect(drifts[0].detail).toMatchObject({ detector: 'adwin' });
    expect(found.some((e) => e.type === 'drift-reaction')).toBe(false);
    expect(hashOf(watched.model.params)).toBe(hashOf(plain.model.params));
  });

  it('reset: at the drift the weights are re-drawn (seeded) and the optimizer starts over', () => {
    const trainer = regressor();
    const drift = new DriftAdaptation(trainer, { detector: ADWIN, reaction: { kind: 'reset', init: 'pytorch', seed: 7 } });
    const seen: { params: string; t: number; seed: number }[] = [];
    from(regression()).pipe(train(trainer, { drift })).subscribe((r) => {
      const reaction = r.drift?.find((e) => e.type === 'drift-reaction');
      if (reaction !== undefined) seen.push({ params: hashOf(trainer.model.params), t: trainer.optimizer.t, seed: reaction.detail.seed as number });
    });
    expect(seen.length).toBeGreaterThan(0);
    // the seed is the configured one plus the drift's number, so each reset draws new weights
    expect(seen[0].seed).toBeGreaterThan(7);
    const expected = initialize(cloneModel(trainer.model), 'pytorch', seen[0].seed);
    expect(seen[0]).toEqual({ params: hashOf(expected.params), t: 0, seed: seen[0].seed });
  });

  it('reset-optimizer: at the drift the weights stay (as without a reaction), the moments are zero', () => {
    const trainer = regressor(), watched = regressor();
    const drift = new DriftAdaptation(trainer, { detector: ADWIN, reaction: 'reset-optimizer' });
    const plain = new DriftAdaptation(watched, { detector: ADWIN, reaction: 'none' });
    const atReaction: { params: string; t: number; zero: boolean }[] = [];
    const unreacted = new Map<number, string>();
    from(regression()).pipe(train(watched, { drift: plain })).subscribe((r) => unreacted.set(r.step, hashOf(watched.model.params)));
    from(regression()).pipe(train(trainer, { drift })).subscribe((r) => {
      if (r.drift?.some((e) => e.type === 'drift-reaction') && atReaction.length === 0) {
        const { m, v, t } = trainer.optimizer;
        atReaction.push({ params: hashOf(trainer.model.params), t, zero: m.every((x) => x === 0) && v.every((x) => x === 0) });
        expect(atReaction[0].params).toBe(unreacted.get(r.step));
      }
    });
    expect(atReaction).toHaveLength(1);
    expect(atReaction[0]).toMatchObject({ t: 0, zero: true });
  });

  it('boost-lr: ×factor at the drift, held for N samples, back to the base over N more, then an end event', () => {
    const trainer = regressor();
    const { results, events: found } = events(trainer, regression(), { detector: ADWIN, reaction: { kind: 'boost-lr', factor: 4, samples: 200 } });
    const start = found.find((e) => e.type === 'drift-reaction' && e.detail.from !== undefined)!;
    expect(start.detail).toMatchObject({ reaction: 'boost-lr', from: 0.01, to: 0.04, samples: 200 });
    const step = results.findIndex((r) => r.drift?.includes(start));
    // batch 1: the step after the drift runs at 4× for 199 more steps (the drift's own step counted), then decays
    expect(results[step + 1].learningRate).toBeCloseTo(0.04, 15);
    expect(results[step + 199].learningRate).toBeCloseTo(0.04, 15);
    expect(results[step + 300].learningRate).toBeCloseTo(0.01 * (1 + 3 * (100 / 200)), 12);
    const end = found.find((e) => e.detail.ended === true)!;
    expect(end.index - start.index).toBe(400);
    expect(trainer.optimizer.learningRate === 0.01 || found.filter((e) => e.type === 'drift').length > 1).toBe(true);
  });

  it('background (DDM on a classifier): a challenger starts at the warning; at the drift it is swapped in if better on the same samples, else dropped', () => {
    const trainer = classifier();
    const { events: found } = events(trainer, classification(), { detector: { kind: 'ddm' }, reaction: { kind: 'background', challenger: 'fresh' } });
    const reactions = found.filter((e) => e.type === 'drift-reaction');
    const starts = reactions.filter((e) => e.detail.action === 'start');
    const decisions = reactions.filter((e) => e.detail.action === 'swap' || e.detail.action === 'drop');
    expect(starts.length).toBeGreaterThan(0);
    const firstWarning = found.find((e) => e.type === 'drift-warning')!;
    expect(starts[0].index).toBe(firstWarning.index);
    for (const d of decisions) {
      const { challengerLoss, modelLoss } = d.detail as { challengerLoss: number; modelLoss: number };
      expect(d.detail.action).toBe(challengerLoss < modelLoss ? 'swap' : 'drop');
    }
  });

  it('background with a detector that does not warn (ADWIN): starts at the drift, decides after the horizon', () => {
    const trainer = regressor();
    const { events: found } = events(trainer, regression(), { detector: ADWIN, reaction: { kind: 'background', horizon: 300 } });
    const start = found.find((e) => e.detail.action === 'start')!;
    const decision = found.find((e) => e.detail.action === 'swap' || e.detail.action === 'drop')!;
    expect(found.find((e) => e.type === 'drift' && e.detail.direction === 1)!.index).toBe(start.index);
    expect(decision.detail.samples).toBe(300);
  });

  it('boost-lr with minRise: boosts only at a drift whose recent signal is minRise × its long-run mean or more; every drift carries its rise', () => {
    const gate = (minRise: number) => events(classifier(), classification(), { detector: { kind: 'page-hinkley' }, reaction: { kind: 'boost-lr', factor: 5, samples: 300, minRise } }).events;
    const low = gate(2), high = gate(1e9);
    const flip = low.find((e) => e.type === 'drift' && e.index >= CHANGE)!;
    // the labels flip: the last 10 losses are many times the long-run mean
    expect(flip.index).toBeLessThan(CHANGE + 50);
    expect(flip.detail.rise).toBeGreaterThan(2);
    expect(low.find((e) => e.type === 'drift-reaction' && e.index === flip.index)).toMatchObject({ detail: { reaction: 'boost-lr', to: 0.05 } });
    for (const d of low.filter((e) => e.type === 'drift' && e.detail.direction === 1)) {
      expect(low.some((e) => e.type === 'drift-reaction' && e.index === d.index && e.detail.ended === undefined)).toBe((d.detail.rise as number) >= 2);
    }
    // up to the first boost, the same drifts without a reaction: the gate decides only whether to react
    const until = (found: AdaptationEvent[]) => found.filter((e) => e.type === 'drift' && e.index <= flip.index).map((e) => e.index);
    expect(until(high)).toEqual(until(low));
    expect(high.some((e) => e.type === 'drift-reaction')).toBe(false);
    expect(() => new DriftAdaptation(classifier(), { reaction: { kind: 'boost-lr', minRise: -1 } })).toThrow(expect.objectContaining({ code: 'SG_ERR_CONFIG', field: 'drift.reaction.minRise' }));
    expect(() => new DriftAdaptation(classifier(), { reaction: { kind: 'boost-lr', riseWindow: 0 } })).toThrow(expect.objectContaining({ code: 'SG_ERR_CONFIG', field: 'drift.reaction.riseWindow' }));
  });

  it('boost-lr with minRise: its window and long-run mean go into the state; a checkpoint without them is refused', () => {
    const config: DriftConfig = { detector: { kind: 'page-hinkley' }, reaction: { kind: 'boost-lr', minRise: 3 } };
    const trainer = classifier();
    const adaptation = new DriftAdaptation(trainer, config);
    from(classification().slice(0, 500)).pipe(train(trainer, { drift: adaptation })).subscribe();
    const state = adaptation.state();
    expect(state.rise!.recent.length).toBeGreaterThan(0);
    expect(state.rise!.n).toBe(500);
    const again = new DriftAdaptation(classifier(), config);
    again.restore(JSON.parse(JSON.stringify(state)));
    expect(again.state()).toEqual(state);
    const { rise: _rise, ...without } = state;
    expect(() => new DriftAdaptation(classifier(), config).restore(without)).toThrow(expect.objectContaining({ code: 'SG_ERR_CHECKPOINT', field: 'drift.reaction.minRise' }));
  });

  it('background with factor: the challenger (a copy) learns at the model\'s learning rate × factor; the model keeps its own, swapped or not', () => {
    const trainer = regressor();
    const { events: found } = events(trainer, regression(), { detector: ADWIN, reaction: { kind: 'background', challenger: 'copy', factor: 3, horizon: 300 } });
    const start = found.find((e) => e.detail.action === 'start')!;
    expect(start.detail).toMatchObject({ challenger: 'copy', learningRate: 0.03 });
    const decision = found.find((e) => e.detail.action === 'swap' || e.detail.action === 'drop')!;
    const { challengerLoss, modelLoss } = decision.detail as { challengerLoss: number; modelLoss: number };
    expect(decision.detail.action).toBe(challengerLoss < modelLoss ? 'swap' : 'drop');
    expect(challengerLoss).not.toBe(modelLoss); // a copy at the same rate would score the same
    expect(trainer.optimizer.learningRate).toBe(0.01);
    expect(() => new DriftAdaptation(regressor(), { reaction: { kind: 'background', factor: 0 } })).toThrow(expect.objectContaining({ code: 'SG_ERR_CONFIG', field: 'drift.reaction.factor' }));
  });

  it('background with recent and margin: both are compared over their last `recent` samples, and the challenger is swapped in only when its loss is below the model\'s × (1 − margin)', () => {
    const run = (margin: number) => events(regressor(), regression(), { detector: ADWIN, reaction: { kind: 'background', challenger: 'copy', factor: 3, horizon: 600, recent: 150, margin } });
    const decisions = (found: AdaptationEvent[]) => found.filter((e) => e.detail.action === 'swap' || e.detail.action === 'drop');
    const plain = run(0);
    expect(decisions(plain.events).some((e) => e.detail.action === 'swap'), 'a swap without a margin').toBe(true);
    for (const d of decisions(plain.events)) {
      const { challengerLoss, modelLoss, samples } = d.detail as { challengerLoss: number; modelLoss: number; samples: number };
      expect(samples).toBe(600);
      // batch 1: the model's loss over the last 150 samples before the decision, as the steps reported it
      const last = plain.results.slice(d.index - 150, d.index).map((r) => r.loss);
      expect(modelLoss).toBeCloseTo(last.reduce((a, b) => a + b, 0) / 150, 12);
      expect(d.detail.action).toBe(challengerLoss < modelLoss ? 'swap' : 'drop');
    }
    const strict = run(0.1);
    for (const d of decisions(strict.events)) {
      const { challengerLoss, modelLoss } = d.detail as { challengerLoss: number; modelLoss: number };
      expect(d.detail.action).toBe(challengerLoss < modelLoss * 0.9 ? 'swap' : 'drop');
    }
    // a margin no challenger can beat: the same run, never a swap
    expect(decisions(run(0.999).events).every((e) => e.detail.action === 'drop')).toBe(true);
    expect(() => new DriftAdaptation(regressor(), { reaction: { kind: 'background', margin: 1 } })).toThrow(expect.objectContaining({ code: 'SG_ERR_CONFIG', field: 'drift.reaction.margin' }));
    expect(() => new DriftAdaptation(regressor(), { reaction: { kind: 'background', recent: 0 } })).toThrow(expect.objectContaining({ code: 'SG_ERR_CONFIG', field: 'drift.reaction.recent' }));
  });

  it('checks its config: 0/1 detectors take errors or large errors, reactions name the field', () => {
    // on a regression a detector of 0/1 values watches the large errors by default
    expect(new DriftAdaptation(regressor(), { detector: { kind: 'ddm' } }).signal).toBe('large-error');
    expect(new DriftAdaptation(classifier(), { detector: { kind: 'ddm' } }).signal).toBe('error');
    expect(() => new DriftAdaptation(regressor(), { signal: 'error' })).toThrow(/signal: error needs a classifier/);
    expect(() => new DriftAdaptation(classifier(), { detector: { kind: 'ddm' }, signal: 'loss' })).toThrow(/ddm takes 0\/1 values/);
    expect(() => new DriftAdaptation(regressor(), { signal: 'large-error', largeError: { quantile: 1 } })).toThrow(expect.objectContaining({ code: 'SG_ERR_CONFIG', field: 'drift.largeError.quantile' }));
    expect(() => new DriftAdaptation(regressor(), { signal: 'vibes' as never })).toThrow(/drift.signal must be one of loss, error, large-error/);
    expect(() => new DriftAdaptation(regressor(), { reaction: { kind: 'boost-lr', factor: -1 } })).toThrow(/drift.reaction.factor must be a number in \(0, 100\]/);
    expect(() => new DriftAdaptation(regressor(), { reaction: { kind: 'background', horizon: 0 } })).toThrow(/horizon must be an integer ≥ 1/);
    expect(() => new DriftAdaptation(regressor(), { reaction: 'explode' as never })).toThrow(/reaction.kind must be one of none, reset/);
    const trainer = regressor();
    const other = new DriftAdaptation(regressor());
    expect(() => train(trainer, { drift: other })).toThrow(/another trainer/);
  });
});

describe('defaults and the other signals', () => {
  it('the defaults per task: a classifier gets Page-Hinkley on its loss and boost-lr at large rises, a regressor a one-sided Page-Hinkley on its loss and refit-head (none when its output layer is not linear)', () => {
    const c = new DriftAdaptation(classifier()), r = new DriftAdaptation(regressor());
    expect([c.detector.kind, c.signal, c.reaction]).toEqual(['page-hinkley', 'loss', { kind: 'boost-lr', factor: 4, samples: 400, minRise: 6, riseWindow: 10 }]);
    expect(c.detector.evidence()).toMatchObject({ threshold: 100 });
    expect([r.detector.kind, r.signal, r.reaction]).toEqual(['page-hinkley', 'loss', { kind: 'refit-head', samples: 1000, forgetting: 0.998, prior: 10 }]);
    expect(r.detector).toMatchObject({ delta: 0.01, threshold: 0.5, alpha: 1, minInstances: 1000, mode: 'up' });
    // a regression with a squashed output: refit-head cannot fit it, so by default it only reports
    expect(new DriftAdaptation(tinyTrainer({ layers: [[4, 'tanh'], [1, 'sigmoid']] })).reaction).toEqual({ kind: 'none' });
  });

  it('large-error: HDDM_A on a regression finds the abrupt change within tens of samples, and the signal starts over after it', () => {
    const trainer = regressor();
    const { events: found } = events(trainer, regression(), { detector: { kind: 'hddm-a' }, signal: 'large-error', largeError: { reference: 200 } });
    const drift = found.find((e) => e.type === 'drift' && e.index >= CHANGE)!;
    expect(drift.index - CHANGE).toBeLessThan(100);
    expect(drift.detail.threshold).toBeGreaterThan(0);
    expect(found.filter((e) => e.type === 'drift' && e.index < CHANGE)).toEqual([]);
  });

  it('signalDrift: a change known from outside is a drift event (detector external) and the reaction happens before the next sample', () => {
    const trainer = regressor();
    const drift = new DriftAdaptation(trainer, { detector: { kind: 'page-hinkley', threshold: 1e300 }, reaction: { kind: 'boost-lr', factor: 2, samples: 100 } });
    const rates: number[] = [];
    const found: AdaptationEvent[] = [];
    let seen = 0;
    from(regression().slice(0, 400)).pipe(train(trainer, { drift })).subscribe((r) => {
      found.push(...(r.drift ?? []));
      rates.push(r.learningRate); // rates[i]: the rate sample i was learned at
      seen += r.size;
      if (seen === 200) drift.signalDrift({ reason: 'recalibration' });
    });
    expect(rates[199]).toBe(0.01);
    expect(rates[200]).toBeCloseTo(0.02, 15);
    expect(found.filter((e) => e.type === 'drift')).toEqual([{ type: 'drift', index: 200, detail: { reason: 'recalibration', detector: 'external', drifts: 1, direction: 1 } }]);
    expect(found.find((e) => e.type === 'drift-reaction')).toMatchObject({ index: 200, detail: { reaction: 'boost-lr', from: 0.01, to: 0.02 } });
  });
});

describe('TrainingRun with drift', () => {
  const CONFIGS: [string, () => Trainer, () => Sample[], DriftConfig][] = [
    ['boost-lr', regressor, regression, { detector: ADWIN, reaction: { kind: 'boost-lr', factor: 3, samples: 400 } }],
    ['background (ddm)', classifier, classification, { detector: { kind: 'ddm' }, reaction: { kind: 'background', challenger: 'copy', horizon: 800 } }],
    ['background (adwin)', regressor, regression, { detector: ADWIN, reaction: { kind: 'background', horizon: 800 } }],
    ['boost-lr with minRise (page-hinkley)', classifier, classification, { detector: { kind: 'page-hinkley' }, reaction: { kind: 'boost-lr', factor: 5, samples: 300, minRise: 2 } }],
    ['background (copy at ×3)', regressor, regression, { detector: ADWIN, reaction: { kind: 'background', challenger: 'copy', factor: 3, horizon: 800 } }],
    ['background (copy at ×3, judged on its recent loss with a margin)', regressor, regression, { detector: ADWIN, reaction: { kind: 'background', challenger: 'copy', factor: 3, horizon: 800, recent: 200, margin: 0.1 } }],
    ['reset (kswin)', regressor, regression, { detector: { kind: 'kswin', alpha: 0.0001 }, reaction: 'reset' }],
    ['boost-lr (hddm-a on large errors)', regressor, regression, { detector: { kind: 'hddm-a' }, signal: 'large-error', largeError: { reference: 300, refresh: 1000 }, reaction: { kind: 'boost-lr', samples: 300 } }],
    ['refit-head (the regression default: page-hinkley on the loss)', regressor, regression, {}],
    ['refit-head (adwin, 700 samples, forgetting 0.99)', regressor, regression, { detector: ADWIN, reaction: { kind: 'refit-head', samples: 700, forgetting: 0.99 } }],
  ];

  it.each(CONFIGS)('%s: events on the run, and resuming from any checkpoint (mid-reaction too) ends bit for bit as the uninterrupted run', async (_name, make, data, config) => {
    const source = data();
    const fingerprint = (run: TrainingRun) => ({ params: hashOf(run.trainer.model.params), m: hashOf(run.trainer.optimizer.m), t: run.trainer.optimizer.t, lr: run.trainer.optimizer.learningRate, drift: JSON.stringify(run.drift!.state()) });
    const whole = make();
    const runEvents: RunEvent[] = [];
    const uninterrupted = new TrainingRun({ id: 'a', trainer: whole, source, train: { batch: 2, window: 50 }, drift: new DriftAdaptation(whole, config) });
    uninterrupted.events.subscribe((e) => runEvents.push(e));
    await uninterrupted.start();
    expect(runEvents.some((e) => e.type === 'drift')).toBe(true);
    expect(runEvents.find((e) => e.type === 'drift')!.detail).toHaveProperty('index');
    const expected = fingerprint(uninterrupted);

    const checkpoints: { step: number; bytes: Uint8Array; inReaction: boolean }[] = [];
    const trainer = make();
    const first = new TrainingRun({
      id: 'a', trainer, source, train: { batch: 2, window: 50 }, drift: new DriftAdaptation(trainer, config), autoCheckpoint: { everySteps: 250 },
      checkpoint: async (r) => {
        const s = r.drift!.state();
        checkpoints.push({ step: r.trainer.counters.steps, bytes: encodeRunCheckpoint(r), inReaction: s.boost !== null || s.challenger !== null || (s.refit ?? null) !== null });
        return 'memory';
      },
    });
    await first.start();
    expect(fingerprint(first)).toEqual(expected);
    if (config.reaction !== 'reset') expect(checkpoints.some((c) => c.inReaction), 'a checkpoint during the boost or the challenger').toBe(true);
    for (const c of checkpoints.filter((_, i) => i % 3 === 1 || _.inReaction)) {
      const resumedTrainer = make();
      const drift = new DriftAdaptation(resumedTrainer, config);
      const point = restoreRun(decodeCheckpoint(c.bytes), resumedTrainer, 50, drift);
      const run = new TrainingRun({ id: 'a', trainer: resumedTrainer, source: source.slice(point.sourceOffset), sourceOffset: point.sourceOffset, train: { batch: 2, window: point.window }, drift });
      await run.start();
      expect(fingerprint(run), `resumed at step ${c.step}`).toEqual(expected);
    }
  });

  it('a checkpoint with drift state is refused by a run without drift detection, and the reverse', async () => {
    const trainer = regressor();
    let bytes: Uint8Array | null = null;
    const run = new TrainingRun({ id: 'a', trainer, source: regression().slice(0, 20), drift: new DriftAdaptation(trainer), autoCheckpoint: { everySteps: 10 }, checkpoint: async (r) => ((bytes = encodeRunCheckpoint(r)), 'memory') });
    await run.start();
    expect(() => restoreRun(decodeCheckpoint(bytes!), regressor(), 1000)).toThrow(/has drift detection state, but the run does not/);
    const plain = new TrainingRun({ id: 'a', trainer: regressor(), source: regression().slice(0, 20), autoCheckpoint: { everySteps: 10 }, checkpoint: async (r) => ((bytes = encodeRunCheckpoint(r)), 'memory') });
    await plain.start();
    const t = regressor();
    expect(() => restoreRun(decodeCheckpoint(bytes!), t, 1000, new DriftAdaptation(t))).toThrow(/has no drift detection state, but the run detects drift/);
  });

  it('a run reset also resets its detector', async () => {
    const trainer = regressor();
    const drift = new DriftAdaptation(trainer);
    const run = new TrainingRun({ id: 'a', trainer, source: regression().slice(0, 100), drift });
    await run.start();
    expect(drift.state().detector).not.toEqual(new DriftAdaptation(regressor()).state().detector);
    run.reset();
    expect(drift.state().detector).toEqual(new DriftAdaptation(regressor()).state().detector);
  });
});

import { DriftAdaptation, type DriftConfig } from '../pipeline/drift-adaptation.ts';
import type { LayerSpec } from '../core/model.ts';
import type { ExperimentInfo } from '../server/protocol.ts';
import { kineticsDriftSamples } from '../sources/kinetics-drift.ts';
import { paced } from '../sources/paced.ts';
import type { Trainer } from '../core/trainer.ts';

/**
 * The scene `npm start` shows (`streamgrad start --serve`): a drifting enzyme sensor a
 * person can follow. A Michaelis–Menten sensor reports the reaction rate at a human pace
 * (`SCENE_RATE` samples a second, so a curve moves and can be read); the enzyme's K_m — hidden
 * from the models — changes every `SCENE_CHANGE_EVERY` samples, about once a minute; the wide
 * and the deep network race on it, each watching its own prequential loss with Page-Hinkley and
 * boosting its learning rate when it sees a drift. The drift alarms and the reactions are
 * run events: markers on the dashboard's loss chart and lines in its Events list.
 *
 * @example
 * const source = sceneSource({ seed: 0, limit: Infinity, fast: false });
 * const run = new TrainingRun({ id: 'deep', trainer, source, drift: sceneDrift(trainer) });
 */

/** Samples a second of the paced scene (`--fast`: as fast as training goes). */
export const SCENE_RATE = 300;
/** K_m changes every this many samples: a minute at `SCENE_RATE`. */
export const SCENE_CHANGE_EVERY = 60 * SCENE_RATE;
/** The K_m values the enzyme goes through, in a cycle. */
export const SCENE_KM: readonly number[] = [1, 4, 0.5, 8];
/** Inputs of the scene's models: [V_max, S]. */
export const SCENE_INPUTS = 2;

/** The two racers on the scene's two inputs, the same size (337 parameters each). */
export const SCENE_RACE: readonly { readonly name: string; readonly layers: readonly LayerSpec[] }[] = [
  { name: 'wide', layers: [{ units: 84, activation: 'relu' }, { units: 1, activation: 'linear' }] },
  { name: 'deep', layers: [{ units: 16, activation: 'relu' }, { units: 16, activation: 'relu' }, { units: 1, activation: 'linear' }] },
];

/**
 * How each racer watches for drift and reacts: Page-Hinkley on its loss, scaled to this
 * stream (River's defaults expect a signal of order 1 and see nothing here; ADWIN's miss
 * most of these changes, `npm run bench:drift`), learning rate ×3 for 500 samples. On the
 * scene's seed 0 it raises one alarm about 10–100 samples after most changes, and a few
 * while the networks are still learning the first enzyme.
 */
export const SCENE_DRIFT: DriftConfig = {
  detector: { kind: 'page-hinkley', delta: 0.002, threshold: 2, minInstances: 2000, mode: 'up' },
  reaction: { kind: 'boost-lr', factor: 3, samples: 500 },
};

/** What the dashboard's header says about the scene. */
export function sceneExperiment(fast: boolean): ExperimentInfo {
  const pace = fast ? 'as fast as it trains' : `${SCENE_RATE} samples a second`;
  return {
    description: `A Michaelis–Menten enzyme sensor (${pace}): the enzyme's Km changes every ${SCENE_CHANGE_EVERY.toLocaleString('en-US')} samples (${SCENE_KM.join(' → ')}${fast ? '' : ', about once a minute'}); ` +
      'a wide and a deep network of 337 parameters each learn it online, and each watches its own loss with Page-Hinkley and triples its learning rate for 500 samples when it drifts.',
    task: 'regression: predict the reaction rate v = Vmax·S/(Km + S) from [Vmax, S] (Km hidden), mse',
    target: 'reaction rate v (µM/s)',
  };
}

/** The scene's stream for one racer (each gets its own copy, the same samples), paced unless `fast`. */
export function sceneSource(o: { readonly seed: number; readonly limit: number; readonly fast: boolean }): Iterable<unknown> | AsyncIterable<unknown> {
  const samples = kineticsDriftSamples({ seed: o.seed, limit: o.limit, every: SCENE_CHANGE_EVERY, km: SCENE_KM });
  return o.fast ? samples : paced(samples, { samplesPerSecond: SCENE_RATE });
}

/** A racer's drift detection and reaction. */
export function sceneDrift(trainer: Trainer): DriftAdaptation {
  return new DriftAdaptation(trainer, SCENE_DRIFT);
}

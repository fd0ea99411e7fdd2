import type { BackendChoice } from '../core/backend.ts';
import type { DriftConfig } from '../pipeline/drift-adaptation.ts';
import { DEFAULT_INIT } from '../core/init.ts';
import type { LayerSpec } from '../core/model.ts';
import type { ExperimentInfo } from '../server/protocol.ts';
import type { ExperimentConfig } from '../runtime/run-experiment.ts';

/**
 * What `streamgrad start` runs, as an experiment config for the library's runtime
 * (`runExperiment`). Unserved, the lecture's race: a wide and a deep network of about 350
 * parameters on a Michaelis–Menten stream, as fast as they train. Served (`npm start`), the
 * scene a person can follow: a Michaelis–Menten sensor reporting the reaction rate at a
 * human pace (`SCENE_RATE` samples a second, so a curve moves and can be read); the enzyme's
 * K_m — hidden from the models — changes every `SCENE_CHANGE_EVERY` samples, about once a
 * minute; the wide and the deep network race on it, each watching its own prequential loss
 * with Page-Hinkley. The drift alarms are run events: markers on the dashboard's loss chart
 * and lines in its Events list. `examples/drifting-sensor.json` is the scene with the defaults (a test keeps them equal).
 *
 * @example
 * const result = await runExperiment(raceConfig({ seed: 0, batch: 1, window: 1000, learningRate: 0.003, scene: true, fast: false }));
 */

/** The lecture's deep-vs-wide race: one wide hidden layer against two narrow ones, ~350 parameters each, on x = [Vmax, S, Km]. */
export const RACE: readonly { readonly name: string; readonly layers: readonly LayerSpec[] }[] = [
  { name: 'wide', layers: [{ units: 70, activation: 'relu' }, { units: 1, activation: 'linear' }] },
  { name: 'deep', layers: [{ units: 16, activation: 'relu' }, { units: 16, activation: 'relu' }, { units: 1, activation: 'linear' }] },
];

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
 * How each racer watches for drift: Page-Hinkley on its loss, scaled to this stream (River's
 * defaults expect a signal of order 1 and see nothing here; ADWIN's miss most of these
 * changes, `npm run bench:drift`), not before 10,000 samples (while a network still learns
 * the first enzyme, its loss has bursts of its own). On the scene's seed 0 (216,000 samples,
 * 11 changes) the wide network's alarms come 1–50 samples after 9 changes and nowhere else
 * (both miss the 8 → 1 ones), the deep one's after 8, and once at sample 9,999. The reaction is
 * `refit-head`: at each alarm the output layer is re-solved by recursive least squares after
 * every sample for 300 samples (prior 1: the first samples move it less than the bench's
 * default 10, which made the deep network worse here), while the hidden layers learn on.
 * Over 5 seeds of 216,000 samples (`npm run bench:drift-scene`): wide −23% after the changes
 * and −6.8% over the whole run (per seed −12% to +1.7%), deep −8.1% and −1.7% (−4.7% to
 * +1.6%); session 7's background challenger (a copy at 3× the rate, swapped in when 20%
 * better) gave −1.7% / −2.0% and −0.1% / −0.4% on the same seeds.
 */
export const SCENE_DRIFT: DriftConfig = {
  detector: { kind: 'page-hinkley', delta: 0.002, threshold: 2, minInstances: 10_000, mode: 'up' },
  reaction: { kind: 'refit-head', samples: 300, prior: 1 },
};

/** What the dashboard's header says about the scene. */
export function sceneExperiment(fast: boolean): ExperimentInfo {
  const pace = fast ? 'as fast as it trains' : `${SCENE_RATE} samples a second`;
  return {
    description: `A Michaelis–Menten enzyme sensor (${pace}): the enzyme's Km changes every ${SCENE_CHANGE_EVERY.toLocaleString('en-US')} samples (${SCENE_KM.join(' → ')}${fast ? '' : ', about once a minute'}); ` +
      'a wide and a deep network of 337 parameters each learn it online, and each watches its own loss with Page-Hinkley: at each alarm its output layer is re-solved by least squares on the newest samples for 300 samples, so it relearns the new enzyme in tens of samples: alarms and reactions are the markers on the loss chart (see docs/drift.md).',
    task: 'regression: predict the reaction rate v = Vmax·S/(Km + S) from [Vmax, S] (Km hidden), mse',
    target: 'reaction rate v (µM/s)',
  };
}

/** `streamgrad start`'s options. */
export interface RaceSettings {
  /** The stream's seed; the models use seed+1, seed+2. */
  readonly seed: number;
  readonly samples?: number;
  readonly steps?: number;
  readonly batch: number;
  readonly window: number;
  readonly learningRate: number;
  readonly backend?: BackendChoice;
  /** The served scene (drifting sensor, paced, drift reactions on) rather than the plain race. */
  readonly scene: boolean;
  /** The scene at full speed. */
  readonly fast: boolean;
}

/**
 * The race as a config: the source, the two models (mse, Adam, their seeds), the window,
 * the limits and, for the scene, the server's header (its port comes from `--serve`).
 */
export function raceConfig(o: RaceSettings): ExperimentConfig {
  const racers = o.scene ? SCENE_RACE : RACE;
  const limit = { ...(o.samples !== undefined && { samples: o.samples }), ...(o.steps !== undefined && { steps: o.steps }) };
  return {
    description: o.scene ? 'npm start: a wide and a deep network race on a drifting enzyme sensor' : 'the deep-vs-wide race on a Michaelis–Menten stream',
    source: o.scene
      ? { simulated: 'kinetics-drift', seed: o.seed, every: SCENE_CHANGE_EVERY, km: [...SCENE_KM], ...(!o.fast && { rate: SCENE_RATE }) }
      : { simulated: 'michaelis-menten', seed: o.seed },
    models: racers.map(({ name, layers }, i) => ({
      name,
      // the layers spec of --layers and config files: `2,84:relu,1:linear`
      layers: [o.scene ? SCENE_INPUTS : 3, ...layers.map((l) => `${l.units}:${l.activation}`)].join(','),
      loss: 'mse' as const,
      optimizer: { type: 'adam' as const, lr: o.learningRate },
      batch: o.batch,
      seed: o.seed + 1 + i,
      init: DEFAULT_INIT,
      ...(o.backend !== undefined && { backend: o.backend }),
      ...(o.scene && { drift: structuredClone(SCENE_DRIFT) as never }),
    })),
    evaluation: { window: o.window },
    ...(Object.keys(limit).length > 0 && { limit }),
    ...(o.scene && { server: { port: 8080, experiment: sceneExperiment(o.fast) } }),
  };
}

import { StreamgradError } from './errors.ts';
import type { FeatureMap } from './features.ts';
import { forwardPass } from './network.ts';
import type { Normalizer } from './normalizer.ts';
import type { IngestRecord } from './record.ts';
import { checkSample, type FeatureTimePrediction } from './sample.ts';
import type { Trainer } from './trainer.ts';
import { createWorkspace } from './workspace.ts';

/** Defined beside `Sample`, which carries one, so that sample.ts imports nothing that imports it. */
export type { FeatureTimePrediction } from './sample.ts';

/** What makes feature-time predictions: a features record → its prediction, or what is wrong with it. */
export type FeaturePredictor = (record: IngestRecord) => FeatureTimePrediction | StreamgradError;

/** What `featurePredictor` predicts with: the live trainer and ingestion stages. */
export interface FeaturePredictorOptions {
  readonly trainer: Trainer;
  /** Named records → ordered inputs (frozen: predicting learns nothing); without it records are `{x: [...]}`. */
  readonly features?: FeatureMap;
  /** The run's normaliser: inputs are standardised, a normalised target mapped back, with its statistics *now*. */
  readonly normalizer?: Normalizer;
}

/**
 * Predicts with the model as it is now on a features record that has no label yet: the
 * record's inputs (named through the feature map, imputing without learning, or `x`),
 * standardised with the normaliser's current statistics, one forward pass on a workspace
 * of its own (the trainer's buffers are not touched, so a partial batch in progress is
 * safe). Nothing is learned. A record that cannot be predicted on gets a typed error
 * (`SG_ERR_MISSING`, `SG_ERR_TYPE`, `SG_ERR_ARITY`, `SG_ERR_NONFINITE_INPUT`).
 *
 * @example
 * const predict = featurePredictor({ trainer, features, normalizer });
 * const p = predict({ value: { id: 7, temp: 12.5 }, origin: { line: 3 } }); // { z, a, step }
 */
export function featurePredictor(options: FeaturePredictorOptions): FeaturePredictor {
  const { trainer, features, normalizer } = options;
  const { model, kernels } = trainer;
  const ws = createWorkspace(model, 1, kernels.allocate);
  const n = model.inputSize, m = model.outputSize, last = model.layers.length - 1;
  const shape = { inputs: n, outputs: 1 };
  const target = normalizer?.config.target === true;
  return (record) => {
    if (record.error !== undefined) return record.error;
    let x: unknown;
    if (features !== undefined) {
      const mapped = features.mapInputs(record.value, record.text === true);
      if (mapped.error !== undefined) return mapped.error;
      x = mapped.x;
    } else {
      const value = record.value;
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        return new StreamgradError('SG_ERR_TYPE', 'record: must be an object {id, x}', 'record');
      }
      x = (value as { x?: unknown }).x;
    }
    const problem = checkSample({ x, y: 0 }, shape); // the features only: the label comes later
    if (problem !== null) return problem;
    const input = normalizer === undefined ? (x as ArrayLike<number>) : normalizer.transformInput(x as ArrayLike<number>);
    for (let k = 0; k < n; k++) ws.x[k] = input[k];
    forwardPass(kernels, model, ws, 1);
    const z = ws.z[last].slice(0, m), a = ws.a[last].slice(0, m);
    return target ? { z, a, user: normalizer!.denormalizeOutput(a), step: trainer.counters.steps } : { z, a, step: trainer.counters.steps };
  };
}

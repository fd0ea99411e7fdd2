// The two saved models the prediction tests serve: a regression and a classifier, each
// with the preprocessing a trained model carries (named features, imputation, normalisation).
import { type ModelArtifact, PREPROCESSING_VERSION, preprocessingFromJSON } from '../../pipeline/model-artifact.ts';
import { seededModel } from '../helpers/streams.ts';

/** A regression on named features with standardised inputs and target: 3 features → 2 outputs. */
export function regression(): ModelArtifact {
  const model = seededModel(3, [[8, 'tanh'], [2, 'linear']], 11);
  const preprocessing = preprocessingFromJSON({
    version: PREPROCESSING_VERSION,
    features: ['temp', 'wind', 'rain'],
    targets: ['load', 'price'],
    classes: null,
    missing: ['reject', 'mean', 'last'],
    imputation: { seen: [50, 50, 50], mean: [12, 3.5, 0.4], last: [11, 2, 0] },
    normalizer: { warmup: 2, clip: 10, x: { count: 50, mean: [12, 3.5, 0.4], m2: [400, 60, 9] }, y: { count: 50, mean: [100, 40], m2: [5000, 800] } },
  }, model);
  return { model, preprocessing };
}

/** A softmax classifier with class names: 4 features → 3 classes, standardised inputs. */
export function classifier(): ModelArtifact {
  const model = seededModel(4, [[6, 'relu'], [3, 'softmax']], 5);
  const preprocessing = preprocessingFromJSON({
    version: PREPROCESSING_VERSION,
    features: ['a', 'b', 'c', 'd'],
    targets: ['kind'],
    classes: ['rain', 'snow', 'sun'],
    missing: ['mean', 'mean', 'reject', 'reject'],
    imputation: { seen: [10, 10, 10, 10], mean: [1, 2, 3, 4], last: [1, 2, 3, 4] },
    normalizer: { warmup: 2, clip: 10, x: { count: 10, mean: [1, 2, 3, 4], m2: [10, 20, 30, 40] }, y: null },
  }, model);
  return { model, preprocessing };
}

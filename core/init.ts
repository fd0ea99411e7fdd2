import { requireConfig } from './errors.ts';
import type { Model } from './model.ts';
import { Rng } from './rng.ts';

/**
 * Weight initialisation schemes, all uniform distributions drawn from a seeded `Rng`
 * in a fixed order (layer by layer, weights row by row, then biases), so the same seed
 * gives bitwise-identical weights.
 *
 * - `pytorch`: PyTorch's `nn.Linear` default, weights and biases U(±1/√n).
 * - `xavier`:  Glorot uniform, weights U(±√(6/(n+m))), biases 0. Suits tanh, sigmoid, linear.
 * - `he`:      He (Kaiming) uniform, weights U(±√(6/n)), biases 0. Suits relu, leaky_relu.
 * - `zeros`:   everything 0 (the classic perceptron start).
 * - `auto`:    `he` for relu-family layers, `xavier` for the rest.
 */
export const INIT_SCHEMES = ['auto', 'pytorch', 'xavier', 'he', 'zeros'] as const;
/** A weight initialisation scheme (see `INIT_SCHEMES`). */
export type InitScheme = (typeof INIT_SCHEMES)[number];

/**
 * The scheme a fresh network gets unless told otherwise (`--init`, a config's `init`):
 * `pytorch`, chosen by measurement (`npm run bench:quality -- --explore`). With the
 * default SGD it learns the bench's CO₂ autoregression to a mean MAE of 0.92 ppm where
 * `auto` (He-uniform for ReLU layers, zero biases) gets 1.12 and diverges at lr 0.03, and
 * the drifting Michaelis–Menten stream to 0.034 against 0.038; on Seattle weather they tie.
 */
export const DEFAULT_INIT: InitScheme = 'pytorch';

/**
 * Draws the model's weights in place by `scheme` from `rng` (or a new `Rng` seeded with it; same seed, same weights, bit for bit), and the biases (zero, or uniform like PyTorch's for `pytorch`); returns the model.
 *
 * @example const model = initialize(createModel({ inputSize: 3, layers: [{ units: 1, activation: 'linear' }] }), 'he', 42);
 */
export function initialize(model: Model, scheme: InitScheme, rng: Rng | number): Model {
  requireConfig((INIT_SCHEMES as readonly string[]).includes(scheme), 'init', `unknown scheme ${JSON.stringify(scheme)}; use ${INIT_SCHEMES.join(', ')}`);
  const random = typeof rng === 'number' ? new Rng(rng) : rng;
  for (const layer of model.layers) {
    const n = layer.inputs, m = layer.outputs;
    const relu = layer.activation === 'relu' || layer.activation === 'leaky_relu';
    const kind = scheme === 'auto' ? (relu ? 'he' : 'xavier') : scheme;
    let wLimit = 0, bLimit = 0;
    if (kind === 'pytorch') { wLimit = 1 / Math.sqrt(n); bLimit = wLimit; }
    else if (kind === 'xavier') wLimit = Math.sqrt(6 / (n + m));
    else if (kind === 'he') wLimit = Math.sqrt(6 / n);
    for (let q = 0; q < layer.weights.length; q++) layer.weights[q] = wLimit === 0 ? 0 : random.uniform(-wLimit, wLimit);
    for (let q = 0; q < layer.bias.length; q++) layer.bias[q] = bLimit === 0 ? 0 : random.uniform(-bLimit, bLimit);
  }
  return model;
}
